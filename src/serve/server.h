// The serving front end: HTTP in, routed to replica processes, each in a CPU cgroup whose quota a
// controller (Captain + Tower, HPA-style, or static) runs; Prometheus metrics out.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "serve/access_log.h"
#include "serve/controller.h"

namespace overcast::serve {

struct ServeOptions {
  std::vector<std::string> model_paths;
  // A directory of model files, served beside model_paths: every regular file in it except
  // hidden ones and the temporary files of an atomic write (".tmp" in the name). It is listed
  // again at each reload, so a file added there is served and one removed is no longer.
  std::string model_dir;
  std::string host = "127.0.0.1";
  int port = 8080;          // 0: any free port (see port(), port_file)
  std::string port_file;    // written once listening
  int replicas = 2;
  // Replica-count scaling, beside each replica's quota: 0 keeps `replicas` running. Above
  // `replicas`, the front end starts another replica (up to max_replicas) when the running
  // ones use more than scale_utilization of their capacity together (each: max_cores, or
  // static_cores under --controller static), measured every scale_interval_s, and stops the
  // newest when fewer would do for a whole scale_down_window_s (HPA's stabilisation window).
  // `replicas` is the least ever running.
  int max_replicas = 0;
  double scale_utilization = 0.7;
  double scale_interval_s = 5;
  double scale_down_window_s = 60;
  // Model name -> the replicas (0-based) that load and serve it; a model not named here is
  // on every replica. Each replica must be left at least one model.
  std::map<std::string, std::vector<int>> placement;
  double slo_p99_ms = 50;
  // autothrottle (Captain per replica + Tower), captain (fixed target), hpa, static.
  std::string controller = "autothrottle";
  double initial_cores = 1.0;        // each replica's first limit
  double max_cores = 0;              // per replica; 0 = the machine's cores
  double static_cores = 1.0;         // --controller static
  CaptainOptions captain;            // initial/min/max cores are filled from the above
  HpaOptions hpa;
  TowerOptions tower;
  double tower_interval_s = 60;
  // Under autothrottle: "placement", a Tower per service group (ServiceGroups: the replicas
  // --place gives different models differ in load, so each group learns its own throttle
  // target from its own request rate and p99), or "one", a Tower for all replicas. Without
  // --place there is one group either way. With several groups each Tower keeps its state in
  // tower.state_path with ".GROUP" before the extension (TowerStatePath).
  std::string tower_groups = "placement";
  double sample_interval_s = 0.1;
  std::string cgroup = "auto";  // auto|v1|v2|none
  // CFS period of the replicas' quota. A replica that runs out of quota waits for the next
  // period, so a period longer than the SLO turns any throttling into an SLO miss. -1: half the
  // SLO, within [10 ms, 100 ms] (Autothrottle's fixed 100 ms suits SLOs of hundreds of ms).
  int cfs_period_us = -1;
  // Longest CFS period: a limit below the kernel's 1 ms of quota per cfs_period_us stretches
  // its period up to this (see QuotaFor), so the floor of every controller is 1 ms over this
  // rather than over the base period. -1: twice the base period, at most the SLO, at least
  // the base period (with the default base period: the SLO, within [10 ms, 200 ms]).
  int cfs_period_max_us = -1;
  // CFS burst per replica as a fraction of its quota (CpuCgroup::set_burst_fraction), for every
  // controller alike: 0 turns it off, 1 (the kernel's cap) lets a replica spend one period's
  // unused quota in a later period.
  double cfs_burst = 1.0;
  size_t max_batch_rows = 32;
  int max_wait_us = 0;  // wait for a fuller batch (0: what queued meanwhile; -1: min(1 ms, SLO/20))
  size_t max_inflight = 512;     // front-end requests in flight beyond which it answers 503
  size_t max_body_bytes = 1 << 20;
  int threads = 256;             // front-end connection threads started up front
  // Connections served at once, a thread each: the pool grows to this when every thread holds a
  // connection (ConfigureHttpServer); past it, a connection waiting on its client gives its
  // thread up (http_server.h).
  int max_connections = 1024;
  // Idle keep-alive connections kept without a thread (parked, after a second idle on their
  // thread); past it, the one whose keep-alive ends first closes. Fewer when the open-files
  // limit cannot hold them beside --max-connections.
  int max_idle_connections = 16384;  // kMaxParkedConnections (http_server.h)
  int replica_connections = 32;  // keep-alive connections per replica (< replica threads)
  // A replica with requests in flight that answers none for this long is taken for stuck and
  // killed (then restarted): its requests fail over at once rather than after the 30 s read
  // timeout. 0: never. Far above any answer time: a batch takes milliseconds even at the floor.
  double replica_hang_s = 3;
  // Pooled connections to a replica left unused this long are closed, down to the
  // replica_warm_connections most recently used (each open one costs the replica CPU).
  double replica_idle_close_s = 2;
  size_t replica_warm_connections = 2;
  std::string replica_bin;       // default: /proc/self/exe
  // A shared secret ("" = none): every endpoint but the probes (GET /healthz, /v2/health/*) needs
  // `Authorization: Bearer SECRET` (else 401). Required to listen beyond loopback.
  std::string secret;
  // PEM certificate (chain) and private key: the front end then speaks HTTPS only, so the bearer
  // token and the rows travel encrypted. Both or neither. The replicas stay on loopback HTTP.
  std::string tls_cert, tls_key;
  // The access log (path "": none): a JSON line per request the front end answers.
  AccessLogOptions access_log;
};

struct ServerTotals {
  double allocated_core_seconds = 0;  // integral of the replicas' limits over time
  double used_core_seconds = 0;       // CPU the replicas used (from the cgroups)
  uint64_t requests = 0, ok = 0, client_errors = 0, rejected = 0, server_errors = 0;
  uint64_t replica_restarts = 0;
  uint64_t replica_hangs = 0;  // replicas killed for answering nothing (--replica-hang-s)
  uint64_t scale_outs = 0, scale_ins = 0;  // replicas started and stopped by the count rule
  // Summed over the replicas: CFS periods, those throttled, and keep-alive connections opened.
  uint64_t cfs_periods = 0, cfs_throttled_periods = 0, replica_connects = 0;
  // Reloads of the model files: done, refused (a file did not load), failed (a replica did not
  // start on the new files).
  uint64_t reloads = 0, reloads_refused = 0, reloads_failed = 0;
};

// A service group: replicas and the models they serve, closed under sharing: a model on two
// replicas puts both in one group, and a replica serving two models puts both in one group. A
// request is answered within its model's group, so the group's request rate and p99 are its
// own, and its replicas' throttle target is chosen from them alone.
struct ServiceGroup {
  std::string name;                 // "all" when there is one group, else its models joined by '+'
  std::vector<std::string> models;  // in name order
  std::vector<int> replicas;        // rising
};

// The service groups of `replicas` replicas serving `models`, where hosts(r, model) says
// whether replica r serves model; in order of their lowest replica. A model no replica serves
// is in no group.
std::vector<ServiceGroup> ServiceGroups(
    int replicas, const std::vector<std::string>& models,
    const std::function<bool(int, const std::string&)>& hosts);

// Where group `name`'s Tower keeps its state: `path` itself when there is one group, else
// ".NAME" before path's extension ("tower.json" -> "tower.a+b.json"); "" stays "".
std::string TowerStatePath(const std::string& path, const std::string& name, size_t groups);

// Start() then serve until Stop(); all public methods are thread-safe.
class Server {
 public:
  explicit Server(ServeOptions o);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Status Start();
  void Stop();
  // Blocks until Stop() is called from another thread (or a signal handler thread).
  void Wait();
  // Re-reads the model files (same paths) and moves every replica onto them, one at a time:
  // a new process starts beside the old one, takes the slot's new requests, and the old one
  // stops once its requests in flight are answered. Files that do not load are refused before
  // any replica is touched, and the old models go on serving. Reload() blocks until done and
  // returns its outcome; RequestReload() only asks (for a signal handler thread).
  Status Reload();
  void RequestReload();
  int port() const;
  // The front end's metrics (Prometheus text). GET /metrics adds each replica's batching
  // counters, asked of the replicas then.
  std::string Metrics() const;
  ServerTotals totals() const;
  pid_t replica_pid(int i) const;  // -1 while replica i is down or not running (scaled in)
  int replica_port(int i) const;   // its loopback port (0 while it has none)
  int replica_count() const;       // slots: max_replicas when it scales, else replicas
  int active_replicas() const;     // those running or starting now

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace overcast::serve
