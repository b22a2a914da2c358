// Little-endian byte writer and a bounds-checked reader for wire payloads and files.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/status.h"

namespace overcast {

// Appends plain values to a growable buffer. This code assumes a little-endian host (x86-64,
// aarch64); the static_assert in bytes.cc stops a build anywhere else.
class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}

  template <typename T>
  void Put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_->append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void PutBytes(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
  // u32 length, then the bytes.
  void PutString(std::string_view s) {
    Put<uint32_t>(static_cast<uint32_t>(s.size()));
    PutBytes(s.data(), s.size());
  }
  template <typename T>
  void PutArray(std::span<const T> a) {
    PutBytes(a.data(), a.size_bytes());
  }
  // Reserves n bytes and returns where they start, for filling in place.
  char* Grow(size_t n) {
    size_t at = out_->size();
    out_->resize(at + n);
    return out_->data() + at;
  }
  size_t size() const { return out_->size(); }

 private:
  std::string* out_;
};

// Reads what ByteWriter wrote; every read checks the remaining length, so a hostile payload
// yields an error, never an out-of-bounds access.
class ByteReader {
 public:
  ByteReader(const char* p, size_t n) : p_(p), end_(p + n) {}
  explicit ByteReader(std::string_view s) : ByteReader(s.data(), s.size()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  const char* position() const { return p_; }

  template <typename T>
  Status Get(T* v) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return Truncated(sizeof(T));
    std::memcpy(v, p_, sizeof(T));
    p_ += sizeof(T);
    return Status::Ok();
  }
  Status GetString(std::string* s, size_t max_len = 1 << 20) {
    uint32_t n = 0;
    OC_RETURN_IF_ERROR(Get(&n));
    if (n > max_len) return Corruption("string of " + std::to_string(n) + " bytes exceeds limit");
    if (remaining() < n) return Truncated(n);
    s->assign(p_, n);
    p_ += n;
    return Status::Ok();
  }
  // A view of the next count elements of T, without copying. The span aliases the input.
  // T must tolerate any alignment of the source (memcpy out before arithmetic where needed).
  Status GetView(size_t count, size_t elem_size, const char** out) {
    if (elem_size != 0 && count > remaining() / elem_size) return Truncated(count * elem_size);
    *out = p_;
    p_ += count * elem_size;
    return Status::Ok();
  }
  Status Skip(size_t n) {
    if (remaining() < n) return Truncated(n);
    p_ += n;
    return Status::Ok();
  }

 private:
  Status Truncated(size_t want) const {
    return Corruption("truncated: wanted " + std::to_string(want) + " bytes, " +
                      std::to_string(remaining()) + " left");
  }
  const char* p_;
  const char* end_;
};

}  // namespace overcast
