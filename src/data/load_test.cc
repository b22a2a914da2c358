#include "data/load.h"

#include <zlib.h>

#include <filesystem>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "data/test_util.h"

namespace overcast::data {
namespace {

// Row r of a synthetic file: label r % 3, features (r % 7) + 1 and r % 11 + 10 with value r.
std::string SyntheticLibsvm(int rows) {
  std::string s;
  for (int r = 0; r < rows; ++r) {
    s += std::to_string(r % 3) + " " + std::to_string(r % 7 + 1) + ":" + std::to_string(r) + " " +
         std::to_string(r % 11 + 10) + ":1\n";
  }
  return s;
}

// Every row of the dataset, in stored order (partitions by split, then index).
std::vector<std::pair<Split, std::vector<float>>> AllRows(Store& store, const std::string& name) {
  std::vector<std::pair<Split, std::vector<float>>> rows;
  auto m = ReadManifest(store, name);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return rows;
  Partition p;
  std::string scratch;
  for (const auto& ref : m->partitions) {
    Status st = ReadPartition(store, *m, ref, &p, &scratch);
    EXPECT_TRUE(st.ok()) << st.message();
    for (size_t r = 0; r < p.rows(); ++r) {
      std::vector<float> row{p.labels[r]};
      for (uint64_t k = p.offsets[r]; k < p.offsets[r + 1]; ++k) {
        row.push_back(static_cast<float>(p.ids[k]));
        row.push_back(p.values[k]);
      }
      rows.push_back({ref.split, row});
    }
  }
  return rows;
}

class LoadTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  std::unique_ptr<Store> store_ = NewLocalStore(dir_.path() + "/store");

  LoadOptions Options(const std::string& input, const std::string& name) {
    LoadOptions o;
    o.input = input;
    o.dataset = name;
    o.chunk_bytes = 1000;  // many chunks even for small files
    o.partition_rows = 97;
    return o;
  }
  bool Exists(const std::string& name) {
    std::vector<std::string> objects;
    EXPECT_TRUE(store_->List(DatasetPrefix(name), &objects).ok());
    return !objects.empty();
  }
};

TEST_F(LoadTest, ChunksAndThreadsDoNotChangeTheResult) {
  const std::string input = dir_.Write("a.svm", SyntheticLibsvm(5000));
  LoadOptions one = Options(input, "one");
  one.threads = 1;
  one.chunk_bytes = 1 << 20;
  ASSERT_TRUE(LoadDataset(*store_, one).ok());
  LoadOptions many = Options(input, "many");
  many.threads = 4;
  auto r = LoadDataset(*store_, many);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->train_rows, 5000u);
  EXPECT_EQ(r->test_rows, 0u);
  EXPECT_EQ(r->num_features, 20u);
  EXPECT_EQ(r->num_classes, 3u);
  EXPECT_EQ(r->partitions, (5000u + 96) / 97);
  auto a = AllRows(*store_, "one"), b = AllRows(*store_, "many");
  ASSERT_EQ(a.size(), 5000u);
  EXPECT_EQ(a, b);
  // Rows keep their file order: row r carries value r.
  for (int r = 0; r < 5000; ++r) ASSERT_EQ(b[r].second[2], static_cast<float>(r));
  EXPECT_EQ(r->manifest["label"]["kind"], "multiclass");
}

TEST_F(LoadTest, TestFractionIsSeededAndNearTheFraction) {
  const std::string input = dir_.Write("a.svm", SyntheticLibsvm(4000));
  LoadOptions o = Options(input, "s1");
  o.test_fraction = 0.25;
  auto r1 = LoadDataset(*store_, o);
  ASSERT_TRUE(r1.ok());
  EXPECT_NEAR(static_cast<double>(r1->test_rows) / 4000.0, 0.25, 0.03);
  EXPECT_EQ(r1->train_rows + r1->test_rows, 4000u);
  o.dataset = "s2";
  o.threads = 1;
  o.chunk_bytes = 1 << 16;
  ASSERT_TRUE(LoadDataset(*store_, o).ok());
  EXPECT_EQ(AllRows(*store_, "s1"), AllRows(*store_, "s2"));  // same seed, same split
  o.dataset = "s3";
  o.seed = 2;
  ASSERT_TRUE(LoadDataset(*store_, o).ok());
  EXPECT_NE(AllRows(*store_, "s1"), AllRows(*store_, "s3"));
  EXPECT_EQ(r1->manifest["split"]["method"], "fraction");
}

