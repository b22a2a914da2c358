#include "runtime/coordinator.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "common/log.h"
#include "common/memory.h"
#include "data/dataset.h"
#include "data/minibatch.h"
#include "data/store.h"
#include "ps/client.h"
#include "ps/server.h"
#include "runtime/job.h"
#include "runtime/launcher.h"

namespace overcast::runtime {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Target {
  std::string metric;
  bool at_least = true;
  double value = 0;
};

Result<std::optional<Target>> ParseTarget(const std::string& s) {
  if (s.empty()) return std::optional<Target>();
  Target t;
  size_t at = s.find(">=");
  if (at == std::string::npos) {
    at = s.find("<=");
    t.at_least = false;
  }
  if (at == std::string::npos)
    return InvalidArgument("--target " + s + ": expected METRIC>=VALUE or METRIC<=VALUE");
  t.metric = s.substr(0, at);
  if (t.metric.rfind("test_", 0) == 0) t.metric = t.metric.substr(5);
  if (t.metric != "accuracy" && t.metric != "logloss" && t.metric != "auc" &&
      t.metric != "rmse" && t.metric != "objective")
    return InvalidArgument("--target " + s + ": unknown metric '" + t.metric +
                           "' (accuracy, logloss, auc, rmse, objective)");
  char* end = nullptr;
  std::string v = s.substr(at + 2);
  t.value = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') return InvalidArgument("--target " + s + ": bad value");
  return std::optional<Target>(t);
}

// Reads up to `max_rows` rows of a split into memory, in stored order (evaluation, samples).
Result<data::Partition> ReadRows(data::Store* store, const std::string& dataset, data::Split split,
                                 size_t max_rows, bool shuffle, uint64_t seed) {
  data::MinibatchOptions o;
  // Small minibatches and ring: the rows are copied out at once, and each ring slot is fresh
  // memory the first time it fills (4096-row slots were 12 MB each on Fashion-MNIST).
  o.batch_size = 512;
  o.prefetch = 2;
  o.shuffle = shuffle;
  o.seed = seed;
  o.epochs = 1;
  data::Partition p;
  OC_ASSIGN_OR_RETURN(auto reader, data::MinibatchReader::Open(store, dataset, split, o));
  // The whole split (a test split) is sized from the manifest up front: growing it by doubling
  // touched about twice its bytes in fresh pages.
  if (max_rows == SIZE_MAX) {
    OC_ASSIGN_OR_RETURN(data::Manifest m, data::ReadManifest(*store, dataset));
    ReserveLarge(p.labels, m.rows(split));
    ReserveLarge(p.offsets, m.rows(split) + 1);
    ReserveLarge(p.ids, m.nnz(split));
    ReserveLarge(p.values, m.nnz(split));
  }
  data::Minibatch b;
  while (p.rows() < max_rows) {
    OC_ASSIGN_OR_RETURN(bool more, reader->Next(&b));
    if (!more) break;
    for (size_t r = 0; r < b.rows() && p.rows() < max_rows; ++r) {
      uint64_t s = b.offsets[r], e = b.offsets[r + 1];
      p.AddRow(b.labels[r], b.ids.subspan(s, e - s), b.values.subspan(s, e - s));
    }
  }
  return p;
}

std::string NewJobId(const std::string& model) {
  std::random_device rd;
  char buf[64];
  std::snprintf(buf, sizeof(buf), "job-%s-%d-%08x", model.c_str(), ::getpid(), rd());
  return buf;
}

}  // namespace

nlohmann::json TrainResult::ToJson() const {
  nlohmann::json j = test.ToJson("test_");
  j["train_seconds"] = train_seconds;
  j["samples_per_second"] = samples_per_second;
  j["epochs"] = epochs;
  j["workers"] = workers;
  j["worker_restarts"] = worker_restarts;
  j["ps_recoveries"] = ps_recoveries;
  j["rows"] = rows;
  j["test_rows"] = test.rows;
  j["evaluations"] = evaluations;
  j["curve"] = nlohmann::json::array();
  for (const CurvePoint& c : curve) {
    nlohmann::json p = c.test.ToJson("test_");
    p["seconds"] = c.seconds;
    p["epochs"] = c.epochs;
    j["curve"].push_back(std::move(p));
  }
  j["averaged_snapshots"] = averaged_snapshots;
  j["stopped_by"] = stopped_by;
  j["job"] = job;
  j["model"] = model.algorithm;
  return j;
}

