// Dynamic batching: requests' rows are gathered up to a maximum batch or a maximum wait, then
// predicted together. No thread of its own: the thread of the oldest waiting request leads,
// predicting for every request queued behind it, so a request that finds the replica idle is
// predicted on its own thread with no hand-off, and requests that arrive while a batch is being
// predicted form the next one.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "common/status.h"
#include "serve/predictor.h"

namespace overcast::serve {

struct BatcherOptions {
  size_t max_batch_rows = 32;
  // How long a leader waits for a fuller batch past its oldest request's arrival; 0 batches
  // only what queued while the previous batch was predicted.
  std::chrono::microseconds max_wait{0};
  size_t max_queued_rows = 1024;  // beyond this, Submit refuses (503)
};

// The upper bounds of the batch-size histogram's buckets (rows; BatcherStats::sizes), past
// which one more bucket counts the rest.
inline constexpr std::array<size_t, 9> kBatchRowsBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};

struct BatcherStats {
  uint64_t batches = 0, rows = 0, requests = 0, rejected = 0;
  // Summed over requests: from Submit to the start of their batch's prediction. Summed over
  // batches: the prediction (merging the requests' rows, the model, splitting its outputs).
  uint64_t queue_ns = 0, compute_ns = 0;
  // Batches by their rows: sizes[i] counts those of more than kBatchRowsBounds[i - 1] rows and
  // at most kBatchRowsBounds[i]; the last, those past every bound. Not cumulative.
  std::array<uint64_t, kBatchRowsBounds.size() + 1> sizes{};
};

// Thread-safe: any number of request threads call Submit.
class Batcher {
 public:
  Batcher(const Predictor* model, BatcherOptions o);
  ~Batcher();  // waits for the requests in flight
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Blocks until `rows` are predicted; `out` gets rows() x OutputsPerRow numbers.
  // ResourceExhausted when the queue is full, Unavailable once the batcher is being destroyed.
  Status Submit(const SparseBatch& rows, std::vector<float>* out);
  BatcherStats stats() const;

 private:
  struct Job {
    const SparseBatch* rows;
    std::vector<float>* out;
    std::chrono::steady_clock::time_point arrived;
    bool done = false;  // guarded by mu_
    bool lead = false;  // guarded by mu_: this job's thread predicts the next batch
    // Its own wake-up: a finished batch wakes only its requests' threads, not every waiting one
    // (waking all of them per batch cost a replica with many requests queued about a fifth more
    // CPU per request).
    std::condition_variable cv;
  };
  // Takes a batch from the queue's front (the leader's own job first), predicts it unlocked,
  // and marks its jobs done; `l` holds mu_ before and after.
  void LeadOneBatch(std::unique_lock<std::mutex>& l, Job* leader);

  const Predictor* model_;
  const BatcherOptions o_;
  const uint32_t outputs_per_row_;
  mutable std::mutex mu_;
  std::condition_variable fill_cv_;  // a waiting leader: the batch filled up, or stop
  std::condition_variable idle_cv_;  // the destructor: no leader and nothing queued
  std::deque<Job*> queue_;           // guarded by mu_
  size_t queued_rows_ = 0;           // guarded by mu_
  bool leading_ = false;             // guarded by mu_: some thread leads (true while queued)
  bool leader_waits_ = false;        // guarded by mu_: the leader waits for a fuller batch
  bool stop_ = false;                // guarded by mu_
  BatcherStats stats_;               // guarded by mu_
  SparseBatch merged_;               // the leader's alone
  std::vector<float> outputs_;       // the leader's alone
};

}  // namespace overcast::serve
