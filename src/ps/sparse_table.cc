#include "ps/sparse_table.h"

#include <algorithm>
#include <bit>

#include <malloc.h>

namespace overcast::ps {

SparseTable::SparseTable(size_t stride, size_t initial_capacity) : stride_(stride) {
  size_t cap = std::max<size_t>(initial_capacity, 16);
  keys_.assign(cap, kEmpty);
  vals_.assign(cap * stride_, 0.0f);
}

float* SparseTable::Find(uint64_t key, uint64_t h) {
  if (key == kEmpty) return has_special_ ? special_row_.data() : nullptr;
  for (size_t i = Slot(h);; i = NextSlot(i)) {
    uint64_t k = keys_[i];
    if (k == key) return &vals_[i * stride_];
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
  if ((size_ + 1) * 5 > keys_.size() * 4) Grow();
  for (size_t i = Slot(h);; i = NextSlot(i)) {
    uint64_t k = keys_[i];
    if (k == key) return &vals_[i * stride_];
    if (k == kEmpty) {
      keys_[i] = key;
      ++size_;
      *inserted = true;
      return &vals_[i * stride_];
    }
  }
}

void SparseTable::Reserve(size_t n) {
  while (n * 5 > keys_.size() * 4) Grow();
}

void SparseTable::Grow() {
  GrowInto(keys_.size() + keys_.size() / 2);
  // The old arrays are free now; a large table gives their pages back at once (the server
  // keeps freed memory in its heap for reuse, so it would otherwise stay resident).
  if (keys_.size() * (sizeof(uint64_t) + stride_ * sizeof(float)) > (size_t{16} << 20)) {
    malloc_trim(0);
  }
}

void SparseTable::GrowInto(size_t capacity) {
  std::vector<uint64_t> old_keys(capacity, kEmpty);
  std::vector<float> old_vals(old_keys.size() * stride_, 0.0f);
  old_keys.swap(keys_);
  old_vals.swap(vals_);
  for (size_t j = 0; j < old_keys.size(); ++j) {
    uint64_t key = old_keys[j];
    if (key == kEmpty) continue;
    size_t i = Slot(Hash(key));
    while (keys_[i] != kEmpty) i = NextSlot(i);
    keys_[i] = key;
    std::copy_n(&old_vals[j * stride_], stride_, &vals_[i * stride_]);
  }
}

}  // namespace overcast::ps
