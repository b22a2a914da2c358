#include "serve/predictor.h"

#include <cmath>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/fs.h"
#include "common/hash.h"
#include "algo/model.h"

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
    case Task::kClustering: return "clustering";
  }
  return "?";
}

Status ValidateBatch(const ModelInfo& info, const SparseBatch& batch, size_t first_row) {
  for (size_t row = first_row; row < batch.rows(); ++row) {
    for (uint32_t k = batch.offsets[row]; k < batch.offsets[row + 1]; ++k) {
      if (batch.ids[k] >= info.num_features) {
        return InvalidArgument("row " + std::to_string(row - first_row) + ": feature id " +
                               std::to_string(batch.ids[k]) + " out of range (model '" +
                               info.name + "' has " + std::to_string(info.num_features) +
                               " features)");
      }
      if (!std::isfinite(batch.values[k])) {
        return InvalidArgument("row " + std::to_string(row - first_row) + ": value for feature " +
                               std::to_string(batch.ids[k]) + " is not finite");
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
      case Task::kClustering: break;  // never linear (LoadModel builds no such LinearPredictor)
    }
  }
}

namespace {

// A model written by `overcast train --out`, scored by its own algorithm (algo::Scorer: every
// built-in, with the dataset's normalization). Rows are copied into the algorithm's minibatch
// form (32-bit ids) per batch, in buffers local to the calling thread.
class TrainedPredictor final : public Predictor {
 public:
  TrainedPredictor(ModelInfo info, algo::Scorer scorer)
      : info_(std::move(info)), scorer_(std::move(scorer)) {}
  const ModelInfo& info() const override { return info_; }

  void Predict(const SparseBatch& batch, std::vector<float>* out) const override {
    struct Buffers {
      std::vector<float> labels, values, scores;
      std::vector<uint64_t> offsets;
      std::vector<uint32_t> ids;
    };
    thread_local Buffers b;
    const size_t rows = batch.rows();
    b.labels.assign(rows, 0.0f);
    b.offsets.assign(batch.offsets.begin(), batch.offsets.end());
    b.ids.assign(batch.ids.begin(), batch.ids.end());  // < num_features < 2^32 (ValidateBatch)
    b.values.assign(batch.values.begin(), batch.values.end());
    scorer_.Normalize(b.ids, b.values);
    data::Minibatch mb;
    mb.labels = b.labels;
    mb.offsets = b.offsets;
    mb.ids = b.ids;
    mb.values = b.values;
    const size_t k = scorer_.outputs();
    b.scores.resize(rows * k);
    scorer_.Predict(mb, b.scores.data());
    const uint32_t outs = OutputsPerRow(info_);
    out->resize(rows * outs);
    for (size_t r = 0; r < rows; ++r) {
      const float* in = b.scores.data() + r * k;
      float* o = out->data() + r * outs;
      if (info_.task == Task::kBinary) {  // the algorithm gives P(y = 1)
        o[0] = 1.0f - in[0];
        o[1] = in[0];
      } else {
        std::copy(in, in + outs, o);
      }
    }
  }

 private:
  ModelInfo info_;
  algo::Scorer scorer_;
};

Result<std::unique_ptr<Predictor>> LoadTrainedModel(const std::string& path) {
  OC_ASSIGN_OR_RETURN(algo::Scorer scorer, algo::Scorer::Load(path));
  const nlohmann::json& meta = scorer.model().meta;
  const algo::DataInfo& data = scorer.data_info();
  ModelInfo info;
  switch (scorer.task()) {
    case algo::Task::kBinary: info.task = Task::kBinary; info.num_classes = 2; break;
    case algo::Task::kMulticlass:
      info.task = Task::kMulticlass;
      info.num_classes = static_cast<uint32_t>(scorer.outputs());
      break;
    case algo::Task::kRegression: info.task = Task::kRegression; info.num_classes = 1; break;
    case algo::Task::kClustering:
      info.task = Task::kClustering;
      if (auto c = scorer.model().tables.find("centers"); c != scorer.model().tables.end())
        info.num_classes = static_cast<uint32_t>(c->second.rows);
      break;
  }
  info.num_features = data.num_features;
  if (info.num_features == 0 || info.num_features > (uint64_t{1} << 32))
    return InvalidArgument("model " + path + ": num_features " + std::to_string(info.num_features) +
                           " out of range");
  const std::string stem = std::filesystem::path(path).stem().string();
  info.name = meta.contains("name") && meta["name"].is_string() ? meta["name"].get<std::string>() : stem;
  info.group = meta.contains("dataset") && meta["dataset"].is_string() ? meta["dataset"].get<std::string>()
                                                                       : info.name;
  if (info.task == Task::kBinary || info.task == Task::kMulticlass) {
    if (data.classes.size() == info.num_classes)
      info.class_values.assign(data.classes.begin(), data.classes.end());
    const auto& t = meta.value("training", nlohmann::json::object());
    if (t.is_object() && t.contains("test_accuracy") && t["test_accuracy"].is_number())
      info.accuracy = t["test_accuracy"].get<double>();
  }
  return std::unique_ptr<Predictor>(new TrainedPredictor(std::move(info), std::move(scorer)));
}

}  // namespace

Result<std::unique_ptr<Predictor>> LoadModel(const std::string& path) {
  std::string bytes;
  OC_RETURN_IF_ERROR(ReadFile(path, &bytes));
  auto bad = [&](const std::string& what) { return InvalidArgument("model " + path + ": " + what); };
  if (bytes.size() >= 8 && std::string_view(bytes).substr(0, 8) == "OCMODEL1") return LoadTrainedModel(path);
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
