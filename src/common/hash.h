// Checksums and key hashing: XXH3 for data integrity, a fixed 64-bit mixer for sharding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace overcast {

// XXH3-64 of a byte range: the checksum of frames, partitions and checkpoints.
uint64_t Checksum64(const void* data, size_t size);
inline uint64_t Checksum64(std::string_view s) { return Checksum64(s.data(), s.size()); }

// Streaming XXH3-64, for files written piece by piece.
class Checksummer {
 public:
  Checksummer();
  ~Checksummer();
  Checksummer(const Checksummer&) = delete;
  Checksummer& operator=(const Checksummer&) = delete;
  void Update(const void* data, size_t size);
  uint64_t Digest() const;
  void Reset();  // back to the state of a new Checksummer, without reallocating it

 private:
  void* state_;
};

// Block checksums: XXH3-64 over the XXH3-64 digests (little-endian u64s) of consecutive
// kChecksumBlock-byte blocks of the data, the last block possibly shorter. Whoever keeps the
// digests of blocks it has not changed (a dense table) hashes only the blocks changed since.
inline constexpr size_t kChecksumBlock = size_t{64} << 10;
uint64_t BlockChecksum64(const void* data, size_t size);

// The same, fed in pieces of any size (a payload as the kernel hands it over).
class BlockChecksummer {
 public:
  void Update(const void* data, size_t size);
  uint64_t Finish();  // the checksum; the object is then Reset() for the next data
  void Reset();

 private:
  void EndBlock(uint64_t digest);
  Checksummer block_, digests_;
  size_t in_block_ = 0;  // bytes of the current block seen so far
};

// A bijective 64-bit mixer (splitmix64 finaliser): spreads sequential keys over shards.
inline uint64_t MixKey(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace overcast
