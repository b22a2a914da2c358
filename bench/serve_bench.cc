#include "bench/serve_bench.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>
#include <iostream>

#include <fmt/format.h>

#include "bench/child.h"
#include "serve/loadgen.h"
#include "serve/predictor.h"
#include "serve/server.h"

namespace overcast::bench {
namespace {

namespace fs = std::filesystem;

struct Run {
  std::string name;
  serve::ServeOptions opts;
};

struct Outcome {
  double cpu_core_seconds = 0, used_core_seconds = 0, slo_share = 0, p99_ms = 0, max_window_p99 = 0;
  uint64_t requests = 0, ok = 0, rejected = 0, errors = 0;
  // Replicas restarted (crashed or killed), and of those killed as stuck (--replica-hang-s),
  // from the server's start: a run where either happened measured a failure, not control.
  uint64_t replica_restarts = 0, replica_hangs = 0;
  std::vector<double> window_p99;
  // Core-seconds allocated and used in each window of the trace, sampled beside the load.
  std::vector<double> window_alloc, window_used;
  // Per window, summed over the replicas: CFS periods throttled, and connections the front end
  // opened to replicas (each connects on the request's own first call).
  std::vector<uint64_t> window_throttled, window_connects;
  std::vector<int> window_replicas;  // replicas running or starting at each window's end
};

Result<Outcome> RunOne(const Run& run, const std::vector<double>& rates, const ServeBenchOptions& o,
                       const std::string& model_name) {
  serve::Server server(run.opts);
  OC_RETURN_IF_ERROR(server.Start());
  // Let the replicas settle (connections, first controller samples) before the trace starts.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  serve::LoadgenOptions lg;
  lg.port = server.port();
  lg.model = model_name;
  lg.connections = 32;  // idle keep-alive connections cost poll wake-ups; 32 covers the peak
  lg.window_s = o.window_s;
  lg.rows_per_request = o.rows_per_request;
  lg.nnz = o.nnz;
  if (o.warmup_s > 0) {
    // Unmeasured: every controller moves from the same initial limit to what the trace's first
    // rate needs, so the measured trace compares steady control, not how fast each leaves the
    // arbitrary starting quota (a live deployment is already running when load changes).
    lg.rates.assign(o.warmup_s, rates.front());
    lg.seed = o.seed + 1;
    auto w = serve::RunLoadgen(lg);
    if (!w.ok()) {
      server.Stop();
      return w.status().WithContext("warm-up");
    }
  }
  lg.rates = rates;
  lg.seed = o.seed;
  const serve::ServerTotals before = server.totals();
  Outcome out;
  std::atomic<bool> done{false};
  std::thread sampler([&] {
    serve::ServerTotals last = before;
    auto next = std::chrono::steady_clock::now();
    for (size_t w = 0; w < rates.size() && !done; ++w) {
      next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(o.window_s));
      std::this_thread::sleep_until(next);
      const serve::ServerTotals now = server.totals();
      out.window_alloc.push_back(now.allocated_core_seconds - last.allocated_core_seconds);
      out.window_used.push_back(now.used_core_seconds - last.used_core_seconds);
      out.window_throttled.push_back(now.cfs_throttled_periods - last.cfs_throttled_periods);
      out.window_connects.push_back(now.replica_connects - last.replica_connects);
      out.window_replicas.push_back(server.active_replicas());
      last = now;
    }
  });
  auto r = serve::RunLoadgen(lg);
  done = true;
  sampler.join();
  const serve::ServerTotals after = server.totals();
  server.Stop();
  if (!r.ok()) return r.status();
  out.cpu_core_seconds = after.allocated_core_seconds - before.allocated_core_seconds;
  out.used_core_seconds = after.used_core_seconds - before.used_core_seconds;
  size_t met = 0;
  for (const auto& w : r->windows) {
    out.window_p99.push_back(w.p99_ms);
    out.max_window_p99 = std::max(out.max_window_p99, w.p99_ms);
    // A window meets the SLO when its p99 is within it and nothing was refused or failed.
    if (w.p99_ms <= o.serve.slo_p99_ms && w.rejected == 0 && w.errors == 0) ++met;
  }
  out.slo_share = r->windows.empty() ? 0 : double(met) / r->windows.size();
  out.p99_ms = r->p99_ms;
  out.requests = r->sent;
  out.ok = r->ok;
  out.rejected = r->rejected;
  out.errors = r->errors;
  out.replica_restarts = after.replica_restarts;
  out.replica_hangs = after.replica_hangs;
  return out;
}

// The deployment every run started from, keyed by `overcast serve`'s flag names (-1: serve's
// default, resolved at start), so that a saved result says how it was run. The same options as
// tools/overcast's AddDeploymentOptions registers: one added there belongs here too.
nlohmann::json DeploymentJson(const serve::ServeOptions& s) {
  return {{"replicas", s.replicas},
          {"max_replicas", s.max_replicas},
          {"scale_utilization", s.scale_utilization},
          {"scale_interval_s", s.scale_interval_s},
          {"scale_down_window_s", s.scale_down_window_s},
          {"slo_p99_ms", s.slo_p99_ms},
          {"initial_cores", s.initial_cores},
          {"max_cores", s.max_cores},
          {"static_cores", s.static_cores},
          {"captain_target", s.captain.target},
          {"captain_from_peak", s.captain.from_peak},
          {"captain_initial_margin", s.captain.initial_margin},
          {"captain_margin_gain", s.captain.margin_gain},
          {"captain_fast_up_ratio", s.captain.fast_up_ratio},
          {"captain_fast_up_repay", s.captain.fast_up_repay},
          {"captain_down_headroom", s.captain.down_headroom},
          {"hpa_interval_s", s.hpa.interval_s},
          {"hpa_window_s", s.hpa.window_s},
          {"tower_interval_s", s.tower_interval_s},
          {"tower_explore", s.tower.explore},
          {"tower_seed", s.tower.seed},
          {"tower_probe_up", s.tower.probe_up},
          {"tower_initial_target", s.tower.initial_target},
          {"tower_rate_scaled_cost", s.tower.rate_scaled_cost},
          {"tower_targets", s.tower.targets},
          {"tower_slo_guard", s.tower.slo_guard},
          {"tower_groups", s.tower_groups},
          {"cgroup", s.cgroup},
          {"cfs_period_us", s.cfs_period_us},
          {"cfs_period_max_us", s.cfs_period_max_us},
          {"cfs_burst", s.cfs_burst},
          {"max_batch", s.max_batch_rows},
          {"max_wait_us", s.max_wait_us},
          {"replica_connections", s.replica_connections},
          {"replica_hang_s", s.replica_hang_s}};
}

}  // namespace

