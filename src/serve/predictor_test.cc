// Model file round trip, corrupt files, request parsing and response formatting.
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "algo/model.h"
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

// `values` as binary tensor data: little-endian (this host's order), packed.
template <class T>
std::string Bytes(std::initializer_list<T> values) {
  static_assert(std::endian::native == std::endian::little);
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), std::data(values), out.size());
  return out;
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

// A model file as `overcast train --out` writes it, with one table.
Status WriteTrainedModel(const std::string& path, const std::string& algorithm, nlohmann::json meta,
                         const std::string& table, uint64_t rows, uint32_t dim,
                         std::vector<float> data) {
  algo::Model m;
  m.algorithm = algorithm;
  m.meta = std::move(meta);
  m.tables[table] = algo::ModelTable{rows, dim, std::move(data)};
  return algo::SaveModel(path, m);
}

std::vector<float> PredictJson(const Predictor& p, const std::string& body) {
  SparseBatch batch;
  Status s = ParsePredictRequest(body, p.info(), &batch, 10);
  EXPECT_TRUE(s.ok()) << s.message();
  std::vector<float> out;
  p.Predict(batch, &out);
  return out;
}

TEST(Predictor, ReadsTrainedLogregWithNormalization) {
  const std::string p = Tmp("trained") + ".model";
  nlohmann::json meta = {{"dataset", "ctr"}, {"num_features", 2},
                         {"label", {{"kind", "binary"}, {"classes", {-1, 1}}}},
                         {"training", {{"test_accuracy", 0.75}}},
                         {"normalization", {{"feature_ids", {1}}, {"shift", {1.0}}, {"scale", {0.5}}}}};
  // w rows: feature 0, feature 1, bias.
  ASSERT_TRUE(WriteTrainedModel(p, "logreg", meta, "w", 3, 1, {2, 4, -1}).ok());
  auto m = LoadModel(p);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ((*m)->info().name, std::filesystem::path(p).stem().string());
  EXPECT_EQ((*m)->info().group, "ctr");
  EXPECT_DOUBLE_EQ((*m)->info().accuracy, 0.75);
  EXPECT_EQ((*m)->info().num_features, 2u);
  EXPECT_EQ((*m)->info().class_values, (std::vector<double>{-1, 1}));
  auto out = PredictJson(**m, R"({"instances":[[1, 3]]})");
  const float score = -1 + 2 * 1 + 4 * ((3 - 1) * 0.5f);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NEAR(out[1], 1 / (1 + std::exp(-score)), 1e-6);
  EXPECT_NEAR(out[0] + out[1], 1.0, 1e-6);

  meta["label"] = {{"kind", "multiclass"}, {"classes", {0, 1, 2}}};
  meta["num_classes"] = 3;
  ASSERT_TRUE(WriteTrainedModel(p, "softmax", meta, "w", 3, 3, std::vector<float>(9, 0.1f)).ok());
  auto sm = LoadModel(p);
  ASSERT_TRUE(sm.ok()) << sm.status().message();
  EXPECT_EQ((*sm)->info().num_classes, 3u);
  std::string bytes;
  ASSERT_TRUE(ReadFile(p, &bytes).ok());
  bytes[20] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(p, bytes).ok());
  EXPECT_NE(LoadModel(p).status().message().find("checksum"), std::string::npos);
  // A table the algorithm does not read is refused at load, not while serving.
  ASSERT_TRUE(WriteTrainedModel(p, "softmax", meta, "q", 3, 3, std::vector<float>(9, 0.1f)).ok());
  EXPECT_NE(LoadModel(p).status().message().find("tables do not fit"), std::string::npos);
  ASSERT_TRUE(WriteTrainedModel(p, "nosuch", meta, "w", 3, 3, std::vector<float>(9, 0.1f)).ok());
  EXPECT_FALSE(LoadModel(p).ok());
  std::filesystem::remove(p);
  std::filesystem::remove(p + ".json");
}

// Every built-in is served by its own algorithm: a factorization machine and k-means here.
TEST(Predictor, ServesFmAndKmeansModels) {
  const std::string p = Tmp("fm") + ".model";
  nlohmann::json meta = {{"dataset", "ctr"}, {"num_features", 2},
                         {"label", {{"kind", "binary"}}}, {"params", {{"factors", 2}}}};
  // v rows (feature 0, feature 1, bias): [linear weight, factor 1, factor 2].
  ASSERT_TRUE(WriteTrainedModel(p, "fm", meta, "v", 3, 3, {0.5f, 1, 2, -1, 3, 1, 0.25f, 0, 0}).ok());
  auto fm = LoadModel(p);
  ASSERT_TRUE(fm.ok()) << fm.status().message();
  EXPECT_EQ((*fm)->info().task, Task::kBinary);
  auto out = PredictJson(**fm, R"({"instances":[{"ids":[0,1],"values":[1,2]}]})");
  // y = 0.25 + 0.5*1 - 1*2 + <v0, v1> x0 x1 = 0.25 + 0.5 - 2 + (1*3 + 2*1) * 2
  const float y = 0.25f + 0.5f - 2.0f + 5.0f * 2.0f;
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NEAR(out[1], 1 / (1 + std::exp(-y)), 1e-5);

  const std::string k = Tmp("km") + ".model";
  nlohmann::json kmeta = {{"dataset", "pts"}, {"num_features", 2}, {"params", {{"k", 2}}}};
  ASSERT_TRUE(WriteTrainedModel(k, "kmeans", kmeta, "centers", 2, 2, {0, 0, 10, 10}).ok());
  auto km = LoadModel(k);
  ASSERT_TRUE(km.ok()) << km.status().message();
  EXPECT_EQ((*km)->info().task, Task::kClustering);
  EXPECT_EQ((*km)->info().num_classes, 2u);
  out = PredictJson(**km, R"({"instances":[[9, 8], [1, 0]]})");
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[1], 1.0f);
  EXPECT_NEAR(out[0], 1 + 4, 1e-4);
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_NEAR(out[2], 1, 1e-4);
  EXPECT_EQ(FormatPredictResponse((*km)->info(), out.data(), 2),
            R"({"model":")" + (*km)->info().name +
                R"(","predictions":[{"cluster":1,"distance":5},{"cluster":0,"distance":1}]})");
  for (const auto& f : {p, p + ".json", k, k + ".json"}) std::filesystem::remove(f);
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
  // Bytes that are not UTF-8 (a client's model name) are replaced, not thrown on.
  j = nlohmann::json::parse(JsonError(404, "unknown model '\xff\xfe'"));
  EXPECT_EQ(j["error"]["message"], "unknown model '\xef\xbf\xbd\xef\xbf\xbd'");
}

