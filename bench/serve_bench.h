// `overcast bench serve`: replay one request-rate trace against the model server under each CPU
// controller in turn; compare CPU allocated and the share of windows meeting the p99 SLO.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace overcast::bench {

struct ServeBenchOptions {
  std::string overcast = "/proc/self/exe";  // binary whose `serve-replica` runs the replicas
  std::string trace_csv;          // a CSV of one rate per second; empty: a generated trace
  std::string pattern = "diurnal";  // constant|diurnal|bursty, for the generated trace
  // requests/s. The replicas must use more than the kernel's smallest quota (1 ms per 12.5 ms
  // period, 0.08 cores each) for the controllers to differ: at 50 -> 400 they used 0.03-0.17
  // cores in all, under the 0.16 of two floors, for most of the trace.
  double base_rate = 250, peak_rate = 2000;
  int seconds = 40;               // generated trace length
  // Unmeasured seconds at the trace's first rate before it, in which every controller settles
  // from the initial limit (1 core per replica).
  int warmup_s = 10;
  double slo_p99_ms = 25;
  int replicas = 2;
  int rows_per_request = 4, nnz = 64;
  uint64_t features = 100000;
  // Controllers, each run once over the trace: autothrottle (`tower_passes` runs that train
  // the Tower from nothing, the first reported as autothrottle_cold, then a warm run from the
  // saved state), captain (fixed target), hpa at each utilisation
  // target (the fast variant: decide every 1 s over a 20 s window, as the trace is short),
  // static (a fixed quota per replica).
  std::vector<std::string> controllers{"autothrottle", "hpa", "static"};
  std::vector<double> hpa_targets{0.3, 0.5, 0.7};
  double static_cores = 1.0;
  double captain_target = 0.05;
  bool captain_from_peak = false;
  bool tower_probe_up = false;      // TowerOptions::probe_up of the autothrottle runs
  double tower_slo_guard = 0.5;     // TowerOptions::slo_guard of the autothrottle runs
  std::vector<double> tower_targets;  // TowerOptions::targets (empty: its default)
  double tower_initial_target = -1; // TowerOptions::initial_target (-1: its default)
  bool tower_rate_scaled_cost = false;  // TowerOptions::rate_scaled_cost
  double captain_margin_gain = -1;  // CaptainOptions::margin_gain (-1: its default)
  double captain_initial_margin = -1;  // CaptainOptions::initial_margin (-1: its default)
  bool captain_fast_up_repay = true;  // CaptainOptions::fast_up_repay
  int replica_connections = -1;     // ServeOptions::replica_connections (-1: its default)
  int cfs_period_us = -1;           // ServeOptions::cfs_period_us, the same for every run
  int cfs_period_max_us = -1;       // ServeOptions::cfs_period_max_us, the same for every run
  double cfs_burst = 1.0;           // ServeOptions::cfs_burst, the same for every run
  double tower_interval_s = 2;
  int tower_passes = 1;  // untimed-for-the-bar replays that train the Tower before the warm run
  double window_s = 1;
  // Rounds of the whole list of runs; each run's figures are then the median over its rounds
  // (CPU, p99) and the share of all its windows meeting the SLO.
  int repeats = 1;
  std::string cgroup = "auto";
  uint64_t seed = 7;
  bool progress = true;
};

// Fills `result` with {"bench": "serve", "figures": {...}, "ratios": {...},
// "per_window": {RUN: [p99_ms per window]}}; bench/README.md names the keys.
Status RunServeBench(const ServeBenchOptions& options, nlohmann::json* result);

}  // namespace overcast::bench
