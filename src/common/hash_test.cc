#include "common/hash.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace overcast {
namespace {

std::string Bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 7 + 1);
  return s;
}

// Checksums cross process boundaries (frames, files): whichever XXH3 implementation the CPU
// gets (inlined SSE2 for short inputs, the library's AVX2/AVX-512 for long ones), the digest is
// XXH3-64's. The values were computed with the reference inlined XXH3 (xxhash 0.8.1).
TEST(Checksum, MatchesReferenceXxh3AtEverySize) {
  const std::pair<size_t, uint64_t> golden[] = {
      {0, 0x2d06800538d394c2ULL},   {17, 0x2bf6f66973a6179dULL},
      {240, 0x3c0bb96864e543a1ULL}, {241, 0xbff7215089202d8fULL},
      {1000, 0xb8b406a98622d913ULL}, {(1 << 20) + 3, 0xa02f1a64cd6a0f9bULL},
  };
  for (const auto& [n, want] : golden) {
    std::string s = Bytes(n);
    EXPECT_EQ(Checksum64(s.data(), s.size()), want) << n;
    Checksummer c;
    for (size_t at = 0; at < n; at += 4099) c.Update(s.data() + at, std::min<size_t>(4099, n - at));
    EXPECT_EQ(c.Digest(), want) << "streamed, " << n;
    c.Reset();
    c.Update(s.data(), s.size());
    EXPECT_EQ(c.Digest(), want) << "after Reset, " << n;
  }
}

// A block checksum is XXH3-64 of the blocks' digests, however the data is fed: whole, in pieces
// that straddle block boundaries, or one byte at a time around a boundary.
TEST(BlockChecksum, IsTheDigestOfTheBlocksDigestsInAnyPieces) {
  for (size_t n : {size_t{0}, size_t{1}, kChecksumBlock - 1, kChecksumBlock, kChecksumBlock + 1,
                   3 * kChecksumBlock + 4097}) {
    std::string s = Bytes(n);
    std::vector<uint64_t> digests;
    for (size_t at = 0; at < n; at += kChecksumBlock) {
      digests.push_back(Checksum64(s.data() + at, std::min(kChecksumBlock, n - at)));
    }
    const uint64_t want = Checksum64(digests.data(), digests.size() * sizeof(uint64_t));
    EXPECT_EQ(BlockChecksum64(s.data(), n), want) << n;
    BlockChecksummer b;
    for (size_t piece : {size_t{1}, size_t{4099}, kChecksumBlock + 7}) {
      for (size_t at = 0; at < n; at += piece) b.Update(s.data() + at, std::min(piece, n - at));
      EXPECT_EQ(b.Finish(), want) << n << " in pieces of " << piece;
    }
  }
  // A changed byte anywhere changes it.
  std::string s = Bytes(2 * kChecksumBlock);
  const uint64_t before = BlockChecksum64(s.data(), s.size());
  s[kChecksumBlock + 5] ^= 1;
  EXPECT_NE(BlockChecksum64(s.data(), s.size()), before);
}

}  // namespace
}  // namespace overcast