// V2 infer requests become V1 rows: flat or nested data, [N, F] or [F], BOOL as 0/1; anything
// else an error that says what.
TEST(Api, V2InferRequestsBecomeV1Rows) {
  auto rows = [](const std::string& body, std::string* id = nullptr) {
    V2Infer req;
    auto r = V2InferToV1(body, &req);
    if (id != nullptr) *id = req.id;
    return r.ok() ? nlohmann::json::parse(*r) : nlohmann::json(r.status().message());
  };
  const auto want = nlohmann::json::parse(R"({"instances":[[1,0.5,0],[0,2,3]]})");
  std::string id;
  EXPECT_EQ(rows(R"({"id":"r1","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32",
                     "data":[1,0.5,0,0,2,3]}]})", &id), want);
  EXPECT_EQ(id, "r1");
  EXPECT_EQ(rows(R"({"inputs":[{"name":"x","shape":[2,3],"datatype":"FP64",
                     "data":[[1,0.5,0],[0,2,3]]}]})", &id), want);
  EXPECT_EQ(id, "");
  EXPECT_EQ(rows(R"({"inputs":[{"name":"x","shape":[3],"datatype":"INT64","data":[4,5,6]}]})"),
            nlohmann::json::parse(R"({"instances":[[4,5,6]]})"));
  EXPECT_EQ(
      rows(R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"BOOL","data":[true,false]}]})"),
      nlohmann::json::parse(R"({"instances":[[1,0]]})"));
  auto error = [&](const std::string& body) {
    const auto j = rows(body);
    return j.is_string() ? j.get<std::string>() : "no error: " + j.dump();
  };
  EXPECT_NE(error("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error(R"({"inputs":[]})").find("one tensor"), std::string::npos);
  const std::string in = R"({"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]})";
  EXPECT_NE(error(R"({"inputs":[)" + in + "," + in + "]}").find("one tensor"), std::string::npos);
  EXPECT_NE(error(R"({"inputs":[{"shape":[2,2],"datatype":"FP32","data":[1,2,3]}]})")
                .find("needs 4 values, \"data\" holds 3"),
            std::string::npos);
  EXPECT_NE(error(R"({"inputs":[{"shape":[1,2],"datatype":"BYTES","data":["a","b"]}]})")
                .find("datatype"),
            std::string::npos);
  EXPECT_NE(error(R"({"inputs":[{"shape":[1,2],"datatype":"FP32","data":[1,"b"]}]})")
                .find("FP32 values"),
            std::string::npos);
  // Nested deeper than its shape: refused, however deep (no recursion runs the stack out).
  EXPECT_NE(error(R"({"inputs":[{"shape":[2],"datatype":"FP32","data":[[1],[2]]}]})")
                .find("nested as the shape"),
            std::string::npos);
  const std::string deep = R"({"inputs":[{"shape":[1,1],"datatype":"FP32","data":)" +
                           std::string(100000, '[') + "1" + std::string(100000, ']') + "}]}";
  EXPECT_NE(error(deep).find("nested as the shape"), std::string::npos);
  EXPECT_NE(error(R"({"inputs":[{"shape":[1,2,3],"datatype":"FP32","data":[1]}]})").find("shape"),
            std::string::npos);
  EXPECT_NE(error(R"({"id":7,"inputs":[]})").find("\"id\""), std::string::npos);
  // The tensor's fields in any order; a key given twice counts once, the last time.
  EXPECT_EQ(rows(R"({"inputs":[{"data":[9,9],"name":"x","data":[1,0.5,0,0,2,3],"shape":[2,3],)"
                 R"("datatype":"FP32"}]})"),
            want);
  EXPECT_EQ(rows(R"({"inputs":[{"shape":[1,2],"datatype":"FP32","data":[7,8]}],)"
                 R"("inputs":[{"shape":[2,3],"datatype":"FP32","data":[1,0.5,0,0,2,3]}]})"),
            want);
  for (const std::string data : {R"([1,{"a":2}])", R"([1,null])", R"([true,false])", "[[1,[2]]]"}) {
    EXPECT_NE(error(R"({"inputs":[{"shape":[1,2],"datatype":"FP32","data":)" + data + "}]}")
                  .find("FP32 values"),
              std::string::npos)
        << data;
  }
  // A number beyond a double's range is refused by the JSON parser.
  EXPECT_NE(error(R"({"inputs":[{"shape":[1,2],"datatype":"FP32","data":[1,1e400]}]})")
                .find("not valid JSON"),
            std::string::npos);
  // A second input's "data" is not read as the first's.
  EXPECT_NE(error(R"({"inputs":[{"shape":[1,2],"datatype":"FP32"},{"data":[1,2]}]})")
                .find("one tensor"),
            std::string::npos);
  // "outputs": the names asked for, in order; anything but objects with a string name refused.
  V2Infer req;
  ASSERT_TRUE(V2InferToV1(R"({"inputs":[)" + in + R"(],"outputs":[{"name":"probabilities"},)" +
                              R"({"name":"label","parameters":{}}]})",
                          &req)
                  .ok());
  ASSERT_EQ(req.outputs.size(), 2u);
  EXPECT_EQ(req.outputs[0].name, "probabilities");
  EXPECT_EQ(req.outputs[1].name, "label");
  EXPECT_FALSE(req.outputs[0].binary.has_value());
  EXPECT_FALSE(req.binary_outputs);
  for (const std::string outputs : {R"("label")", R"(["label"])", R"([{"name":1}])", "[{}]"}) {
    EXPECT_NE(error(R"({"inputs":[)" + in + R"(],"outputs":)" + outputs + "}").find("\"outputs\""),
              std::string::npos)
        << outputs;
  }
}

