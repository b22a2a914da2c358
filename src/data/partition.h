// One dataset partition: rows in CSR form, and its checksummed binary encoding (docs/formats.md).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace overcast::data {

// Rows in compressed-sparse-row form. Feature ids are 0-based uint32 (a LIBSVM index i is id
// i-1), strictly increasing within a row. Labels and values are float32.
struct Partition {
  std::vector<float> labels;         // one per row
  std::vector<uint64_t> offsets{0};  // rows+1 entries; row r is [offsets[r], offsets[r+1])
  std::vector<uint32_t> ids;         // nnz entries
  std::vector<float> values;         // nnz entries

  size_t rows() const { return labels.size(); }
  size_t nnz() const { return ids.size(); }
  // Empties the partition but keeps its capacity, so a reused Partition stops allocating.
  void Clear() {
    labels.clear();
    offsets.assign(1, 0);
    ids.clear();
    values.clear();
  }
  // Appends one row (ids must be strictly increasing).
  void AddRow(float label, std::span<const uint32_t> row_ids, std::span<const float> row_values) {
    labels.push_back(label);
    ids.insert(ids.end(), row_ids.begin(), row_ids.end());
    values.insert(values.end(), row_values.begin(), row_values.end());
    offsets.push_back(ids.size());
  }
  // Appends rows [r0, r1) of `other`: one copy per array, offsets rebased.
  void AppendRowsFrom(const Partition& other, size_t r0, size_t r1) {
    const uint64_t b = other.offsets[r0], e = other.offsets[r1];
    const uint64_t base = ids.size();
    labels.insert(labels.end(), other.labels.begin() + r0, other.labels.begin() + r1);
    ids.insert(ids.end(), other.ids.begin() + b, other.ids.begin() + e);
    values.insert(values.end(), other.values.begin() + b, other.values.begin() + e);
    for (size_t r = r0 + 1; r <= r1; ++r) offsets.push_back(other.offsets[r] - b + base);
  }
  // Appends row r of `other`.
  void AppendRowFrom(const Partition& other, size_t r) {
    uint64_t b = other.offsets[r], e = other.offsets[r + 1];
    AddRow(other.labels[r], {other.ids.data() + b, e - b}, {other.values.data() + b, e - b});
  }
};

enum class Compression : uint32_t { kNone = 0, kZstd = 1 };

// The fixed 64-byte header at the start of every partition object.
struct PartitionHeader {
  static constexpr char kMagic[8] = {'O', 'C', 'C', 'S', 'R', 'P', 'T', '1'};
  static constexpr uint32_t kVersion = 1;
  static constexpr size_t kSize = 64;
  uint32_t version = kVersion;
  Compression compression = Compression::kNone;
  uint64_t rows = 0;
  uint64_t nnz = 0;
  uint64_t raw_bytes = 0;         // payload size before compression
  uint64_t stored_bytes = 0;      // payload size in the object
  uint64_t payload_checksum = 0;  // XXH3-64 of the stored payload
};

// The uncompressed payload size for a partition of these counts.
inline uint64_t PartitionRawBytes(uint64_t rows, uint64_t nnz) {
  return 8 * (rows + 1) + 4 * rows + 8 * nnz;
}

// Encodes `p` into `*out` (replacing its contents): header, then the payload (offsets, labels,
// ids, values), zstd-compressed at `zstd_level` when asked. Returns the payload checksum, which
// the manifest records for this partition.
Result<uint64_t> EncodePartition(const Partition& p, Compression compression, int zstd_level,
                                 std::string* out);

// Parses and checks the header only (magic, version, header checksum, sizes).
Result<PartitionHeader> DecodePartitionHeader(std::string_view bytes);

// Decodes an object made by EncodePartition into `*p` (reusing its capacity), verifying the
// header checksum, the payload checksum, that it equals `expected_checksum` (unless 0) and the
// CSR invariants: offsets start at 0, never decrease and end at nnz; ids strictly increase within
// a row and are < num_features (unless 0). Any failure is a Corruption error.
Status DecodePartition(std::string_view bytes, uint64_t expected_checksum, uint64_t num_features,
                       Partition* p);

}  // namespace overcast::data
