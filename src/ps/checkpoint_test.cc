#include "ps/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace overcast::ps {
namespace {
namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  std::string d = (fs::temp_directory_path() / ("overcast-" + name + "-" + std::to_string(getpid())))
                      .string();
  fs::remove_all(d);
  return d;
}

TEST(Checkpoint, NewestValidWinsAndTornOnesAreSkipped) {
  std::string dir = TempDir("ckpt");
  ASSERT_TRUE(WriteCheckpoint(dir, 1, 0, {"one-a", "one-b"}, 5).ok());
  ASSERT_TRUE(WriteCheckpoint(dir, 2, 0, {"two-a", "two-b"}, 5).ok());
  auto got = ReadNewestCheckpoint(dir);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->info.seq, 2u);
  EXPECT_EQ(got->shards, (std::vector<std::string>{"two-a", "two-b"}));

  // Tear the newest: truncate a shard file. The older one is used.
  auto shard = fs::path(got->info.path) / "shard-1.bin";
  fs::resize_file(shard, fs::file_size(shard) - 3);
  got = ReadNewestCheckpoint(dir);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->info.seq, 1u);
  EXPECT_EQ(got->shards[0], "one-a");

  // An unfinished temporary directory is never used either.
  fs::create_directories(dir + "/ckpt-000000000009.tmp");
  got = ReadNewestCheckpoint(dir);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->info.seq, 1u);
  EXPECT_EQ(HighestCheckpointSeq(dir), 9u);

  // A flipped byte anywhere is caught by the checksum.
  auto one = fs::path(got->info.path) / "shard-0.bin";
  {
    std::fstream f(one, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(13);
    f.put('Z');
  }
  EXPECT_EQ(ReadNewestCheckpoint(dir).status().code(), Code::kNotFound);
  fs::remove_all(dir);
}

TEST(Checkpoint, KeepsOnlyTheNewest) {
  std::string dir = TempDir("keep");
  for (uint64_t s = 1; s <= 5; ++s) ASSERT_TRUE(WriteCheckpoint(dir, s, 0, {"x"}, 2).ok());
  int n = 0;
  for (auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().starts_with("ckpt-");
  EXPECT_EQ(n, 2);
  EXPECT_EQ(ReadNewestCheckpoint(dir)->info.seq, 5u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace overcast::ps
