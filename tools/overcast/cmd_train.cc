// `overcast train` (the embedded default: PS, coordinator and workers started locally) and
// `overcast worker` (one stateless worker, started by a launch backend or by hand).
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "algo/model.h"
#include "common/log.h"
#include "net/auth.h"
#include "runtime/coordinator.h"
#include "runtime/worker.h"
#include "tools/overcast/commands.h"
#include "tools/overcast/progress.h"

namespace overcast::cli {
namespace {

struct TrainFlags {
  runtime::TrainOptions o;
  std::string store, out, ps;
  bool json = false;
};

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

Status RunTrain(TrainFlags& f) {
  f.o.store = f.store.empty() ? DefaultStore() : f.store;
  if (!f.ps.empty()) f.o.servers = SplitList(f.ps);
  if (!f.o.secret_file.empty()) {
    OC_ASSIGN_OR_RETURN(f.o.secret, net::ReadSecretFile(f.o.secret_file));
  }
  ProgressLine line;
  auto show = [&line](const runtime::TrainProgress& p) {
    std::string s = "train " + Fmt("%.1f s", p.elapsed) + "  epoch " + Fmt("%.2f", p.epochs) +
                    "  " + Fmt("%.0f", p.samples_per_second) + " samples/s  loss " +
                    Fmt("%.4f", p.train_loss);
    if (p.test) {
      const nlohmann::json tj = p.test->ToJson("test_");
      for (auto& [k, v] : tj.items()) s += "  " + k + " " + Fmt("%.4f", v.get<double>());
    }
    s += "  restarts " + std::to_string(p.worker_restarts);
    if (p.ps_recoveries) s += "  ps recoveries " + std::to_string(p.ps_recoveries);
    line.Show(s);
  };
  auto r = runtime::Train(f.o, show);
  line.Done();
  OC_RETURN_IF_ERROR(r.status());
  const auto& res = *r;
  std::string metrics;
  const nlohmann::json tj = res.test.ToJson("test_");
  for (auto& [k, v] : tj.items()) metrics += "  " + k + " " + Fmt("%.4f", v.get<double>());
  std::fprintf(stderr,
               "trained %s on %s: %.2f epochs, %llu rows in %.2f s (%.0f samples/s), %u workers, "
               "%llu restarts%s, stopped by %s;%s\n",
               f.o.model.c_str(), f.o.dataset.c_str(), res.epochs,
               static_cast<unsigned long long>(res.rows), res.train_seconds,
               res.samples_per_second, res.workers,
               static_cast<unsigned long long>(res.worker_restarts),
               res.ps_recoveries
                   ? (", " + std::to_string(res.ps_recoveries) + " parameter-server recoveries").c_str()
                   : "",
               res.stopped_by.c_str(),
               metrics.empty() ? " no test split" : metrics.c_str());
  if (!f.out.empty()) {
    OC_RETURN_IF_ERROR(algo::SaveModel(f.out, res.model));
    std::fprintf(stderr, "model written to %s (metadata in %s.json)\n", f.out.c_str(),
                 f.out.c_str());
  }
  if (f.json) std::cout << res.ToJson().dump() << std::endl;
  return Status::Ok();
}

std::string ModelsHelp() {
  std::string s = "Models and their --param keys:\n";
  for (const auto& a : algo::BuiltinAlgorithms()) {
    s += "  " + a.name + ": " + a.description + "\n";
    for (const auto& p : a.params) s += "      " + p.Describe() + "\n";
  }
  return s;
}

struct WorkerFlags {
  std::string coordinator, job, secret_file;
  int64_t task = -1;
  double wait = 600;
};

}  // namespace

namespace {

// The flags `train` and `coordinator` share.
void AddTrainFlags(CLI::App* cmd, const std::shared_ptr<TrainFlags>& f) {
  cmd->add_option("--dataset", f->o.dataset, "Dataset to train on (overcast load)")->required();
  cmd->add_option("--model", f->o.model, "softmax, logreg, linreg, fm, mf or kmeans (parameters below)")->required();
  cmd->add_option("--workers", f->o.workers, "Workers (each takes a shard of the train split)")
      ->capture_default_str();
  auto* ep = cmd->add_option("--epochs", f->o.epochs,
                             "Passes over the train split (default 10 when --seconds is not set)");
  cmd->add_option("--seconds", f->o.seconds, "Stop after this many seconds")->excludes(ep);
  cmd->add_option("--param", f->o.params, "Hyper-parameter KEY=VALUE (repeatable; see below)");
  cmd->add_option("--store", f->store,
                  "Dataset store directory (default $OVERCAST_STORE, else ~/.overcast/store)");
  cmd->add_option("--out", f->out, "Write the trained model here (and its metadata to OUT.json)");
  cmd->add_flag("--json", f->json, "Print the result object as the last line of stdout");
  cmd->add_option("--target", f->o.target,
                  "Stop once a test metric gets there: accuracy>=0.85, logloss<=0.3, rmse<=0.9");
  cmd->add_flag("--sync", f->o.sync,
                "Synchronous steps: a barrier after every step (needs --epochs); every full batch "
                "of every shard is taken, a worker whose shard runs out first takes empty steps "
                "until the epoch ends");
  cmd->add_option("--staleness", f->o.staleness,
                  "Asynchronous with a bound: a worker waits while it is more than this many "
                  "batches ahead of the slowest (0: unbounded)")
      ->capture_default_str();
  cmd->add_option("--seed", f->o.seed, "Seed of the data order")->capture_default_str();
  cmd->add_option("--eval-every", f->o.eval_every_seconds,
                  "Seconds between evaluations on the test split (0: only at the end)")
      ->capture_default_str();
  cmd->add_option("--average-tail", f->o.average_tail,
                  "Export the average of model snapshots over this last fraction of the run "
                  "(0: the last iterate)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--backend", f->o.backend,
                  "Where workers run: processes (children of this one), threads, or external "
                  "(started by hand or a scheduler with `overcast worker --coordinator ADDR`; "
                  "needs --ps)")
      ->check(CLI::IsMember({"processes", "threads", "external"}))
      ->capture_default_str();
  cmd->add_option("--secret-file", f->o.secret_file, "Shared secret of the --ps servers");
  cmd->add_option("--ps-shards", f->o.ps_shards, "Embedded server's shard threads (0: one per core)")
      ->capture_default_str();
  cmd->add_option("--heartbeat-timeout", f->o.heartbeat_timeout_seconds,
                  "Replace a worker that reports no progress for this many seconds")
      ->capture_default_str();
  cmd->add_option("--ps-timeout", f->o.ps_timeout_seconds,
                  "With --ps: wait this many seconds for lost servers to come back (restarted "
                  "with --restore, training resumes from their checkpoint) before failing")
      ->capture_default_str();
  cmd->footer(ModelsHelp());
}

}  // namespace

void AddTrainCommand(CLI::App& app, CommandContext& ctx) {
  auto f = std::make_shared<TrainFlags>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a model on a dataset of the store. With no --ps, starts a parameter server, the\n"
      "coordinator and --workers workers on this machine and tears them down at the end.\n"
      "Workers are stateless (all state is in the parameter server): one that dies is replaced\n"
      "and its task resumes. The test split is evaluated every --eval-every seconds, or\n"
      "further apart when one evaluation takes long (evaluating keeps to ~1/5 of the time).\n"
      "Each minibatch costs a worker one pull and one push, so on large sparse data larger\n"
      "batches pay: on 2 M generated CTR rows logreg with batch=1024 lr=0.1 ran 3.5x the\n"
      "samples/s of its default batch=64, to a lower test log-loss.\n"
      "Linear models learn pairwise interactions through feature crosses: cross=0x1,2x3 adds\n"
      "a hashed feature for each pair of a row's features from fields 0 and 1, and 2 and 3,\n"
      "where a feature's field is its 0-based id >> field_bits (data hashed per field, as\n"
      "`overcast bench gen-ctr --field-bits 17` writes it).\n"
      "Examples:\n"
      "  overcast train --dataset fmnist-mm --model softmax --workers 2 --epochs 10 --out m.ocm\n"
      "  overcast train --dataset ctr --model logreg --seconds 30 --param batch=1024 "
      "--param lr=0.1\n"
      "  overcast train --dataset ctr --model logreg --param batch=1024 --param lr=0.1 \\\n"
      "      --param cross=0x1,2x3,4x5 --param field_bits=17\n"
      "  overcast train --dataset fmnist-mm --model softmax --target accuracy>=0.84 --json");
  AddTrainFlags(cmd, f);
  cmd->add_option("--ps", f->ps, "Use these parameter servers (host:port,...) instead of an "
                                 "embedded one");
  cmd->callback([f, &ctx] { ctx.exit_code = Finish(RunTrain(*f)); });
}

