#include "runtime/job.h"

namespace overcast::runtime {

nlohmann::json JobSpec::ToJson() const {
  return {{"job", job},         {"store", store},   {"dataset", dataset}, {"model", model},
          {"params", params},   {"workers", workers}, {"epochs", epochs}, {"seed", seed},
          {"sync", sync},       {"staleness", staleness},
          {"external", external}, {"pause_at_epochs", pause_at_epochs}};
}

Result<JobSpec> JobSpec::FromJson(const nlohmann::json& j) {
  try {
    JobSpec s;
    s.job = j.at("job").get<std::string>();
    s.store = j.at("store").get<std::string>();
    s.dataset = j.at("dataset").get<std::string>();
    s.model = j.at("model").get<std::string>();
    s.params = j.at("params");
    s.workers = j.at("workers").get<uint32_t>();
    s.epochs = j.at("epochs").get<uint64_t>();
    s.seed = j.at("seed").get<uint64_t>();
    s.sync = j.at("sync").get<bool>();
    s.staleness = j.value("staleness", uint64_t{0});
    s.external = j.value("external", false);
    s.pause_at_epochs = j.value("pause_at_epochs", 0.0);
    if (s.workers == 0) return InvalidArgument("job spec: workers must be > 0");
    return s;
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("job spec: ") + e.what());
  }
}

std::string TaskProgress::Encode() const {
  return nlohmann::json{{"batches", batches}, {"rows", rows},       {"epoch", epoch},
                        {"loss_sum", loss_sum}, {"loss_rows", loss_rows}, {"done", done},
                        {"paused", paused},     {"pid", pid},           {"starts", starts}}
      .dump();
}

Result<TaskProgress> TaskProgress::Decode(const std::string& s) {
  auto j = nlohmann::json::parse(s, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Corruption("task progress is not JSON");
  TaskProgress p;
  p.batches = j.value("batches", uint64_t{0});
  p.rows = j.value("rows", uint64_t{0});
  p.epoch = j.value("epoch", uint64_t{0});
  p.loss_sum = j.value("loss_sum", 0.0);
  p.loss_rows = j.value("loss_rows", uint64_t{0});
  p.done = j.value("done", false);
  p.paused = j.value("paused", false);
  p.pid = j.value("pid", int64_t{0});
  p.starts = j.value("starts", uint64_t{0});
  return p;
}

}  // namespace overcast::runtime
