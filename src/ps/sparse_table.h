// A sparse table shard: uint64 key -> fixed-stride row of floats, open addressing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/hash.h"

namespace overcast::ps {

// Keys and rows live in two flat arrays indexed by slot (linear probing, load factor at most
// 4/5, growing by half), so the load stays above 8/15 and a table of n keys of s floats costs
// at most (8 + 4s) * 15/8 bytes per key, with no allocation per key. The key ~0 cannot mark an empty slot and itself, so it has a row of its
// own. Not thread-safe: a shard belongs to one thread.
class SparseTable {
 public:
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  explicit SparseTable(size_t stride, size_t initial_capacity = 1024);

  size_t size() const { return size_; }
  size_t stride() const { return stride_; }
  size_t capacity() const { return keys_.size(); }
  size_t memory_bytes() const {
    return keys_.capacity() * sizeof(uint64_t) + vals_.capacity() * sizeof(float) +
           special_row_.capacity() * sizeof(float);
  }

  // Slot hash: the key mixed, then Fibonacci-hashed to the table size.
  static uint64_t Hash(uint64_t key) { return MixKey(key); }

  // The row for `key`, or nullptr. `h` is Hash(key), passed in so batch loops can prefetch.
  float* Find(uint64_t key, uint64_t h);
  float* Find(uint64_t key) { return Find(key, Hash(key)); }
  // The row for `key`, inserted zeroed when absent (*inserted tells which).
  float* FindOrInsert(uint64_t key, uint64_t h, bool* inserted);
  float* FindOrInsert(uint64_t key, bool* inserted) { return FindOrInsert(key, Hash(key), inserted); }
  // Brings the key's first slot into cache ahead of a Find.
  void Prefetch(uint64_t h) const {
    __builtin_prefetch(&keys_[Slot(h)]);
  }

  void Reserve(size_t n);

  // Calls f(key, const float* row) for every row, in no particular order.
  template <typename F>
  void ForEach(F&& f) const {
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] != kEmpty) f(keys_[i], &vals_[i * stride_]);
    }
    if (has_special_) f(kEmpty, special_row_.data());
  }

 private:
  // Maps the hash onto [0, capacity) by multiply-shift, so the capacity need not be a power
  // of two (growing by half keeps memory within twice the raw bytes).
  size_t Slot(uint64_t h) const {
    return static_cast<size_t>((static_cast<unsigned __int128>(h * 0x9E3779B97F4A7C15ULL) *
                                keys_.size()) >> 64);
  }
  size_t NextSlot(size_t i) const { return i + 1 == keys_.size() ? 0 : i + 1; }
  void Grow();
  void GrowInto(size_t capacity);

  size_t stride_;
  size_t size_ = 0;
  std::vector<uint64_t> keys_;
  std::vector<float> vals_;
  bool has_special_ = false;
  std::vector<float> special_row_;
};

}  // namespace overcast::ps
