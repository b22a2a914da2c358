#include "algo/linear.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "algo/batch_keys.h"
#include "algo/cross.h"
#include "algo/metrics.h"

namespace overcast::algo {
namespace {

// One sparse table "w": key j < num_features holds feature j's weights (one per output), key
// num_features holds the biases, and keys num_features + 1 + h hold the weights of crossed
// features (algo/cross.h) when the model has crosses. The worker pushes the minibatch-mean
// gradient of the loss; the server's optimizer (with its l1/l2) applies it.
class Linear final : public Algorithm {
 public:
  Linear(Task task, const Params& p, const DataInfo& info, ps::OptimizerConfig opt,
         Crosses crosses)
      : task_(task),
        info_(info),
        opt_(opt),
        batch_(std::max<int64_t>(1, p.Int("batch"))),
        crosses_(std::move(crosses)) {
    outputs_ = task == Task::kMulticlass ? info.num_classes : 1;
  }

  Task task() const override { return task_; }
  size_t outputs() const override { return outputs_; }

  Status Initialize(State& state, const Sample*) override {
    ps::TableSpec spec;
    spec.name = "w";
    spec.kind = ps::TableKind::kSparse;
    spec.dim = static_cast<uint32_t>(outputs_);
    spec.optimizer = opt_;
    return state.CreateTable(spec);
  }

  Status Prepare(State& state, const data::Minibatch& batch, int slot) override {
    Slot& s = slots_[slot];
    if (!crosses_.empty()) crosses_.Expand(batch, info_.num_features, &s.crossed);
    s.keys.Build(Rows(s, batch).ids, info_.num_features);
    s.w.resize(s.keys.keys.size() * outputs_);
    s.pull = state.Pull("w", s.keys.keys, s.w.data());
    return Status::Ok();
  }

  Status Apply(State& state, const data::Minibatch& given, int slot) override {
    Slot& s = slots_[slot];
    const data::Minibatch& batch = Rows(s, given);
    OC_RETURN_IF_ERROR(s.pull.get());
    if (s.push.valid()) OC_RETURN_IF_ERROR(s.push.get());  // s.g is about to be reused
    const size_t C = outputs_, n = batch.rows();
    s.g.assign(s.w.size(), 0.0f);
    scores_.resize(C);
    const float* bias = s.w.data() + s.keys.extra_index() * C;
    float* gbias = s.g.data() + s.keys.extra_index() * C;
    // Divided by the nominal batch size, not the rows in hand: an epoch's short last batch
    // must not take a full-size step on a handful of rows.
    const float inv = 1.0f / static_cast<float>(std::max<size_t>(n, batch_));
    for (size_t r = 0; r < n; ++r) {
      const uint64_t b = batch.offsets[r], e = batch.offsets[r + 1];
      std::copy(bias, bias + C, scores_.begin());
      for (uint64_t i = b; i < e; ++i) {
        const float x = batch.values[i];
        const float* w = s.w.data() + size_t{s.keys.pos[i]} * C;
        for (size_t c = 0; c < C; ++c) scores_[c] += x * w[c];
      }
      // scores_ becomes d loss / d score.
      if (!Residual(batch.labels[r])) continue;
      for (size_t c = 0; c < C; ++c) scores_[c] *= inv;
      for (uint64_t i = b; i < e; ++i) {
        const float x = batch.values[i];
        float* g = s.g.data() + size_t{s.keys.pos[i]} * C;
        for (size_t c = 0; c < C; ++c) g[c] += x * scores_[c];
      }
      for (size_t c = 0; c < C; ++c) gbias[c] += scores_[c];
    }
    s.push = state.Push("w", s.keys.keys, s.g);
    return Status::Ok();
  }

  Status Finalize(State&) override {
    Status first;
    for (auto& s : slots_) {  // pulls too: their buffers must outlive the replies
      if (s.pull.valid()) first = s.pull.get();
      if (s.push.valid()) OC_RETURN_IF_ERROR(s.push.get());
    }
    OC_RETURN_IF_ERROR(first);
    return Status::Ok();
  }

