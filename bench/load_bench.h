// `overcast bench load`: generate a large sparse LIBSVM file, load it, and time liblinear's
// reader on the same file in the same run.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace overcast::bench {

struct LoadBenchOptions {
  uint64_t size_mb = 1024;        // size of the generated LIBSVM file (MB, 10^6 bytes)
  std::string dir;                // work directory; empty: a fresh one under $TMPDIR or /tmp
  std::string overcast = "/proc/self/exe";  // the overcast binary that runs `load`
  std::string liblinear = "liblinear-train";  // empty: skip the peer
  int threads = 0;                // --threads for `overcast load` (0: one per core)
  std::string compression = "zstd";
  uint64_t seed = 7;
  bool keep = false;              // keep the generated file and store
  bool progress = true;           // lines on standard error
};

// Fills `result` with {"bench": "load", "figures": {...}, "ratios": {...}}; every number is
// measured in this run (bench/README.md names the keys). `overcast load` runs as a child
// process so that its peak RSS is its own (wait4's ru_maxrss), as is liblinear's. liblinear's
// read time is the wall time of `liblinear-train -c 0 FILE`: train.c reads the whole problem
// before it checks the parameters, then exits on "C <= 0", so the time is the read alone.
Status RunLoadBench(const LoadBenchOptions& options, nlohmann::json* result);

// Writes a random sparse binary-classification LIBSVM file of about `bytes` bytes (rows of
// 20..180 features over 2^20 indices, 6-digit values); returns rows and entries written.
Status GenerateLibsvm(const std::string& path, uint64_t bytes, uint64_t seed, uint64_t* rows,
                      uint64_t* nnz);

}  // namespace overcast::bench
