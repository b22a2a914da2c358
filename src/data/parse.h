// Parsers for the text formats `overcast load` reads (LIBSVM, CSV, ratings), one chunk of whole
// lines at a time so that chunks can be parsed in parallel and merged in order.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "data/partition.h"

namespace overcast::data {

enum class Format { kLibsvm, kCsv, kRatings };
Result<Format> ParseFormat(std::string_view name);  // "libsvm", "csv", "ratings"
std::string_view FormatName(Format format);

// How the columns of a CSV file become a label and features. Built by ResolveCsvLayout.
struct CsvLayout {
  enum class Kind : uint8_t { kLabel, kNumeric, kCategorical, kIgnored };
  char delimiter = ',';
  size_t label_column = 0;
  std::vector<Kind> kinds;            // one per column
  std::vector<std::string> names;     // header names, or "column<i>" (1-based) without a header
  std::vector<uint32_t> feature_id;   // a numeric column's feature id (column order, from 0)
  std::vector<uint64_t> column_salt;  // mixed into a categorical column's hash
  uint32_t num_numeric = 0;
  int hash_bits = 0;  // categorical values hash to num_numeric + [0, 2^hash_bits)
  bool has_header = false;

  size_t num_columns() const { return kinds.size(); }
  uint64_t num_features() const {
    bool any_categorical = false;
    for (Kind k : kinds) any_categorical |= k == Kind::kCategorical;
    return num_numeric + (any_categorical ? (uint64_t{1} << hash_bits) : 0);
  }
};

struct CsvOptions {
  std::string label_column = "0";     // a header name, or a 0-based column index
  std::string header = "auto";        // auto | yes | no
  std::vector<std::string> categorical;  // names, indices or index ranges "a-b"
  std::vector<std::string> ignore;       // columns to drop, same syntax
  int hash_bits = 20;
  char delimiter = ',';
};

// Decides the layout from the first line of the file. With header "auto", the first line is a
// header when none of its fields parses as a number. Errors (InvalidArgument) name `source`.
Result<CsvLayout> ResolveCsvLayout(std::string_view first_line, const CsvOptions& options,
                                   const std::string& source);

// True when the first line of a ratings file is a header ("userId,movieId,rating,timestamp"):
// its first field is not an integer.
bool RatingsLineIsHeader(std::string_view line);

// What the labels look like, gathered while parsing; decides binary/multiclass/regression.
struct LabelStats {
  static constexpr size_t kMaxDistinct = 1000;
  uint64_t count = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  bool all_integer = true;
  bool too_many = false;        // more than kMaxDistinct distinct values
  std::vector<float> distinct;  // sorted, while !too_many

  void Add(float v) {
    ++count;
    if (v == last_) return;  // runs of one label are common: skip the set lookup
    last_ = v;
    AddSlow(v);
  }
  void Merge(const LabelStats& other);
  void AddSlow(float v);

 private:
  float last_ = std::numeric_limits<float>::quiet_NaN();
};

// A malformed line: 1-based line and byte column, and "expected X, found Y".
struct ParseError {
  uint64_t line = 0;
  uint64_t column = 0;
  std::string message;
};

struct ParserConfig {
  Format format = Format::kLibsvm;
  CsvLayout csv;                // for kCsv
  bool skip_bad_lines = false;  // else parsing stops at the first bad line
};

// The rows parsed from one chunk, with what the merge step needs to know about them.
struct ParsedChunk {
  static constexpr size_t kMaxSamples = 5;
  Partition rows;
  uint64_t lines = 0;  // lines in the chunk (when parsing did not stop at an error)
  uint64_t bad_lines = 0;
  std::vector<ParseError> errors;  // the first error (when not skipping), or up to kMaxSamples
  LabelStats labels;
  uint64_t id_limit = 0;  // 1 + the largest feature id seen (0 if none)
  uint64_t max_user = 0, max_item = 0;  // ratings: the largest ids seen
  bool any_rating = false;

  void Clear() {
    rows.Clear();
    lines = 0;
    bad_lines = 0;
    errors.clear();
    labels = LabelStats();
    id_limit = 0;
    max_user = max_item = 0;
    any_rating = false;
  }
};

// Parses the whole lines of `text`, the first of them numbered `first_line`, appending the rows
// to out->rows. Blank lines (and, in LIBSVM, lines starting with '#') are skipped. Without
// skip_bad_lines, parsing stops at the first bad line and out->errors holds it.
void ParseChunk(const ParserConfig& config, std::string_view text, uint64_t first_line,
                ParsedChunk* out);

// Ratings rows use an interleaved feature layout, so one uint32 id space holds both kinds of
// key: user u is feature 2u, item i is feature 2i+1 (both with value 1).
constexpr uint64_t kMaxRatingsId = (uint64_t{1} << 31) - 1;

}  // namespace overcast::data
