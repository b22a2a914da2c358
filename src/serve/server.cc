#include "serve/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/log.h"
#include "common/version.h"
#include "net/auth.h"
#include "serve/api.h"
#include "serve/batcher.h"
#include "serve/http_server.h"
#include "serve/predictor.h"
#include "serve/replica.h"

namespace overcast::serve {
namespace {

using Clock = std::chrono::steady_clock;

// One metric family in Prometheus text: its HELP (when given) and TYPE lines, then the sample
// of each item that has one (`value` returns a number, or an empty optional), all together: the
// format wants a family's samples in one group, not a replica's families one after another.
template <class T, class Value>
void AppendFamily(std::string& s, std::string_view name, std::string_view type,
                  std::string_view help, const std::vector<std::pair<std::string, T>>& items,
                  Value value) {
  auto out = std::back_inserter(s);
  if (!help.empty()) fmt::format_to(out, "# HELP {} {}\n", name, help);
  fmt::format_to(out, "# TYPE {} {}\n", name, type);
  for (const auto& [labels, item] : items) {
    const std::optional<double> v = value(item);
    if (v) fmt::format_to(out, "{}{{{}}} {}\n", name, labels, *v);
  }
}

double Now() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

// V2's binary tensor data extension: the length of the JSON that begins a body whose tensors'
// bytes follow it, in a request and in an answer.
constexpr char kInferenceHeaderLength[] = "Inference-Header-Content-Length";

// Latency histogram buckets (seconds), Prometheus-style cumulative on output.
constexpr double kBuckets[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                               0.1,    0.2,   0.5,   1.0,   2.0,  5.0};
constexpr size_t kNumBuckets = sizeof(kBuckets) / sizeof(kBuckets[0]);

struct ModelStats {
  std::map<int, uint64_t> codes;
  uint64_t hist[kNumBuckets + 1] = {};
  double sum_s = 0;
  uint64_t count = 0;
};

// What the front end routes by: the models the replicas serve and the INFaaS-style groups of
// variants. Immutable once built; a reload builds a new one and swaps the pointer.
struct Catalog {
  std::map<std::string, ModelInfo> models;
  // Each model's outputs as V2 metadata lists them (V2OutputsOf), made once per load: every V2
  // infer request checks the outputs it asks for against them and types its answer by them.
  std::map<std::string, nlohmann::ordered_json> v2_outputs;
  std::map<std::string, std::vector<std::string>> groups;  // group -> variant names
  std::vector<std::string> file_models;  // the model each file holds, in the files' order
};

// Copies the model files into the new directory `dir`, as "<i>-<file name>", and returns the
// copies' paths in order. Replicas read the copies: a file rewritten or removed after a reload
// changes nothing a replica started later (a restart after a crash) serves.
Result<std::vector<std::string>> CopyModelFiles(const std::vector<std::string>& files,
                                                const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError("create " + dir + ": " + ec.message());
  std::vector<std::string> copies;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string to =
        dir + "/" + std::to_string(i) + "-" + fs::path(files[i]).filename().string();
    if (!fs::copy_file(files[i], to, fs::copy_options::overwrite_existing, ec)) {
      if (!fs::exists(files[i])) {
        return InvalidArgument("model file " + files[i] + " does not exist");  // exit 2
      }
      return IoError(fmt::format("copy model file {} to {}: {}", files[i], to, ec.message()));
    }
    copies.push_back(to);
  }
  return copies;
}

// Reads and checks every model file at `paths` (the copies replicas will read), naming each
// by its `shown` path (the file the user gave) in errors.
Result<std::shared_ptr<const Catalog>> LoadCatalog(const std::vector<std::string>& paths,
                                                   const std::vector<std::string>& shown) {
  auto c = std::make_shared<Catalog>();
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& p = shown[i];
    auto loaded = LoadModel(paths[i]);
    if (!loaded.ok()) {
      std::string m = loaded.status().message();
      for (size_t at; (at = m.find(paths[i])) != std::string::npos;) {
        m.replace(at, paths[i].size(), p);
      }
      return Status(loaded.status().code(), m);
    }
    auto model = std::move(loaded).value();
    const ModelInfo& info = model->info();
    for (char ch : info.name) {
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') {
        return InvalidArgument("model " + p + ": name '" + info.name +
                               "' may hold only letters, digits, '-', '_' and '.'");
      }
    }
    if (c->models.count(info.name)) return InvalidArgument("two models named '" + info.name + "'");
    c->models[info.name] = info;
    c->v2_outputs[info.name] = V2OutputsOf(info);
    c->file_models.push_back(info.name);
    c->groups[info.group.empty() ? info.name : info.group].push_back(info.name);
  }
  return std::shared_ptr<const Catalog>(std::move(c));
}

// The files to serve: `paths`, then those of `dir` (ServeOptions::model_dir) in name order.
Result<std::vector<std::string>> ModelFiles(const std::vector<std::string>& paths,
                                            const std::string& dir) {
  std::vector<std::string> files = paths;
  if (dir.empty()) return files;
  std::error_code ec;
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.starts_with(".") || name.find(".tmp") != std::string::npos) {
      continue;
    }
    found.push_back(e.path().string());
  }
  if (ec) return InvalidArgument("--model-dir " + dir + ": " + ec.message());
  if (found.empty()) return InvalidArgument("--model-dir " + dir + " holds no model file");
  std::sort(found.begin(), found.end());
  files.insert(files.end(), found.begin(), found.end());
  return files;
}

// SIGTERM, then SIGKILL if `pid` has not exited within 3 s; reaps it either way.
void StopProcess(pid_t pid) {
  ::kill(pid, SIGTERM);
  int st;
  const double until = Now() + 3;
  while (::waitpid(pid, &st, WNOHANG) == 0) {
    if (Now() > until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

double Percentile(std::vector<float>& v, double q) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(std::ceil(q * v.size())) - 1;
  k = std::min(k, v.size() - 1);
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

}  // namespace

std::vector<ServiceGroup> ServiceGroups(
    int replicas, const std::vector<std::string>& models,
    const std::function<bool(int, const std::string&)>& hosts) {
  // Union-find over replicas: the replicas serving one model are one group.
  std::vector<int> parent(static_cast<size_t>(std::max(0, replicas)));
  for (size_t r = 0; r < parent.size(); ++r) parent[r] = static_cast<int>(r);
  auto root = [&](int r) {
    while (parent[r] != r) r = parent[r] = parent[parent[r]];
    return r;
  };
  std::vector<std::string> sorted = models;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (const std::string& m : sorted) {
    int first = -1;
    for (int r = 0; r < replicas; ++r) {
      if (!hosts(r, m)) continue;
      if (first < 0) first = r;
      else parent[root(r)] = root(first);
    }
  }
  std::vector<ServiceGroup> groups;
  std::map<int, size_t> of_root;  // a root -> its group
  for (int r = 0; r < replicas; ++r) {
    auto [it, fresh] = of_root.emplace(root(r), groups.size());
    if (fresh) groups.emplace_back();
    groups[it->second].replicas.push_back(r);
  }
  for (const std::string& m : sorted) {
    for (int r = 0; r < replicas; ++r) {
      if (!hosts(r, m)) continue;
      groups[of_root.at(root(r))].models.push_back(m);
      break;
    }
  }
  // A replica serving nothing forms no group.
  std::erase_if(groups, [](const ServiceGroup& g) { return g.models.empty(); });
  for (ServiceGroup& g : groups) {
    g.name = groups.size() == 1 ? "all" : fmt::format("{}", fmt::join(g.models, "+"));
  }
  return groups;
}

std::string TowerStatePath(const std::string& path, const std::string& name, size_t groups) {
  if (path.empty() || groups <= 1) return path;
  const std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + "." + name + p.extension().string())).string();
}

struct Server::Impl {
  struct Slot {
    int index = 0;
    std::string cg_name;
    std::unique_ptr<CpuCgroup> cg;
    std::unique_ptr<QuotaController> ctl;
    std::string port_file;
    // Guarded by mu:
    mutable std::mutex mu;
    std::condition_variable conn_cv;
    pid_t pid = -1;
    int port = 0;
    uint64_t generation = 0;
    // Requests in flight per generation (one generation per replica process): a reload waits
    // for the replaced process's count to reach zero before stopping it.
    std::map<uint64_t, int> gen_inflight;
    // Pooled keep-alive connections, most recently used last, each with when it went idle.
    struct IdleConn {
      std::unique_ptr<httplib::Client> cli;
      double since = 0;
    };
    std::vector<IdleConn> idle;
    int open_conns = 0;
    // Lock-free for routing and metrics:
    std::atomic<bool> active{false};  // to be running: not scaled in (ServeOptions::max_replicas)
    std::atomic<bool> up{false};
    std::atomic<int> inflight{0};
    // When the replica last answered a request, or got one with none in flight (seconds, Now()):
    // requests in flight and no answer for --replica-hang-s mean the process is stuck.
    std::atomic<double> last_progress{0};
    std::atomic<uint64_t> restarts{0};
    std::atomic<uint64_t> connects{0};  // pooled connections opened
    std::atomic<double> limit{0};
    // Control thread only (copied into metrics under ctl_mu):
    CpuStat stat;
    double last_limit_set = -1;
    int group = -1;  // its service group's index in `groups` (under ctl_mu; -1: none)
    double rule_used = 0;  // core-seconds used since the count rule last decided
    // Whether the replica was serving at the last sample: the CPU of a sample that began while
    // it was starting (its models loading) is its own start-up, not load for the count rule.
    bool up_at_last_sample = false;
  };

  // The replica-count rule of one service group (ServiceGroups by placement, whatever
  // --tower-groups says: a replica started for one group's load does nothing for another's).
  // Under ctl_mu: the control thread decides `want`, the supervisor starts and stops slots.
  struct CountGroup {
    std::string name;
    std::vector<int> slots;  // rising
    int least = 1;           // its slots among the first o.replicas, which always run
    int want = 1;
    double last_change = 0;
    std::deque<std::pair<double, int>> wanted;  // recent decisions: (time, replicas)
  };

  // A service group's Tower and what it last decided (ServeOptions::tower_groups).
  struct GroupControl {
    ServiceGroup g;
    std::unique_ptr<Tower> tower;
    size_t action = 0;
    double p99_ms = 0, rate = 0, cost = 0;
    double alloc = 0;  // control thread: core-seconds allocated since the last decision
    double target() const { return tower->options().targets[action]; }
  };

