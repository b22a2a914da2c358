// Models as the server sees them: a Predictor over CSR batches, and the one loader of model files.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace overcast::serve {

enum class Task { kBinary, kMulticlass, kRegression, kClustering };
const char* TaskName(Task t);

// A batch of sparse rows in CSR form. Buffers are reused between batches (clear() keeps capacity).
struct SparseBatch {
  std::vector<uint32_t> offsets{0};  // rows() + 1 entries
  std::vector<uint64_t> ids;
  std::vector<float> values;

  size_t rows() const { return offsets.size() - 1; }
  void clear() {
    offsets.assign(1, 0);
    ids.clear();
    values.clear();
  }
  void EndRow() { offsets.push_back(static_cast<uint32_t>(ids.size())); }
};

struct ModelInfo {
  std::string name;
  Task task = Task::kBinary;
  uint64_t num_features = 0;
  uint32_t num_classes = 2;  // 2 for binary, K for multiclass, 1 for regression, clusters
  double accuracy = -1;      // measured on held-out data when known, else -1
  // Variants of one task share a group (e.g. "fmnist" for a softmax and a larger model of it);
  // a request to the group may ask for a minimum accuracy. Defaults to the name.
  std::string group;
  // The label value of each class index when the model knows them (e.g. -1, +1), else empty.
  std::vector<double> class_values;
};

// Output per row: for binary and multiclass, num_classes probabilities; for regression, 1 value;
// for clustering, the squared distance to the nearest centre and that centre's index.
inline uint32_t OutputsPerRow(const ModelInfo& m) {
  return m.task == Task::kRegression ? 1 : m.task == Task::kClustering ? 2 : m.num_classes;
}

// Thread-safe after construction: Predict is const and may run on many threads at once.
class Predictor {
 public:
  virtual ~Predictor() = default;
  virtual const ModelInfo& info() const = 0;
  // Writes rows() x OutputsPerRow(info()) numbers to `out` (resized). Ids must already have been
  // checked against num_features (ValidateBatch).
  virtual void Predict(const SparseBatch& batch, std::vector<float>* out) const = 0;
};

// Checks rows [first_row, rows()): InvalidArgument naming the row (counted from first_row) and
// the id when an id is >= num_features or a value is not finite.
Status ValidateBatch(const ModelInfo& info, const SparseBatch& batch, size_t first_row = 0);

// Linear model: scores = x W + b with W row-major [num_features][outputs]; sigmoid for binary
// (one score column), softmax for multiclass, identity for regression.
class LinearPredictor final : public Predictor {
 public:
  LinearPredictor(ModelInfo info, std::vector<float> weights, std::vector<float> bias);
  // x' = (x - shift[j]) * scale[j] on the stored entries of features j < shift.size(), before
  // scoring (the normalisation a model trained on a normalised dataset expects).
  void SetNormalization(std::vector<float> shift, std::vector<float> scale);
  const ModelInfo& info() const override { return info_; }
  void Predict(const SparseBatch& batch, std::vector<float>* out) const override;
  uint32_t score_columns() const { return cols_; }
  std::span<const float> weights() const { return w_; }
  std::span<const float> bias() const { return b_; }

 private:
  ModelInfo info_;
  uint32_t cols_;  // 1 for binary and regression, num_classes for multiclass
  std::vector<float> w_, b_;
  std::vector<float> shift_, scale_;  // empty: no normalisation
};

// The single place where a model file becomes a Predictor. Reads two formats:
//  - "OCMODEL1": what `overcast train --out` writes (docs/formats.md), every algorithm, scored
//    by algo::Scorer. Name: metadata "name", else the file name without extension; group:
//    metadata "dataset"; accuracy (classifiers): training.test_accuracy.
//  - "OVERCAST-MODEL 1": the serving format of src/serve/README.md (make-model, tests).
// Errors name the file and what was wrong.
Result<std::unique_ptr<Predictor>> LoadModel(const std::string& path);

// Writes a linear model file (used by tests, benches, and until training exports models).
Status WriteLinearModel(const std::string& path, const ModelInfo& info,
                        std::span<const float> weights, std::span<const float> bias);

// A random linear model for tests and benchmarks (deterministic in `seed`).
Status WriteRandomLinearModel(const std::string& path, const std::string& name, Task task,
                              uint64_t num_features, uint32_t num_classes, uint64_t seed,
                              const std::string& group = "", double accuracy = -1);

}  // namespace overcast::serve
