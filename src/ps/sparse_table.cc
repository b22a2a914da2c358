#include "ps/sparse_table.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include <malloc.h>

namespace overcast::ps {

SparseTable::SparseTable(size_t stride, size_t initial_capacity)
    : stride_(stride), words_(1 + (stride + 1) / 2) {
  GrowInto(std::max<size_t>(initial_capacity, 16));
}

float* SparseTable::Find(uint64_t key, uint64_t h) {
  if (key == kEmpty) return has_special_ ? special_row_.data() : nullptr;
  for (size_t i = Slot(h);; i = NextSlot(i)) {
    uint64_t k = Key(i);
    if (k == key) return Row(i);
    if (k == kEmpty) return nullptr;
  }
}

float* SparseTable::FindOrInsert(uint64_t key, uint64_t h, bool* inserted) {
  *inserted = false;
  if (key == kEmpty) {
    if (!has_special_) {
      has_special_ = true;
      special_row_.assign(stride_, 0.0f);
      ++size_;
      *inserted = true;
    }
    return special_row_.data();
  }
  if ((size_ + 1) * 5 > capacity_ * 4) Grow();
  for (size_t i = Slot(h);; i = NextSlot(i)) {
    uint64_t k = Key(i);
    if (k == key) return Row(i);
    if (k == kEmpty) {
      slots_[i * words_] = key;
      ++size_;
      *inserted = true;
      return Row(i);
    }
  }
}

void SparseTable::Reserve(size_t n) {
  while (n * 5 > capacity_ * 4) Grow();
}

void SparseTable::Grow() {
  GrowInto(capacity_ + capacity_ / 2);
  // The old array is free now; a large table gives its pages back at once (the server keeps
  // freed memory in its heap for reuse, so it would otherwise stay resident).
  if (capacity_ * words_ * sizeof(uint64_t) > (size_t{16} << 20)) malloc_trim(0);
}

void SparseTable::GrowInto(size_t capacity) {
  std::vector<uint64_t> old(capacity * words_, 0);  // rows of 0.0f
  for (size_t i = 0; i < capacity; ++i) old[i * words_] = kEmpty;
  old.swap(slots_);
  const size_t old_capacity = capacity_;
  capacity_ = capacity;
  for (size_t j = 0; j < old_capacity; ++j) {
    const uint64_t key = old[j * words_];
    if (key == kEmpty) continue;
    size_t i = Slot(Hash(key));
    while (Key(i) != kEmpty) i = NextSlot(i);
    std::memcpy(&slots_[i * words_], &old[j * words_], words_ * sizeof(uint64_t));
  }
}

}  // namespace overcast::ps