  ServeOptions o;
  // The model files replicas start from: o.model_paths and o.model_dir's files as listed at
  // start or at the last reload (the supervisor thread's, which starts replicas and reloads).
  std::vector<std::string> model_files;  // the copies replicas read (PrepareModels)
  std::vector<std::string> model_file_models;  // the model in each of model_files
  std::vector<std::string> model_dirs;   // the directories of copies replicas may still read
  int model_copies = 0;                  // sets of copies made
  mutable std::mutex catalog_mu;  // guards the pointer; the Catalog itself is immutable
  std::shared_ptr<const Catalog> catalog;
  std::string tmpdir;
  // The bearer token every replica of this server requires (random per server; ReplicaOptions).
  std::string replica_token;
  std::vector<std::unique_ptr<Slot>> slots;  // max(replicas, max_replicas); the first run
  std::vector<CountGroup> count_groups;  // under ctl_mu
  double rule_span = 0;  // control thread: seconds since the count rule last decided
  int SlotCount() const { return std::max(o.replicas, o.max_replicas); }
  int ActiveCount() const {
    int n = 0;
    for (auto& sp : slots) n += sp->active ? 1 : 0;
    return n;
  }
  // Replicas the count rule wants running, over its groups.
  int WantedReplicas() const {
    std::lock_guard<std::mutex> cl(ctl_mu);
    int n = 0;
    for (const CountGroup& cg : count_groups) n += cg.want;
    return n;
  }
  // Of the slots numbered in `which`, those running or starting (not scaled in).
  int ActiveAmong(const std::vector<int>& which) const {
    int n = 0;
    for (int r : which) n += slots[r]->active ? 1 : 0;
    return n;
  }
  // A replica's controller as --controller says, starting from its initial limit.
  std::unique_ptr<QuotaController> NewController() const {
    if (o.controller == "static") return std::make_unique<StaticController>(o.static_cores);
    if (o.controller == "hpa") return std::make_unique<HpaController>(o.hpa);
    return std::make_unique<Captain>(o.captain);
  }
  std::unique_ptr<httplib::Server> http;  // an HttpsServer with --tls-cert/--tls-key
  int bound_port = 0;
  std::thread http_thread, supervisor, control;
  std::atomic<bool> stopping{false};
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopped = false;
  std::atomic<size_t> inflight{0};
  std::atomic<uint64_t> rr{0};
  std::atomic<uint64_t> unauthorized{0};  // requests refused for a missing or wrong secret
  std::unique_ptr<AccessLog> access_log;   // --access-log; set before listening

  // Reloads, run by the supervisor thread (which owns starting replicas); guarded by reload_mu.
  std::mutex reload_mu;
  std::condition_variable reload_cv;
  uint64_t reloads_asked = 0, reloads_begun = 0, reloads_ended = 0;
  Status last_reload;
  std::atomic<uint64_t> reloads_ok{0}, reloads_refused{0}, reloads_failed{0};

  mutable std::mutex metrics_mu;  // guards stats, ewma_ms, windows, tot
  std::map<std::string, ModelStats> stats;
  std::map<std::string, double> ewma_ms;  // running latency of successful requests per model
  // Per model, since the Towers' last decision: latencies (ms) and the count of the requests the
  // SLO is about (answered or refused).
  struct Window {
    std::vector<float> ms;
    uint64_t requests = 0;
  };
  std::map<std::string, Window> windows;
  ServerTotals tot;

  mutable std::mutex ctl_mu;  // guards the controllers' state as seen by metrics, groups
  std::vector<GroupControl> groups;  // under autothrottle: one per service group

  explicit Impl(ServeOptions opts) : o(std::move(opts)) {}

  std::shared_ptr<const Catalog> Models() const {
    std::lock_guard<std::mutex> l(catalog_mu);
    return catalog;
  }

  std::string ReplicaPath(const Slot&) const { return o.replica_bin; }

  std::vector<std::string> ReplicaArgs(const Slot& s) const {
    std::vector<std::string> a = {o.replica_bin, "serve-replica", "--port-file", s.port_file,
                                  "--max-batch", std::to_string(o.max_batch_rows),
                                  "--max-wait-us", std::to_string(o.max_wait_us),
                                  "--threads", std::to_string(o.replica_connections + 8),
                                  "--max-body-bytes", std::to_string(o.max_body_bytes)};
    for (size_t i = 0; i < model_files.size(); ++i) {
      if (!Hosts(s.index, model_file_models[i])) continue;
      a.push_back("--model");
      a.push_back(model_files[i]);
    }
    return a;
  }

  std::unique_ptr<httplib::Client> NewClient(int port) const {
    auto cli = std::make_unique<httplib::Client>("127.0.0.1", port);
    cli->set_bearer_token_auth(replica_token.c_str());
    cli->set_keep_alive(true);
    cli->set_tcp_nodelay(true);
    cli->set_connection_timeout(1, 0);
    cli->set_read_timeout(30, 0);
    cli->set_write_timeout(5, 0);
    return cli;
  }

  // The batch-size histogram of each replica's models from their /stats ("batch_sizes": counts
  // per bucket of kBatchRowsBounds, not cumulative); a model without one is left out.
  using Labelled = std::vector<std::pair<std::string, const nlohmann::json*>>;
  static void AppendBatchSizes(std::string& s, const Labelled& ms) {
    constexpr std::string_view kName = "overcast_serve_replica_batch_size_rows";
    auto out = std::back_inserter(s);
    fmt::format_to(out,
                   "# HELP {} Batches predicted, by their rows (--max-batch bounds them).\n"
                   "# TYPE {} histogram\n",
                   kName, kName);
    for (const auto& [labels, j] : ms) {
      const auto it = j->find("batch_sizes");
      const auto counts = [](const nlohmann::json& a) {
        const auto count = [](const nlohmann::json& n) { return n.is_number_unsigned(); };
        return a.is_array() && a.size() == kBatchRowsBounds.size() + 1 &&
               std::all_of(a.begin(), a.end(), count);
      };
      if (it == j->end() || !counts(*it)) continue;
      uint64_t below = 0;
      for (size_t b = 0; b <= kBatchRowsBounds.size(); ++b) {
        below += (*it)[b].get<uint64_t>();
        const std::string le =
            b < kBatchRowsBounds.size() ? std::to_string(kBatchRowsBounds[b]) : "+Inf";
        fmt::format_to(out, "{}_bucket{{{},le=\"{}\"}} {}\n", kName, labels, le, below);
      }
      const auto rows = j->find("rows");
      fmt::format_to(out, "{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", kName, labels,
                     rows != j->end() && rows->is_number() ? rows->get<double>() : 0.0, kName,
                     labels, below);
    }
  }

