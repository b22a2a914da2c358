// `overcast bench serve`: replay one request-rate trace against the model server under each CPU
// controller in turn; compare CPU allocated and the share of windows meeting the p99 SLO.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "serve/server.h"

namespace overcast::bench {

struct ServeBenchOptions {
  ServeBenchOptions() {
    serve.slo_p99_ms = 25;
    serve.tower_interval_s = 2;  // a 40 s trace: 20 decisions
    // The fast HPA variant: decide every 1 s over a 20 s window, as the trace is short.
    serve.hpa.interval_s = 1;
    serve.hpa.window_s = 20;
  }
  std::string overcast = "/proc/self/exe";  // binary whose `serve-replica` runs the replicas
  std::string trace_csv;          // a CSV of one rate per second; empty: a generated trace
  std::string pattern = "diurnal";  // constant|diurnal|bursty, for the generated trace
  // requests/s. The replicas must use more than the kernel's smallest quota (1 ms per 12.5 ms
  // period, 0.08 cores each) for the controllers to differ: at 50 -> 400 they used 0.03-0.17
  // cores in all, under the 0.16 of two floors, for most of the trace.
  double base_rate = 250, peak_rate = 2000;
  int seconds = 40;               // generated trace length
  // Unmeasured seconds at the trace's first rate before it, in which every controller settles
  // from the initial limit (`serve.initial_cores` per replica).
  int warmup_s = 10;
  // The deployment every run starts from: replicas, SLO, quotas, batching, and the tuning of
  // every controller (`overcast serve`'s options). Each run sets its controller, and the HPA
  // runs their utilisation target; the model, port and Tower state are the bench's own.
  serve::ServeOptions serve;
  int rows_per_request = 4, nnz = 64;
  uint64_t features = 100000;
  // Controllers, each run once over the trace: autothrottle (`tower_passes` runs that train
  // the Tower from nothing, the first reported as autothrottle_cold, then a warm run from the
  // saved state), captain (fixed target `serve.captain.target`), hpa at each utilisation
  // target (each replica's quota follows its use), hpa-replicas at each utilisation target
  // (Kubernetes' horizontal HPA: the replica count follows the use), static
  // (`serve.static_cores` per replica).
  std::vector<std::string> controllers{"autothrottle", "hpa", "static"};
  std::vector<double> hpa_targets{0.3, 0.5, 0.7};
  // hpa-replicas: replicas of a fixed quota (each size in `hpa_replica_cores` is its own set of
  // runs), counted by the replica-count rule (ServeOptions::max_replicas) between
  // hpa_min_replicas and hpa_max_replicas at each of `hpa_targets`, deciding every
  // `serve.hpa.interval_s` and scaling in after `serve.hpa.window_s`, as the quota HPA does.
  std::vector<double> hpa_replica_cores{0.5};
  int hpa_min_replicas = 1, hpa_max_replicas = 8;
  int tower_passes = 1;  // untimed-for-the-bar replays that train the Tower before the warm run
  double window_s = 1;
  // Rounds of the whole list of runs; each run's figures are then the median over its rounds
  // (CPU, p99) and the share of all its windows meeting the SLO.
  int repeats = 1;
  uint64_t seed = 7;
  bool progress = true;
};

// Fills `result` with {"bench": "serve", "figures": {...}, "ratios": {...},
// "per_window": {RUN: [p99_ms per window]}}; bench/README.md names the keys.
Status RunServeBench(const ServeBenchOptions& options, nlohmann::json* result);

}  // namespace overcast::bench
