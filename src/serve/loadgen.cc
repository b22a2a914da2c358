#include "serve/loadgen.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

namespace overcast::serve {
namespace {

using Clock = std::chrono::steady_clock;

double Pct(std::vector<float>& v, double q) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(std::ceil(q * v.size())) - 1);
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

}  // namespace

Result<std::vector<double>> MakeTrace(const std::string& pattern, double base, double peak,
                                      int seconds, uint64_t seed) {
  if (seconds <= 0) return InvalidArgument("trace length must be positive");
  if (base < 0 || peak < 0) return InvalidArgument("rates must be non-negative");
  std::vector<double> r(seconds, base);
  if (pattern == "constant") return r;
  if (pattern == "diurnal") {
    for (int i = 0; i < seconds; ++i) {
      r[i] = base + (peak - base) * 0.5 * (1 - std::cos(2 * M_PI * i / seconds));
    }
    return r;
  }
  if (pattern == "bursty") {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < seconds;) {
      if (u(rng) < 1.0 / 8) {
        const int len = 2 + static_cast<int>(u(rng) * 5);
        for (int k = 0; k < len && i < seconds; ++k, ++i) r[i] = peak;
      } else {
        ++i;
      }
    }
    return r;
  }
  return InvalidArgument("unknown trace pattern '" + pattern + "' (constant, diurnal or bursty)");
}

Result<std::vector<double>> ReadTraceCsv(const std::string& path) {
  std::ifstream f(path);
  if (!f) return NotFound("trace " + path + ": cannot open");
  std::vector<double> r;
  std::string line;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::string last = line.substr(line.find_last_of(',') == std::string::npos ? 0 : line.find_last_of(',') + 1);
    char* end = nullptr;
    const double v = std::strtod(last.c_str(), &end);
    if (end == last.c_str() || !std::isfinite(v) || v < 0) {
      if (lineno == 1) continue;  // a header
      return InvalidArgument(fmt::format("trace {}:{}: expected a non-negative rate, found '{}'",
                                         path, lineno, last));
    }
    r.push_back(v);
  }
  if (r.empty()) return InvalidArgument("trace " + path + ": no rates");
  return r;
}

std::string PredictBody(int rows, int nnz, uint64_t num_features, std::mt19937_64& rng) {
  std::uniform_int_distribution<uint64_t> fid(0, num_features - 1);
  std::uniform_real_distribution<float> val(0, 1);
  std::string b = "{\"instances\":[";
  for (int r = 0; r < rows; ++r) {
    std::vector<uint64_t> ids;
    for (int k = 0; k < nnz; ++k) ids.push_back(fid(rng));
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    b += r ? ",{\"ids\":[" : "{\"ids\":[";
    for (size_t k = 0; k < ids.size(); ++k) b += (k ? "," : "") + std::to_string(ids[k]);
    b += "],\"values\":[";
    for (size_t k = 0; k < ids.size(); ++k) b += fmt::format("{}{:.4f}", k ? "," : "", val(rng));
    b += "]}";
  }
  return b + "]}";
}

std::string BaseUrl(const LoadgenOptions& o) {
  return fmt::format("{}://{}:{}", o.tls ? "https" : "http", o.host, o.port);
}

// A client of the server under test: HTTPS when asked, the server's certificate checked against
// o.ca_cert or the system's store, and the bearer token on every request.
httplib::Client NewClient(const LoadgenOptions& o) {
  httplib::Client c(BaseUrl(o));
  if (o.tls) {
    c.enable_server_certificate_verification(true);
    if (!o.ca_cert.empty()) c.set_ca_cert_path(o.ca_cert);
  }
  if (!o.bearer_token.empty()) c.set_bearer_token_auth(o.bearer_token);
  return c;
}

