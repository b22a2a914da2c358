// Feature scaling as a job over partitions: a parallel statistics pass over the train split,
// then a parallel transform pass that writes a new dataset with the statistics in its manifest.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "data/dataset.h"
#include "data/store.h"

namespace overcast::data {

// Per-feature statistics over the n rows of a split, counting a feature absent from a row as
// the value 0 (so they describe the matrix a sparse file stands for).
struct FeatureStats {
  uint64_t rows = 0;
  std::vector<uint64_t> count;  // rows where the feature is stored
  std::vector<double> sum, sumsq;
  std::vector<float> min, max;  // over stored values only; see Finish()

  void Resize(uint64_t num_features);
  void Add(const Partition& p);  // not thread-safe: one FeatureStats per thread, then Merge
  void Merge(const FeatureStats& other);
  // The statistics of feature j, with absent entries counted as zeros.
  double Mean(uint64_t j) const { return rows ? sum[j] / static_cast<double>(rows) : 0.0; }
  double Std(uint64_t j) const;
  double Min(uint64_t j) const;
  double Max(uint64_t j) const;
};

enum class NormalizeMethod { kMinMax, kStandard };
Result<NormalizeMethod> ParseNormalizeMethod(std::string_view name);  // "minmax" | "standard"

// x' = (x - shift) * scale, per feature. Without centring shift is 0 and zeros stay zeros.
//   minmax,   centred:  shift = min,  scale = 1 / (max - min)        -> [0, 1]
//   minmax,   not:      shift = 0,    scale = 1 / max(|min|, |max|)  -> [-1, 1]
//   standard, centred:  shift = mean, scale = 1 / std                -> mean 0, std 1
//   standard, not:      shift = 0,    scale = 1 / std                -> std 1
// A constant feature (range or std 0) keeps scale 1.
struct Transform {
  std::vector<float> shift, scale;
  void Apply(Partition* p) const;
};
Transform MakeTransform(const FeatureStats& stats, NormalizeMethod method, bool center);

struct NormalizeOptions {
  std::string input, output;
  NormalizeMethod method = NormalizeMethod::kStandard;
  bool center = false;  // only for dense datasets: centring fills in a sparse matrix's zeros
  int threads = 0;      // 0: one per core
  DatasetWriter::Options writer;
  // Called from worker threads (serialised), after each partition of each pass.
  std::function<void(const char* pass, size_t done, size_t total)> progress;
};

struct NormalizeResult {
  uint64_t rows = 0, features = 0, partitions = 0;
  double stats_seconds = 0, transform_seconds = 0;
};

// Fits the statistics on the train split of options.input, and writes options.output: the
// same rows (train and test) transformed, its manifest holding "normalization" (method,
// centring, and per-feature shift, scale, min, max, mean, std) for predict to apply.
Result<NormalizeResult> NormalizeDataset(Store& store, const NormalizeOptions& options);

}  // namespace overcast::data
