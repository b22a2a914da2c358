#include "algo/factor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "algo/batch_keys.h"

namespace overcast::algo {
namespace {

float Sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// Pulls keys 0..rows-1 of a sparse table of width dim into a model table, in chunks.
Status ExportSparse(State& state, const std::string& table, uint64_t rows, uint32_t dim,
                    ModelTable* t) {
  t->rows = rows;
  t->dim = dim;
  t->data.resize(rows * dim);
  std::vector<uint64_t> keys(rows);
  for (uint64_t k = 0; k < rows; ++k) keys[k] = k;
  constexpr uint64_t kChunk = 1 << 15;
  std::vector<std::future<Status>> pulls;
  for (uint64_t k = 0; k < rows; k += kChunk) {
    uint64_t n = std::min(kChunk, rows - k);
    pulls.push_back(state.Pull(table, std::span<const uint64_t>(keys).subspan(k, n),
                               t->data.data() + k * dim));
  }
  Status first;
  for (auto& f : pulls) {
    Status s = f.get();
    if (first.ok()) first = s;
  }
  return first;
}

// Slots of pulled rows and pushed gradients, shared by the sparse models below.
struct SparseSlot {
  BatchKeys keys;
  std::vector<float> w, g;
  std::future<Status> pull, push;
};

Status WaitSlots(SparseSlot* slots, int n) {
  Status first;
  for (int i = 0; i < n; ++i) {
    if (slots[i].pull.valid()) first = slots[i].pull.get();
    if (slots[i].push.valid()) OC_RETURN_IF_ERROR(slots[i].push.get());
  }
  return first;
}

// ---------------------------------------------------------------------------------------------
// Factorization machine (Rendle 2010): y = b + sum_j w_j x_j + sum_{i<j} <v_i, v_j> x_i x_j,
// computed in O(nnz * factors). Table "v": key j holds [w_j, v_j1..v_jF]; key num_features holds
// the bias in column 0. Binary (logistic loss) or regression (squared loss) by the dataset.
class Fm final : public Algorithm {
 public:
  Fm(Task task, const Params& p, const DataInfo& info, ps::OptimizerConfig opt)
      : task_(task), info_(info), opt_(opt), factors_(p.Int("factors")),
        batch_(std::max<int64_t>(1, p.Int("batch"))), init_std_(p.Float("init_std")) {}
  Task task() const override { return task_; }
  size_t outputs() const override { return 1; }
  uint32_t dim() const { return static_cast<uint32_t>(factors_ + 1); }