void AddCoordinatorCommand(CLI::App& app, CommandContext& ctx) {
  auto f = std::make_shared<TrainFlags>();
  f->o.backend = "external";
  CLI::App* cmd = app.add_subcommand(
      "coordinator",
      "Coordinate a training job on running parameter servers (overcast ps) with workers\n"
      "started elsewhere: publish the job there, open one task per worker, watch their\n"
      "progress, reopen the task of a worker that dies or goes silent, evaluate, stop and\n"
      "export as `overcast train` does. Start the workers on any host with\n"
      "`overcast worker --coordinator ADDR`: each takes a waiting task. A worker that is lost\n"
      "is replaced by starting another; its task resumes from the last report.\n"
      "Example (three shells, or three hosts with --listen ADDR --secret-file F):\n"
      "  overcast ps --listen 127.0.0.1:7070 --checkpoint-dir /var/lib/ps --checkpoint-every 30\n"
      "  overcast coordinator --ps 127.0.0.1:7070 --dataset fmnist-mm --model softmax --workers 2\n"
      "  overcast worker --coordinator 127.0.0.1:7070   # twice");
  AddTrainFlags(cmd, f);
  cmd->add_option("--ps", f->ps, "The parameter servers (host:port,...)")->required();
  cmd->callback([f, &ctx] { ctx.exit_code = Finish(RunTrain(*f)); });
}

