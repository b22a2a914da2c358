#include "algo/batch_keys.h"

#include <random>
#include <unordered_map>
#include <vector>

#include <gtest/gtest.h>

namespace overcast::algo {
namespace {

// Against a map-based reference: first-seen order, positions, the extra key last, and a clean
// index between batches (a key of one batch must not leak into the next one's positions).
TEST(BatchKeysTest, MatchesAReferenceOverManyBatches) {
  std::mt19937_64 rng(3);
  BatchKeys bk;
  for (int batch = 0; batch < 200; ++batch) {
    // Small and large id ranges (the index grows), with many repeats (a skewed draw).
    const uint32_t range = batch < 100 ? 50 : 1u << 20;
    std::vector<uint32_t> ids(1 + rng() % 3000);
    for (auto& id : ids) {
      const uint32_t r = static_cast<uint32_t>(rng() % range);
      id = (rng() & 1) ? r % 64 : r;
    }
    bk.Build(ids, 99999999);
    std::unordered_map<uint32_t, uint32_t> seen;
    std::vector<uint64_t> want;
    for (size_t e = 0; e < ids.size(); ++e) {
      auto [it, fresh] = seen.emplace(ids[e], static_cast<uint32_t>(want.size()));
      if (fresh) want.push_back(ids[e]);
      ASSERT_EQ(bk.pos[e], it->second) << "batch " << batch << " entry " << e;
    }
    want.push_back(99999999);
    ASSERT_EQ(bk.keys, want) << "batch " << batch;
    EXPECT_EQ(bk.extra_index(), want.size() - 1);
  }
  bk.Build({}, 7);
  EXPECT_EQ(bk.keys, std::vector<uint64_t>{7});
  EXPECT_TRUE(bk.pos.empty());
}

}  // namespace
}  // namespace overcast::algo
