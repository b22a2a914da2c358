#include "data/parse.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

namespace overcast::data {
namespace {

ParsedChunk Parse(Format f, const std::string& text, bool skip = false, CsvLayout csv = {}) {
  ParserConfig c;
  c.format = f;
  c.skip_bad_lines = skip;
  c.csv = std::move(csv);
  ParsedChunk out;
  ParseChunk(c, text, 1, &out);
  return out;
}

std::string FirstError(Format f, const std::string& text) {
  ParsedChunk c = Parse(f, text);
  if (c.errors.empty()) return "no error";
  const ParseError& e = c.errors[0];
  return std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message;
}

TEST(Libsvm, ParsesLabelsIndicesValuesCommentsAndQid) {
  ParsedChunk c = Parse(Format::kLibsvm,
                        "+1 1:0.5 3:2\n-1 qid:7 2:1e-3 # comment\n\n# whole-line comment\n"
                        "3\t4:-7.25\r\n0.5 10:1");
  ASSERT_TRUE(c.errors.empty()) << c.errors[0].message;
  EXPECT_EQ(c.lines, 6u);
  EXPECT_EQ(c.rows.labels, (std::vector<float>{1, -1, 3, 0.5f}));
  EXPECT_EQ(c.rows.offsets, (std::vector<uint64_t>{0, 2, 3, 4, 5}));
  EXPECT_EQ(c.rows.ids, (std::vector<uint32_t>{0, 2, 1, 3, 9}));
  EXPECT_EQ(c.rows.values, (std::vector<float>{0.5f, 2, 1e-3f, -7.25f, 1}));
  EXPECT_EQ(c.id_limit, 10u);
  EXPECT_FALSE(c.labels.all_integer);
}

TEST(Libsvm, BadLinesNameLineColumnExpectedAndFound) {
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 1:1\nabc 1:1\n"),
            "2:1: expected a numeric label, found \"abc\"");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 0:1\n"),
            "1:3: expected a feature index >= 1 (LIBSVM indices are 1-based), found \"0\"");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 -2:1\n"),
            "1:3: expected a feature index (an integer >= 1), found \"-2:1\"");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 3:1 2:1\n"),
            "1:7: expected feature indices in increasing order, found 2 after 3");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 3:1 3:1\n"),
            "1:7: expected feature indices in increasing order, found 3 after 3");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 3 4:1\n"),
            "1:4: expected ':' and a value after feature index \"3\", found a blank");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 3=1\n"),
            "1:4: expected ':' after feature index, found \"=1\"");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 3:x\n"),
            "1:5: expected a numeric feature value, found \"x\"");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 3:nan\n"),
            "1:5: expected a finite feature value, found \"nan\"");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 3:-inf\n"),
            "1:5: expected a finite feature value, found \"-inf\"");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 3:1e99\n"),
            "1:5: expected a feature value within float range, found \"1e99\"");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 1:1\n1 2:"),
            "2:5: expected a numeric feature value, found end of line");
  EXPECT_EQ(FirstError(Format::kLibsvm, "inf 1:1\n"), "1:1: expected a finite label, found \"inf\"");
  EXPECT_EQ(FirstError(Format::kLibsvm, "1 4294967297:1\n"),
            "1:3: expected a feature index <= 4294967296, found \"4294967297\"");
}

TEST(Libsvm, SkipBadLinesCountsAndKeepsTheRest) {
  ParsedChunk c = Parse(Format::kLibsvm, "1 1:1\nx\n1 0:2\n0 2:2\n", /*skip=*/true);
  EXPECT_EQ(c.rows.rows(), 2u);
  EXPECT_EQ(c.bad_lines, 2u);
  ASSERT_EQ(c.errors.size(), 2u);
  EXPECT_EQ(c.errors[1].line, 3u);
  EXPECT_EQ(c.rows.ids, (std::vector<uint32_t>{0, 1}));
}