Result<TrainResult> Train(const TrainOptions& o,
                          const std::function<void(const TrainProgress&)>& on_progress) {
  // 1. Everything the user can get wrong, before anything starts.
  std::vector<algo::AlgorithmInfo> builtins;
  const auto* registry = o.registry;
  if (!registry) {
    builtins = algo::BuiltinAlgorithms();
    registry = &builtins;
  }
  if (o.workers == 0 || o.workers > 1024) return InvalidArgument("--workers must be 1..1024");
  const bool external = o.backend == "external";
  if (o.backend != "processes" && o.backend != "threads" && !external)
    return InvalidArgument("--backend must be processes, threads or external");
  if ((o.pause_at_epochs > 0 || !o.resume_job.empty()) && o.servers.empty())
    return InvalidArgument("pausing and resuming a job need servers that outlive it");
  if (external && o.servers.empty())
    return InvalidArgument("--backend external needs --ps: the workers find the job there");
  if (o.sync && o.epochs == 0)
    return InvalidArgument("--sync needs --epochs (every worker must take the same steps)");
  OC_ASSIGN_OR_RETURN(const algo::AlgorithmInfo* info, algo::FindAlgorithm(*registry, o.model));
  OC_ASSIGN_OR_RETURN(algo::Params params, algo::Params::Parse(info->params, o.params, o.model));
  OC_ASSIGN_OR_RETURN(auto target, ParseTarget(o.target));
  OC_ASSIGN_OR_RETURN(auto store, data::OpenStore(o.store));
  auto manifest_r = data::ReadManifest(*store, o.dataset);
  if (!manifest_r.ok()) {
    if (manifest_r.status().code() == Code::kNotFound)
      return InvalidArgument("dataset '" + o.dataset + "' not found in store " + store->Describe() +
                             " (create it with overcast load)");
    return manifest_r.status();
  }
  const data::Manifest& manifest = *manifest_r;
  const algo::DataInfo dinfo = algo::DataInfoFromManifest(manifest.json);
  OC_ASSIGN_OR_RETURN(auto algorithm, info->create(params, dinfo));
  const uint64_t train_rows = manifest.rows(data::Split::kTrain);
  if (train_rows == 0) return InvalidArgument("dataset '" + o.dataset + "' has no train rows");
  if (target && !manifest.rows(data::Split::kTest))
    return InvalidArgument("--target needs a test split; dataset '" + o.dataset + "' has none");

  JobSpec spec;
  spec.job = o.resume_job.empty() ? NewJobId(o.model) : o.resume_job;
  spec.store = o.store;
  spec.dataset = o.dataset;
  spec.model = o.model;
  spec.params = params.ToJson();
  spec.workers = o.workers;
  spec.epochs = (o.epochs == 0 && o.seconds <= 0) ? 10 : o.epochs;
  spec.seed = o.seed;
  spec.sync = o.sync;
  spec.staleness = o.sync ? 0 : o.staleness;
  spec.external = external;
  spec.pause_at_epochs = o.pause_at_epochs;

  // 2. Held-out rows for evaluation, a sample for initialization.
  data::Partition test;
  if (manifest.rows(data::Split::kTest) > 0) {
    OC_ASSIGN_OR_RETURN(test, ReadRows(store.get(), o.dataset, data::Split::kTest, SIZE_MAX, false,
                                       o.seed));
  }
  data::Partition sample;
  if (info->init_sample_rows > 0) {
    OC_ASSIGN_OR_RETURN(sample, ReadRows(store.get(), o.dataset, data::Split::kTrain,
                                         info->init_sample_rows, true, o.seed));
  }

  // 3. The parameter server (embedded unless given), the job, the workers.
  std::unique_ptr<ps::Server> server;
  std::vector<std::string> servers = o.servers;
  if (servers.empty()) {
    ps::ServerOptions so;
    so.shards = o.ps_shards;
    OC_ASSIGN_OR_RETURN(server, ps::Server::Start(so));
    servers.push_back(server->address());
  }
  ps::ClientOptions co;
  co.servers = servers;
  co.secret = o.secret;
  OC_ASSIGN_OR_RETURN(auto client, ps::Client::Connect(co));
  algo::State state(client.get(), spec.job, 0, o.workers);
  const data::Partition* init_sample = info->init_sample_rows ? &sample : nullptr;
  if (o.resume_job.empty()) {
    OC_RETURN_IF_ERROR(algorithm->Initialize(state, init_sample));
  } else {
    // The tables are there: attach to them as a worker does, and lift the pause.
    OC_RETURN_IF_ERROR(state.GetBlob(SpecBlob()).status().WithContext("resuming job " + spec.job));
    OC_RETURN_IF_ERROR(algorithm->Initialize(state, nullptr));
    OC_RETURN_IF_ERROR(client->DeleteBlob(state.Scoped(StopBlob())));
  }
  OC_RETURN_IF_ERROR(state.SetBlob(SpecBlob(), spec.ToJson().dump()));

  std::unique_ptr<Launcher> launcher;
  if (external) {
    launcher = NewExternalLauncher(&state, o.workers);
    OC_RETURN_IF_ERROR(client->SetBlob(CurrentJobBlob(), spec.job));
    spdlog::info("job {} published: start its {} worker(s) on any host with `overcast worker "
                 "--coordinator {}{}`",
                 spec.job, o.workers, ServerList(servers), o.secret_file.empty() ? "" : " --secret-file FILE");
  } else if (o.backend == "threads") {
    WorkerOptions wo;
    wo.servers = servers;
    wo.secret = o.secret;
    wo.job = spec.job;
    wo.registry = registry;
    launcher = NewThreadLauncher(wo);
  } else {
    ProcessLauncherOptions po;
    po.binary = o.worker_binary;
    po.servers = servers;
    po.job = spec.job;
    po.secret_file = o.secret_file;
    po.log_level = o.worker_log_level;
    launcher = NewProcessLauncher(po);
  }

  TrainResult result;
  result.workers = o.workers;
  result.job = spec.job;
  const auto start = Clock::now();
  spdlog::debug("job {}: starting {} worker(s) ({})", spec.job, o.workers, launcher->name());
  for (uint32_t t = 0; t < o.workers; ++t) OC_RETURN_IF_ERROR(launcher->Start(t));

  struct TaskState {
    TaskProgress p;
    bool finished = false;
    Clock::time_point last_change = Clock::now();
    uint64_t last_batches = 0;
    uint32_t failures = 0;  // consecutive failed runs without progress
  };
  std::vector<TaskState> tasks(o.workers);
  bool stop_sent = false;
  auto last_eval = Clock::now();
  double eval_every = o.eval_every_seconds;
  // The curve keeps at most 1024 points: a long run's halves its resolution when full.
  auto add_point = [&](CurvePoint p) {
    auto& c = result.curve;
    if (c.size() >= 1024) {
      size_t n = 0;
      for (size_t i = 0; i < c.size(); i += 2) c[n++] = c[i];
      c.resize(n);
    }
    c.push_back(std::move(p));
  };
  double prev_loss_sum = 0;
  uint64_t prev_loss_rows = 0;
  double train_loss = 0;
  std::optional<algo::Metrics> latest;
  Status failure;

  // The servers were lost (killed, restarting): reconnect until they answer, then go on from
  // what they hold. Restored from a checkpoint, the tables and the tasks' progress blobs are
  // from the same moment, so each task's next worker resumes where that checkpoint left it;
  // back empty, the job is published again and its tasks start over. Workers that die while
  // the servers are away are replaced without counting as failures.
  std::optional<Clock::time_point> recovered_at;
  auto recover = [&](const Status& cause) -> Status {
    spdlog::warn("parameter server lost ({}); reconnecting for up to {:.0f} s", cause.message(),
                 o.ps_timeout_seconds);
    const auto t0 = Clock::now();
    Status st;
    for (int attempt = 1;; ++attempt) {
      st = client->Reconnect();
      if (st.ok()) st = state.GetBlob(SpecBlob()).status();  // do they still hold the job?
      if (st.ok() || st.code() == Code::kNotFound) break;
      if (Since(t0) >= o.ps_timeout_seconds)
        return Unavailable("parameter server unreachable for " +
                           std::to_string(static_cast<int>(Since(t0))) + " s: " + st.message());
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100 * attempt, 1000)));
    }
    if (st.code() == Code::kNotFound) {
      spdlog::warn("the parameter server came back without job {}; publishing it again", spec.job);
      OC_RETURN_IF_ERROR(algorithm->Initialize(state, init_sample));
      OC_RETURN_IF_ERROR(state.SetBlob(SpecBlob(), spec.ToJson().dump()));
    } else {
      spdlog::info("parameter server back after {:.1f} s; job {} resumes from what it restored",
                   Since(t0), spec.job);
    }
    if (stop_sent) OC_RETURN_IF_ERROR(state.SetBlob(StopBlob(), result.stopped_by));
    for (auto& ts : tasks) ts.finished = false;  // a rewound task may have work again
    if (external) {
      // Hand-started workers do not come back by themselves: open their tasks again.
      for (uint32_t t = 0; t < o.workers; ++t) {
        launcher->Kill(t);
        OC_RETURN_IF_ERROR(launcher->Start(t));
      }
    }
    recovered_at = Clock::now();
    result.ps_recoveries++;
    return Status::Ok();
  };
  // Ok when `st` is; recovers and says so when the servers were lost; `st` otherwise.
  auto lost = [&](const Status& st) -> Result<bool> {
    if (st.ok()) return false;
    if (st.code() != Code::kUnavailable) return st;
    OC_RETURN_IF_ERROR(recover(st));
    return true;
  };
  auto send_stop = [&](const std::string& why) -> Status {
    stop_sent = true;
    result.stopped_by = why;
    return lost(state.SetBlob(StopBlob(), why)).status();  // after a loss, recover() resends it
  };

  auto evaluate = [&](algo::Model* model) -> Result<algo::Metrics> {
    OC_RETURN_IF_ERROR(algorithm->Export(state, model));
    result.evaluations++;
    return algo::Evaluate(*algorithm, *model, dinfo, test, 1);
  };

  algo::Model avg;  // sums of the tail snapshots
  std::optional<algo::Model> target_model;
  algo::Metrics target_metrics;
  auto last_snapshot = Clock::now();
  double snapshot_every = o.average_every_seconds;
  // A run that pauses is averaged over the tail before its pause: what a tuner compares at a
  // rung is then the same kind of model as a finished run's.
  const double planned_rows = (o.pause_at_epochs > 0 ? o.pause_at_epochs
                                                     : static_cast<double>(spec.epochs)) *
                              static_cast<double>(train_rows);
  auto in_tail = [&](double elapsed, uint64_t rows) {
    if (o.average_tail <= 0) return false;
    if (o.seconds > 0 && elapsed >= o.seconds * (1 - o.average_tail)) return true;
    return planned_rows > 0 &&
           static_cast<double>(rows) >= planned_rows * (1 - o.average_tail);
  };

  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint64_t rows = 0;
    double loss_sum = 0;
    uint64_t loss_rows = 0;
    bool all_done = true;
    Status read;
    for (uint32_t t = 0; t < o.workers && read.ok(); ++t) {
      auto b = state.GetBlob(TaskBlob(t));
      if (b.ok()) {
        if (auto p = TaskProgress::Decode(*b); p.ok()) tasks[t].p = *p;
      } else if (b.status().code() == Code::kNotFound) {
        tasks[t].p = TaskProgress();  // not reported yet (or the servers came back empty)
      } else {
        read = b.status();
      }
    }
    if (auto r = lost(read); !r.ok()) {
      failure = r.status();
      break;
    } else if (*r) {
      continue;
    }
    const bool grace = recovered_at && Since(*recovered_at) < 30;
    for (uint32_t t = 0; t < o.workers; ++t) {
      TaskState& ts = tasks[t];
      if (ts.p.batches != ts.last_batches) {
        ts.last_batches = ts.p.batches;
        ts.last_change = Clock::now();
        ts.failures = 0;
      }
      const bool running = launcher->Running(t);
      if (!running && !ts.finished) {
        const int exit = launcher->LastExit(t);
        if (exit == 0 && !ts.p.done && !ts.p.paused) {
          // The progress above may have been read just before the worker's last report: a
          // worker writes its final progress before it ends, so read it again now. (Taken as a
          // death, an external worker's finished task would wait for a worker that never comes.)
          if (auto b = state.GetBlob(TaskBlob(t)); b.ok()) {
            if (auto p = TaskProgress::Decode(*b); p.ok()) ts.p = *p;
          }
        }
        if (exit == 0 && (ts.p.done || ts.p.paused)) {
          ts.finished = true;
        } else {
          // A dead worker: its task goes to a fresh one, which resumes from the last report.
          const bool killed = exit > 128;
          if (!killed && !grace && ++ts.failures >= o.max_failures) {
            failure = Internal("the worker for task " + std::to_string(t) + " failed " +
                               std::to_string(ts.failures) + " times: " + launcher->LastError(t));
            break;
          }
          spdlog::info("task {}: worker ended ({}); starting a new one", t,
                       launcher->LastError(t).empty() ? "without finishing" : launcher->LastError(t));
          result.worker_restarts++;
          OC_RETURN_IF_ERROR(launcher->Start(t));
          ts.last_change = Clock::now();
        }
      } else if (running && launcher->Waiting(t)) {
        ts.last_change = Clock::now();  // the heartbeat clock starts when a worker takes it
      } else if (running && Since(ts.last_change) > o.heartbeat_timeout_seconds) {
        spdlog::warn("task {}: no progress for {:.0f} s; replacing its worker", t,
                     Since(ts.last_change));
        launcher->Kill(t);
        result.worker_restarts++;
        OC_RETURN_IF_ERROR(launcher->Start(t));
        ts.last_change = Clock::now();
      }
      all_done &= ts.finished;
      rows += ts.p.rows;
      loss_sum += ts.p.loss_sum;
      loss_rows += ts.p.loss_rows;
    }
    if (!failure.ok()) break;
    if (loss_rows > prev_loss_rows) {
      train_loss = (loss_sum - prev_loss_sum) / static_cast<double>(loss_rows - prev_loss_rows);
      prev_loss_sum = loss_sum;
      prev_loss_rows = loss_rows;
    }
    const double elapsed = Since(start);
    result.rows = rows;
    if (all_done) {
      const bool paused = std::any_of(tasks.begin(), tasks.end(),
                                      [](const TaskState& t) { return t.p.paused; });
      if (result.stopped_by.empty()) result.stopped_by = paused ? "pause" : "epochs";
      break;
    }
    if (!stop_sent && o.seconds > 0 && elapsed >= o.seconds) {
      if (Status st = send_stop("seconds"); !st.ok()) {
        failure = st;
        break;
      }
    }
    if (in_tail(elapsed, rows) && Since(last_snapshot) >= snapshot_every) {
      last_snapshot = Clock::now();
      algo::Model snap;
      if (auto r = lost(algorithm->Export(state, &snap)); !r.ok()) {
        failure = r.status();
        break;
      } else if (*r) {
        continue;
      }
      // A large model (mf, fm on hashed features) is not pulled more often than keeps the
      // coordinator's share of the servers' time near 10%.
      snapshot_every = std::max(o.average_every_seconds, 10 * Since(last_snapshot));
      for (auto& [name, t] : snap.tables) {
        auto& a = avg.tables[name];
        if (a.data.empty()) a = t;
        else
          for (size_t i = 0; i < t.data.size(); ++i) a.data[i] += t.data[i];
      }
      result.averaged_snapshots++;
    }
    if (test.rows() > 0 && o.eval_every_seconds > 0 && Since(last_eval) >= eval_every) {
      algo::Model m;
      const auto eval_start = Clock::now();
      auto r = evaluate(&m);
      if (auto l = lost(r.status()); !l.ok()) {
        failure = l.status();
        break;
      } else if (*l) {
        continue;
      }
      latest = *r;
      last_eval = Clock::now();
      // As with the snapshots above: an evaluation that takes long (a large model to export, a
      // large test split) spaces the next ones out, to about a fifth of the coordinator's time.
      eval_every = std::max(o.eval_every_seconds, 4 * Since(eval_start));
      add_point({Since(start), static_cast<double>(rows) / train_rows, *r});
      if (target && !stop_sent) {
        auto v = r->Get(target->metric);
        if (v && (target->at_least ? *v >= target->value : *v <= target->value)) {
          if (Status st = send_stop("target"); !st.ok()) {
            failure = st;
            break;
          }
          // The model that met the target is the result, not whatever the workers pushed
          // between this evaluation and their stop.
          target_model = std::move(m);
          target_metrics = *r;
        }
      }
    }
    if (on_progress || o.stop_when) {
      TrainProgress pr;
      pr.elapsed = elapsed;
      pr.rows = rows;
      pr.epochs = static_cast<double>(rows) / static_cast<double>(train_rows);
      pr.samples_per_second = elapsed > 0 ? rows / elapsed : 0;
      pr.worker_restarts = result.worker_restarts;
      pr.ps_recoveries = result.ps_recoveries;
      pr.train_loss = train_loss;
      pr.test = latest;
      pr.evaluations = result.evaluations;
      if (on_progress) on_progress(pr);
      if (o.stop_when && !stop_sent && o.stop_when(pr)) {
        if (Status st = send_stop("early_stop"); !st.ok()) {
          failure = st;
          break;
        }
      }
    }
  }
  result.train_seconds = Since(start);
  spdlog::debug("job {}: {} after {:.3f} s", spec.job, result.stopped_by, result.train_seconds);
  if (external) {
    // Workers still waiting for a task exit on the stop blob; the current-job pointer goes.
    if (!stop_sent) (void)state.SetBlob(StopBlob(), "finished");
    if (auto cur = client->GetBlob(CurrentJobBlob()); cur.ok() && *cur == spec.job)
      (void)client->DeleteBlob(CurrentJobBlob());
  }
  launcher->KillAll();
  if (!failure.ok()) return failure;

  result.epochs = static_cast<double>(result.rows) / static_cast<double>(train_rows);
  result.samples_per_second = result.train_seconds > 0 ? result.rows / result.train_seconds : 0;
  result.model.algorithm = o.model;
  if (target_model) {
    result.model.tables = std::move(target_model->tables);
    result.test = target_metrics;
    result.averaged_snapshots = 0;
  } else {
    // The last iterate joins the average; with no snapshots it is the model.
    for (;;) {
      OC_ASSIGN_OR_RETURN(bool again, lost(algorithm->Export(state, &result.model)));
      if (!again) break;
    }
  }
  if (!target_model && result.averaged_snapshots > 0) {
    const double n = static_cast<double>(result.averaged_snapshots + 1);
    for (auto& [name, t] : result.model.tables) {
      const auto& a = avg.tables[name];
      if (a.data.size() != t.data.size()) continue;
      for (size_t i = 0; i < t.data.size(); ++i)
        t.data[i] = static_cast<float>((static_cast<double>(a.data[i]) + t.data[i]) / n);
    }
  }
  if (test.rows() > 0 && !target_model) {
    result.test = algo::Evaluate(*algorithm, result.model, dinfo, test, 1);
    result.evaluations++;
    add_point({result.train_seconds, result.epochs, result.test});
  }
  nlohmann::json& meta = result.model.meta;
  meta["format"] = "overcast-model";
  meta["format_version"] = 1;
  meta["algorithm"] = o.model;
  meta["task"] = std::string(algo::TaskName(algorithm->task()));
  meta["params"] = params.ToJson();
  meta["dataset"] = o.dataset;
  meta["num_features"] = dinfo.num_features;
  meta["num_classes"] = dinfo.num_classes;
  meta["label"] = manifest.json.contains("label") ? manifest.json["label"] : nlohmann::json();
  meta["schema"] = dinfo.schema;
  meta["normalization"] = manifest.json.contains("normalization") ? manifest.json["normalization"]
                                                                   : nlohmann::json();
  meta["training"] = result.ToJson();
  meta["created_unix"] = static_cast<int64_t>(::time(nullptr));
  client.reset();
  if (server) server->Stop();
  return result;
}

}  // namespace overcast::runtime