Result<LoadgenResult> RunLoadgen(const LoadgenOptions& o) {
  if (o.rates.empty()) return InvalidArgument("empty trace");
  if (o.connections < 1) return InvalidArgument("--connections must be >= 1");
  uint64_t num_features = o.num_features;
  {
    httplib::Client c = NewClient(o);
    c.set_connection_timeout(2, 0);
    const std::string url = BaseUrl(o);
    auto res = c.Get("/v1/models");
    if (!res) {
      std::string why = httplib::to_string(res.error());
      if (const long v = o.tls ? c.get_openssl_verify_result() : X509_V_OK; v != X509_V_OK) {
        why += fmt::format(": {} (--ca-cert names the certificate to trust)",
                           X509_verify_cert_error_string(v));
      } else if (!o.tls && res.error() == httplib::Error::Read) {
        why += " (does the server speak HTTPS? then add --tls)";
      }
      return Unavailable(fmt::format("cannot reach {}/v1/models: {}", url, why));
    }
    if (res->status == 401) {
      return PermissionDenied(fmt::format("{} refused the request (401): it needs the server's "
                                          "secret (--secret-file)", url));
    }
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    bool found = false;
    if (j.is_object() && j.contains("models")) {
      for (auto& m : j["models"]) {
        if (m.value("name", "") == o.model) {
          found = true;
          if (num_features == 0) num_features = m.value("num_features", uint64_t{0});
        }
      }
    }
    if (!found) return InvalidArgument("the server has no model '" + o.model + "'");
  }
  if (num_features == 0) return InvalidArgument("model has no features");

  // Arrival schedule (seconds from start) and a pool of request bodies.
  std::mt19937_64 rng(o.seed);
  std::vector<double> arrivals;
  for (size_t sec = 0; sec < o.rates.size(); ++sec) {
    const double rate = o.rates[sec];
    if (rate <= 0) continue;
    if (o.poisson) {
      std::exponential_distribution<double> gap(rate);
      double t = sec + gap(rng);
      while (t < sec + 1) {
        arrivals.push_back(t);
        t += gap(rng);
      }
    } else {
      const int n = static_cast<int>(std::lround(rate));
      for (int k = 0; k < n; ++k) arrivals.push_back(sec + (k + 0.5) / n);
    }
  }
  std::vector<std::string> bodies(256);
  for (auto& b : bodies) b = PredictBody(o.rows_per_request, o.nnz, num_features, rng);

  const size_t n = arrivals.size();
  std::vector<float> lat_ms(n, 0);
  std::vector<int16_t> code(n, 0);
  std::vector<float> lag_ms(n, 0);
  std::atomic<size_t> next{0};
  const std::string path = "/v1/models/" + o.model + ":predict";
  // Connections are opened before the clock starts, one at a time: a burst of connects can
  // overflow a small listen backlog, and a dropped SYN costs a 1 s retransmit inside the
  // measurement.
  std::mutex connect_mu;
  std::atomic<int> connected{0};
  std::atomic<bool> go{false};
  Clock::time_point start;
  auto worker = [&] {
    httplib::Client c = NewClient(o);
    c.set_keep_alive(true);
    c.set_tcp_nodelay(true);
    c.set_connection_timeout(2, 0);
    const auto to = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::duration<double>(o.timeout_s));
    c.set_read_timeout(to.count() / 1000000, to.count() % 1000000);
    {
      std::lock_guard<std::mutex> l(connect_mu);
      (void)c.Get("/healthz");
    }
    ++connected;
    while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    while (true) {
      const size_t i = next.fetch_add(1);
      if (i >= n) return;
      const auto when = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(arrivals[i]));
      std::this_thread::sleep_until(when);
      const auto sent = Clock::now();
      lag_ms[i] = std::chrono::duration<float, std::milli>(sent - when).count();
      auto res = c.Post(path, bodies[i % bodies.size()], "application/json");
      lat_ms[i] = std::chrono::duration<float, std::milli>(Clock::now() - when).count();
      code[i] = res ? static_cast<int16_t>(res->status) : -1;
    }
  };
  std::vector<std::thread> threads;
  for (int k = 0; k < o.connections; ++k) threads.emplace_back(worker);
  while (connected < o.connections) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  start = Clock::now() + std::chrono::milliseconds(20);
  go = true;
  for (auto& t : threads) t.join();
  LoadgenResult r;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();

  const size_t nw = static_cast<size_t>(std::ceil(o.rates.size() / o.window_s));
  std::vector<std::vector<float>> per(nw);
  r.windows.resize(nw);
  std::vector<float> all;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t w = std::min(nw - 1, static_cast<size_t>(arrivals[i] / o.window_s));
    LoadWindow& W = r.windows[w];
    ++W.sent;
    ++r.sent;
    r.max_start_lag_ms = std::max<double>(r.max_start_lag_ms, lag_ms[i]);
    if (code[i] == 200) {
      ++W.ok;
      ++r.ok;
    } else if (code[i] == 503) {
      ++W.rejected;
      ++r.rejected;
    } else {
      ++W.errors;
      ++r.errors;
    }
    // Every request counts toward latency, failures included (a refusal is not a fast success).
    per[w].push_back(lat_ms[i]);
    all.push_back(lat_ms[i]);
    sum += lat_ms[i];
  }
  for (size_t w = 0; w < nw; ++w) {
    LoadWindow& W = r.windows[w];
    W.start_s = w * o.window_s;
    W.p50_ms = Pct(per[w], 0.5);
    W.p90_ms = Pct(per[w], 0.9);
    W.p99_ms = Pct(per[w], 0.99);
    W.max_ms = per[w].empty() ? 0 : *std::max_element(per[w].begin(), per[w].end());
  }
  r.mean_ms = n ? sum / n : 0;
  r.max_ms = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
  r.p50_ms = Pct(all, 0.5);
  r.p90_ms = Pct(all, 0.9);
  r.p99_ms = Pct(all, 0.99);
  r.achieved_rps = r.seconds > 0 ? (r.ok + r.rejected + r.errors) / r.seconds : 0;
  return r;
}

}  // namespace overcast::serve
