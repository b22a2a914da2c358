// The tuner's journal: every trial's state, rewritten atomically whenever one changes, so that
// a search started again with the same journal (after the tuner was killed, or to add budget)
// goes on where the last one stopped instead of training its finished trials again.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace overcast::tune {

struct Trial;
struct TuneOptions;

// What must be equal for a journal to apply: the data, the model, the space, the budget, the
// fixed parameters, the metric and the early-stopping policy.
nlohmann::json SearchKey(const TuneOptions& o);

// A trial the journal keeps: it ended for good (done, or stopped and not waiting to resume).
// Trials that were running, waiting at a pause or failed start over: a paused trial's state
// lived in the parameter server, which a restarted tuner does not have.
bool IsFinal(const Trial& t);

// Writes every trial's state; `best_model_trial` names the trial whose model is saved beside
// the journal (BestModelPath), -1 for none.
Status WriteJournal(const std::string& path, const nlohmann::json& key,
                    const std::vector<Trial>& trials, int best_model_trial);

struct JournalState {
  std::vector<Trial> finished;  // final trials, with id, params, status, metric, test, ...
  int best_model_trial = -1;
};
// NotFound when there is no journal yet; InvalidArgument (one line, with the path) when it is
// malformed or belongs to another search.
Result<JournalState> ReadJournal(const std::string& path, const nlohmann::json& key);

// Where the model of the journal's best final trial is kept.
std::string BestModelPath(const std::string& journal);

}  // namespace overcast::tune
