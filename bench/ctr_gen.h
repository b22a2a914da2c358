// `overcast bench gen-ctr`: a CTR-style sparse dataset from a documented model whose best
// achievable log-loss is known (bench/suite/README.md describes the model).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace overcast::bench {

struct CtrGenOptions {
  uint64_t rows = 10'000'000;   // train rows
  uint64_t test_rows = 1'000'000;
  uint32_t fields = 26;         // categorical fields, one value per field per row
  uint32_t min_vocab = 4;       // field 0's vocabulary; later fields grow geometrically
  uint32_t max_vocab = 20000;   // to the last field's
  double zipf = 1.1;            // value frequencies within a field: P(rank r) ~ 1 / r^zipf
  uint32_t hash_bits = 22;      // feature index = 1 + hash(field, value) mod 2^hash_bits
  // > 0: each field hashes into a block of its own, index = 1 + field * 2^field_bits +
  // hash(field, value) mod 2^field_bits (a feature's field is (index - 1) >> field_bits, which
  // crosses need; hash_bits is then unused).
  uint32_t field_bits = 0;
  // Both set (field_bits > 0): copies of the two splits with the interacting pairs crossed, for
  // peers without crosses of their own: each row also has, for each pair (2k, 2k+1), the feature
  // 1 + fields * 2^field_bits + MixKey((index_a << 32) | index_b) mod 2^cross_bits (value 1).
  std::string cross_train_path, cross_test_path;
  uint32_t cross_bits = 18;
  double bias = -1.2;           // true intercept
  double weight_std = 0.4;      // true weight of (field, value) ~ N(0, weight_std^2)
  uint32_t pairs = 6;           // interacting field pairs: (0,1), (2,3), ...
  double pair_std = 0.1;        // true interaction of (f=v, g=w) ~ N(0, pair_std^2)
  uint64_t seed = 42;
  std::string train_path, test_path;  // LIBSVM output ("0|1 idx:val ...", ascending indices)
};

// Writes both files (atomically: temporary names, then rename) and fills `summary` with the
// model and its figures: rows, nnz, positive rate, and the optimal log-loss (the mean Bernoulli
// entropy of the true probabilities) on each split.
Status GenerateCtr(const CtrGenOptions& options, nlohmann::json* summary);

}  // namespace overcast::bench
