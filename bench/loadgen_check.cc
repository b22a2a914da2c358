#include "bench/loadgen_check.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "bench/child.h"
#include "common/fs.h"
#include "serve/loadgen.h"
#include "serve/predictor.h"
#include "serve/server.h"

namespace overcast::bench {
namespace {

namespace fs = std::filesystem;

// wrk's own figures for one run, printed as one JSON line by the script's done() callback.
struct WrkRun {
  uint64_t requests = 0, non2xx = 0, socket_errors = 0;
  double seconds = 0, ok_rps = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0, mean_ms = 0;
};

// wrk's script: the request as loadgen sends it (the body read from `body_path`), and a done()
// that reports what wrk measured. wrk's latency is from a request's send to its response
// (closed loop: one request per connection at a time).
std::string WrkScript(const std::string& body_path) {
  return R"(wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(")" + body_path + R"(", "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
)";
}

Result<WrkRun> RunWrk(const LoadgenCheckOptions& o, const std::string& dir, const std::string& url,
                      int threads, int connections, double seconds) {
  const std::string log = dir + "/wrk.log";
  std::error_code ec;
  fs::remove(log, ec);
  Child wrk;
  OC_RETURN_IF_ERROR(wrk.Start({o.wrk, "-t", std::to_string(threads), "-c",
                                std::to_string(connections), "-d",
                                fmt::format("{}s", std::max(1, static_cast<int>(seconds + 0.5))),
                                "-s", dir + "/predict.lua", url},
                               log));
  OC_ASSIGN_OR_RETURN(int rc, wrk.Wait());
  std::string text;
  (void)ReadFile(log, &text);
  if (rc == 127) {
    return Unavailable("cannot run '" + o.wrk + "' (Debian's wrk package: apt-get install wrk)");
  }
  const size_t at = text.find("WRK-RESULT ");
  if (rc != 0 || at == std::string::npos) {
    return Unavailable(fmt::format("wrk exited with {} and no result; its output:\n{}", rc, text));
  }
  const auto j = nlohmann::json::parse(text.substr(at + 11, text.find('\n', at) - at - 11),
                                       nullptr, false);
  if (j.is_discarded()) return Internal("wrk's result line is not JSON: " + text);
  WrkRun r;
  r.requests = j["requests"];
  r.non2xx = j["non2xx"];
  r.socket_errors = j["socket_errors"];
  r.seconds = j["duration_us"].get<double>() / 1e6;
  r.ok_rps = r.seconds > 0 ? (r.requests - std::min(r.requests, r.non2xx)) / r.seconds : 0;
  r.p50_ms = j["p50_us"].get<double>() / 1e3;
  r.p90_ms = j["p90_us"].get<double>() / 1e3;
  r.p99_ms = j["p99_us"].get<double>() / 1e3;
  r.mean_ms = j["mean_us"].get<double>() / 1e3;
  return r;
}

void Say(bool on, const std::string& s) {
  if (on) std::fprintf(stderr, "bench loadgen: %s\n", s.c_str());
}

}  // namespace

