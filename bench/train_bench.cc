#include "bench/train_bench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "algo/algorithm.h"
#include "bench/worker_rss.h"
#include "data/load.h"
#include "data/minibatch.h"
#include "data/store.h"
#include "ps/client.h"
#include "ps/server.h"
#include "runtime/coordinator.h"

namespace overcast::bench {
namespace {

using Clock = std::chrono::steady_clock;

double PeakRssMiB() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + i, v.end());
  return v[i];
}

// The floor under any request/reply on this machine: p50 of `n` 8-byte round trips between two
// threads over one loopback TCP connection with blocking calls and TCP_NODELAY (no event loop,
// no framing, no hand-off between threads).
Result<double> PingPongP50(int n) {
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  if (ls < 0) return ErrnoStatus("ping-pong socket", errno);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 1) != 0 ||
      ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    Status s = ErrnoStatus("ping-pong listen", errno);
    ::close(ls);
    return s;
  }
  const int one = 1;
  std::thread echo([ls, one] {
    int c = ::accept(ls, nullptr, nullptr);
    if (c < 0) return;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b[8];
    while (::recv(c, b, sizeof b, MSG_WAITALL) == sizeof b && ::send(c, b, sizeof b, 0) == 8) {
    }
    ::close(c);
  });
  int c = ::socket(AF_INET, SOCK_STREAM, 0);
  std::vector<double> us;
  Status st;
  if (c < 0 || ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    st = ErrnoStatus("ping-pong connect", errno);
  } else {
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b[8] = {};
    for (int i = 0; i < n && st.ok(); ++i) {
      auto t0 = Clock::now();
      if (::send(c, b, sizeof b, 0) != 8 || ::recv(c, b, sizeof b, MSG_WAITALL) != 8) {
        st = ErrnoStatus("ping-pong round trip", errno);
      }
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  if (c >= 0) ::close(c);      // the echo thread's recv returns 0
  ::shutdown(ls, SHUT_RDWR);   // or its accept, when no connection came
  echo.join();
  ::close(ls);
  OC_RETURN_IF_ERROR(st);
  return Percentile(us, 0.5);
}

Status Latency(const TrainBenchOptions& o, nlohmann::json* figures) {
  ps::ServerOptions so;
  so.shards = o.ps_shards;
  OC_ASSIGN_OR_RETURN(auto server, ps::Server::Start(so));
  ps::ClientOptions co;
  co.servers = {server->address()};
  OC_ASSIGN_OR_RETURN(auto client, ps::Client::Connect(co));
  auto registry = algo::BuiltinAlgorithms();
  OC_ASSIGN_OR_RETURN(const algo::AlgorithmInfo* info, algo::FindAlgorithm(registry, "logreg"));
  OC_ASSIGN_OR_RETURN(auto params, algo::Params::Parse(info->params, {"batch=" + std::to_string(o.batch)}, "logreg"));
  algo::DataInfo d;
  d.num_features = o.features;
  d.label_kind = "binary";
  d.num_classes = 2;
  OC_ASSIGN_OR_RETURN(auto algorithm, info->create(params, d));
  algo::State state(client.get(), "bench", 0, 1);
  OC_RETURN_IF_ERROR(algorithm->Initialize(state, nullptr));

  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<uint32_t> feat(0, static_cast<uint32_t>(o.features - 1));
  std::vector<data::OwnedMinibatch> pool(64);
  for (auto& b : pool) {
    b.offsets.push_back(0);
    for (int r = 0; r < o.batch; ++r) {
      std::vector<uint32_t> ids;
      while (ids.size() < static_cast<size_t>(o.nnz)) ids.push_back(feat(rng));
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      b.ids.insert(b.ids.end(), ids.begin(), ids.end());
      b.values.insert(b.values.end(), ids.size(), 1.0f);
      b.labels.push_back(rng() % 2);
      b.offsets.push_back(b.ids.size());
    }
    b.Refresh();
  }
  // Warm-up: rows exist on the server, connections and buffers are hot.
  for (size_t i = 0; i < pool.size(); ++i) {
    OC_RETURN_IF_ERROR(algorithm->Update(state, pool[i].view));
    OC_RETURN_IF_ERROR(algorithm->Finalize(state));
  }
  // One iteration = pull the batch's keys, compute, push, and wait for the push's ack.
  std::vector<double> us(o.iterations);
  for (int i = 0; i < o.iterations; ++i) {
    auto t0 = Clock::now();
    OC_RETURN_IF_ERROR(algorithm->Update(state, pool[i % pool.size()].view));
    OC_RETURN_IF_ERROR(algorithm->Finalize(state));
    us[i] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  }
  // The floor under an iteration: the same keys pulled and pushed with the bare client (no
  // algorithm), one after the other, each waited for.
  std::vector<std::vector<uint64_t>> raw_keys(pool.size());
  for (size_t i = 0; i < pool.size(); ++i) {
    raw_keys[i].assign(pool[i].ids.begin(), pool[i].ids.end());
    std::sort(raw_keys[i].begin(), raw_keys[i].end());
    raw_keys[i].erase(std::unique(raw_keys[i].begin(), raw_keys[i].end()), raw_keys[i].end());
    raw_keys[i].push_back(o.features);  // the bias key, as the algorithm pulls it
  }
  std::vector<float> wbuf, gbuf;
  std::vector<double> raw(o.iterations);
  const std::string scoped = state.Scoped("w");
  for (int i = 0; i < o.iterations; ++i) {
    const auto& keys = raw_keys[i % raw_keys.size()];
    wbuf.resize(keys.size());
    gbuf.assign(keys.size(), 0.0f);
    auto t0 = Clock::now();
    OC_RETURN_IF_ERROR(client->Pull(scoped, keys, wbuf.data()).get());
    OC_RETURN_IF_ERROR(client->Push(scoped, keys, gbuf).get());
    raw[i] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  }
  (*figures)["ps_pull_push_p50_us"] = Percentile(raw, 0.5);
  // The client's own floor: one key pulled, waited for.
  const uint64_t one_key = 0;
  for (int i = 0; i < o.iterations; ++i) {
    auto t0 = Clock::now();
    OC_RETURN_IF_ERROR(client->Pull(scoped, {&one_key, 1}, wbuf.data()).get());
    raw[i] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  }
  (*figures)["ps_one_key_pull_p50_us"] = Percentile(raw, 0.5);
  OC_ASSIGN_OR_RETURN((*figures)["loopback_ping_pong_p50_us"], PingPongP50(o.iterations));
  (*figures)["batch_distinct_keys_mean"] = [&] {
    double n = 0;
    for (const auto& k : raw_keys) n += k.size();
    return n / raw_keys.size();
  }();
  // Pipelined, as the worker loop runs: the next batch's pull overlaps this batch's compute.
  auto t0 = Clock::now();
  OC_RETURN_IF_ERROR(algorithm->Prepare(state, pool[0].view, 0));
  for (int i = 0; i < o.iterations; ++i) {
    int cur = i % 2, nxt = 1 - cur;
    OC_RETURN_IF_ERROR(algorithm->Prepare(state, pool[(i + 1) % pool.size()].view, nxt));
    OC_RETURN_IF_ERROR(algorithm->Apply(state, pool[i % pool.size()].view, cur));
  }
  OC_RETURN_IF_ERROR(algorithm->Finalize(state));
  const double pipelined_us =
      std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / o.iterations;
  (*figures)["iteration_p50_us"] = Percentile(us, 0.5);
  (*figures)["iteration_p90_us"] = Percentile(us, 0.9);
  (*figures)["iteration_p99_us"] = Percentile(us, 0.99);
  (*figures)["iteration_pipelined_mean_us"] = pipelined_us;
  (*figures)["iterations"] = o.iterations;
  (*figures)["batch_rows"] = o.batch;
  (*figures)["batch_nnz_per_row"] = o.nnz;
  client.reset();
  server->Stop();
  return Status::Ok();
}

// CTR-like rows: 26 ids, one per "field" of 2^10 values each, P(y=1) from a hidden model (the
// same model for every file of one run: it is drawn from `seed` alone).
void WriteCtr(const std::string& path, uint64_t rows, uint64_t seed, uint64_t stream) {
  std::mt19937_64 wrng(seed);
  std::normal_distribution<double> wn(0, 0.5);
  std::vector<float> w(26 << 10);
  for (auto& x : w) x = static_cast<float>(wn(wrng));
  std::mt19937_64 rng(seed * 1000003 + stream);
  std::uniform_real_distribution<double> u(0, 1);
  std::ofstream f(path);
  std::string line;
  for (uint64_t r = 0; r < rows; ++r) {
    uint32_t ids[26];
    double z = -0.5;
    for (int k = 0; k < 26; ++k) {
      ids[k] = (k << 10) + static_cast<uint32_t>(rng() & 0x3ff);
      z += w[ids[k]] * 0.3;
    }
    line = u(rng) < 1 / (1 + std::exp(-z)) ? "1" : "0";
    for (int k = 0; k < 26; ++k) line += " " + std::to_string(ids[k] + 1) + ":1";
    f << line << '\n';
  }
}

// Writes and loads a CTR dataset of `rows` training rows (and rows/10 test rows) as `name`.
Status LoadCtr(const TrainBenchOptions& o, const std::string& dir, const std::string& name,
               uint64_t rows) {
  const std::string input = dir + "/" + name + ".svm", test = dir + "/" + name + ".test.svm";
  WriteCtr(input, rows, o.seed, 1);
  WriteCtr(test, rows / 10, o.seed, 2);
  auto store = data::NewLocalStore(dir + "/store");
  data::LoadOptions lo;
  lo.input = input;
  lo.test_input = test;
  lo.dataset = name;
  OC_RETURN_IF_ERROR(data::LoadDataset(*store, lo).status());
  std::filesystem::remove(input);
  std::filesystem::remove(test);
  return Status::Ok();
}

struct RunFigures {
  runtime::TrainResult result;
  double worker_peak_rss_mb = 0;  // largest VmHWM of any worker process (0: thread workers)
};

// Trains logreg (scaling_params, no evaluation until the end, no averaging) on `dataset` with `n`
// workers, sampling the worker processes' peak RSS meanwhile.
Result<RunFigures> TrainCtr(const TrainBenchOptions& o, const std::string& dir,
                            const std::string& dataset, uint32_t n, uint64_t epochs) {
  runtime::TrainOptions t;
  t.store = dir + "/store";
  t.dataset = dataset;
  t.model = "logreg";
  t.params = o.scaling_params;
  t.workers = n;
  t.epochs = epochs;
  t.backend = o.backend;
  t.worker_binary = o.worker_binary;
  t.eval_every_seconds = 0;
  t.average_tail = 0;
  ChildRssSampler rss;
  rss.Start();
  auto r = runtime::Train(t);
  RunFigures f;
  f.worker_peak_rss_mb = rss.Stop();
  OC_RETURN_IF_ERROR(r.status());
  f.result = std::move(*r);
  return f;
}

Status Scaling(const TrainBenchOptions& o, const std::string& dir, nlohmann::json* figures,
               nlohmann::json* ratios) {
  OC_RETURN_IF_ERROR(LoadCtr(o, dir, "ctr", o.scaling_rows));
  double base = 0;
  for (uint32_t n : o.workers) {
    OC_ASSIGN_OR_RETURN(RunFigures f, TrainCtr(o, dir, "ctr", n, o.scaling_epochs));
    const runtime::TrainResult& r = f.result;
    const std::string k = "workers_" + std::to_string(n);
    (*figures)[k + "_samples_per_second"] = r.samples_per_second;
    (*figures)[k + "_test_logloss"] = *r.test.logloss;
    if (f.worker_peak_rss_mb > 0) (*figures)[k + "_worker_peak_rss_mb"] = f.worker_peak_rss_mb;
    if (o.progress)
      std::fprintf(stderr,
                   "bench train: %u workers: %.0f samples/s, test log-loss %.4f, worker peak "
                   "RSS %.1f MiB\n",
                   n, r.samples_per_second, *r.test.logloss, f.worker_peak_rss_mb);
    if (base == 0) base = r.samples_per_second;
    else (*ratios)[k + "_over_" + std::to_string(o.workers.front()) + "_samples_per_second"] =
        r.samples_per_second / base;
  }
  (*figures)["scaling_rows"] = o.scaling_rows;
  (*figures)["scaling_epochs"] = o.scaling_epochs;
  (*figures)["scaling_params"] = o.scaling_params;
  (*figures)["backend"] = o.backend;
  return Status::Ok();
}

// A worker's memory is bounded by its prefetch ring and a batch's keys, not by the dataset:
// the same work (2 worker processes, the same rows read: `memory_scale` epochs of a dataset of
// `scaling_rows` rows, then 1 epoch of one `memory_scale` times larger), each worker's peak RSS
// printed side by side. (A worker's RSS climbs over its first few hundred thousand rows to a
// plateau, so runs that read different numbers of rows are not comparable.)
Status Memory(const TrainBenchOptions& o, const std::string& dir, nlohmann::json* figures,
              nlohmann::json* ratios) {
  const uint64_t small = o.scaling_rows, large = o.scaling_rows * o.memory_scale;
  OC_RETURN_IF_ERROR(LoadCtr(o, dir, "ctr_small", small));
  OC_RETURN_IF_ERROR(LoadCtr(o, dir, "ctr_large", large));
  double peak[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    OC_ASSIGN_OR_RETURN(RunFigures f, TrainCtr(o, dir, i == 0 ? "ctr_small" : "ctr_large",
                                               o.memory_workers, i == 0 ? o.memory_scale : 1));
    peak[i] = f.worker_peak_rss_mb;
  }
  (*figures)["memory_rows_small"] = small;
  (*figures)["memory_rows_large"] = large;
  (*figures)["memory_workers"] = o.memory_workers;
  (*figures)["worker_peak_rss_mb_small"] = peak[0];
  (*figures)["worker_peak_rss_mb_large"] = peak[1];
  if (peak[0] > 0) (*ratios)["worker_peak_rss_large_over_small"] = peak[1] / peak[0];
  if (o.progress)
    std::fprintf(stderr,
                 "bench train: worker peak RSS %.1f MiB on %llu rows (%llu epochs), %.1f MiB on "
                 "%llu rows (1 epoch), %u workers\n",
                 peak[0], static_cast<unsigned long long>(small),
                 static_cast<unsigned long long>(o.memory_scale), peak[1],
                 static_cast<unsigned long long>(large), o.memory_workers);
  return Status::Ok();
}

}  // namespace