  Status Initialize(State& state, const Sample*) override {
    ps::TableSpec spec;
    spec.name = "v";
    spec.dim = dim();
    spec.optimizer = opt_;
    spec.init = {ps::InitKind::kNormal, 0.0f, static_cast<float>(init_std_), 17};
    return state.CreateTable(spec);
  }
  Status Prepare(State& state, const data::Minibatch& batch, int slot) override {
    SparseSlot& s = slots_[slot];
    s.keys.Build(batch.ids, info_.num_features);
    s.w.resize(s.keys.keys.size() * dim());
    s.pull = state.Pull("v", s.keys.keys, s.w.data());
    return Status::Ok();
  }
  Status Apply(State& state, const data::Minibatch& batch, int slot) override {
    SparseSlot& s = slots_[slot];
    OC_RETURN_IF_ERROR(s.pull.get());
    if (s.push.valid()) OC_RETURN_IF_ERROR(s.push.get());
    const uint32_t D = dim();
    const size_t F = factors_;
    s.g.assign(s.w.size(), 0.0f);
    sum_.resize(F);
    const float inv = 1.0f / static_cast<float>(std::max<size_t>(batch.rows(), batch_));
    const size_t bias = s.keys.extra_index();
    for (size_t r = 0; r < batch.rows(); ++r) {
      const uint64_t b = batch.offsets[r], e = batch.offsets[r + 1];
      float y = Score(s.w.data(), D, s.w[bias * D], batch, b, e, s.keys.pos.data());
      float d;  // d loss / d y
      if (task_ == Task::kBinary) {
        const float t = batch.labels[r] > 0 ? 1.0f : 0.0f, p = Sigmoid(y);
        loss_sum_ += -std::log(std::max(t > 0 ? p : 1 - p, 1e-15f));
        d = p - t;
      } else {
        d = y - batch.labels[r];
        loss_sum_ += d * d;
      }
      ++loss_rows_;
      d *= inv;
      s.g[bias * D] += d;
      for (uint64_t i = b; i < e; ++i) {
        const float x = batch.values[i];
        const float* v = s.w.data() + size_t{s.keys.pos[i]} * D;
        float* g = s.g.data() + size_t{s.keys.pos[i]} * D;
        g[0] += d * x;
        for (size_t f = 0; f < F; ++f) g[1 + f] += d * x * (sum_[f] - v[1 + f] * x);
      }
    }
    s.push = state.Push("v", s.keys.keys, s.g);
    return Status::Ok();
  }
  Status Finalize(State&) override { return WaitSlots(slots_, 2); }
  Status Export(State& state, Model* model) override {
    return ExportSparse(state, "v", info_.num_features + 1, dim(), &model->tables["v"]);
  }
  void Predict(const Model& model, const data::Minibatch& rows, float* out) const override {
    const ModelTable& t = model.tables.at("v");
    const uint64_t nf = t.rows - 1;
    std::vector<float> sum(factors_);
    for (size_t r = 0; r < rows.rows(); ++r) {
      float y = t.row(nf)[0], sq = 0;
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (uint64_t i = rows.offsets[r]; i < rows.offsets[r + 1]; ++i) {
        if (rows.ids[i] >= nf) continue;
        const float x = rows.values[i];
        const float* v = t.row(rows.ids[i]);
        y += v[0] * x;
        for (size_t f = 0; f < factors_; ++f) {
          sum[f] += v[1 + f] * x;
          sq += v[1 + f] * v[1 + f] * x * x;
        }
      }
      for (size_t f = 0; f < factors_; ++f) y += 0.5f * sum[f] * sum[f];
      y -= 0.5f * sq;
      out[r] = task_ == Task::kBinary ? Sigmoid(y) : y;
    }
  }

 private:
  // Fills sum_ (sum_j v_jf x_j) and returns the FM output for entries [b, e).
  float Score(const float* w, uint32_t D, float bias, const data::Minibatch& batch, uint64_t b,
              uint64_t e, const uint32_t* pos) {
    float y = bias, sq = 0;
    std::fill(sum_.begin(), sum_.end(), 0.0f);
    for (uint64_t i = b; i < e; ++i) {
      const float x = batch.values[i];
      const float* v = w + size_t{pos[i]} * D;
      y += v[0] * x;
      for (size_t f = 0; f < factors_; ++f) {
        sum_[f] += v[1 + f] * x;
        sq += v[1 + f] * v[1 + f] * x * x;
      }
    }
    for (size_t f = 0; f < factors_; ++f) y += 0.5f * sum_[f] * sum_[f];
    return y - 0.5f * sq;
  }

  Task task_;
  DataInfo info_;
  ps::OptimizerConfig opt_;
  size_t factors_, batch_;
  double init_std_;
  SparseSlot slots_[2];
  std::vector<float> sum_;
};

// ---------------------------------------------------------------------------------------------
// Matrix factorization on a ratings dataset (user u = feature 2u, item i = feature 2i+1):
// r = mu + b_u + b_i + <p_u, q_i>. Table "f": key = feature id, [p or q (rank), bias]; table
// "mu": key 0, the global mean. Gradients are per-row sums (each key appears in few rows of a
// batch) and the worker adds the L2 terms per rating, as classic SGD-MF does: l2 * p_u to p_u's
// gradient for each rating of u, bias_l2 * b_u to b_u's (biases need less shrinking than the
// factors); the server's optimizer gets no l2 of its own.
class Mf final : public Algorithm {
 public:
  Mf(const Params& p, const DataInfo& info, ps::OptimizerConfig opt)
      : info_(info), opt_(opt), rank_(p.Int("rank")), init_std_(p.Float("init_std")),
        l2_(static_cast<float>(p.Float("l2"))), bias_l2_(static_cast<float>(p.Float("bias_l2"))) {
    opt_.l2 = 0;
  }
  Task task() const override { return Task::kRegression; }
  size_t outputs() const override { return 1; }
  uint32_t dim() const { return static_cast<uint32_t>(rank_ + 1); }

