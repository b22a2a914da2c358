#include "serve/predictor.h"

#include <cmath>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/fs.h"
#include "common/hash.h"

namespace overcast::serve {
namespace {

constexpr std::string_view kMagic = "OVERCAST-MODEL 1\n";
constexpr uint64_t kMaxWeights = uint64_t{1} << 31;  // 8 GiB of floats: refuse anything larger

Result<Task> ParseTask(const std::string& s) {
  if (s == "binary") return Task::kBinary;
  if (s == "multiclass") return Task::kMulticlass;
  if (s == "regression") return Task::kRegression;
  return InvalidArgument("unknown task '" + s + "' (expected binary, multiclass or regression)");
}

uint32_t ScoreColumns(const ModelInfo& m) {
  return m.task == Task::kMulticlass ? m.num_classes : 1;
}

}  // namespace

const char* TaskName(Task t) {
  switch (t) {
    case Task::kBinary: return "binary";
    case Task::kMulticlass: return "multiclass";
    case Task::kRegression: return "regression";
  }
  return "?";
}

Status ValidateBatch(const ModelInfo& info, const SparseBatch& batch, size_t first_row) {
  for (size_t r = 0; r < batch.rows(); ++r) {
    for (uint32_t j = batch.offsets[r]; j < batch.offsets[r + 1]; ++j) {
      if (batch.ids[j] >= info.num_features) {
        return InvalidArgument("row " + std::to_string(first_row + r) + ": feature id " +
                               std::to_string(batch.ids[j]) + " out of range (model '" +
                               info.name + "' has " + std::to_string(info.num_features) +
                               " features)");
      }
      if (!std::isfinite(batch.values[j])) {
        return InvalidArgument("row " + std::to_string(first_row + r) + ": value for feature " +
                               std::to_string(batch.ids[j]) + " is not a finite number");
      }
    }
  }
  return Status::Ok();
}

LinearPredictor::LinearPredictor(ModelInfo info, std::vector<float> weights,
                                 std::vector<float> bias)
    : info_(std::move(info)), cols_(ScoreColumns(info_)), w_(std::move(weights)),
      b_(std::move(bias)) {}

void LinearPredictor::SetNormalization(std::vector<float> shift, std::vector<float> scale) {
  shift_ = std::move(shift);
  scale_ = std::move(scale);
}

void LinearPredictor::Predict(const SparseBatch& batch, std::vector<float>* out) const {
  const uint32_t outs = OutputsPerRow(info_);
  out->resize(batch.rows() * outs);
  float scores_buf[64];
  std::vector<float> big;  // only for models with more than 64 classes
  float* scores = scores_buf;
  if (cols_ > 64) {
    big.resize(cols_);
    scores = big.data();
  }
  for (size_t r = 0; r < batch.rows(); ++r) {
    for (uint32_t c = 0; c < cols_; ++c) scores[c] = b_[c];
    for (uint32_t j = batch.offsets[r]; j < batch.offsets[r + 1]; ++j) {
      const uint64_t id = batch.ids[j];
      float v = batch.values[j];
      if (id < shift_.size()) v = (v - shift_[id]) * scale_[id];
      const float* w = &w_[id * cols_];
      for (uint32_t c = 0; c < cols_; ++c) scores[c] += v * w[c];
    }
    float* o = out->data() + r * outs;
    switch (info_.task) {
      case Task::kRegression: o[0] = scores[0]; break;
      case Task::kBinary: {
        const float p = 1.0f / (1.0f + std::exp(-scores[0]));
        o[0] = 1.0f - p;
        o[1] = p;
        break;
      }
      case Task::kMulticlass: {
        float m = scores[0];
        for (uint32_t c = 1; c < cols_; ++c) m = std::max(m, scores[c]);
        float sum = 0;
        for (uint32_t c = 0; c < cols_; ++c) sum += (o[c] = std::exp(scores[c] - m));
        for (uint32_t c = 0; c < cols_; ++c) o[c] /= sum;
        break;
      }
    }
  }
}

namespace {

// Reader of the training branch's model files (docs/formats.md there, "Model files"). Kept
// here, small, until that branch is merged and its algo::LoadModel can be called instead.
Result<std::unique_ptr<Predictor>> LoadTrainedModel(const std::string& path, std::string_view bytes) {
  auto bad = [&](const std::string& what) { return InvalidArgument("model " + path + ": " + what); };
  if (bytes.size() < 24) return bad("truncated");
  uint64_t want;
  std::memcpy(&want, bytes.data() + bytes.size() - 8, 8);
  if (Checksum64(bytes.data(), bytes.size() - 8) != want) return bad("checksum mismatch (file corrupt or truncated)");
  ByteReader in(bytes.data() + 8, bytes.size() - 16);
  uint32_t version = 0, flags = 0, ntables = 0;
  std::string algorithm, meta_text;
  if (!in.Get(&version).ok() || !in.Get(&flags).ok()) return bad("truncated header");
  if (version != 1) return bad("format version " + std::to_string(version) + " (this build reads 1)");
  if (!in.GetString(&algorithm).ok() || !in.GetString(&meta_text, 1u << 30).ok()) return bad("truncated metadata");
  if (algorithm != "softmax" && algorithm != "logreg" && algorithm != "linreg") {
    return bad("algorithm '" + algorithm + "' cannot be served yet (linear models only: softmax, logreg, linreg)");
  }
  auto meta = nlohmann::json::parse(meta_text, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) return bad("metadata is not a JSON object");
  if (!in.Get(&ntables).ok()) return bad("truncated table count");
  std::vector<float> w;
  uint64_t rows = 0;
  uint32_t dim = 0;
  for (uint32_t i = 0; i < ntables; ++i) {
    std::string name;
    uint64_t r = 0;
    uint32_t d = 0;
    const char* p = nullptr;
    if (!in.GetString(&name).ok() || !in.Get(&r).ok() || !in.Get(&d).ok()) return bad("truncated table header");
    if (d == 0 || r > in.remaining() / 4 / d || !in.GetView(r * d, 4, &p).ok()) return bad("table " + name + " truncated");
    if (name == "w") {
      rows = r;
      dim = d;
      w.resize(r * d);
      std::memcpy(w.data(), p, w.size() * 4);
    }
  }
  if (in.remaining() != 0) return bad("trailing bytes");
  if (rows < 2) return bad("no weight table 'w'");
  ModelInfo info;
  try {
    const std::string task = meta.value("task", "");
    OC_ASSIGN_OR_RETURN(info.task, ParseTask(task));
    info.num_features = rows - 1;
    info.num_classes = info.task == Task::kBinary ? 2 : info.task == Task::kRegression ? 1 : dim;
    if (ScoreColumns(info) != dim) return bad("table w has " + std::to_string(dim) + " columns for a " + task + " model");
    std::string stem = std::filesystem::path(path).stem().string();
    info.name = meta.contains("name") && meta["name"].is_string() ? meta["name"].get<std::string>() : stem;
    info.group = meta.contains("dataset") && meta["dataset"].is_string() ? meta["dataset"].get<std::string>() : info.name;
    if (meta.contains("label") && meta["label"].is_object() && meta["label"].contains("classes")) {
      auto cv = meta["label"]["classes"].get<std::vector<double>>();
      if (cv.size() == info.num_classes) info.class_values = std::move(cv);
    }
    if (meta.contains("training") && meta["training"].is_object()) {
      const auto& t = meta["training"];
      if (t.contains("test_accuracy") && t["test_accuracy"].is_number()) info.accuracy = t["test_accuracy"].get<double>();
    }
  } catch (const std::exception& e) {
    return bad(std::string("metadata: ") + e.what());
  }
  std::vector<float> bias(w.end() - dim, w.end());
  w.resize(w.size() - dim);
  auto pred = std::make_unique<LinearPredictor>(std::move(info), std::move(w), std::move(bias));
  if (meta.contains("normalization") && meta["normalization"].is_object()) {
    try {
      const auto& n = meta["normalization"];
      const auto ids = n.at("feature_ids").get<std::vector<uint64_t>>();
      const auto shift = n.at("shift").get<std::vector<float>>();
      const auto scale = n.at("scale").get<std::vector<float>>();
      if (ids.size() != shift.size() || ids.size() != scale.size()) return bad("normalization arrays of different lengths");
      uint64_t limit = 0;
      for (uint64_t id : ids) limit = std::max(limit, id + 1);
      limit = std::min<uint64_t>(limit, pred->info().num_features);
      std::vector<float> sh(limit, 0.0f), sc(limit, 1.0f);
      for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < limit) {
          sh[ids[i]] = shift[i];
          sc[ids[i]] = scale[i];
        }
      }
      pred->SetNormalization(std::move(sh), std::move(sc));
    } catch (const std::exception& e) {
      return bad(std::string("normalization: ") + e.what());
    }
  }
  return std::unique_ptr<Predictor>(std::move(pred));
}

}  // namespace

