// Model files: a self-describing binary (metadata JSON + float tables + XXH3 checksum), written
// atomically, with a JSON sidecar for people (docs/formats.md, "Model files").
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "algo/algorithm.h"
#include "common/status.h"

namespace overcast::algo {

std::string EncodeModel(const Model& model);
// Corruption (naming what is wrong) for a bad magic, version, checksum or structure.
Result<Model> DecodeModel(std::string_view bytes, const std::string& source);

// Writes `path` atomically and `path`.json (the metadata, pretty-printed) beside it.
Status SaveModel(const std::string& path, const Model& model);
// NotFound if absent; InvalidArgument naming the file when it is not a valid model file.
Result<Model> LoadModel(const std::string& path);

// A model ready to score rows, as `predict` and the model server use it: the algorithm rebuilt
// from the model's metadata (registry entry, parameters, dataset info) and the dataset's
// normalization. Const methods are thread-safe.
class Scorer {
 public:
  // InvalidArgument naming `source` when the algorithm is unknown, the parameters or the
  // normalization are malformed, or the tables do not fit the algorithm.
  static Result<Scorer> Open(Model model, const std::string& source);
  static Result<Scorer> Load(const std::string& path);  // LoadModel + Open

  const Model& model() const { return *model_; }
  const Algorithm& algorithm() const { return *algorithm_; }
  const DataInfo& data_info() const { return info_; }
  Task task() const { return algorithm_->task(); }
  size_t outputs() const { return algorithm_->outputs(); }

  // x' = (x - shift[id]) * scale[id] on the stored entries of normalised features, in place
  // (docs/formats.md: what the dataset's rows went through before training).
  void Normalize(std::span<const uint32_t> ids, std::span<float> values) const;
  // Algorithm::Predict: rows() x outputs() numbers into `out` (rows already normalised).
  void Predict(const data::Minibatch& rows, float* out) const {
    algorithm_->Predict(*model_, rows, out);
  }

 private:
  std::unique_ptr<Model> model_;  // heap: the algorithm and callers keep pointers into it
  std::unique_ptr<Algorithm> algorithm_;
  DataInfo info_;
  std::vector<float> shift_, scale_;  // indexed by feature id; empty: no normalization
};

}  // namespace overcast::algo
