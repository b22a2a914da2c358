#include "runtime/worker.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <thread>

#include "common/log.h"
#include "data/dataset.h"
#include "data/minibatch.h"
#include "data/store.h"
#include "ps/client.h"
#include "runtime/job.h"

namespace overcast::runtime {
namespace {

using Clock = std::chrono::steady_clock;

// The worker holds two minibatches: the one being computed and the one whose pull is in flight.
struct OwnedBatch : data::OwnedMinibatch {
  uint64_t step = 0;  // position of this batch within its epoch, from 1
};

Result<std::unique_ptr<ps::Client>> ConnectWithRetry(const WorkerOptions& o) {
  ps::ClientOptions co;
  co.servers = o.servers;
  co.secret = o.secret;
  Status last;
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto c = ps::Client::Connect(co);
    if (c.ok()) return c;
    last = c.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * (attempt + 1)));
  }
  return last;
}

struct Claimed {
  uint32_t task = 0;
  uint64_t gen = 0;
};

// Takes the open generation of task `want` (or of the first task that waits for a worker) of
// an external job. NotFound when none waits.
Result<Claimed> Claim(algo::State& state, const JobSpec& spec, std::optional<uint32_t> want,
                      const std::string& me) {
  for (uint32_t t = 0; t < spec.workers; ++t) {
    if (want && t != *want) continue;
    auto g = state.GetBlob(GenBlob(t));
    if (!g.ok()) {
      if (g.status().code() == Code::kNotFound) continue;
      return g.status();
    }
    const uint64_t gen = std::strtoull(g->c_str(), nullptr, 10);
    if (state.GetBlob(EndBlob(t, gen)).ok()) continue;  // that generation is over
    Status st = state.client()->CreateBlob(state.Scoped(ClaimBlob(t, gen)), me);
    if (st.ok()) return Claimed{t, gen};
    if (st.code() != Code::kAlreadyExists) return st;
  }
  return NotFound("no task waits for a worker");
}

Status RunTask(ps::Client* client, const WorkerOptions& o, const JobSpec& spec,
               std::optional<uint64_t> gen);

}  // namespace

