#include "bench/ps_bench.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "bench/child.h"
#include "common/hash.h"
#include "common/memory.h"
#include "net/connection.h"
#include "net/tcp.h"
#include "ps/client.h"

namespace overcast::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Phase {
  double keys_per_s = 0, mb_per_s = 0, p50_us = 0, p99_us = 0;
  uint64_t requests = 0;
};

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  size_t i = static_cast<size_t>(q * (v.size() - 1));
  std::nth_element(v.begin(), v.begin() + i, v.end());
  return v[i];
}

// Runs `threads` workers for `seconds`; each calls one(request_index) -> bytes moved, keeping
// its own latency samples. Returns totals.
template <typename Setup>
Phase Drive(int threads, double seconds, int keys_per_request, Setup&& setup) {
  std::vector<std::vector<double>> lat(threads);
  std::vector<uint64_t> reqs(threads, 0), bytes(threads, 0);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  Clock::time_point start, end;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      auto run = setup(t);  // returns a callable: (deadline, lat&, reqs&, bytes&)
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      run(start + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(seconds)),
          lat[t], reqs[t], bytes[t]);
    });
  }
  while (ready.load() < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  start = Clock::now();
  go = true;
  for (auto& th : ts) th.join();
  end = Clock::now();
  Phase p;
  double secs = Seconds(end - start);
  std::vector<double> all;
  uint64_t total_b = 0;
  for (int t = 0; t < threads; ++t) {
    p.requests += reqs[t];
    total_b += bytes[t];
    all.insert(all.end(), lat[t].begin(), lat[t].end());
  }
  p.keys_per_s = static_cast<double>(p.requests) * keys_per_request / secs;
  p.mb_per_s = static_cast<double>(total_b) / secs / 1e6;
  p.p50_us = Percentile(all, 0.50);
  p.p99_us = Percentile(all, 0.99);
  return p;
}

constexpr int kPool = 32;  // distinct key sets per thread, reused round robin

std::vector<std::vector<uint64_t>> KeyPool(uint64_t universe, int k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<uint64_t>> pool(kPool, std::vector<uint64_t>(k));
  for (auto& keys : pool) {
    for (auto& key : keys) key = MixKey(rng() % universe);
  }
  return pool;
}

Phase PsPhase(const ps::ClientOptions& co, bool push, int k, int conns, int depth,
              double seconds, uint64_t universe) {
  return Drive(conns, seconds, k, [&, push, k, depth](int t) {
    auto client = std::shared_ptr<ps::Client>(ps::Client::Connect(co).value().release());
    auto pool = std::make_shared<std::vector<std::vector<uint64_t>>>(
        KeyPool(universe, k, 1000 + t));
    return [client, pool, push, k, depth](Clock::time_point deadline, std::vector<double>& lat,
                                          uint64_t& reqs, uint64_t& bytes) {
      std::vector<float> grads(k, 0.001f);
      std::vector<std::vector<float>> outs(depth, std::vector<float>(k));
      struct InFlight {
        std::future<Status> f;
        Clock::time_point t0;
      };
      std::deque<InFlight> q;
      uint64_t i = 0;
      auto issue = [&] {
        const auto& keys = (*pool)[i % kPool];
        InFlight f{push ? client->Push("bench", keys, grads)
                        : client->Pull("bench", keys, outs[i % depth].data()),
                   Clock::now()};
        q.push_back(std::move(f));
        ++i;
      };
      while (Clock::now() < deadline) {
        while (static_cast<int>(q.size()) < depth) issue();
        InFlight f = std::move(q.front());
        q.pop_front();
        if (!f.f.get().ok()) std::abort();
        lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - f.t0).count());
        ++reqs;
        bytes += static_cast<uint64_t>(k) * (8 + 4);
      }
      for (auto& f : q) (void)f.f.get();
    };
  });
}

