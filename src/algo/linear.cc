#include "algo/linear.h"

#include <algorithm>
#include <cmath>

#include "algo/batch_keys.h"
#include "algo/metrics.h"

namespace overcast::algo {
namespace {

// One sparse table "w": key j < num_features holds feature j's weights (one per output), key
// num_features holds the biases. The worker pushes the minibatch-mean gradient of the loss;
// the server's optimizer (with its l1/l2) applies it.
class Linear final : public Algorithm {
 public:
  Linear(Task task, const Params& p, const DataInfo& info, ps::OptimizerConfig opt)
      : task_(task), info_(info), opt_(opt) {
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
    s.keys.Build(batch.ids, info_.num_features);
    s.w.resize(s.keys.keys.size() * outputs_);
    s.pull = state.Pull("w", s.keys.keys, s.w.data());
    return Status::Ok();
  }

  Status Apply(State& state, const data::Minibatch& batch, int slot) override {
    Slot& s = slots_[slot];
    OC_RETURN_IF_ERROR(s.pull.get());
    if (s.push.valid()) OC_RETURN_IF_ERROR(s.push.get());  // s.g is about to be reused
    const size_t C = outputs_, n = batch.rows();
    s.g.assign(s.w.size(), 0.0f);
    scores_.resize(C);
    const float* bias = s.w.data() + s.keys.extra_index() * C;
    float* gbias = s.g.data() + s.keys.extra_index() * C;
    const float inv = 1.0f / static_cast<float>(std::max<size_t>(n, 1));
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
    t.rows = info_.num_features + 1;
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

  void Predict(const Model& model, const data::Minibatch& rows, float* out) const override {
    const ModelTable& t = model.tables.at("w");
    const size_t C = outputs_;
    const uint64_t nf = t.rows - 1;
    const float* bias = t.row(nf);
    for (size_t r = 0; r < rows.rows(); ++r) {
      float* o = out + r * C;
      std::copy(bias, bias + C, o);
      for (uint64_t i = rows.offsets[r]; i < rows.offsets[r + 1]; ++i) {
        if (rows.ids[i] >= nf) continue;
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
    BatchKeys keys;
    std::vector<float> w, g;
    std::future<Status> pull, push;
  };

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
  DataInfo d = info;
  if (task == Task::kMulticlass) d.num_classes = d.classes.size();
  return std::unique_ptr<Algorithm>(new Linear(task, p, d, opt));
}

}  // namespace

AlgorithmInfo SoftmaxInfo() {
  return {"softmax", "multi-class logistic regression (sparse, L1/L2 through the optimizer)",
          CommonParams(0.05, "adagrad", 64),
          [](const Params& p, const DataInfo& d) { return Make(Task::kMulticlass, "softmax", p, d); }};
}
AlgorithmInfo LogregInfo() {
  return {"logreg", "binary logistic regression (sparse, L1/L2 through the optimizer)",
          CommonParams(0.05, "adagrad", 64),
          [](const Params& p, const DataInfo& d) { return Make(Task::kBinary, "logreg", p, d); }};
}
AlgorithmInfo LinregInfo() {
  return {"linreg", "least-squares linear regression (sparse, L1/L2 through the optimizer)",
          CommonParams(0.05, "adagrad", 64),
          [](const Params& p, const DataInfo& d) { return Make(Task::kRegression, "linreg", p, d); }};
}

}  // namespace overcast::algo
