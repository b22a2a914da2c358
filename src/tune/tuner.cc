#include "tune/tuner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "algo/algorithm.h"
#include "algo/model.h"
#include "algo/params.h"
#include "data/dataset.h"
#include "data/store.h"
#include "ps/server.h"
#include "tune/journal.h"

namespace overcast::tune {
namespace {

using Clock = std::chrono::steady_clock;

std::string DefaultMetric(const std::string& model) {
  if (model == "linreg" || model == "mf") return "rmse";
  if (model == "kmeans") return "objective";
  return "logloss";
}

}  // namespace

nlohmann::json TuneResult::ToJson() const {
  nlohmann::json j;
  j["metric"] = metric;
  j["trials"] = trials.size();
  j["worker_seconds"] = worker_seconds;
  j["tune_seconds"] = seconds;
  if (!trials.empty() && (trials[0].status == "done" || trials[0].status == "stopped")) {
    const Trial& best = trials[0];
    nlohmann::json params = nlohmann::json::object();
    for (auto& [k, v] : best.params) params[k] = v;
    j["best_params"] = params;
    j["best_" + metric] = best.metric;
    const nlohmann::json run = best.result.ToJson();
    for (auto& [k, v] : run.items()) {
      if (k.rfind("test_", 0) == 0) j[k] = v;
    }
  }
  nlohmann::json all = nlohmann::json::array();
  for (auto& t : trials) {
    nlohmann::json p = nlohmann::json::object();
    for (auto& [k, v] : t.params) p[k] = v;
    all.push_back({{"id", t.id},
                   {"params", p},
                   {"status", t.status},
                   {"reason", t.reason},
                   {metric, t.metric},
                   {"progress", t.progress},
                   {"worker_seconds", t.worker_seconds}});
  }
  j["trial_results"] = all;
  return j;
}

Result<TuneResult> Tune(const TuneOptions& o, const TuneProgress& progress) {
  OC_RETURN_IF_ERROR(EarlyStopper::Validate(o.early_stop));
  if (o.grid.empty() == o.random.empty()) {
    return InvalidArgument("give exactly one of --grid or --random");
  }
  if (o.concurrency == 0) return InvalidArgument("--concurrency must be at least 1");
  const bool asha = o.early_stop.policy == "asha";
  if (asha && o.base.seconds > 0 && o.base.epochs == 0)
    return InvalidArgument("--early-stop asha needs an --epochs budget (its rungs pause trials "
                           "at fractions of their epochs)");
  std::vector<Assignment> space;
  if (!o.grid.empty()) {
    OC_ASSIGN_OR_RETURN(space, ParseGrid(o.grid));
  } else {
    OC_ASSIGN_OR_RETURN(space, ParseRandom(o.random, o.trials, o.seed));
  }
  // Every assignment must be valid for the model before anything starts.
  auto registry = o.base.registry ? *o.base.registry : algo::BuiltinAlgorithms();
  OC_ASSIGN_OR_RETURN(const algo::AlgorithmInfo* info, algo::FindAlgorithm(registry, o.base.model));
  for (const Assignment& a : space) {
    std::vector<std::string> kv = o.base.params;
    for (auto& [k, v] : a) kv.push_back(k + "=" + v);
    OC_RETURN_IF_ERROR(algo::Params::Parse(info->params, kv, o.base.model).status());
  }
  TuneResult out;
  out.metric = o.metric.empty() ? DefaultMetric(o.base.model) : o.metric;
  const bool by_epochs = o.base.epochs > 0 || o.base.seconds <= 0;
  const double budget = o.base.epochs > 0 ? static_cast<double>(o.base.epochs)
                        : o.base.seconds > 0 ? o.base.seconds
                                             : 10.0;  // Train's default of 10 epochs

  // One parameter server for every trial; each job scopes its own tables.
  std::unique_ptr<ps::Server> server;
  std::vector<std::string> servers = o.base.servers;
  if (servers.empty()) {
    ps::ServerOptions so;
    so.shards = o.base.ps_shards;
    OC_ASSIGN_OR_RETURN(server, ps::Server::Start(so));
    servers.push_back(server->address());
  }

  std::mutex mu;  // guards trials, stopper, next
  std::vector<Trial> trials(space.size());
  for (size_t i = 0; i < space.size(); ++i) {
    trials[i].id = static_cast<int>(i);
    trials[i].params = space[i];
  }
  EarlyStopOptions eo = o.early_stop;
  if (eo.reference_loss <= 0 && out.metric == "logloss") {
    // The log-loss of an untrained model (uniform over the classes): the start a diverging
    // run climbs far above.
    OC_ASSIGN_OR_RETURN(auto store, data::OpenStore(o.base.store));
    OC_ASSIGN_OR_RETURN(auto manifest, data::ReadManifest(*store, o.base.dataset));
    eo.reference_loss = std::log(static_cast<double>(std::max<uint64_t>(2, manifest.num_classes)));
  }
  // ASHA's promotions are scheduled here; the stopper then watches for divergence only.
  EarlyStopper stopper(eo);
  AshaScheduler scheduler(o.early_stop.min_progress, o.early_stop.eta, space.size());
  // curve with an epochs budget: every trial's warm-up first (CurveScheduler), since a pause
  // is at a number of epochs.
  const bool curve_first = o.early_stop.policy == "curve" && by_epochs &&
                           o.early_stop.warmup > 0;
  CurveScheduler curve_order(o.early_stop.warmup, space.size());

  // A journal from an earlier run of this search: its finished trials stay as they were.
  const nlohmann::json search_key = SearchKey(o);
  int best_model_trial = -1;  // whose model is kept beside the journal
  if (!o.journal.empty()) {
    auto j = ReadJournal(o.journal, search_key);
    if (!j.ok() && j.status().code() != Code::kNotFound) return j.status();
    if (j.ok()) {
      for (Trial& t : j->finished) {
        if (t.id < 0 || static_cast<size_t>(t.id) >= trials.size() ||
            t.params != trials[static_cast<size_t>(t.id)].params) {
          return InvalidArgument(o.journal + ": trial " + std::to_string(t.id) +
                                 " is not the search's trial of that number");
        }
        t.restored = true;
        if (t.status == "done") stopper.Complete(t.id, t.metric);
        scheduler.Skip(t.id);
        curve_order.Skip(t.id);
        trials[static_cast<size_t>(t.id)] = std::move(t);
      }
      best_model_trial = j->best_model_trial;
      spdlog::info("tune: {} of {} trials finished in an earlier run ({}); the rest run now",
                   j->finished.size(), trials.size(), o.journal);
    }
  }
  // Rewrites the journal (with mu held), and the best final trial's model beside it.
  auto save = [&] {
    if (o.journal.empty()) return;
    int best = -1;
    for (const Trial& t : trials) {
      if (IsFinal(t) && std::isfinite(t.metric) &&
          (best < 0 || t.metric < trials[static_cast<size_t>(best)].metric)) {
        best = t.id;
      }
    }
    if (best >= 0 && best != best_model_trial && !trials[static_cast<size_t>(best)].restored) {
      const Trial& b = trials[static_cast<size_t>(best)];
      Status s = algo::SaveModel(BestModelPath(o.journal), b.result.model);
      if (s.ok()) best_model_trial = best;
      else spdlog::warn("tune: keeping the best model beside the journal: {}", s.ToString());
    }
    Status s = WriteJournal(o.journal, search_key, trials, best_model_trial);
    if (!s.ok()) spdlog::warn("tune: journal {}: {}", o.journal, s.ToString());
  };
  std::condition_variable changed;
  size_t next = 0;
  const auto start = Clock::now();
  auto notify = [&] {  // with mu held
    if (progress) progress(trials, stopper.best_loss());
  };

  // Runs trial i to `until` of its budget (asha: a rung, then it pauses), resuming it when
  // it paused before.
  auto run_one = [&](size_t i, double until, bool resume) {
    runtime::TrainOptions t = o.base;
    t.servers = servers;
    for (auto& [k, v] : trials[i].params) t.params.push_back(k + "=" + v);
    if (until < 1) t.pause_at_epochs = until * budget;
    if (resume) t.resume_job = trials[i].result.job;
    // Progress arrives every few milliseconds; the stopper sees each evaluation once.
    auto seen = std::make_shared<uint64_t>(0);
    t.stop_when = [&, i, seen](const runtime::TrainProgress& p) {
      if (!p.test || p.evaluations == *seen) return false;
      *seen = p.evaluations;
      auto v = p.test->Get(out.metric);
      if (!v) return false;
      double frac = by_epochs ? p.epochs / budget : p.elapsed / budget;
      std::lock_guard lock(mu);
      trials[i].progress = std::min(1.0, frac);
      trials[i].metric = *v;
      auto reason = stopper.Report(static_cast<int>(i), {std::max(frac, 1e-6), *v});
      if (reason) trials[i].reason = *reason;
      notify();
      return reason.has_value();
    };
    auto r = runtime::Train(t);
    std::lock_guard lock(mu);
    Trial& tr = trials[i];
    if (!r.ok()) {
      tr.status = "failed";
      tr.reason = r.status().message();
      if (asha) scheduler.Ended(tr.id);
      if (curve_first) curve_order.Ended(tr.id);
    } else {
      tr.result = std::move(r).value();
      auto v = tr.result.test.Get(out.metric);
      tr.metric = v ? *v : std::nan("");
      tr.worker_seconds += tr.result.train_seconds * tr.result.workers;
      tr.progress = std::min(1.0, by_epochs ? tr.result.epochs / budget
                                            : tr.result.train_seconds / budget);
      if (tr.result.stopped_by == "pause" && curve_first) {
        // Judged before it resumes (the reason says what it waits for).
        tr.status = "stopped";
        tr.reason = fmt::format("curve: paused at its warm-up ({:.0f}% of the budget), not "
                                "resumed",
                                until * 100);
        tr.waiting = true;
        curve_order.Paused(tr.id, stopper.Predict(tr.id));
      } else if (tr.result.stopped_by == "pause") {
        // Stopped unless promoted later (the reason says where it waits).
        tr.status = "stopped";
        tr.reason = fmt::format("asha: paused at {:.0f}% of the budget, not promoted (not in "
                                "the top 1/{} of its rung)",
                                until * 100, o.early_stop.eta);
        tr.waiting = true;
        scheduler.Paused(tr.id, tr.metric);
      } else {
        tr.status = tr.result.stopped_by == "early_stop" ? "stopped" : "done";
        if (tr.status == "done") stopper.Complete(tr.id, tr.metric);
        if (asha) scheduler.Ended(tr.id);
        if (curve_first) curve_order.Ended(tr.id);
      }
    }
    save();
    notify();
    changed.notify_all();
  };

  std::vector<std::thread> pool;
  for (uint32_t c = 0; c < std::min<size_t>(o.concurrency, space.size()); ++c) {
    pool.emplace_back([&] {
      for (;;) {
        size_t i;
        double until = 1;
        bool resume = false;
        {
          std::unique_lock lock(mu);
          auto out_of_time = [&] {
            const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
            return o.budget_seconds > 0 && elapsed >= o.budget_seconds;
          };
          if (asha || curve_first) {
            std::optional<TrialWork> w;
            for (;;) {
              if (out_of_time()) break;  // a wait may have used up the budget
              w = asha ? scheduler.Next() : curve_order.Next();
              if (w && curve_first && w->resume) {
                if (auto why = stopper.Judge(w->trial)) {  // hopeless: it never resumes
                  trials[w->trial].reason = *why;
                  trials[w->trial].waiting = false;
                  curve_order.Ended(w->trial);
                  save();
                  notify();
                  continue;
                }
              }
              if (w || (asha ? scheduler.Done() : curve_order.Done())) break;
              changed.wait(lock);
            }
            if (!w) {
              for (auto& t : trials) {
                if (t.status == "pending") {
                  t.status = "skipped";
                  t.reason = "the search's time budget ran out";
                }
              }
              return;
            }
            i = static_cast<size_t>(w->trial);
            until = w->until;
            resume = w->resume;
          } else {
            while (next < trials.size() && trials[next].restored) ++next;
            if (next >= trials.size()) return;
            i = next++;
            if (out_of_time()) {
              trials[i].status = "skipped";
              trials[i].reason = "the search's time budget ran out";
              continue;
            }
          }
          trials[i].status = "running";
          trials[i].reason.clear();
          trials[i].waiting = false;
          notify();
        }
        run_one(i, until, resume);
      }
    });
  }
  for (auto& th : pool) th.join();
  server.reset();
  // The search is over: a trial still paused stays where it stopped.
  for (Trial& t : trials) t.waiting = false;
  save();

  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& t : trials) out.worker_seconds += t.worker_seconds;
  auto rank = [](const Trial& t) {
    bool ok = (t.status == "done" || t.status == "stopped") && std::isfinite(t.metric);
    return ok ? 0 : 1;
  };
  std::stable_sort(trials.begin(), trials.end(), [&](const Trial& a, const Trial& b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    return a.metric < b.metric;
  });
  out.trials = std::move(trials);
  if (!out.trials.empty() && out.trials[0].restored && out.trials[0].id == best_model_trial) {
    auto m = algo::LoadModel(BestModelPath(o.journal));
    if (m.ok()) out.trials[0].result.model = std::move(m).value();
    else spdlog::warn("tune: the best trial's kept model: {}", m.status().ToString());
  }
  bool any = !out.trials.empty() && rank(out.trials[0]) == 0;
  if (!any) {
    return Internal("no trial finished: " +
                    (out.trials.empty() ? std::string("empty space") : out.trials[0].reason));
  }
  return out;
}

}  // namespace overcast::tune