  Status Initialize(State& state, const Sample*) override {
    ps::TableSpec f;
    f.name = "f";
    f.dim = dim();
    f.optimizer = opt_;
    f.init = {ps::InitKind::kNormal, 0.0f, static_cast<float>(init_std_), 29};
    OC_RETURN_IF_ERROR(state.CreateTable(f));
    ps::TableSpec mu;
    mu.name = "mu";
    mu.dim = 1;
    mu.optimizer = opt_;
    mu.optimizer.l2 = 0;
    return state.CreateTable(mu);
  }
  Status Prepare(State& state, const data::Minibatch& batch, int slot) override {
    SparseSlot& s = slots_[slot];
    s.keys.Build(batch.ids, 0);  // the extra key is unused in "f"
    s.w.resize(s.keys.keys.size() * dim());
    s.pull = state.Pull("f", s.keys.keys, s.w.data());
    mu_pull_[slot] = state.Pull("mu", kMuKey, &mu_[slot]);
    return Status::Ok();
  }
  Status Apply(State& state, const data::Minibatch& batch, int slot) override {
    SparseSlot& s = slots_[slot];
    OC_RETURN_IF_ERROR(s.pull.get());
    OC_RETURN_IF_ERROR(mu_pull_[slot].get());
    if (s.push.valid()) OC_RETURN_IF_ERROR(s.push.get());
    if (mu_push_[slot].valid()) OC_RETURN_IF_ERROR(mu_push_[slot].get());
    const uint32_t D = dim();
    s.g.assign(s.w.size(), 0.0f);
    float gmu = 0;
    for (size_t r = 0; r < batch.rows(); ++r) {
      const uint64_t b = batch.offsets[r], e = batch.offsets[r + 1];
      int u = -1, it = -1;
      for (uint64_t i = b; i < e; ++i) (batch.ids[i] % 2 == 0 ? u : it) = static_cast<int>(i);
      if (u < 0 || it < 0) continue;
      const float* p = s.w.data() + size_t{s.keys.pos[u]} * D;
      const float* q = s.w.data() + size_t{s.keys.pos[it]} * D;
      float y = mu_[slot] + p[rank_] + q[rank_];
      for (size_t k = 0; k < rank_; ++k) y += p[k] * q[k];
      const float d = y - batch.labels[r];
      loss_sum_ += d * d;
      ++loss_rows_;
      float* gp = s.g.data() + size_t{s.keys.pos[u]} * D;
      float* gq = s.g.data() + size_t{s.keys.pos[it]} * D;
      for (size_t k = 0; k < rank_; ++k) {
        gp[k] += d * q[k] + l2_ * p[k];
        gq[k] += d * p[k] + l2_ * q[k];
      }
      gp[rank_] += d + bias_l2_ * p[rank_];
      gq[rank_] += d + bias_l2_ * q[rank_];
      gmu += d;
    }
    mu_grad_[slot] = gmu / static_cast<float>(std::max<size_t>(batch.rows(), 1));
    s.push = state.Push("f", s.keys.keys, s.g);
    mu_push_[slot] = state.Push("mu", kMuKey, std::span<const float>(&mu_grad_[slot], 1));
    return Status::Ok();
  }
  Status Finalize(State&) override {
    for (int i = 0; i < 2; ++i) {
      if (mu_pull_[i].valid()) (void)mu_pull_[i].get();
      if (mu_push_[i].valid()) OC_RETURN_IF_ERROR(mu_push_[i].get());
    }
    return WaitSlots(slots_, 2);
  }
  Status Export(State& state, Model* model) override {
    OC_RETURN_IF_ERROR(ExportSparse(state, "f", info_.num_features, dim(), &model->tables["f"]));
    return ExportSparse(state, "mu", 1, 1, &model->tables["mu"]);
  }
  void Predict(const Model& model, const data::Minibatch& rows, float* out) const override {
    const ModelTable& t = model.tables.at("f");
    const float mu = model.tables.at("mu").data[0];
    for (size_t r = 0; r < rows.rows(); ++r) {
      float y = mu;
      const float* p = nullptr;
      const float* q = nullptr;
      for (uint64_t i = rows.offsets[r]; i < rows.offsets[r + 1]; ++i) {
        if (rows.ids[i] >= t.rows) continue;  // an unseen user or item: its bias is 0
        (rows.ids[i] % 2 == 0 ? p : q) = t.row(rows.ids[i]);
      }
      if (p) y += p[rank_];
      if (q) y += q[rank_];
      if (p && q)
        for (size_t k = 0; k < rank_; ++k) y += p[k] * q[k];
      out[r] = y;
    }
  }