// The fast decimal path must agree with from_chars bit for bit.
TEST(Libsvm, FastFloatPathMatchesFromChars) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 200000; ++i) {
    const int int_digits = static_cast<int>(rng() % 4), frac_digits = static_cast<int>(rng() % 9);
    std::string s = (rng() & 1) ? "-" : "";
    s += std::to_string(rng() % static_cast<uint64_t>(std::pow(10, int_digits)));
    if (frac_digits) {
      s += ".";
      for (int d = 0; d < frac_digits; ++d) s += static_cast<char>('0' + rng() % 10);
    }
    ParsedChunk c = Parse(Format::kLibsvm, "0 1:" + s + "\n");
    ASSERT_TRUE(c.errors.empty()) << s;
    float want;
    std::from_chars(s.data(), s.data() + s.size(), want);
    ASSERT_EQ(std::memcmp(&want, &c.rows.values[0], 4), 0) << s << " " << want << " vs "
                                                           << c.rows.values[0];
  }
}

TEST(Csv, LayoutFromHeaderWithCategoricalAndIgnoredColumns) {
  CsvOptions o;
  o.label_column = "y";
  o.categorical = {"city"};
  o.ignore = {"0"};
  o.hash_bits = 4;
  auto L = ResolveCsvLayout("id,y,x1,city,x2", o, "f.csv");
  ASSERT_TRUE(L.ok()) << L.status().message();
  EXPECT_TRUE(L->has_header);
  EXPECT_EQ(L->label_column, 1u);
  EXPECT_EQ(L->num_numeric, 2u);
  EXPECT_EQ(L->num_features(), 2u + 16u);
  ParsedChunk c = Parse(Format::kCsv, "7,1,0.5,Paris,2\n8,0,,\"Par\"\"is\",3\n9,1,1,,0\n", false, *L);
  ASSERT_TRUE(c.errors.empty()) << c.errors[0].message;
  ASSERT_EQ(c.rows.rows(), 3u);
  EXPECT_EQ(c.rows.labels, (std::vector<float>{1, 0, 1}));
  // Row 0: x1, x2, then the hashed city; row 1: x1 missing; row 2: city missing.
  EXPECT_EQ(c.rows.offsets, (std::vector<uint64_t>{0, 3, 5, 7}));
  EXPECT_EQ(c.rows.ids[0], 0u);
  EXPECT_EQ(c.rows.ids[1], 1u);
  EXPECT_GE(c.rows.ids[2], 2u);
  EXPECT_LT(c.rows.ids[2], 18u);
  EXPECT_EQ(c.rows.values[2], 1.0f);
  EXPECT_EQ(c.rows.ids[3], 1u);  // x2 of row 1
}

TEST(Csv, HeaderDetectionAndIndexRanges) {
  CsvOptions o;
  o.categorical = {"2-3"};
  auto L = ResolveCsvLayout("1,0.5,a,b", o, "f.csv");
  ASSERT_TRUE(L.ok());
  EXPECT_FALSE(L->has_header);
  EXPECT_EQ(L->num_numeric, 1u);
  EXPECT_EQ(L->kinds[3], CsvLayout::Kind::kCategorical);
  o.label_column = "y";
  auto bad = ResolveCsvLayout("1,0.5,a,b", o, "f.csv");
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("no such column"), std::string::npos);
}

TEST(Csv, SameCategoryInTwoColumnsHashesApart) {
  CsvOptions o;
  o.categorical = {"1", "2"};
  o.hash_bits = 20;
  auto L = ResolveCsvLayout("1,a,a", o, "f.csv");
  ASSERT_TRUE(L.ok());
  ParsedChunk c = Parse(Format::kCsv, "1,a,a\n", false, *L);
  ASSERT_EQ(c.rows.nnz(), 2u);
  EXPECT_NE(c.rows.ids[0], c.rows.ids[1]);
}