Phase RedisPhase(int port, bool set, int k, int conns, int depth, double seconds,
                 uint64_t universe) {
  return Drive(conns, seconds, k, [&, set, k, depth](int t) {
    redisContext* c = redisConnect("127.0.0.1", port);
    auto pool = KeyPool(universe, k, 1000 + t);
    // Argument vectors per pooled request: MSET k1 v1 ... or MGET k1 ...
    auto argv = std::make_shared<std::vector<std::vector<const char*>>>();
    auto argl = std::make_shared<std::vector<std::vector<size_t>>>();
    auto keys = std::make_shared<std::vector<std::vector<uint64_t>>>(std::move(pool));
    static const float kValue = 0.001f;
    for (auto& ks : *keys) {
      std::vector<const char*> a = {set ? "MSET" : "MGET"};
      std::vector<size_t> l = {4};
      for (auto& key : ks) {
        a.push_back(reinterpret_cast<const char*>(&key));
        l.push_back(8);
        if (set) {
          a.push_back(reinterpret_cast<const char*>(&kValue));
          l.push_back(4);
        }
      }
      argv->push_back(std::move(a));
      argl->push_back(std::move(l));
    }
    return [c, argv, argl, keys, depth, k](Clock::time_point deadline, std::vector<double>& lat,
                                           uint64_t& reqs, uint64_t& bytes) {
      std::deque<Clock::time_point> q;
      uint64_t i = 0;
      while (Clock::now() < deadline) {
        while (static_cast<int>(q.size()) < depth) {
          auto& a = (*argv)[i % kPool];
          redisAppendCommandArgv(c, static_cast<int>(a.size()), a.data(), (*argl)[i % kPool].data());
          q.push_back(Clock::now());
          ++i;
        }
        void* reply = nullptr;
        if (redisGetReply(c, &reply) != REDIS_OK || !reply) std::abort();
        freeReplyObject(reply);
        lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - q.front()).count());
        q.pop_front();
        ++reqs;
        bytes += static_cast<uint64_t>(k) * (8 + 4);
      }
      while (!q.empty()) {
        void* reply = nullptr;
        if (redisGetReply(c, &reply) == REDIS_OK && reply) freeReplyObject(reply);
        q.pop_front();
      }
      redisFree(c);
    };
  });
}

// One plain loopback TCP stream, the bandwidth ceiling for any protocol here: a thread sends
// 1 MiB writes, cycling through a buffer of `src_bytes` (1 MiB stays in cache; a table-sized
// one is read from memory, as a reply sent from the table is), another receives `recv_bytes`
// per call into a buffer of `dest_bytes`, cycling through it. The receive size matters on
// this kind of machine (under BBR's pacing 64 KiB receives ran 1.3-1.8x faster than 1 MiB
// ones; under reno 1 MiB ones ran faster), so the dense phase measures 64 KiB, 1 MiB and the
// client's own piece (net::kReadPiece) and takes the fastest as the loopback limit. With
// `hash`, the receiver checksums each piece right after it lands, as overcast's client checks
// a frame's payload. Both ends take `congestion` as overcast's connections do (net/tcp.h), so
// the stream and the pull move their bytes under the same TCP congestion control.
Result<double> LoopbackStreamMBps(double seconds, const std::string& congestion,
                                  size_t dest_bytes, size_t recv_bytes,
                                  bool hash = false, size_t src_bytes = 1 << 20) {
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(lfd, 1) != 0 ||
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return ErrnoStatus("loopback listen", errno);
  }
  std::atomic<uint64_t> received{0};
  std::atomic<bool> stop{false};
  std::thread rx([&] {
    int fd = ::accept(lfd, nullptr, nullptr);
    if (fd >= 0 && !net::ApplyCongestion(fd, congestion).ok()) std::abort();  // validated
    // Table-sized buffers get huge pages, as the pull's destination and the server's table do.
    std::vector<char> buf;
    ResizeForOverwrite(buf, std::max(dest_bytes, recv_bytes));
    size_t at = 0;
    Checksummer sum;
    for (;;) {
      if (at + recv_bytes > buf.size()) at = 0;
      ssize_t n = ::recv(fd, buf.data() + at, recv_bytes, 0);
      if (n > 0 && hash) sum.Update(buf.data() + at, static_cast<size_t>(n));
      if (n > 0) at += static_cast<size_t>(n);
      if (n <= 0) break;
      received.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    }
    ::close(fd);
  });
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    return ErrnoStatus("loopback connect", errno);
  }
  OC_RETURN_IF_ERROR(net::ApplyCongestion(fd, congestion));
  // 1 MiB writes, cycling through the source buffer.
  constexpr size_t kWrite = 1 << 20;
  std::vector<char> buf;
  ReserveLarge(buf, std::max(src_bytes, kWrite));
  buf.assign(std::max(src_bytes, kWrite), 'x');
  size_t from = 0;
  auto send_next = [&] {
    if (from + kWrite > buf.size()) from = 0;
    ssize_t n = ::send(fd, buf.data() + from, kWrite, 0);
    if (n > 0) from += static_cast<size_t>(n);
    return n;
  };
  // Warm up, then measure what the receiver got over the window.
  auto until = Clock::now() + std::chrono::milliseconds(200);
  while (Clock::now() < until) (void)send_next();
  uint64_t r0 = received.load();
  auto t0 = Clock::now();
  until = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < until) {
    if (send_next() < 0) break;
  }
  uint64_t r1 = received.load();
  double secs = Seconds(Clock::now() - t0);
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
  rx.join();
  ::close(lfd);
  return static_cast<double>(r1 - r0) / secs / 1e6;
}