// V2's binary tensor data extension, in: an input's bytes after the JSON become the same rows
// as its "data" would, for every datatype; what is inconsistent is refused by name.
TEST(Api, V2BinaryInputsBecomeTheSameRows) {
  auto rows = [](const std::string& input, const std::string& bytes) {
    const std::string json = R"({"inputs":[)" + input + "]}";
    V2Infer req;
    auto r = V2InferToV1(json + bytes, &req, json.size());
    return r.ok() ? nlohmann::json::parse(*r) : nlohmann::json(r.status().message());
  };
  auto binary = [](const std::string& type, const std::string& shape, size_t size) {
    return fmt::format(R"({{"name":"x","shape":{},"datatype":"{}",)"
                       R"("parameters":{{"binary_data_size":{}}}}})",
                       shape, type, size);
  };
  EXPECT_EQ(rows(binary("FP32", "[2,3]", 24), Bytes<float>({1, 0.5f, 0, 0, 2, -3})),
            nlohmann::json::parse(R"({"instances":[[1,0.5,0],[0,2,-3]]})"));
  EXPECT_EQ(rows(binary("FP64", "[2]", 16), Bytes<double>({1.5, -0.25})),
            nlohmann::json::parse(R"({"instances":[[1.5,-0.25]]})"));
  // Half precision: 1, the smallest subnormal (2^-24), -2; bfloat16: 1, -3. Single-precision
  // values are written in the fewest digits that read back as the same float.
  const auto half = rows(binary("FP16", "[1,3]", 6), Bytes<uint16_t>({0x3c00, 0x0001, 0xc000}));
  ASSERT_TRUE(half.is_object()) << half;
  EXPECT_EQ(half["instances"][0][0], 1.0);
  EXPECT_EQ(half["instances"][0][1].get<float>(), std::ldexp(1.0f, -24));
  EXPECT_EQ(half["instances"][0][2], -2.0);
  EXPECT_EQ(rows(binary("BF16", "[1,2]", 4), Bytes<uint16_t>({0x3f80, 0xc040})),
            nlohmann::json::parse(R"({"instances":[[1,-3]]})"));
  // Integers keep their sign and width; BOOL is one byte, 0 or 1.
  EXPECT_EQ(rows(binary("INT16", "[1,3]", 6), Bytes<int16_t>({-3, 7, -32768})),
            nlohmann::json::parse(R"({"instances":[[-3,7,-32768]]})"));
  EXPECT_EQ(rows(binary("INT8", "[1,2]", 2), Bytes<int8_t>({-1, 5})),
            nlohmann::json::parse(R"({"instances":[[-1,5]]})"));
  EXPECT_EQ(rows(binary("UINT8", "[1,2]", 2), Bytes<uint8_t>({255, 1})),
            nlohmann::json::parse(R"({"instances":[[255,1]]})"));
  EXPECT_EQ(rows(binary("INT64", "[1,1]", 8), Bytes<int64_t>({-5000000000})),
            nlohmann::json::parse(R"({"instances":[[-5000000000]]})"));
  EXPECT_EQ(rows(binary("BOOL", "[1,2]", 2), Bytes<uint8_t>({1, 0})),
            nlohmann::json::parse(R"({"instances":[[1,0]]})"));
  // Refused, each with what is wrong.
  auto error = [&](const std::string& input, const std::string& bytes) {
    const auto j = rows(input, bytes);
    return j.is_string() ? j.get<std::string>() : "no error: " + j.dump();
  };
  const std::string three = Bytes<float>({1, 2, 3});
  EXPECT_NE(error(binary("FP32", "[1,3]", 16), three).find("\"binary_data_size\" is 16 but the "
                                                          "body holds 12 bytes after its JSON"),
            std::string::npos);
  EXPECT_NE(error(binary("FP32", "[1,4]", 12), three)
                .find("needs 4 values, its binary data holds 3"),
            std::string::npos);
  EXPECT_NE(error(binary("FP16", "[1,2]", 3), "abc").find("not whole FP16 values"),
            std::string::npos);
  EXPECT_NE(error(binary("BOOL", "[1,2]", 2), Bytes<uint8_t>({1, 2})).find("not 0 or 1"),
            std::string::npos);
  EXPECT_NE(error(binary("FP32", "[1,2]", 8),
                  Bytes<float>({1, std::numeric_limits<float>::infinity()}))
                .find("FP32 value 1 is not finite"),
            std::string::npos);
  EXPECT_NE(error(R"({"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]})", three)
                .find("12 bytes after its JSON but no input has \"binary_data_size\""),
            std::string::npos);
  EXPECT_NE(error(R"({"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3],)"
                  R"("parameters":{"binary_data_size":12}})",
                  three)
                .find("both"),
            std::string::npos);
  EXPECT_NE(error(R"({"name":"x","shape":[1,3],"datatype":"FP32","parameters":7})", three)
                .find("\"parameters\" must be an object"),
            std::string::npos);
  V2Infer req;
  const std::string json = R"({"inputs":[)" + binary("FP32", "[1,3]", 12) + "]}";
  auto r = V2InferToV1(json + three, &req);  // no header: the bytes make it not JSON
  ASSERT_FALSE(r.ok());
  r = V2InferToV1(json, &req);  // binary_data_size without the header
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("needs the Inference-Header-Content-Length"),
            std::string::npos);
  r = V2InferToV1(json, &req, json.size() + 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("but the body holds"), std::string::npos);
  r = V2InferToV1(R"({"inputs":[)" + binary("FP32", "[1,3]", 12) +
                      R"(],"parameters":{"binary_data_output":1}})",
                  &req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("\"binary_data_output\" true or false"), std::string::npos);
}

