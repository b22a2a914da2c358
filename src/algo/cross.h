// Feature crosses for the linear models (the "wide" part of a CTR model; Vowpal Wabbit's -q):
// a logistic regression over a row's features and over hashed products of chosen field pairs,
// so that a linear model can learn pairwise interactions.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "data/minibatch.h"

namespace overcast::algo {

// A feature's field is its 0-based id >> field_bits (field_bits 0: every feature is its own
// field). For each listed pair of fields (a, b), every pair of a row's entries i, j with
// field(id_i) == a and field(id_j) == b adds one entry to the row: id
// base + hash(id_i, id_j) mod 2^bits, value x_i * x_j.
class Crosses {
 public:
  Crosses() = default;
  // spec: "AxB" pairs separated by ',' or '+' ("0x1,2x3"); "" is no crosses. InvalidArgument
  // for a malformed spec, or when base + 2^bits does not fit a 32-bit feature id.
  static Result<Crosses> Make(const std::string& spec, uint32_t field_bits, uint32_t bits,
                              uint64_t base);
  // What is wrong with `spec` ("" when it parses): the parameter's own check.
  static std::string Check(const std::string& spec);

  bool empty() const { return pairs_.empty(); }
  // Ids the crosses may take: [base, base + keys()); 0 when empty.
  uint64_t keys() const { return empty() ? 0 : uint64_t{1} << bits_; }

  // `out` = `in` with each row's crossed entries appended after its own (so ids are no longer
  // increasing within a row). Entries with id >= `limit` are dropped and never crossed (ids a
  // model does not know). A row of `in` whose ids are not increasing (a request's row) is
  // sorted first.
  void Expand(const data::Minibatch& in, uint64_t limit, data::OwnedMinibatch* out) const;

 private:
  std::vector<std::pair<uint32_t, uint32_t>> pairs_;
  uint32_t field_bits_ = 0, bits_ = 0;
  uint64_t base_ = 0;
};

}  // namespace overcast::algo
