#include "net/frame.h"

#include <lz4.h>
#include <zstd.h>

#include <cassert>
#include <cstring>

#include "common/hash.h"

namespace overcast::net {
namespace {

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void Store(char* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

uint32_t Checksum32(const char* p, size_t n) {
  return static_cast<uint32_t>(Checksum64(p, n));
}

void WriteHeader(char* p, const FrameHeader& h) {
  Store<uint32_t>(p, kMagic);
  p[4] = static_cast<char>(h.version);
  p[5] = static_cast<char>(h.type);
  p[6] = static_cast<char>(h.flags);
  p[7] = static_cast<char>(h.status);
  Store<uint64_t>(p + 8, h.request_id);
  Store<uint32_t>(p + 16, h.wire_length);
  Store<uint32_t>(p + 20, h.raw_length);
  Store<uint32_t>(p + 24, h.payload_checksum);
  Store<uint32_t>(p + 28, Checksum32(p, 28));
}

}  // namespace

Status DecodeHeader(const char* p, const FrameLimits& limits, FrameHeader* h) {
  if (Load<uint32_t>(p) != kMagic) return Corruption("bad frame magic");
#ifndef OVERCAST_FUZZING  // the fuzz build skips checksums so mutations reach the decoders
  if (Load<uint32_t>(p + 28) != Checksum32(p, 28)) return Corruption("bad header checksum");
#endif
  h->version = static_cast<uint8_t>(p[4]);
  if (h->version != kVersion) {
    return InvalidArgument("unsupported frame version " + std::to_string(h->version));
  }
  h->type = static_cast<uint8_t>(p[5]);
  h->flags = static_cast<uint8_t>(p[6]);
  h->status = static_cast<uint8_t>(p[7]);
  h->request_id = Load<uint64_t>(p + 8);
  h->wire_length = Load<uint32_t>(p + 16);
  h->raw_length = Load<uint32_t>(p + 20);
  h->payload_checksum = Load<uint32_t>(p + 24);
  if (h->flags & ~kFlagsKnown) return Corruption("unknown frame flags");
  auto c = h->compression();
  if (c != Compression::kNone && c != Compression::kLz4 && c != Compression::kZstd) {
    return Corruption("unknown compression");
  }
  if (h->wire_length > limits.max_frame_bytes || h->raw_length > limits.max_frame_bytes) {
    return ResourceExhausted("frame of " + std::to_string(std::max(h->wire_length, h->raw_length)) +
                             " bytes exceeds the limit of " +
                             std::to_string(limits.max_frame_bytes));
  }
  if (c == Compression::kNone && h->wire_length != h->raw_length) {
    return Corruption("uncompressed frame with differing lengths");
  }
  return Status::Ok();
}

Status CheckPayloadChecksum(const FrameHeader& h, uint64_t checksum64) {
#ifndef OVERCAST_FUZZING  // the fuzz build skips checksums so mutations reach the decoders
  if (static_cast<uint32_t>(checksum64) != h.payload_checksum) {
    return Corruption("bad payload checksum");
  }
#else
  (void)h;
  (void)checksum64;
#endif
  return Status::Ok();
}

Status DecompressPayload(const FrameHeader& h, std::string* payload) {
  if (payload->size() != h.wire_length) return Corruption("payload length mismatch");
  switch (h.compression()) {
    case Compression::kNone:
      return Status::Ok();
    case Compression::kLz4: {
      std::string raw(h.raw_length, '\0');
      int n = LZ4_decompress_safe(payload->data(), raw.data(), static_cast<int>(payload->size()),
                                  static_cast<int>(raw.size()));
      if (n < 0 || static_cast<size_t>(n) != raw.size()) return Corruption("bad lz4 payload");
      payload->swap(raw);
      return Status::Ok();
    }
    case Compression::kZstd: {
      std::string raw(h.raw_length, '\0');
      size_t n = ZSTD_decompress(raw.data(), raw.size(), payload->data(), payload->size());
      if (ZSTD_isError(n) || n != raw.size()) return Corruption("bad zstd payload");
      payload->swap(raw);
      return Status::Ok();
    }
  }
  return Corruption("unknown compression");
}

Status DecodePayload(const FrameHeader& h, const FrameLimits& limits, std::string* payload) {
  (void)limits;
  if (payload->size() != h.wire_length) return Corruption("payload length mismatch");
  OC_RETURN_IF_ERROR(CheckPayloadChecksum(h, h.block_checksum()
                                                 ? BlockChecksum64(payload->data(), payload->size())
                                                 : Checksum64(payload->data(), payload->size())));
  return DecompressPayload(h, payload);
}

std::string FrameBuilder::Finish(uint8_t type, uint64_t request_id, uint8_t flags,
                                 uint8_t status, Compression compression,
                                 size_t compress_threshold) && {
  FrameHeader h;
  h.type = type;
  h.request_id = request_id;
  h.status = status;
  h.flags = static_cast<uint8_t>(flags & ~kFlagCompressionMask);
  const size_t raw = payload_size();
  h.raw_length = static_cast<uint32_t>(raw);
  h.wire_length = h.raw_length;
  if (compression != Compression::kNone && raw >= compress_threshold) {
    std::string out;
    size_t n = 0;
    if (compression == Compression::kLz4) {
      out.resize(kHeaderSize + static_cast<size_t>(LZ4_compressBound(static_cast<int>(raw))));
      int r = LZ4_compress_default(buf_.data() + kHeaderSize, out.data() + kHeaderSize,
                                   static_cast<int>(raw), static_cast<int>(out.size() - kHeaderSize));
      n = r > 0 ? static_cast<size_t>(r) : 0;
    } else {
      out.resize(kHeaderSize + ZSTD_compressBound(raw));
      size_t r = ZSTD_compress(out.data() + kHeaderSize, out.size() - kHeaderSize,
                               buf_.data() + kHeaderSize, raw, 1);
      n = ZSTD_isError(r) ? 0 : r;
    }
    if (n > 0 && n <= raw - raw / 8) {
      out.resize(kHeaderSize + n);
      buf_.swap(out);
      h.flags |= static_cast<uint8_t>(compression);
      h.wire_length = static_cast<uint32_t>(n);
    }
  }
  if (have_checksum_ && h.wire_length == raw) {
    assert(checksum_ == Checksum64(buf_.data() + kHeaderSize, raw));
    h.payload_checksum = static_cast<uint32_t>(checksum_);
  } else {
    h.payload_checksum = Checksum32(buf_.data() + kHeaderSize, h.wire_length);
  }
  WriteHeader(buf_.data(), h);
  return std::move(buf_);
}

std::string MakeHeader(uint8_t type, uint64_t request_id, uint8_t flags, uint8_t status,
                       size_t payload_size, uint64_t checksum64) {
  FrameHeader h;
  h.type = type;
  h.request_id = request_id;
  h.flags = static_cast<uint8_t>(flags & ~kFlagCompressionMask);
  h.status = status;
  h.raw_length = h.wire_length = static_cast<uint32_t>(payload_size);
  h.payload_checksum = static_cast<uint32_t>(checksum64);
  std::string out(kHeaderSize, '\0');
  WriteHeader(out.data(), h);
  return out;
}

std::string MakeFrame(uint8_t type, uint64_t request_id, std::string_view payload, uint8_t flags,
                      uint8_t status) {
  FrameBuilder b(payload.size());
  b.buffer()->append(payload);
  return std::move(b).Finish(type, request_id, flags, status);
}

Status FrameDecoder::Next(FrameHeader* h, std::string* payload, bool* got) {
  *got = false;
  if (buf_.size() - pos_ < kHeaderSize) return Status::Ok();
  OC_RETURN_IF_ERROR(DecodeHeader(buf_.data() + pos_, limits_, h));
  if (buf_.size() - pos_ - kHeaderSize < h->wire_length) return Status::Ok();
  payload->assign(buf_.data() + pos_ + kHeaderSize, h->wire_length);
  pos_ += kHeaderSize + h->wire_length;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  OC_RETURN_IF_ERROR(DecodePayload(*h, limits_, payload));
  *got = true;
  return Status::Ok();
}

}  // namespace overcast::net
