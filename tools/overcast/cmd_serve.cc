// overcast serve / serve-replica / loadgen / make-model: the model server and its load generator.
#include <signal.h>

#include <charconv>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "net/auth.h"
#include "serve/loadgen.h"
#include "serve/predictor.h"
#include "serve/replica.h"
#include "serve/server.h"
#include "tools/overcast/commands.h"

namespace overcast::cli {
namespace {

// The signals `overcast serve` answers: SIGINT and SIGTERM stop it, SIGHUP reloads the models.
sigset_t ServeSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

// Blocks them in this thread and every thread started after, so one thread can sigwait for
// them (a replica waits for SIGINT/SIGTERM only and so ignores SIGHUP).
void BlockTermSignals() {
  const sigset_t set = ServeSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

Status SplitHostPort(const std::string& s, std::string* host, int* port) {
  uint16_t p = 0;
  OC_RETURN_IF_ERROR(net::ParseHostPort(s, host, &p));
  *port = p;
  return Status::Ok();
}

// "--place NAME=R[,R...]", repeated: model name -> replicas.
Result<std::map<std::string, std::vector<int>>> ParsePlacement(
    const std::vector<std::string>& places) {
  std::map<std::string, std::vector<int>> out;
  for (const std::string& p : places) {
    const size_t eq = p.find('=');
    const std::string name = p.substr(0, eq);
    if (eq == std::string::npos || name.empty()) {
      return InvalidArgument("--place " + p + ": expected NAME=R[,R...] (replicas from 0)");
    }
    if (out.count(name)) return InvalidArgument("--place names model '" + name + "' twice");
    std::vector<int>& where = out[name];
    for (const std::string& r : SplitList(p.substr(eq + 1))) {
      int v = -1;
      auto [end, ec] = std::from_chars(r.data(), r.data() + r.size(), v);
      if (ec != std::errc() || end != r.data() + r.size() || v < 0) {
        return InvalidArgument("--place " + p + ": '" + r + "' is not a replica number");
      }
      where.push_back(v);
    }
  }
  return out;
}

}  // namespace

void AddDeploymentOptions(CLI::App* c, serve::ServeOptions* o) {
  c->add_option("--replicas", o->replicas,
                "Replica processes (the least running under --max-replicas)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  c->add_option("--max-replicas", o->max_replicas,
                "Scale the replica count too, up to this many: another replica starts when the\n"
                "running ones use more than --scale-utilization of their capacity (--max-cores\n"
                "each, --static-cores under static), and the newest stops once fewer would do\n"
                "for a whole --scale-down-window-s (0: always --replicas)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  c->add_option("--scale-utilization", o->scale_utilization,
                "Replica count: share of the running replicas' capacity to aim for")
      ->capture_default_str();
  c->add_option("--scale-interval-s", o->scale_interval_s,
                "Replica count: seconds of CPU usage behind each decision")
      ->capture_default_str();
  c->add_option("--scale-down-window-s", o->scale_down_window_s,
                "Replica count: a replica stops only when fewer would have done for this long")
      ->capture_default_str();
  c->add_option("--slo-p99-ms", o->slo_p99_ms, "Latency objective: p99 in milliseconds")
      ->capture_default_str();
  c->add_option("--initial-cores", o->initial_cores, "Each replica's first CPU limit (cores)")
      ->capture_default_str();
  c->add_option("--max-cores", o->max_cores, "Upper bound per replica (0 = machine's cores)")
      ->capture_default_str();
  c->add_option("--static-cores", o->static_cores, "Limit per replica under the static controller")
      ->capture_default_str();
  c->add_option("--captain-target", o->captain.target,
                "Fixed throttle-ratio target of the captain controller")
      ->capture_default_str();
  c->add_option("--captain-from-peak", o->captain.from_peak,
                "Captain: scale down from the usage window's peak (true, Autothrottle's rule) or\n"
                "its trend line's value now (false), the margin x stdev covering bursts")
      ->capture_default_str();
  c->add_option("--captain-initial-margin", o->captain.initial_margin,
                "Captain: starting margin, in stdevs of 100-ms usage above the scale-down base")
      ->capture_default_str();
  c->add_option("--captain-margin-gain", o->captain.margin_gain,
                "Captain: margin step per unit of (throttle ratio - target) each second")
      ->capture_default_str();
  c->add_option("--captain-fast-up-ratio", o->captain.fast_up_ratio,
                "Captain: a 100-ms sample with this share of its CFS periods throttled scales\n"
                "up at once, not at the end of the second (0: off)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c->add_option("--captain-fast-up-repay", o->captain.fast_up_repay,
                "Captain: once a sample after a fast scale-up goes unthrottled, return towards\n"
                "the limit before it (the burst it answered has passed)")
      ->capture_default_str();
  c->add_option("--captain-down-headroom", o->captain.down_headroom,
                "Captain: scale down only when the new limit is at most this fraction of the old")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  c->add_option("--hpa-interval-s", o->hpa.interval_s, "HPA: seconds between decisions")
      ->capture_default_str();
  c->add_option("--hpa-window-s", o->hpa.window_s, "HPA: stabilisation window (max usage over it)")
      ->capture_default_str();
  c->add_option("--tower-interval-s", o->tower_interval_s, "Tower: seconds between decisions")
      ->capture_default_str();
  c->add_option("--tower-explore", o->tower.explore, "Tower: probability of trying a neighbour")
      ->capture_default_str();
  c->add_option("--tower-seed", o->tower.seed,
                "Tower: seed of its exploration draws (a restored table goes on from it and the\n"
                "decisions it holds, not replaying the saved run's draws)")
      ->capture_default_str();
  c->add_option("--tower-probe-up", o->tower.probe_up,
                "Tower: try the next higher (cheaper) target while the highest tried meets the SLO")
      ->capture_default_str();
  c->add_option("--tower-initial-target", o->tower.initial_target,
                "Tower: throttle target a load level with nothing learned starts at (the\n"
                "nearest of its targets); one that misses or nears the SLO is left downwards")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c->add_option("--tower-rate-scaled-cost", o->tower.rate_scaled_cost,
                "Tower: scale an interval's allocation to the middle rate of its load level\n"
                "before comparing targets (off: the allocation as measured)")
      ->capture_default_str();
  c->add_option("--tower-targets", o->tower.targets,
                "Tower: the throttle-ratio targets it chooses from, rising (a table saved with\n"
                "other targets is refused)")
      ->delimiter(',')
      ->capture_default_str();
  c->add_option("--tower-slo-guard", o->tower.slo_guard,
                "Tower: intervals whose p99 is above this fraction of the SLO cost more, up to "
                "allocation + 1 at the SLO (1: only misses cost more)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c->add_option("--tower-groups", o->tower_groups,
                "Tower: placement (one per service group: replicas --place gives other models\n"
                "learn their own target from their own load) or one (one for all replicas)")
      ->check(CLI::IsMember({"placement", "one"}))
      ->capture_default_str();
  c->add_option("--cgroup", o->cgroup, "auto|v1|v2|none (none: no quota, usage from /proc)")
      ->check(CLI::IsMember({"auto", "v1", "v2", "none"}))
      ->capture_default_str();
  c->add_option("--cfs-period-us", o->cfs_period_us,
                "CFS period of the replicas' quota (-1: SLO/2 within 10-100 ms)")
      ->capture_default_str();
  c->add_option("--cfs-period-max-us", o->cfs_period_max_us,
                "Longest CFS period: a limit under 1 ms of quota per period stretches its\n"
                "period up to this, lowering every controller's floor to 1 ms over it (-1: twice\n"
                "the CFS period, at most the SLO; the CFS period itself turns stretching off)")
      ->capture_default_str();
  c->add_option("--cfs-burst", o->cfs_burst,
                "CFS burst as a fraction of the quota (0-1): unused quota a replica may spend in\n"
                "a later period, so a burst of requests is not held until the next period")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c->add_option("--max-batch", o->max_batch_rows, "Dynamic batching: rows per batch at most")
      ->capture_default_str();
  c->add_option("--max-wait-us", o->max_wait_us,
                "Dynamic batching: longest wait for a fuller batch; 0 batches what queued while\n"
                "the previous batch was predicted (-1: min(1 ms, SLO/20))")
      ->capture_default_str();
  c->add_option("--replica-hang-s", o->replica_hang_s,
                "A replica with requests in flight that answers none for this long is killed\n"
                "and restarted; its requests go to another replica (0: never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  c->add_option("--replica-connections", o->replica_connections,
                "Keep-alive connections the front end may hold to each replica, i.e. its "
                "requests in flight there; more wait in the front end")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
}

void AddServeCommands(CLI::App& app, CommandContext& ctx) {
  // ---- serve
  {
    auto o = std::make_shared<serve::ServeOptions>();
    auto models = std::make_shared<std::vector<std::string>>();
    auto listen = std::make_shared<std::string>("127.0.0.1:8080");
    auto secret_file = std::make_shared<std::string>();
    auto places = std::make_shared<std::vector<std::string>>();
    auto* c = app.add_subcommand(
        "serve",
        "Serve models over HTTP/JSON with N replica processes, each in a CPU cgroup whose quota\n"
        "an SLO controller runs.\n\n"
        "  POST /v1/models/NAME:predict  {\"instances\": [{\"ids\":[3,17],\"values\":[1,0.5]}, [0,1.5,0]]}\n"
        "       -> {\"model\":NAME,\"predictions\":[{\"label\":1,\"probabilities\":[0.2,0.8]}, ...]}\n"
        "  POST /v1/models/GROUP:predict?min_accuracy=0.9  the fastest variant of GROUP (make-model\n"
        "       --group) whose recorded accuracy is >= 0.9\n"
        "  GET  /healthz   GET /metrics (Prometheus)   GET /v1/models\n"
        "  GET  /v1/models/NAME  one model, and \"ready\" (503 while no replica serving it is up)\n"
        "  POST /v2/models/NAME/infer  KServe's V2 protocol: {\"inputs\":[{\"name\":\"x\",\n"
        "       \"shape\":[N,F],\"datatype\":\"FP32\",\"data\":[...]}],\n"
        "       \"outputs\":[{\"name\":\"probabilities\"}]} -> output tensors (all without\n"
        "       \"outputs\"); also GET /v2, /v2/health/live|ready, /v2/models/NAME[/ready];\n"
        "       /v2/models/NAME/versions/1/... is the model's one version; tensors as binary\n"
        "       data too (header Inference-Header-Content-Length, \"binary_data_size\")\n"
        "  POST /v1/reload  (or SIGHUP) re-read the model files (and list --model-dir again)\n"
        "       and move the replicas onto them one at a time, each new process started before\n"
        "       the old one stops; a file that does not load is refused (409) and the old\n"
        "       models go on serving\n\n"
        "Controllers: autothrottle = a Captain per replica holding a CPU-throttle target, and a\n"
        "Tower (contextual bandit) choosing that target from request rate and p99 vs the SLO;\n"
        "captain = Captains with a fixed target; hpa = Kubernetes-HPA-style utilisation rule;\n"
        "static = a fixed quota. Example:\n"
        "  overcast make-model --out /tmp/m.model --name ctr --features 100000\n"
        "  overcast serve --model /tmp/m.model --replicas 2 --slo-p99-ms 20");
    c->add_option("--model", *models, "Model file(s), comma-separated or repeated");
    c->add_option("--model-dir", o->model_dir,
                  "Serve every model file in DIR too (not hidden or .tmp files); listed again at\n"
                  "each reload, so files added there are served and removed ones are not")
        ->check(CLI::ExistingDirectory);
    c->add_option("--place", *places,
                  "NAME=R[,R...]: only replicas R (0-based) load and serve model NAME, e.g.\n"
                  "--place digits=1 --place ctr=0,1; repeat for more models. A model not named\n"
                  "is on every replica; every replica must be left a model")
        ->type_name("NAME=R,...");
    c->add_option("--listen", *listen, "HOST:PORT to listen on (port 0 = any free port)")
        ->capture_default_str();
    c->add_option("--port-file", o->port_file, "Write the bound port here once listening");
    c->add_option("--secret-file", *secret_file,
                  "File holding a shared secret: every request but the probes (GET /healthz, "
                  "/v2/health/live|ready) must then send "
                  "`Authorization: Bearer SECRET` (else 401). Needed to listen beyond loopback; "
                  "the token travels in clear unless --tls-cert/--tls-key are given");
    c->add_option("--tls-cert", o->tls_cert,
                  "PEM certificate (chain) to serve HTTPS with, beside --tls-key: the token and "
                  "the rows then travel encrypted (clients: loadgen --tls --ca-cert)");
    c->add_option("--tls-key", o->tls_key, "PEM private key of --tls-cert");
    c->add_option("--controller", o->controller, "autothrottle|captain|hpa|static")
        ->check(CLI::IsMember({"autothrottle", "captain", "hpa", "static"}))
        ->capture_default_str();
    AddDeploymentOptions(c, o.get());
    c->add_option("--hpa-utilization", o->hpa.utilization_target,
                  "HPA: usage / limit to aim for")->capture_default_str();
    c->add_option("--tower-state", o->tower.state_path,
                  "Tower: file its learned table is kept in (survives restarts); with several\n"
                  "service groups, one file per group: tower.json -> tower.GROUP.json");
    c->add_option("--max-inflight", o->max_inflight, "Requests in flight before answering 503")
        ->capture_default_str();
    c->add_option("--max-body-bytes", o->max_body_bytes, "Larger request bodies get 413")
        ->capture_default_str();
    c->add_option("--max-connections", o->max_connections,
                  "Client connections served at once, a thread each. A connection idle for a\n"
                  "second leaves its thread (see --max-idle-connections); past the bound, the\n"
                  "one idle longest leaves at once to give its thread to the new connection,\n"
                  "or with none idle, the request that began longest ago and is still arriving\n"
                  "gets a 503")
        ->check(CLI::Range(1, 65536))
        ->capture_default_str();
    c->add_option("--max-idle-connections", o->max_idle_connections,
                  "Idle keep-alive connections kept open without a thread, one poll thread\n"
                  "watching them all; past it, the one whose keep-alive (60 s) ends first\n"
                  "closes. Lowered to fit the open-files limit beside --max-connections")
        ->check(CLI::Range(0, 1 << 20))
        ->capture_default_str();
    auto rotate_mb = std::make_shared<double>(100);
    c->add_option("--access-log", o->access_log.path,
                  "Write a JSON line per request the front end answers (time, remote, method,\n"
                  "target, status, ms, body bytes in and out) to this file, appending; '-' for\n"
                  "standard output. Written by a thread of its own: a full queue (8192 lines)\n"
                  "drops the oldest (overcast_serve_access_log_dropped_total)");
    c->add_option("--access-log-rotate-mb", *rotate_mb,
                  "Access log: past this size the file is renamed with .1 before its extension\n"
                  "(access.log -> access.1.log, older ones to .2, ...); 0: never (rotate it\n"
                  "outside with logrotate's copytruncate)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    c->add_option("--access-log-keep", o->access_log.keep_files,
                  "Access log: rotated files kept (.1 ... .N)")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    c->callback([&ctx, o, models, listen, secret_file, places, rotate_mb] {
      ctx.exit_code = Finish([&]() -> Status {
        o->access_log.rotate_bytes = static_cast<size_t>(*rotate_mb * (1 << 20));
        OC_RETURN_IF_ERROR(SplitHostPort(*listen, &o->host, &o->port));
        OC_ASSIGN_OR_RETURN(o->placement, ParsePlacement(*places));
        if (!secret_file->empty()) {
          OC_ASSIGN_OR_RETURN(o->secret, net::ReadSecretFile(*secret_file));
        }
        o->model_paths = SplitList(*models);
        BlockTermSignals();
        serve::Server server(*o);
        OC_RETURN_IF_ERROR(server.Start());
        std::thread waiter([&server] {
          const sigset_t set = ServeSignals();
          int sig;
          while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
            spdlog::info("SIGHUP: reloading the model files");
            server.RequestReload();  // the outcome is logged; this thread goes on waiting
          }
          spdlog::info("signal {}: stopping", sig);
          server.Stop();
        });
        waiter.detach();
        server.Wait();
        return Status::Ok();
      }());
    });
  }
  // ---- serve-replica (started by serve)
  {
    auto o = std::make_shared<serve::ReplicaOptions>();
    auto models = std::make_shared<std::vector<std::string>>();
    auto* c = app.add_subcommand("serve-replica",
                                 "One serving replica (started by `overcast serve`; listens on "
                                 "127.0.0.1, any free port, written to --port-file; with "
                                 "OVERCAST_REPLICA_TOKEN set, predict and /stats need it as "
                                 "a bearer token)");
    c->add_option("--model", *models, "Model file(s)")->required();
    c->add_option("--port-file", o->port_file, "Where to write the port");
    c->add_option("--port", o->port, "Port (0 = any)")->capture_default_str();
    c->add_option("--max-batch", o->max_batch_rows, "Rows per batch at most")->capture_default_str();
    c->add_option("--max-wait-us", o->max_wait_us, "Longest wait for a fuller batch (0: none)")->capture_default_str();
    c->add_option("--max-queued-rows", o->max_queued_rows, "Queue bound (503 beyond)")
        ->capture_default_str();
    c->add_option("--threads", o->threads, "Connection threads")->capture_default_str();
    c->add_option("--max-body-bytes", o->max_body_bytes, "Larger bodies get 413")->capture_default_str();
    c->callback([&ctx, o, models] {
      o->model_paths = SplitList(*models);
      if (const char* t = std::getenv(serve::kReplicaTokenEnv)) o->token = t;
      BlockTermSignals();
      ctx.exit_code = Finish(serve::RunReplica(*o));
    });
  }
  // ---- loadgen
  {
    auto o = std::make_shared<serve::LoadgenOptions>();
    auto target = std::make_shared<std::string>("127.0.0.1:8080");
    auto trace = std::make_shared<std::string>();
    auto pattern = std::make_shared<std::string>("constant");
    auto rate = std::make_shared<double>(100), peak = std::make_shared<double>(400);
    auto secret_file = std::make_shared<std::string>();
    auto seconds = std::make_shared<int>(10);
    auto uniform = std::make_shared<bool>(false), json = std::make_shared<bool>(false);
    auto* c = app.add_subcommand(
        "loadgen",
        "Open-loop load against a model server: arrivals follow a rate trace (a CSV of one rate\n"
        "per second, or a generated constant/diurnal/bursty one), whatever the server's speed;\n"
        "latency is measured from each scheduled arrival. Prints p50/p90/p99 per window.\n"
        "  overcast loadgen --target 127.0.0.1:8080 --model ctr --pattern diurnal --rate 50 --peak 500 --seconds 60");
    c->add_option("--target", *target, "Server HOST:PORT")->capture_default_str();
    c->add_option("--model", o->model, "Model name")->required();
    c->add_option("--trace", *trace, "CSV trace, one rate (requests/s) per line per second");
    c->add_option("--pattern", *pattern, "constant|diurnal|bursty (without --trace)")
        ->check(CLI::IsMember({"constant", "diurnal", "bursty"}))
        ->capture_default_str();
    c->add_option("--rate", *rate, "Base rate, requests/s")->capture_default_str();
    c->add_option("--peak", *peak, "Peak rate for diurnal and bursty")->capture_default_str();
    c->add_option("--seconds", *seconds, "Length of a generated trace")->capture_default_str();
    c->add_option("--connections", o->connections, "Concurrent connections")->capture_default_str();
    c->add_option("--window-s", o->window_s, "Reporting window")->capture_default_str();
    c->add_option("--rows", o->rows_per_request, "Rows per request")->capture_default_str();
    c->add_option("--nnz", o->nnz, "Features per row")->capture_default_str();
    c->add_option("--seed", o->seed, "Random seed")->capture_default_str();
    c->add_option("--secret-file", *secret_file,
                  "The server's shared secret, sent as `Authorization: Bearer ...`");
    c->add_flag("--tls", o->tls, "HTTPS (a server started with --tls-cert); its certificate is "
                "verified against --ca-cert, else the system's CA store");
    c->add_option("--ca-cert", o->ca_cert,
                  "PEM file of the CA, or the self-signed certificate, to trust (implies --tls)")
        ->check(CLI::ExistingFile);
    c->add_flag("--uniform", *uniform, "Evenly spaced arrivals instead of Poisson");
    c->add_flag("--json", *json, "End with one JSON line of results");
    c->callback([&ctx, o, target, trace, pattern, rate, peak, seconds, uniform, json, secret_file] {
      ctx.exit_code = Finish([&]() -> Status {
        OC_RETURN_IF_ERROR(SplitHostPort(*target, &o->host, &o->port));
        if (!secret_file->empty()) {
          OC_ASSIGN_OR_RETURN(o->bearer_token, net::ReadSecretFile(*secret_file));
        }
        if (!o->ca_cert.empty()) o->tls = true;
        if (!trace->empty()) {
          OC_ASSIGN_OR_RETURN(o->rates, serve::ReadTraceCsv(*trace));
        } else {
          OC_ASSIGN_OR_RETURN(o->rates, serve::MakeTrace(*pattern, *rate, *peak, *seconds, o->seed));
        }
        o->poisson = !*uniform;
        OC_ASSIGN_OR_RETURN(auto r, serve::RunLoadgen(*o));
        std::cout << fmt::format("{:>8} {:>7} {:>7} {:>6} {:>6} {:>9} {:>9} {:>9}\n", "window_s",
                                 "sent", "ok", "503", "err", "p50_ms", "p90_ms", "p99_ms");
        nlohmann::json windows = nlohmann::json::array();
        for (const auto& w : r.windows) {
          std::cout << fmt::format("{:>8.1f} {:>7} {:>7} {:>6} {:>6} {:>9.2f} {:>9.2f} {:>9.2f}\n",
                                   w.start_s, w.sent, w.ok, w.rejected, w.errors, w.p50_ms,
                                   w.p90_ms, w.p99_ms);
          windows.push_back({{"start_s", w.start_s}, {"sent", w.sent}, {"ok", w.ok},
                             {"rejected", w.rejected}, {"errors", w.errors},
                             {"p50_ms", w.p50_ms}, {"p99_ms", w.p99_ms}});
        }
        std::cout << fmt::format(
            "total: {} sent, {} ok, {} rejected (503), {} errors in {:.1f} s ({:.1f} req/s); "
            "latency mean {:.2f} p50 {:.2f} p90 {:.2f} p99 {:.2f} max {:.2f} ms; worst send lag "
            "{:.2f} ms\n",
            r.sent, r.ok, r.rejected, r.errors, r.seconds, r.achieved_rps, r.mean_ms, r.p50_ms,
            r.p90_ms, r.p99_ms, r.max_ms, r.max_start_lag_ms);
        if (*json) {
          nlohmann::json j = {{"sent", r.sent}, {"ok", r.ok}, {"rejected", r.rejected},
                              {"errors", r.errors}, {"seconds", r.seconds},
                              {"requests_per_second", r.achieved_rps}, {"mean_ms", r.mean_ms},
                              {"p50_ms", r.p50_ms}, {"p90_ms", r.p90_ms}, {"p99_ms", r.p99_ms},
                              {"max_ms", r.max_ms}, {"windows", windows}};
          std::cout << j.dump() << "\n";
        }
        return Status::Ok();
      }());
    });
  }
  // ---- make-model
  {
    auto out = std::make_shared<std::string>(), name = std::make_shared<std::string>("model");
    auto task = std::make_shared<std::string>("binary");
    auto features = std::make_shared<uint64_t>(1000);
    auto classes = std::make_shared<uint32_t>(2);
    auto seed = std::make_shared<uint64_t>(1);
    auto group = std::make_shared<std::string>();
    auto accuracy = std::make_shared<double>(-1);
    auto* c = app.add_subcommand("make-model",
                                 "Write a random linear serving model (to try `serve` and for "
                                 "benchmarks until `train --out` exports real ones)");
    c->add_option("--out", *out, "Model file to write")->required();
    c->add_option("--name", *name, "Model name (the NAME in /v1/models/NAME:predict)")
        ->capture_default_str();
    c->add_option("--task", *task, "binary|multiclass|regression")
        ->check(CLI::IsMember({"binary", "multiclass", "regression"}))
        ->capture_default_str();
    c->add_option("--features", *features, "Number of features")->capture_default_str();
    c->add_option("--classes", *classes, "Classes (multiclass)")->capture_default_str();
    c->add_option("--seed", *seed, "Random seed")->capture_default_str();
    c->add_option("--group", *group,
                  "Variant group: POST /v1/models/GROUP:predict?min_accuracy=A picks the "
                  "fastest variant with accuracy >= A");
    c->add_option("--accuracy", *accuracy, "Accuracy to record in the model (-1: unknown)")
        ->capture_default_str();
    c->callback([&ctx, out, name, task, features, classes, seed, group, accuracy] {
      const serve::Task t = *task == "binary"       ? serve::Task::kBinary
                            : *task == "multiclass" ? serve::Task::kMulticlass
                                                    : serve::Task::kRegression;
      ctx.exit_code = Finish(serve::WriteRandomLinearModel(
          *out, *name, t, *features, t == serve::Task::kBinary ? 2 : *classes, *seed, *group,
          *accuracy));
    });
  }
}

}  // namespace overcast::cli
