#include "algo/algorithm.h"

namespace overcast::algo {

std::string_view TaskName(Task task) {
  switch (task) {
    case Task::kBinary: return "binary";
    case Task::kMulticlass: return "multiclass";
    case Task::kRegression: return "regression";
    case Task::kClustering: return "clustering";
  }
  return "?";
}

Status State::CreateTable(ps::TableSpec spec) {
  spec.name = Scoped(spec.name);
  return client_->CreateTable(spec);
}
std::future<Status> State::Pull(const std::string& table, std::span<const uint64_t> keys,
                                float* out) {
  return client_->Pull(Scoped(table), keys, out);
}
std::future<Status> State::Push(const std::string& table, std::span<const uint64_t> keys,
                                std::span<const float> grads) {
  return client_->Push(Scoped(table), keys, grads);
}
std::future<Status> State::PullDense(const std::string& table, uint64_t offset, uint64_t count,
                                     float* out) {
  return client_->PullDense(Scoped(table), offset, count, out);
}
std::future<Status> State::PushDense(const std::string& table, uint64_t offset,
                                     std::span<const float> grads) {
  return client_->PushDense(Scoped(table), offset, grads);
}
Result<std::string> State::GetBlob(const std::string& key) { return client_->GetBlob(Scoped(key)); }
Status State::SetBlob(const std::string& key, std::string_view value) {
  return client_->SetBlob(Scoped(key), value);
}
Status State::Barrier(const std::string& name, uint32_t parties) {
  return client_->Barrier(Scoped(name), parties);
}

std::vector<ParamSpec> CommonParams(double lr, const std::string& optimizer, int64_t batch) {
  return {
      ParamSpec::Float("lr", lr, "learning rate of the server-side optimizer", 0, 1e6),
      ParamSpec::Int("batch", batch, "rows per minibatch", 1, 1 << 20),
      ParamSpec::Choice("optimizer", optimizer, {"sgd", "adagrad", "ftrl", "adam"},
                        "server-side update rule"),
      ParamSpec::Float("l1", 0, "L1 penalty (proximal under ftrl, subgradient under sgd)", 0, 1e6),
      ParamSpec::Float("l2", 0, "L2 penalty, added to each pushed gradient as l2*w", 0, 1e6),
  };
}

Result<ps::OptimizerConfig> OptimizerFromParams(const Params& p) {
  ps::OptimizerConfig o;
  OC_ASSIGN_OR_RETURN(o.kind, ps::ParseOptimizer(p.Choice("optimizer")));
  o.lr = static_cast<float>(p.Float("lr"));
  o.l1 = static_cast<float>(p.Float("l1"));
  o.l2 = static_cast<float>(p.Float("l2"));
  return o;
}

DataInfo DataInfoFromManifest(const nlohmann::json& m) {
  DataInfo d;
  d.num_features = m.value("num_features", uint64_t{0});
  d.num_classes = m.value("num_classes", uint64_t{0});
  if (m.contains("label") && m["label"].is_object()) {
    d.label_kind = m["label"].value("kind", std::string());
    if (m["label"].contains("classes") && m["label"]["classes"].is_array())
      for (const auto& c : m["label"]["classes"]) d.classes.push_back(c.get<float>());
  }
  std::sort(d.classes.begin(), d.classes.end());
  if (m.contains("schema")) d.schema = m["schema"];
  return d;
}

Result<const AlgorithmInfo*> FindAlgorithm(const std::vector<AlgorithmInfo>& registry,
                                           const std::string& name) {
  std::string names;
  for (const auto& a : registry) {
    if (a.name == name) return &a;
    names += (names.empty() ? "" : ", ") + a.name;
  }
  return InvalidArgument("unknown model '" + name + "' (known: " + names + ")");
}

}  // namespace overcast::algo
