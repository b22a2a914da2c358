// Model file round trip, corrupt files, request parsing and response formatting.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/fs.h"
#include "common/hash.h"
#include "serve/api.h"
#include "serve/loadgen.h"
#include "serve/predictor.h"

namespace overcast::serve {
namespace {

std::string Tmp(const std::string& n) {
  return (std::filesystem::temp_directory_path() / ("oc-serve-" + n + "-" + std::to_string(::getpid()))).string();
}

TEST(Predictor, LinearBinaryMatchesHandComputation) {
  const std::string p = Tmp("bin");
  ModelInfo info{"m", Task::kBinary, 3, 2, 0.9, "", {}};
  std::vector<float> w = {1, -2, 0.5}, b = {0.25};
  ASSERT_TRUE(WriteLinearModel(p, info, w, b).ok());
  auto m = LoadModel(p);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ((*m)->info().name, "m");
  EXPECT_DOUBLE_EQ((*m)->info().accuracy, 0.9);
  SparseBatch batch;
  ASSERT_TRUE(ParsePredictRequest(R"({"instances":[{"ids":[0,2],"values":[2,4]},[0,1]]})",
                                  (*m)->info(), &batch, 100).ok());
  ASSERT_EQ(batch.rows(), 2u);
  std::vector<float> out;
  (*m)->Predict(batch, &out);
  ASSERT_EQ(out.size(), 4u);
  const float s0 = 0.25f + 2 * 1 + 4 * 0.5f, s1 = 0.25f - 2;
  EXPECT_NEAR(out[1], 1 / (1 + std::exp(-s0)), 1e-6);
  EXPECT_NEAR(out[3], 1 / (1 + std::exp(-s1)), 1e-6);
  auto j = nlohmann::json::parse(FormatPredictResponse((*m)->info(), out.data(), 2));
  EXPECT_EQ(j["predictions"][0]["label"], 1);
  EXPECT_EQ(j["predictions"][1]["label"], 0);
  std::filesystem::remove(p);
}

TEST(Predictor, SoftmaxSumsToOne) {
  const std::string p = Tmp("mc");
  ASSERT_TRUE(WriteRandomLinearModel(p, "mc", Task::kMulticlass, 50, 7, 3).ok());
  auto m = LoadModel(p);
  ASSERT_TRUE(m.ok());
  SparseBatch batch;
  ASSERT_TRUE(ParsePredictRequest(R"({"instances":[{"ids":[1,49]}]})", (*m)->info(), &batch, 10).ok());
  std::vector<float> out;
  (*m)->Predict(batch, &out);
  ASSERT_EQ(out.size(), 7u);
  float s = 0;
  for (float x : out) s += x;
  EXPECT_NEAR(s, 1.0f, 1e-5);
  std::filesystem::remove(p);
}

TEST(Predictor, CorruptAndTruncatedFilesAreRefused) {
  const std::string p = Tmp("bad");
  ASSERT_TRUE(WriteRandomLinearModel(p, "x", Task::kBinary, 10, 2, 1).ok());
  std::string bytes;
  ASSERT_TRUE(ReadFile(p, &bytes).ok());
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(p, flipped).ok());
  auto r = LoadModel(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(p, bytes.substr(0, bytes.size() - 9)).ok());
  EXPECT_FALSE(LoadModel(p).ok());
  ASSERT_TRUE(WriteFileAtomic(p, "hello").ok());
  EXPECT_EQ(LoadModel(p).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(LoadModel(p + ".missing").status().code(), Code::kNotFound);
  std::filesystem::remove(p);
}

// A file in the training branch's format (docs/formats.md there), built byte by byte.
std::string TrainedModelBytes(const std::string& algorithm, const nlohmann::json& meta,
                              uint64_t rows, uint32_t dim, const std::vector<float>& w) {
  std::string out = "OCMODEL1";
  ByteWriter b(&out);
  b.Put<uint32_t>(1);
  b.Put<uint32_t>(0);
  b.PutString(algorithm);
  b.PutString(meta.dump());
  b.Put<uint32_t>(1);
  b.PutString("w");
  b.Put<uint64_t>(rows);
  b.Put<uint32_t>(dim);
  b.PutArray(std::span<const float>(w));
  b.Put<uint64_t>(Checksum64(out.data(), out.size()));
  return out;
}

TEST(Predictor, ReadsTrainedLogregWithNormalization) {
  const std::string p = Tmp("trained") + ".model";
  nlohmann::json meta = {{"format", "overcast-model"}, {"task", "binary"}, {"dataset", "ctr"},
                         {"num_features", 2}, {"training", {{"test_accuracy", 0.75}}},
                         {"normalization", {{"feature_ids", {1}}, {"shift", {1.0}}, {"scale", {0.5}}}}};
  // w rows: feature 0, feature 1, bias.
  ASSERT_TRUE(WriteFileAtomic(p, TrainedModelBytes("logreg", meta, 3, 1, {2, 4, -1})).ok());
  auto m = LoadModel(p);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ((*m)->info().name, std::filesystem::path(p).stem().string());
  EXPECT_EQ((*m)->info().group, "ctr");
  EXPECT_DOUBLE_EQ((*m)->info().accuracy, 0.75);
  EXPECT_EQ((*m)->info().num_features, 2u);
  SparseBatch batch;
  ASSERT_TRUE(ParsePredictRequest(R"({"instances":[[1, 3]]})", (*m)->info(), &batch, 10).ok());
  std::vector<float> out;
  (*m)->Predict(batch, &out);
  const float score = -1 + 2 * 1 + 4 * ((3 - 1) * 0.5f);
  EXPECT_NEAR(out[1], 1 / (1 + std::exp(-score)), 1e-6);

  ASSERT_TRUE(WriteFileAtomic(p, TrainedModelBytes("fm", meta, 3, 1, {2, 4, -1})).ok());
  EXPECT_NE(LoadModel(p).status().message().find("linear models only"), std::string::npos);
  meta["task"] = "multiclass";
  ASSERT_TRUE(WriteFileAtomic(p, TrainedModelBytes("softmax", meta, 3, 3, std::vector<float>(9, 0.1f))).ok());
  auto sm = LoadModel(p);
  ASSERT_TRUE(sm.ok()) << sm.status().message();
  EXPECT_EQ((*sm)->info().num_classes, 3u);
  std::string bytes = TrainedModelBytes("softmax", meta, 3, 3, std::vector<float>(9, 0.1f));
  bytes[20] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(p, bytes).ok());
  EXPECT_NE(LoadModel(p).status().message().find("checksum"), std::string::npos);
  std::filesystem::remove(p);
}

TEST(Api, BadRequestsNameTheProblem) {
  ModelInfo info{"m", Task::kBinary, 10, 2, -1, "", {}};
  auto err = [&](const std::string& body) {
    SparseBatch b;
    Status s = ParsePredictRequest(body, info, &b, 4);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << body;
    return s.message();
  };
  EXPECT_NE(err("{nope").find("not valid JSON"), std::string::npos);
  EXPECT_NE(err("[1,2]").find("object"), std::string::npos);
  EXPECT_NE(err(R"({"x":1})").find("instances"), std::string::npos);
  EXPECT_NE(err(R"({"instances":[{"ids":[10]}]})").find("out of range"), std::string::npos);
  EXPECT_NE(err(R"({"instances":[{"ids":[-1]}]})").find("non-negative"), std::string::npos);
  EXPECT_NE(err(R"({"instances":[{"ids":[1,2],"values":[1]}]})").find("as long as"), std::string::npos);
  EXPECT_NE(err(R"({"instances":[[1,2,3,4,5,6,7,8,9,10,11]]})").find("dense row"), std::string::npos);
  EXPECT_NE(err(R"({"instances":[1,1,1,1,1]})").find("limit"), std::string::npos);
  EXPECT_NE(err(R"({"instances":[{"ids":[1]}, "x"]})").find("row 1"), std::string::npos);
  EXPECT_NE(err(R"({"instances":[]})").find("empty"), std::string::npos);
}

TEST(Api, PredictPath) {
  std::string m;
  EXPECT_TRUE(ParsePredictPath("/v1/models/ctr:predict", &m));
  EXPECT_EQ(m, "ctr");
  EXPECT_FALSE(ParsePredictPath("/v1/models/:predict", &m));
  EXPECT_FALSE(ParsePredictPath("/v1/models/a/b:predict", &m));
  auto j = nlohmann::json::parse(JsonError(400, "x \"y\""));
  EXPECT_EQ(j["error"]["code"], 400);
  EXPECT_EQ(j["error"]["message"], "x \"y\"");
}

TEST(Trace, GeneratedShapesAndCsv) {
  auto c = MakeTrace("constant", 7, 0, 5, 1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, std::vector<double>(5, 7));
  auto d = MakeTrace("diurnal", 10, 110, 100, 1);
  ASSERT_TRUE(d.ok());
  EXPECT_DOUBLE_EQ((*d)[0], 10);
  EXPECT_NEAR((*d)[50], 110, 1e-9);
  auto b = MakeTrace("bursty", 10, 100, 200, 3);
  ASSERT_TRUE(b.ok());
  int peaks = 0;
  for (double x : *b) peaks += x == 100;
  EXPECT_GT(peaks, 10);
  EXPECT_LT(peaks, 150);
  EXPECT_FALSE(MakeTrace("wavy", 1, 1, 1, 1).ok());
  const std::string p = Tmp("trace");
  ASSERT_TRUE(WriteFileAtomic(p, "second,rate\n0,5\n1,7.5\n").ok());
  auto t = ReadTraceCsv(p);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(*t, (std::vector<double>{5, 7.5}));
  ASSERT_TRUE(WriteFileAtomic(p, "5\n-3\n").ok());
  auto bad = ReadTraceCsv(p);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(":2:"), std::string::npos) << bad.status().message();
  std::filesystem::remove(p);
}

}  // namespace
}  // namespace overcast::serve
