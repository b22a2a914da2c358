// What a table is: its kind, width, optimizer and initializer, as created by a client.
#pragma once

#include <cstdint>
#include <string>

#include "common/bytes.h"
#include "common/status.h"

namespace overcast::ps {

enum class TableKind : uint8_t { kSparse = 0, kDense = 1 };
enum class OptimizerKind : uint8_t { kAdd = 0, kSgd = 1, kAdagrad = 2, kFtrl = 3, kAdam = 4 };
enum class InitKind : uint8_t { kZeros = 0, kConstant = 1, kUniform = 2, kNormal = 3 };

// Server-side update rule applied to every pushed gradient g (l2 adds l2*w to g first;
// l1 is applied proximally by FTRL and as a subgradient by SGD).
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  float lr = 0.1f;
  float l1 = 0.0f;
  float l2 = 0.0f;
  float beta1 = 0.9f;     // adam
  float beta2 = 0.999f;   // adam
  float eps = 1e-8f;      // adagrad, adam
  float ftrl_beta = 1.0f; // ftrl: lr is alpha
};

// Initial weights of a row created on first touch: a pure function of (seed, key, column),
// so every server, restart and reader agrees on a row that was never pushed.
struct Initializer {
  InitKind kind = InitKind::kZeros;
  float a = 0.0f;  // constant value; uniform low; normal mean
  float b = 0.0f;  // uniform high; normal standard deviation
  uint64_t seed = 0;
};

struct TableSpec {
  std::string name;
  TableKind kind = TableKind::kSparse;
  uint32_t dim = 1;       // sparse: floats per row the client sees
  uint64_t length = 0;    // dense: number of floats in the whole table
  OptimizerConfig optimizer;
  Initializer init;
  // Dense tables are split by range over servers; this server's part (set by the client).
  uint64_t begin = 0, end = 0;
};

Status ValidateSpec(const TableSpec& spec);
void EncodeSpec(const TableSpec& spec, ByteWriter* w);
Status DecodeSpec(ByteReader* r, TableSpec* spec);

Result<OptimizerKind> ParseOptimizer(const std::string& name);
std::string OptimizerName(OptimizerKind kind);

// Number of optimizer-state floats kept beside `n` weights.
size_t StateFloats(OptimizerKind kind, size_t n);
// Floats per stored sparse row: weights plus state (adam adds its step counter).
inline size_t RowStride(const OptimizerConfig& o, uint32_t dim) {
  return dim + StateFloats(o.kind, dim) + (o.kind == OptimizerKind::kAdam ? 1 : 0);
}

// Value of column j of the row for `key`.
float InitialValue(const Initializer& init, uint64_t key, uint32_t j);

}  // namespace overcast::ps
