#include "serve/batcher.h"

namespace overcast::serve {

Batcher::Batcher(const Predictor* model, BatcherOptions o)
    : model_(model), o_(o), thread_([this] { Loop(); }) {}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

BatcherStats Batcher::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

Status Batcher::Submit(const SparseBatch& rows, std::vector<float>* out) {
  Job job{&rows, out, std::chrono::steady_clock::now()};
  std::unique_lock<std::mutex> l(mu_);
  if (stop_) return Unavailable("replica is shutting down");
  if (queued_rows_ + rows.rows() > o_.max_queued_rows) {
    ++stats_.rejected;
    return ResourceExhausted("replica queue full (" + std::to_string(queued_rows_) + " rows queued)");
  }
  queue_.push_back(&job);
  queued_rows_ += rows.rows();
  work_cv_.notify_one();
  done_cv_.wait(l, [&] { return job.done; });
  return Status::Ok();
}

void Batcher::Loop() {
  SparseBatch merged;
  std::vector<float> outputs;
  std::vector<Job*> taken;
  const uint32_t outs = OutputsPerRow(model_->info());
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    work_cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
    if (stop_ && queue_.empty()) return;
    // Wait for a fuller batch, but never past the oldest request's deadline.
    const auto deadline = queue_.front()->arrived + o_.max_wait;
    work_cv_.wait_until(l, deadline, [&] { return stop_ || queued_rows_ >= o_.max_batch_rows; });
    taken.clear();
    size_t rows = 0;
    while (!queue_.empty() &&
           (taken.empty() || rows + queue_.front()->rows->rows() <= o_.max_batch_rows)) {
      taken.push_back(queue_.front());
      rows += queue_.front()->rows->rows();
      queue_.pop_front();
    }
    queued_rows_ -= rows;
    l.unlock();
    merged.clear();
    for (Job* j : taken) {
      const SparseBatch& b = *j->rows;
      const uint32_t base = static_cast<uint32_t>(merged.ids.size());
      merged.ids.insert(merged.ids.end(), b.ids.begin(), b.ids.end());
      merged.values.insert(merged.values.end(), b.values.begin(), b.values.end());
      for (size_t r = 1; r < b.offsets.size(); ++r) merged.offsets.push_back(base + b.offsets[r]);
    }
    model_->Predict(merged, &outputs);
    size_t at = 0;
    for (Job* j : taken) {
      const size_t n = j->rows->rows() * outs;
      j->out->assign(outputs.begin() + at, outputs.begin() + at + n);
      at += n;
    }
    l.lock();
    for (Job* j : taken) j->done = true;
    stats_.batches += 1;
    stats_.rows += rows;
    done_cv_.notify_all();
  }
}

}  // namespace overcast::serve