Result<std::unique_ptr<Predictor>> LoadModel(const std::string& path) {
  std::string bytes;
  OC_RETURN_IF_ERROR(ReadFile(path, &bytes));
  auto bad = [&](const std::string& what) { return InvalidArgument("model " + path + ": " + what); };
  if (bytes.size() >= 8 && std::string_view(bytes).substr(0, 8) == "OCMODEL1") return LoadTrainedModel(path, bytes);
  if (bytes.size() < kMagic.size() + 12 || std::string_view(bytes).substr(0, kMagic.size()) != kMagic) {
    return bad("not an overcast model (expected it to start with OCMODEL1 or \"OVERCAST-MODEL 1\")");
  }
  const size_t body = bytes.size() - 8;
  uint64_t want;
  std::memcpy(&want, bytes.data() + body, 8);
  if (Checksum64(bytes.data(), body) != want) return bad("checksum mismatch (file corrupt or truncated)");
  ByteReader in(bytes.data() + kMagic.size(), body - kMagic.size());
  std::string header;
  OC_RETURN_IF_ERROR(in.GetString(&header).WithContext("model " + path));
  ModelInfo info;
  try {
    auto h = nlohmann::json::parse(header);
    if (h.value("kind", "") != "linear") return bad("unsupported model kind '" + h.value("kind", "") + "'");
    info.name = h.at("name").get<std::string>();
    OC_ASSIGN_OR_RETURN(info.task, ParseTask(h.at("task").get<std::string>()));
    info.num_features = h.at("num_features").get<uint64_t>();
    info.num_classes = h.at("num_classes").get<uint32_t>();
    info.accuracy = h.value("accuracy", -1.0);
    info.group = h.value("group", info.name);
  } catch (const std::exception& e) {
    return bad(std::string("bad header: ") + e.what());
  }
  if (info.name.empty()) return bad("empty model name");
  if (info.task == Task::kBinary && info.num_classes != 2) return bad("binary model must have 2 classes");
  if (info.task == Task::kRegression) info.num_classes = 1;
  if (info.task == Task::kMulticlass && (info.num_classes < 2 || info.num_classes > 1u << 16))
    return bad("multiclass model needs 2..65536 classes");
  const uint32_t cols = ScoreColumns(info);
  if (info.num_features == 0 || info.num_features > kMaxWeights / cols) return bad("bad num_features");
  const uint64_t nw = info.num_features * cols;
  if (in.remaining() != (nw + cols) * sizeof(float)) {
    return bad("expected " + std::to_string((nw + cols) * sizeof(float)) + " bytes of weights, found " +
               std::to_string(in.remaining()));
  }
  std::vector<float> w(nw), b(cols);
  std::memcpy(w.data(), in.position(), nw * sizeof(float));
  std::memcpy(b.data(), in.position() + nw * sizeof(float), cols * sizeof(float));
  return std::unique_ptr<Predictor>(new LinearPredictor(std::move(info), std::move(w), std::move(b)));
}

