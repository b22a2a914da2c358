#include "algo/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <thread>

namespace overcast::algo {

nlohmann::json Metrics::ToJson(const std::string& prefix) const {
  nlohmann::json j = nlohmann::json::object();
  if (logloss) j[prefix + "logloss"] = *logloss;
  if (accuracy) j[prefix + "accuracy"] = *accuracy;
  if (auc) j[prefix + "auc"] = *auc;
  if (rmse) j[prefix + "rmse"] = *rmse;
  if (objective) j[prefix + "objective"] = *objective;
  return j;
}

Metrics Metrics::FromJson(const nlohmann::json& j, const std::string& prefix) {
  Metrics m;
  auto get = [&](const char* name, std::optional<double>* v) {
    auto it = j.find(prefix + name);
    if (it != j.end() && it->is_number()) *v = it->get<double>();
  };
  get("logloss", &m.logloss);
  get("accuracy", &m.accuracy);
  get("auc", &m.auc);
  get("rmse", &m.rmse);
  get("objective", &m.objective);
  return m;
}

std::optional<double> Metrics::Get(const std::string& name) const {
  if (name == "logloss") return logloss;
  if (name == "accuracy") return accuracy;
  if (name == "auc") return auc;
  if (name == "rmse") return rmse;
  if (name == "objective") return objective;
  return std::nullopt;
}

int ClassIndex(const std::vector<float>& classes, float label) {
  auto it = std::lower_bound(classes.begin(), classes.end(), label);
  if (it == classes.end() || *it != label) return -1;
  return static_cast<int>(it - classes.begin());
}

double Auc(const std::vector<float>& scores, const std::vector<uint8_t>& labels) {
  std::vector<uint32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return scores[a] < scores[b]; });
  double pos = 0, neg = 0, rank_sum = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    double avg_rank = (static_cast<double>(i) + static_cast<double>(j - 1)) / 2.0 + 1.0;
    for (size_t t = i; t < j; ++t) {
      if (labels[order[t]]) {
        rank_sum += avg_rank;
        pos += 1;
      } else {
        neg += 1;
      }
    }
    i = j;
  }
  if (pos == 0 || neg == 0) return 0.5;
  return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg);
}

data::Minibatch View(const data::Partition& p, size_t r0, size_t r1) {
  data::Minibatch b;
  b.labels = std::span<const float>(p.labels).subspan(r0, r1 - r0);
  b.offsets = std::span<const uint64_t>(p.offsets).subspan(r0, r1 - r0 + 1);
  // Offsets stay absolute: ids/values are the whole arrays, so offsets index them directly.
  b.ids = p.ids;
  b.values = p.values;
  return b;
}

Metrics Evaluate(const Algorithm& algo, const Model& model, const DataInfo& info,
                 const data::Partition& rows, int threads) {
  const size_t n = rows.rows(), k = algo.outputs();
  std::vector<float> out(n * k);
  threads = std::max(1, threads);
  const size_t chunk = (n + threads - 1) / threads;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    size_t r0 = std::min(n, t * chunk), r1 = std::min(n, r0 + chunk);
    if (r0 == r1) continue;
    auto work = [&, r0, r1] { algo.Predict(model, View(rows, r0, r1), out.data() + r0 * k); };
    if (threads == 1) work();
    else pool.emplace_back(work);
  }
  for (auto& t : pool) t.join();

  Metrics m;
  m.rows = n;
  if (n == 0) return m;
  constexpr double kEps = 1e-15;
  switch (algo.task()) {
    case Task::kBinary: {
      double ll = 0, correct = 0;
      std::vector<uint8_t> y(n);
      std::vector<float> s(n);
      for (size_t r = 0; r < n; ++r) {
        y[r] = rows.labels[r] > 0 ? 1 : 0;
        double p = std::clamp<double>(out[r], kEps, 1 - kEps);
        s[r] = out[r];
        ll += y[r] ? -std::log(p) : -std::log(1 - p);
        correct += (p >= 0.5) == (y[r] == 1);
      }
      m.logloss = ll / n;
      m.accuracy = correct / n;
      m.auc = Auc(s, y);
      break;
    }
    case Task::kMulticlass: {
      double ll = 0, correct = 0;
      size_t counted = 0;
      for (size_t r = 0; r < n; ++r) {
        int c = ClassIndex(info.classes, rows.labels[r]);
        if (c < 0 || static_cast<size_t>(c) >= k) continue;
        const float* p = out.data() + r * k;
        ll += -std::log(std::max<double>(p[c], kEps));
        correct += (std::max_element(p, p + k) - p) == c;
        ++counted;
      }
      m.logloss = counted ? ll / counted : 0;
      m.accuracy = counted ? correct / counted : 0;
      break;
    }
    case Task::kRegression: {
      double se = 0;
      for (size_t r = 0; r < n; ++r) se += std::pow(out[r] - rows.labels[r], 2);
      m.rmse = std::sqrt(se / n);
      break;
    }
    case Task::kClustering: {
      double d = 0;
      for (size_t r = 0; r < n; ++r) d += out[r * k];
      m.objective = d / n;
      break;
    }
  }
  return m;
}

}  // namespace overcast::algo
