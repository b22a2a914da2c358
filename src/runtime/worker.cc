#include "runtime/worker.h"

#include <unistd.h>

#include <chrono>
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

// A minibatch copied out of the reader's ring, so that it outlives the next Next() call (the
// worker holds two: the one being computed and the one whose pull is in flight). The vectors
// keep their capacity: no allocation once warm.
struct OwnedBatch {
  std::vector<float> labels, values;
  std::vector<uint64_t> offsets;
  std::vector<uint32_t> ids;
  data::Minibatch view;
  void CopyFrom(const data::Minibatch& b) {
    labels.assign(b.labels.begin(), b.labels.end());
    offsets.assign(b.offsets.begin(), b.offsets.end());
    ids.assign(b.ids.begin(), b.ids.end());
    values.assign(b.values.begin(), b.values.end());
    view.epoch = b.epoch;
    view.index = b.index;
    view.labels = labels;
    view.offsets = offsets;
    view.ids = ids;
    view.values = values;
  }
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

}  // namespace

Status RunWorker(const WorkerOptions& o) {
  OC_ASSIGN_OR_RETURN(auto client, ConnectWithRetry(o));
  algo::State state(client.get(), o.job, o.task, 1);
  auto spec_blob = state.GetBlob(SpecBlob());
  if (!spec_blob.ok())
    return spec_blob.status().WithContext("job " + o.job + ": reading its spec");
  auto spec_json = nlohmann::json::parse(*spec_blob, nullptr, false);
  OC_ASSIGN_OR_RETURN(JobSpec spec, JobSpec::FromJson(spec_json));
  if (o.task >= spec.workers)
    return InvalidArgument("task " + std::to_string(o.task) + " out of range: the job has " +
                           std::to_string(spec.workers));
  state = algo::State(client.get(), o.job, o.task, spec.workers);

  TaskProgress progress;
  if (auto p = state.GetBlob(TaskBlob(o.task)); p.ok()) {
    OC_ASSIGN_OR_RETURN(progress, TaskProgress::Decode(*p));
  }
  if (progress.done) return Status::Ok();
  progress.pid = ::getpid();
  progress.starts += 1;
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
  OC_ASSIGN_OR_RETURN(auto reader,
                      data::MinibatchReader::Open(store.get(), spec.dataset, data::Split::kTrain, ro));

  // Resume: the reader's sequence is a pure function of (seed, shard), so skipping the batches
  // already reported puts this worker where the last one stopped.
  data::Minibatch b;
  for (uint64_t i = 0; i < progress.batches; ++i) {
    OC_ASSIGN_OR_RETURN(bool more, reader->Next(&b));
    if (!more) break;
  }
  spdlog::debug("worker {} task {}: resuming after {} batches", ::getpid(), o.task,
                progress.batches);

  auto last_report = Clock::now();
  bool stop = false;
  auto report = [&](bool force) -> Status {
    auto now = Clock::now();
    if (!force && std::chrono::duration<double>(now - last_report).count() < o.report_every_seconds)
      return Status::Ok();
    last_report = now;
    auto [ls, lr] = algorithm->TakeTrainLoss();
    progress.loss_sum += ls;
    progress.loss_rows += lr;
    OC_RETURN_IF_ERROR(state.SetBlob(TaskBlob(o.task), progress.Encode()));
    if (state.GetBlob(StopBlob()).ok()) stop = true;
    return Status::Ok();
  };

  OwnedBatch buf[2];
  int cur = 0;
  uint64_t epoch_step = 0, cur_epoch = UINT64_MAX;
  // The next batch this task should train on (sync mode drops steps beyond sync_steps, so
  // every task takes the same number of steps per epoch).
  auto next = [&](OwnedBatch* dst) -> Result<bool> {
    for (;;) {
      OC_ASSIGN_OR_RETURN(bool more, reader->Next(&b));
      if (!more) return false;
      if (b.epoch != cur_epoch) {
        cur_epoch = b.epoch;
        epoch_step = 0;
      }
      ++epoch_step;
      if (spec.sync && spec.sync_steps > 0 && epoch_step > spec.sync_steps) {
        ++progress.batches;  // consumed, for resuming
        continue;
      }
      dst->CopyFrom(b);
      return true;
    }
  };

  OC_ASSIGN_OR_RETURN(bool have, next(&buf[cur]));
  if (have && !spec.sync) OC_RETURN_IF_ERROR(algorithm->Prepare(state, buf[cur].view, cur));
  while (have && !stop) {
    if (o.cancel && o.cancel->load(std::memory_order_relaxed)) return Cancelled("worker cancelled");
    const int nxt = 1 - cur;
    if (spec.sync) {
      OC_RETURN_IF_ERROR(algorithm->Prepare(state, buf[cur].view, cur));
      OC_RETURN_IF_ERROR(algorithm->Apply(state, buf[cur].view, cur));
      OC_RETURN_IF_ERROR(algorithm->Finalize(state));  // the push has landed
      OC_RETURN_IF_ERROR(state.Barrier("step/" + std::to_string(progress.batches), spec.workers));
      OC_ASSIGN_OR_RETURN(have, next(&buf[nxt]));
    } else {
      // The next batch's pull goes out before this batch's compute.
      OC_ASSIGN_OR_RETURN(have, next(&buf[nxt]));
      if (have) OC_RETURN_IF_ERROR(algorithm->Prepare(state, buf[nxt].view, nxt));
      OC_RETURN_IF_ERROR(algorithm->Apply(state, buf[cur].view, cur));
    }
    progress.batches += 1;
    progress.rows += buf[cur].view.rows();
    progress.epoch = buf[cur].view.epoch;
    OC_RETURN_IF_ERROR(report(false));
    cur = nxt;
  }
  OC_RETURN_IF_ERROR(algorithm->Finalize(state));
  progress.done = true;
  return report(true);
}

}  // namespace overcast::runtime