void AddWorkerCommand(CLI::App& app, CommandContext& ctx) {
  auto f = std::make_shared<WorkerFlags>();
  CLI::App* cmd = app.add_subcommand(
      "worker",
      "Run one stateless training worker: read the job from the parameter servers the\n"
      "coordinator uses (it publishes each job's spec there and collects progress there), train\n"
      "one task on its shard of the data, and exit 0 when the task is done or the job stopped.\n"
      "With `overcast coordinator` (external workers): start this with only --coordinator on\n"
      "any host; it takes the job published last and whichever task waits for a worker. A\n"
      "replacement resumes where the last report of the task left off.\n"
      "`overcast train` starts its workers itself with --job and --task.");
  cmd->add_option("--coordinator", f->coordinator,
                  "Parameter servers holding the job (host:port,...), as the coordinator prints")
      ->required();
  cmd->add_option("--job", f->job, "Job id (default: the job a coordinator published last there)");
  cmd->add_option("--task", f->task, "Task index (0..workers-1; default: any that waits)");
  cmd->add_option("--wait", f->wait, "Seconds to wait for a task to take before giving up")
      ->capture_default_str();
  cmd->add_option("--secret-file", f->secret_file, "Shared secret of the servers");
  cmd->callback([f, &ctx] {
    runtime::WorkerOptions o;
    o.servers = SplitList(f->coordinator);
    o.job = f->job;
    o.any_task = f->task < 0;
    o.task = f->task < 0 ? 0 : static_cast<uint32_t>(f->task);
    o.wait_seconds = f->wait;
    if (!f->secret_file.empty()) {
      auto s = net::ReadSecretFile(f->secret_file);
      if (!s.ok()) {
        ctx.exit_code = Finish(s.status());
        return;
      }
      o.secret = *s;
    }
    ctx.exit_code = Finish(runtime::RunWorker(o));
  });
}

}  // namespace overcast::cli