Status WriteLinearModel(const std::string& path, const ModelInfo& info,
                        std::span<const float> weights, std::span<const float> bias) {
  const uint32_t cols = ScoreColumns(info);
  if (weights.size() != info.num_features * cols || bias.size() != cols) {
    return InvalidArgument("weights/bias sizes do not match the model shape");
  }
  nlohmann::json h = {{"kind", "linear"},
                      {"name", info.name},
                      {"task", TaskName(info.task)},
                      {"num_features", info.num_features},
                      {"num_classes", info.task == Task::kRegression ? 1u : info.num_classes}};
  if (info.accuracy >= 0) h["accuracy"] = info.accuracy;
  if (!info.group.empty() && info.group != info.name) h["group"] = info.group;
  std::string out(kMagic);
  ByteWriter w(&out);
  w.PutString(h.dump());
  w.PutArray(weights);
  w.PutArray(bias);
  w.Put<uint64_t>(Checksum64(out.data(), out.size()));
  return WriteFileAtomic(path, out);
}

Status WriteRandomLinearModel(const std::string& path, const std::string& name, Task task,
                              uint64_t num_features, uint32_t num_classes, uint64_t seed,
                              const std::string& group, double accuracy) {
  ModelInfo info;
  info.name = name;
  info.task = task;
  info.num_features = num_features;
  info.num_classes = task == Task::kRegression ? 1u : num_classes;
  info.accuracy = accuracy;
  info.group = group;
  const uint32_t cols = ScoreColumns(info);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.1f);
  std::vector<float> w(num_features * cols), b(cols);
  for (auto& x : w) x = n(rng);
  for (auto& x : b) x = n(rng);
  return WriteLinearModel(path, info, w, b);
}

}  // namespace overcast::serve
