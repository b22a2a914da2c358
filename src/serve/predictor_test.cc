// Model file round trip, corrupt files, request parsing and response formatting.
#include <cmath>
#include <filesystem>
#include <functional>
#include <random>

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
    std::string ignored;
    auto r = V2InferToV1(body, id != nullptr ? id : &ignored);
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
}

// V1 answers become V2 output tensors, one per field of the predictions.
TEST(Api, V1AnswersBecomeV2Outputs) {
  auto v2 = [](const std::string& v1, const std::string& id = "") {
    auto r = V1AnswerToV2(v1, id);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? nlohmann::json::parse(*r) : nlohmann::json();
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
  EXPECT_FALSE(V1AnswerToV2(R"({"predictions":[]})", "").ok());
  EXPECT_FALSE(V1AnswerToV2(R"({"predictions":[{"value":1},{"label":1}]})", "").ok());
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
  const std::vector<std::string> seeds = {
      R"({"id":"a","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,0,2,0,3,0]}]})",
      R"({"inputs":[{"name":"x","shape":[10],"datatype":"BOOL","data":[true,false,true,true,false,)"
      R"(false,true,false,true,true]}]})",
      R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"INT64","data":[[3e38,3e38]]}]})"};
  const std::vector<std::string> tokens = {
      "3e38", "-1", "0", "18446744073709551615", "null", "true", "\"x\"", "[", "]", "{", "}",
      ",", ":", "\"shape\"", "\"data\"", "\"inputs\"", "\"BYTES\"", "[0,0]", "[[1],[2]]", "1.5"};
  std::mt19937_64 rng(20261204);
  auto pick = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };
  int refused = 0, answered = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string body = seeds[pick(seeds.size())];
    for (int k = 0, ops = 1 + static_cast<int>(pick(3)); k < ops; ++k) {
      const size_t at = pick(body.size() + 1), len = std::min(pick(6), body.size() - at);
      if (pick(2) == 0) {
        body.replace(at, len, tokens[pick(tokens.size())]);
      } else {
        body.erase(at, len);
      }
    }
    std::string id;
    Result<std::string> rows = V2InferToV1(body, &id);
    if (!rows.ok()) {
      ASSERT_EQ(rows.status().code(), Code::kInvalidArgument) << body;
      ASSERT_FALSE(rows.status().message().empty()) << body;
      ++refused;
      continue;
    }
    for (const auto& m : models) {
      std::string response;
      if (!Answer(*m, *rows, &response).ok()) continue;
      Result<std::string> v2 = V1AnswerToV2(response, id);
      ASSERT_TRUE(v2.ok()) << body << " -> " << response;
      ASSERT_TRUE(nlohmann::json::accept(*v2)) << *v2;
      ++answered;
    }
  }
  EXPECT_GT(refused, 100);
  EXPECT_GT(answered, 100);
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