 private:
  static constexpr uint64_t kMuKeyValue[1] = {0};
  const std::span<const uint64_t> kMuKey{kMuKeyValue, 1};
  DataInfo info_;
  ps::OptimizerConfig opt_;
  size_t rank_;
  double init_std_;
  float l2_, bias_l2_;
  SparseSlot slots_[2];
  float mu_[2] = {0, 0}, mu_grad_[2] = {0, 0};
  std::future<Status> mu_pull_[2], mu_push_[2];
};

// ---------------------------------------------------------------------------------------------
// Mini-batch k-means (Sculley 2010) with greedy k-means++ seeding on the coordinator's sample. Dense
// tables with the "add" rule: "centers" (k x num_features) and "counts" (k). A worker assigns
// each row to its nearest centre and pushes, per centre c with m_c new rows and n_c = count_c +
// m_c, the step (sum x - m_c c) / n_c: each centre is the running mean of the rows it got. With
// n_c capped at max_count the mean forgets rows assigned long ago (by centres since moved), so
// the centres keep converging as Lloyd's iterations do instead of freezing on stale
// assignments; the cap is high enough that the noise of the last rows barely counts.
class Kmeans final : public Algorithm {
 public:
  Kmeans(const Params& p, const DataInfo& info)
      : info_(info), k_(p.Int("k")), seed_(static_cast<uint64_t>(p.Int("seed"))),
        max_count_(static_cast<float>(p.Int("max_count"))) {}
  Task task() const override { return Task::kClustering; }
  size_t outputs() const override { return 2; }