Status RunServeBench(const ServeBenchOptions& o, nlohmann::json* result) {
  std::vector<double> rates;
  if (!o.trace_csv.empty()) {
    OC_ASSIGN_OR_RETURN(rates, serve::ReadTraceCsv(o.trace_csv));
  } else {
    OC_ASSIGN_OR_RETURN(rates, serve::MakeTrace(o.pattern, o.base_rate, o.peak_rate, o.seconds, o.seed));
  }
  if (o.hpa_min_replicas < 1 || o.hpa_max_replicas < o.hpa_min_replicas) {
    return InvalidArgument(fmt::format("--hpa-max-replicas {} must be at least --hpa-min-replicas {} "
                                       "(at least 1)",
                                       o.hpa_max_replicas, o.hpa_min_replicas));
  }
  std::string bin = o.overcast;
  if (bin == "/proc/self/exe") bin = fs::read_symlink("/proc/self/exe").string();
  const ScratchDir scratch("serve-bench");
  const fs::path dir = scratch.path();
  const std::string model = (dir / "ctr.model").string();
  OC_RETURN_IF_ERROR(serve::WriteRandomLinearModel(model, "ctr", serve::Task::kBinary, o.features, 2, o.seed));

  serve::ServeOptions base = o.serve;
  base.model_paths = {model};
  base.port = 0;
  base.port_file.clear();
  base.replica_bin = bin;
  base.tower.state_path.clear();

  std::vector<Run> runs;
  for (const auto& c : o.controllers) {
    if (c == "autothrottle") {
      serve::ServeOptions a = base;
      a.controller = "autothrottle";
      a.tower.state_path = (dir / "tower.json").string();
      // One state file: each run starts from what the runs before it learned.
      for (int i = 0; i < o.tower_passes; ++i)
        runs.push_back({i == 0 ? std::string("autothrottle_cold") : fmt::format("autothrottle_train{}", i + 1), a});
      runs.push_back({"autothrottle", a});
    } else if (c == "captain") {
      serve::ServeOptions a = base;
      a.controller = "captain";
      runs.push_back({"captain", a});
    } else if (c == "hpa") {
      for (double t : o.hpa_targets) {
        serve::ServeOptions a = base;
        a.controller = "hpa";
        a.hpa.utilization_target = t;
        runs.push_back({fmt::format("hpa_u{:02d}", static_cast<int>(std::lround(t * 100))), a});
      }
    } else if (c == "hpa-replicas") {
      for (double cores : o.hpa_replica_cores) {
        for (double t : o.hpa_targets) {
          serve::ServeOptions a = base;
          a.controller = "static";
          a.static_cores = cores;
          a.replicas = o.hpa_min_replicas;
          a.max_replicas = o.hpa_max_replicas;
          a.scale_utilization = t;
          a.scale_interval_s = base.hpa.interval_s;
          a.scale_down_window_s = base.hpa.window_s;
          a.placement.clear();  // any replica may run: the count decides how many
          runs.push_back({fmt::format("hpa_replicas_c{:02d}_u{:02d}",
                                      static_cast<int>(std::lround(cores * 100)),
                                      static_cast<int>(std::lround(t * 100))),
                          a});
        }
      }
    } else if (c == "static") {
      serve::ServeOptions a = base;
      a.controller = "static";
      runs.push_back({"static", a});
    } else {
      return InvalidArgument("unknown controller '" + c +
                             "' (autothrottle, captain, hpa, hpa-replicas, static)");
    }
  }

  nlohmann::json figures, ratios, per_window, per_window_cpu;
  figures["trace_seconds"] = rates.size();
  double total = 0;
  for (double r : rates) total += r;
  figures["trace_mean_rate"] = total / rates.size();
  figures["slo_p99_ms"] = o.serve.slo_p99_ms;
  figures["replicas"] = o.serve.replicas;
  if (std::find(o.controllers.begin(), o.controllers.end(), "hpa-replicas") != o.controllers.end()) {
    figures["hpa_replica_cores"] = o.hpa_replica_cores;
    figures["hpa_min_replicas"] = o.hpa_min_replicas;
    figures["hpa_max_replicas"] = o.hpa_max_replicas;
  }
  std::map<std::string, std::vector<Outcome>> rounds;  // run name -> its outcome in each round
  if (o.progress) {
    std::cerr << fmt::format("serve bench: {} runs x {} rounds of a {} s {} trace (mean {:.0f} "
                             "req/s), SLO p99 {} ms\n",
                             runs.size(), o.repeats, rates.size(),
                             o.trace_csv.empty() ? o.pattern : o.trace_csv, total / rates.size(),
                             o.serve.slo_p99_ms);
    std::cerr << fmt::format("{:<28} {:>10} {:>10} {:>9} {:>9} {:>10} {:>8} {:>6}\n", "run", "cpu_alloc",
                             "cpu_used", "slo_share", "p99_ms", "worst_win", "ok", "503");
  }
  // Rounds run every controller in turn, so that a change in the machine's load weighs on all of
  // them alike; each round's autothrottle starts its Tower afresh.
  for (int k = 0; k < o.repeats; ++k) {
    for (Run run : runs) {
      if (!run.opts.tower.state_path.empty()) {
        run.opts.tower.state_path = (dir / fmt::format("tower-{}.json", k)).string();
        // Each round's Tower draws its own explorations: with one seed, every round's cold pass
        // explored at the same decisions, and the rounds were not independent samples of it.
        run.opts.tower.seed = o.serve.tower.seed + static_cast<uint64_t>(k);
      }
      auto r = RunOne(run, rates, o, "ctr");
      if (!r.ok()) return r.status().WithContext("run " + run.name);
      const Outcome& x = *r;
      rounds[run.name].push_back(x);
      const std::string key = k == 0 ? run.name : fmt::format("{}_round{}", run.name, k + 1);
      per_window[key] = x.window_p99;
      per_window_cpu[key] = {{"allocated", x.window_alloc},
                             {"used", x.window_used},
                             {"throttled_periods", x.window_throttled},
                             {"connects", x.window_connects},
                             {"replicas", x.window_replicas}};
      if (o.progress) {
        std::cerr << fmt::format("{:<28} {:>10.2f} {:>10.2f} {:>9.3f} {:>9.2f} {:>10.2f} {:>8} {:>6}\n",
                                 key, x.cpu_core_seconds, x.used_core_seconds, x.slo_share,
                                 x.p99_ms, x.max_window_p99, x.ok, x.rejected + x.errors);
      }
    }
  }
  // Each run's figures over the rounds: the median of the CPU and latency figures, the share of
  // all its windows that met the SLO, the worst window, and the totals.
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  };
  std::map<std::string, Outcome> outcomes;
  for (const auto& [name, xs] : rounds) {
    std::vector<double> cpu, used, p99;
    Outcome m;
    for (const Outcome& x : xs) {
      cpu.push_back(x.cpu_core_seconds);
      used.push_back(x.used_core_seconds);
      p99.push_back(x.p99_ms);
      m.slo_share += x.slo_share / xs.size();  // every round has the trace's number of windows
      m.max_window_p99 = std::max(m.max_window_p99, x.max_window_p99);
      m.requests += x.requests;
      m.rejected += x.rejected + x.errors;
      m.replica_restarts += x.replica_restarts;
      m.replica_hangs += x.replica_hangs;
    }
    m.cpu_core_seconds = median(cpu);
    m.used_core_seconds = median(used);
    m.p99_ms = median(p99);
    outcomes[name] = m;
    figures[name + "_cpu_core_seconds"] = m.cpu_core_seconds;
    figures[name + "_used_core_seconds"] = m.used_core_seconds;
    figures[name + "_slo_window_share"] = m.slo_share;
    figures[name + "_p99_ms"] = m.p99_ms;
    figures[name + "_worst_window_p99_ms"] = m.max_window_p99;
    figures[name + "_requests"] = m.requests;
    figures[name + "_rejected"] = m.rejected;
    figures[name + "_replica_restarts"] = m.replica_restarts;
    figures[name + "_replica_hangs"] = m.replica_hangs;
    if (o.repeats > 1) {
      figures[name + "_cpu_core_seconds_rounds"] = cpu;
      std::vector<double> shares;
      for (const Outcome& x : xs) shares.push_back(x.slo_share);
      figures[name + "_slo_window_share_rounds"] = shares;
    }
  }
  figures["repeats"] = o.repeats;
  // The best-tuned HPA: least CPU among the HPA runs whose names start with `prefix` that meet
  // the SLO in >= 95% of windows (medians and shares over the rounds); "" when none does.
  auto best_of = [&outcomes](const std::string& prefix) {
    std::string best;
    for (const auto& [name, x] : outcomes) {
      if (name.rfind(prefix, 0) != 0 || x.slo_share < 0.95) continue;
      if (best.empty() || x.cpu_core_seconds < outcomes.at(best).cpu_core_seconds) best = name;
    }
    return best;
  };
  // The bar's baseline is the best of both kinds (hpa_: quota runs and hpa_replicas_ runs);
  // each kind's best is reported beside it.
  const std::string best_hpa = best_of("hpa_");
  const std::string best_quota = best_of("hpa_u"), best_count = best_of("hpa_replicas_");
  if (!best_hpa.empty()) figures["best_hpa_run"] = best_hpa;
  if (!best_quota.empty()) figures["best_hpa_quota_run"] = best_quota;
  if (!best_count.empty()) figures["best_hpa_replicas_run"] = best_count;
  for (const std::string& a : {std::string("autothrottle"), std::string("captain")}) {
    if (!outcomes.count(a)) continue;
    const double cpu = outcomes[a].cpu_core_seconds;
    if (!best_hpa.empty()) ratios[a + "_over_best_hpa_cpu"] = cpu / outcomes[best_hpa].cpu_core_seconds;
    if (!best_quota.empty() && !best_count.empty()) {
      ratios[a + "_over_best_hpa_quota_cpu"] = cpu / outcomes[best_quota].cpu_core_seconds;
      ratios[a + "_over_best_hpa_replicas_cpu"] = cpu / outcomes[best_count].cpu_core_seconds;
    }
    if (outcomes.count("static")) ratios[a + "_over_static_cpu"] = cpu / outcomes["static"].cpu_core_seconds;
  }
  // The same comparison within each round, to show how far the rounds spread.
  if (o.repeats > 1 && rounds.count("autothrottle")) {
    std::vector<double> per_round;
    for (int k = 0; k < o.repeats; ++k) {
      double best = -1;
      for (const auto& [name, xs] : rounds) {
        if (name.rfind("hpa_", 0) != 0 || xs[k].slo_share < 0.95) continue;
        if (best < 0 || xs[k].cpu_core_seconds < best) best = xs[k].cpu_core_seconds;
      }
      if (best > 0) per_round.push_back(rounds["autothrottle"][k].cpu_core_seconds / best);
    }
    figures["autothrottle_over_best_hpa_cpu_rounds"] = per_round;
  }
  if (outcomes.count("autothrottle") && outcomes.count("autothrottle_cold")) {
    ratios["autothrottle_warm_over_cold_cpu"] =
        outcomes["autothrottle"].cpu_core_seconds / outcomes["autothrottle_cold"].cpu_core_seconds;
  }
  *result = {{"bench", "serve"},
             {"figures", figures},
             {"ratios", ratios},
             {"per_window", per_window},
             {"per_window_cpu", per_window_cpu},
             {"deployment", DeploymentJson(o.serve)}};
  return Status::Ok();
}

}  // namespace overcast::bench