  // Each running replica's batching counters (its GET /stats), asked when /metrics is, of all
  // replicas at once with short timeouts: a replica that does not answer (hung, restarting)
  // leaves only its series out (overcast_serve_replica_stats_up 0), and the scrape waits for
  // the slowest replica, not for the sum of them. Takes no lock while it waits on a replica.
  std::string ReplicaBatchMetrics() const {
    struct Scraped {
      std::string labels;
      int port = 0;          // 0: not up, not asked
      nlohmann::json stats;  // model -> counters; null when the replica did not answer
    };
    std::vector<Scraped> got;
    for (const auto& sp : slots) {
      if (!sp->active) continue;
      Scraped sc{fmt::format("replica=\"{}\"", sp->index), 0, nullptr};
      {
        std::lock_guard<std::mutex> l(sp->mu);
        sc.port = sp->up ? sp->port : 0;
      }
      got.push_back(std::move(sc));
    }
    std::vector<std::thread> asks;
    for (Scraped& sc : got) {
      if (sc.port <= 0) continue;
      asks.emplace_back([this, &sc] {
        auto cli = NewClient(sc.port);  // its token; not kept alive, with short timeouts
        cli->set_keep_alive(false);
        cli->set_connection_timeout(0, 250'000);
        cli->set_read_timeout(0, 500'000);
        auto res = cli->Get("/stats");
        if (res && res->status == 200) {
          auto j = nlohmann::json::parse(res->body, nullptr, false);
          if (j.is_object()) sc.stats = std::move(j);
        }
      });
    }
    for (std::thread& t : asks) t.join();
    using Json = const nlohmann::json*;
    std::vector<std::pair<std::string, Json>> answered, models;
    for (const Scraped& sc : got) {
      answered.emplace_back(sc.labels, &sc.stats);
      if (!sc.stats.is_object()) continue;
      for (const auto& [name, st] : sc.stats.items()) {
        if (!st.is_object()) continue;
        models.emplace_back(fmt::format("{},model=\"{}\"", sc.labels, name), &st);
      }
    }
    std::string s;
    AppendFamily(s, "overcast_serve_replica_stats_up", "gauge",
                 "1 when the replica answered this scrape's ask for its batching counters.",
                 answered, [](Json j) { return j->is_object() ? 1 : 0; });
    auto counter = [&](std::string_view name, const std::string& key, std::string_view help) {
      AppendFamily(s, name, "counter", help, models, [&key](Json j) -> std::optional<double> {
        const auto it = j->find(key);
        if (it == j->end() || !it->is_number()) return std::nullopt;
        return it->get<double>();
      });
    };
    counter("overcast_serve_replica_requests_total", "requests",
            "Predict requests each replica's batcher answered, by model (since it started).");
    counter("overcast_serve_replica_batches_total", "batches",
            "Batches predicted, one model call each.");
    counter("overcast_serve_replica_batch_rows_total", "rows",
            "Rows predicted in those batches: rows over batches is the mean batch.");
    counter("overcast_serve_replica_queue_rejected_total", "rejected",
            "Requests refused (503) because the replica's queue was full.");
    counter("overcast_serve_replica_queue_seconds_total", "queue_seconds",
            "Summed over requests: from reaching the batcher to the start of their batch.");
    counter("overcast_serve_replica_compute_seconds_total", "compute_seconds",
            "Summed over batches: predicting them.");
    AppendBatchSizes(s, models);
    return s;
  }

  // Forks and execs one replica, joined to its cgroup before exec, then waits for its port.
  Status Spawn(Slot& s) {
    std::filesystem::remove(s.port_file);
    std::vector<std::string> args = ReplicaArgs(s);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The environment, plus the replica's token (ReplicaOptions::token), built before fork.
    const std::string token_var = std::string(kReplicaTokenEnv) + "=";
    std::vector<std::string> env_vars;
    for (char** e = environ; *e; ++e) {
      if (!std::string_view(*e).starts_with(token_var)) env_vars.emplace_back(*e);
    }
    env_vars.push_back(token_var + replica_token);
    std::vector<char*> envp;
    for (auto& v : env_vars) envp.push_back(v.data());
    envp.push_back(nullptr);
    std::vector<std::string> procs = s.cg->procs_files();
    const std::string log_path = tmpdir + "/replica-" + std::to_string(s.index) + ".log";
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return ErrnoStatus("fork replica", errno);
    if (pid == 0) {
      // Child: only async-signal-safe calls until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      char buf[32];
      int n = 0;
      for (pid_t p = ::getpid(); p > 0; p /= 10) buf[n++] = char('0' + p % 10);
      for (int i = 0; i < n / 2; ++i) std::swap(buf[i], buf[n - 1 - i]);
      for (const auto& f : procs) {
        int fd = ::open(f.c_str(), O_WRONLY);
        if (fd >= 0) {
          (void)!::write(fd, buf, n);
          ::close(fd);
        }
      }
      int lfd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (lfd >= 0) {
        ::dup2(lfd, 2);
        ::dup2(lfd, 1);
      }
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    if (procs.empty()) (void)s.cg->AddProcess(pid);  // the /proc-only kind tracks pids itself
    {
      std::lock_guard<std::mutex> l(s.mu);
      s.pid = pid;
    }
    const double until = Now() + 15;
    while (Now() < until && !stopping) {
      std::ifstream f(s.port_file);
      int port = 0;
      if (f >> port && port > 0) {
        // Open a share of the pool now, one at a time: replicas listen with a small backlog,
        // and a burst of connects under load would drop SYNs (a 1 s retransmit each). Only a
        // share: each idle keep-alive connection holds one of the replica's threads (asleep in
        // poll, no CPU); TrimIdle closes those left unused.
        std::vector<Slot::IdleConn> warm;
        for (int k = 0; k < std::min(8, o.replica_connections); ++k) {
          auto cli = NewClient(port);
          if (!cli->Get("/healthz")) break;
          warm.push_back({std::move(cli), Now()});
        }
        std::lock_guard<std::mutex> l(s.mu);
        s.port = port;
        ++s.generation;
        s.idle = std::move(warm);
        s.open_conns = static_cast<int>(s.idle.size());
        s.up = true;
        s.conn_cv.notify_all();
        return Status::Ok();
      }
      int st;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        std::lock_guard<std::mutex> l(s.mu);
        s.pid = -1;
        std::string log;
        (void)ReadFile(log_path, &log);
        if (log.size() > 2000) log = log.substr(log.size() - 2000);
        return Unavailable(fmt::format("replica {} exited during start-up: {}", s.index, log));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return Unavailable(fmt::format("replica {} did not start within 15 s (log: {})", s.index, log_path));
  }

  void SupervisorLoop() {
    while (!stopping) {
      bool reload = false;
      {
        std::lock_guard<std::mutex> l(reload_mu);
        if (reloads_begun < reloads_asked) {
          reloads_begun = reloads_asked;  // the asks so far are answered by this one reload
          reload = true;
        }
      }
      if (reload) {
        Status r = RunReload();
        std::lock_guard<std::mutex> l(reload_mu);
        last_reload = r;
        reloads_ended = reloads_begun;
        reload_cv.notify_all();
      }
      Rescale();
      KillHung();
      RestartExited();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Starts or stops one replica when the count rule (ControlLoop) wants another count in a
  // service group: the group's lowest slot not running starts; its highest running one is taken
  // out of routing, drained of its requests in flight, then stopped. Supervisor thread only.
  void Rescale() {
    std::vector<std::pair<std::vector<int>, int>> plan;  // each group's slots and wanted count
    {
      std::lock_guard<std::mutex> cl(ctl_mu);
      for (const CountGroup& cg : count_groups) plan.emplace_back(cg.slots, cg.want);
    }
    for (const auto& [members, want] : plan) {
      const int n = ActiveAmong(members);
      if (want > n) {
        for (int r : members) {
          if (!slots[r]->active) return StartSlot(*slots[r]);
        }
      } else if (want < n) {
        for (auto it = members.rbegin(); it != members.rend(); ++it) {
          if (slots[*it]->active) return StopSlot(*slots[*it]);
        }
      }
    }
  }

  // A slot the count rule starts: a fresh controller from the initial limit, its group's
  // throttle target, then its process.
  void StartSlot(Slot& s) {
    {
      std::lock_guard<std::mutex> cl(ctl_mu);  // a fresh controller, from the initial limit
      s.ctl = NewController();
      if (s.group >= 0) s.ctl->set_target(groups[s.group].target());
      s.limit = s.ctl->limit();
      if (Status w = s.cg->SetLimit(s.limit); !w.ok()) {
        spdlog::warn("replica {}: set limit: {}", s.index, w.message());
      }
      s.last_limit_set = s.limit;
    }
    s.active = true;
    {
      std::lock_guard<std::mutex> l(metrics_mu);
      ++tot.scale_outs;
    }
    spdlog::info("scaling out to {} replicas: starting replica {}", ActiveCount(), s.index);
    Status r = Spawn(s);  // a failure is retried by RestartExited
    if (!r.ok()) spdlog::error("replica {} did not start: {}", s.index, r.message());
  }

  // A slot the count rule stops: out of routing, drained of its requests in flight, stopped.
  void StopSlot(Slot& s) {
    s.active = false;  // no new requests from here on
    pid_t pid;
    uint64_t gen;
    {
      std::lock_guard<std::mutex> l(s.mu);
      pid = s.pid;
      gen = s.generation;
    }
    spdlog::info("scaling in to {} replicas: stopping replica {}", ActiveCount(), s.index);
    WaitForGeneration(s, gen);
    MarkDown(s);
    if (pid > 0) StopProcess(pid);
    {
      std::lock_guard<std::mutex> l(metrics_mu);
      ++tot.scale_ins;
    }
  }

  // The slot's process is gone (or about to be stopped): out of routing, its pool emptied.
  void MarkDown(Slot& s) {
    s.up = false;
    std::lock_guard<std::mutex> l(s.mu);
    s.pid = -1;
    s.idle.clear();
    s.open_conns = 0;
  }

  // Waits until slot `s` holds no request of process generation `gen`, at most past the read
  // timeout of a request, restarting meanwhile any replica that exits.
  void WaitForGeneration(Slot& s, uint64_t gen) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(35);
    for (;;) {
      {
        std::unique_lock<std::mutex> l(s.mu);
        if (s.conn_cv.wait_for(l, std::chrono::milliseconds(20),
                               [&] { return stopping || !s.gen_inflight.count(gen); })) {
          return;
        }
      }
      if (std::chrono::steady_clock::now() >= give_up) return;
      RestartExited();
    }
  }

  // A replica with requests in flight that has answered none for --replica-hang-s (stopped,
  // deadlocked, swapping) is killed: its requests fail over to another replica at once (Forward's
  // retry) instead of waiting out the 30 s read timeout, and RestartExited starts it again.
  // Supervisor thread only, never during a reload's roll.
  void KillHung() {
    if (!(o.replica_hang_s > 0)) return;
    const double now = Now();
    for (auto& sp : slots) {
      Slot& s = *sp;
      if (!s.active || !s.up) continue;
      const int in_flight = s.inflight.load();
      const double quiet = now - s.last_progress.load();
      if (in_flight <= 0 || quiet < o.replica_hang_s) continue;
      pid_t pid;
      {
        std::lock_guard<std::mutex> l(s.mu);
        pid = s.pid;
      }
      if (pid <= 0) continue;
      spdlog::warn("replica {} (pid {}) answered none of its {} request(s) in flight for {:.1f} s "
                   "(--replica-hang-s {}); killing it",
                   s.index, pid, in_flight, quiet, o.replica_hang_s);
      {
        std::lock_guard<std::mutex> l(metrics_mu);
        ++tot.replica_hangs;
      }
      s.last_progress = now;  // one kill per hang: RestartExited reaps it next
      ::kill(pid, SIGKILL);
    }
  }

  // Restarts every replica whose process has exited, and retries one that failed to start.
  // Supervisor thread only (a reload's roll calls it while it waits, so that a crash then is
  // not left down until the roll is done).
  void RestartExited() {
    for (auto& sp : slots) {
      if (stopping) return;
      Slot& s = *sp;
      if (!s.active) continue;
      pid_t pid;
      {
        std::lock_guard<std::mutex> l(s.mu);
        pid = s.pid;
      }
      int st = 0;
      if (pid > 0 && ::waitpid(pid, &st, WNOHANG) == pid) {
        MarkDown(s);
        if (stopping) return;
        spdlog::warn("replica {} (pid {}) {}; restarting", s.index, pid,
                     WIFSIGNALED(st) ? fmt::format("killed by signal {}", WTERMSIG(st))
                                     : fmt::format("exited with {}", WEXITSTATUS(st)));
        ++s.restarts;
        {
          std::lock_guard<std::mutex> l(metrics_mu);
          ++tot.replica_restarts;
        }
        Status r = Spawn(s);
        if (!r.ok()) spdlog::error("restart of replica {} failed: {}", s.index, r.message());
      } else if (pid <= 0) {
        Status r = Spawn(s);  // a failed restart is retried here
        if (!r.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
  }

  // Starts a replica on the model files as they are now beside the slot's running one, routes
  // the slot's new requests to it, waits for the requests still on the old process, then stops
  // that one: the slot serves throughout, so even one replica reloads without a refused request.
  Status RollSlot(Slot& s) {
    pid_t old_pid;
    uint64_t old_gen;
    {
      std::lock_guard<std::mutex> l(s.mu);
      old_pid = s.pid;
      old_gen = s.generation;
    }
    if (old_pid <= 0) return Status::Ok();  // down: the supervisor starts it on the new files
    // The old process is out of s.pid while the new one starts: only this thread waits for it.
    Status started = Spawn(s);
    if (!started.ok()) {
      pid_t failed;
      {
        std::lock_guard<std::mutex> l(s.mu);
        failed = s.pid;
        s.pid = old_pid;  // s.port and the pool still point at the old process
      }
      if (failed > 0 && failed != old_pid) StopProcess(failed);
      return started;
    }
    WaitForGeneration(s, old_gen);
    StopProcess(old_pid);
    return Status::Ok();
  }

  // Lists the model files (--model, --model-dir), copies them into a new directory under
  // tmpdir and checks the copies: the catalog they make, and in `copies` the files replicas
  // are to read. Nothing is left behind when a file does not load.
  Result<std::shared_ptr<const Catalog>> PrepareModels(std::vector<std::string>* copies) {
    OC_ASSIGN_OR_RETURN(auto files, ModelFiles(o.model_paths, o.model_dir));
    const std::string dir = tmpdir + "/models-" + std::to_string(model_copies++);
    auto copied = CopyModelFiles(files, dir);
    auto next = copied.ok() ? LoadCatalog(*copied, files)
                            : Result<std::shared_ptr<const Catalog>>(copied.status());
    if (Status bad = next.ok() ? CheckPlacement(**next) : next.status(); !bad.ok()) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      return bad;
    }
    model_dirs.push_back(dir);
    *copies = std::move(copied).value();
    return next;
  }

  // A model's entry in GET /v1/models: its name, group, task, shape, recorded accuracy, running
  // latency (-1 before any answer) and the replicas serving it (--place).
  nlohmann::ordered_json ModelEntry(const std::string& name, const ModelInfo& info) const {
    double ms = -1;
    {
      std::lock_guard<std::mutex> l(metrics_mu);
      if (const auto it = ewma_ms.find(name); it != ewma_ms.end()) ms = it->second;
    }
    std::vector<int> on;
    for (int r = 0; r < SlotCount(); ++r) {
      if (Hosts(r, name)) on.push_back(r);
    }
    return {{"name", name},
            {"group", info.group},
            {"task", TaskName(info.task)},
            {"num_features", info.num_features},
            {"num_classes", info.num_classes},
            {"accuracy", info.accuracy},
            {"latency_ms", ms},
            {"replicas", on}};
  }

  // Whether a replica serving `model` is up.
  bool Ready(const std::string& model) const {
    for (const auto& s : slots) {
      if (s->up && s->active && Hosts(s->index, model)) return true;
    }
    return false;
  }

  // Whether replica `index` loads and serves `model` (ServeOptions::placement).
  bool Hosts(int index, const std::string& model) const {
    auto it = o.placement.find(model);
    return it == o.placement.end() ||
           std::find(it->second.begin(), it->second.end(), index) != it->second.end();
  }

  // The service groups of `c`'s models (ServeOptions::tower_groups), each with its Tower: a new
  // group's Tower loads its state file (an error leaves everything as it was); a group there
  // before gets its Tower back from InstallGroups (tower left empty here).
  Result<std::vector<GroupControl>> BuildGroups(const Catalog& c) const {
    std::vector<GroupControl> next;
    if (o.controller != "autothrottle") return next;
    std::vector<ServiceGroup> found = ServiceGroups(
        SlotCount(), c.file_models,
        [this](int r, const std::string& m) { return o.tower_groups == "one" || Hosts(r, m); });
    std::lock_guard<std::mutex> cl(ctl_mu);
    for (size_t k = 0; k < found.size(); ++k) {
      GroupControl gc;
      gc.g = std::move(found[k]);
      const bool kept = std::any_of(groups.begin(), groups.end(),
                                    [&](const GroupControl& x) { return x.g.name == gc.g.name; });
      if (!kept) {
        TowerOptions to = o.tower;
        to.state_path = TowerStatePath(o.tower.state_path, gc.g.name, found.size());
        to.seed = o.tower.seed + k;  // groups explore apart
        gc.tower = std::make_unique<Tower>(to);
        OC_RETURN_IF_ERROR(gc.tower->Load());
        gc.action = gc.tower->Choose(0);
      }
      next.push_back(std::move(gc));
    }
    return next;
  }

  // Puts BuildGroups' groups in force: each replica's group and throttle target.
  void InstallGroups(std::vector<GroupControl> next) {
    std::lock_guard<std::mutex> cl(ctl_mu);
    for (GroupControl& gc : next) {
      if (gc.tower) continue;
      // A group of the same name has the same models, so the same replicas: it goes on as it was.
      auto old = std::find_if(groups.begin(), groups.end(),
                              [&](const GroupControl& x) { return x.g.name == gc.g.name; });
      if (old != groups.end()) gc = std::move(*old);
    }
    groups = std::move(next);
    for (auto& sp : slots) sp->group = -1;
    for (size_t k = 0; k < groups.size(); ++k) {
      for (int r : groups[k].g.replicas) {
        slots[r]->group = static_cast<int>(k);
        slots[r]->ctl->set_target(groups[k].target());
      }
    }
    if (groups.size() > 1) {
      std::vector<std::string> names;
      for (const auto& gc : groups) {
        names.push_back(fmt::format("{} on replica(s) {}", gc.g.name, fmt::join(gc.g.replicas, ",")));
      }
      spdlog::info("a Tower per service group: {}", fmt::join(names, "; "));
    }
  }

  // Every model --place names must be in the files, and every replica must be left a model.
  Status CheckPlacement(const Catalog& c) const {
    for (const auto& [name, where] : o.placement) {
      if (!c.models.count(name)) {
        return InvalidArgument("--place names model '" + name + "', which no model file holds");
      }
      // Slots beyond --replicas run only while the count rule wants them.
      if (std::none_of(where.begin(), where.end(), [&](int r) { return r < o.replicas; })) {
        return InvalidArgument(fmt::format("--place {}: none of its replicas is among the {} "
                                           "always running (0..{}); --max-replicas starts the "
                                           "others only under load",
                                           name, o.replicas, o.replicas - 1));
      }
    }
    for (int i = 0; i < SlotCount(); ++i) {
      bool any = false;
      for (const auto& name : c.file_models) any = any || Hosts(i, name);
      if (!any) return InvalidArgument(fmt::format("--place leaves replica {} no model", i));
    }
    return Status::Ok();
  }

  // Checks the model files first: a file that does not load leaves every replica as it was.
  Status RunReload() {
    const double t0 = Now();
    std::vector<std::string> copies;
    auto next = PrepareModels(&copies);
    if (!next.ok()) {
      ++reloads_refused;
      spdlog::error("reload refused, still serving the models loaded before: {}",
                    next.status().message());
      return next.status();
    }
    auto next_groups = BuildGroups(**next);
    if (!next_groups.ok()) {
      ++reloads_refused;
      spdlog::error("reload refused, still serving the models loaded before: {}",
                    next_groups.status().message());
      return next_groups.status();
    }
    model_files = std::move(copies);  // what replicas started from now on read
    model_file_models = (*next)->file_models;
    for (auto& sp : slots) {
      if (stopping) return Unavailable("reload: the server is stopping");
      Status r = RollSlot(*sp);
      if (!r.ok() && stopping) return Unavailable("reload: the server is stopping");
      if (!r.ok()) {
        ++reloads_failed;
        spdlog::error("reload stopped at replica {} (replicas before it serve the new files, it "
                      "and those after it the old ones): {}",
                      sp->index, r.message());
        return r.WithContext(fmt::format("reload stopped at replica {}", sp->index));
      }
    }
    std::string names;
    for (const auto& [name, info] : (*next)->models) names += (names.empty() ? "" : ", ") + name;
    {
      std::lock_guard<std::mutex> l(catalog_mu);
      catalog = std::move(*next);
    }
    InstallGroups(std::move(next_groups).value());
    InstallCountGroups(*catalog);
    // Every replica reads the newest copies now: the older ones go.
    for (size_t i = 0; i + 1 < model_dirs.size(); ++i) {
      std::error_code ec;
      std::filesystem::remove_all(model_dirs[i], ec);
    }
    model_dirs.erase(model_dirs.begin(), model_dirs.end() - 1);
    ++reloads_ok;
    spdlog::info("reloaded {} ({} replica(s) restarted in {:.2f} s)", names, ActiveCount(),
                 Now() - t0);
    return Status::Ok();
  }

  // With a secret, a request must carry `Authorization: Bearer SECRET`; otherwise this answers
  // 401 and returns false. Checked first in each handler but /healthz (left open for liveness
  // probes), so an unknown model answers 401 too, not 404. The token travels in clear unless the
  // front end serves HTTPS (--tls-cert, --tls-key).
  bool Authorized(const httplib::Request& req, httplib::Response& res) {
    if (o.secret.empty() || HasBearer(req, o.secret)) return true;
    const std::string auth = req.get_header_value("Authorization");
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer realm=\"overcast\"");
    res.set_content(JsonError(401, auth.empty() ? "missing Authorization: Bearer token"
                                                : "wrong bearer token"),
                    "application/json");
    unauthorized.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  // Closes the slot's pooled connections idle for longer than o.replica_idle_close_s, keeping
  // the o.replica_warm_connections most recently used. Under cpp-httplib's own keep-alive loop
  // (polling every 10 ms) 8 idle connections burned 2.4% of a core per replica, billed to its
  // cgroup; overcast's loop sleeps in poll() (http_server.h), so an idle one now costs its
  // replica a thread and no CPU, and the trimming stays for the threads. The pool reuses its most
  // recent connection first, so the ones at the front are those a lighter load no longer needs.
  void TrimIdle(Slot& s, double now) {
    std::lock_guard<std::mutex> l(s.mu);
    size_t n = 0;
    while (n + o.replica_warm_connections < s.idle.size() &&
           now - s.idle[n].since > o.replica_idle_close_s) {
      ++n;
    }
    if (n == 0) return;
    s.idle.erase(s.idle.begin(), s.idle.begin() + static_cast<long>(n));
    s.open_conns -= static_cast<int>(n);
    s.conn_cv.notify_all();
  }

  void ControlLoop() {
    double next = Now();
    double last = next;
    double tower_start = next;
    // The Captains start every replica at --initial-cores and come down from there at most by
    // max_down_step a decision; an interval that begins before that descent can have reached
    // the floor is charged for the start-up, not for its target, so the Tower does not learn
    // from it (it still chooses).
    const double learn_from = next + CaptainDescentSeconds(o.captain, o.sample_interval_s);
    while (!stopping) {
      next += o.sample_interval_s;
      std::this_thread::sleep_until(Clock::time_point(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(next))));
      const double t = Now();
      const double dt = t - last;
      last = t;
      double alloc = 0, used = 0;
      uint64_t periods = 0, throttled = 0;
      std::lock_guard<std::mutex> cl(ctl_mu);
      for (auto& sp : slots) {
        Slot& s = *sp;
        if (!s.active && !s.up) {  // scaled in (a draining one still holds its quota)
          s.up_at_last_sample = false;
          continue;
        }
        TrimIdle(s, t);
        // Allocation is charged for the limit in force over the interval just ended.
        const double charged = s.limit.load() * dt;
        alloc += charged;
        if (s.group >= 0) groups[s.group].alloc += charged;
        auto st = s.cg->Read();
        if (!st.ok()) continue;
        const double u = CounterDelta(st->usage_usec, s.stat.usage_usec) / 1e6;
        used += u;
        if (s.up_at_last_sample) s.rule_used += u;
        s.up_at_last_sample = s.up;
        periods += CounterDelta(st->nr_periods, s.stat.nr_periods);
        throttled += CounterDelta(st->nr_throttled, s.stat.nr_throttled);
        s.stat = *st;
        const double lim = s.ctl->OnSample(CpuSample{t, *st});
        if (std::abs(lim - s.last_limit_set) > 1e-3 * std::max(lim, 0.01)) {
          Status w = s.cg->SetLimit(lim);
          if (!w.ok()) spdlog::warn("replica {}: set limit: {}", s.index, w.message());
          s.last_limit_set = lim;
        }
        s.limit = lim;
      }
      {
        std::lock_guard<std::mutex> l(metrics_mu);
        tot.allocated_core_seconds += alloc;
        tot.used_core_seconds += used;
        tot.cfs_periods += periods;
        tot.cfs_throttled_periods += throttled;
      }
      if (o.max_replicas > o.replicas) CountRule(t, dt);
      if (t - tower_start >= o.tower_interval_s) {
        std::map<std::string, Window> w;  // taken every interval, with or without a Tower
        {
          std::lock_guard<std::mutex> l(metrics_mu);
          w.swap(windows);
        }
        Decide(t - tower_start, tower_start >= learn_from, w);
        tower_start = t;
      }
    }
  }

  // Each service group's Tower learns what its last interval (`span` seconds) cost, from the
  // group's own allocation, request rate and p99, and chooses its replicas' next throttle
  // target. Control thread, under ctl_mu.
  void Decide(double span, bool learn, const std::map<std::string, Window>& w) {
    for (GroupControl& gc : groups) {
      std::vector<float> lat;
      uint64_t n = 0;
      for (const std::string& model : gc.g.models) {
        auto it = w.find(model);
        if (it == w.end()) continue;
        lat.insert(lat.end(), it->second.ms.begin(), it->second.ms.end());
        n += it->second.requests;
      }
      const int active = ActiveAmong(gc.g.replicas);
      gc.rate = n / span;
      gc.p99_ms = Percentile(lat, 0.99);
      const double max_alloc = std::max(1, active) * o.captain.max_cores * span;
      gc.cost = Tower::Cost(gc.tower->AtBucketRate(gc.alloc / max_alloc, gc.rate), gc.p99_ms,
                            o.slo_p99_ms, o.tower.slo_guard);
      gc.alloc = 0;
      if (learn) gc.tower->Observe(gc.rate, gc.action, gc.cost);
      const uint64_t explored_before = gc.tower->explorations();
      gc.action = gc.tower->Choose(gc.rate);
      const bool explored = gc.tower->explorations() != explored_before;
      for (int r : gc.g.replicas) slots[r]->ctl->set_target(gc.target());
      Status sv = gc.tower->Save();
      if (!sv.ok()) spdlog::warn("tower state: {}", sv.message());
      spdlog::info("tower{}: rate {:.1f}/s p99 {:.2f} ms cost {:.3f}{} -> target {:.2f}{}",
                   groups.size() > 1 ? " (" + gc.g.name + ")" : "", gc.rate, gc.p99_ms, gc.cost,
                   learn ? "" : " (start-up, not learned)", gc.target(),
                   explored ? " (exploring)" : "");
    }
  }

  // The replica-count rule (ServeOptions::max_replicas), fed every sample: every
  // scale_interval_s, in each service group, the replicas that would carry the CPU its replicas
  // used over it at scale_utilization of their capacity. More than running: start them now.
  // Fewer for a whole scale_down_window_s since the group's last change: stop down to the most
  // wanted in that window. Control thread, under ctl_mu.
  void CountRule(double t, double dt) {
    rule_span += dt;
    if (rule_span < o.scale_interval_s) return;
    const double cap = o.controller == "static" ? o.static_cores : o.max_cores;
    const double span = rule_span;
    rule_span = 0;
    for (CountGroup& cg : count_groups) {
      double used = 0;
      for (int r : cg.slots) used += std::exchange(slots[r]->rule_used, 0.0);
      const double cores = used / span;
      const int desired =
          std::clamp(static_cast<int>(std::ceil(cores / (cap * o.scale_utilization))), cg.least,
                     static_cast<int>(cg.slots.size()));
      cg.wanted.push_back({t, desired});
      while (!cg.wanted.empty() && cg.wanted.front().first < t - o.scale_down_window_s) {
        cg.wanted.pop_front();
      }
      int most = 0;
      for (const auto& w : cg.wanted) most = std::max(most, w.second);
      int next = cg.want;
      if (desired > cg.want) {
        next = desired;
      } else if (most < cg.want && t - cg.last_change >= o.scale_down_window_s) {
        next = most;
      }
      if (next != cg.want) {
        spdlog::info("replica count{}: {:.2f} cores used, {} replica(s) would carry them at "
                     "{:.0f}% of {} cores each: {} -> {}",
                     count_groups.size() > 1 ? " (" + cg.name + ")" : "", cores, desired,
                     o.scale_utilization * 100, cap, cg.want, next);
        cg.want = next;
        cg.last_change = t;
      }
    }
  }

  // The count rule's groups for catalog `c` (at start and after a reload). A group with the
  // same replicas as before keeps its decisions; a new one wants the replicas of it running
  // now, within its bounds.
  void InstallCountGroups(const Catalog& c) {
    std::vector<ServiceGroup> found = ServiceGroups(
        SlotCount(), c.file_models, [this](int r, const std::string& m) { return Hosts(r, m); });
    std::lock_guard<std::mutex> cl(ctl_mu);
    std::vector<CountGroup> next;
    for (ServiceGroup& g : found) {
      auto old = std::find_if(count_groups.begin(), count_groups.end(),
                              [&](const CountGroup& x) { return x.slots == g.replicas; });
      CountGroup cg;
      if (old != count_groups.end()) {
        cg = std::move(*old);
      } else {
        cg.slots = g.replicas;
        const int size = static_cast<int>(g.replicas.size());
        cg.least = static_cast<int>(std::count_if(g.replicas.begin(), g.replicas.end(),
                                                  [&](int r) { return r < o.replicas; }));
        cg.want = std::clamp(ActiveAmong(g.replicas), cg.least, size);
        cg.last_change = Now();
      }
      cg.name = g.name;
      next.push_back(std::move(cg));
    }
    count_groups = std::move(next);
  }

  // The name a refused request is counted under: its model's, or "_unknown" for a name that is
  // no model (the metrics do not grow a series per name a client makes up).
  std::string CountedAs(const std::string& model) const {
    return Models()->models.count(model) ? model : "_unknown";
  }

  void Record(const std::string& model, int code, double seconds) {
    std::lock_guard<std::mutex> l(metrics_mu);
    ModelStats& m = stats[model];
    ++m.codes[code];
    size_t b = 0;
    while (b < kNumBuckets && seconds > kBuckets[b]) ++b;
    ++m.hist[b];
    m.sum_s += seconds;
    ++m.count;
    ++tot.requests;
    if (code == 200) {
      auto [it, fresh] = ewma_ms.emplace(model, seconds * 1e3);
      if (!fresh) it->second = 0.9 * it->second + 0.1 * seconds * 1e3;
    }
    if (code == 200) ++tot.ok;
    else if (code == 503) ++tot.rejected;
    else if (code >= 400 && code < 500) ++tot.client_errors;
    else ++tot.server_errors;
    if (code == 200 || code == 503) {  // what the SLO is about: answered or refused requests
      Window& w = windows[model];
      w.ms.push_back(static_cast<float>(seconds * 1e3));
      ++w.requests;
    }
  }

  // Picks an up replica serving `model` with the fewest requests in flight (round-robin among
  // ties).
  Slot* Pick(const std::string& model, const Slot* avoid) {
    Slot* best = nullptr;
    const size_t n = slots.size();
    const size_t start = rr++ % n;
    for (size_t k = 0; k < n; ++k) {
      Slot* s = slots[(start + k) % n].get();
      if (!s->up || !s->active || s == avoid || !Hosts(s->index, model)) continue;
      if (!best || s->inflight < best->inflight) best = s;
    }
    return best;
  }

  // Sends one request to `s` over a pooled keep-alive connection. Returns false when the
  // replica could not be reached (the caller may retry elsewhere).
  bool Forward(Slot& s, const std::string& path, const std::string& body, int* code,
               std::string* out) {
    std::unique_ptr<httplib::Client> cli;
    uint64_t gen;
    {
      std::unique_lock<std::mutex> l(s.mu);
      // A new connection is opened by the request itself (cpp-httplib connects on its first
      // call), in parallel with others: replicas listen with a backlog of 1024
      // (BindHttpServer), so a burst of connects no longer drops SYNs, and the request needs no
      // separate /healthz round trip to a replica that may be out of quota. A connection that
      // fails is counted out and the caller retries on another replica.
      if (!s.conn_cv.wait_for(l, std::chrono::seconds(2), [&] {
            return !s.up || !s.idle.empty() || s.open_conns < o.replica_connections;
          })) {
        *code = 503;
        *out = JsonError(503, "replica connection pool exhausted");
        return true;
      }
      if (!s.up) return false;
      gen = s.generation;
      ++s.gen_inflight[gen];
      if (!s.idle.empty()) {
        cli = std::move(s.idle.back().cli);
        s.idle.pop_back();
      } else {
        ++s.open_conns;
        ++s.connects;
        l.unlock();
        cli = NewClient(s.port);
      }
    }
    // The first request after a quiet spell stamps progress before it counts itself: stamped
    // after, a supervisor check in between (KillHung, every 20 ms) saw a request in flight with
    // the spell's old stamp (0 before a replica's first request) and killed a healthy replica.
    if (s.inflight.load() == 0) s.last_progress = Now();
    ++s.inflight;
    auto res = cli->Post(path, body, "application/json");
    s.last_progress = Now();
    --s.inflight;
    std::lock_guard<std::mutex> l(s.mu);
    if (auto g = s.gen_inflight.find(gen); g != s.gen_inflight.end() && --g->second == 0) {
      s.gen_inflight.erase(g);
      s.conn_cv.notify_all();
    }
    if (!res) {
      if (s.generation == gen) --s.open_conns;
      s.conn_cv.notify_one();
      return false;
    }
    *code = res->status;
    *out = std::move(res->body);
    if (s.generation == gen) s.idle.push_back({std::move(cli), Now()});
    s.conn_cv.notify_one();
    return true;
  }

  // INFaaS-style model-less requests: NAME may be a group of variants, and ?min_accuracy=A asks
  // for a variant whose recorded accuracy is at least A. Among the eligible variants the one
  // with the lowest measured latency (running average; untried ones first) is chosen.
  Status PickVariant(const httplib::Request& req, std::string* model) {
    double min_acc = -1;
    if (req.has_param("min_accuracy")) {
      const std::string v = req.get_param_value("min_accuracy");
      char* end = nullptr;
      min_acc = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(min_acc >= 0 && min_acc <= 1)) {
        return InvalidArgument("min_accuracy must be a number in [0, 1], got '" + v + "'");
      }
    }
    const std::shared_ptr<const Catalog> cat = Models();
    auto m = cat->models.find(*model);
    if (m != cat->models.end() && min_acc < 0) return Status::Ok();
    const std::string group = m != cat->models.end() ? m->second.group : *model;
    auto g = cat->groups.find(group);
    if (g == cat->groups.end()) return NotFound("unknown model '" + *model + "'");
    std::string best;
    double best_ms = 0, best_acc = -1;
    std::lock_guard<std::mutex> l(metrics_mu);
    for (const std::string& v : g->second) {
      const ModelInfo& info = cat->models.at(v);
      best_acc = std::max(best_acc, info.accuracy);
      if (min_acc >= 0 && info.accuracy < min_acc) continue;
      const double ms = ewma_ms.count(v) ? ewma_ms.at(v) : 0;
      if (best.empty() || ms < best_ms) {
        best = v;
        best_ms = ms;
      }
    }
    if (best.empty()) {
      return InvalidArgument(fmt::format("no variant of '{}' reaches accuracy {} (best: {})", group,
                                         min_acc, best_acc));
    }
    *model = best;
    return Status::Ok();
  }

  // Answers a predict request for `model` (a model or a group: req's min_accuracy picks the
  // variant) whose V1 body is `in`: *code and the V1 answer or error in *out.
  void HandlePredict(const httplib::Request& req, std::string model, const std::string& in,
                     int* out_code, std::string* out) {
    const auto t0 = Clock::now();
    int code = 0;
    std::string body;
    Status pick = PickVariant(req, &model);
    if (!pick.ok()) {
      code = HttpCodeFor(pick);
      body = JsonError(code, pick.message());
      model = CountedAs(model);
    } else if (inflight.fetch_add(1) >= o.max_inflight) {
      inflight.fetch_sub(1);
      code = 503;
      body = JsonError(503, fmt::format("server overloaded ({} requests in flight)", o.max_inflight));
    } else {
      const std::string path = "/v1/models/" + model + ":predict";
      Slot* s = Pick(model, nullptr);
      bool sent = s && Forward(*s, path, in, &code, &body);
      if (!sent) {  // replica gone mid-request: predictions are idempotent, try another once
        Slot* other = Pick(model, s);
        sent = other && Forward(*other, path, in, &code, &body);
      }
      if (!sent) {
        code = 503;
        body = JsonError(503, o.placement.count(model)
                                  ? "no replica serving '" + model + "' available; retry later"
                                  : "no replica available; retry later");
      }
      inflight.fetch_sub(1);
    }
    Record(model, code, std::chrono::duration<double>(Clock::now() - t0).count());
    *out_code = code;
    *out = std::move(body);
  }

  // NotFound when a V2 path names a model version other than "1", each model's one version.
  static Status CheckVersion(const httplib::Request& req) {
    if (req.matches.size() < 3 || !req.matches[2].matched || req.matches[2] == "1") {
      return Status::Ok();
    }
    return NotFound(fmt::format("model '{}' has no version '{}'; its one version is 1",
                                req.matches[1].str(), req.matches[2].str()));
  }

  // The model a V2 GET path names (matches[1]) in the catalog `cat`, if it has that model in
  // the version the path names (matches[2], when given); otherwise null, with the 404 replied.
  static const ModelInfo* V2ModelOr404(const Catalog& cat, const httplib::Request& req,
                                       httplib::Response& res) {
    const std::string name = req.matches[1];
    const auto it = cat.models.find(name);
    if (it == cat.models.end()) {
      Reply(res, 404, V2Error("unknown model '" + name + "'"));
      return nullptr;
    }
    if (Status v = CheckVersion(req); !v.ok()) {
      Reply(res, 404, V2Error(v.message()));
      return nullptr;
    }
    return &it->second;
  }

  static void Reply(httplib::Response& res, int code, std::string body) {
    res.status = code;
    if (code == 503) res.set_header("Retry-After", "1");
    res.set_content(std::move(body), "application/json");
  }
};

Server::Server(ServeOptions o) : impl_(std::make_unique<Impl>(std::move(o))) {}
Server::~Server() { Stop(); }

namespace {

// The access-log record of a request that began arriving at `began` and is answered now.
AccessRecord AnsweredNow(Clock::time_point began, std::string_view remote, std::string_view method,
                         std::string_view target, int status, size_t in, size_t out) {
  const auto took = Clock::now() - began;
  return {std::chrono::system_clock::now() -
              std::chrono::duration_cast<std::chrono::system_clock::duration>(took),
          remote, method, target, status, std::chrono::duration<double>(took).count(), in, out};
}

}  // namespace

Status Server::Start() {
  Impl& m = *impl_;
  ServeOptions& o = m.o;
  if (o.replicas < 1) return InvalidArgument("--replicas must be at least 1");
  if (!(o.slo_p99_ms > 0)) return InvalidArgument("--slo-p99-ms must be positive");
  if (o.model_paths.empty() && o.model_dir.empty()) {
    return InvalidArgument("no --model or --model-dir given");
  }
  if (!net::IsLoopback(o.host) && o.secret.empty()) {
    // DESIGN.md: nothing listens beyond loopback unless asked, and then only with a secret.
    return InvalidArgument("--listen " + o.host +
                           ": listening beyond loopback (127.0.0.0/8, localhost, ::1) needs "
                           "--secret-file; clients then send `Authorization: Bearer SECRET`");
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return InvalidArgument("--tls-cert and --tls-key go together (a certificate and its key)");
  }
  if (o.tls_cert.empty()) {
    m.http = std::make_unique<HttpServer>();
  } else {
    for (const std::string* f : {&o.tls_cert, &o.tls_key}) {
      if (!std::filesystem::is_regular_file(*f)) {
        return InvalidArgument("TLS file " + *f + " does not exist");
      }
    }
    m.http = std::make_unique<HttpsServer>(o.tls_cert.c_str(), o.tls_key.c_str());
    if (!m.http->is_valid()) {
      return InvalidArgument(fmt::format("--tls-cert {} / --tls-key {}: not a PEM certificate and "
                                         "its matching private key (OpenSSL refused them)",
                                         o.tls_cert, o.tls_key));
    }
  }
  if (!o.access_log.path.empty()) {
    OC_ASSIGN_OR_RETURN(m.access_log, AccessLog::Open(o.access_log));
  }
  if (o.replica_bin.empty()) {
    std::error_code ec;
    o.replica_bin = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  }
  if (o.max_cores <= 0) o.max_cores = std::max(1u, std::thread::hardware_concurrency());
  if (o.cfs_period_us < 0) {
    o.cfs_period_us = static_cast<int>(std::clamp(o.slo_p99_ms * 500.0, 10000.0, 100000.0));
  }
  if (!(o.cfs_burst >= 0 && o.cfs_burst <= 1)) {
    return InvalidArgument("--cfs-burst must be within 0..1 (a fraction of the quota)");
  }
  {
    const auto& t = o.tower.targets;
    bool ok = !t.empty();
    for (size_t i = 0; ok && i < t.size(); ++i) {
      ok = t[i] >= 0 && t[i] < 1 && (i == 0 || t[i] > t[i - 1]);
    }
    if (!ok) {
      return InvalidArgument(
          "--tower-targets must be one or more throttle ratios within [0, 1), in rising order");
    }
  }
  if (o.cfs_period_us < 1000 || o.cfs_period_us > 1000000) {
    return InvalidArgument("--cfs-period-us must be within 1000..1000000");
  }
  // By default a small limit may wait up to twice the base period, and never longer than the
  // SLO, for its next quota.
  if (o.cfs_period_max_us < 0) {
    o.cfs_period_max_us = std::max(
        o.cfs_period_us, static_cast<int>(std::min(o.slo_p99_ms * 1000.0, 2.0 * o.cfs_period_us)));
  }
  if (o.cfs_period_max_us < o.cfs_period_us || o.cfs_period_max_us > 1000000) {
    return InvalidArgument(fmt::format("--cfs-period-max-us must be within the CFS period ({} us) "
                                       "and 1000000",
                                       o.cfs_period_us));
  }
  // The kernel's smallest quota is 1 ms per period: no limit can go below 1 ms over the
  // longest period.
  o.captain.min_cores =
      std::max(o.captain.min_cores, double(kMinQuotaUs) / o.cfs_period_max_us);
  if (o.max_wait_us < 0) o.max_wait_us = static_cast<int>(std::min(1000.0, o.slo_p99_ms * 50));
  if (o.max_wait_us * 1e-3 >= o.slo_p99_ms) {
    return InvalidArgument(fmt::format("--max-wait-us {} would eat the whole SLO of {} ms",
                                       o.max_wait_us, o.slo_p99_ms));
  }
  if (o.max_replicas != 0 && o.max_replicas < o.replicas) {
    return InvalidArgument(fmt::format("--max-replicas {} is below --replicas {}", o.max_replicas,
                                       o.replicas));
  }
  if (!(o.scale_utilization > 0 && o.scale_utilization <= 1) || !(o.scale_interval_s > 0) ||
      !(o.scale_down_window_s >= 0)) {
    return InvalidArgument("--scale-utilization must be in (0, 1], --scale-interval-s above 0 "
                           "and --scale-down-window-s at least 0");
  }
  for (const auto& [name, where] : o.placement) {
    if (where.empty()) return InvalidArgument("--place " + name + "= names no replica");
    for (int r : where) {
      if (r < 0 || r >= m.SlotCount()) {
        return InvalidArgument(fmt::format("--place {}: replica {} is not within 0..{} "
                                           "(--replicas {}, --max-replicas {})",
                                           name, r, m.SlotCount() - 1, o.replicas,
                                           o.max_replicas));
      }
    }
  }
  if (o.max_connections < 1) return InvalidArgument("--max-connections must be at least 1");
  if (o.max_idle_connections < 0) {
    return InvalidArgument("--max-idle-connections must be at least 0");
  }
  size_t max_parked = static_cast<size_t>(o.max_idle_connections);
  {
    // Each client connection is a descriptor, as are the pools to the replicas: raise the soft
    // limit (often 1024) to the hard one when the bounds need more. Idle connections get what
    // the limit leaves beside the others, so that accept() never runs out of descriptors.
    const rlim_t busy = static_cast<rlim_t>(o.max_connections) + 256 +
                        static_cast<rlim_t>(m.SlotCount()) * o.replica_connections;
    const rlim_t want = busy + max_parked;
    rlimit nofile{};
    if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < want) {
      nofile.rlim_cur = std::min(want, nofile.rlim_max);
      ::setrlimit(RLIMIT_NOFILE, &nofile);
      ::getrlimit(RLIMIT_NOFILE, &nofile);
      if (nofile.rlim_cur < want) {
        max_parked = nofile.rlim_cur > busy ? static_cast<size_t>(nofile.rlim_cur - busy) : 0;
        spdlog::warn("open files limited to {} (hard limit): fewer than the {} that "
                     "--max-connections {} and --max-idle-connections {} may need; idle "
                     "connections kept: {}",
                     static_cast<uint64_t>(nofile.rlim_cur), static_cast<uint64_t>(want),
                     o.max_connections, o.max_idle_connections, max_parked);
      }
    }
  }
  static std::atomic<int> counter{0};
  const std::string tag = fmt::format("serve-{}-{}", ::getpid(), counter++);
  m.tmpdir = (std::filesystem::temp_directory_path() / ("overcast-" + tag)).string();
  {
    const net::Nonce t = net::RandomNonce();  // 256 random bits from OpenSSL
    m.replica_token = fmt::format("{:02x}", fmt::join(t, ""));
  }
  std::filesystem::create_directories(m.tmpdir);
  auto models = m.PrepareModels(&m.model_files);
  if (!models.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(m.tmpdir, ec);
    m.tmpdir.clear();
    return models.status();
  }
  m.catalog = std::move(models).value();
  m.model_file_models = m.catalog->file_models;

  o.captain.initial_cores = o.initial_cores;
  o.captain.max_cores = o.max_cores;
  o.hpa.initial_cores = o.initial_cores;
  o.hpa.max_cores = o.max_cores;
  o.hpa.min_cores = o.captain.min_cores;
  if (o.controller != "autothrottle" && o.controller != "captain" && o.controller != "hpa" &&
      o.controller != "static") {
    return InvalidArgument("unknown --controller '" + o.controller +
                           "' (autothrottle, captain, hpa or static)");
  }
  if (o.tower_groups != "placement" && o.tower_groups != "one") {
    return InvalidArgument("unknown --tower-groups '" + o.tower_groups + "' (placement or one)");
  }
  OC_ASSIGN_OR_RETURN(std::vector<Impl::GroupControl> groups, m.BuildGroups(*m.catalog));
  for (int i = 0; i < m.SlotCount(); ++i) {
    auto s = std::make_unique<Impl::Slot>();
    s->index = i;
    s->cg_name = tag + "-r" + std::to_string(i);
    OC_ASSIGN_OR_RETURN(s->cg, CreateReplicaCgroup(o.cgroup, s->cg_name, o.cfs_period_us));
    s->cg->set_burst_fraction(o.cfs_burst);
    s->cg->set_max_period(o.cfs_period_max_us);
    s->ctl = m.NewController();
    s->active = i < o.replicas;
    s->limit = s->ctl->limit();
    OC_RETURN_IF_ERROR(s->cg->SetLimit(s->limit));
    s->last_limit_set = s->limit;
    s->port_file = m.tmpdir + "/replica-" + std::to_string(i) + ".port";
    if (i == 0) spdlog::info("replica CPU groups: {}", s->cg->describe());
    m.slots.push_back(std::move(s));
  }
  m.InstallGroups(std::move(groups));
  m.InstallCountGroups(*m.catalog);
  for (auto& s : m.slots) {
    if (s->active) OC_RETURN_IF_ERROR(m.Spawn(*s));
  }

  httplib::Server& h = *m.http;
  ConfigureHttpServer(h, o.threads, o.max_connections, o.max_body_bytes, max_parked);
  if (m.access_log) {
    h.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      if (AnsweredByTheLoop()) return;  // logged by the handler below; this answer was not sent
      impl_->access_log->Add(AnsweredNow(RequestBegan(), req.remote_addr, req.method, req.target,
                                         res.status, req.body.size(), res.body.size()));
    });
    // The 408s, 413s, 431s and 503s the connection loop writes itself never reach the logger
    // above.
    if (auto* conns = dynamic_cast<http_detail::Signals*>(m.http.get())) {
      conns->set_loop_answer_handler([this](const http_detail::Signals::LoopAnswer& a) {
        impl_->access_log->Add(AnsweredNow(a.began, a.remote, a.method, a.target, a.status,
                                           a.body_bytes, a.answer_bytes));
      });
    }
  }
  h.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    int up = 0;
    for (auto& s : impl_->slots) up += s->up && s->active ? 1 : 0;
    res.status = up > 0 ? 200 : 503;
    res.set_content(fmt::format("{{\"status\":\"{}\",\"replicas_up\":{},\"replicas\":{}}}",
                                up > 0 ? "ok" : "unavailable", up, impl_->ActiveCount()),
                    "application/json");
  });
  h.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    if (!impl_->Authorized(req, res)) return;
    res.set_content(Metrics() + impl_->ReplicaBatchMetrics(), "text/plain; version=0.0.4");
  });
  h.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    if (!impl_->Authorized(req, res)) return;
    nlohmann::ordered_json models = nlohmann::ordered_json::array();
    for (auto& [name, info] : impl_->Models()->models) {
      models.push_back(impl_->ModelEntry(name, info));
    }
    res.set_content(DumpJson(nlohmann::ordered_json{{"models", std::move(models)}}),
                    "application/json");
  });
  // A model's readiness (KServe's V1 protocol): its entry above and "ready", whether a replica
  // serving it is up; 503 while none is, 404 for a name that is no model (a group's variants
  // are models of their own).
  h.Get(R"(/v1/models/([^/:]+))", [this](const httplib::Request& req, httplib::Response& res) {
    if (!impl_->Authorized(req, res)) return;
    const std::string name = req.matches[1];
    const auto cat = impl_->Models();
    const auto it = cat->models.find(name);
    if (it == cat->models.end()) {
      res.status = 404;
      res.set_content(JsonError(404, "unknown model '" + name + "'"), "application/json");
      return;
    }
    nlohmann::ordered_json j = impl_->ModelEntry(name, it->second);
    const bool ready = impl_->Ready(name);
    j["ready"] = ready;
    res.status = ready ? 200 : 503;
    res.set_content(DumpJson(j), "application/json");
  });
  h.Post("/v1/reload", [this](const httplib::Request& req, httplib::Response& res) {
    if (!impl_->Authorized(req, res)) return;
    Status r = Reload();
    if (!r.ok()) {
      res.status = r.code() == Code::kUnavailable ? 503 : 409;
      res.set_content(JsonError(res.status, r.message()), "application/json");
      return;
    }
    nlohmann::json names = nlohmann::json::array();
    for (const auto& [name, info] : impl_->Models()->models) names.push_back(name);
    res.set_content(nlohmann::json{{"reloaded", names}}.dump(), "application/json");
  });
  h.Post(R"(/v1/models/([^/]+):predict)", [this](const httplib::Request& req,
                                                 httplib::Response& res) {
    if (!impl_->Authorized(req, res)) return;
    int code = 0;
    std::string body;
    impl_->HandlePredict(req, req.matches[1], req.body, &code, &body);
    Impl::Reply(res, code, std::move(body));
  });
  // KServe's V2 (Open Inference) protocol beside V1: an infer request's one input tensor becomes
  // V1 rows, and the V1 answer becomes output tensors (api.h); errors are {"error": "..."}. Each
  // model has one version, "1": the paths that name a version take that one alone. Tensors may
  // come and go as binary data (V2's binary tensor data extension, as Triton's clients send).
  h.Post(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/infer)", [this](const httplib::Request& req,
                                                                   httplib::Response& res) {
    if (!impl_->Authorized(req, res)) return;
    const auto t0 = Clock::now();
    const std::string name = req.matches[1];
    auto refuse = [&](int code, const Status& why) {
      impl_->Record(impl_->CountedAs(name), code,
                    std::chrono::duration<double>(Clock::now() - t0).count());
      Impl::Reply(res, code, V2Error(why.message()));
    };
    if (Status v = Impl::CheckVersion(req); !v.ok()) return refuse(404, v);
    V2JsonBytes json_bytes;  // binary tensor data: the JSON's length, the tensors' bytes after
    if (req.has_header(kInferenceHeaderLength)) {
      const std::string v = req.get_header_value(kInferenceHeaderLength);
      size_t n = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || v.empty()) {
        return refuse(400, InvalidArgument(fmt::format(
                               "{} must be a byte count, not '{}'", kInferenceHeaderLength, v)));
      }
      json_bytes = n;
    }
    V2Infer ask;
    Result<std::string> rows = V2InferToV1(req.body, &ask, json_bytes);
    if (!rows.ok()) return refuse(400, rows.status());
    // The model's outputs as its metadata lists them: a name the model lacks is refused before
    // it predicts, and the answer's datatypes are the metadata's.
    const auto cat = impl_->Models();
    const auto outputs = cat->v2_outputs.find(name);
    const nlohmann::ordered_json* declared =
        outputs == cat->v2_outputs.end() ? nullptr : &outputs->second;
    if (declared) {
      if (Status known = CheckV2Outputs(ask, *declared); !known.ok()) return refuse(400, known);
    }
    int code = 0;
    std::string body;
    impl_->HandlePredict(req, name, *rows, &code, &body);
    if (code != 200) return Impl::Reply(res, code, V1ErrorToV2(body));
    Result<V2Answer> v2 = V1AnswerToV2(body, ask, declared);
    if (!v2.ok()) return Impl::Reply(res, HttpCodeFor(v2.status()), V2Error(v2.status().message()));
    if (!v2->json_bytes) return Impl::Reply(res, 200, std::move(v2->body));
    res.status = 200;
    res.set_header(kInferenceHeaderLength, std::to_string(*v2->json_bytes));
    res.set_content(std::move(v2->body), "application/octet-stream");
  });
  // V2's server metadata.
  h.Get("/v2", [this](const httplib::Request& req, httplib::Response& res) {
    if (!impl_->Authorized(req, res)) return;
    Impl::Reply(res, 200,
                DumpJson(nlohmann::ordered_json{{"name", "overcast"},
                                                {"version", std::string(Version())},
                                                {"extensions", {"binary_tensor_data"}}}));
  });
  // V2's health and model endpoints: live while the front end answers; ready while every model
  // has a replica up (a model: while one serving it is up); a model's metadata.
  h.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"live":true})", "application/json");
  });
  h.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
    bool ready = true;
    for (const auto& [name, info] : impl_->Models()->models) ready = ready && impl_->Ready(name);
    res.status = ready ? 200 : 503;
    res.set_content(ready ? R"({"ready":true})" : R"({"ready":false})", "application/json");
  });
  h.Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/ready)", [this](const httplib::Request& req,
                                                                   httplib::Response& res) {
    if (!impl_->Authorized(req, res)) return;
    if (!Impl::V2ModelOr404(*impl_->Models(), req, res)) return;
    const std::string name = req.matches[1];
    const bool ready = impl_->Ready(name);
    Impl::Reply(res, ready ? 200 : 503,
                DumpJson(nlohmann::ordered_json{{"name", name}, {"ready", ready}}));
  });
  h.Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)", [this](const httplib::Request& req,
                                                             httplib::Response& res) {
    if (!impl_->Authorized(req, res)) return;
    const auto cat = impl_->Models();
    const ModelInfo* info = Impl::V2ModelOr404(*cat, req, res);
    if (!info) return;
    const std::string name = req.matches[1];
    nlohmann::ordered_json j;
    j["name"] = name;
    j["versions"] = {"1"};
    j["platform"] = "overcast";
    j["inputs"] = nlohmann::ordered_json::array(
        {{{"name", "features"}, {"datatype", "FP32"},
          {"shape", {-1, static_cast<int64_t>(info->num_features)}}}});
    j["outputs"] = cat->v2_outputs.at(name);
    Impl::Reply(res, 200, DumpJson(j));
  });
  m.bound_port = BindHttpServer(h, o.host, o.port);
  if (m.bound_port <= 0) {
    Stop();
    return Unavailable(fmt::format("cannot listen on {}:{} (in use?)", o.host, o.port));
  }
  m.http_thread = std::thread([&h] { h.listen_after_bind(); });
  m.supervisor = std::thread([&m] { m.SupervisorLoop(); });
  m.control = std::thread([&m] { m.ControlLoop(); });
  if (!o.port_file.empty()) {
    OC_RETURN_IF_ERROR(WriteFileAtomic(o.port_file, std::to_string(m.bound_port)));
  }
  spdlog::info("serving {} model(s) on {}://{}:{} with {} replica(s){}, controller {}, SLO p99 "
               "{} ms, batch <= {} rows, wait <= {} us, CFS period {} us (up to {} us under 1 ms "
               "of quota), burst {} x quota",
               m.catalog->models.size(), o.tls_cert.empty() ? "http" : "https", o.host,
               m.bound_port, o.replicas,
               o.max_replicas > o.replicas ? fmt::format(" (up to {})", o.max_replicas) : "",
               o.controller, o.slo_p99_ms, o.max_batch_rows,
               o.max_wait_us, o.cfs_period_us, o.cfs_period_max_us, o.cfs_burst);
  return Status::Ok();
}