// Binary FP32 and FP64 inputs reach the replica's rows exactly: the V1 text the front end writes
// holds each value in the fewest digits that read back as it, and reads back as it through the
// replica's own parser. 200,000 random bit patterns of each, every one finite as a float.
TEST(Api, V2BinaryFloatsReachTheReplicasRowsExactly) {
  constexpr size_t kCols = 1000, kRows = 200;
  const ModelInfo info{"m", Task::kBinary, kCols, 2, -1, "", {}};
  std::mt19937_64 rng(20261204);
  for (const bool fp64 : {false, true}) {
    std::vector<double> want;  // the finite values, in order (zeros too: the parser skips them)
    std::string bytes;
    while (want.size() < kCols * kRows) {
      const uint64_t bits = rng();
      const double x = fp64 ? std::bit_cast<double>(bits)
                            : std::bit_cast<float>(static_cast<uint32_t>(bits));
      // Values past the float range are refused by the replica's parser (not finite there).
      if (!std::isfinite(x) || !std::isfinite(static_cast<float>(x))) continue;
      want.push_back(x);
      if (fp64) {
        bytes.append(reinterpret_cast<const char*>(&bits), 8);
      } else {
        const auto low = static_cast<uint32_t>(bits);
        bytes.append(reinterpret_cast<const char*>(&low), 4);
      }
    }
    const std::string json = fmt::format(
        R"({{"inputs":[{{"name":"x","shape":[{},{}],"datatype":"{}",)"
        R"("parameters":{{"binary_data_size":{}}}}}]}})",
        kRows, kCols, fp64 ? "FP64" : "FP32", bytes.size());
    V2Infer req;
    auto v1 = V2InferToV1(json + bytes, &req, json.size());
    ASSERT_TRUE(v1.ok()) << v1.status().message();
    SparseBatch batch;
    const Status parsed = ParsePredictRequest(*v1, info, &batch, kRows);
    ASSERT_TRUE(parsed.ok()) << parsed.message();
    ASSERT_EQ(batch.rows(), kRows);
    size_t at = 0, mismatched = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const auto f = static_cast<float>(want[i]);  // what the replica computes with
      if (f == 0.0f) continue;
      ASSERT_LT(at, batch.values.size());
      EXPECT_EQ(batch.ids[at], i % kCols);
      mismatched += std::bit_cast<uint32_t>(batch.values[at]) != std::bit_cast<uint32_t>(f);
      ++at;
    }
    EXPECT_EQ(at, batch.values.size());
    EXPECT_EQ(mismatched, 0u) << (fp64 ? "FP64" : "FP32");
  }
}