Status RunLoadgenCheck(const LoadgenCheckOptions& o, nlohmann::json* result) {
  if (o.seconds <= 0 || o.light_fraction <= 0 || o.overload <= 0 || o.connections < 1) {
    return InvalidArgument("--seconds, --light-fraction, --overload and --connections must be > 0");
  }
  std::string bin = o.overcast;
  if (bin == "/proc/self/exe") bin = fs::read_symlink("/proc/self/exe").string();
  const ScratchDir scratch("loadgen-check");
  const fs::path dir = scratch.path();

  // One body, the shape loadgen sends, for wrk to repeat.
  const std::string model = (dir / "ctr.model").string();
  OC_RETURN_IF_ERROR(serve::WriteRandomLinearModel(model, "ctr", serve::Task::kBinary, o.features,
                                                   2, o.seed));
  std::mt19937_64 rng(o.seed);
  const std::string body = (dir / "body.json").string();
  OC_RETURN_IF_ERROR(WriteFileAtomic(body, serve::PredictBody(o.rows_per_request, o.nnz,
                                                              o.features, rng)));
  OC_RETURN_IF_ERROR(WriteFileAtomic((dir / "predict.lua").string(), WrkScript(body)));

  serve::ServeOptions so;
  so.model_paths = {model};
  so.port = 0;
  so.replicas = o.replicas;
  so.replica_bin = bin;
  so.cgroup = o.cgroup;
  so.controller = "static";
  so.static_cores = o.cores;
  so.initial_cores = o.cores;
  serve::Server server(so);
  OC_RETURN_IF_ERROR(server.Start());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string url = fmt::format("http://127.0.0.1:{}/v1/models/ctr:predict", server.port());

  auto loadgen = [&](double rate, int connections) -> Result<serve::LoadgenResult> {
    serve::LoadgenOptions lg;
    lg.port = server.port();
    lg.model = "ctr";
    lg.rates.assign(static_cast<size_t>(std::max(1.0, std::round(o.seconds))), rate);
    lg.connections = connections;
    lg.rows_per_request = o.rows_per_request;
    lg.nnz = o.nnz;
    lg.num_features = o.features;
    lg.window_s = o.seconds;
    lg.seed = o.seed;
    return serve::RunLoadgen(lg);
  };

  nlohmann::json figures = nlohmann::json::object(), ratios = nlohmann::json::object();
  Status st = [&]() -> Status {
    // Light load: one wrk connection, one request at a time; then loadgen open loop at a
    // fraction of that rate. Neither should queue, so both read the server's bare latency.
    OC_ASSIGN_OR_RETURN(WrkRun one, RunWrk(o, dir.string(), url, 1, 1, o.seconds));
    if (one.ok_rps <= 0) return Internal("wrk completed no request with one connection");
    const double light_rate = o.light_fraction * one.ok_rps;
    OC_ASSIGN_OR_RETURN(serve::LoadgenResult light, loadgen(light_rate, 4));
    figures["wrk_1conn_ok_rps"] = one.ok_rps;
    figures["wrk_1conn_p50_ms"] = one.p50_ms;
    figures["wrk_1conn_p99_ms"] = one.p99_ms;
    figures["loadgen_light_rate"] = light_rate;
    figures["loadgen_light_p50_ms"] = light.p50_ms;
    figures["loadgen_light_p99_ms"] = light.p99_ms;
    figures["loadgen_light_achieved_rps"] = light.achieved_rps;
    ratios["loadgen_light_p50_over_wrk_1conn_p50"] = light.p50_ms / one.p50_ms;
    Say(o.progress, fmt::format("light load: wrk, one connection: {:.0f} req/s, p50 {:.3f} ms, "
                                "p99 {:.3f} ms; loadgen at {:.0f} req/s: p50 {:.3f} ms, p99 "
                                "{:.3f} ms (p50 {:.2f}x wrk's)",
                                one.ok_rps, one.p50_ms, one.p99_ms, light_rate, light.p50_ms,
                                light.p99_ms, light.p50_ms / one.p50_ms));

    // Capacity: what the server completes with many wrk connections, against what completes
    // of an open-loop offer above it (the excess gets 503s from the bounded queues).
    OC_ASSIGN_OR_RETURN(WrkRun many, RunWrk(o, dir.string(), url, 2, o.connections, o.seconds));
    if (many.ok_rps <= 0) return Internal("wrk completed no request");
    const double offer = o.overload * many.ok_rps;
    OC_ASSIGN_OR_RETURN(serve::LoadgenResult over, loadgen(offer, 64));
    const double over_ok_rps = over.seconds > 0 ? over.ok / over.seconds : 0;
    figures["wrk_capacity_ok_rps"] = many.ok_rps;
    figures["wrk_capacity_non2xx"] = many.non2xx;
    figures["wrk_capacity_p50_ms"] = many.p50_ms;
    figures["wrk_capacity_connections"] = o.connections;
    figures["loadgen_overload_offered_rps"] = offer;
    figures["loadgen_overload_ok_rps"] = over_ok_rps;
    figures["loadgen_overload_rejected"] = over.rejected;
    figures["loadgen_overload_errors"] = over.errors;
    ratios["loadgen_overload_ok_rps_over_wrk_capacity"] = over_ok_rps / many.ok_rps;
    Say(o.progress, fmt::format("capacity: wrk, {} connections: {:.0f} req/s completed ({} "
                                "non-2xx); loadgen offering {:.0f} req/s: {:.0f} req/s completed "
                                "({:.2f}x wrk's), {} refused, {} failed",
                                o.connections, many.ok_rps, many.non2xx, offer, over_ok_rps,
                                over_ok_rps / many.ok_rps, over.rejected, over.errors));
    return Status::Ok();
  }();
  server.Stop();
  OC_RETURN_IF_ERROR(st);
  figures["seconds_per_phase"] = o.seconds;
  figures["replicas"] = o.replicas;
  figures["static_cores"] = o.cores;
  figures["rows_per_request"] = o.rows_per_request;
  figures["nnz"] = o.nnz;
  *result = {{"bench", "loadgen"}, {"figures", figures}, {"ratios", ratios}};
  return Status::Ok();
}

}  // namespace overcast::bench