  Status Initialize(State& state, const Sample* sample) override {
    const uint64_t F = info_.num_features;
    ps::TableSpec c;
    c.name = "centers";
    c.kind = ps::TableKind::kDense;
    c.length = k_ * F;
    c.optimizer.kind = ps::OptimizerKind::kAdd;
    OC_RETURN_IF_ERROR(state.CreateTable(c));
    ps::TableSpec n = c;
    n.name = "counts";
    n.length = k_;
    OC_RETURN_IF_ERROR(state.CreateTable(n));
    if (!sample) return Status::Ok();
    if (sample->rows() < k_)
      return InvalidArgument("kmeans: k=" + std::to_string(k_) + " exceeds the " +
                             std::to_string(sample->rows()) + " rows sampled");
    // Greedy k-means++ (as scikit-learn seeds): each next seed is the best, by the sample's
    // resulting sum of D(x)^2, of 2 + ln k candidates drawn with probability proportional to
    // D(x)^2 (plain k-means++ draws one; the greedy pick avoids most poor seedings).
    const size_t rows = sample->rows();
    std::mt19937_64 rng(seed_);
    std::vector<float> centers(k_ * F, 0.0f);
    auto set_center = [&](size_t c, size_t r) {
      std::fill(centers.begin() + c * F, centers.begin() + (c + 1) * F, 0.0f);
      for (uint64_t i = sample->offsets[r]; i < sample->offsets[r + 1]; ++i)
        if (sample->ids[i] < F) centers[c * F + sample->ids[i]] = sample->values[i];
    };
    // D(x)^2 of every sample row to centre c, folded into `d2` by min; returns the new sum.
    auto fold = [&](const float* center, std::vector<double>& d2) {
      const float cn = Norm2(center);
      double total = 0;
      for (size_t r = 0; r < rows; ++r) {
        d2[r] = std::min<double>(d2[r], Dist2(center, cn, *sample, r));
        total += d2[r];
      }
      return total;
    };
    std::vector<double> d2(rows, std::numeric_limits<double>::infinity());
    std::vector<double> trial(rows), best_d2(rows);
    set_center(0, std::uniform_int_distribution<size_t>(0, rows - 1)(rng));
    double total = fold(centers.data(), d2);
    const int candidates = 2 + static_cast<int>(std::log(static_cast<double>(k_)));
    std::vector<float> candidate(F);
    for (size_t c = 1; c < k_; ++c) {
      double best_total = std::numeric_limits<double>::infinity();
      size_t best_row = 0;
      for (int t = 0; t < candidates; ++t) {
        double pick = std::uniform_real_distribution<double>(0, total)(rng);
        size_t r = 0;
        for (; r + 1 < rows && pick >= d2[r]; ++r) pick -= d2[r];
        std::fill(candidate.begin(), candidate.end(), 0.0f);
        for (uint64_t i = sample->offsets[r]; i < sample->offsets[r + 1]; ++i)
          if (sample->ids[i] < F) candidate[sample->ids[i]] = sample->values[i];
        trial = d2;
        const double t_total = fold(candidate.data(), trial);
        if (t_total < best_total) best_total = t_total, best_row = r, best_d2.swap(trial);
      }
      set_center(c, best_row);
      d2.swap(best_d2);
      total = best_total;
    }
    return state.PushDense("centers", 0, centers).get();
  }

