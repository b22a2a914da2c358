// `overcast bench ps`: the parameter server against Redis and the loopback limit, one run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "net/tcp.h"

namespace overcast::bench {

struct PsBenchOptions {
  std::string overcast = "/proc/self/exe";  // binary that runs `ps` as a child process
  std::string redis = "redis-server";       // empty: skip the peer (the result says so)
  double seconds = 1.5;                     // per measured configuration
  std::vector<int> keys_per_request = {1000, 10000};
  std::vector<int> connections = {1, 2, 4};
  int depth = 8;                            // requests in flight per connection
  uint64_t key_universe = 1'000'000;        // keys drawn uniformly from this many
  uint64_t memory_keys = 10'000'000;        // keys of width 2 for the memory figure
  uint64_t dense_mb = 16;                   // dense table size for the bandwidth figure
  uint32_t shards = 0;                      // server shard threads (0: one per core)
  std::string tcp_congestion = net::kDefaultCongestion;  // every connection and stream (net/tcp.h)
  std::string only;                         // "sparse", "dense" or "memory": that phase alone
  bool progress = true;
};

// Fills `result` with {"bench": "ps", "tcp_congestion": ..., "figures": {...}, "ratios":
// {...}}; bench/README.md names every key. The server and Redis run as child processes on free
// loopback ports.
Status RunPsBench(const PsBenchOptions& options, nlohmann::json* result);

}  // namespace overcast::bench
