#include "data/partition.h"

#include <random>

#include <gtest/gtest.h>

#include "data/store.h"
#include "data/test_util.h"

namespace overcast::data {
namespace {

Partition RandomPartition(size_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Partition p;
  std::vector<uint32_t> ids;
  std::vector<float> values;
  for (size_t r = 0; r < rows; ++r) {
    ids.clear();
    values.clear();
    uint32_t id = 0;
    const int n = static_cast<int>(rng() % 20);  // some rows are empty
    for (int k = 0; k < n; ++k) {
      id += 1 + static_cast<uint32_t>(rng() % 50);
      ids.push_back(id);
      values.push_back(static_cast<float>(rng() % 1000) / 7.0f);
    }
    p.AddRow(static_cast<float>(rng() % 2), ids, values);
  }
  return p;
}

void ExpectSame(const Partition& a, const Partition& b) {
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.offsets, b.offsets);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.values, b.values);
}

TEST(Partition, RoundTripsWithAndWithoutCompression) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    for (size_t rows : {size_t{0}, size_t{1}, size_t{1000}}) {
      Partition p = RandomPartition(rows, rows + 1);
      std::string bytes;
      auto sum = EncodePartition(p, c, 1, &bytes);
      ASSERT_TRUE(sum.ok());
      Partition q;
      q.labels = {9};  // decoding must replace, not append
      Status st = DecodePartition(bytes, *sum, 1 << 20, &q);
      ASSERT_TRUE(st.ok()) << st.message();
      ExpectSame(p, q);
      auto h = DecodePartitionHeader(bytes);
      ASSERT_TRUE(h.ok());
      EXPECT_EQ(h->rows, rows);
      EXPECT_EQ(h->compression, c);
    }
  }
}

TEST(Partition, EveryCorruptionIsDetected) {
  Partition p = RandomPartition(300, 5);
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    std::string bytes;
    auto sum = EncodePartition(p, c, 1, &bytes);
    ASSERT_TRUE(sum.ok());
    Partition q;
    // A flipped bit anywhere: in the header or in the payload.
    for (size_t at : {size_t{3}, size_t{20}, size_t{60}, size_t{64}, bytes.size() / 2,
                      bytes.size() - 1}) {
      std::string bad = bytes;
      bad[at] ^= 0x10;
      Status st = DecodePartition(bad, *sum, 0, &q);
      EXPECT_EQ(st.code(), Code::kCorruption) << "byte " << at;
    }
    // Truncated, and a different partition than the manifest names.
    EXPECT_EQ(DecodePartition(bytes.substr(0, bytes.size() - 1), *sum, 0, &q).code(),
              Code::kCorruption);
    EXPECT_EQ(DecodePartition(bytes.substr(0, 10), *sum, 0, &q).code(), Code::kCorruption);
    Status other = DecodePartition(bytes, *sum ^ 1, 0, &q);
    EXPECT_EQ(other.code(), Code::kCorruption);
    EXPECT_NE(other.message().find("manifest"), std::string::npos);
    // An id beyond the dataset's feature count.
    EXPECT_EQ(DecodePartition(bytes, *sum, 5, &q).code(), Code::kCorruption);
  }
}

TEST(Store, PutGetListRemoveAndNames) {
  testing::TempDir dir;
  auto store = NewLocalStore(dir.path() + "/store");
  ASSERT_TRUE(store->Put("datasets/a/x.bin", "hello").ok());
  ASSERT_TRUE(store->Put("datasets/a/y.bin", "world").ok());
  ASSERT_TRUE(store->Put("datasets/b/z.bin", "!").ok());
  ASSERT_TRUE(store->Put("datasets/a/x.bin", "HELLO").ok());  // replaced whole
  std::string got;
  ASSERT_TRUE(store->Get("datasets/a/x.bin", &got).ok());
  EXPECT_EQ(got, "HELLO");
  EXPECT_EQ(store->Get("datasets/a/nope", &got).code(), Code::kNotFound);
  std::vector<std::string> names;
  ASSERT_TRUE(store->List("datasets/a/", &names).ok());
  EXPECT_EQ(names, (std::vector<std::string>{"datasets/a/x.bin", "datasets/a/y.bin"}));
  ASSERT_TRUE(store->List("datasets/", &names).ok());
  EXPECT_EQ(names.size(), 3u);
  ASSERT_TRUE(store->List("nothing/", &names).ok());
  EXPECT_TRUE(names.empty());
  ASSERT_TRUE(store->Remove("datasets/a/x.bin").ok());
  ASSERT_TRUE(store->Remove("datasets/a/x.bin").ok());  // idempotent
  ASSERT_TRUE(store->Remove("datasets/a/y.bin").ok());
  // Emptied directories go too.
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/store/datasets/a"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/store/datasets/b"));
  for (const char* bad : {"", "/abs", "a//b", "a/../b", "./a", "a/b.tmp-1", "a\nb"}) {
    EXPECT_EQ(store->Put(bad, "x").code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(OpenStore("s3://bucket/x").status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(OpenStore("file://" + dir.path()).ok());
}

}  // namespace
}  // namespace overcast::data
