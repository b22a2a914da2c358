// `overcast bench NAME`: the project's benchmarks, each against its peer in the same run.
#include <iostream>

#include "bench/ctr_gen.h"
#include "bench/load_bench.h"
#include "bench/loadgen_check.h"
#include "bench/ps_bench.h"
#include "bench/serve_bench.h"
#include "bench/train_bench.h"
#include "bench/tune_bench.h"
#include "tools/overcast/commands.h"

namespace overcast::cli {
namespace {

// Prints the result: with --json one JSON line last on stdout, else a readable list.
int Report(const Status& st, const nlohmann::json& result, bool json) {
  if (!st.ok()) return Finish(st);
  if (json) {
    std::cout << result.dump() << std::endl;
    return 0;
  }
  std::cout << "bench " << result["bench"].get<std::string>() << "\n";
  for (const char* part : {"figures", "ratios"}) {
    std::cout << part << ":\n";
    for (auto& [k, v] : result[part].items()) std::cout << "  " << k << " = " << v.dump() << "\n";
  }
  return 0;
}

// The options the serving benches share: the shape of a request's body.
template <typename Options>
void AddRequestShapeOptions(CLI::App* c, Options* o) {
  c->add_option("--rows-per-request", o->rows_per_request, "Rows in each request's body")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  c->add_option("--nnz", o->nnz, "Features per row")->check(CLI::Range(1, 100000))
      ->capture_default_str();
}

}  // namespace

void AddBenchCommand(CLI::App& app, CommandContext& ctx) {
  CLI::App* bench = app.add_subcommand(
      "bench",
      "Run a benchmark of overcast beside its peer, in one run; every figure is measured now.\n"
      "bench/README.md names each key and its unit.");
  bench->require_subcommand(1);

  // bench ps
  {
    auto o = std::make_shared<bench::PsBenchOptions>();
    auto json = std::make_shared<bool>(false);
    auto quick = std::make_shared<bool>(false);
    CLI::App* c = bench->add_subcommand(
        "ps",
        "Parameter server vs Redis 7 (pipelined MSET/MGET of the same bytes) and one plain\n"
        "loopback TCP stream: sparse push/pull keys/s and latency at 1,000 and 10,000 keys per\n"
        "request from 1..4 connections, a 16 MB dense pull, and resident bytes per key.");
    c->add_flag("--json", *json, "Print the result as one JSON line last on stdout");
    c->add_flag("--quick", *quick, "A few seconds in all: smaller sizes, one setting each");
    c->add_option("--seconds", o->seconds, "Seconds per measured setting")->capture_default_str();
    c->add_option("--shards", o->shards, "Server shard threads (0 = one per core)");
    c->add_option("--memory-keys", o->memory_keys, "Keys for the memory figure")
        ->capture_default_str();
    auto* dense = c->add_option("--dense-mb", o->dense_mb, "Size of the dense table pulled whole")
        ->capture_default_str();
    c->add_option("--only", o->only, "Run one phase alone: sparse, dense or memory")
        ->check(CLI::IsMember({"sparse", "dense", "memory"}));
    c->add_option("--redis", o->redis, "redis-server binary (\"\" to skip the peer)")
        ->capture_default_str();
    c->add_option("--tcp-congestion", o->tcp_congestion,
                  "TCP congestion control of the server's and the client's connections and of "
                  "the reference streams (as overcast ps --tcp-congestion; Redis keeps the "
                  "kernel's default)")
        ->capture_default_str();
    c->callback([o, json, quick, dense, &ctx] {
      if (*quick) {
        o->seconds = std::min(o->seconds, 0.3);
        o->keys_per_request = {1000};
        o->connections = {2};
        o->key_universe = 100000;
        o->memory_keys = std::min<uint64_t>(o->memory_keys, 200000);
        if (dense->count() == 0) o->dense_mb = 4;
      }
      nlohmann::json result;
      Status st = bench::RunPsBench(*o, &result);
      ctx.exit_code = Report(st, result, *json);
    });
  }

  // bench train
  {
    auto o = std::make_shared<bench::TrainBenchOptions>();
    auto json = std::make_shared<bool>(false);
    CLI::App* c = bench->add_subcommand(
        "train",
        "Per-iteration latency of a logreg worker step (pull, compute, push) against the bare\n"
        "client's pull+push in the same run, samples/s with 1, 2 and 4 workers, and the worker\n"
        "processes' peak RSS on two dataset sizes.");
    c->add_flag("--json", *json, "Print the result as one JSON line last on stdout");
    c->add_option("--iterations", o->iterations, "Timed steps")->capture_default_str();
    c->add_option("--backend", o->backend, "processes or threads")->capture_default_str();
    c->add_option("--scaling-rows", o->scaling_rows,
                  "Rows of the scaling dataset (0: latency only, no scaling or memory figures)")
        ->capture_default_str();
    c->add_option("--scaling-param", o->scaling_params,
                  "logreg KEY=VALUE of the scaling and memory runs (repeatable; replaces the "
                  "defaults)")
        ->capture_default_str();
    c->add_option("--memory-scale", o->memory_scale,
                  "Worker peak RSS on the scaling dataset and on one this many times larger "
                  "(0: skip)")
        ->capture_default_str();
    c->callback([o, json, &ctx] {
      nlohmann::json result;
      Status st = bench::RunTrainBench(*o, &result);
      ctx.exit_code = Report(st, result, *json);
    });
  }

  // bench serve
  {
    auto o = std::make_shared<bench::ServeBenchOptions>();
    auto json = std::make_shared<bool>(false);
    CLI::App* c = bench->add_subcommand(
        "serve",
        "One request-rate trace replayed against `overcast serve` under each CPU controller\n"
        "(autothrottle cold and warm, HPA-style at several targets, static): CPU-core-seconds\n"
        "allocated, p99 per window, share of windows meeting the SLO, allocation ratios.\n"
        "Needs root for real cgroup quotas.");
    c->add_flag("--json", *json, "Print the result as one JSON line last on stdout");
    c->add_option("--seconds", o->seconds, "Length of the generated trace")->capture_default_str();
    c->add_option("--warmup-s", o->warmup_s,
                  "Unmeasured seconds at the trace's first rate before it (controllers settle "
                  "from --initial-cores per replica)")
        ->check(CLI::Range(0, 600))
        ->capture_default_str();
    c->add_option("--pattern", o->pattern, "constant, diurnal or bursty")->capture_default_str();
    c->add_option("--trace", o->trace_csv, "A CSV of one request rate per second instead");
    c->add_option("--controllers", o->controllers,
                  "Controllers to run, in order: autothrottle, captain, hpa (each replica's "
                  "quota follows its use), hpa-replicas (the replica count follows it, as "
                  "Kubernetes' HPA), static")
        ->delimiter(',')
        ->capture_default_str();
    c->add_option("--hpa-targets", o->hpa_targets,
                  "Utilisation targets of the HPA-style runs (hpa and hpa-replicas)")
        ->delimiter(',')
        ->capture_default_str();
    c->add_option("--hpa-replica-cores", o->hpa_replica_cores,
                  "hpa-replicas: each replica's fixed quota in cores; each size is its own set "
                  "of runs (hpa_replicas_cSIZE_uTARGET)")
        ->delimiter(',')
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    c->add_option("--hpa-min-replicas", o->hpa_min_replicas,
                  "hpa-replicas: the fewest replicas running")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    c->add_option("--hpa-max-replicas", o->hpa_max_replicas,
                  "hpa-replicas: the most replicas running")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    c->add_option("--repeats", o->repeats,
                  "Rounds of every run, interleaved; figures are medians over the rounds (CPU, "
                  "p99) and the share of all windows meeting the SLO")
        ->check(CLI::Range(1, 20))
        ->capture_default_str();
    c->add_option("--tower-passes", o->tower_passes,
                  "Replays of the trace that train the Tower before its measured (warm) run")
        ->check(CLI::Range(0, 100))
        ->capture_default_str();
    AddRequestShapeOptions(c, o.get());
    c->add_option("--peak-rate", o->peak_rate, "Generated trace: highest request rate (req/s)")
        ->capture_default_str();
    c->add_option("--base-rate", o->base_rate, "Generated trace: lowest request rate (req/s)")
        ->capture_default_str();
    // Every run's deployment, as `overcast serve` takes it (each run sets its controller).
    AddDeploymentOptions(c, &o->serve);
    c->callback([o, json, &ctx] {
      nlohmann::json result;
      Status st = bench::RunServeBench(*o, &result);
      ctx.exit_code = Report(st, result, *json);
    });
  }

  // bench loadgen
  {
    auto o = std::make_shared<bench::LoadgenCheckOptions>();
    auto json = std::make_shared<bool>(false);
    auto quick = std::make_shared<bool>(false);
    CLI::App* c = bench->add_subcommand(
        "loadgen",
        "`overcast loadgen` checked against wrk on the same server (static quota), request\n"
        "body and machine: at light load, loadgen's p50 against wrk's with one connection\n"
        "(neither queues); at capacity, what completes of loadgen's open-loop offer above\n"
        "what wrk's connections complete, against wrk's rate. Needs wrk (Debian package).");
    c->add_flag("--json", *json, "Print the result as one JSON line last on stdout");
    c->add_flag("--quick", *quick, "One second per phase (the test suite)");
    c->add_option("--seconds", o->seconds, "Seconds per phase (four phases)")
        ->check(CLI::Range(1.0, 600.0))
        ->capture_default_str();
    c->add_option("--replicas", o->replicas, "Replica processes")->check(CLI::Range(1, 64))
        ->capture_default_str();
    AddRequestShapeOptions(c, o.get());
    c->add_option("--cores", o->cores, "Static CPU quota of each replica")
        ->check(CLI::Range(0.05, 64.0))
        ->capture_default_str();
    c->add_option("--connections", o->connections, "wrk's connections in the capacity phase")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    c->add_option("--overload", o->overload,
                  "loadgen's offer in the capacity phase, as a multiple of wrk's rate")
        ->check(CLI::Range(1.0, 10.0))
        ->capture_default_str();
    c->add_option("--light-fraction", o->light_fraction,
                  "loadgen's light-load rate, as a fraction of wrk's one-connection rate")
        ->check(CLI::Range(0.01, 1.0))
        ->capture_default_str();
    c->add_option("--wrk", o->wrk, "wrk binary")->capture_default_str();
    c->callback([o, json, quick, &ctx] {
      if (*quick) o->seconds = 1;
      nlohmann::json result;
      Status st = bench::RunLoadgenCheck(*o, &result);
      ctx.exit_code = Report(st, result, *json);
    });
  }

  // bench tune
  {
    auto o = std::make_shared<bench::TuneBenchOptions>();
    auto json = std::make_shared<bool>(false);
    CLI::App* c = bench->add_subcommand(
        "tune",
        "One 16-point grid (lr x batch x l2) of logreg on a Fashion-MNIST one-vs-rest task,\n"
        "searched with --early-stop none, curve and asha in turn: best test log-loss and\n"
        "worker-seconds of each, and their ratios to the full grid.");
    c->add_flag("--json", *json, "Print the result as one JSON line last on stdout");
    c->add_option("--grid", o->grid, "The grid")->capture_default_str();
    c->add_option("--epochs", o->epochs, "Budget of each trial")->capture_default_str();
    c->add_option("--concurrency", o->concurrency, "Trials at once")->capture_default_str();
    c->add_option("--limit", o->limit, "Images per split (0: all)")->capture_default_str();
    c->add_option("--backend", o->backend, "processes or threads")->capture_default_str();
    c->add_option("--eta", o->eta, "asha's reduction factor (0: tune's default)")->capture_default_str();
    c->add_option("--min-progress", o->min_progress,
                  "asha's first rung as a fraction of the budget (0: tune's default)")
        ->capture_default_str();
    c->add_option("--curve-margin", o->curve_margin, "curve's --margin (-1: tune's default)")
        ->capture_default_str();
    c->add_option("--eval-every", o->eval_every, "Seconds between a trial's evaluations")
        ->capture_default_str();
    c->callback([o, json, &ctx] {
      nlohmann::json result;
      Status st = bench::RunTuneBench(*o, &result);
      ctx.exit_code = Report(st, result, *json);
    });
  }

  // bench load
  {
    auto o = std::make_shared<bench::LoadBenchOptions>();
    auto json = std::make_shared<bool>(false);
    CLI::App* c = bench->add_subcommand(
        "load",
        "Generate a sparse LIBSVM file (1 GB by default), load it, and time liblinear-train\n"
        "reading the same file; prints MB/s and peak RSS of both.");
    c->add_flag("--json", *json, "Print the result as one JSON line last on stdout");
    c->add_option("--size-mb", o->size_mb, "Size of the generated file in MB")
        ->capture_default_str();
    c->add_option("--dir", o->dir, "Work directory (default: a fresh one under /tmp)");
    c->add_option("--threads", o->threads, "Parser threads for overcast load (0 = one per core)");
    c->add_flag("--keep", o->keep, "Keep the generated file and store");
    c->callback([o, json, &ctx] {
      nlohmann::json result;
      Status st = bench::RunLoadBench(*o, &result);
      ctx.exit_code = Report(st, result, *json);
    });
  }
  // bench gen-ctr (a generator for the peer suite, bench/suite/)
  {
    auto o = std::make_shared<bench::CtrGenOptions>();
    CLI::App* c = bench->add_subcommand(
        "gen-ctr",
        "Write a CTR-style LIBSVM train/test pair from a known model (Zipf values per field,\n"
        "hashed one-hot features, true weights and pairwise interactions, labels ~ Bernoulli)\n"
        "and print, as one JSON line, its figures and the optimal log-loss of each split\n"
        "(bench/suite/README.md describes the model).");
    c->add_option("--train", o->train_path, "Train file to write")->required();
    c->add_option("--test", o->test_path, "Test file to write")->required();
    c->add_option("--rows", o->rows, "Train rows")->capture_default_str();
    c->add_option("--test-rows", o->test_rows, "Test rows")->capture_default_str();
    c->add_option("--fields", o->fields, "Categorical fields")->capture_default_str();
    c->add_option("--min-vocab", o->min_vocab, "Values of the first field")->capture_default_str();
    c->add_option("--max-vocab", o->max_vocab, "Values of the last field")->capture_default_str();
    c->add_option("--zipf", o->zipf, "Zipf exponent of value frequencies")->capture_default_str();
    c->add_option("--hash-bits", o->hash_bits, "Features hash into 2^B indices")
        ->capture_default_str();
    c->add_option("--field-bits", o->field_bits,
                  "If > 0, each field hashes into its own block of 2^K indices, so that a\n"
                  "feature's field is (index - 1) >> K (what train's cross=AxB reads)")
        ->capture_default_str();
    c->add_option("--cross-train", o->cross_train_path,
                  "Also write the train rows with the interacting pairs crossed (one more\n"
                  "feature per pair, hashed after the field blocks; needs --field-bits), for\n"
                  "peers that cannot cross features themselves");
    c->add_option("--cross-test", o->cross_test_path, "The same for the test rows");
    c->add_option("--cross-bits", o->cross_bits, "Crossed pairs hash into 2^B indices")
        ->capture_default_str();
    c->add_option("--bias", o->bias, "True intercept")->capture_default_str();
    c->add_option("--weight-std", o->weight_std, "Std of the true weights")->capture_default_str();
    c->add_option("--pairs", o->pairs, "Interacting field pairs")->capture_default_str();
    c->add_option("--pair-std", o->pair_std, "Std of the true interactions")
        ->capture_default_str();
    c->add_option("--seed", o->seed, "Seed of the model and the draws")->capture_default_str();
    c->callback([o, &ctx] {
      nlohmann::json summary;
      Status st = bench::GenerateCtr(*o, &summary);
      if (st.ok()) std::cout << summary.dump() << std::endl;
      ctx.exit_code = Finish(st);
    });
  }
}

}  // namespace overcast::cli