TEST_F(LoadTest, TestInputGzipAndBinaryLabels) {
  std::string text = "+1 1:1\n-1 2:1\n+1 3:1\n";
  const std::string gz_path = dir_.path() + "/t.svm.gz";
  gzFile gz = gzopen(gz_path.c_str(), "wb");
  gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
  gzclose(gz);
  LoadOptions o = Options(dir_.Write("train.svm", "-1 1:2\n+1 4:2\n"), "tt");
  o.test_input = gz_path;
  auto r = LoadDataset(*store_, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->train_rows, 2u);
  EXPECT_EQ(r->test_rows, 3u);
  EXPECT_EQ(r->num_classes, 2u);
  EXPECT_EQ(r->manifest["label"]["kind"], "binary");
  EXPECT_EQ(r->num_features, 4u);
}

TEST_F(LoadTest, ErrorsLeaveNothingAndSkipBadLinesCounts) {
  std::string text = SyntheticLibsvm(3000);
  text += "1 5:1 3:1\n";  // the last line is bad: partitions were written before it
  const std::string input = dir_.Write("bad.svm", text);
  auto r = LoadDataset(*store_, Options(input, "bad"));
  ASSERT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            input + ":3001:7: expected feature indices in increasing order, found 3 after 5");
  EXPECT_FALSE(Exists("bad"));
  LoadOptions skip = Options(input, "bad");
  skip.skip_bad_lines = true;
  auto s = LoadDataset(*store_, skip);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->bad_lines, 1u);
  EXPECT_EQ(s->train_rows, 3000u);
  ASSERT_EQ(s->bad_line_samples.size(), 1u);
  // An existing dataset is not replaced without overwrite, and survives a failed overwrite.
  auto again = LoadDataset(*store_, skip);
  EXPECT_EQ(again.status().code(), Code::kInvalidArgument);
  LoadOptions over = Options(input, "bad");
  over.writer.overwrite = true;
  EXPECT_FALSE(LoadDataset(*store_, over).ok());
  EXPECT_EQ(AllRows(*store_, "bad").size(), 3000u);
  over.input = dir_.Write("good.svm", "1 1:1\n");
  ASSERT_TRUE(LoadDataset(*store_, over).ok());
  EXPECT_EQ(AllRows(*store_, "bad").size(), 1u);
  std::vector<std::string> objects;
  ASSERT_TRUE(store_->List(DatasetPrefix("bad"), &objects).ok());
  EXPECT_EQ(objects.size(), 2u);  // the manifest and one partition: old partitions removed
}

TEST_F(LoadTest, CsvWithHeaderAndRatings) {
  LoadOptions o = Options(dir_.Write("d.csv", "a,b,label\n1,2,0\n3,4,1\n"), "csv");
  o.format = Format::kCsv;
  o.csv.label_column = "label";
  auto r = LoadDataset(*store_, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->train_rows, 2u);
  EXPECT_EQ(r->num_features, 2u);
  EXPECT_TRUE(r->manifest["dense"].get<bool>());
  // A bad line after a header is numbered as in the file.
  LoadOptions bad = Options(dir_.Write("e.csv", "a,b,label\n1,2,0\n3,x,1\n"), "csv2");
  bad.format = Format::kCsv;
  bad.csv.label_column = "label";
  auto e = LoadDataset(*store_, bad);
  EXPECT_NE(e.status().message().find("e.csv:3:3: expected a numeric value"), std::string::npos)
      << e.status().message();
  LoadOptions ratings = Options(dir_.Write("r.csv", "userId,movieId,rating\n1,2,5\n3,4,1\n"), "mf");
  ratings.format = Format::kRatings;
  auto m = LoadDataset(*store_, ratings);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->num_classes, 0u);  // ratings are a regression target
  EXPECT_EQ(m->manifest["label"]["kind"], "regression");
  EXPECT_EQ(m->num_features, 10u);  // item 4 -> 9
}

}  // namespace
}  // namespace overcast::data
