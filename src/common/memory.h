// Large buffers and the kernel's transparent huge pages.
#pragma once

#include <cstddef>
#include <vector>

namespace overcast {

// Asks the kernel to back the 2 MiB-aligned part of [p, p + bytes) with transparent huge pages
// (madvise MADV_HUGEPAGE; nothing happens where THP is off or the range holds no aligned 2 MiB).
// Call it before the memory is first touched: the first touch then faults in 2 MiB at a time
// instead of 4 KiB. On a virtual machine a page fault costs microseconds, so filling a fresh
// 16 MB buffer page by page costs milliseconds (measured: a dataset partition's decode).
void AdviseHugePages(void* p, size_t bytes);

// Reserves room for n elements in `v`. When that needs a new buffer of at least 4 MiB, the
// buffer (allocated untouched) is advised huge pages before anything is written to it.
template <typename T>
void ReserveLarge(std::vector<T>& v, size_t n) {
  if (n <= v.capacity()) return;
  v.reserve(n);
  if (n * sizeof(T) >= (size_t{4} << 20)) AdviseHugePages(v.data(), n * sizeof(T));
}

// Resizes `v` to n elements whose old contents are not kept (the caller overwrites them), the
// new buffer, if one is needed, through ReserveLarge.
template <typename T>
void ResizeForOverwrite(std::vector<T>& v, size_t n) {
  if (n > v.capacity()) {
    std::vector<T>().swap(v);  // nothing to copy into the new buffer
    ReserveLarge(v, n);
  }
  v.resize(n);
}

}  // namespace overcast