  Status Prepare(State& state, const data::Minibatch&, int slot) override {
    Slot& s = slots_[slot];
    s.c.resize(k_ * info_.num_features);
    s.n.resize(k_);
    s.pull_c = state.PullDense("centers", 0, s.c.size(), s.c.data());
    s.pull_n = state.PullDense("counts", 0, k_, s.n.data());
    return Status::Ok();
  }
  Status Apply(State& state, const data::Minibatch& batch, int slot) override {
    Slot& s = slots_[slot];
    OC_RETURN_IF_ERROR(s.pull_c.get());
    OC_RETURN_IF_ERROR(s.pull_n.get());
    if (s.push_c.valid()) OC_RETURN_IF_ERROR(s.push_c.get());
    if (s.push_n.valid()) OC_RETURN_IF_ERROR(s.push_n.get());
    const uint64_t F = info_.num_features;
    norms_.resize(k_);
    for (size_t c = 0; c < k_; ++c) norms_[c] = Norm2(s.c.data() + c * F);
    s.dc.assign(k_ * F, 0.0f);
    s.dn.assign(k_, 0.0f);
    for (size_t r = 0; r < batch.rows(); ++r) {
      auto [best, d] = Nearest(s.c.data(), batch, r);
      loss_sum_ += d;
      ++loss_rows_;
      s.dn[best] += 1;
      float* dc = s.dc.data() + best * F;
      for (uint64_t i = batch.offsets[r]; i < batch.offsets[r + 1]; ++i)
        if (batch.ids[i] < F) dc[batch.ids[i]] += batch.values[i];
    }
    // Up to 2 x workers updates (each worker pipelines two minibatches) are computed from the
    // same pulled centres and all added: a step of at most 1 / writers of the way keeps their
    // sum from overshooting. Without it a centre with a small count was moved several whole
    // steps at once early on, and a loaded machine (other processes changing the workers'
    // interleaving) ended in a poor optimum in some runs (test objective 1.14-1.18x instead
    // of 1.005x scikit-learn's).
    const float writers = 2.0f * static_cast<float>(std::max<uint32_t>(1, state.num_workers()));
    for (size_t c = 0; c < k_; ++c) {
      if (s.dn[c] == 0) continue;
      float n = s.n[c] + s.dn[c];
      if (max_count_ > 0) n = std::min(n, max_count_);
      n = std::max(n, writers * s.dn[c]);  // also >= dn: a step never passes the batch's mean
      const float* cc = s.c.data() + c * F;
      float* dc = s.dc.data() + c * F;
      for (uint64_t j = 0; j < F; ++j) dc[j] = (dc[j] - s.dn[c] * cc[j]) / n;
    }
    s.push_c = state.PushDense("centers", 0, s.dc);
    s.push_n = state.PushDense("counts", 0, s.dn);
    return Status::Ok();
  }
  Status Finalize(State&) override {
    Status first;
    for (auto& s : slots_) {
      for (auto* f : {&s.pull_c, &s.pull_n})
        if (f->valid()) first = f->get();
      for (auto* f : {&s.push_c, &s.push_n})
        if (f->valid()) OC_RETURN_IF_ERROR(f->get());
    }
    return first;
  }
  Status Export(State& state, Model* model) override {
    ModelTable c{k_, static_cast<uint32_t>(info_.num_features), {}};
    c.data.resize(k_ * info_.num_features);
    OC_RETURN_IF_ERROR(state.PullDense("centers", 0, c.data.size(), c.data.data()).get());
    ModelTable n{k_, 1, std::vector<float>(k_)};
    OC_RETURN_IF_ERROR(state.PullDense("counts", 0, k_, n.data.data()).get());
    model->tables["centers"] = std::move(c);
    model->tables["counts"] = std::move(n);
    return Status::Ok();
  }
  void Predict(const Model& model, const data::Minibatch& rows, float* out) const override {
    const ModelTable& t = model.tables.at("centers");
    std::vector<float> norms(t.rows);
    for (size_t c = 0; c < t.rows; ++c) norms[c] = Norm2(t.row(c), t.dim);
    for (size_t r = 0; r < rows.rows(); ++r) {
      float best = std::numeric_limits<float>::infinity();
      size_t bi = 0;
      for (size_t c = 0; c < t.rows; ++c) {
        float d = Dist2(t.row(c), norms[c], rows, r, t.dim);
        if (d < best) best = d, bi = c;
      }
      out[2 * r] = best;
      out[2 * r + 1] = static_cast<float>(bi);
    }
  }

 private:
  struct Slot {
    std::vector<float> c, n, dc, dn;
    std::future<Status> pull_c, pull_n, push_c, push_n;
  };
  float Norm2(const float* c) const { return Norm2(c, info_.num_features); }
  static float Norm2(const float* c, uint64_t F) {
    double s = 0;
    for (uint64_t j = 0; j < F; ++j) s += double{c[j]} * c[j];
    return static_cast<float>(s);
  }
  // ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2, over x's stored entries only.
  template <typename Rows>
  static float Dist2(const float* c, float cnorm, const Rows& rows, size_t r, uint64_t F) {
    double d = cnorm;
    for (uint64_t i = rows.offsets[r]; i < rows.offsets[r + 1]; ++i) {
      if (rows.ids[i] >= F) continue;
      const double x = rows.values[i];
      d += x * x - 2 * x * c[rows.ids[i]];
    }
    return static_cast<float>(std::max(d, 0.0));
  }
  float Dist2(const float* c, float cnorm, const data::Partition& p, size_t r) const {
    return Dist2(c, cnorm, p, r, info_.num_features);
  }
  std::pair<size_t, float> Nearest(const float* centers, const data::Minibatch& b, size_t r) const {
    float best = std::numeric_limits<float>::infinity();
    size_t bi = 0;
    for (size_t c = 0; c < k_; ++c) {
      float d = Dist2(centers + c * info_.num_features, norms_[c], b, r, info_.num_features);
      if (d < best) best = d, bi = c;
    }
    return {bi, best};
  }