Status RunWorker(const WorkerOptions& options) {
  WorkerOptions o = options;
  OC_ASSIGN_OR_RETURN(auto client, ConnectWithRetry(o));
  if (o.job.empty()) {
    auto j = client->GetBlob(CurrentJobBlob());
    if (!j.ok()) {
      if (j.status().code() == Code::kNotFound)
        return NotFound("no job published on these servers (start `overcast coordinator` "
                        "first, or give --job)");
      return j.status();
    }
    o.job = *j;
  }
  algo::State state(client.get(), o.job, 0, 1);
  auto spec_blob = state.GetBlob(SpecBlob());
  if (!spec_blob.ok())
    return spec_blob.status().WithContext("job " + o.job + ": reading its spec");
  auto spec_json = nlohmann::json::parse(*spec_blob, nullptr, false);
  OC_ASSIGN_OR_RETURN(JobSpec spec, JobSpec::FromJson(spec_json));
  if (!o.any_task && o.task >= spec.workers)
    return InvalidArgument("task " + std::to_string(o.task) + " out of range: the job has " +
                           std::to_string(spec.workers));
  if (!spec.external) {
    if (o.any_task)
      return InvalidArgument("job " + o.job + " starts its own workers; give --task to run one "
                             "of its tasks by hand");
    return RunTask(client.get(), o, spec, std::nullopt);
  }

  // An external job: claim a task, then say how the run ended in the generation's end blob.
  char host[256] = "?";
  ::gethostname(host, sizeof(host) - 1);
  const std::string me = std::string(host) + ":" + std::to_string(::getpid());
  const auto deadline = Clock::now() + std::chrono::duration<double>(o.wait_seconds);
  Claimed c;
  for (;;) {
    auto r = Claim(state, spec, o.any_task ? std::nullopt : std::optional<uint32_t>(o.task), me);
    if (r.ok()) {
      c = *r;
      break;
    }
    if (r.status().code() != Code::kNotFound) return r.status();
    if (state.GetBlob(StopBlob()).ok()) return Status::Ok();  // the job is over
    if (Clock::now() >= deadline)
      return Unavailable("job " + o.job + ": no task " +
                         (o.any_task ? std::string("waits") : std::to_string(o.task) + " waits") +
                         " for a worker (waited " + std::to_string(static_cast<int>(o.wait_seconds)) +
                         " s)");
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  spdlog::info("worker {}: took task {} of job {} (generation {})", me, c.task, o.job, c.gen);
  o.task = c.task;
  Status st = RunTask(client.get(), o, spec, c.gen);
  const std::string end = st.ok() ? "0" : "1 " + st.message();
  if (Status e = state.SetBlob(EndBlob(c.task, c.gen), end); !e.ok())
    spdlog::warn("job {} task {}: could not record the end: {}", o.job, c.task, e.message());
  return st;
}

namespace {

// Trains task o.task of the job to its end. `gen`: the claimed generation of an external job,
// revoked when the coordinator opens a new one.
Status RunTask(ps::Client* client, const WorkerOptions& o, const JobSpec& spec,
               std::optional<uint64_t> gen) {
  algo::State state(client, o.job, o.task, spec.workers);

  TaskProgress progress;
  if (auto p = state.GetBlob(TaskBlob(o.task)); p.ok()) {
    OC_ASSIGN_OR_RETURN(progress, TaskProgress::Decode(*p));
  }
  if (progress.done) return Status::Ok();
  progress.pid = ::getpid();
  progress.starts += 1;
  progress.paused = false;
  OC_RETURN_IF_ERROR(state.SetBlob(TaskBlob(o.task), progress.Encode()));

  std::vector<algo::AlgorithmInfo> builtins;
  const auto* registry = o.registry;
  if (!registry) {
    builtins = algo::BuiltinAlgorithms();
    registry = &builtins;
  }
  OC_ASSIGN_OR_RETURN(const algo::AlgorithmInfo* info, algo::FindAlgorithm(*registry, spec.model));
  OC_ASSIGN_OR_RETURN(algo::Params params,
                      algo::Params::FromJson(info->params, spec.params, spec.model));
  OC_ASSIGN_OR_RETURN(auto store, data::OpenStore(spec.store));
  OC_ASSIGN_OR_RETURN(data::Manifest manifest, data::ReadManifest(*store, spec.dataset));
  OC_ASSIGN_OR_RETURN(auto algorithm,
                      info->create(params, algo::DataInfoFromManifest(manifest.json)));
  OC_RETURN_IF_ERROR(algorithm->Initialize(state, nullptr));

  data::MinibatchOptions ro;
  ro.batch_size = static_cast<size_t>(params.Int("batch"));
  ro.seed = spec.seed;
  ro.epochs = spec.epochs;
  ro.shard_index = o.task;
  ro.num_shards = spec.workers;
  ro.drop_last = spec.sync;
  // Resume: the reader's sequence is a pure function of (seed, shard), so skipping the batches
  // already reported puts this worker where the last one stopped. The reader skips them
  // without building them; sync mode replays them, since it numbers its steps within the epoch
  // from the batches it sees.
  if (!spec.sync) ro.skip_batches = progress.batches;
  OC_ASSIGN_OR_RETURN(auto reader,
                      data::MinibatchReader::Open(store.get(), spec.dataset, data::Split::kTrain, ro));
  data::Minibatch b;
  for (uint64_t i = ro.skip_batches; i < progress.batches; ++i) {
    OC_ASSIGN_OR_RETURN(bool more, reader->Next(&b));
    if (!more) break;
  }
  spdlog::debug("worker {} task {}: resuming after {} batches", ::getpid(), o.task,
                progress.batches);

  auto last_report = Clock::now();
  bool stop = false;
  auto check_stop = [&] {
    if (state.GetBlob(StopBlob()).ok()) stop = true;
  };
  // At the job's pause point the worker exits with the task not done; a later run of the job
  // resumes it from this report.
  bool pause = false;
  const double pause_rows = spec.pause_at_epochs *
                            static_cast<double>(manifest.rows(data::Split::kTrain)) /
                            static_cast<double>(spec.workers);
  auto report = [&](bool force) -> Status {
    auto now = Clock::now();
    if (!force && std::chrono::duration<double>(now - last_report).count() < o.report_every_seconds)
      return Status::Ok();
    last_report = now;
    auto [ls, lr] = algorithm->TakeTrainLoss();
    progress.loss_sum += ls;
    progress.loss_rows += lr;
    OC_RETURN_IF_ERROR(state.SetBlob(TaskBlob(o.task), progress.Encode()));
    check_stop();
    if (gen) {
      auto g = state.GetBlob(GenBlob(o.task));
      if (g.ok() && std::strtoull(g->c_str(), nullptr, 10) != *gen)
        return Cancelled("task " + std::to_string(o.task) + " was given to another worker");
    }
    return Status::Ok();
  };

  // Stale synchronous parallel: block while this task is more than `staleness` batches ahead
  // of the slowest unfinished task. `slowest` is cached: the blobs are read again only when
  // the cached value would block.
  uint64_t slowest = 0;
  auto wait_for_slowest = [&]() -> Status {
    while (progress.batches > slowest + spec.staleness && !stop) {
      uint64_t m = UINT64_MAX;
      for (uint32_t t = 0; t < spec.workers; ++t) {
        if (t == o.task) continue;
        auto blob = state.GetBlob(TaskBlob(t));
        if (!blob.ok()) {  // that task has not reported yet
          m = 0;
          continue;
        }
        OC_ASSIGN_OR_RETURN(TaskProgress p, TaskProgress::Decode(*blob));
        if (!p.done) m = std::min(m, p.batches);
      }
      if (m == UINT64_MAX) {  // every other task is done: nothing to wait for
        slowest = progress.batches;
        break;
      }
      slowest = m;
      if (progress.batches <= slowest + spec.staleness) break;
      if (o.cancel && o.cancel->load(std::memory_order_relaxed)) return Cancelled("worker cancelled");
      check_stop();
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    return Status::Ok();
  };

  OwnedBatch buf[2];
  int cur = 0;
  uint64_t epoch_step = 0, cur_epoch = UINT64_MAX;
  // The next batch this task should train on, numbered by its step within its epoch.
  auto next = [&](OwnedBatch* dst) -> Result<bool> {
    OC_ASSIGN_OR_RETURN(bool more, reader->Next(&b));
    if (!more) return false;
    if (b.epoch != cur_epoch) {
      cur_epoch = b.epoch;
      epoch_step = 0;
    }
    dst->CopyFrom(b);
    dst->step = ++epoch_step;
    return true;
  };
  // Sync mode: shards differ in size, so a task that has run out of batches in `epoch` (its
  // last step `last_step`) goes on taking empty steps, joining each step's barrier, until
  // every task has run out: no task's data is cut to the smallest shard's. Each task writes
  // the first step it had nothing for before that step's barrier; after barrier s, every task
  // reads the same set of marks written before it (a mark for s+1 does not count at s), so
  // all of them leave the epoch after the same barrier.
  auto finish_epoch = [&](uint64_t epoch, uint64_t last_step) -> Status {
    uint64_t s = last_step + 1;
    OC_RETURN_IF_ERROR(state.SetBlob(SyncOutBlob(epoch, o.task), std::to_string(s)));
    for (;; ++s) {
      if (o.cancel && o.cancel->load(std::memory_order_relaxed)) {
        return Cancelled("worker cancelled");
      }
      OC_RETURN_IF_ERROR(state.Barrier("step/" + std::to_string(epoch) + "/" + std::to_string(s),
                                       spec.workers));
      uint32_t out = 0;
      for (uint32_t t = 0; t < spec.workers; ++t) {
        auto mark = state.GetBlob(SyncOutBlob(epoch, t));
        if (mark.ok() && std::strtoull(mark->c_str(), nullptr, 10) <= s) ++out;
      }
      if (out == spec.workers) return Status::Ok();
      OC_RETURN_IF_ERROR(report(false));  // heartbeats while it waits
    }
  };
  // Finishes every epoch from `from` up to (not including) `to` that this task is still in;
  // `last_step` is its last step in `from` (0: none).
  auto finish_epochs = [&](uint64_t from, uint64_t last_step, uint64_t to) -> Status {
    for (uint64_t e = from; e < to; ++e) {
      OC_RETURN_IF_ERROR(finish_epoch(e, e == from ? last_step : 0));
    }
    return Status::Ok();
  };

  OC_ASSIGN_OR_RETURN(bool have, next(&buf[cur]));
  if (have && !spec.sync) OC_RETURN_IF_ERROR(algorithm->Prepare(state, buf[cur].view, cur));
  // Epochs this task has no batch of at all before its first (a shard smaller than a batch).
  if (spec.sync && progress.batches == 0) {
    OC_RETURN_IF_ERROR(finish_epochs(0, 0, have ? buf[cur].view.epoch : spec.epochs));
  }
  while (have && !stop) {
    if (o.cancel && o.cancel->load(std::memory_order_relaxed)) return Cancelled("worker cancelled");
    const int nxt = 1 - cur;
    if (spec.sync) {
      OC_RETURN_IF_ERROR(algorithm->Prepare(state, buf[cur].view, cur));
      OC_RETURN_IF_ERROR(algorithm->Apply(state, buf[cur].view, cur));
      OC_RETURN_IF_ERROR(algorithm->Finalize(state));  // the push has landed
      // Named by (epoch, step within it): the same for every task, whatever its shard's size.
      OC_RETURN_IF_ERROR(state.Barrier("step/" + std::to_string(buf[cur].view.epoch) + "/" +
                                           std::to_string(buf[cur].step),
                                       spec.workers));
      OC_ASSIGN_OR_RETURN(have, next(&buf[nxt]));
      const uint64_t e = buf[cur].view.epoch;
      if (!have || buf[nxt].view.epoch != e) {
        OC_RETURN_IF_ERROR(finish_epochs(e, buf[cur].step, have ? buf[nxt].view.epoch
                                                                : spec.epochs));
      }
    } else {
      // The next batch's pull goes out before this batch's compute.
      OC_ASSIGN_OR_RETURN(have, next(&buf[nxt]));
      if (have) OC_RETURN_IF_ERROR(algorithm->Prepare(state, buf[nxt].view, nxt));
      OC_RETURN_IF_ERROR(algorithm->Apply(state, buf[cur].view, cur));
    }
    progress.batches += 1;
    progress.rows += buf[cur].view.rows();
    progress.epoch = buf[cur].view.epoch;
    if (spec.pause_at_epochs > 0 && static_cast<double>(progress.rows) >= pause_rows) {
      pause = true;
      stop = true;
    }
    // With a staleness bound every step is published, so that the others see this one move.
    OC_RETURN_IF_ERROR(report(spec.staleness > 0));
    if (spec.staleness > 0) OC_RETURN_IF_ERROR(wait_for_slowest());
    cur = nxt;
  }
  OC_RETURN_IF_ERROR(algorithm->Finalize(state));
  spdlog::debug("worker {} task {}: {} after {} batches", ::getpid(), o.task,
                pause ? "paused" : "done", progress.batches);
  progress.done = !pause;
  progress.paused = pause;
  return report(true);
}

}  // namespace
}  // namespace overcast::runtime