  Status Export(State& state, Model* model) override {
    ModelTable t;
    t.rows = info_.num_features + 1 + crosses_.keys();
    t.dim = static_cast<uint32_t>(outputs_);
    t.data.resize(t.rows * t.dim);
    constexpr uint64_t kChunk = 1 << 16;
    std::vector<uint64_t> keys;
    std::vector<std::future<Status>> pulls;
    keys.resize(t.rows);
    for (uint64_t k = 0; k < t.rows; ++k) keys[k] = k;
    for (uint64_t k = 0; k < t.rows; k += kChunk) {
      uint64_t n = std::min(kChunk, t.rows - k);
      pulls.push_back(state.Pull("w", std::span<const uint64_t>(keys).subspan(k, n),
                                 t.data.data() + k * t.dim));
    }
    for (auto& f : pulls) OC_RETURN_IF_ERROR(f.get());
    model->tables["w"] = std::move(t);
    return Status::Ok();
  }

  void Predict(const Model& model, const data::Minibatch& given, float* out) const override {
    const ModelTable& t = model.tables.at("w");
    const size_t C = outputs_;
    const uint64_t nf = info_.num_features;
    if (t.rows != nf + 1 + crosses_.keys() || t.dim != C)
      throw std::runtime_error("table w is " + std::to_string(t.rows) + " x " +
                               std::to_string(t.dim) + ", the model needs " +
                               std::to_string(nf + 1 + crosses_.keys()) + " x " +
                               std::to_string(C));
    data::OwnedMinibatch crossed;
    if (!crosses_.empty()) crosses_.Expand(given, nf, &crossed);
    const data::Minibatch& rows = crosses_.empty() ? given : crossed.view;
    const float* bias = t.row(nf);
    for (size_t r = 0; r < rows.rows(); ++r) {
      float* o = out + r * C;
      std::copy(bias, bias + C, o);
      for (uint64_t i = rows.offsets[r]; i < rows.offsets[r + 1]; ++i) {
        if (rows.ids[i] >= t.rows || rows.ids[i] == nf) continue;
        const float x = rows.values[i];
        const float* w = t.row(rows.ids[i]);
        for (size_t c = 0; c < C; ++c) o[c] += x * w[c];
      }
      if (task_ == Task::kMulticlass) Softmax(o, C);
      else if (task_ == Task::kBinary) o[0] = Sigmoid(o[0]);
    }
  }

 private:
  struct Slot {
    data::OwnedMinibatch crossed;  // the batch with its crossed entries, when there are crosses
    BatchKeys keys;
    std::vector<float> w, g;
    std::future<Status> pull, push;
  };

  // The rows a slot trains on: the batch itself, or its crossed copy.
  const data::Minibatch& Rows(const Slot& s, const data::Minibatch& batch) const {
    return crosses_.empty() ? batch : s.crossed.view;
  }

  static float Sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }
  static void Softmax(float* s, size_t C) {
    float m = *std::max_element(s, s + C), sum = 0;
    for (size_t c = 0; c < C; ++c) sum += (s[c] = std::exp(s[c] - m));
    for (size_t c = 0; c < C; ++c) s[c] /= sum;
  }

  // Turns scores_ into the gradient of the loss w.r.t. the scores and adds the loss; false
  // (row skipped) for a label the model cannot use.
  bool Residual(float label) {
    switch (task_) {
      case Task::kMulticlass: {
        int y = ClassIndex(info_.classes, label);
        if (y < 0 || static_cast<size_t>(y) >= outputs_) return false;
        Softmax(scores_.data(), outputs_);
        loss_sum_ += -std::log(std::max(scores_[y], 1e-15f));
        scores_[y] -= 1.0f;
        break;
      }
      case Task::kBinary: {
        const float y = label > 0 ? 1.0f : 0.0f;
        const float p = Sigmoid(scores_[0]);
        loss_sum_ += -std::log(std::max(y > 0 ? p : 1 - p, 1e-15f));
        scores_[0] = p - y;
        break;
      }
      default: {
        const float d = scores_[0] - label;
        loss_sum_ += d * d;
        scores_[0] = d;
        break;
      }
    }
    ++loss_rows_;
    return true;
  }