// A V2 "data" reaches the replica as the same rows V1 would with the same numbers: the front
// end passes each float's text on as the body wrote it (the replica reads it once, as for V1),
// whatever its form: shortest, 17 digits, an exponent, an integer, negative zero, fixed.
TEST(Api, V2JsonNumbersReachTheReplicasRowsAsV1Would) {
  constexpr size_t kCols = 300, kRows = 40;
  const ModelInfo info{"m", Task::kBinary, kCols, 2, -1, "", {}};
  std::mt19937_64 rng(20261204);
  std::vector<std::string> tokens;
  while (tokens.size() < kCols * kRows) {
    const uint64_t bits = rng();
    const double x = bits % 2 == 0 ? std::bit_cast<double>(bits)
                                   : std::bit_cast<float>(static_cast<uint32_t>(bits >> 32));
    if (!std::isfinite(x) || !std::isfinite(static_cast<float>(x))) continue;
    switch (bits % 7) {
      case 0: tokens.push_back(fmt::format("{}", x)); break;
      case 1: tokens.push_back(fmt::format("{:.17g}", x)); break;
      case 2: tokens.push_back(fmt::format("{:.9E}", x)); break;
      case 3:
        tokens.push_back(fmt::format("{}", static_cast<int64_t>(bits >> 20) - (1 << 20)));
        break;
      case 4: tokens.push_back(fmt::format("{}", static_cast<float>(x))); break;
      case 5: tokens.push_back(bits % 3 == 0 ? "-0.0" : "0"); break;
      default: tokens.push_back(fmt::format("{:.3f}", std::fmod(x, 1000.0))); break;
    }
  }
  std::string v1 = R"({"instances":[)", data;
  for (size_t r = 0; r < kRows; ++r) {
    v1 += r == 0 ? "[" : ",[";
    for (size_t c = 0; c < kCols; ++c) {
      v1 += (c == 0 ? "" : ",") + tokens[r * kCols + c];
      data += (r + c == 0 ? "" : ",") + tokens[r * kCols + c];
    }
    v1 += "]";
  }
  v1 += "]}";
  V2Infer req;
  auto translated = V2InferToV1(fmt::format(R"({{"inputs":[{{"name":"x","shape":[{},{}],)"
                                            R"("datatype":"FP32","data":[{}]}}]}})",
                                            kRows, kCols, data),
                                &req);
  ASSERT_TRUE(translated.ok()) << translated.status().message();
  SparseBatch want, got;
  ASSERT_TRUE(ParsePredictRequest(v1, info, &want, kRows).ok());
  ASSERT_TRUE(ParsePredictRequest(*translated, info, &got, kRows).ok());
  EXPECT_EQ(got.offsets, want.offsets);
  EXPECT_EQ(got.ids, want.ids);
  ASSERT_EQ(got.values.size(), want.values.size());
  size_t mismatched = 0;
  for (size_t i = 0; i < want.values.size(); ++i)
    mismatched += std::bit_cast<uint32_t>(got.values[i]) != std::bit_cast<uint32_t>(want.values[i]);
  EXPECT_EQ(mismatched, 0u);
  EXPECT_GT(want.values.size(), kCols * kRows / 2);  // most are not zero
}

// V2's binary tensor data extension, out: outputs asked for as binary data (every one with
// "binary_data_output", or each with its "binary_data", which wins) carry their size in place
// of "data", and their bytes follow the JSON in the order of the outputs.
TEST(Api, V2OutputsAskedAsBinaryComeAfterTheJson) {
  const std::string v1 = R"({"model":"d","predictions":[{"label":1,"probabilities":[0.25,0.75]},
                            {"label":0,"probabilities":[1,0]}]})";
  V2Infer all;
  all.binary_outputs = true;
  auto a = V1AnswerToV2(v1, all);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(a->json_bytes.has_value());
  auto j = nlohmann::json::parse(a->body.substr(0, *a->json_bytes));
  ASSERT_EQ(j["outputs"].size(), 2u);
  EXPECT_FALSE(j["outputs"][0].contains("data"));
  EXPECT_EQ(j["outputs"][0]["parameters"]["binary_data_size"], 16);
  EXPECT_EQ(j["outputs"][1]["parameters"]["binary_data_size"], 16);
  EXPECT_EQ(j["outputs"][1]["datatype"], "FP32");
  EXPECT_EQ(a->body.substr(*a->json_bytes),
            Bytes<int64_t>({1, 0}) + Bytes<float>({0.25f, 0.75f, 1, 0}));
  // One output as binary data, the other as JSON: "binary_data" on an output overrides.
  V2Infer some;
  some.binary_outputs = true;
  some.outputs = {{"probabilities", true}, {"label", false}};
  a = V1AnswerToV2(v1, some);
  ASSERT_TRUE(a.ok() && a->json_bytes.has_value());
  j = nlohmann::json::parse(a->body.substr(0, *a->json_bytes));
  EXPECT_EQ(j["outputs"][0]["name"], "probabilities");
  EXPECT_EQ(j["outputs"][0]["parameters"]["binary_data_size"], 16);
  EXPECT_EQ(j["outputs"][1]["data"], nlohmann::json::parse("[1,0]"));
  EXPECT_EQ(a->body.substr(*a->json_bytes), Bytes<float>({0.25f, 0.75f, 1, 0}));
  // Parsed from a request: the same choices.
  V2Infer parsed;
  ASSERT_TRUE(V2InferToV1(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],)"
                          R"("outputs":[{"name":"label","parameters":{"binary_data":true}}],)"
                          R"("parameters":{"binary_data_output":false}})",
                          &parsed)
                  .ok());
  ASSERT_EQ(parsed.outputs.size(), 1u);
  EXPECT_EQ(parsed.outputs[0].binary, std::optional<bool>(true));
  EXPECT_FALSE(parsed.binary_outputs);
}