void Server::Stop() {
  Impl& m = *impl_;
  if (m.stopping.exchange(true)) return;
  {
    std::lock_guard<std::mutex> l(m.reload_mu);  // a reload waiting on a stopped supervisor
    m.reload_cv.notify_all();
  }
  if (m.http) StopHttpServer(*m.http);
  if (m.http_thread.joinable()) m.http_thread.join();
  m.access_log.reset();  // writes the lines still queued: no request is answered after the join
  if (m.supervisor.joinable()) m.supervisor.join();
  if (m.control.joinable()) m.control.join();
  for (auto& s : m.slots) {
    std::lock_guard<std::mutex> l(s->mu);
    s->idle.clear();  // close keep-alive connections so the replicas' threads can finish
    s->up = false;
    if (s->pid > 0) ::kill(s->pid, SIGTERM);  // all at once; StopProcess then waits for each
  }
  for (auto& s : m.slots) {
    if (s->pid <= 0) continue;
    StopProcess(s->pid);
    s->pid = -1;
  }
  for (auto& s : m.slots) {
    s->cg.reset();
    RemoveReplicaCgroup(m.o.cgroup, s->cg_name);
  }
  if (!m.tmpdir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(m.tmpdir, ec);
  }
  std::lock_guard<std::mutex> l(m.stop_mu);
  m.stopped = true;
  m.stop_cv.notify_all();
}