void Say(bool on, const std::string& s) {
  if (on) std::fprintf(stderr, "bench ps: %s\n", s.c_str());
}


}  // namespace

Status RunPsBench(const PsBenchOptions& o, nlohmann::json* result) {
  nlohmann::json figures = nlohmann::json::object(), ratios = nlohmann::json::object();
  OC_RETURN_IF_ERROR(net::ValidateCongestion(o.tcp_congestion));
  ScratchDir scratch("bench-ps");  // before the children: they are killed before it goes
  const std::string& dir = scratch.path();

  // The parameter server, as its own process.
  OC_ASSIGN_OR_RETURN(int ps_port, FreeLoopbackPort());
  Child ps;
  std::vector<std::string> ps_args = {o.overcast, "ps", "--listen",
                                      "127.0.0.1:" + std::to_string(ps_port)};
  ps_args.push_back("--tcp-congestion");
  ps_args.push_back(o.tcp_congestion);
  if (o.shards) {
    ps_args.push_back("--shards");
    ps_args.push_back(std::to_string(o.shards));
  }
  OC_RETURN_IF_ERROR(ps.Start(ps_args, dir + "/ps.log"));
  if (Status up = WaitForPort(ps_port, 10); !up.ok()) {
    scratch.Keep();
    return up.WithContext("overcast ps (see " + dir + "/ps.log)");
  }
  ps::ClientOptions co;
  co.servers = {"127.0.0.1:" + std::to_string(ps_port)};
  co.tcp_congestion = o.tcp_congestion;
  OC_ASSIGN_OR_RETURN(auto admin, ps::Client::Connect(co));
  ps::TableSpec spec;
  spec.name = "bench";
  spec.dim = 1;
  spec.optimizer.kind = ps::OptimizerKind::kSgd;
  spec.optimizer.lr = 0.01f;
  const bool sparse = o.only.empty() || o.only == "sparse";
  const bool dense = o.only.empty() || o.only == "dense";
  const bool memory = (o.only.empty() || o.only == "memory") && o.memory_keys > 0;
  if (!sparse && !dense && !memory) return InvalidArgument("unknown phase '" + o.only + "'");
  OC_RETURN_IF_ERROR(admin->CreateTable(spec));
  if (sparse) {
    // Every key of the universe exists before pulls are timed.
    std::vector<uint64_t> keys(100000);
    std::vector<float> g(keys.size(), 0.0f);
    for (uint64_t b = 0; b < o.key_universe; b += keys.size()) {
      size_t n = std::min<uint64_t>(keys.size(), o.key_universe - b);
      for (size_t i = 0; i < n; ++i) keys[i] = MixKey(b + i);
      OC_RETURN_IF_ERROR(admin->Push("bench", std::span(keys.data(), n), std::span(g.data(), n)).get());
    }
  }

  // Redis, as its own process, with persistence off (the parameter server's is off too).
  Child redis;
  int redis_port = 0;
  bool have_redis = sparse && !o.redis.empty();
  if (have_redis) {
    OC_ASSIGN_OR_RETURN(redis_port, FreeLoopbackPort());
    OC_RETURN_IF_ERROR(redis.Start({o.redis, "--port", std::to_string(redis_port), "--bind",
                                    "127.0.0.1", "--save", "", "--appendonly", "no"},
                                   dir + "/redis.log"));
    Status up = WaitForPort(redis_port, 10);
    if (!up.ok()) {
      scratch.Keep();
      return Unavailable("redis-server did not start (see " + dir + "/redis.log)");
    }
    // Fill the same universe so MGET finds every key.
    redisContext* c = redisConnect("127.0.0.1", redis_port);
    if (!c || c->err) return Unavailable("cannot connect to redis");
    static const float kValue = 0.0f;
    for (uint64_t b = 0; b < o.key_universe; b += 10000) {
      std::vector<uint64_t> keys;
      std::vector<const char*> a = {"MSET"};
      std::vector<size_t> l = {4};
      for (uint64_t i = b; i < std::min(o.key_universe, b + 10000); ++i) keys.push_back(MixKey(i));
      for (auto& k : keys) {
        a.push_back(reinterpret_cast<const char*>(&k));
        l.push_back(8);
        a.push_back(reinterpret_cast<const char*>(&kValue));
        l.push_back(4);
      }
      void* r = redisCommandArgv(c, static_cast<int>(a.size()), a.data(), l.data());
      if (!r) return Unavailable("redis MSET failed");
      freeReplyObject(r);
    }
    redisFree(c);
  }

  double best_push = 0, best_pull = 0, best_set = 0, best_get = 0;
  for (int k : sparse ? o.keys_per_request : std::vector<int>{}) {
    for (int conns : o.connections) {
      for (bool push : {true, false}) {
        Phase p = PsPhase(co, push, k, conns, o.depth, o.seconds, o.key_universe);
        std::string key = std::string(push ? "push" : "pull") + "_k" + std::to_string(k) + "_c" +
                          std::to_string(conns);
        figures["ps_" + key + "_keys_per_s"] = p.keys_per_s;
        figures["ps_" + key + "_mb_per_s"] = p.mb_per_s;
        figures["ps_" + key + "_p50_us"] = p.p50_us;
        figures["ps_" + key + "_p99_us"] = p.p99_us;
        (push ? best_push : best_pull) = std::max(push ? best_push : best_pull, p.keys_per_s);
        Say(o.progress, fmt::format("overcast {}: {:.2f} M keys/s, {:.0f} MB/s, p50 {:.0f} us, "
                                    "p99 {:.0f} us",
                                    key, p.keys_per_s / 1e6, p.mb_per_s, p.p50_us, p.p99_us));
        if (have_redis) {
          Phase r = RedisPhase(redis_port, push, k, conns, o.depth, o.seconds, o.key_universe);
          std::string rkey = std::string(push ? "mset" : "mget") + "_k" + std::to_string(k) +
                             "_c" + std::to_string(conns);
          figures["redis_" + rkey + "_keys_per_s"] = r.keys_per_s;
          figures["redis_" + rkey + "_p50_us"] = r.p50_us;
          figures["redis_" + rkey + "_p99_us"] = r.p99_us;
          ratios["ps_over_redis_" + key] = p.keys_per_s / r.keys_per_s;
          (push ? best_set : best_get) = std::max(push ? best_set : best_get, r.keys_per_s);
          Say(o.progress, fmt::format("redis    {}: {:.2f} M keys/s, p50 {:.0f} us, p99 {:.0f} us "
                                      "-> overcast is {:.1f}x",
                                      rkey, r.keys_per_s / 1e6, r.p50_us, r.p99_us,
                                      p.keys_per_s / r.keys_per_s));
        }
      }
    }
  }
  if (sparse) {
    figures["ps_best_push_keys_per_s"] = best_push;
    figures["ps_best_pull_keys_per_s"] = best_pull;
  }
  if (have_redis) {
    figures["redis_best_mset_keys_per_s"] = best_set;
    figures["redis_best_mget_keys_per_s"] = best_get;
    ratios["ps_over_redis_best_push"] = best_push / best_set;
    ratios["ps_over_redis_best_pull"] = best_pull / best_get;
  }
  redis.Kill();

  // Dense pull of a dense_mb table against one plain TCP stream.
  if (dense) {
    ps::TableSpec d;
    d.name = "dense";
    d.kind = ps::TableKind::kDense;
    d.length = o.dense_mb * (1 << 20) / sizeof(float);
    d.optimizer.kind = ps::OptimizerKind::kAdd;
    OC_RETURN_IF_ERROR(admin->CreateTable(d));
    std::vector<float> out;
    ResizeForOverwrite(out, d.length);
    OC_RETURN_IF_ERROR(admin->PullDense("dense", 0, d.length, out.data()).get());  // warm-up
    // The same pulls by a client that does not check them as they land (informative: what
    // the check costs inside a pull; the bar is the checked pull's).
    ps::ClientOptions unchecked_options = co;
    unchecked_options.verify_dense_pulls = false;
    OC_ASSIGN_OR_RETURN(auto unchecked, ps::Client::Connect(unchecked_options));
    OC_RETURN_IF_ERROR(unchecked->PullDense("dense", 0, d.length, out.data()).get());
    // The two are measured in alternating slices, so that a change in the machine's load
    // during the run (other processes) weighs on both alike instead of on one of them.
    constexpr int kRounds = 5;
    const double slice = o.seconds / kRounds;
    Phase p, changed;
    double stream_1m = 0, stream_64k = 0, stream_piece = 0, stream_table_1m = 0,
           stream_table_64k = 0;
    double stream_hashed = 0, stream_same = 0, stream_copy = 0, unchecked_mb_per_s = 0;
    std::vector<double> p50s;
    const float one = 0.0f;
    // Each slice of pulls is measured after 200 ms of unmeasured pulls, as each stream is after
    // 200 ms of sending: the first pulls on a connection idle for seconds run slow whatever the
    // protocol (16 MB request-reply over a bare loopback socket after 3 s idle: the first one
    // or two took up to 28 ms, the rest 1.7-3.1; bench/README.md), and a 0.3 s slice would
    // count that against the pull alone.
    auto pulls = [&](ps::Client& client, double seconds) {
      const auto warm_until = Clock::now() + std::chrono::milliseconds(200);
      while (Clock::now() < warm_until) {
        if (!client.PullDense("dense", 0, d.length, out.data()).get().ok()) std::abort();
      }
      return Drive(1, seconds, 1, [&](int) {
        return [&](Clock::time_point deadline, std::vector<double>& lat, uint64_t& reqs,
                   uint64_t& bytes) {
          while (Clock::now() < deadline) {
            auto t0 = Clock::now();
            if (!client.PullDense("dense", 0, d.length, out.data()).get().ok()) std::abort();
            lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
            ++reqs;
            bytes += d.length * sizeof(float);
          }
        };
      });
    };
    for (int round = 0; round < kRounds; ++round) {
      // Each goes first in every other round, so that what the warm-up does not even out (the
      // streams before it leave the caches to others) weighs on both alike.
      Phase r, u;
      if (round % 2 == 0) {
        r = pulls(*admin, slice);
        u = pulls(*unchecked, slice);
      } else {
        u = pulls(*unchecked, slice);
        r = pulls(*admin, slice);
      }
      unchecked_mb_per_s += u.mb_per_s / kRounds;
      // The same pulls, each after a one-float push (untimed) that changes the table, so the
      // server hashes the range again: what a pull of freshly updated weights costs.
      Phase c = Drive(1, slice / 2, 1, [&](int) {
        return [&](Clock::time_point deadline, std::vector<double>& lat, uint64_t& reqs,
                   uint64_t& bytes) {
          while (Clock::now() < deadline) {
            if (!admin->PushDense("dense", 0, std::span<const float>(&one, 1)).get().ok()) std::abort();
            auto t0 = Clock::now();
            if (!admin->PullDense("dense", 0, d.length, out.data()).get().ok()) std::abort();
            lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
            ++reqs;
            bytes += d.length * sizeof(float);
          }
        };
      });
      const size_t table_bytes = d.length * sizeof(float);
      auto stream = [&](size_t dest, size_t recv, bool hash = false, size_t src = 1 << 20) {
        return LoopbackStreamMBps(slice, o.tcp_congestion, dest, recv, hash, src);
      };
      OC_ASSIGN_OR_RETURN(double s_big, stream(1 << 20, 1 << 20));
      OC_ASSIGN_OR_RETURN(double s_small, stream(1 << 20, 64 << 10));
      // The client's receive size: one more plain stream, and every checked stream below
      // receives in these pieces, as a pull's reply is received.
      const size_t piece = net::kReadPiece;
      OC_ASSIGN_OR_RETURN(double s_piece, stream(1 << 20, piece));
      OC_ASSIGN_OR_RETURN(double st_big, stream(table_bytes, 1 << 20));
      OC_ASSIGN_OR_RETURN(double st_small, stream(table_bytes, 64 << 10));
      OC_ASSIGN_OR_RETURN(double st_hashed, stream(table_bytes, piece, /*hash=*/true));
      OC_ASSIGN_OR_RETURN(double st_same,
                          stream(table_bytes, piece, /*hash=*/true, /*src=*/table_bytes));
      OC_ASSIGN_OR_RETURN(double st_copy,
                          stream(table_bytes, piece, /*hash=*/false, /*src=*/table_bytes));
      stream_same += st_same / kRounds;
      stream_copy += st_copy / kRounds;
      p.mb_per_s += r.mb_per_s / kRounds;  // equal slices: the mean rate is total over time
      changed.p50_us += c.p50_us / kRounds;
      stream_1m += s_big / kRounds;
      stream_64k += s_small / kRounds;
      stream_piece += s_piece / kRounds;
      stream_table_1m += st_big / kRounds;
      stream_table_64k += st_small / kRounds;
      stream_hashed += st_hashed / kRounds;
      p50s.push_back(r.p50_us);
    }
    p.p50_us = Percentile(p50s, 0.5);
    const double stream = std::max({stream_1m, stream_64k, stream_piece});
    const double stream_table = std::max(stream_table_1m, stream_table_64k);
    figures["loopback_stream_1mib_reads_mb_per_s"] = stream_1m;
    figures["loopback_stream_64kib_reads_mb_per_s"] = stream_64k;
    figures["loopback_stream_client_piece_reads_mb_per_s"] = stream_piece;
    figures["loopback_stream_into_table_1mib_reads_mb_per_s"] = stream_table_1m;
    figures["loopback_stream_into_table_64kib_reads_mb_per_s"] = stream_table_64k;
    figures["ps_dense_pull_mb_per_s"] = p.mb_per_s;
    figures["ps_dense_pull_p50_us"] = p.p50_us;
    // Drive's rate counts the untimed pushes' time too: the pulls' own rate is from their p50.
    const double changed_mb_per_s = d.length * sizeof(float) / changed.p50_us;
    figures["ps_dense_pull_changed_mb_per_s"] = changed_mb_per_s;
    figures["ps_dense_pull_changed_p50_us"] = changed.p50_us;
    figures["ps_dense_pull_unchecked_mb_per_s"] = unchecked_mb_per_s;
    figures["loopback_stream_mb_per_s"] = stream;
    figures["loopback_stream_into_table_mb_per_s"] = stream_table;
    figures["loopback_stream_hashed_mb_per_s"] = stream_hashed;
    figures["loopback_stream_same_bytes_mb_per_s"] = stream_same;
    figures["loopback_stream_table_to_table_mb_per_s"] = stream_copy;
    ratios["ps_dense_pull_over_same_bytes_loopback"] = p.mb_per_s / stream_same;
    ratios["ps_dense_pull_over_table_to_table_loopback"] = p.mb_per_s / stream_copy;
    ratios["ps_dense_pull_over_loopback"] = p.mb_per_s / stream;
    ratios["ps_dense_pull_over_loopback_into_table"] = p.mb_per_s / stream_table;
    ratios["ps_dense_pull_over_hashed_loopback"] = p.mb_per_s / stream_hashed;
    ratios["hashed_loopback_over_loopback"] = stream_hashed / stream;
    ratios["ps_dense_pull_changed_over_loopback"] = changed_mb_per_s / stream;
    ratios["ps_dense_pull_unchecked_over_loopback"] = unchecked_mb_per_s / stream;
    Say(o.progress, fmt::format("dense pull of {} MB: {:.0f} MB/s; one loopback TCP stream: "
                                "{:.0f} MB/s, the fastest of 64 KiB, {} KiB and 1 MiB reads "
                                "({:.2f} of it), "
                                "into a table-sized buffer: "
                                "{:.0f} MB/s ({:.2f} of it); hashing each piece there as the "
                                "client does: {:.0f} MB/s ({:.2f} of it; itself {:.2f} of the "
                                "plain stream); the same, sent from a table-sized buffer: "
                                "{:.0f} MB/s ({:.2f} of it), and without the hash: {:.0f} MB/s "
                                "({:.2f} of it); a pull after each push (hashed "
                                "again): {:.0f} MB/s ({:.2f}); a pull not checked as it "
                                "lands: {:.0f} MB/s ({:.2f})",
                                o.dense_mb, p.mb_per_s, stream, net::kReadPiece >> 10,
                                p.mb_per_s / stream,
                                stream_table, p.mb_per_s / stream_table, stream_hashed,
                                p.mb_per_s / stream_hashed, stream_hashed / stream,
                                stream_same, p.mb_per_s / stream_same, stream_copy,
                                p.mb_per_s / stream_copy, changed_mb_per_s,
                                changed_mb_per_s / stream, unchecked_mb_per_s,
                                unchecked_mb_per_s / stream));
    OC_RETURN_IF_ERROR(admin->DropTable("dense"));
  }

  // Memory: memory_keys keys of width 2 in a fresh table.
  if (memory) {
    ps::TableSpec m;
    m.name = "memory";
    m.dim = 2;
    m.optimizer.kind = ps::OptimizerKind::kAdd;
    OC_RETURN_IF_ERROR(admin->CreateTable(m));
    uint64_t rss0 = ResidentBytesOf(ps.pid());
    std::vector<uint64_t> keys(100000);
    std::vector<float> g(2 * keys.size(), 1.0f);
    auto t0 = Clock::now();
    for (uint64_t b = 0; b < o.memory_keys; b += keys.size()) {
      size_t n = std::min<uint64_t>(keys.size(), o.memory_keys - b);
      for (size_t i = 0; i < n; ++i) keys[i] = MixKey((1ULL << 40) + b + i);
      OC_RETURN_IF_ERROR(
          admin->Push("memory", std::span(keys.data(), n), std::span(g.data(), 2 * n)).get());
    }
    double secs = Seconds(Clock::now() - t0);
    uint64_t rss1 = ResidentBytesOf(ps.pid());
    OC_ASSIGN_OR_RETURN(auto stats, admin->Stats());
    uint64_t table_bytes = 0;
    for (auto& s : stats[0]["shard_stats"]) table_bytes += s["tables"]["memory"]["bytes"].get<uint64_t>();
    double raw = static_cast<double>(o.memory_keys) * (8 + 2 * 4);
    figures["memory_keys"] = o.memory_keys;
    figures["memory_insert_keys_per_s"] = o.memory_keys / secs;
    figures["memory_table_bytes_per_key"] = table_bytes / static_cast<double>(o.memory_keys);
    figures["memory_resident_bytes_per_key"] =
        static_cast<double>(rss1 - rss0) / static_cast<double>(o.memory_keys);
    ratios["memory_resident_over_raw"] = static_cast<double>(rss1 - rss0) / raw;
    ratios["memory_table_over_raw"] = table_bytes / raw;
    Say(o.progress, fmt::format("{} keys of width 2: {:.1f} table bytes/key, {:.1f} resident "
                                "bytes/key (raw 16)",
                                o.memory_keys, table_bytes / static_cast<double>(o.memory_keys),
                                static_cast<double>(rss1 - rss0) / o.memory_keys));
  }
  admin.reset();
  ps.Kill();
  (*result) = {{"bench", "ps"},
               {"tcp_congestion", o.tcp_congestion},
               {"figures", figures},
               {"ratios", ratios}};
  (*result)["figures"]["redis_ran"] = have_redis;
  return Status::Ok();
}

}  // namespace overcast::bench
