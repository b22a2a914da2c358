// `overcast tune`: a hyper-parameter search as concurrent experiments with early stopping.
#include <chrono>
#include <cstdio>
#include <iostream>

#include <fmt/format.h>

#include "algo/model.h"
#include "tools/overcast/commands.h"
#include "tune/tuner.h"

namespace overcast::cli {
namespace {

struct TuneFlags {
  tune::TuneOptions o;
  std::string store, out;
  bool json = false;
};

Status RunTune(TuneFlags& f) {
  f.o.base.store = f.store.empty() ? DefaultStore() : f.store;
  // Live view, off the hot path: at most a refresh a second, one line per running trial.
  auto last = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  auto show = [&last](const std::vector<tune::Trial>& trials, double best) {
    auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last).count() < 1.0) return;
    last = now;
    int done = 0, stopped = 0;
    for (auto& t : trials) {
      done += t.status == "done";
      stopped += t.status == "stopped";
    }
    std::fprintf(stderr, "tune: %zu trials, %d done, %d stopped early, best so far %.4f\n",
                 trials.size(), done, stopped, best);
    for (auto& t : trials) {
      if (t.status != "running") continue;
      std::fprintf(stderr, "  #%-3d %-40s %3.0f%%  metric %.4f\n", t.id,
                   tune::ToString(t.params).c_str(), t.progress * 100, t.metric);
    }
  };
  OC_ASSIGN_OR_RETURN(auto r, tune::Tune(f.o, show));
  std::FILE* table = f.json ? stderr : stdout;
  std::fprintf(table, "%-4s %-44s %-10s %10s %9s %9s  %s\n", "#", "params", "status",
               r.metric.c_str(), "budget", "worker-s", "why");
  for (auto& t : r.trials) {
    std::fprintf(table, "%-4d %-44s %-10s %10.4f %8.0f%% %9.1f  %s\n", t.id,
                 tune::ToString(t.params).c_str(), t.status.c_str(), t.metric,
                 t.progress * 100, t.worker_seconds, t.reason.c_str());
  }
  std::fprintf(table, "best: %s (%s %.4f); %.1f worker-seconds in %.1f s\n",
               tune::ToString(r.trials[0].params).c_str(), r.metric.c_str(), r.trials[0].metric,
               r.worker_seconds, r.seconds);
  if (!f.out.empty()) {
    if (r.trials[0].result.model.tables.empty()) {
      return NotFound("the best trial (#" + std::to_string(r.trials[0].id) +
                      ") finished in an earlier run and its model was not kept beside the "
                      "journal; nothing written to " + f.out);
    }
    OC_RETURN_IF_ERROR(algo::SaveModel(f.out, r.trials[0].result.model));
    std::fprintf(stderr, "best model written to %s\n", f.out.c_str());
  }
  if (f.json) std::cout << r.ToJson().dump() << std::endl;
  return Status::Ok();
}

}  // namespace

void AddTuneCommand(CLI::App& app, CommandContext& ctx) {
  auto f = std::make_shared<TuneFlags>();
  CLI::App* cmd = app.add_subcommand(
      "tune",
      "Search hyper-parameters: every point of --grid (or --random draws) is a training job;\n"
      "--concurrency of them run at once on one shared parameter server, and early stopping\n"
      "ends the hopeless ones (diverging runs always stop at once).\n"
      "Examples:\n"
      "  overcast tune --dataset fm --model logreg --grid \"lr=0.01,0.1,1;batch=64,256\" "
      "--epochs 5 --early-stop asha\n"
      "  overcast tune --dataset fm --model logreg --random \"lr=log(1e-4,1);l2=log(1e-8,1e-2)\" "
      "--trials 20 --early-stop curve --json");
  auto& o = f->o;
  cmd->add_option("--dataset", o.base.dataset, "Dataset to train on")->required();
  cmd->add_option("--model", o.base.model, "Model (see `overcast train --help`)")->required();
  auto* grid = cmd->add_option("--grid", o.grid,
                               "Grid: \"NAME=V1,V2;NAME=V1,...\" (the cross product is searched)");
  cmd->add_option("--random", o.random,
                  "Random search: \"NAME=log(a,b);NAME=int(a,b);NAME=uniform(a,b);"
                  "NAME=choice(x,y)\"")
      ->excludes(grid);
  cmd->add_option("--trials", o.trials, "Draws for --random");
  cmd->add_option("--seed", o.seed, "Seed of the random draws")->capture_default_str();
  cmd->add_option("--concurrency", o.concurrency, "Trials running at once")->capture_default_str();
  cmd->add_option("--workers", o.base.workers, "Workers per trial")->capture_default_str();
  auto* ep = cmd->add_option("--epochs", o.base.epochs, "Budget of each trial in epochs");
  cmd->add_option("--seconds", o.base.seconds, "Budget of each trial in seconds")->excludes(ep);
  cmd->add_option("--param", o.base.params, "A fixed hyper-parameter KEY=VALUE (repeatable)");
  cmd->add_option("--early-stop", o.early_stop.policy,
                  "none, curve (power-law extrapolation of the test loss) or asha (successive "
                  "halving: trials pause at rungs, the top 1/eta of each rung resume from their "
                  "state in the parameter server; needs --epochs)")
      ->check(CLI::IsMember({"none", "curve", "asha"}))
      ->capture_default_str();
  cmd->add_option("--eta", o.early_stop.eta, "asha: reduction factor")->capture_default_str();
  cmd->add_option("--min-progress", o.early_stop.min_progress,
                  "asha: first rung, as a fraction of the budget")
      ->capture_default_str();
  cmd->add_option("--warmup", o.early_stop.warmup,
                  "curve: fraction of the budget before a trial can be stopped; with --epochs "
                  "every trial first runs to it and pauses, and the best predicted resume "
                  "first")
      ->capture_default_str();
  cmd->add_option("--margin", o.early_stop.margin,
                  "curve: stop when the predicted final loss is worse than the best by this "
                  "fraction")
      ->capture_default_str();
  cmd->add_option("--metric", o.metric, "Objective, lower is better (default: logloss, or rmse)");
  cmd->add_option("--budget-seconds", o.budget_seconds,
                  "Start no new trial after this many seconds");
  cmd->add_option("--eval-every", o.base.eval_every_seconds,
                  "Seconds between test evaluations of a trial")
      ->capture_default_str();
  cmd->add_option("--backend", o.base.backend, "Where workers run: processes or threads")
      ->check(CLI::IsMember({"processes", "threads"}))
      ->capture_default_str();
  cmd->add_option("--store", f->store, "Dataset store (default $OVERCAST_STORE or ~/.overcast/store)");
  cmd->add_option("--out", f->out, "Write the best trial's model here");
  cmd->add_option("--journal", o.journal,
                  "Keep every trial's state in this file (and the best model beside it, "
                  "FILE.best-model); run the same search again with it to go on where it "
                  "stopped: finished trials are kept, the others run again");
  cmd->add_flag("--json", f->json, "Print the result object as the last line of stdout");
  cmd->callback([f, &ctx] {
    if (f->o.base.epochs == 0 && f->o.base.seconds == 0) f->o.base.epochs = 5;
    ctx.exit_code = Finish(RunTune(*f));
  });
}

}  // namespace overcast::cli