TEST(Csv, BadLines) {
  CsvOptions o;
  o.categorical = {"2"};
  auto L = ResolveCsvLayout("1,2,a", o, "f.csv");
  ASSERT_TRUE(L.ok());
  auto err = [&](const std::string& text) {
    ParsedChunk c = Parse(Format::kCsv, text, false, *L);
    if (c.errors.empty()) return std::string("no error");
    return std::to_string(c.errors[0].line) + ":" + std::to_string(c.errors[0].column) + ": " +
           c.errors[0].message;
  };
  EXPECT_EQ(err("1,2,a\n1,2,\xff\xfe\n"), "2:5: expected UTF-8 text, found byte 0xff");
  EXPECT_EQ(err("1,2,caf\xc3\xa9\n1,2,\xc3\x28\n"), "2:5: expected UTF-8 text, found byte 0xc3");
  EXPECT_EQ(err("1,2\n"), "1:4: expected 3 fields, found 2");
  EXPECT_EQ(err("1,2,a,b\n"), "1:7: expected 3 fields, found more");
  EXPECT_EQ(err("x,2,a\n"), "1:1: expected a numeric label, found \"x\" in label column column0");
  EXPECT_EQ(err("1,abc,a\n"),
            "1:3: expected a numeric value, found \"abc\" in numeric column column1 (list it in "
            "--categorical if it is a category)");
  EXPECT_EQ(err("1,2,\"a\n"), "1:7: expected a closing quote for the field at column 5, found end of line");
  EXPECT_EQ(err("1,2,caf\xc3\xa9\r\n"), "no error");
}

TEST(Ratings, SeparatorsHeaderAndLayout) {
  ParsedChunk c = Parse(Format::kRatings, "1 10 4.5\n2,20,3,978300760\n3::30::1::978300761\n4\t40\t2\n");
  ASSERT_TRUE(c.errors.empty()) << c.errors[0].message;
  ASSERT_EQ(c.rows.rows(), 4u);
  EXPECT_EQ(c.rows.labels, (std::vector<float>{4.5f, 3, 1, 2}));
  EXPECT_EQ(c.rows.ids[0], 2u);   // user 1 -> 2
  EXPECT_EQ(c.rows.ids[1], 21u);  // item 10 -> 21
  EXPECT_EQ(c.max_user, 4u);
  EXPECT_EQ(c.max_item, 40u);
  EXPECT_TRUE(RatingsLineIsHeader("userId,movieId,rating,timestamp"));
  EXPECT_FALSE(RatingsLineIsHeader("1,2,3"));
}

TEST(Ratings, MissingOrBadFields) {
  EXPECT_EQ(FirstError(Format::kRatings, "1 2\n"),
            "1:4: expected a rating (a line is: user item rating [timestamp]), found end of line");
  EXPECT_EQ(FirstError(Format::kRatings, "1,2,\n"),
            "1:5: expected a rating after the separator, found end of line");
  EXPECT_EQ(FirstError(Format::kRatings, "1,,3\n"), "1:3: expected an item id, found \",\"");
  EXPECT_EQ(FirstError(Format::kRatings, "u1 2 3\n"),
            "1:1: expected a user id (an integer in [0, 2147483647]), found \"u1\"");
  EXPECT_EQ(FirstError(Format::kRatings, "1 2 x\n"), "1:5: expected a numeric rating, found \"x\"");
  EXPECT_EQ(FirstError(Format::kRatings, "1 2 3 4 5\n"),
            "1:9: expected end of line after the timestamp, found \"5\"");
}

TEST(LabelStats, MergeKeepsDistinctSortedAndCapped) {
  LabelStats a, b;
  for (float v : {1.0f, 0.0f, 1.0f}) a.Add(v);
  for (float v : {2.0f, 0.0f}) b.Add(v);
  a.Merge(b);
  EXPECT_EQ(a.count, 5u);
  EXPECT_EQ(a.distinct, (std::vector<float>{0, 1, 2}));
  LabelStats many;
  for (int i = 0; i < 2000; ++i) many.Add(static_cast<float>(i));
  EXPECT_TRUE(many.too_many);
  EXPECT_TRUE(many.all_integer);
}

}  // namespace
}  // namespace overcast::data