void Server::Wait() {
  std::unique_lock<std::mutex> l(impl_->stop_mu);
  impl_->stop_cv.wait(l, [&] { return impl_->stopped; });
}

void Server::RequestReload() {
  std::lock_guard<std::mutex> l(impl_->reload_mu);
  ++impl_->reloads_asked;
}

Status Server::Reload() {
  Impl& m = *impl_;
  if (!m.supervisor.joinable()) return Unavailable("reload: the server is not running");
  std::unique_lock<std::mutex> l(m.reload_mu);
  const uint64_t ticket = ++m.reloads_asked;
  m.reload_cv.wait(l, [&] { return m.stopping || m.reloads_ended >= ticket; });
  if (m.reloads_ended < ticket) return Unavailable("reload: the server is stopping");
  return m.last_reload;
}

int Server::port() const { return impl_->bound_port; }
int Server::replica_count() const { return static_cast<int>(impl_->slots.size()); }
int Server::active_replicas() const { return impl_->ActiveCount(); }

pid_t Server::replica_pid(int i) const {
  std::lock_guard<std::mutex> l(impl_->slots.at(i)->mu);
  return impl_->slots.at(i)->pid;
}

int Server::replica_port(int i) const {
  std::lock_guard<std::mutex> l(impl_->slots.at(i)->mu);
  return impl_->slots.at(i)->port;
}