Status RunTrainBench(const TrainBenchOptions& o, nlohmann::json* result) {
  nlohmann::json figures = nlohmann::json::object(), ratios = nlohmann::json::object();
  OC_RETURN_IF_ERROR(Latency(o, &figures));
  if (o.progress)
    std::fprintf(stderr,
                 "bench train: iteration p50 %.1f us, p99 %.1f us, pipelined %.1f us; bare "
                 "client pull+push of the same keys p50 %.1f us\n",
                 figures["iteration_p50_us"].get<double>(), figures["iteration_p99_us"].get<double>(),
                 figures["iteration_pipelined_mean_us"].get<double>(),
                 figures["ps_pull_push_p50_us"].get<double>());
  ratios["iteration_p50_over_ps_pull_push_p50"] =
      figures["iteration_p50_us"].get<double>() / figures["ps_pull_push_p50_us"].get<double>();
  std::string dir = o.dir;
  bool remove = false;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/overcast-train-bench-XXXXXX";
    if (!::mkdtemp(templ.data())) return ErrnoStatus("mkdtemp", errno);
    dir = templ;
    remove = true;
  }
  Status s = o.workers.empty() || o.scaling_rows == 0 ? Status::Ok()
                                                      : Scaling(o, dir, &figures, &ratios);
  if (s.ok() && o.memory_scale > 0 && o.scaling_rows > 0 && o.backend == "processes")
    s = Memory(o, dir, &figures, &ratios);
  if (remove) std::filesystem::remove_all(dir);
  OC_RETURN_IF_ERROR(s);
  figures["peak_rss_mb"] = PeakRssMiB();
  *result = {{"bench", "train"}, {"figures", figures}, {"ratios", ratios}};
  return Status::Ok();
}

}  // namespace overcast::bench
