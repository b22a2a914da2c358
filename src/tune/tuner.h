// `overcast tune`: many training experiments at once on one parameter server, with early
// stopping of the hopeless ones.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "runtime/coordinator.h"
#include "tune/early_stop.h"
#include "tune/space.h"

namespace overcast::tune {

struct TuneOptions {
  runtime::TrainOptions base;  // dataset, model, workers per trial, epochs or seconds, params
  std::string grid;            // one of grid / random
  std::string random;
  uint32_t trials = 0;         // random: draws
  uint64_t seed = 1;
  uint32_t concurrency = 2;    // trials running at once
  EarlyStopOptions early_stop;
  std::string metric;          // lower is better; default by model: logloss, or rmse, objective
  double budget_seconds = 0;   // stop starting trials after this long (0: no limit)
  // Keeps every trial's state here (see journal.h); a search started again with it skips the
  // trials it finished. Empty: none.
  std::string journal;
};

struct Trial {
  int id = 0;
  Assignment params;
  std::string status = "pending";  // pending | running | done | stopped | failed | skipped
  std::string reason;              // why it stopped or failed
  double metric = 0;               // final value of the objective (lower is better)
  double progress = 0;             // fraction of the budget it used
  double worker_seconds = 0;       // workers x seconds it ran
  bool waiting = false;            // stopped at a pause (asha rung, curve warm-up); may resume
  bool restored = false;           // finished by an earlier run of the search (its journal)
  runtime::TrainResult result;     // of a restored trial: its test metrics (and best model)
};

struct TuneResult {
  std::vector<Trial> trials;  // sorted best first (failed and skipped last)
  std::string metric;
  double seconds = 0;
  double worker_seconds = 0;
  nlohmann::json ToJson() const;  // DESIGN.md keys: best_params, trials, worker_seconds, ...
};

// Live view: called whenever a trial reports or changes state, with every trial.
using TuneProgress = std::function<void(const std::vector<Trial>&, double best)>;

// Validates the space against the model's parameters first (InvalidArgument, one line), then
// runs the trials `concurrency` at a time, each a training job on the shared server.
Result<TuneResult> Tune(const TuneOptions& options, const TuneProgress& progress = {});

}  // namespace overcast::tune
