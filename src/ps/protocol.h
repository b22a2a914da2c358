// Parameter-server messages: types and payload layouts (docs/wire_protocol.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/hash.h"
#include "common/status.h"
#include "ps/table_spec.h"

namespace overcast::ps {

enum PsMessage : uint8_t {
  kCreateTable = 16,  // spec                          -> empty
  kDropTable = 17,    // name                          -> empty
  kDescribe = 18,     // name                          -> spec
  kPull = 19,         // name, n, keys[n]               -> floats[n * dim]
  kPush = 20,         // name, n, keys[n], grads[n*dim] -> empty
  kPullDense = 21,    // name, offset, count            -> floats[count]
  kPushDense = 22,    // name, offset, count, grads     -> empty
  kBlobGet = 23,      // key                           -> value
  kBlobSet = 24,      // key, value                    -> empty
  kBlobDelete = 25,   // key                           -> empty
  kBarrier = 26,      // name, parties                 -> empty, once `parties` have arrived
  kCheckpoint = 27,   // empty                         -> seq
  kStats = 28,        // empty                         -> JSON text
  kBlobCreate = 29,   // key, value -> empty; AlreadyExists if the key is taken (set if absent)
};
inline constexpr uint8_t kFirstPsMessage = kCreateTable;
inline constexpr uint8_t kLastPsMessage = kBlobCreate;

std::string_view MessageName(uint8_t type);

// Table names are padded so that the arrays after them start 8-byte aligned in the payload.
void PutName(ByteWriter* w, std::string_view name);
Status GetName(ByteReader* r, std::string* name);

// A decoded sparse request: views into the request payload, which must outlive it.
struct SparseRequest {
  std::string table;
  uint64_t n = 0;
  const char* keys = nullptr;   // n little-endian uint64
  const char* grads = nullptr;  // n * dim floats (push only)
};
// Decodes a pull (dim = 0: no gradients) or push payload.
Status DecodeSparse(std::string_view payload, bool with_grads, uint32_t dim_if_known,
                    SparseRequest* req);
// Reads only the table name, to look up the dim before DecodeSparse.
Status PeekTable(std::string_view payload, std::string* table);

struct DenseRequest {
  std::string table;
  uint64_t offset = 0, count = 0;
  const char* grads = nullptr;  // count floats (push only)
};
Status DecodeDense(std::string_view payload, bool with_grads, DenseRequest* req);

inline uint64_t LoadU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Routing: which server of `n` owns a key, and which shard of `s` inside it. Both come from
// one mixed hash, using independent bits, so server and shard choices do not correlate.
inline uint32_t ServerOf(uint64_t mixed, uint32_t n) {
  return static_cast<uint32_t>(((mixed >> 32) * n) >> 32);
}
inline uint32_t ShardOf(uint64_t mixed, uint32_t s) {
  return static_cast<uint32_t>(((mixed & 0xffffffffULL) * s) >> 32);
}
inline uint64_t BlobHash(std::string_view key) { return MixKey(Checksum64(key)); }

// Dense tables are split by contiguous ranges: server i of n owns [Begin(i), Begin(i+1)).
inline uint64_t DenseBegin(uint64_t length, uint32_t i, uint32_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(length) * i) / n);
}

}  // namespace overcast::ps
