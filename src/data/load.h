// Loading a text file into a dataset: parallel, ordered, bounded-memory parsing into partitions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "data/dataset.h"
#include "data/parse.h"
#include "data/store.h"

namespace overcast::data {

struct LoadProgress {
  std::string input;           // the file being read
  uint64_t input_bytes = 0;    // bytes of the file consumed (compressed bytes for gzip)
  uint64_t input_size = 0;     // the file's size, 0 if unknown (a pipe)
  uint64_t text_bytes = 0;     // text bytes parsed so far (all inputs)
  uint64_t rows = 0;
  uint64_t bad_lines = 0;
  double seconds = 0;
};

struct LoadOptions {
  Format format = Format::kLibsvm;
  std::string input;             // a path, or "-" for standard input
  std::string test_input;        // optional: the test split comes from this file
  double test_fraction = 0;      // else this fraction of rows (by a seeded hash) is the test split
  uint64_t seed = 1;
  std::string dataset;
  std::string task = "auto";     // auto | classification | regression
  uint64_t partition_rows = 16384;
  uint64_t partition_max_bytes = 16 << 20;  // a partition also closes at this payload size
  DatasetWriter::Options writer;
  bool skip_bad_lines = false;
  int threads = 0;               // parse/encode threads; 0 = one per core
  size_t chunk_bytes = 4 << 20;  // text handed to a parser at a time
  size_t max_line_bytes = 256 << 20;
  CsvOptions csv;
  // Called from the calling thread about twice a second, and once at the end.
  std::function<void(const LoadProgress&)> progress;
};

struct LoadResult {
  uint64_t train_rows = 0, test_rows = 0, nnz = 0;
  uint64_t num_features = 0, num_classes = 0, partitions = 0;
  uint64_t bad_lines = 0;
  uint64_t text_bytes = 0;   // text parsed (after gzip decompression)
  uint64_t input_bytes = 0;  // bytes read from the files
  uint64_t stored_bytes = 0;
  double seconds = 0;
  std::vector<std::string> bad_line_samples;  // "file:line:column: ..." (with skip_bad_lines)
  nlohmann::json manifest;
};

// Parses options.input (and options.test_input) and writes dataset options.dataset to `store`.
// Bad input is InvalidArgument "file:line:column: expected X, found Y"; on any error, nothing
// of the dataset is left in the store. Memory stays bounded by a few chunks and partitions per
// thread, whatever the input size.
Result<LoadResult> LoadDataset(Store& store, const LoadOptions& options);

// "binary", "multiclass" or "regression" from the label statistics and the requested task;
// fills the manifest's "label" object and returns the number of classes (0 for regression).
Result<uint64_t> DescribeLabels(const LabelStats& labels, const std::string& task, Format format,
                                nlohmann::json* label);

}  // namespace overcast::data
