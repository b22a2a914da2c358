#include "algo/cross.h"

#include <gtest/gtest.h>

#include "algo/params.h"

namespace overcast::algo {
namespace {

data::OwnedMinibatch Rows(std::vector<std::vector<std::pair<uint32_t, float>>> rows) {
  data::OwnedMinibatch b;
  b.offsets.push_back(0);
  for (const auto& row : rows) {
    b.labels.push_back(1);
    for (auto [id, x] : row) {
      b.ids.push_back(id);
      b.values.push_back(x);
    }
    b.offsets.push_back(b.ids.size());
  }
  b.Refresh();
  return b;
}

TEST(CrossTest, SpecsParseOrSayWhy) {
  EXPECT_EQ(Crosses::Check(""), "");
  EXPECT_EQ(Crosses::Check("0x1"), "");
  EXPECT_EQ(Crosses::Check("0x1,2x3+4x5"), "");
  for (const char* bad : {"0", "0x", "x1", "0x1,", "ax1", "0x1x2", "0 x1", "-1x2", ",0x1"})
    EXPECT_NE(Crosses::Check(bad), "") << bad;
  EXPECT_TRUE(Crosses::Make("", 0, 20, 10).value().empty());
  // The last crossed id must fit in 32 bits.
  EXPECT_TRUE(Crosses::Make("0x1", 0, 30, uint64_t{3} << 30).ok());
  EXPECT_FALSE(Crosses::Make("0x1", 0, 30, (uint64_t{3} << 30) + 1).ok());
  // The parameter rejects a bad spec with the model's one-line message.
  std::vector<ParamSpec> specs = {ParamSpec::Text("cross", "", "h", Crosses::Check)};
  auto p = Params::Parse(specs, {"cross=0y1"}, "logreg");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("--param cross=0y1 for model logreg"), std::string::npos);
  EXPECT_EQ(Params::Parse(specs, {"cross=0x1"}, "m")->Text("cross"), "0x1");
}

TEST(CrossTest, ExpandAppendsOneProductPerPairOfFieldEntries) {
  // field_bits 2: ids 0-3 are field 0, 4-7 field 1, 8-11 field 2.
  const uint64_t base = 100;
  auto c = Crosses::Make("0x1,2x2", 2, 4, base).value();
  EXPECT_EQ(c.keys(), 16u);
  auto in = Rows({{{1, 2.0f}, {5, 3.0f}, {6, 0.5f}, {8, 1.0f}, {9, 4.0f}, {50, 7.0f}},
                  {{5, 1.0f}}});
  data::OwnedMinibatch out;
  c.Expand(in.view, /*limit=*/40, &out);
  ASSERT_EQ(out.view.rows(), 2u);
  // Row 0: its 5 known entries (id 50 >= limit is dropped), then 1x5, 1x6 (0x1) and 8x9 (2x2).
  ASSERT_EQ(out.offsets[1], 8u);
  EXPECT_EQ(std::vector<uint32_t>(out.ids.begin(), out.ids.begin() + 5),
            (std::vector<uint32_t>{1, 5, 6, 8, 9}));
  EXPECT_EQ(std::vector<float>(out.values.begin() + 5, out.values.begin() + 8),
            (std::vector<float>{6.0f, 1.0f, 4.0f}));
  for (size_t i = 5; i < 8; ++i) {
    EXPECT_GE(out.ids[i], base);
    EXPECT_LT(out.ids[i], base + 16);
  }
  // Row 1 has no field-0 entry: nothing crossed.
  EXPECT_EQ(out.offsets[2] - out.offsets[1], 1u);
  // The same pair of ids always lands on the same id.
  data::OwnedMinibatch again;
  c.Expand(Rows({{{1, 1.0f}, {5, 1.0f}}}).view, 40, &again);
  EXPECT_EQ(again.ids[2], out.ids[5]);
  EXPECT_EQ(out.view.labels.size(), 2u);

  // A row out of id order (as a request may send it) crosses as the sorted row does.
  data::OwnedMinibatch shuffled;
  c.Expand(Rows({{{50, 7.0f}, {9, 4.0f}, {5, 3.0f}, {1, 2.0f}, {8, 1.0f}, {6, 0.5f}}}).view, 40,
           &shuffled);
  ASSERT_EQ(shuffled.offsets[1], 8u);
  EXPECT_EQ(std::vector<uint32_t>(shuffled.ids.begin(), shuffled.ids.begin() + 8),
            std::vector<uint32_t>(out.ids.begin(), out.ids.begin() + 8));
  EXPECT_EQ(std::vector<float>(shuffled.values.begin(), shuffled.values.begin() + 8),
            std::vector<float>(out.values.begin(), out.values.begin() + 8));
}

}  // namespace
}  // namespace overcast::algo