ServerTotals Server::totals() const {
  ServerTotals t;
  {
    std::lock_guard<std::mutex> l(impl_->metrics_mu);
    t = impl_->tot;
  }
  for (const auto& s : impl_->slots) t.replica_connects += s->connects.load();
  t.reloads = impl_->reloads_ok.load();
  t.reloads_refused = impl_->reloads_refused.load();
  t.reloads_failed = impl_->reloads_failed.load();
  return t;
}

std::string Server::Metrics() const {
  const Impl& m = *impl_;
  std::string s;
  auto out = std::back_inserter(s);
  fmt::format_to(out,
                 "# HELP overcast_build_info The running build: its version, as a label.\n"
                 "# TYPE overcast_build_info gauge\novercast_build_info{{version=\"{}\"}} 1\n",
                 Version());
  {
    std::lock_guard<std::mutex> l(m.metrics_mu);
    s += "# HELP overcast_serve_requests_total Predict requests answered, by model and HTTP code.\n"
         "# TYPE overcast_serve_requests_total counter\n";
    for (auto& [name, ms] : m.stats)
      for (auto& [code, n] : ms.codes)
        fmt::format_to(out, "overcast_serve_requests_total{{model=\"{}\",code=\"{}\"}} {}\n", name, code, n);
    s += "# HELP overcast_serve_unauthorized_total Requests refused for a missing or wrong "
         "bearer token (--secret-file).\n"
         "# TYPE overcast_serve_unauthorized_total counter\n";
    fmt::format_to(out, "overcast_serve_unauthorized_total {}\n", m.unauthorized.load());
    if (m.access_log) {
      s += "# HELP overcast_serve_access_log_dropped_total Access-log lines dropped because the "
           "file did not keep up (its queue was full).\n"
           "# TYPE overcast_serve_access_log_dropped_total counter\n";
      fmt::format_to(out, "overcast_serve_access_log_dropped_total {}\n", m.access_log->dropped());
    }
    s += "# HELP overcast_serve_request_duration_seconds Front-end latency of predict requests.\n"
         "# TYPE overcast_serve_request_duration_seconds histogram\n";
    for (auto& [name, ms] : m.stats) {
      uint64_t cum = 0;
      for (size_t b = 0; b < kNumBuckets; ++b) {
        cum += ms.hist[b];
        fmt::format_to(out, "overcast_serve_request_duration_seconds_bucket{{model=\"{}\",le=\"{}\"}} {}\n",
                       name, kBuckets[b], cum);
      }
      fmt::format_to(out, "overcast_serve_request_duration_seconds_bucket{{model=\"{}\",le=\"+Inf\"}} {}\n",
                     name, ms.count);
      fmt::format_to(out, "overcast_serve_request_duration_seconds_sum{{model=\"{}\"}} {}\n", name, ms.sum_s);
      fmt::format_to(out, "overcast_serve_request_duration_seconds_count{{model=\"{}\"}} {}\n", name, ms.count);
    }
    fmt::format_to(out,
                   "# HELP overcast_serve_cpu_allocated_core_seconds_total Integral of replica CPU limits.\n"
                   "# TYPE overcast_serve_cpu_allocated_core_seconds_total counter\n"
                   "overcast_serve_cpu_allocated_core_seconds_total {}\n"
                   "# TYPE overcast_serve_cpu_used_core_seconds_total counter\n"
                   "overcast_serve_cpu_used_core_seconds_total {}\n"
                   "# TYPE overcast_serve_replica_restarts_total counter\n"
                   "overcast_serve_replica_restarts_total {}\n"
                   "# HELP overcast_serve_replica_hangs_total Replicas killed for answering none "
                   "of their requests in flight for --replica-hang-s.\n"
                   "# TYPE overcast_serve_replica_hangs_total counter\n"
                   "overcast_serve_replica_hangs_total {}\n",
                   m.tot.allocated_core_seconds, m.tot.used_core_seconds, m.tot.replica_restarts,
                   m.tot.replica_hangs);
  }
  fmt::format_to(out,
                 "# HELP overcast_serve_reloads_total Reloads of the model files (SIGHUP, POST "
                 "/v1/reload): ok, refused (a file did not load; nothing changed) or failed (a "
                 "replica did not start on the new files).\n"
                 "# TYPE overcast_serve_reloads_total counter\n"
                 "overcast_serve_reloads_total{{result=\"ok\"}} {}\n"
                 "overcast_serve_reloads_total{{result=\"refused\"}} {}\n"
                 "overcast_serve_reloads_total{{result=\"failed\"}} {}\n",
                 m.reloads_ok.load(), m.reloads_refused.load(), m.reloads_failed.load());
  const ServerTotals scaled = totals();
  fmt::format_to(out,
                 "# HELP overcast_serve_replicas Replicas running or starting, and the count the "
                 "replica-count rule wants (--max-replicas).\n"
                 "# TYPE overcast_serve_replicas gauge\n"
                 "overcast_serve_replicas {}\n"
                 "overcast_serve_replicas_wanted {}\n"
                 "# TYPE overcast_serve_replica_scale_outs_total counter\n"
                 "overcast_serve_replica_scale_outs_total {}\n"
                 "# TYPE overcast_serve_replica_scale_ins_total counter\n"
                 "overcast_serve_replica_scale_ins_total {}\n",
                 m.ActiveCount(), m.WantedReplicas(), scaled.scale_outs, scaled.scale_ins);
  fmt::format_to(out,
                 "# TYPE overcast_serve_inflight gauge\novercast_serve_inflight {}\n"
                 "# TYPE overcast_serve_slo_p99_seconds gauge\novercast_serve_slo_p99_seconds {}\n",
                 m.inflight.load(), m.o.slo_p99_ms / 1e3);
  if (const auto* conns = dynamic_cast<const http_detail::Signals*>(m.http.get())) {
    const http_detail::Signals::PoolThreads threads = conns->pool_threads();
    fmt::format_to(out,
                   "# HELP overcast_serve_connection_threads_given_up_total Client "
                   "connections that gave their thread to another past --max-connections, by "
                   "what they waited for: idle, their next or first request or the rest of one "
                   "being gathered (they wait on in the parking lot, open), or request, a "
                   "request still arriving in the parser (a 503, and the connection closes; in "
                   "a TLS handshake it just closes).\n"
                   "# TYPE overcast_serve_connection_threads_given_up_total counter\n"
                   "overcast_serve_connection_threads_given_up_total{{waiting=\"idle\"}} {}\n"
                   "overcast_serve_connection_threads_given_up_total{{waiting=\"request\"}} "
                   "{}\n"
                   "# HELP overcast_serve_connection_answers_total Requests the connection "
                   "loop answered itself before routing them (not in "
                   "overcast_serve_requests_total), by code: 408, too slow to arrive; 413, a "
                   "Content-Length over --max-body-bytes; 431, a request line and headers past "
                   "their bounds; 503, its thread given up.\n"
                   "# TYPE overcast_serve_connection_answers_total counter\n"
                   "overcast_serve_connection_answers_total{{code=\"408\"}} {}\n"
                   "overcast_serve_connection_answers_total{{code=\"413\"}} {}\n"
                   "overcast_serve_connection_answers_total{{code=\"431\"}} {}\n"
                   "overcast_serve_connection_answers_total{{code=\"503\"}} {}\n"
                   "# HELP overcast_serve_connections_parked Client connections idle past their "
                   "spell, waiting without a thread for their next request or the rest of one.\n"
                   "# TYPE overcast_serve_connections_parked gauge\n"
                   "overcast_serve_connections_parked {}\n"
                   "# HELP overcast_serve_connections_parked_limit Parked connections kept at "
                   "most (--max-idle-connections, or less to fit the open-files limit).\n"
                   "# TYPE overcast_serve_connections_parked_limit gauge\n"
                   "overcast_serve_connections_parked_limit {}\n"
                   "# HELP overcast_serve_connections_closed_past_parked_limit_total Parked "
                   "connections closed to keep within that limit (the one whose keep-alive "
                   "ends first).\n"
                   "# TYPE overcast_serve_connections_closed_past_parked_limit_total counter\n"
                   "overcast_serve_connections_closed_past_parked_limit_total {}\n"
                   "# HELP overcast_serve_connection_threads Threads serving client "
                   "connections: holding one (a request, or waiting on its client for up to the "
                   "idle spell) or idle; beyond the threads started up front, an idle one ends "
                   "after 30 s.\n"
                   "# TYPE overcast_serve_connection_threads gauge\n"
                   "overcast_serve_connection_threads{{state=\"connection\"}} {}\n"
                   "overcast_serve_connection_threads{{state=\"idle\"}} {}\n",
                   conns->idle_given_up(), conns->arriving_given_up(), conns->loop_answers(408),
                   conns->loop_answers(413), conns->loop_answers(431), conns->loop_answers(503),
                   conns->parked(),
                   conns->parking().limit(), conns->parking().closed_past_limit(),
                   threads.all - threads.idle, threads.idle);
  }
  std::lock_guard<std::mutex> l(m.ctl_mu);
  using Slot = const Impl::Slot*;
  std::vector<std::pair<std::string, Slot>> reps;
  for (const auto& sp : m.slots) {
    reps.emplace_back(fmt::format("replica=\"{}\",controller=\"{}\"", sp->index, sp->ctl->name()),
                      sp.get());
  }
  auto replicas = [&](std::string_view name, std::string_view type, std::string_view help,
                      auto value) { AppendFamily(s, name, type, help, reps, value); };
  replicas("overcast_serve_replica_cpu_limit_cores", "gauge", "CPU quota of each replica's cgroup.",
           [](Slot r) { return r->limit.load(); });
  replicas("overcast_serve_replica_cfs_period_us", "gauge",
           "The quota's period: the base, or longer for a limit under 1 ms a base period.",
           [](Slot r) { return r->cg->period_us(); });
  replicas("overcast_serve_replica_up", "gauge", "", [](Slot r) { return r->up ? 1 : 0; });
  replicas("overcast_serve_replica_restarts", "gauge", "Restarts of each replica's slot so far.",
           [](Slot r) { return r->restarts.load(); });
  replicas("overcast_serve_replica_connections", "gauge",
           "Pooled keep-alive connections open to each replica.", [](Slot r) {
             std::lock_guard<std::mutex> cl(r->mu);
             return r->open_conns;
           });
  replicas("overcast_serve_replica_connects_total", "counter", "",
           [](Slot r) { return r->connects.load(); });
  replicas("overcast_serve_replica_cpu_usage_seconds_total", "counter", "",
           [](Slot r) { return r->stat.usage_usec / 1e6; });
  replicas("overcast_serve_replica_cfs_periods_total", "counter", "",
           [](Slot r) { return r->stat.nr_periods; });
  replicas("overcast_serve_replica_cfs_throttled_periods_total", "counter", "",
           [](Slot r) { return r->stat.nr_throttled; });
  replicas("overcast_serve_replica_cfs_throttled_seconds_total", "counter", "",
           [](Slot r) { return r->stat.throttled_usec / 1e6; });
  replicas("overcast_serve_replica_cfs_bursts_total", "counter", "",
           [](Slot r) { return r->stat.nr_bursts; });
  replicas("overcast_serve_replica_cfs_burst_seconds_total", "counter", "",
           [](Slot r) { return r->stat.burst_usec / 1e6; });
  replicas("overcast_serve_replica_scale_ups_total", "counter", "",
           [](Slot r) { return r->ctl->scale_ups; });
  replicas("overcast_serve_replica_scale_downs_total", "counter", "",
           [](Slot r) { return r->ctl->scale_downs; });
  replicas("overcast_serve_replica_rollbacks_total", "counter", "",
           [](Slot r) { return r->ctl->rollbacks; });
  replicas("overcast_serve_replica_throttle_target", "gauge",
           "The throttle ratio each replica's quota controller aims at.",
           [](Slot r) -> std::optional<double> {
             if (r->ctl->target() < 0) return std::nullopt;
             return r->ctl->target();
           });
  auto captain = [](Slot r) { return dynamic_cast<const Captain*>(r->ctl.get()); };
  replicas("overcast_serve_replica_throttle_ratio", "gauge", "",
           [&](Slot r) -> std::optional<double> {
             if (captain(r) == nullptr) return std::nullopt;
             return captain(r)->last_ratio();
           });
  replicas("overcast_serve_replica_captain_margin", "gauge", "",
           [&](Slot r) -> std::optional<double> {
             if (captain(r) == nullptr) return std::nullopt;
             return captain(r)->margin();
           });
  if (m.groups.empty()) return s;
  using Group = const Impl::GroupControl*;
  std::vector<std::pair<std::string, Group>> groups;
  for (const auto& gc : m.groups) groups.emplace_back(fmt::format("group=\"{}\"", gc.g.name), &gc);
  auto towers = [&](std::string_view name, std::string_view help, auto value) {
    AppendFamily(s, name, name.ends_with("_total") ? "counter" : "gauge", help, groups, value);
  };
  towers("overcast_serve_tower_target",
         "Throttle target the Tower of each service group chose, and what it learned from.",
         [](Group g) { return g->target(); });
  towers("overcast_serve_tower_decisions_total", "", [](Group g) { return g->tower->decisions(); });
  towers("overcast_serve_tower_explorations_total", "",
         [](Group g) { return g->tower->explorations(); });
  towers("overcast_serve_tower_last_rate", "", [](Group g) { return g->rate; });
  towers("overcast_serve_tower_last_p99_seconds", "", [](Group g) { return g->p99_ms / 1e3; });
  towers("overcast_serve_tower_last_cost", "", [](Group g) { return g->cost; });
  return s;
}

}  // namespace overcast::serve
