#include "serve/replica.h"

#include <signal.h>

#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/log.h"
#include "serve/api.h"
#include "serve/http_server.h"
#include "serve/batcher.h"
#include "serve/predictor.h"

namespace overcast::serve {

namespace {
struct Served {
  std::unique_ptr<Predictor> model;
  std::unique_ptr<Batcher> batcher;
};
}  // namespace

Status RunReplica(const ReplicaOptions& o) {
  std::map<std::string, Served> models;
  for (const auto& path : o.model_paths) {
    OC_ASSIGN_OR_RETURN(auto m, LoadModel(path));
    const std::string name = m->info().name;
    if (models.count(name)) return InvalidArgument("two models named '" + name + "'");
    Served s;
    s.model = std::move(m);
    s.batcher = std::make_unique<Batcher>(
        s.model.get(), BatcherOptions{o.max_batch_rows, std::chrono::microseconds(o.max_wait_us),
                                      o.max_queued_rows});
    models.emplace(name, std::move(s));
  }
  if (models.empty()) return InvalidArgument("no model given");

  HttpServer svr;
  ConfigureHttpServer(svr, o.threads, o.max_threads, o.max_body_bytes);
  // The replica's clients are the front end's pooled connections, fewer than its threads: an
  // idle one keeps its thread until its keep-alive ends, as before the parking lot, and a
  // request on it never waits for the lot's wake-up on a CPU quota the controller keeps tight.
  svr.set_idle_spell(std::chrono::hours(24));
  svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  // The front end's token, compared in constant time; false after answering 401.
  auto authorized = [&o](const httplib::Request& req, httplib::Response& res) {
    if (o.token.empty() || HasBearer(req, o.token)) return true;
    res.status = 401;
    res.set_content(JsonError(401, "a replica answers only its front end (overcast serve)"),
                    "application/json");
    return false;
  };
  svr.Get("/stats", [&](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    nlohmann::json j;
    for (auto& [name, s] : models) {
      auto st = s.batcher->stats();
      j[name] = {{"batches", st.batches},
                 {"rows", st.rows},
                 {"requests", st.requests},
                 {"rejected", st.rejected},
                 {"queue_seconds", st.queue_ns / 1e9},
                 {"compute_seconds", st.compute_ns / 1e9},
                 {"batch_sizes", st.sizes}};
    }
    res.set_content(j.dump(), "application/json");
  });
  svr.Post(R"(/v1/models/([^/]+):predict)", [&](const httplib::Request& req,
                                               httplib::Response& res) {
    if (!authorized(req, res)) return;
    const std::string name = req.matches[1];
    auto it = models.find(name);
    if (it == models.end()) {
      res.status = 404;
      res.set_content(JsonError(404, "unknown model '" + name + "'"), "application/json");
      return;
    }
    thread_local SparseBatch rows;
    thread_local std::vector<float> out;
    rows.clear();
    const ModelInfo& info = it->second.model->info();
    Status s = ParsePredictRequest(req.body, info, &rows, o.max_request_rows);
    if (s.ok()) s = it->second.batcher->Submit(rows, &out);
    if (s.ok()) s = CheckPredictOutputs(info, out.data(), rows.rows());
    if (!s.ok()) {
      res.status = HttpCodeFor(s);
      res.set_content(JsonError(res.status, s.message()), "application/json");
      return;
    }
    res.set_content(FormatPredictResponse(info, out.data(), rows.rows()), "application/json");
  });

  const int port = BindHttpServer(svr, o.host, o.port);
  if (port <= 0) return Unavailable("replica cannot listen on " + o.host + ":" + std::to_string(o.port));
  if (!o.port_file.empty()) OC_RETURN_IF_ERROR(WriteFileAtomic(o.port_file, std::to_string(port)));
  spdlog::info("replica pid {} serving {} model(s) on {}:{}", ::getpid(), models.size(), o.host, port);

  // SIGTERM/SIGINT are blocked by the caller; this thread waits for one and stops the server.
  // A replica holds no state worth saving: if connections are still open a second after the
  // signal (keep-alive threads block until their peer closes), it exits without waiting more.
  std::thread waiter([&svr] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    sigwait(&set, &sig);
    StopHttpServer(svr);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    ::_exit(0);
  });
  waiter.detach();
  const bool ok = svr.listen_after_bind();
  return ok ? Status::Ok() : Unavailable("replica server stopped with an error");
}

}  // namespace overcast::serve
