#include "ps/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ps/protocol.h"
#include "ps/sparse_table.h"

namespace overcast::ps {
namespace {

OptimizerConfig Opt(OptimizerKind k, float lr) {
  OptimizerConfig o;
  o.kind = k;
  o.lr = lr;
  return o;
}

TEST(Optimizer, AddAccumulates) {
  float w[2] = {1, 2}, g[2] = {0.5f, -4};
  ApplyUpdate(Opt(OptimizerKind::kAdd, 0), w, nullptr, g, 2, nullptr);
  EXPECT_FLOAT_EQ(w[0], 1.5f);
  EXPECT_FLOAT_EQ(w[1], -2.0f);
}

TEST(Optimizer, SgdWithL2MatchesClosedForm) {
  OptimizerConfig o = Opt(OptimizerKind::kSgd, 0.1f);
  o.l2 = 0.2f;
  float w = 1, g = 0.5f;
  ApplyUpdate(o, &w, nullptr, &g, 1, nullptr);
  EXPECT_FLOAT_EQ(w, 1 - 0.1f * (0.5f + 0.2f * 1));
}

TEST(Optimizer, AdagradConstantGradientIsHarmonicRootSum) {
  OptimizerConfig o = Opt(OptimizerKind::kAdagrad, 0.5f);
  o.eps = 0;
  float w = 0, acc = 0, g = 2;
  double want = 0;
  for (int k = 1; k <= 10; ++k) {
    ApplyUpdate(o, &w, &acc, &g, 1, nullptr);
    want -= 0.5 * 2 / std::sqrt(k * 4.0);  // lr * g / sqrt(k g^2)
    EXPECT_NEAR(w, want, 1e-5) << k;
  }
  EXPECT_FLOAT_EQ(acc, 40.0f);
}

TEST(Optimizer, FtrlFirstStepAndL1Sparsity) {
  OptimizerConfig o = Opt(OptimizerKind::kFtrl, 0.1f);  // alpha
  o.ftrl_beta = 1.0f;
  o.l1 = 0.5f;
  o.l2 = 0.25f;
  float w = 0, state[2] = {0, 0}, g = 3;
  ApplyUpdate(o, &w, state, &g, 1, nullptr);
  // z = g, n = g^2, w = -(z - l1) / ((beta + |g|) / alpha + l2)
  EXPECT_FLOAT_EQ(state[0], 3.0f);
  EXPECT_FLOAT_EQ(state[1], 9.0f);
  EXPECT_NEAR(w, -(3 - 0.5) / ((1 + 3) / 0.1 + 0.25), 1e-6);
  // A gradient whose |z| stays within l1 gives an exact zero weight.
  float w2 = 0, s2[2] = {0, 0}, small = 0.4f;
  ApplyUpdate(o, &w2, s2, &small, 1, nullptr);
  EXPECT_EQ(w2, 0.0f);
}

TEST(Optimizer, AdamConstantGradientMovesLrPerStep) {
  OptimizerConfig o = Opt(OptimizerKind::kAdam, 0.01f);
  o.eps = 0;
  float w = 1, state[2] = {0, 0}, step = 0, g = -0.3f;
  for (int k = 1; k <= 5; ++k) {
    ApplyUpdate(o, &w, state, &g, 1, &step);
    // Bias-corrected m/sqrt(v) equals sign(g) for a constant gradient.
    EXPECT_NEAR(w, 1 + 0.01 * k, 1e-5) << k;
  }
  EXPECT_EQ(step, 5.0f);
}

TEST(SparseTable, InsertFindGrowAndTheSentinelKey) {
  SparseTable t(3, 16);
  std::vector<uint64_t> keys = {0, 1, SparseTable::kEmpty, 42, 1ULL << 63};
  for (uint64_t i = 0; i < 10000; ++i) keys.push_back(i * 7919 + 5);
  size_t distinct = 0;
  for (uint64_t k : keys) {
    bool inserted;
    float* row = t.FindOrInsert(k, &inserted);
    if (inserted) {
      ++distinct;
      row[0] = static_cast<float>(k % 1000);
      row[2] = 7;
    }
  }
  EXPECT_EQ(t.size(), distinct);
  for (uint64_t k : keys) {
    float* row = t.Find(k);
    ASSERT_NE(row, nullptr) << k;
    EXPECT_EQ(row[0], static_cast<float>(k % 1000));
    EXPECT_EQ(row[2], 7);
  }
  EXPECT_EQ(t.Find(3), nullptr);
  size_t visited = 0;
  t.ForEach([&](uint64_t, const float*) { ++visited; });
  EXPECT_EQ(visited, t.size());
}

TEST(SparseTable, MemoryWithinTwiceTheRawBytes) {
  // Raw bytes of a key of width 2: 8 + 2 * 4. Load factor stays in (3/8, 3/4].
  SparseTable t(2);
  const size_t n = 1'000'000;
  for (uint64_t i = 0; i < n; ++i) {
    bool ins;
    t.FindOrInsert(i * 0x9E3779B97F4A7C15ULL, &ins);
  }
  double per_key = static_cast<double>(t.memory_bytes()) / n;
  EXPECT_LE(per_key, 2 * 16.0) << per_key;
}

TEST(Routing, KeysSpreadEvenlyOverServersAndShards) {
  const uint32_t servers = 3, shards = 4;
  const int n = 1'200'000;
  std::vector<int> count(servers * shards, 0);
  for (uint64_t k = 0; k < static_cast<uint64_t>(n); ++k) {  // sequential keys: the hard case
    uint64_t h = MixKey(k);
    ++count[ServerOf(h, servers) * shards + ShardOf(h, shards)];
  }
  const double expect = static_cast<double>(n) / (servers * shards);
  for (int c : count) EXPECT_NEAR(c, expect, expect * 0.01);
}

TEST(Initializer, DeterministicPerKeyAndWithinRange) {
  Initializer init{InitKind::kUniform, -0.5f, 0.5f, 99};
  double sum = 0;
  for (uint64_t k = 0; k < 10000; ++k) {
    float v = InitialValue(init, k, 1);
    EXPECT_GE(v, -0.5f);
    EXPECT_LT(v, 0.5f);
    EXPECT_EQ(v, InitialValue(init, k, 1));
    sum += v;
  }
  EXPECT_NEAR(sum / 10000, 0.0, 0.02);
  Initializer normal{InitKind::kNormal, 1.0f, 2.0f, 5};
  double s = 0, s2 = 0;
  for (uint64_t k = 0; k < 20000; ++k) {
    double v = InitialValue(normal, k, 0);
    s += v;
    s2 += v * v;
  }
  double mean = s / 20000, var = s2 / 20000 - mean * mean;
  EXPECT_NEAR(mean, 1.0, 0.05);
  EXPECT_NEAR(std::sqrt(var), 2.0, 0.05);
}

}  // namespace
}  // namespace overcast::ps
