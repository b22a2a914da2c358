#include "data/normalize.h"

#include <cmath>

#include <gtest/gtest.h>

#include "data/load.h"
#include "data/test_util.h"

namespace overcast::data {
namespace {

class NormalizeTest : public ::testing::Test {
 protected:
  void Load(const std::string& name, Format f, const std::string& text, LoadOptions o = {}) {
    o.input = dir_.Write(name + ".txt", text);
    o.dataset = name;
    o.format = f;
    o.partition_rows = 3;  // several partitions, so the statistics are merged across threads
    auto r = LoadDataset(*store_, o);
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  Partition ReadSplit(const std::string& name, Split split) {
    auto m = ReadManifest(*store_, name);
    EXPECT_TRUE(m.ok());
    Partition all, p;
    std::string scratch;
    for (const PartitionRef* ref : m->PartitionsOf(split)) {
      EXPECT_TRUE(ReadPartition(*store_, *m, *ref, &p, &scratch).ok());
      for (size_t r = 0; r < p.rows(); ++r) all.AppendRowFrom(p, r);
    }
    return all;
  }
  testing::TempDir dir_;
  std::unique_ptr<Store> store_ = NewLocalStore(dir_.path() + "/store");
};

// Sparse: feature 1 holds 2, -4, 6 in three of eight rows (five implicit zeros).
const char kSparse[] = "1 1:2\n0 1:-4 2:1\n1 1:6\n0 2:3\n1 3:5\n0 2:1\n1 3:1\n0 2:1\n";

TEST_F(NormalizeTest, StandardOnSparseMatchesClosedFormWithImplicitZeros) {
  Load("sp", Format::kLibsvm, kSparse);
  NormalizeOptions o;
  o.input = "sp";
  o.output = "sp-std";
  o.threads = 3;
  auto r = NormalizeDataset(*store_, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  // Feature 0 (index 1) over 8 rows: mean = 4/8, E[x^2] = (4+16+36)/8 = 7.
  const double mean = 0.5, sd = std::sqrt(7.0 - mean * mean);
  auto m = ReadManifest(*store_, "sp-std");
  ASSERT_TRUE(m.ok());
  const auto& n = m->json["normalization"];
  EXPECT_EQ(n["feature_ids"][0], 0);
  EXPECT_NEAR(n["mean"][0].get<double>(), mean, 1e-12);
  EXPECT_NEAR(n["std"][0].get<double>(), sd, 1e-9);
  EXPECT_EQ(n["min"][0].get<double>(), -4.0);
  EXPECT_EQ(n["max"][0].get<double>(), 6.0);
  EXPECT_EQ(n["shift"][0].get<double>(), 0.0);  // sparse: no centring
  Partition p = ReadSplit("sp-std", Split::kTrain);
  ASSERT_EQ(p.rows(), 8u);
  EXPECT_EQ(p.nnz(), 9u);  // sparsity kept
  EXPECT_NEAR(p.values[0], 2.0 / sd, 1e-6);
  EXPECT_NEAR(p.values[1], -4.0 / sd, 1e-6);
}

TEST_F(NormalizeTest, MinMaxWithoutCentreIsMaxAbs) {
  Load("sp", Format::kLibsvm, kSparse);
  NormalizeOptions o;
  o.input = "sp";
  o.output = "sp-mm";
  o.method = NormalizeMethod::kMinMax;
  ASSERT_TRUE(NormalizeDataset(*store_, o).ok());
  Partition p = ReadSplit("sp-mm", Split::kTrain);
  EXPECT_NEAR(p.values[0], 2.0 / 6.0, 1e-7);
  EXPECT_NEAR(p.values[1], -4.0 / 6.0, 1e-7);
  o.center = true;
  o.output = "sp-c";
  auto refused = NormalizeDataset(*store_, o);
  EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("dense"), std::string::npos);
}

TEST_F(NormalizeTest, DenseCentredFitsOnTrainAndAppliesToTest) {
  LoadOptions lo;
  lo.test_input = dir_.Write("test.csv", "a,b,y\n20,0,1\n");
  lo.csv.label_column = "y";
  Load("dn", Format::kCsv, "a,b,y\n1,10,0\n2,10,1\n3,10,0\n4,10,1\n", lo);
  NormalizeOptions o;
  o.input = "dn";
  o.output = "dn-mm";
  o.method = NormalizeMethod::kMinMax;
  o.center = true;
  ASSERT_TRUE(NormalizeDataset(*store_, o).ok());
  Partition train = ReadSplit("dn-mm", Split::kTrain);
  ASSERT_EQ(train.nnz(), 8u);
  // Feature a: (x - 1) / 3; feature b is constant: shift 10, scale 1.
  EXPECT_EQ(train.values, (std::vector<float>{0, 0, 1.0f / 3, 0, 2.0f / 3, 0, 1, 0}));
  Partition test = ReadSplit("dn-mm", Split::kTest);
  EXPECT_NEAR(test.values[0], 19.0 / 3, 1e-6);  // test rows use the train statistics
  EXPECT_EQ(test.values[1], -10.0f);

  o.output = "dn-std";
  o.method = NormalizeMethod::kStandard;
  ASSERT_TRUE(NormalizeDataset(*store_, o).ok());
  Partition s = ReadSplit("dn-std", Split::kTrain);
  // a: mean 2.5, population std sqrt(1.25).
  EXPECT_NEAR(s.values[0], (1 - 2.5) / std::sqrt(1.25), 1e-6);
  EXPECT_NEAR(s.values[6], (4 - 2.5) / std::sqrt(1.25), 1e-6);
}

}  // namespace
}  // namespace overcast::data
