// The stateless worker: takes task i of a job published in the parameter server, streams its
// shard of the train split through the algorithm, and reports progress. It keeps nothing
// local worth saving; killed at any instruction, a replacement resumes from the last report.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "algo/algorithm.h"
#include "common/status.h"

namespace overcast::runtime {

struct WorkerOptions {
  std::vector<std::string> servers;  // parameter servers (the job's blobs live there)
  std::string secret;
  std::string job;     // empty: the job an external coordinator published last on the servers
  uint32_t task = 0;
  // External jobs only: take whichever task waits for a worker (else task `task`), waiting up
  // to `wait_seconds` for one.
  bool any_task = false;
  double wait_seconds = 600;
  // Progress blob and stop check: two small round trips, so often that a stop (early
  // stopping, a target reached) wastes little.
  double report_every_seconds = 0.1;
  // In-process workers (the thread backend): set to end the worker at the next batch.
  const std::atomic<bool>* cancel = nullptr;
  const std::vector<algo::AlgorithmInfo>* registry = nullptr;  // default: the built-ins
};

// Runs the task to its end (its epochs done, or the job's stop blob set). Ok then; Cancelled
// if `cancel` was set; an error if the job, the data or a server fails.
Status RunWorker(const WorkerOptions& options);

}  // namespace overcast::runtime