  DataInfo info_;
  size_t k_;
  uint64_t seed_;
  float max_count_;  // 0: no cap
  Slot slots_[2];
  std::vector<float> norms_;
};

}  // namespace

AlgorithmInfo FmInfo() {
  auto params = CommonParams(0.05, "adagrad", 64);
  params.push_back(ParamSpec::Int("factors", 8, "latent factors per feature", 1, 1024));
  params.push_back(ParamSpec::Float("init_std", 0.01, "std of the factors' initial values", 0, 10));
  return {"fm", "factorization machine (binary: logistic loss; regression: squared loss)", params,
          [](const Params& p, const DataInfo& d) -> Result<std::unique_ptr<Algorithm>> {
            if (d.label_kind != "binary" && d.label_kind != "regression")
              return InvalidArgument("fm needs a binary or regression dataset; this one's labels are " +
                                     d.label_kind);
            OC_ASSIGN_OR_RETURN(auto opt, OptimizerFromParams(p));
            Task t = d.label_kind == "binary" ? Task::kBinary : Task::kRegression;
            return std::unique_ptr<Algorithm>(new Fm(t, p, d, opt));
          }};
}

AlgorithmInfo MfInfo() {
  // Measured on a generated rank-3 matrix (noise 0.25): lr 0.05 stalled at RMSE 0.53 in 30
  // epochs, lr 0.1-0.2 reached 0.257.
  auto params = CommonParams(0.1, "adagrad", 64);
  params[4].default_value = "0.01";  // l2: factor models need it
  params[4].help = "L2 penalty on the factors, per rating (l2*w added to each rating's gradient)";
  params.push_back(ParamSpec::Float("bias_l2", 0.01,
                                    "L2 penalty on the user and item biases, per rating", 0, 1e6));
  params.push_back(ParamSpec::Int("rank", 16, "latent factors per user and item", 1, 1024));
  params.push_back(ParamSpec::Float("init_std", 0.1, "std of the factors' initial values", 0, 10));
  return {"mf", "matrix factorization of a ratings dataset (biases + rank-K factors)", params,
          [](const Params& p, const DataInfo& d) -> Result<std::unique_ptr<Algorithm>> {
            if (!d.schema.is_object() || d.schema.value("format", "") != "ratings")
              return InvalidArgument("mf needs a ratings dataset (overcast load --format ratings)");
            OC_ASSIGN_OR_RETURN(auto opt, OptimizerFromParams(p));
            return std::unique_ptr<Algorithm>(new Mf(p, d, opt));
          }};
}

AlgorithmInfo KmeansInfo() {
  AlgorithmInfo a;
  a.name = "kmeans";
  a.description = "mini-batch k-means with k-means++ seeding (labels are ignored)";
  a.params = {ParamSpec::Int("k", 10, "number of clusters", 1, 100000),
              ParamSpec::Int("batch", 256, "rows per minibatch", 1, 1 << 20),
              ParamSpec::Int("seed", 1, "seed of the k-means++ draws", 0, INT64_MAX),
              ParamSpec::Int("max_count", 500,
                             "cap of a centre's row count in its running mean (0: none): it "
                             "forgets rows older than about k x max_count",
                             0, INT64_MAX)};
  a.init_sample_rows = 20000;
  a.create = [](const Params& p, const DataInfo& d) -> Result<std::unique_ptr<Algorithm>> {
    if (d.num_features == 0) return InvalidArgument("kmeans: the dataset has no features");
    if (static_cast<uint64_t>(p.Int("k")) * d.num_features > (uint64_t{1} << 28))
      return InvalidArgument("kmeans: k x features is too large for dense centres");
    return std::unique_ptr<Algorithm>(new Kmeans(p, d));
  };
  return a;
}

}  // namespace overcast::algo
