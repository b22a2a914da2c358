#include "data/minibatch.h"

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "data/load.h"
#include "data/test_util.h"

namespace overcast::data {
namespace {

// Row r has label r, so a minibatch says which rows it holds; features check the CSR views.
class MinibatchTest : public ::testing::Test {
 protected:
  static constexpr int kRows = 2345;
  void SetUp() override {
    std::string s;
    for (int r = 0; r < kRows; ++r) {
      s += std::to_string(r) + " " + std::to_string(r % 5 + 1) + ":" + std::to_string(r) + " 9:" +
           std::to_string(r % 4) + "\n";
    }
    LoadOptions o;
    o.input = dir_.Write("a.svm", s);
    o.dataset = "d";
    o.partition_rows = 100;
    o.task = "regression";
    auto r = LoadDataset(*store_, o);
    ASSERT_TRUE(r.ok()) << r.status().message();
  }

  // Labels per epoch, checking each row's features on the way.
  std::vector<std::vector<int>> ReadAll(const MinibatchOptions& o, ReaderStats* stats = nullptr) {
    auto reader = MinibatchReader::Open(store_.get(), "d", Split::kTrain, o);
    EXPECT_TRUE(reader.ok()) << reader.status().message();
    std::vector<std::vector<int>> epochs;
    Minibatch mb;
    uint64_t expect_index = 0;
    for (;;) {
      auto more = (*reader)->Next(&mb);
      EXPECT_TRUE(more.ok()) << more.status().message();
      if (!more.ok() || !*more) break;
      EXPECT_EQ(mb.index, expect_index++);
      EXPECT_LE(mb.rows(), o.batch_size);
      EXPECT_EQ(mb.offsets.size(), mb.rows() + 1);
      EXPECT_EQ(mb.offsets[0], 0u);
      if (epochs.size() <= mb.epoch) epochs.resize(mb.epoch + 1);
      for (size_t r = 0; r < mb.rows(); ++r) {
        const int label = static_cast<int>(mb.labels[r]);
        epochs[mb.epoch].push_back(label);
        const uint64_t b = mb.offsets[r];
        EXPECT_EQ(mb.ids[b], static_cast<uint32_t>(label % 5));
        EXPECT_EQ(mb.values[b], static_cast<float>(label));
        EXPECT_EQ(mb.offsets[r + 1] - b, label % 4 ? 2u : 2u);
      }
    }
    if (stats) *stats = (*reader)->stats();
    return epochs;
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_ = NewLocalStore(dir_.path() + "/store");
};

TEST_F(MinibatchTest, EveryRowExactlyOncePerEpochAndShuffledDifferently) {
  MinibatchOptions o;
  o.batch_size = 64;
  o.epochs = 3;
  o.shuffle_window = 500;
  o.prefetch = 2;
  ReaderStats stats;
  auto epochs = ReadAll(o, &stats);
  ASSERT_EQ(epochs.size(), 3u);
  std::vector<int> all(kRows);
  for (int i = 0; i < kRows; ++i) all[i] = i;
  for (const auto& e : epochs) {
    std::vector<int> sorted = e;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, all);
    EXPECT_NE(e, all);  // shuffled
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_EQ(stats.rows, 3u * kRows);
  EXPECT_EQ(stats.batches, 3u * ((kRows + 63) / 64));
  EXPECT_EQ(stats.partitions_read, 3u * 24);
  // The window (500 rows) spans 5+ partitions of 100 rows; all but the newest two decoded
  // ones are moved to the arena, so at most 3 stay decoded at once.
  EXPECT_LE(stats.peak_partitions_decoded, 3u);
  EXPECT_GE(stats.peak_partitions_decoded, 1u);
  EXPECT_GT(stats.rows_evicted, 0u);
  // The same seed gives the same order.
  EXPECT_EQ(ReadAll(o), epochs);
}

// A reader told to skip K minibatches hands out exactly what one that does not skip hands out
// from its K-th on, without reading the partitions whose rows all fall in the skipped ones.
TEST_F(MinibatchTest, SkippedBatchesAreDrawnButNeitherReadNorBuilt) {
  struct Batch {
    uint64_t index, epoch;
    std::vector<float> labels;
    std::vector<uint32_t> ids;
    bool operator==(const Batch&) const = default;
  };
  auto read = [&](MinibatchOptions o, ReaderStats* stats) {
    auto reader = MinibatchReader::Open(store_.get(), "d", Split::kTrain, o);
    EXPECT_TRUE(reader.ok()) << reader.status().message();
    std::vector<Batch> out;
    Minibatch mb;
    for (;;) {
      auto more = (*reader)->Next(&mb);
      EXPECT_TRUE(more.ok()) << more.status().message();
      if (!more.ok() || !*more) break;
      out.push_back({mb.index, mb.epoch, {mb.labels.begin(), mb.labels.end()},
                     {mb.ids.begin(), mb.ids.end()}});
    }
    *stats = (*reader)->stats();
    return out;
  };
  for (bool drop_last : {false, true}) {
    MinibatchOptions o;
    o.batch_size = 64;
    o.epochs = 3;
    o.shuffle_window = 500;
    o.drop_last = drop_last;
    ReaderStats all_stats;
    const std::vector<Batch> all = read(o, &all_stats);
    const uint64_t per_epoch = drop_last ? kRows / 64 : (kRows + 63) / 64;
    ASSERT_EQ(all.size(), 3 * per_epoch);
    for (uint64_t skip : {uint64_t{1}, uint64_t{17}, per_epoch - 1, per_epoch, per_epoch + 5,
                          3 * per_epoch}) {
      o.skip_batches = skip;
      ReaderStats stats;
      const std::vector<Batch> rest = read(o, &stats);
      EXPECT_EQ(rest, std::vector<Batch>(all.begin() + skip, all.end()))
          << "skip " << skip << (drop_last ? " drop_last" : "");
      // Epoch 0 never read (with drop_last its short last minibatch is built, then dropped).
      if (skip == per_epoch && !drop_last) {
        EXPECT_EQ(stats.partitions_read, 2u * 24);
      }
      EXPECT_LE(stats.partitions_read, all_stats.partitions_read);
    }
  }
}

TEST_F(MinibatchTest, NoShuffleKeepsStoredOrderAndDropLast) {
  MinibatchOptions o;
  o.batch_size = 100;
  o.shuffle = false;
  o.drop_last = true;
  auto epochs = ReadAll(o);
  ASSERT_EQ(epochs.size(), 1u);
  ASSERT_EQ(epochs[0].size(), 2300u);
  for (int i = 0; i < 2300; ++i) ASSERT_EQ(epochs[0][i], i);
}

TEST_F(MinibatchTest, ShardsAreDisjointAndCoverTheSplit) {
  std::multiset<int> seen;
  for (uint32_t shard = 0; shard < 3; ++shard) {
    MinibatchOptions o;
    o.batch_size = 50;
    o.num_shards = 3;
    o.shard_index = shard;
    auto epochs = ReadAll(o);  // (a range-for over ReadAll(o)[0] would dangle)
    ASSERT_EQ(epochs.size(), 1u);
    for (int label : epochs[0]) seen.insert(label);
  }
  ASSERT_EQ(seen.size(), static_cast<size_t>(kRows));
  for (int i = 0; i < kRows; ++i) ASSERT_EQ(seen.count(i), 1u) << i;
}

TEST_F(MinibatchTest, CorruptPartitionIsAnErrorNamingIt) {
  auto m = ReadManifest(*store_, "d");
  ASSERT_TRUE(m.ok());
  const std::string victim = m->partitions[7].object;
  std::string bytes;
  ASSERT_TRUE(store_->Get(victim, &bytes).ok());
  bytes[bytes.size() - 3] ^= 1;
  ASSERT_TRUE(store_->Put(victim, bytes).ok());
  MinibatchOptions o;
  o.shuffle = false;
  auto reader = MinibatchReader::Open(store_.get(), "d", Split::kTrain, o);
  ASSERT_TRUE(reader.ok());
  Minibatch mb;
  Status error;
  for (int i = 0; i < 1000; ++i) {
    auto more = (*reader)->Next(&mb);
    if (!more.ok()) {
      error = more.status();
      break;
    }
    ASSERT_TRUE(*more) << "the corrupt partition was never reported";
  }
  EXPECT_EQ(error.code(), Code::kCorruption);
  EXPECT_NE(error.message().find(victim), std::string::npos) << error.message();
  EXPECT_NE(error.message().find("checksum"), std::string::npos) << error.message();
}

TEST_F(MinibatchTest, BadOptionsAndMissingDataset) {
  MinibatchOptions o;
  o.batch_size = 0;
  EXPECT_EQ(MinibatchReader::Open(store_.get(), "d", Split::kTrain, o).status().code(),
            Code::kInvalidArgument);
  o.batch_size = 1;
  EXPECT_EQ(MinibatchReader::Open(store_.get(), "d", Split::kTest, o).status().code(),
            Code::kInvalidArgument);  // no test rows
  EXPECT_EQ(MinibatchReader::Open(store_.get(), "nope", Split::kTrain, o).status().code(),
            Code::kNotFound);
  // Destroying a reader mid-epoch stops its prefetch thread.
  auto reader = MinibatchReader::Open(store_.get(), "d", Split::kTrain, o);
  ASSERT_TRUE(reader.ok());
  Minibatch mb;
  ASSERT_TRUE((*reader)->Next(&mb).ok());
}

}  // namespace
}  // namespace overcast::data
