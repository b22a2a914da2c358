// Dynamic batching: requests' rows are gathered up to a maximum batch or a maximum wait, then
// predicted together on one thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status.h"
#include "serve/predictor.h"

namespace overcast::serve {

struct BatcherOptions {
  size_t max_batch_rows = 32;
  std::chrono::microseconds max_wait{2000};
  size_t max_queued_rows = 1024;  // beyond this, Submit refuses (503)
};

struct BatcherStats {
  uint64_t batches = 0, rows = 0, rejected = 0;
};

// Thread-safe: any number of request threads call Submit; one owned thread predicts.
class Batcher {
 public:
  Batcher(const Predictor* model, BatcherOptions o);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Blocks until `rows` are predicted; `out` gets rows() x OutputsPerRow numbers.
  // ResourceExhausted when the queue is full.
  Status Submit(const SparseBatch& rows, std::vector<float>* out);
  BatcherStats stats() const;

 private:
  struct Job {
    const SparseBatch* rows;
    std::vector<float>* out;
    std::chrono::steady_clock::time_point arrived;
    bool done = false;
  };
  void Loop();

  const Predictor* model_;
  const BatcherOptions o_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Job*> queue_;  // guarded by mu_
  size_t queued_rows_ = 0;  // guarded by mu_
  bool stop_ = false;       // guarded by mu_
  BatcherStats stats_;      // guarded by mu_
  std::thread thread_;
};

}  // namespace overcast::serve
