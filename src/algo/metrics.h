// Held-out metrics of a model: log-loss, accuracy, AUC, RMSE, k-means objective, as fit the task.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "algo/algorithm.h"
#include "data/partition.h"

namespace overcast::algo {

struct Metrics {
  uint64_t rows = 0;
  std::optional<double> logloss, accuracy, auc, rmse, objective;
  // {"test_logloss": ..} with the given key prefix ("test_").
  nlohmann::json ToJson(const std::string& prefix = "test_") const;
  // The inverse of ToJson (rows stays 0): the keys it wrote, the rest ignored.
  static Metrics FromJson(const nlohmann::json& j, const std::string& prefix = "test_");
  // The metric named like a result key without prefix ("accuracy"), if computed.
  std::optional<double> Get(const std::string& name) const;
};

// Class index of a multiclass label (its position in `classes`), or -1.
int ClassIndex(const std::vector<float>& classes, float label);

// Area under the ROC curve of scores against 0/1 labels (ties count half).
double Auc(const std::vector<float>& scores, const std::vector<uint8_t>& labels);

// Predicts every row of `rows` (in chunks, on `threads` threads) and computes the metrics.
Metrics Evaluate(const Algorithm& algo, const Model& model, const DataInfo& info,
                 const data::Partition& rows, int threads = 1);

// A CSR view over a whole partition (or its rows [r0, r1)).
data::Minibatch View(const data::Partition& p, size_t r0, size_t r1);

}  // namespace overcast::algo
