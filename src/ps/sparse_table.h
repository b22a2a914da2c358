// A sparse table shard: uint64 key -> fixed-stride row of floats, open addressing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/hash.h"

namespace overcast::ps {

// Each slot holds a key and its row side by side, in one flat array of 8-byte words (linear
// probing, load factor at most 4/5, growing by half): a lookup touches one cache line, not one
// in a key array and another in a row array. Measured on a shard holding 256k rows of a
// 1M-id space: a pull of 4,000 random keys went from 62-66 to 55-60 us (push about the same,
// its optimizer's arithmetic dominates). The load stays above 8/15, so a table
// of n keys costs at most 8 * (1 + ceil(s/2)) * 15/8 bytes per key for rows of s floats, with
// no allocation per key. The key ~0 cannot mark an empty slot and itself, so it has a row of
// its own. Not thread-safe: a shard belongs to one thread.
class SparseTable {
 public:
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  explicit SparseTable(size_t stride, size_t initial_capacity = 1024);

  size_t size() const { return size_; }
  size_t stride() const { return stride_; }
  size_t capacity() const { return capacity_; }
  size_t memory_bytes() const {
    return slots_.capacity() * sizeof(uint64_t) + special_row_.capacity() * sizeof(float);
  }

  // Slot hash: the key mixed, then Fibonacci-hashed to the table size.
  static uint64_t Hash(uint64_t key) { return MixKey(key); }

  // The row for `key`, or nullptr. `h` is Hash(key), passed in so batch loops can prefetch.
  float* Find(uint64_t key, uint64_t h);
  float* Find(uint64_t key) { return Find(key, Hash(key)); }
  // The row for `key`, inserted zeroed when absent (*inserted tells which).
  float* FindOrInsert(uint64_t key, uint64_t h, bool* inserted);
  float* FindOrInsert(uint64_t key, bool* inserted) { return FindOrInsert(key, Hash(key), inserted); }
  // Brings the key's first slot (key and row) into cache ahead of a Find.
  void Prefetch(uint64_t h) const { __builtin_prefetch(&slots_[Slot(h) * words_]); }

  void Reserve(size_t n);

  // Calls f(key, const float* row) for every row, in no particular order.
  template <typename F>
  void ForEach(F&& f) const {
    for (size_t i = 0; i < capacity_; ++i) {
      if (Key(i) != kEmpty) f(Key(i), Row(i));
    }
    if (has_special_) f(kEmpty, special_row_.data());
  }

 private:
  // Maps the hash onto [0, capacity) by multiply-shift, so the capacity need not be a power
  // of two (growing by half keeps memory within twice the raw bytes).
  size_t Slot(uint64_t h) const {
    return static_cast<size_t>((static_cast<unsigned __int128>(h * 0x9E3779B97F4A7C15ULL) *
                                capacity_) >> 64);
  }
  size_t NextSlot(size_t i) const { return i + 1 == capacity_ ? 0 : i + 1; }
  uint64_t Key(size_t i) const { return slots_[i * words_]; }
  // The row's floats live in the slot's words after the key (never read as integers).
  float* Row(size_t i) { return reinterpret_cast<float*>(&slots_[i * words_ + 1]); }
  const float* Row(size_t i) const {
    return reinterpret_cast<const float*>(&slots_[i * words_ + 1]);
  }
  void Grow();
  void GrowInto(size_t capacity);

  size_t stride_;
  size_t words_;  // per slot: the key, then ceil(stride / 2) words of row
  size_t size_ = 0;
  size_t capacity_ = 0;
  std::vector<uint64_t> slots_;
  bool has_special_ = false;
  std::vector<float> special_row_;
};

}  // namespace overcast::ps
