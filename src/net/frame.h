// The frame: every message between overcast processes is one (docs/wire_protocol.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace overcast::net {

inline constexpr uint32_t kMagic = 0x3143564F;  // "OVC1" as little-endian bytes
inline constexpr uint8_t kVersion = 2;  // 2: the block-checksum flag
inline constexpr size_t kHeaderSize = 32;
inline constexpr size_t kDefaultMaxFrameBytes = size_t{256} << 20;

enum class Compression : uint8_t { kNone = 0, kLz4 = 1, kZstd = 2 };

// flags byte: bits 0-1 compression, bit 2 block checksum, bit 7 set on responses.
inline constexpr uint8_t kFlagCompressionMask = 0x03;
// The payload checksum is BlockChecksum64 (common/hash.h) of the wire payload instead of its
// XXH3-64: a dense table keeps its blocks' digests, so a pull hashes only blocks changed since.
inline constexpr uint8_t kFlagBlockChecksum = 0x04;
inline constexpr uint8_t kFlagResponse = 0x80;
inline constexpr uint8_t kFlagsKnown = kFlagCompressionMask | kFlagBlockChecksum | kFlagResponse;

// Message types shared by every service; services number their own from 16 up.
enum MessageType : uint8_t {
  kHello = 1,   // server -> client on connect: server id, whether auth is required, nonce
  kAuth = 2,    // client -> server: HMAC-SHA256(secret, nonce) or nothing
  kAuthOk = 3,  // server -> client: the connection may send requests
};

struct FrameHeader {
  uint8_t version = kVersion;
  uint8_t type = 0;
  uint8_t flags = 0;
  uint8_t status = 0;  // a Code on responses; 0 = OK
  uint64_t request_id = 0;
  uint32_t wire_length = 0;  // payload bytes that follow the header
  uint32_t raw_length = 0;   // payload bytes after decompression
  uint32_t payload_checksum = 0;  // low 32 bits of XXH3-64 of the wire payload

  Compression compression() const {
    return static_cast<Compression>(flags & kFlagCompressionMask);
  }
  bool is_response() const { return flags & kFlagResponse; }
  bool block_checksum() const { return flags & kFlagBlockChecksum; }
};

struct FrameLimits {
  size_t max_frame_bytes = kDefaultMaxFrameBytes;  // raw and wire payload bound
};

// Parses and validates the 32 header bytes at `p`: magic, version, header checksum, known
// flags, lengths within limits. Nothing after the header is read.
Status DecodeHeader(const char* p, const FrameLimits& limits, FrameHeader* h);

// Checks the payload checksum and, when compressed, replaces `payload` with the raw bytes
// (which must be exactly h.raw_length long).
Status DecodePayload(const FrameHeader& h, const FrameLimits& limits, std::string* payload);

// The two halves of DecodePayload, for a receiver that hashes the payload as it arrives
// (while each piece is still in cache) instead of in a second pass over all of it:
// `checksum64` is XXH3-64 of the wire payload, or its BlockChecksum64 when h.block_checksum().
Status CheckPayloadChecksum(const FrameHeader& h, uint64_t checksum64);
Status DecompressPayload(const FrameHeader& h, std::string* payload);

// Builds a frame in one buffer: the header space first, the payload appended by the caller
// through buffer(), then Finish() fills in the header (compressing when it pays).
class FrameBuilder {
 public:
  FrameBuilder() { buf_.resize(kHeaderSize); }
  explicit FrameBuilder(size_t payload_hint) {
    buf_.reserve(kHeaderSize + payload_hint);
    buf_.resize(kHeaderSize);
  }

  std::string* buffer() { return &buf_; }
  size_t payload_size() const { return buf_.size() - kHeaderSize; }
  // For a caller that hashed the payload while writing it (the bytes were in cache then):
  // Finish() takes this XXH3-64 of the whole payload instead of reading it all again, unless
  // it compresses. The payload must not change afterwards.
  void SetPayloadChecksum(uint64_t checksum64) {
    checksum_ = checksum64;
    have_checksum_ = true;
  }

  // Compression is applied when asked, the payload is at least `compress_threshold` bytes,
  // and the result saves at least an eighth; otherwise the payload goes as it is.
  std::string Finish(uint8_t type, uint64_t request_id, uint8_t flags = 0, uint8_t status = 0,
                     Compression compression = Compression::kNone,
                     size_t compress_threshold = 4096) &&;

 private:
  std::string buf_;
  uint64_t checksum_ = 0;
  bool have_checksum_ = false;
};

// The header alone of an uncompressed frame whose payload (`payload_size` bytes with XXH3-64
// `checksum64`, or its BlockChecksum64 with kFlagBlockChecksum in `flags`) is sent from where
// it lives instead of being copied behind the header.
std::string MakeHeader(uint8_t type, uint64_t request_id, uint8_t flags, uint8_t status,
                       size_t payload_size, uint64_t checksum64);

// Convenience for small frames: a whole frame with `payload` as body.
std::string MakeFrame(uint8_t type, uint64_t request_id, std::string_view payload,
                      uint8_t flags = 0, uint8_t status = 0);

// An incremental decoder over a byte stream (used by the fuzz target and tests; the TCP
// transport reads header and payload with exact-size reads instead).
class FrameDecoder {
 public:
  explicit FrameDecoder(FrameLimits limits = {}) : limits_(limits) {}
  void Append(std::string_view bytes) { buf_.append(bytes); }
  // Ok with *got = true and the frame, Ok with *got = false when more bytes are needed, or an
  // error after which the stream is unusable.
  Status Next(FrameHeader* h, std::string* payload, bool* got);

 private:
  FrameLimits limits_;
  std::string buf_;
  size_t pos_ = 0;
};

}  // namespace overcast::net
