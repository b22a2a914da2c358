#include "net/frame.h"

#include <gtest/gtest.h>

#include <random>

#include "common/hash.h"

namespace overcast::net {
namespace {

std::string Payload(size_t n, bool compressible) {
  std::string s(n, '\0');
  std::mt19937 rng(7);
  for (size_t i = 0; i < n; ++i) s[i] = compressible ? static_cast<char>('a' + (i / 64) % 4)
                                                     : static_cast<char>(rng());
  return s;
}

Status DecodeWhole(const std::string& frame, FrameHeader* h, std::string* payload,
                   FrameLimits limits = {}) {
  if (frame.size() < kHeaderSize) return Corruption("short");
  OC_RETURN_IF_ERROR(DecodeHeader(frame.data(), limits, h));
  payload->assign(frame.data() + kHeaderSize, frame.size() - kHeaderSize);
  return DecodePayload(*h, limits, payload);
}

class FrameRoundTrip : public ::testing::TestWithParam<Compression> {};

TEST_P(FrameRoundTrip, PayloadSurvivesAndCompressesWhenItPays) {
  for (bool compressible : {true, false}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{70000}}) {
      std::string body = Payload(n, compressible);
      FrameBuilder b;
      b.buffer()->append(body);
      std::string frame = std::move(b).Finish(42, 0x1122334455667788ULL, kFlagResponse, 3,
                                              GetParam(), 4096);
      FrameHeader h;
      std::string got;
      ASSERT_TRUE(DecodeWhole(frame, &h, &got).ok());
      EXPECT_EQ(got, body);
      EXPECT_EQ(h.type, 42);
      EXPECT_EQ(h.status, 3);
      EXPECT_TRUE(h.is_response());
      EXPECT_EQ(h.request_id, 0x1122334455667788ULL);
      bool should_compress = GetParam() != Compression::kNone && compressible && n >= 4096;
      EXPECT_EQ(h.compression() != Compression::kNone, should_compress) << n;
      if (should_compress) {
        EXPECT_LT(frame.size(), body.size() / 4);
      }
      if (!compressible) {
        EXPECT_EQ(h.compression(), Compression::kNone);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, FrameRoundTrip,
                         ::testing::Values(Compression::kNone, Compression::kLz4,
                                           Compression::kZstd));

// A lent dense reply: the payload checksum is the block checksum, and a receiver checks that
// one, not the plain XXH3-64, when the flag says so.
TEST(Frame, BlockChecksumFramesAreCheckedByTheirBlocks) {
  const std::string body = Payload(3 * kChecksumBlock + 100, false);
  const uint8_t flags = kFlagResponse | kFlagBlockChecksum;
  std::string frame = MakeHeader(21, 9, flags, 0, body.size(),
                                 BlockChecksum64(body.data(), body.size())) + body;
  FrameHeader h;
  std::string got;
  ASSERT_TRUE(DecodeWhole(frame, &h, &got).ok());
  EXPECT_TRUE(h.block_checksum());
  EXPECT_EQ(got, body);
  frame[kHeaderSize + 2 * kChecksumBlock + 1] ^= 0x10;  // one bit in the third block
  EXPECT_EQ(DecodeWhole(frame, &h, &got).code(), Code::kCorruption);
  // The plain checksum under the block flag (and the other way round) is refused.
  std::string plain = MakeHeader(21, 9, flags, 0, body.size(), Checksum64(body)) + body;
  EXPECT_EQ(DecodeWhole(plain, &h, &got).code(), Code::kCorruption);
  std::string unflagged = MakeHeader(21, 9, kFlagResponse, 0, body.size(),
                                     BlockChecksum64(body.data(), body.size())) + body;
  EXPECT_EQ(DecodeWhole(unflagged, &h, &got).code(), Code::kCorruption);
}

TEST(Frame, RejectsBadMagicVersionChecksumsAndSize) {
  std::string good = MakeFrame(20, 9, "hello world");
  FrameHeader h;
  std::string p;
  ASSERT_TRUE(DecodeWhole(good, &h, &p).ok());

  std::string bad = good;
  bad[0] ^= 1;
  EXPECT_EQ(DecodeWhole(bad, &h, &p).code(), Code::kCorruption);  // magic

  bad = good;
  bad[12] ^= 1;  // request id byte: header checksum no longer matches
  EXPECT_EQ(DecodeWhole(bad, &h, &p).code(), Code::kCorruption);

  bad = good;
  bad[kHeaderSize + 2] ^= 1;  // payload byte
  Status s = DecodeWhole(bad, &h, &p);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("payload checksum"), std::string::npos);

  FrameLimits small{8};
  EXPECT_EQ(DecodeWhole(good, &h, &p, small).code(), Code::kResourceExhausted);
}

TEST(Frame, RejectsUnknownVersion) {
  std::string f = MakeFrame(20, 1, "x");
  f[4] = 9;
  // Recompute the header checksum so only the version is wrong.
  FrameHeader h;
  EXPECT_FALSE(DecodeHeader(f.data(), {}, &h).ok());
}

TEST(FrameDecoder, ReassemblesFramesSplitAnywhere) {
  std::string stream;
  for (int i = 0; i < 20; ++i) stream += MakeFrame(20, i, std::string(i * 37, 'x'));
  for (size_t step : {1, 3, 31, 1000}) {
    FrameDecoder d;
    int seen = 0;
    for (size_t at = 0; at < stream.size(); at += step) {
      d.Append(std::string_view(stream).substr(at, step));
      for (;;) {
        FrameHeader h;
        std::string p;
        bool got;
        ASSERT_TRUE(d.Next(&h, &p, &got).ok());
        if (!got) break;
        EXPECT_EQ(h.request_id, static_cast<uint64_t>(seen));
        EXPECT_EQ(p.size(), static_cast<size_t>(seen) * 37);
        ++seen;
      }
    }
    EXPECT_EQ(seen, 20);
  }
}

TEST(FrameDecoder, GarbageIsAnErrorNotACrash) {
  FrameDecoder d;
  d.Append(std::string(64, '\xff'));
  FrameHeader h;
  std::string p;
  bool got;
  EXPECT_FALSE(d.Next(&h, &p, &got).ok());
}

TEST(Frame, CorruptCompressedPayloadIsRejected) {
  FrameBuilder b;
  b.buffer()->append(Payload(10000, true));
  std::string f = std::move(b).Finish(20, 1, 0, 0, Compression::kLz4, 100);
  FrameHeader h;
  ASSERT_TRUE(DecodeHeader(f.data(), {}, &h).ok());
  ASSERT_EQ(h.compression(), Compression::kLz4);
  // Lie about the raw length: decompression must notice, not overflow.
  h.raw_length = 50;
  std::string p = f.substr(kHeaderSize);
  EXPECT_EQ(DecodePayload(h, {}, &p).code(), Code::kCorruption);
}

}  // namespace
}  // namespace overcast::net
