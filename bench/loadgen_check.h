// `overcast bench loadgen`: overcast's load generator checked against wrk on the same server,
// the same request body and the same machine, in one run.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace overcast::bench {

struct LoadgenCheckOptions {
  std::string overcast = "/proc/self/exe";  // binary whose `serve-replica` runs the replicas
  std::string wrk = "wrk";                  // Debian's wrk (closed loop, keep-alive)
  double seconds = 5;                       // per phase
  int replicas = 1;
  double cores = 1.0;       // the static quota of each replica
  int rows_per_request = 4, nnz = 64;
  uint64_t features = 100000;
  // Light load: loadgen at this fraction of the rate one wrk connection reaches, so that
  // requests rarely queue and both tools should see the server's bare latency.
  double light_fraction = 0.25;
  // Capacity: wrk with `connections` connections measures the most the server completes;
  // loadgen then offers `overload` times that, open loop, and counts what completes.
  int connections = 32;
  double overload = 1.5;
  std::string cgroup = "auto";
  uint64_t seed = 11;
  bool progress = true;
};

// Fills `result` with {"bench": "loadgen", "figures": {...}, "ratios": {...}}; bench/README.md
// names the keys. Unavailable when wrk cannot be run.
Status RunLoadgenCheck(const LoadgenCheckOptions& options, nlohmann::json* result);

}  // namespace overcast::bench
