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

// Resizes `v` to n elements whose old contents are not kept (the caller overwrites them). When
// that needs a new buffer of at least 4 MiB, it is allocated untouched and advised huge pages
// before being filled.
template <typename T>
void ResizeForOverwrite(std::vector<T>& v, size_t n) {
  if (n > v.capacity() && n * sizeof(T) >= (size_t{4} << 20)) {
    std::vector<T>().swap(v);
    v.reserve(n);
    AdviseHugePages(v.data(), n * sizeof(T));
  }
  v.resize(n);
}

}  // namespace overcast
