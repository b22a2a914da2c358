// The coordinator: publishes a job to the parameter server, runs one worker per task through a
// launch backend, respawns workers that die, evaluates on the held-out split as training goes,
// stops on epochs, seconds or a target metric, and returns the exported model.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "algo/algorithm.h"
#include "algo/metrics.h"
#include "common/status.h"

namespace overcast::runtime {

struct TrainProgress;

struct TrainOptions {
  std::string store;  // dataset store location
  std::string dataset;
  std::string model;
  std::vector<std::string> params;  // "KEY=VALUE"
  uint32_t workers = 2;
  uint64_t epochs = 0;    // 0 and seconds == 0: the default of 10 epochs
  double seconds = 0;     // stop after this long (with epochs == 0: no epoch limit)
  std::string target;     // "accuracy>=0.85", "rmse<=0.9": stop once the test metric gets there
  bool sync = false;
  uint64_t staleness = 0;  // async: batches a task may run ahead of the slowest (0: unbounded)
  uint64_t seed = 1;
  double eval_every_seconds = 2;
  // The exported model is the average of snapshots pulled every `average_every_seconds` over
  // the last `average_tail` of the run (by rows in epoch mode, by time in seconds mode):
  // tail averaging, which removes most of the last iterate's SGD noise. 0: the last iterate.
  double average_tail = 0.5;
  double average_every_seconds = 0.02;
  std::string backend = "processes";  // processes | threads
  std::string worker_binary;          // processes: default this executable
  std::string worker_log_level = "warn";
  std::vector<std::string> servers;   // empty: start an in-process parameter server
  std::string secret, secret_file;    // for external servers
  uint32_t ps_shards = 0;             // embedded server: shard threads (0: one per core)
  double heartbeat_timeout_seconds = 30;  // a worker silent this long is killed and replaced
  // External servers that become unreachable (killed, restarting from a checkpoint) are
  // reconnected for this long before the job fails.
  double ps_timeout_seconds = 120;
  uint32_t max_failures = 5;  // a task whose workers fail (not killed) this many times in a
                              // row without progress fails the job
  const std::vector<algo::AlgorithmInfo>* registry = nullptr;  // default: the built-ins
  // Asked after every progress report (with the latest test metrics); returning true stops
  // the job as the epoch or time limits do, with stopped_by "early_stop". Used by the tuner.
  std::function<bool(const TrainProgress&)> stop_when;
  // Pause once the job has trained this many epochs (> 0; counted from its start, across
  // resumptions): the workers exit leaving their tasks unfinished, the tables and progress stay
  // in the servers, and the result (stopped_by "pause") is evaluated there. Train again with
  // resume_job = result.job and the same options to go on. Needs servers (`servers`).
  double pause_at_epochs = 0;
  std::string resume_job;
};

struct TrainProgress {
  double elapsed = 0;
  uint64_t rows = 0;
  double epochs = 0;       // rows / train rows
  double samples_per_second = 0;
  uint64_t worker_restarts = 0;
  uint64_t ps_recoveries = 0;
  double train_loss = 0;   // recent mean training loss reported by workers
  std::optional<algo::Metrics> test;  // the latest evaluation
  uint64_t evaluations = 0;           // how many so far: a new one when this grows
};

// One evaluation on the test split: when it ended (seconds since training started) and how far
// training was.
struct CurvePoint {
  double seconds = 0;
  double epochs = 0;
  algo::Metrics test;
};

struct TrainResult {
  algo::Model model;          // tables + metadata (params, data, normalization, metrics)
  algo::Metrics test;         // on the test split (rows == 0 when it has none)
  double train_seconds = 0;
  uint64_t rows = 0;
  double epochs = 0;
  double samples_per_second = 0;
  uint32_t workers = 0;
  uint64_t worker_restarts = 0;
  // Times the servers were lost and reconnected; the job resumed from what they restored
  // (their newest checkpoint), or was published again when they came back empty.
  uint64_t ps_recoveries = 0;
  uint64_t evaluations = 0;
  // Every evaluation in time order: the test-metric curve. After a run to its end the last
  // point is the returned model (averaged when averaged_snapshots > 0); after a target stop the
  // first point that met the target is (evaluations may follow it while the workers stop).
  std::vector<CurvePoint> curve;
  uint64_t averaged_snapshots = 0;  // 0: the model is the last iterate
  std::string job;            // its id in the servers (for resume_job)
  std::string stopped_by;     // epochs | seconds | target | early_stop | pause
  nlohmann::json ToJson() const;  // the DESIGN.md result object
};

// Validates everything a user can get wrong (dataset, model, params, options) before starting
// anything: those are InvalidArgument with a one-line reason.
Result<TrainResult> Train(const TrainOptions& options,
                          const std::function<void(const TrainProgress&)>& progress = {});

}  // namespace overcast::runtime