// V1 answers become V2 output tensors, one per field of the predictions.
TEST(Api, V1AnswersBecomeV2Outputs) {
  auto v2 = [](const std::string& v1, const std::string& id = "") {
    auto r = V1AnswerToV2(v1, V2Infer{id, {}});
    EXPECT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(!r.ok() || !r->json_bytes);  // JSON alone unless binary data is asked for
    return r.ok() ? nlohmann::json::parse(r->body) : nlohmann::json();
  };
  auto j = v2(R"({"model":"digits","predictions":[{"label":1,"class":7,"probabilities":[0.25,0.75]},
                 {"label":0,"class":3,"probabilities":[1,0]}]})", "r1");
  EXPECT_EQ(j["model_name"], "digits");
  EXPECT_EQ(j["id"], "r1");
  ASSERT_EQ(j["outputs"].size(), 3u);
  for (const auto& o : j["outputs"]) {
    if (o["name"] == "label") {
      EXPECT_EQ(o["datatype"], "INT64");
      EXPECT_EQ(o["shape"], nlohmann::json::parse("[2]"));
      EXPECT_EQ(o["data"], nlohmann::json::parse("[1,0]"));
    } else if (o["name"] == "class") {
      EXPECT_EQ(o["datatype"], "INT64");
      EXPECT_EQ(o["data"], nlohmann::json::parse("[7,3]"));
    } else {
      EXPECT_EQ(o["name"], "probabilities");
      EXPECT_EQ(o["datatype"], "FP32");  // though the second row's are whole numbers
      EXPECT_EQ(o["shape"], nlohmann::json::parse("[2,2]"));
      EXPECT_EQ(o["data"], nlohmann::json::parse("[0.25,0.75,1,0]"));
    }
  }
  j = v2(R"({"model":"m","predictions":[{"value":1.5},{"value":-2}]})");
  EXPECT_FALSE(j.contains("id"));
  EXPECT_EQ(j["outputs"],
            nlohmann::json::parse(
                R"([{"name":"value","datatype":"FP32","shape":[2],"data":[1.5,-2]}])"));
  j = v2(R"({"model":"k","predictions":[{"cluster":2,"distance":0.5}]})");
  EXPECT_EQ(j["outputs"][0]["datatype"], "INT64");
  EXPECT_EQ(j["outputs"][1]["name"], "distance");
  EXPECT_EQ(j["outputs"][1]["datatype"], "FP32");
  // Class values that are not whole numbers stay FP32.
  j = v2(R"({"model":"m","predictions":[{"label":0,"class":0.5,"probabilities":[0.6,0.4]}]})");
  EXPECT_EQ(j["outputs"][1]["datatype"], "FP32");
  // Given the model's metadata, its datatypes decide: classes 0.5, 1 and 2 make "class" FP32,
  // though this answer's class is whole (alone, the values would make it INT64); metadata that
  // says INT64 of a value that is not whole (a model reloaded between the two) does not.
  ModelInfo halves;
  halves.task = Task::kMulticlass;
  halves.num_classes = 3;
  halves.class_values = {0.5, 1, 2};
  const nlohmann::ordered_json declared = V2OutputsOf(halves);
  ASSERT_EQ(declared[1]["datatype"], "FP32");
  const std::string whole_class =
      R"({"model":"m","predictions":[{"label":2,"class":2,"probabilities":[0.1,0.2,0.7]}]})";
  auto typed = [](Result<V2Answer> a) {
    EXPECT_TRUE(a.ok()) << a.status().message();
    std::vector<std::string> types;
    const auto j = nlohmann::json::parse(a.ok() ? a->body : "{}");
    for (const auto& o : j.value("outputs", nlohmann::json::array())) {
      types.push_back(o["datatype"]);
    }
    return types;
  };
  using Types = std::vector<std::string>;
  EXPECT_EQ(typed(V1AnswerToV2(whole_class, {}, &declared)), (Types{"INT64", "FP32", "FP32"}));
  EXPECT_EQ(typed(V1AnswerToV2(whole_class, {})), (Types{"INT64", "INT64", "FP32"}));
  halves.class_values = {1, 2, 3};
  const nlohmann::ordered_json whole = V2OutputsOf(halves);
  const std::string half_class =
      R"({"model":"m","predictions":[{"label":0,"class":0.5,"probabilities":[0.5,0.2,0.3]}]})";
  EXPECT_EQ(typed(V1AnswerToV2(half_class, {}, &whole)), (Types{"INT64", "FP32", "FP32"}));
  // Asked for some outputs: those alone, in the order asked; an unknown one refused by name.
  const std::string digits =
      R"({"model":"d","predictions":[{"label":1,"class":7,"probabilities":[0.25,0.75]}]})";
  j = nlohmann::json::parse(
      V1AnswerToV2(digits, V2Infer{"", {{"probabilities", {}}, {"label", {}}}})->body);
  ASSERT_EQ(j["outputs"].size(), 2u);
  EXPECT_EQ(j["outputs"][0]["name"], "probabilities");
  EXPECT_EQ(j["outputs"][1]["name"], "label");
  const auto unknown = V1AnswerToV2(digits, V2Infer{"", {{"label", {}}, {"value", {}}}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(unknown.status().message(),
            "unknown output 'value'; the model's outputs: label, class, probabilities");
  EXPECT_FALSE(V1AnswerToV2(R"({"predictions":[]})", {}).ok());
  EXPECT_FALSE(V1AnswerToV2(R"({"predictions":[{"value":1},{"label":1}]})", {}).ok());
  EXPECT_EQ(nlohmann::json::parse(V1ErrorToV2(JsonError(404, "unknown model 'x'"))),
            nlohmann::json::parse(R"({"error":"unknown model 'x'"})"));
  EXPECT_EQ(nlohmann::json::parse(V1ErrorToV2("not json"))["error"], "not json");
}

// Linear models of every task, 10 features, for the request-to-response tests below.
std::vector<std::unique_ptr<Predictor>> SmallModels() {
  std::vector<std::unique_ptr<Predictor>> models;
  const std::pair<Task, uint32_t> kinds[] = {
      {Task::kBinary, 2}, {Task::kMulticlass, 3}, {Task::kRegression, 1}};
  for (auto [task, classes] : kinds) {
    const std::string p = Tmp(std::string("small-") + TaskName(task));
    EXPECT_TRUE(WriteRandomLinearModel(p, TaskName(task), task, 10, classes, 5).ok());
    auto m = LoadModel(p);
    EXPECT_TRUE(m.ok()) << m.status().message();
    if (m.ok()) models.push_back(std::move(*m));
    std::filesystem::remove(p);
  }
  return models;
}

// What a replica answers for `body`: the parse error, the output check's error, or the
// response body. Returns the status; *response is set only when it is Ok.
Status Answer(const Predictor& m, const std::string& body, std::string* response) {
  SparseBatch batch;
  OC_RETURN_IF_ERROR(ParsePredictRequest(body, m.info(), &batch, 16));
  std::vector<float> out;
  m.Predict(batch, &out);
  OC_RETURN_IF_ERROR(CheckPredictOutputs(m.info(), out.data(), batch.rows()));
  *response = FormatPredictResponse(m.info(), out.data(), batch.rows());
  return Status::Ok();
}

TEST(Api, ScoresThatOverflowGetAnErrorNotANanInTheAnswer) {
  auto models = SmallModels();
  ASSERT_EQ(models.size(), 3u);
  // Every value is finite, but feature 1 two hundred times over sums past the float range.
  std::string ids, values;
  for (int k = 0; k < 200; ++k) {
    ids += (k ? ",1" : "1");
    values += (k ? ",3e38" : "3e38");
  }
  const std::string body =
      R"({"instances":[{"ids":[2]},{"ids":[)" + ids + R"(],"values":[)" + values + "]}]}";
  int refused = 0;
  for (const auto& m : models) {
    std::string response;
    Status s = Answer(*m, body, &response);
    if (s.ok()) {
      // A sigmoid saturates to 0 or 1 on an infinite score: a binary model answers.
      EXPECT_EQ(m->info().task, Task::kBinary) << response;
      EXPECT_NO_THROW(nlohmann::json::parse(response)) << response;
      continue;
    }
    ++refused;
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    EXPECT_NE(s.message().find("row 1:"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("no finite output"), std::string::npos) << s.message();
  }
  EXPECT_EQ(refused, 2) << "the multiclass and the regression model overflow";
}

// Hostile bodies, made by mutating valid ones with a fixed seed: each gets either an
// InvalidArgument or a response that parses as JSON, has one prediction per row and holds only
// finite numbers. Whatever the bytes, the answer is never a 200 whose body is not JSON.
// Mutated V2 infer requests: each is refused with a message, or becomes V1 rows a model answers
// or refuses; every answer becomes V2 outputs that are JSON.
TEST(Api, AnyV2BodyGetsAnErrorOrAnAnswerThatIsJson) {
  auto models = SmallModels();
  ASSERT_EQ(models.size(), 3u);
  // Each seed: its JSON, and the binary tensor data after it (then the JSON's length is the
  // Inference-Header-Content-Length; the mutations below may make it wrong).
  const std::string fp32 = Bytes<float>({1.0f, 0.0f, 2.0f, 0.0f, 3.5f, -1.0f});
  std::vector<std::pair<std::string, std::string>> seeds = {
      {R"({"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32",)"
       R"("parameters":{"binary_data_size":24}}],"parameters":{"binary_data_output":true}})",
       fp32},
      {R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP16",)"
       R"("parameters":{"binary_data_size":6}}],"outputs":[{"name":"label",)"
       R"("parameters":{"binary_data":true}}]})",
       Bytes<uint16_t>({0x3c00, 0x0001, 0xc000})},
      {R"({"inputs":[{"name":"x","shape":[2,3],"datatype":"INT16",)"
       R"("parameters":{"binary_data_size":12}}]})",
       Bytes<int16_t>({-3, 7, 0, 1, 2, 3})}};
  const std::vector<std::string> json_seeds = {
      R"({"id":"a","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,0,2,0,3,0]}]})",
      R"({"inputs":[{"name":"x","shape":[10],"datatype":"BOOL","data":[true,false,true,true,false,)"
      R"(false,true,false,true,true]}]})",
      R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"INT64","data":[[3e38,3e38]]}]})",
      R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],)"
      R"("outputs":[{"name":"probabilities"},{"name":"label"}]})"};
  for (const std::string& j : json_seeds) seeds.emplace_back(j, "");
  const std::vector<std::string> tokens = {
      "3e38", "-1", "0", "18446744073709551615", "null", "true", "\"x\"", "[", "]", "{", "}",
      ",", ":", "\"shape\"", "\"data\"", "\"inputs\"", "\"BYTES\"", "[0,0]", "[[1],[2]]", "1.5",
      "\"outputs\"", "\"name\"", "\"value\"", "\"binary_data_size\"", "\"parameters\"",
      "{\"binary_data\":true}", "\"FP16\"", "\"BF16\"", "\"UINT8\"", "\xff\xff", "\x01",
      "1e39", "1e400", "-0", "1e-45", "\"FP64\""};
  std::mt19937_64 rng(20261204);
  auto pick = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };
  int refused = 0, answered = 0, binary_in = 0, binary_out = 0;
  for (int i = 0; i < 5000; ++i) {
    const auto& [json, binary] = seeds[pick(seeds.size())];
    std::string body = json + binary;
    const V2JsonBytes json_bytes = binary.empty() ? V2JsonBytes() : V2JsonBytes(json.size());
    for (int k = 0, ops = 1 + static_cast<int>(pick(3)); k < ops; ++k) {
      const size_t at = pick(body.size() + 1), len = std::min(pick(6), body.size() - at);
      if (pick(2) == 0) {
        body.replace(at, len, tokens[pick(tokens.size())]);
      } else {
        body.erase(at, len);
      }
    }
    V2Infer req;
    Result<std::string> rows = V2InferToV1(body, &req, json_bytes);
    if (!rows.ok()) {
      ASSERT_EQ(rows.status().code(), Code::kInvalidArgument) << body;
      ASSERT_FALSE(rows.status().message().empty()) << body;
      ++refused;
      continue;
    }
    for (const auto& m : models) {
      std::string response;
      if (!Answer(*m, *rows, &response).ok()) continue;
      const nlohmann::ordered_json declared = V2OutputsOf(m->info());
      Result<V2Answer> v2 = V1AnswerToV2(response, req, &declared);
      if (!req.outputs.empty() && !v2.ok() && v2.status().code() == Code::kInvalidArgument) {
        ASSERT_NE(v2.status().message().find("unknown output"), std::string::npos) << body;
        EXPECT_FALSE(CheckV2Outputs(req, declared).ok()) << body;
        continue;  // it asked for an output this model does not have
      }
      ASSERT_TRUE(v2.ok()) << body << " -> " << response;
      // JSON, then as many bytes as its binary outputs say they hold.
      const std::string_view text =
          std::string_view(v2->body).substr(0, v2->json_bytes.value_or(v2->body.size()));
      ASSERT_TRUE(nlohmann::json::accept(text)) << v2->body;
      const auto answer = nlohmann::json::parse(text);
      size_t binary_bytes = 0;
      for (const auto& o : answer["outputs"]) {
        if (o.contains("parameters")) {
          binary_bytes += o["parameters"]["binary_data_size"].get<size_t>();
        }
      }
      EXPECT_EQ(text.size() + binary_bytes, v2->body.size()) << body;
      binary_in += json_bytes.has_value();
      binary_out += v2->json_bytes.has_value();
      // The outputs the model's metadata lists are the ones its answers have: the front end
      // checks the names asked for against the metadata before it predicts.
      EXPECT_TRUE(CheckV2Outputs(req, declared).ok()) << body;
      if (req.outputs.empty()) {
        std::vector<std::string> listed, got;
        for (const auto& o : declared) listed.push_back(o.at("name"));
        for (const auto& o : answer["outputs"]) got.push_back(o.at("name"));
        EXPECT_EQ(got, listed) << v2->body;
      }
      for (const auto& o : answer["outputs"]) {  // and their datatypes are the metadata's
        for (const auto& d : declared) {
          if (d["name"] == o["name"]) EXPECT_EQ(o["datatype"], d["datatype"]) << v2->body;
        }
      }
      ++answered;
    }
  }
  EXPECT_GT(refused, 100);
  EXPECT_GT(answered, 100);
  EXPECT_GT(binary_in, 50);   // answers to requests whose tensor came as binary data
  EXPECT_GT(binary_out, 50);  // answers with outputs as binary data
}