  Task task_;
  DataInfo info_;
  ps::OptimizerConfig opt_;
  size_t outputs_ = 1;
  size_t batch_;
  Crosses crosses_;
  Slot slots_[2];
  std::vector<float> scores_;
};

Result<std::unique_ptr<Algorithm>> Make(Task task, const std::string& name, const Params& p,
                                        const DataInfo& info) {
  if (info.num_features == 0) return InvalidArgument(name + ": the dataset has no features");
  if (task == Task::kMulticlass && (info.label_kind != "multiclass" || info.classes.size() < 2))
    return InvalidArgument(name + " needs a multiclass dataset; this one's labels are " +
                           (info.label_kind.empty() ? "unknown" : info.label_kind) +
                           " (use logreg for binary, linreg for regression)");
  if (task == Task::kBinary && info.label_kind != "binary")
    return InvalidArgument(name + " needs a binary dataset; this one's labels are " +
                           info.label_kind + " (use softmax or linreg)");
  OC_ASSIGN_OR_RETURN(auto opt, OptimizerFromParams(p));
  OC_ASSIGN_OR_RETURN(Crosses crosses,
                      Crosses::Make(p.Text("cross"), static_cast<uint32_t>(p.Int("field_bits")),
                                    static_cast<uint32_t>(p.Int("cross_bits")),
                                    info.num_features + 1));
  DataInfo d = info;
  if (task == Task::kMulticlass) d.num_classes = d.classes.size();
  return std::unique_ptr<Algorithm>(new Linear(task, p, d, opt, std::move(crosses)));
}

// The common parameters and the crosses.
std::vector<ParamSpec> LinearParams(double lr, const std::string& optimizer, int64_t batch) {
  std::vector<ParamSpec> p = CommonParams(lr, optimizer, batch);
  p.push_back(ParamSpec::Text(
      "cross", "",
      "field pairs to cross, e.g. 0x1,2x3: each pair of a row's features from fields A and B "
      "adds a hashed feature, their product (pairwise interactions; a field is a feature id "
      "shifted right by field_bits)",
      Crosses::Check));
  p.push_back(ParamSpec::Int("field_bits", 0,
                             "a feature's field is its 0-based id >> field_bits (0: each feature "
                             "is its own field)",
                             0, 31));
  p.push_back(ParamSpec::Int("cross_bits", 20, "crossed features hash into 2^cross_bits weights",
                             1, 30));
  return p;
}

}  // namespace

AlgorithmInfo SoftmaxInfo() {
  // batch 32: on Fashion-MNIST (minmax) it lands at test accuracy 0.845-0.847 over seeds, where
  // batch 64 spread 0.843-0.848 (measured with overcast train --seed 1,3,6).
  // lr 0.1: 10 epochs at 0.05 stop short of the optimum (2 workers, seeds 1-5: 0.8459-0.8479,
  // one CI run under load 0.8445); at 0.1 0.8488-0.8497 (also beside a busy core), at 0.2
  // 0.8483-0.8493, 0.4 0.8464-0.8476, 0.02 0.8402-0.8407; 1 and 4 workers gain too
  // (0.8474 -> 0.8492, 0.8453 -> 0.8468). An l2 of 1e-4 or 1e-3 only lowers it
  // (0.8453-0.8464, 0.8409-0.843).
  return {"softmax", "multi-class logistic regression (sparse, L1/L2 through the optimizer)",
          LinearParams(0.1, "adagrad", 32),
          [](const Params& p, const DataInfo& d) { return Make(Task::kMulticlass, "softmax", p, d); }};
}
AlgorithmInfo LogregInfo() {
  return {"logreg", "binary logistic regression (sparse, L1/L2 through the optimizer)",
          LinearParams(0.05, "adagrad", 64),
          [](const Params& p, const DataInfo& d) { return Make(Task::kBinary, "logreg", p, d); }};
}
AlgorithmInfo LinregInfo() {
  return {"linreg", "least-squares linear regression (sparse, L1/L2 through the optimizer)",
          LinearParams(0.05, "adagrad", 64),
          [](const Params& p, const DataInfo& d) { return Make(Task::kRegression, "linreg", p, d); }};
}

}  // namespace overcast::algo
