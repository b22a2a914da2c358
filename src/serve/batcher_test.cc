// Dynamic batching: every request gets its own rows' outputs, batches stay within their bound,
// a lone request runs on its own thread, and a maximum wait gathers a fuller batch.
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "serve/batcher.h"

namespace overcast::serve {
namespace {

// Regression: each row's output is the sum of its values. Records the batches it sees.
class SumPredictor final : public Predictor {
 public:
  explicit SumPredictor(std::chrono::microseconds delay = {}) : delay_(delay) {
    info_.task = Task::kRegression;
    info_.num_classes = 1;
  }
  const ModelInfo& info() const override { return info_; }
  void Predict(const SparseBatch& b, std::vector<float>* out) const override {
    {
      std::lock_guard<std::mutex> l(mu_);
      max_rows_ = std::max(max_rows_, b.rows());
      threads_.push_back(std::this_thread::get_id());
    }
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    out->assign(b.rows(), 0.f);
    for (size_t r = 0; r < b.rows(); ++r)
      for (uint32_t k = b.offsets[r]; k < b.offsets[r + 1]; ++k) (*out)[r] += b.values[k];
  }
  size_t max_rows() const {
    std::lock_guard<std::mutex> l(mu_);
    return max_rows_;
  }
  std::vector<std::thread::id> threads() const {
    std::lock_guard<std::mutex> l(mu_);
    return threads_;
  }

 private:
  ModelInfo info_;
  std::chrono::microseconds delay_;
  mutable std::mutex mu_;
  mutable size_t max_rows_ = 0;
  mutable std::vector<std::thread::id> threads_;
};

SparseBatch Rows(const std::vector<float>& values) {
  SparseBatch b;
  for (float v : values) {
    b.ids.push_back(0);
    b.values.push_back(v);
    b.EndRow();
  }
  return b;
}

TEST(Batcher, ConcurrentRequestsEachGetTheirOwnOutputs) {
  SumPredictor model(std::chrono::microseconds(200));
  constexpr int kThreads = 12, kRequests = 150;
  Batcher batcher(&model, BatcherOptions{5, std::chrono::microseconds(0), 1024});
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> out;
      for (int i = 0; i < kRequests; ++i) {
        // 1 or 2 rows whose values name the thread and the request.
        const float v = static_cast<float>(t * 1000 + i);
        const SparseBatch rows = i % 2 ? Rows({v, -v}) : Rows({v});
        if (!batcher.Submit(rows, &out).ok()) {
          ++failed;
          continue;
        }
        if (out.size() != rows.rows() || out[0] != v || (rows.rows() == 2 && out[1] != -v)) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  const BatcherStats s = batcher.stats();
  EXPECT_EQ(s.rows, static_cast<uint64_t>(kThreads * (kRequests / 2 * 3)));
  EXPECT_EQ(s.requests, static_cast<uint64_t>(kThreads * kRequests));
  // Every prediction sleeps 200 us; requests queued behind one waited.
  EXPECT_GE(s.compute_ns, s.batches * 200'000);
  EXPECT_GT(s.queue_ns, 0u);
  // Requests queued behind a 200 us prediction were batched together...
  EXPECT_LT(s.batches, static_cast<uint64_t>(kThreads * kRequests));
  // ...never beyond the bound.
  EXPECT_LE(model.max_rows(), 5u);
  EXPECT_GT(model.max_rows(), 1u);
  // The batch-size histogram counts each batch once, none past the bucket of 8 rows.
  uint64_t counted = 0;
  for (uint64_t n : s.sizes) counted += n;
  EXPECT_EQ(counted, s.batches);
  for (size_t b = 4; b < s.sizes.size(); ++b) EXPECT_EQ(s.sizes[b], 0u) << b;
  EXPECT_GT(s.sizes[2] + s.sizes[3], 0u);  // some batches of 3 to 5 rows
}

TEST(Batcher, ALoneRequestIsPredictedOnItsOwnThread) {
  SumPredictor model;
  Batcher batcher(&model, BatcherOptions{32, std::chrono::microseconds(0), 1024});
  std::vector<float> out;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(batcher.Submit(Rows({1.5f, 2.f}), &out).ok());
    EXPECT_EQ(out, (std::vector<float>{1.5f, 2.f}));
  }
  const auto threads = model.threads();
  ASSERT_EQ(threads.size(), 3u);
  for (auto id : threads) EXPECT_EQ(id, std::this_thread::get_id());
  EXPECT_EQ(batcher.stats().batches, 3u);
  EXPECT_EQ(batcher.stats().requests, 3u);
  // Three batches of 2 rows, in the histogram's bucket of 2.
  const auto sizes = batcher.stats().sizes;
  for (size_t b = 0; b < sizes.size(); ++b) EXPECT_EQ(sizes[b], b == 1 ? 3u : 0u) << b;
}

TEST(Batcher, MaxWaitGathersAFullBatch) {
  SumPredictor model;
  // A wait far longer than the threads take to start: the batch ends when it is full.
  Batcher batcher(&model, BatcherOptions{4, std::chrono::seconds(20), 1024});
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> out;
      if (!batcher.Submit(Rows({static_cast<float>(t)}), &out).ok() ||
          out != std::vector<float>{static_cast<float>(t)})
        ++wrong;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(batcher.stats().batches, 1u);
  EXPECT_EQ(model.max_rows(), 4u);
}

TEST(Batcher, RefusesRowsBeyondTheQueueBound) {
  SumPredictor model;
  Batcher batcher(&model, BatcherOptions{32, std::chrono::microseconds(0), 2});
  std::vector<float> out;
  const Status s = batcher.Submit(Rows({1, 2, 3}), &out);
  EXPECT_EQ(s.code(), Code::kResourceExhausted) << s.message();
  EXPECT_EQ(batcher.stats().rejected, 1u);
  EXPECT_TRUE(batcher.Submit(Rows({1, 2}), &out).ok());
  EXPECT_EQ(batcher.stats().batches, 1u);
}

}  // namespace
}  // namespace overcast::serve
