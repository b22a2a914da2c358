#include "tune/journal.h"

#include <cmath>
#include <filesystem>

#include "common/fs.h"
#include "tune/tuner.h"

namespace overcast::tune {

namespace {
constexpr const char* kFormat = "overcast-tune-journal";
constexpr int kVersion = 1;
}  // namespace

nlohmann::json SearchKey(const TuneOptions& o) {
  return {{"dataset", o.base.dataset},
          {"model", o.base.model},
          {"grid", o.grid},
          {"random", o.random},
          {"trials", o.trials},
          {"seed", o.seed},
          {"epochs", o.base.epochs},
          {"seconds", o.base.seconds},
          {"params", o.base.params},
          {"metric", o.metric},
          {"early_stop", o.early_stop.policy}};
}

bool IsFinal(const Trial& t) {
  return t.status == "done" || (t.status == "stopped" && !t.waiting);
}

std::string BestModelPath(const std::string& journal) { return journal + ".best-model"; }

Status WriteJournal(const std::string& path, const nlohmann::json& key,
                    const std::vector<Trial>& trials, int best_model_trial) {
  nlohmann::json all = nlohmann::json::array();
  for (const Trial& t : trials) {
    nlohmann::json params = nlohmann::json::array();  // pairs, in the space's order
    for (auto& [k, v] : t.params) params.push_back({k, v});
    all.push_back({{"id", t.id},
                   {"params", params},
                   {"status", t.status},
                   {"waiting", t.waiting},
                   {"reason", t.reason},
                   {"metric", t.metric},
                   {"progress", t.progress},
                   {"worker_seconds", t.worker_seconds},
                   {"test", t.result.test.ToJson()}});
  }
  nlohmann::json j = {{"format", kFormat},
                      {"version", kVersion},
                      {"search", key},
                      {"best_model_trial", best_model_trial},
                      {"trials", all}};
  // NaN (a diverged trial's metric) is not JSON: nlohmann writes it as null.
  return WriteFileAtomic(path, j.dump(1) + "\n");
}

Result<JournalState> ReadJournal(const std::string& path, const nlohmann::json& key) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return NotFound("no journal at " + path);
  std::string text;
  OC_RETURN_IF_ERROR(ReadFile(path, &text));
  auto bad = [&](const std::string& why) { return InvalidArgument(path + ": " + why); };
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object (a tune journal?)");
  if (j.value("format", "") != kFormat) return bad("not an overcast tune journal");
  if (j.value("version", 0) != kVersion) return bad("journal version is not 1");
  if (!j.contains("search") || j["search"] != key) {
    return bad("journal of another search (dataset, model, space, budget, params, metric and "
               "--early-stop must be the same); give a new --journal path");
  }
  JournalState out;
  try {
    out.best_model_trial = j.at("best_model_trial").get<int>();
    for (const auto& e : j.at("trials")) {
      Trial t;
      t.id = e.at("id").get<int>();
      for (const auto& kv : e.at("params")) {
        t.params.emplace_back(kv.at(0).get<std::string>(), kv.at(1).get<std::string>());
      }
      t.status = e.at("status").get<std::string>();
      t.waiting = e.at("waiting").get<bool>();
      t.reason = e.at("reason").get<std::string>();
      t.metric = e.at("metric").is_null() ? std::nan("") : e.at("metric").get<double>();
      t.progress = e.at("progress").get<double>();
      t.worker_seconds = e.at("worker_seconds").get<double>();
      t.result.test = algo::Metrics::FromJson(e.at("test"));
      if (IsFinal(t)) out.finished.push_back(std::move(t));
    }
  } catch (const nlohmann::json::exception& e) {
    return bad(std::string("malformed journal: ") + e.what());
  }
  return out;
}

}  // namespace overcast::tune