TEST(Api, AnyBodyGetsAnErrorOrAnAnswerThatIsJson) {
  auto models = SmallModels();
  ASSERT_EQ(models.size(), 3u);
  const std::vector<std::string> seeds = {
      R"({"instances":[{"ids":[0,2],"values":[2,4]},[0,1]]})",
      R"({"rows":[{"ids":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],)"
      R"("values":[3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,)"
      R"(3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38]}]})",
      R"({"instances":[[0.5,-1,0,2,0,0,0,0,0,1],{"ids":[9]}]})",
  };
  const std::vector<std::string> tokens = {
      "3e38", "-3e38", "1e39", "1e-45", "-0", "0", "9", "10", "-1", "18446744073709551615",
      "18446744073709551616", "null", "true", "\"x\"", "[", "]", "{", "}", ",", ":", "\"ids\"",
      "\"values\"", "\"instances\"", "[1,1,1,1,1,1,1,1]", "[3e38,3e38,3e38,3e38,3e38,3e38]",
      "\\u0000", "\"", "1.5", "NaN", "Infinity"};
  std::mt19937_64 rng(20261203);
  auto pick = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };
  int refused = 0, overflowed = 0, answered = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string body = seeds[pick(seeds.size())];
    const int ops = 1 + static_cast<int>(pick(4));
    for (int k = 0; k < ops; ++k) {
      const size_t at = pick(body.size() + 1), len = std::min(pick(9), body.size() - at);
      switch (pick(4)) {
        case 0: body.replace(at, len, tokens[pick(tokens.size())]); break;
        case 1: body.erase(at, len); break;
        case 2: if (at < body.size()) body[at] = static_cast<char>(rng()); break;
        default: body.insert(at, body.substr(at, len)); break;
      }
    }
    for (const auto& m : models) {
      std::string response;
      Status s = Answer(*m, body, &response);
      if (!s.ok()) {
        ASSERT_EQ(s.code(), Code::kInvalidArgument) << body << ": " << s.message();
        ASSERT_FALSE(s.message().empty()) << body;
        ++(s.message().find("no finite output") != std::string::npos ? overflowed : refused);
        continue;
      }
      ++answered;
      nlohmann::json j;
      ASSERT_NO_THROW(j = nlohmann::json::parse(response)) << body << " -> " << response;
      ASSERT_TRUE(j["predictions"].is_array()) << response;
      std::function<bool(const nlohmann::json&)> finite = [&](const nlohmann::json& v) {
        if (v.is_number()) return std::isfinite(v.get<double>());
        for (const auto& e : v) {
          if ((v.is_array() || v.is_object()) && !finite(e)) return false;
        }
        return true;
      };
      ASSERT_TRUE(finite(j)) << body << " -> " << response;
    }
  }
  // The mutations reach all three outcomes; otherwise this test would check nothing.
  EXPECT_GT(refused, 1000);
  EXPECT_GT(overflowed, 10);
  EXPECT_GT(answered, 1000);
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
