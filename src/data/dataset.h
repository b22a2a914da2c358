// Datasets in a Store: the manifest, writing a dataset atomically, and reading its partitions.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "data/partition.h"
#include "data/store.h"

namespace overcast::data {

// Objects of dataset NAME live under "datasets/NAME/": the manifest "manifest.json" and
// partitions "<run>-<split>-<index>.ocp". A dataset exists iff its manifest does.
std::string DatasetPrefix(const std::string& name);
std::string ManifestObject(const std::string& name);
// Dataset names: letters, digits, '.', '_' and '-', starting with a letter or digit, <= 128.
Status ValidateDatasetName(const std::string& name);

enum class Split { kTrain, kTest };
std::string_view SplitName(Split split);
Result<Split> ParseSplit(std::string_view name);  // "train" | "test"

struct PartitionRef {
  std::string object;  // store object name
  Split split = Split::kTrain;
  uint64_t rows = 0, nnz = 0, bytes = 0;
  uint64_t checksum = 0;  // XXH3-64 of the payload, as in the partition header
};

// The parsed manifest (docs/formats.md). `json` keeps the whole document, including what this
// struct does not model (schema details, normalization statistics).
struct Manifest {
  std::string name;
  uint64_t num_features = 0;
  uint64_t num_classes = 0;  // 0 for regression
  std::vector<PartitionRef> partitions;
  nlohmann::json json;

  uint64_t rows(Split split) const;
  uint64_t nnz(Split split) const;
  std::vector<const PartitionRef*> PartitionsOf(Split split) const;
};

std::string ChecksumHex(uint64_t checksum);
Result<uint64_t> ParseChecksumHex(const std::string& hex);

Result<Manifest> ReadManifest(Store& store, const std::string& name);
// Builds the struct from a manifest document, checking that every field it needs is present.
Result<Manifest> ManifestFromJson(const std::string& name, const nlohmann::json& doc);

// Reads one partition and verifies it against the manifest; errors name the object.
// `scratch` holds the encoded bytes (pass the same string each time to reuse its memory).
Status ReadPartition(Store& store, const Manifest& manifest, const PartitionRef& ref,
                     Partition* out, std::string* scratch);

Status ListDatasets(Store& store, std::vector<std::string>* names);
// Removes the manifest first (the dataset stops existing), then its partitions.
Status RemoveDataset(Store& store, const std::string& name);

// Writes one dataset: partitions first, under names no other writer uses, and the manifest
// last, so the dataset appears whole or not at all. If the writer is destroyed without a
// successful Commit (an error, an exception), every object it wrote is removed again.
// WritePartition may be called from several threads at once; Create/Commit from one.
class DatasetWriter {
 public:
  struct Options {
    Compression compression = Compression::kZstd;
    int zstd_level = 1;
    bool overwrite = false;  // replace an existing dataset of that name
  };
  // InvalidArgument if the name is invalid or (without overwrite) the dataset exists. Objects
  // left under the name by a crashed writer (partitions, no manifest) are removed.
  static Result<std::unique_ptr<DatasetWriter>> Create(Store* store, const std::string& name,
                                                       const Options& options);
  ~DatasetWriter();

  // Encodes and stores partition `index` of `split`; `scratch` is reused encoding memory.
  Result<PartitionRef> WritePartition(Split split, uint64_t index, const Partition& p,
                                      std::string* scratch);
  // Adds "name", "partitions" (sorted by split, then index; pass them in any order) and the
  // format fields to `manifest`, stores it, then removes a replaced dataset's old partitions.
  Status Commit(nlohmann::json manifest, std::vector<PartitionRef> partitions);
  // Removes everything written so far (also done by the destructor when not committed).
  void Abort();

  const std::string& name() const { return name_; }

 private:
  DatasetWriter(Store* store, std::string name, Options options, std::string run);
  Store* store_;
  std::string name_;
  Options options_;
  std::string run_;
  std::mutex mu_;
  std::vector<std::string> written_;  // guarded by mu_
  bool committed_ = false;
};

}  // namespace overcast::data
