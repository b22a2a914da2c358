// `overcast bench tune`: one 16-point grid searched three ways (no early stopping, curve,
// ASHA) in the same run, on a Fashion-MNIST one-vs-rest task.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace overcast::bench {

struct TuneBenchOptions {
  std::string overcast = "/proc/self/exe";
  std::string python = "/usr/bin/python3";
  std::string converter;  // scripts/fashion_mnist_to_libsvm.py; found beside the source if empty
  std::string grid = "lr=0.003,0.03,0.3,3;batch=32,256;l2=0,0.001";
  int positive_class = 6;  // shirt vs the rest: the hardest Fashion-MNIST class
  uint64_t epochs = 10;
  uint32_t workers = 1, concurrency = 2;
  uint32_t limit = 0;     // images per split (0: all)
  std::string backend = "threads";
  double eval_every = 0.25;
  double eta = 0, min_progress = 0;  // asha's, when > 0 (else `overcast tune`'s defaults)
  double curve_margin = -1;          // curve's --margin, when >= 0  // seconds between a trial's test evaluations (what stopping sees)
  bool progress = true;
};

// {"bench":"tune","figures":{...},"ratios":{...}}: for each policy the best test log-loss and
// the worker-seconds used; ratios of both against the full grid (bench/README.md).
Status RunTuneBench(const TuneBenchOptions& options, nlohmann::json* result);

}  // namespace overcast::bench
