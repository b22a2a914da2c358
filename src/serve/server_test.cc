// The server with real replica processes: bad input, overload, a replica killed under load, and
// a reload of the model files under load.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/version.h"
#include "net/tcp.h"
#include "serve/http_server.h"
#include "serve/loadgen.h"
#include "serve/predictor.h"
#include "serve/server.h"

namespace overcast::serve {
namespace {

namespace fs = std::filesystem;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("OVERCAST_BIN");
    if (!bin) GTEST_SKIP() << "OVERCAST_BIN not set (run through ctest)";
    bin_ = bin;
    dir_ = (fs::temp_directory_path() / ("oc-srv-" + std::to_string(::getpid()))).string();
    fs::create_directories(dir_);
    ASSERT_TRUE(WriteRandomLinearModel(dir_ + "/ctr.model", "ctr", Task::kBinary, 1000, 2, 1).ok());
    ASSERT_TRUE(WriteRandomLinearModel(dir_ + "/digits.model", "digits", Task::kMulticlass, 784, 10, 2).ok());
  }
  void TearDown() override {
    server_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  ServeOptions Options() {
    ServeOptions o;
    o.model_paths = {dir_ + "/ctr.model", dir_ + "/digits.model"};
    o.port = 0;
    o.replicas = 2;
    o.controller = "static";
    o.static_cores = 1.0;
    o.cgroup = "none";
    o.replica_bin = bin_;
    o.threads = 64;
    o.max_body_bytes = 64 * 1024;
    return o;
  }
  // Replica-count scaling that answers within a test's seconds: static 1 core each, and above
  // 0.3 cores used a group wants two replicas.
  ServeOptions CountingOptions(int replicas, int max_replicas) {
    ServeOptions o = Options();
    o.replicas = replicas;
    o.max_replicas = max_replicas;
    o.scale_utilization = 0.3;
    o.scale_interval_s = 0.5;
    o.scale_down_window_s = 2;
    o.max_body_bytes = 8 << 20;  // HeavyDigits' requests
    return o;
  }
  void StartServer(ServeOptions o) {
    server_ = std::make_unique<Server>(std::move(o));
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.message();
  }
  httplib::Client Client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(10, 0);
    return c;
  }
  // Waits up to `seconds` for replica `slot` to run as another process than `victim`, with at
  // least `restarts` restarts counted; returns its pid then (victim or -1 when it did not).
  pid_t WaitForReplacement(int slot, pid_t victim, uint64_t restarts, double seconds) {
    pid_t now = -1;
    for (int i = 0; i < seconds * 50; ++i) {
      now = server_->replica_pid(slot);
      if (now > 0 && now != victim && server_->totals().replica_restarts >= restarts) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return now;
  }
  // What ReplaceUnderTraffic saw: the replica's process before and after (the same when it
  // was not replaced), and the traffic's answers.
  struct Replacement {
    pid_t victim = -1, now = -1;
    int ok = 0, failed = 0;
    std::string first_failure;
  };
  Replacement ReplaceUnderTraffic(int sig, double seconds);
  std::string bin_, dir_;
  std::unique_ptr<Server> server_;
};

std::string ErrorMessage(const httplib::Result& r) {
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "error body is not JSON: " << r->body;
  if (j.is_discarded()) return "";
  EXPECT_EQ(j["error"]["code"], r->status);
  return j["error"]["message"].get<std::string>();
}

// A plain TCP connection to 127.0.0.1:port, for bytes no HTTP client would send; -1 on failure.
int ConnectRaw(int port) { return net::ConnectLoopback(port); }

// Whether `got` holds a whole HTTP response: its headers, then Content-Length bytes of body.
bool WholeResponse(const std::string& got) {
  const size_t end = got.find("\r\n\r\n");
  const size_t cl = got.find("Content-Length: ");
  return end != std::string::npos && cl != std::string::npos &&
         got.size() >= end + 4 + std::stoul(got.substr(cl + 16));
}

// One whole response read from `fd` (its pieces may come in separate segments); what arrived so
// far when the peer closes or `fd`'s receive timeout passes first.
std::string ReadResponse(int fd) {
  std::string got;
  char buf[4096];
  while (!WholeResponse(got)) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// 300 dense rows for `digits`: a request that keeps a replica busy.
std::string HeavyDigits() {
  std::vector<std::vector<float>> rows(300, std::vector<float>(784, 0.25f));
  return nlohmann::json({{"instances", rows}}).dump();
}

// Client threads that post one predict request after another to `port` until stopped (by
// default a small `ctr` request, back to back; or `body` to `model`, pausing `pause_ms` after
// each), counting answers that are 200 and those that are not (the first failure kept for
// messages).
class Traffic {
 public:
  Traffic(int port, int threads, std::string model = "ctr",
          std::string body = R"({"instances":[{"ids":[1,2,3]}]})", int pause_ms = 0) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, port, model, body, pause_ms] {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(10, 0);
        while (!stop_) {
          auto r = c.Post("/v1/models/" + model + ":predict", body, "application/json");
          if (pause_ms) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
          if (r && r->status == 200) {
            ++ok_;
            continue;
          }
          ++failed_;
          std::lock_guard<std::mutex> l(mu_);
          if (first_failure_.empty()) first_failure_ = r ? r->body : httplib::to_string(r.error());
        }
      });
    }
  }
  ~Traffic() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) if (t.joinable()) t.join();
  }
  int ok() const { return ok_; }
  int failed() const { return failed_; }
  std::string first_failure() {
    std::lock_guard<std::mutex> l(mu_);
    return first_failure_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  std::mutex mu_;
  std::string first_failure_;
  std::vector<std::thread> threads_;
};

// The value of the first series in `metrics` that begins with `series` (a name and the start
// of its labels, or a name and a space for a series without labels); -1 when there is none.
double Metric(const std::string& metrics, const std::string& series) {
  const size_t at = metrics.find("\n" + series);
  if (at == std::string::npos) return -1;
  if (series.ends_with(' ')) return std::strtod(metrics.c_str() + at + 1 + series.size(), nullptr);
  return std::strtod(metrics.c_str() + metrics.find("} ", at) + 2, nullptr);
}

// What breaks the Prometheus text format's grouping in `text`, or "" when nothing does: each
// family's TYPE line comes once and before its samples, and its samples (a histogram's _bucket,
// _sum and _count too) are one group.
std::string UngroupedFamily(const std::string& text) {
  std::map<std::string, std::string> types;  // family -> its TYPE
  std::set<std::string> seen;                // families whose samples began
  std::string current;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("# TYPE ")) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      if (!types.emplace(name, type).second) return "a second TYPE line: " + line;
      if (seen.contains(name)) return "a TYPE line after its samples: " + line;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const std::string name = line.substr(0, line.find_first_of("{ "));
    std::string family = name;
    for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
      const std::string base = name.substr(0, name.size() - std::min(name.size(), suffix.size()));
      if (name.ends_with(suffix) && types.contains(base) && types[base] == "histogram") {
        family = base;
      }
    }
    if (family == current) continue;
    if (!seen.insert(family).second) return family + "'s samples are split, again at: " + line;
    current = family;
  }
  return "";
}

TEST_F(ServerTest, AnswersAndRefusesBadInputWithJsonErrors) {
  StartServer(Options());
  auto c = Client();
  auto ok = c.Post("/v1/models/ctr:predict", R"({"instances":[{"ids":[1,999],"values":[0.5,2]},{"ids":[3]}]})",
                   "application/json");
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  auto j = nlohmann::json::parse(ok->body);
  ASSERT_EQ(j["predictions"].size(), 2u);
  EXPECT_EQ(j["predictions"][0]["probabilities"].size(), 2u);

  std::vector<float> dense(784, 0.5f);
  auto d = c.Post("/v1/models/digits:predict", nlohmann::json({{"instances", {dense}}}).dump(),
                  "application/json");
  ASSERT_TRUE(d);
  ASSERT_EQ(d->status, 200) << d->body;
  EXPECT_EQ(nlohmann::json::parse(d->body)["predictions"][0]["probabilities"].size(), 10u);

  auto r = c.Post("/v1/models/ctr:predict", "{not json", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(ErrorMessage(r).find("JSON"), std::string::npos);

  r = c.Post("/v1/models/ctr:predict", R"({"instances":[{"ids":[1000]}]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(ErrorMessage(r).find("out of range"), std::string::npos);

  // Finite values whose sum overflows the model's scores: a 400, not a 200 with a NaN in it.
  std::string ids = "1", values = "3e38";
  for (int k = 1; k < 200; ++k) {
    ids += ",1";
    values += ",3e38";
  }
  r = c.Post("/v1/models/digits:predict",
             R"({"instances":[{"ids":[)" + ids + R"(],"values":[)" + values + "]}]}",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(ErrorMessage(r).find("no finite output"), std::string::npos);

  r = c.Post("/v1/models/nosuch:predict", R"({"instances":[[1]]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(ErrorMessage(r).find("nosuch"), std::string::npos);

  // Bytes that are not UTF-8 in the path or the query still get a JSON 4xx.
  r = c.Post("/v1/models/%ff%fe:predict", R"({"instances":[[1]]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404) << r->body;
  EXPECT_NE(ErrorMessage(r).find("unknown model"), std::string::npos);
  r = c.Post("/v1/models/ctr:predict?min_accuracy=%ff", R"({"instances":[[1]]})",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(ErrorMessage(r).find("min_accuracy"), std::string::npos);

  r = c.Post("/v1/models/ctr:predict", std::string(100 * 1024, ' '), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  ErrorMessage(r);

  r = c.Get("/nowhere");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  ErrorMessage(r);

  // A compressed body is refused before it is read: a few hundred kB of gzip can inflate to
  // gigabytes in memory. The headers alone get the 415; the body promised is never sent.
  {
    const int fd = ConnectRaw(server_->port());
    ASSERT_GE(fd, 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string head = "POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\n"
                             "Content-Encoding: gzip\r\nContent-Length: 100000000\r\n\r\n";
    ASSERT_EQ(::send(fd, head.data(), head.size(), 0), ssize_t(head.size()));
    const std::string got = ReadResponse(fd);
    ::close(fd);
    ASSERT_TRUE(WholeResponse(got)) << "no whole answer before the body: " << got;
    EXPECT_EQ(got.rfind("HTTP/1.1 415", 0), 0u) << got;
    EXPECT_NE(got.find("Content-Encoding 'gzip' is not accepted"), std::string::npos) << got;
  }

  // Still serving everyone else, on the same keep-alive connection.
  ok = c.Post("/v1/models/ctr:predict", R"({"instances":[[0,1,0]]})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  auto h = c.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  // The ctr 400s: not JSON, a feature id out of range, a min_accuracy that is not a number.
  EXPECT_NE(m->body.find("overcast_serve_requests_total{model=\"ctr\",code=\"400\"} 3"),
            std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find("overcast_serve_replica_cpu_limit_cores{replica=\"1\""), std::string::npos);
  EXPECT_NE(m->body.find("overcast_serve_replica_cfs_period_us{replica=\"1\""), std::string::npos);
  EXPECT_NE(m->body.find("overcast_serve_request_duration_seconds_bucket"), std::string::npos);
}

// KServe's V2 protocol beside V1: an infer request gets the same predictions as V1 as output
// tensors; errors are {"error": "..."}; the health, readiness and metadata endpoints answer.
TEST_F(ServerTest, SpeaksKServesV2Protocol) {
  StartServer(Options());
  auto c = Client();
  const std::string v2 = R"({"id":"q7","inputs":[{"name":"features","shape":[2,3],
                             "datatype":"FP32","data":[1,0,0.5,0,2,0]}]})";
  auto r = c.Post("/v2/models/ctr/infer", v2, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["model_name"], "ctr");
  EXPECT_EQ(j["id"], "q7");
  auto v1 = c.Post("/v1/models/ctr:predict", R"({"instances":[[1,0,0.5],[0,2,0]]})",
                   "application/json");
  ASSERT_TRUE(v1 && v1->status == 200);
  const auto p = nlohmann::json::parse(v1->body)["predictions"];
  ASSERT_EQ(j["outputs"].size(), 2u) << r->body;
  EXPECT_EQ(j["outputs"][0]["name"], "label");
  EXPECT_EQ(j["outputs"][0]["data"], nlohmann::json({p[0]["label"], p[1]["label"]}));
  EXPECT_EQ(j["outputs"][1]["name"], "probabilities");
  EXPECT_EQ(j["outputs"][1]["shape"], nlohmann::json::parse("[2,2]"));
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_DOUBLE_EQ(j["outputs"][1]["data"][k].get<double>(),
                     p[k / 2]["probabilities"][k % 2].get<double>());
  }
  // Errors: the tensor, an unknown model, a row the model refuses.
  auto error = [&](const std::string& path, const std::string& body, int code) {
    auto e = c.Post(path, body, "application/json");
    if (!e) return std::string("no answer");
    EXPECT_EQ(e->status, code) << path << " " << body << " " << e->body;
    const auto ej = nlohmann::json::parse(e->body, nullptr, false);
    return ej.is_object() && ej["error"].is_string() ? ej["error"].get<std::string>() : e->body;
  };
  EXPECT_NE(error("/v2/models/ctr/infer", R"({"inputs":[]})", 400).find("one tensor"),
            std::string::npos);
  EXPECT_NE(error("/v2/models/nope/infer", v2, 404).find("unknown model 'nope'"),
            std::string::npos);
  std::string wide = R"({"inputs":[{"name":"f","shape":[1,1001],"datatype":"FP32","data":[0)";
  for (int i = 0; i < 1000; ++i) wide += ",0";
  EXPECT_NE(error("/v2/models/ctr/infer", wide + "]}]}", 400).find("1000 features"),
            std::string::npos);
  // Health, readiness, metadata.
  for (const std::string path : {"/v2/health/live", "/v2/health/ready", "/v2/models/ctr/ready"}) {
    auto h = c.Get(path);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 200) << path << " " << h->body;
  }
  auto meta = c.Get("/v2/models/digits");
  ASSERT_TRUE(meta && meta->status == 200);
  const auto mj = nlohmann::json::parse(meta->body);
  EXPECT_EQ(mj["name"], "digits");
  EXPECT_EQ(mj["inputs"][0]["shape"], nlohmann::json::parse("[-1,784]"));
  EXPECT_EQ(mj["outputs"].back()["shape"], nlohmann::json::parse("[-1,10]"));
  auto none = c.Get("/v2/models/nope");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
  auto none_ready = c.Get("/v2/models/nope/ready");
  ASSERT_TRUE(none_ready);
  EXPECT_EQ(none_ready->status, 404);
  // V2 requests count in the front end's metrics like V1's.
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(Metric(m->body, "overcast_serve_requests_total{model=\"ctr\",code=\"400\""), 2)
      << m->body;
}

// The rest of V2: "outputs" picks the tensors an answer carries (an unknown one is a 400 before
// any replica predicts), paths that name version 1 are the model's own, any other version is a
// 404, GET /v2 is the server's metadata, and tensors travel as binary data when asked.
TEST_F(ServerTest, V2AnswersTheOutputsAskedForAndItsVersionPaths) {
  StartServer(Options());
  auto c = Client();
  const std::string input =
      R"({"name":"features","shape":[2,3],"datatype":"FP32","data":[1,0,0.5,0,2,0]})";
  auto r = c.Post("/v2/models/ctr/versions/1/infer",
                  R"({"inputs":[)" + input + R"(],"outputs":[{"name":"probabilities"}]})",
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = nlohmann::json::parse(r->body);
  ASSERT_EQ(j["outputs"].size(), 1u) << r->body;
  EXPECT_EQ(j["outputs"][0]["name"], "probabilities");
  EXPECT_EQ(j["outputs"][0]["shape"], nlohmann::json::parse("[2,2]"));
  auto status = [&](const std::string& path, const std::string& body = "") {
    auto a = body.empty() ? c.Get(path) : c.Post(path, body, "application/json");
    return a ? std::make_pair(a->status, a->body) : std::make_pair(-1, std::string());
  };
  const auto [unknown, unknown_body] = status(
      "/v2/models/ctr/infer", R"({"inputs":[)" + input + R"(],"outputs":[{"name":"value"}]})");
  EXPECT_EQ(unknown, 400);
  EXPECT_EQ(nlohmann::json::parse(unknown_body)["error"],
            "unknown output 'value'; the model's outputs: label, probabilities");
  const auto [v2, v2_body] =
      status("/v2/models/ctr/versions/2/infer", R"({"inputs":[)" + input + "]}");
  EXPECT_EQ(v2, 404);
  EXPECT_EQ(nlohmann::json::parse(v2_body)["error"],
            "model 'ctr' has no version '2'; its one version is 1");
  EXPECT_EQ(status("/v2/models/ctr/versions/1").first, 200);
  EXPECT_EQ(status("/v2/models/ctr/versions/1/ready").first, 200);
  EXPECT_EQ(status("/v2/models/ctr/versions/7").first, 404);
  EXPECT_EQ(status("/v2/models/ctr/versions/7/ready").first, 404);
  const auto [meta, meta_body] = status("/v2");
  EXPECT_EQ(meta, 200);
  const auto server = nlohmann::json::parse(meta_body);
  EXPECT_EQ(server["name"], "overcast");
  EXPECT_EQ(server["version"], std::string(Version()));
  EXPECT_EQ(server["extensions"], nlohmann::json::parse(R"(["binary_tensor_data"])"));
  // Binary tensor data both ways, as Triton's clients send it: the same rows as the JSON
  // request above, the probabilities back as FP32 bytes after the JSON, equal to its answer's.
  std::string features(6 * sizeof(float), '\0');
  const float values[] = {1, 0, 0.5f, 0, 2, 0};
  std::memcpy(features.data(), values, features.size());
  const std::string head =
      R"({"inputs":[{"name":"features","shape":[2,3],"datatype":"FP32",)"
      R"("parameters":{"binary_data_size":24}}],"outputs":[{"name":"probabilities"}],)"
      R"("parameters":{"binary_data_output":true}})";
  auto b = c.Post("/v2/models/ctr/infer",
                  {{"Inference-Header-Content-Length", std::to_string(head.size())}},
                  head + features, "application/octet-stream");
  ASSERT_TRUE(b);
  ASSERT_EQ(b->status, 200) << b->body;
  EXPECT_EQ(b->get_header_value("Content-Type"), "application/octet-stream");
  const size_t json_bytes = std::stoul(b->get_header_value("Inference-Header-Content-Length"));
  ASSERT_LE(json_bytes, b->body.size());
  const auto bj = nlohmann::json::parse(b->body.substr(0, json_bytes));
  EXPECT_EQ(bj["outputs"][0]["parameters"]["binary_data_size"], 16);
  ASSERT_EQ(b->body.size() - json_bytes, 4 * sizeof(float));
  for (size_t k = 0; k < 4; ++k) {
    float p = 0;
    std::memcpy(&p, b->body.data() + json_bytes + k * sizeof(float), sizeof(float));
    EXPECT_EQ(p, j["outputs"][0]["data"][k].get<float>()) << k;
  }
  auto bad = c.Post("/v2/models/ctr/infer", {{"Inference-Header-Content-Length", "12x"}},
                    head + features, "application/octet-stream");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(nlohmann::json::parse(bad->body)["error"],
            "Inference-Header-Content-Length must be a byte count, not '12x'");
  // Only the requests that reached a replica count as 200s; those refused count as theirs.
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(Metric(m->body, "overcast_serve_requests_total{model=\"ctr\",code=\"200\""), 2)
      << m->body;
  EXPECT_EQ(Metric(m->body, "overcast_serve_requests_total{model=\"ctr\",code=\"400\""), 2);
  EXPECT_EQ(Metric(m->body, "overcast_serve_requests_total{model=\"ctr\",code=\"404\""), 1);
  EXPECT_EQ(Metric(m->body, "overcast_build_info{version=\"" + std::string(Version()) + "\""), 1);
}

// --access-log: a JSON line per request the front end answered, each with what it was and how
// it ended, all written by the time the server has stopped.
TEST_F(ServerTest, TheAccessLogHasALinePerAnswer) {
  ServeOptions o = Options();
  o.access_log.path = dir_ + "/access.log";
  StartServer(o);
  auto c = Client();
  const std::string body = R"({"instances":[{"ids":[1,2,3]}]})";
  for (int i = 0; i < 3; ++i) {
    auto r = c.Post("/v1/models/ctr:predict", body, "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }
  auto missing = c.Post("/v1/models/nope:predict?x=1", body, "application/json");
  ASSERT_TRUE(missing);
  ASSERT_EQ(missing->status, 404);
  {  // a head past the bounds: the connection loop's own 431 (never routed) gets its line too
    std::string head = "GET /v1/models HTTP/1.1\r\nHost: x\r\n";
    for (size_t i = 0; i <= kMaxHeaderFields; ++i) head += fmt::format("X-{}: y\r\n", i);
    const int fd = ConnectRaw(server_->port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(head.size()));
    const std::string got = ReadResponse(fd);
    ::close(fd);
    ASSERT_EQ(got.rfind("HTTP/1.1 431", 0), 0u) << got;
  }
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(Metric(m->body, "overcast_serve_access_log_dropped_total "), 0) << m->body;
  EXPECT_EQ(Metric(m->body, "overcast_serve_connection_answers_total{code=\"431\"} "), 1)
      << m->body;
  EXPECT_EQ(Metric(m->body, "overcast_serve_connection_answers_total{code=\"408\"} "), 0);
  server_->Stop();
  std::ifstream in(dir_ + "/access.log");
  std::vector<nlohmann::json> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 7u);  // the /metrics above too
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& j = lines[i];
    EXPECT_EQ(j["remote"], "127.0.0.1") << j;
    EXPECT_GT(j["ms"].get<double>(), 0) << j;
    EXPECT_GT(j["out"].get<size_t>(), 0u) << j;
    EXPECT_EQ(j["time"].get<std::string>().size(), 24u) << j;  // 2026-12-04T04:46:00.971Z
    if (i < 3) {
      EXPECT_EQ(j["method"], "POST") << j;
      EXPECT_EQ(j["target"], "/v1/models/ctr:predict") << j;
      EXPECT_EQ(j["status"], 200) << j;
      EXPECT_EQ(j["in"], body.size()) << j;
    }
  }
  EXPECT_EQ(lines[3]["target"], "/v1/models/nope:predict?x=1");
  EXPECT_EQ(lines[3]["status"], 404);
  EXPECT_EQ(lines[4]["method"], "GET");
  EXPECT_EQ(lines[4]["target"], "/v1/models");
  EXPECT_EQ(lines[4]["status"], 431);
  EXPECT_EQ(lines[4]["in"], 0);
  EXPECT_EQ(lines[5]["method"], "GET");
  EXPECT_EQ(lines[5]["target"], "/healthz");
  EXPECT_EQ(lines[5]["status"], 200);
  EXPECT_EQ(lines[6]["target"], "/metrics");
  // A log that cannot be opened stops the server from starting (exit 2 on the command line).
  ServeOptions bad = Options();
  bad.access_log.path = dir_ + "/ctr.model/access.log";
  Server s(bad);
  const Status st = s.Start();
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.message();
}

// GET /metrics adds each replica's batching counters, asked of the replicas: every request the
// front end answered was predicted by one of them, and each family's samples stay one group.
TEST_F(ServerTest, MetricsCountEachReplicasBatches) {
  StartServer(Options());
  int answered = 0;
  {
    Traffic traffic(server_->port(), 4);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    traffic.Stop();
    ASSERT_EQ(traffic.failed(), 0) << traffic.first_failure();
    answered = traffic.ok();
  }
  ASSERT_GT(answered, 0);
  auto m = Client().Get("/metrics");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  EXPECT_EQ(UngroupedFamily(m->body), "") << m->body;
  // The front end's own threads: at least the one answering this.
  EXPECT_GE(Metric(m->body, "overcast_serve_connection_threads{state=\"connection\""), 1);
  EXPECT_GE(Metric(m->body, "overcast_serve_connection_threads{state=\"idle\""), 0);
  EXPECT_GT(Metric(m->body, "overcast_serve_connections_parked_limit "), 0);
  double requests = 0, rows = 0, batches = 0, compute = 0;
  for (int r = 0; r < 2; ++r) {
    const std::string ctr = fmt::format("{{replica=\"{}\",model=\"ctr\"", r);
    EXPECT_EQ(Metric(m->body, fmt::format("overcast_serve_replica_stats_up{{replica=\"{}\"", r)), 1)
        << m->body;
    requests += Metric(m->body, "overcast_serve_replica_requests_total" + ctr);
    rows += Metric(m->body, "overcast_serve_replica_batch_rows_total" + ctr);
    batches += Metric(m->body, "overcast_serve_replica_batches_total" + ctr);
    compute += Metric(m->body, "overcast_serve_replica_compute_seconds_total" + ctr);
    // The batch-size histogram: one row each, so every batch is within the bucket of 32 rows
    // (--max-batch's default), as many as there are rows; the first bucket, at most that.
    const std::string sizes = "overcast_serve_replica_batch_size_rows";
    const double count = Metric(m->body, sizes + "_count" + ctr);
    EXPECT_EQ(count, Metric(m->body, "overcast_serve_replica_batches_total" + ctr)) << m->body;
    EXPECT_EQ(Metric(m->body, sizes + "_bucket" + ctr + ",le=\"+Inf\""), count) << m->body;
    EXPECT_EQ(Metric(m->body, sizes + "_bucket" + ctr + ",le=\"32\""), count) << m->body;
    EXPECT_LE(Metric(m->body, sizes + "_bucket" + ctr + ",le=\"1\""), count) << m->body;
    EXPECT_EQ(Metric(m->body, sizes + "_sum" + ctr),
              Metric(m->body, "overcast_serve_replica_batch_rows_total" + ctr))
        << m->body;
    EXPECT_GE(Metric(m->body, "overcast_serve_replica_queue_seconds_total" + ctr), 0) << m->body;
    EXPECT_EQ(Metric(m->body, "overcast_serve_replica_queue_rejected_total" + ctr), 0) << m->body;
    EXPECT_EQ(Metric(m->body, fmt::format("overcast_serve_replica_requests_total{{replica=\"{}\","
                                          "model=\"digits\"", r)),
              0)
        << m->body;
  }
  EXPECT_EQ(requests, answered) << m->body;
  EXPECT_EQ(rows, answered) << m->body;  // one row each
  EXPECT_GE(batches, 1);
  EXPECT_LE(batches, requests);
  EXPECT_GT(compute, 0);
  // Server::Metrics() is the front end's own: it asks no replica.
  EXPECT_EQ(server_->Metrics().find("overcast_serve_replica_requests_total"), std::string::npos);
  // A replica that does not answer (stopped; with no request in flight it is not killed as hung)
  // leaves its batching series out, and /metrics still answers.
  const pid_t stopped = server_->replica_pid(1);
  ASSERT_GT(stopped, 0);
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  m = Client().Get("/metrics");
  ::kill(stopped, SIGCONT);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  EXPECT_EQ(Metric(m->body, "overcast_serve_replica_stats_up{replica=\"1\""), 0) << m->body;
  EXPECT_EQ(Metric(m->body, "overcast_serve_replica_requests_total{replica=\"1\""), -1) << m->body;
  EXPECT_EQ(Metric(m->body, "overcast_serve_replica_stats_up{replica=\"0\""), 1) << m->body;
  EXPECT_EQ(UngroupedFamily(m->body), "") << m->body;
  // Both stopped: the replicas are asked at once, and each is left out on its own timeout.
  const pid_t other = server_->replica_pid(0);
  ASSERT_GT(other, 0);
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  ASSERT_EQ(::kill(other, SIGSTOP), 0);
  m = Client().Get("/metrics");
  ::kill(stopped, SIGCONT);
  ::kill(other, SIGCONT);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  for (const char* r : {"0", "1"}) {
    EXPECT_EQ(Metric(m->body, fmt::format("overcast_serve_replica_stats_up{{replica=\"{}\"", r)),
              0)
        << m->body;
  }
  EXPECT_EQ(UngroupedFamily(m->body), "") << m->body;
}

TEST_F(ServerTest, PicksTheFastestVariantMeetingMinAccuracy) {
  ServeOptions o = Options();
  ASSERT_TRUE(WriteRandomLinearModel(dir_ + "/small.model", "fm_small", Task::kBinary, 1000, 2, 3,
                                     "fm", 0.80).ok());
  ASSERT_TRUE(WriteRandomLinearModel(dir_ + "/big.model", "fm_big", Task::kBinary, 1000, 2, 4,
                                     "fm", 0.90).ok());
  o.model_paths.push_back(dir_ + "/small.model");
  o.model_paths.push_back(dir_ + "/big.model");
  StartServer(o);
  auto c = Client();
  const std::string body = R"({"instances":[{"ids":[1,2]}]})";
  auto r = c.Post("/v1/models/fm:predict?min_accuracy=0.85", body, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(nlohmann::json::parse(r->body)["model"], "fm_big");
  r = c.Post("/v1/models/fm_small:predict?min_accuracy=0.85", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(nlohmann::json::parse(r->body)["model"], "fm_big");
  r = c.Post("/v1/models/fm_small:predict", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(nlohmann::json::parse(r->body)["model"], "fm_small");
  r = c.Post("/v1/models/fm:predict?min_accuracy=0.95", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(ErrorMessage(r).find("no variant of 'fm' reaches accuracy 0.95"), std::string::npos);
  r = c.Post("/v1/models/fm:predict?min_accuracy=high", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  // Without a floor, both are eligible: each gets tried, then the faster one is preferred.
  for (int i = 0; i < 20; ++i) {
    r = c.Post("/v1/models/fm:predict", body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  auto list = nlohmann::json::parse(c.Get("/v1/models")->body);
  int measured = 0;
  for (auto& m : list["models"]) measured += m["latency_ms"].get<double>() > 0;
  EXPECT_GE(measured, 2);
}

TEST_F(ServerTest, RefusesALongestCfsPeriodBelowTheBasePeriod) {
  ServeOptions o = Options();
  o.cfs_period_us = 20000;
  o.cfs_period_max_us = 10000;
  Server s(o);
  Status st = s.Start();
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("--cfs-period-max-us"), std::string::npos) << st.message();
}

TEST_F(ServerTest, RefusesTowerTargetsOutOfOrderOrRange) {
  for (std::vector<double> targets : {std::vector<double>{}, {0.1, 0.05}, {0, 0.1, 0.1}, {0, 1.0},
                                      {-0.02, 0.1}}) {
    ServeOptions o = Options();
    o.controller = "autothrottle";
    o.tower.targets = targets;
    Server s(o);
    Status st = s.Start();
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << targets.size();
    EXPECT_NE(st.message().find("--tower-targets"), std::string::npos) << st.message();
  }
}

TEST_F(ServerTest, BeyondLoopbackOnlyWithASecretAndEveryRequestMustCarryIt) {
  // No secret: listening on every address is refused before anything starts.
  ServeOptions open = Options();
  open.host = "0.0.0.0";
  {
    Server s(open);
    Status st = s.Start();
    EXPECT_EQ(st.code(), Code::kInvalidArgument);
    EXPECT_NE(st.message().find("--secret-file"), std::string::npos) << st.message();
  }
  ServeOptions o = Options();
  o.host = "0.0.0.0";
  o.secret = "s3cret-token";
  StartServer(o);
  auto c = Client();  // 127.0.0.1 reaches the wildcard listener
  const std::string body = R"({"instances":[{"ids":[1,2]}]})";
  auto h = c.Get("/healthz");  // liveness probes need no token
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto r = c.Post("/v1/models/ctr:predict", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(ErrorMessage(r).find("missing"), std::string::npos);
  EXPECT_EQ(r->get_header_value("WWW-Authenticate").rfind("Bearer", 0), 0u);
  // An unknown model answers 401 too, not 404: nothing is revealed without the token.
  r = c.Post("/v1/models/nosuch:predict", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  for (const std::string path :
       {"/metrics", "/v1/models", "/v1/models/ctr", "/v2/models/ctr", "/v2/models/ctr/ready"}) {
    r = c.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << path;
  }
  r = c.Post("/v2/models/ctr/infer", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  for (const std::string path : {"/v2/health/live", "/v2/health/ready"}) {  // probes, open
    r = c.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << path;
  }
  c.set_bearer_token_auth("s3cret-tokeN");
  r = c.Post("/v1/models/ctr:predict", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(ErrorMessage(r).find("wrong"), std::string::npos);
  c.set_bearer_token_auth("s3cret-token-and-more");
  r = c.Post("/v1/models/ctr:predict", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);

  // A refused POST leaves its keep-alive connection usable: its body is consumed, not parsed as
  // the next request.
  {
    const int fd = ConnectRaw(server_->port());
    ASSERT_GE(fd, 0);
    auto send_all = [fd](const std::string& m) {
      return ::send(fd, m.data(), m.size(), 0) == static_cast<ssize_t>(m.size());
    };
    const std::string post = "POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\n"
                             "Content-Type: application/json\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_TRUE(send_all(post));
    const std::string got = ReadResponse(fd);
    ASSERT_TRUE(WholeResponse(got)) << got;  // the whole 401, body included
    EXPECT_EQ(got.rfind("HTTP/1.1 401", 0), 0u) << got;
    ASSERT_TRUE(send_all("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    std::string second;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
      second.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    EXPECT_EQ(second.rfind("HTTP/1.1 200", 0), 0u) << second;
    EXPECT_NE(second.find("replicas_up"), std::string::npos) << second;
  }

  c.set_bearer_token_auth("s3cret-token");
  r = c.Post("/v1/models/ctr:predict", body, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(nlohmann::json::parse(r->body)["predictions"].size(), 1u);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("overcast_serve_unauthorized_total 11\n"), std::string::npos) << m->body;

  // The load generator sends the token; without it, it stops with a clear error.
  LoadgenOptions lo;
  lo.port = server_->port();
  lo.model = "ctr";
  lo.rates = {50};
  lo.connections = 2;
  auto refused = RunLoadgen(lo);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kPermissionDenied);
  lo.bearer_token = "s3cret-token";
  auto run = RunLoadgen(lo);
  ASSERT_TRUE(run.ok()) << run.status().message();
  EXPECT_GT(run->ok, 0u);
  EXPECT_EQ(run->ok, run->sent);
}

TEST_F(ServerTest, LoadgenCountsEveryArrivalPerWindow) {
  StartServer(Options());
  LoadgenOptions lg;
  lg.port = server_->port();
  lg.model = "ctr";
  lg.rates = {50, 100};
  lg.poisson = false;
  lg.connections = 8;
  auto r = RunLoadgen(lg);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->windows.size(), 2u);
  EXPECT_EQ(r->windows[0].sent, 50u);
  EXPECT_EQ(r->windows[1].sent, 100u);
  EXPECT_EQ(r->ok, 150u);
  EXPECT_GT(r->p99_ms, 0);
  EXPECT_GE(r->p99_ms, r->p50_ms);
  lg.model = "nosuch";
  EXPECT_EQ(RunLoadgen(lg).status().code(), Code::kInvalidArgument);
}

// With --tls-cert/--tls-key the front end speaks HTTPS only; a client that trusts the
// certificate gets answers, one that does not (or speaks plain HTTP) gets none.
TEST_F(ServerTest, ServesHttpsWithTheGivenCertificate) {
  const std::string cert = dir_ + "/cert.pem", key = dir_ + "/key.pem";
  const std::string make_cert = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
                                "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
                                key + " -out " + cert + " 2>/dev/null";
  ASSERT_EQ(std::system(make_cert.c_str()), 0) << "needs the openssl command (Debian: openssl)";
  ServeOptions o = Options();
  o.tls_cert = cert;
  o.tls_key = key;
  o.secret = "a-shared-secret";
  StartServer(o);
  const std::string url = "https://127.0.0.1:" + std::to_string(server_->port());
  const std::string row = R"({"instances":[{"ids":[1,2,3]}]})";
  {
    httplib::Client c(url);
    c.enable_server_certificate_verification(true);
    c.set_ca_cert_path(cert);
    c.set_bearer_token_auth(o.secret);
    auto r = c.Post("/v1/models/ctr:predict", row, "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 200) << r->body;
  }
  {
    httplib::Client untrusting(url);  // the system's CA store does not know a self-signed one
    untrusting.enable_server_certificate_verification(true);
    untrusting.set_bearer_token_auth(o.secret);
    auto r = untrusting.Post("/v1/models/ctr:predict", row, "application/json");
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.error(), httplib::Error::SSLServerVerification);
    }
  }
  {
    httplib::Client plain("127.0.0.1", server_->port());
    plain.set_read_timeout(2, 0);
    EXPECT_FALSE(plain.Post("/v1/models/ctr:predict", row, "application/json"));
  }
  LoadgenOptions lg;
  lg.port = server_->port();
  lg.model = "ctr";
  lg.rates = {40};
  lg.poisson = false;
  lg.connections = 4;
  lg.bearer_token = o.secret;
  lg.tls = true;
  lg.ca_cert = cert;
  auto r = RunLoadgen(lg);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->ok, 40u);
  EXPECT_EQ(r->errors, 0u);
  lg.ca_cert.clear();
  auto refused = RunLoadgen(lg);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--ca-cert"), std::string::npos)
      << refused.status().message();

  // A key without its certificate, or files OpenSSL cannot read, are refused at start.
  server_.reset();
  ServeOptions half = Options();
  half.tls_key = key;
  Server no_cert(half);
  EXPECT_EQ(no_cert.Start().code(), Code::kInvalidArgument);
  ServeOptions swapped = Options();
  swapped.tls_cert = key;
  swapped.tls_key = cert;
  Server bad(swapped);
  Status st = bad.Start();
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("OpenSSL refused"), std::string::npos) << st.message();
}

// Replica 0's gauge `name` from the server's metrics; -1 when absent.
double ReplicaGauge(const Server& server, const std::string& name) {
  return Metric(server.Metrics(), name + "{replica=\"0\"");
}

// Pooled connections a replica no longer needs are closed (each costs the replica a polling
// thread), down to the warm ones; a burst opens more again, and they close again after it.
TEST_F(ServerTest, IdleReplicaConnectionsAreClosed) {
  ServeOptions o = Options();
  o.replicas = 1;
  o.replica_idle_close_s = 1.5;
  o.replica_warm_connections = 1;
  StartServer(o);
  const std::string conns = "overcast_serve_replica_connections";
  EXPECT_GT(ReplicaGauge(*server_, conns), 1) << "the replica starts with a warm share";
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  EXPECT_EQ(ReplicaGauge(*server_, conns), 1);
  EXPECT_EQ(server_->totals().replica_connects, 0u) << "no request has needed a new connection";
  // 16 clients at once: the front end forwards them together, one pooled connection each.
  std::atomic<int> ok{0};
  std::atomic<double> most{0};
  std::mutex fail_mu;
  std::string first_failure;
  std::vector<std::thread> clients;
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&] {
      auto c = Client();
      for (int k = 0; k < 40; ++k) {
        auto r = c.Post("/v1/models/ctr:predict", R"({"instances":[{"ids":[1,5],"values":[1,2]}]})",
                        "application/json");
        if (r && r->status == 200) {
          ++ok;
        } else {
          std::lock_guard<std::mutex> l(fail_mu);
          if (first_failure.empty()) {
            first_failure = r ? std::to_string(r->status) + " " + r->body
                              : "client error " + httplib::to_string(r.error());
          }
        }
        const double n = ReplicaGauge(*server_, conns);
        for (double m = most.load(); n > m && !most.compare_exchange_weak(m, n);) {
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 16 * 40) << "first failure: " << first_failure;
  EXPECT_GT(most.load(), 1);
  // Every connection beyond the warm one was opened by a request, and counted.
  const uint64_t connects = server_->totals().replica_connects;
  EXPECT_GE(static_cast<double>(connects), most.load() - 1);
  EXPECT_EQ(ReplicaGauge(*server_, "overcast_serve_replica_connects_total"), connects);
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  EXPECT_EQ(ReplicaGauge(*server_, conns), 1);
}

// With real CPU cgroups: replicas are placed in them, the Captains move the quotas, the Tower
// decides, and the groups are removed at shutdown.
TEST_F(ServerTest, AutothrottleRunsRealCgroups) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create CPU cgroups";
  if (::access("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", W_OK) != 0 &&
      ::access("/sys/fs/cgroup/cgroup.subtree_control", W_OK) != 0) {
    GTEST_SKIP() << "no writable CPU cgroup (v1 /sys/fs/cgroup/cpu or v2 /sys/fs/cgroup)";
  }
  ServeOptions o = Options();
  o.controller = "autothrottle";
  o.cgroup = "auto";
  o.tower_interval_s = 1;
  o.tower.state_path = dir_ + "/tower.json";
  StartServer(o);
  LoadgenOptions lg;
  lg.port = server_->port();
  lg.model = "ctr";
  lg.rates = {100, 100, 100};
  lg.connections = 8;
  auto r = RunLoadgen(lg);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->ok, r->sent);
  const std::string m = server_->Metrics();
  EXPECT_NE(m.find("overcast_serve_tower_decisions_total"), std::string::npos);
  EXPECT_NE(m.find("overcast_serve_replica_throttle_target{replica=\"0\",controller=\"captain\"}"), std::string::npos);
  const ServerTotals t = server_->totals();
  EXPECT_GT(t.used_core_seconds, 0.0);
  // Starting at 1 core each, the Captains scale down from the measured usage.
  EXPECT_LT(t.allocated_core_seconds, 2.0 * 3.5);
  const std::string pid = std::to_string(::getpid());
  server_->Stop();
  EXPECT_TRUE(fs::exists(o.tower.state_path));
  for (const auto& e : fs::directory_iterator(fs::exists("/sys/fs/cgroup/cpu/overcast")
                                                  ? "/sys/fs/cgroup/cpu/overcast"
                                                  : "/sys/fs/cgroup/overcast")) {
    EXPECT_EQ(e.path().filename().string().find("serve-" + pid + "-"), std::string::npos)
        << "cgroup left behind: " << e.path();
  }
}

// The replicas listen on loopback ports any local process can reach: past the front end's
// secret, bounds and metrics. Each takes predictions only with the random token its front end
// started it with; /healthz stays open.
TEST_F(ServerTest, AReplicaAnswersOnlyItsFrontEnd) {
  StartServer(Options());
  const int port = server_->replica_port(0);
  ASSERT_GT(port, 0);
  httplib::Client direct("127.0.0.1", port);
  direct.set_read_timeout(10, 0);
  const std::string body = R"({"instances":[[1]]})";
  auto r = direct.Post("/v1/models/ctr:predict", body, "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 401) << r->body;
  EXPECT_NE(ErrorMessage(r).find("front end"), std::string::npos);
  direct.set_bearer_token_auth("guess");
  r = direct.Get("/stats");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401) << r->body;
  r = direct.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto c = Client();
  r = c.Post("/v1/models/ctr:predict", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

// The front end serves each connection on a thread of its own while it waits on its client. A
// client holding more silent connections than the threads started up front, or sending half a
// request on them, must not leave a newcomer, or /healthz, waiting: the pool grows (the client
// below gives up after 10 s), and past --max-connections the silent ones and the half-sent ones
// leave their threads for the parking lot (with the bytes sent so far), and are served later.
TEST_F(ServerTest, IdleAndHalfSentConnectionsDoNotStarveOtherClients) {
  ServeOptions o = Options();
  o.threads = 4;
  o.max_connections = 64;
  StartServer(o);
  std::vector<int> held;
  const std::string half = "POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 24; ++i) {
    const int fd = ConnectRaw(server_->port());
    ASSERT_GE(fd, 0);
    held.push_back(fd);
    if (i % 2) {
      ASSERT_EQ(::send(fd, half.data(), half.size(), 0), ssize_t(half.size()));
    }
  }
  auto c = Client();
  auto h = c.Get("/healthz");
  ASSERT_TRUE(h) << httplib::to_string(h.error());
  EXPECT_EQ(h->status, 200);
  auto r = c.Post("/v1/models/ctr:predict", R"({"instances":[[1]]})", "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200) << r->body;
  // Past --max-connections, connections waiting on their clients give their threads up,
  // the half-sent ones too: they park, as idle ones do; none gets a 503.
  const std::string given_up = "overcast_serve_connection_threads_given_up_total{waiting=\"";
  EXPECT_EQ(Metric(server_->Metrics(), given_up + "request"), 0);
  for (int i = 0; i < 64; ++i) {
    const int fd = ConnectRaw(server_->port());
    ASSERT_GE(fd, 0);
    held.push_back(fd);
    ASSERT_EQ(::send(fd, half.data(), half.size(), 0), ssize_t(half.size()));
  }
  auto fresh = Client();
  h = fresh.Get("/healthz");
  ASSERT_TRUE(h) << httplib::to_string(h.error());
  EXPECT_EQ(h->status, 200);
  const std::string m = server_->Metrics();
  EXPECT_GE(Metric(m, given_up + "idle"), 1) << m;
  EXPECT_EQ(Metric(m, given_up + "request"), 0) << m;
  // The first half-sent request is answered when its client sends the rest.
  const std::string body = R"({"instances":[[1]]})";
  const std::string rest = "Content-Type: application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(::send(held[1], rest.data(), rest.size(), 0), ssize_t(rest.size()));
  timeval tv{10, 0};
  ::setsockopt(held[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string got = ReadResponse(held[1]);
  EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got;
  for (int fd : held) ::close(fd);
}

TEST_F(ServerTest, OverloadGets503AndServiceResumes) {
  ServeOptions o = Options();
  o.max_inflight = 4;
  o.replicas = 1;
  o.max_body_bytes = 8 << 20;
  StartServer(o);
  // Heavy requests (300 dense rows of 784) from 32 clients at once.
  std::vector<float> row(784, 0.25f);
  std::vector<std::vector<float>> rows(300, row);
  const std::string body = nlohmann::json({{"instances", rows}}).dump();
  std::atomic<int> n200{0}, n503{0}, other{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 32; ++t) {
    ts.emplace_back([&] {
      auto c = Client();
      for (int k = 0; k < 4; ++k) {
        auto r = c.Post("/v1/models/digits:predict", body, "application/json");
        if (r && r->status == 200) ++n200;
        else if (r && r->status == 503) ++n503;
        else ++other;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_GT(n503.load(), 0);
  EXPECT_GT(n200.load(), 0);
  EXPECT_EQ(other.load(), 0);
  auto c = Client();
  auto r = c.Post("/v1/models/ctr:predict", R"({"instances":[[1]]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// Stopping the server (what SIGINT and SIGTERM do) answers the requests already in flight
// before the replicas stop, and then takes no new connection.
TEST_F(ServerTest, StoppingAnswersTheRequestsInFlight) {
  ServeOptions o = Options();
  o.replicas = 1;
  o.slo_p99_ms = 5000;
  o.max_wait_us = 1'500'000;  // a lone row waits 1.5 s in the batcher for a fuller batch
  StartServer(o);
  const int port = server_->port();
  std::optional<httplib::Result> r;
  std::thread client([&] {
    auto c = Client();
    r.emplace(c.Post("/v1/models/ctr:predict", R"({"instances":[{"ids":[1,2,3]}]})",
                     "application/json"));
  });
  bool in_flight = false;
  for (int i = 0; i < 500 && !in_flight; ++i) {
    auto m = Client().Get("/metrics");
    in_flight = m && m->body.find("\novercast_serve_inflight 1\n") != std::string::npos;
    if (!in_flight) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(in_flight) << "the request never showed in flight";
  server_->Stop();
  client.join();
  ASSERT_TRUE(r && *r) << httplib::to_string(r ? r->error() : httplib::Error::Unknown);
  EXPECT_EQ((*r)->status, 200) << (*r)->body;
  EXPECT_NE((*r)->body.find("predictions"), std::string::npos) << (*r)->body;
  const int late = ConnectRaw(port);
  EXPECT_LT(late, 0) << "a connection was taken after the stop";
  if (late >= 0) ::close(late);
}

// Four clients' traffic; 300 ms in, replica 0 gets `sig`, and a new process has up to
// `seconds` to serve in its place; then 500 ms more of traffic, which must go on.
ServerTest::Replacement ServerTest::ReplaceUnderTraffic(int sig, double seconds) {
  Replacement out;
  Traffic traffic(server_->port(), 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  out.victim = out.now = server_->replica_pid(0);
  if (out.victim <= 0 || ::kill(out.victim, sig) != 0) {
    ADD_FAILURE() << "no replica 0 to signal";
    return out;
  }
  out.now = WaitForReplacement(0, out.victim, 1, seconds);
  EXPECT_NE(out.now, out.victim) << "replica 0 was not replaced within " << seconds << " s";
  EXPECT_GT(out.now, 0);
  const int ok_at_restart = traffic.ok();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  traffic.Stop();
  EXPECT_GT(traffic.ok(), ok_at_restart + 10) << "traffic did not go on after the restart";
  out.ok = traffic.ok();
  out.failed = traffic.failed();
  out.first_failure = traffic.first_failure();
  return out;
}

TEST_F(ServerTest, ReplicaKilledUnderLoadIsRestartedAndTrafficGoesOn) {
  StartServer(Options());
  const Replacement r = ReplaceUnderTraffic(SIGKILL, 6);
  // Requests in flight on the killed replica are retried on the other one.
  EXPECT_LE(r.failed, 4) << "ok=" << r.ok << ", first failure " << r.first_failure;
  EXPECT_EQ(server_->totals().replica_restarts, 1u);
  if (r.now > 0) {
    EXPECT_EQ(::kill(r.now, 0), 0);
  }
}

// A replica that stops answering (SIGSTOP here; a deadlock or a process swapped out looks the
// same from outside) is killed after --replica-hang-s and restarted, and its requests in flight
// go to the other replica, not waiting out the 30 s read timeout.
TEST_F(ServerTest, AHungReplicaIsKilledAndRestartedAndTrafficGoesOn) {
  ServeOptions o = Options();
  o.replica_hang_s = 1;
  StartServer(o);
  const Replacement r = ReplaceUnderTraffic(SIGSTOP, 10);
  EXPECT_EQ(server_->totals().replica_hangs, 1u);
  EXPECT_EQ(r.failed, 0) << "first failure: " << r.first_failure;
  if (r.victim > 0 && r.now == r.victim) ::kill(r.victim, SIGKILL);  // not left stopped
}

// The probability of class 1 the server gives one fixed row of the ctr model.
double CtrProbability(httplib::Client& c) {
  auto r = c.Post("/v1/models/ctr:predict", R"({"instances":[{"ids":[1,2,3,500],"values":[1,2,3,4]}]})",
                  "application/json");
  EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  if (!r || r->status != 200) return -1;
  return nlohmann::json::parse(r->body)["predictions"][0]["probabilities"][1].get<double>();
}

// One replica is the hard case: there is no other to retry on while its process is replaced.
class ReloadTest : public ServerTest, public ::testing::WithParamInterface<int> {};

TEST_P(ReloadTest, MovesEveryReplicaToTheNewFilesWithoutAFailedRequest) {
  ServeOptions o = Options();
  o.replicas = GetParam();
  StartServer(o);
  auto c = Client();
  const double before = CtrProbability(c);
  Traffic traffic(server_->port(), 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<pid_t> old_pids;
  for (int i = 0; i < o.replicas; ++i) old_pids.push_back(server_->replica_pid(i));
  // New weights under the same name and path, then a reload while the load goes on.
  ASSERT_TRUE(WriteRandomLinearModel(dir_ + "/ctr.model", "ctr", Task::kBinary, 1000, 2, 7).ok());
  Status r = server_->Reload();
  ASSERT_TRUE(r.ok()) << r.message();
  const int ok_at_reload = traffic.ok();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  traffic.Stop();
  EXPECT_EQ(traffic.failed(), 0) << "first failure: " << traffic.first_failure();
  EXPECT_GT(traffic.ok(), ok_at_reload) << "traffic did not go on after the reload";
  // Every replica is a new process, the old ones are gone, and a reload is not a crash.
  std::vector<pid_t> new_pids;
  for (int i = 0; i < o.replicas; ++i) {
    new_pids.push_back(server_->replica_pid(i));
    EXPECT_GT(new_pids[i], 0);
    EXPECT_NE(new_pids[i], old_pids[i]);
    EXPECT_NE(::kill(old_pids[i], 0), 0) << "the replaced replica " << old_pids[i] << " still runs";
  }
  EXPECT_EQ(server_->totals().reloads, 1u);
  EXPECT_EQ(server_->totals().replica_restarts, 0u);
  // Every replica answers with the new weights.
  const double after = CtrProbability(c);
  EXPECT_NE(after, before);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(CtrProbability(c), after);

  // A file that does not load is refused before any replica is touched.
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/ctr.model", "not a model").ok());
  r = server_->Reload();
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.message().find("ctr.model"), std::string::npos) << r.message();
  for (int i = 0; i < o.replicas; ++i) EXPECT_EQ(server_->replica_pid(i), new_pids[i]);
  EXPECT_EQ(server_->totals().reloads_refused, 1u);
  EXPECT_EQ(CtrProbability(c), after);

  // The same over HTTP: 409 with a JSON error, then 200 naming the models once the file loads.
  auto h = c.Post("/v1/reload", "", "application/json");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 409);
  EXPECT_NE(ErrorMessage(h).find("ctr.model"), std::string::npos);
  ASSERT_TRUE(WriteRandomLinearModel(dir_ + "/ctr.model", "ctr", Task::kBinary, 1000, 2, 1).ok());
  h = c.Post("/v1/reload", "", "application/json");
  ASSERT_TRUE(h);
  ASSERT_EQ(h->status, 200) << h->body;
  EXPECT_EQ(nlohmann::json::parse(h->body)["reloaded"], nlohmann::json({"ctr", "digits"}));
  EXPECT_EQ(CtrProbability(c), before);  // seed 1 again: the first weights
  EXPECT_NE(server_->Metrics().find("overcast_serve_reloads_total{result=\"ok\"} 2"),
            std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Replicas, ReloadTest, ::testing::Values(1, 2));

// A reload waits for the requests still on a replica's old process before it moves on; a
// replica that crashes meanwhile is restarted at once, not when the reload is done.
TEST_F(ServerTest, ACrashDuringAReloadIsRestartedWithoutWaitingForIt) {
  ServeOptions o = Options();
  // Replica 0 is stopped below to hold a request for the reload to wait on: not to be killed as
  // stuck before the reload starts (AHungReplicaIsKilledAndRestartedAndTrafficGoesOn tests that).
  o.replica_hang_s = 0;
  StartServer(o);
  const pid_t old0 = server_->replica_pid(0), old1 = server_->replica_pid(1);
  ASSERT_GT(old0, 0);
  ASSERT_GT(old1, 0);
  // Replica 0 stops answering; requests are sent one by one until one is held there (the
  // front end sends each to the replica with the fewest in flight).
  ASSERT_EQ(::kill(old0, SIGSTOP), 0);
  std::atomic<int> answered{0}, ok{0};
  std::vector<std::thread> held;
  // On any early return (a failed ASSERT) the stopped replica goes on and the clients end.
  struct Release {
    pid_t pid;
    std::vector<std::thread>& threads;
    ~Release() {
      ::kill(pid, SIGCONT);
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } release{old0, held};
  for (int i = 0; i < 8 && answered.load() == static_cast<int>(held.size()); ++i) {
    held.emplace_back([&] {
      httplib::Client c("127.0.0.1", server_->port());
      c.set_read_timeout(60, 0);
      auto r = c.Post("/v1/models/ctr:predict", R"({"instances":[{"ids":[1],"values":[1]}]})",
                      "application/json");
      if (r && r->status == 200) ++ok;
      ++answered;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ASSERT_LT(answered.load(), static_cast<int>(held.size())) << "no request is held by replica 0";
  // The reload starts replica 0's new process and waits for the held request.
  server_->RequestReload();
  for (int i = 0; i < 500 && server_->replica_pid(0) == old0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(server_->replica_pid(0), old0) << "the reload did not start replica 0 again";
  // Now replica 1 crashes: it is back long before the held request could time out (30 s).
  ASSERT_EQ(::kill(old1, SIGKILL), 0);
  pid_t now1 = old1;
  for (int i = 0; i < 500; ++i) {
    now1 = server_->replica_pid(1);
    if (now1 > 0 && now1 != old1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(now1, 0);
  EXPECT_NE(now1, old1) << "replica 1 was not restarted while the reload waited";
  EXPECT_EQ(server_->totals().replica_restarts, 1u);
  EXPECT_EQ(server_->totals().reloads, 0u) << "the reload should still be waiting";
  // Replica 0's old process answers its request, and the reload finishes.
  ASSERT_EQ(::kill(old0, SIGCONT), 0);
  for (auto& t : held) t.join();
  EXPECT_EQ(ok.load(), static_cast<int>(held.size()));
  for (int i = 0; i < 500 && server_->totals().reloads == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(server_->totals().reloads, 1u);
  EXPECT_NE(::kill(old0, 0), 0) << "replica 0's old process still runs";
  auto c = Client();
  EXPECT_GE(CtrProbability(c), 0.0);
}

// Replicas read copies of the model files made at start and at each reload: a replica
// restarted after a crash serves what was loaded, whatever happened to the files since.
TEST_F(ServerTest, AReplicaRestartedAfterItsFilesChangedServesWhatWasLoaded) {
  const std::string models = dir_ + "/models";
  fs::create_directories(models);
  fs::copy_file(dir_ + "/ctr.model", models + "/ctr.model");
  ServeOptions o = Options();
  o.model_paths = {dir_ + "/digits.model"};
  o.model_dir = models;
  StartServer(o);
  auto c = Client();
  const double before = CtrProbability(c);
  // One file goes from the directory, the other is overwritten in place with garbage.
  fs::remove(models + "/ctr.model");
  {
    std::ofstream f(dir_ + "/digits.model", std::ios::trunc);
    f << "not a model";
  }
  for (int i = 0; i < 2; ++i) {
    const pid_t victim = server_->replica_pid(i);
    ASSERT_GT(victim, 0);
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    const pid_t now = WaitForReplacement(i, victim, unsigned(i + 1), 10);
    EXPECT_GT(now, 0);
    EXPECT_NE(now, victim) << "replica " << i << " did not restart";
  }
  // Both restarted replicas serve both models as they were loaded.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(CtrProbability(c), before);
  const std::string dense = nlohmann::json({{"instances", {std::vector<float>(784, 0.5f)}}}).dump();
  for (int i = 0; i < 4; ++i) {
    auto r = c.Post("/v1/models/digits:predict", dense, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
  }
  // A reload reads the files as they are now: refused, naming the user's file, not a copy.
  fs::copy_file(dir_ + "/ctr.model", models + "/ctr.model");
  Status r = server_->Reload();
  EXPECT_EQ(r.code(), Code::kInvalidArgument) << r.message();
  EXPECT_NE(r.message().find(dir_ + "/digits.model"), std::string::npos) << r.message();
  EXPECT_EQ(CtrProbability(c), before);
}

// The command line a process was started with, arguments separated by spaces.
std::string CommandLine(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline");  // size 0 to stat: read it all
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(s.empty()) << "no command line for pid " << pid;
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s;
}

// --place: a model placed on some replicas is loaded by those only, and its requests go only
// there (a replica without it would answer 404), also after a reload.
TEST_F(ServerTest, APlacedModelIsLoadedAndServedOnlyByItsReplicas) {
  ServeOptions o = Options();
  o.placement = {{"digits", {1}}};
  StartServer(o);
  auto c = Client();
  const std::string dense = nlohmann::json({{"instances", {std::vector<float>(784, 0.5f)}}}).dump();
  auto check = [&] {
    const std::string r0 = CommandLine(server_->replica_pid(0));
    const std::string r1 = CommandLine(server_->replica_pid(1));
    EXPECT_EQ(r0.find("digits.model"), std::string::npos) << r0;
    EXPECT_NE(r0.find("ctr.model"), std::string::npos) << r0;
    EXPECT_NE(r1.find("digits.model"), std::string::npos) << r1;
    EXPECT_NE(r1.find("ctr.model"), std::string::npos) << r1;
    for (int i = 0; i < 10; ++i) {
      auto r = c.Post("/v1/models/digits:predict", dense, "application/json");
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 200) << r->body;
      EXPECT_GE(CtrProbability(c), 0.0);
    }
  };
  check();
  auto listed = c.Get("/v1/models");
  ASSERT_TRUE(listed && listed->status == 200);
  const nlohmann::json models = nlohmann::json::parse(listed->body);  // outlives the loop
  for (const auto& m : models["models"]) {
    EXPECT_EQ(m["replicas"], m["name"] == "digits" ? nlohmann::json({1}) : nlohmann::json({0, 1}))
        << m;
    // Each model's own entry (KServe's readiness) is its listed one, and ready.
    auto one = c.Get("/v1/models/" + m["name"].get<std::string>());
    ASSERT_TRUE(one);
    EXPECT_EQ(one->status, 200) << one->body;
    auto j = nlohmann::json::parse(one->body);
    EXPECT_EQ(j["ready"], true) << one->body;
    j.erase("ready");
    j.erase("latency_ms");  // it moves with every answer
    auto listed_entry = m;
    listed_entry.erase("latency_ms");
    EXPECT_EQ(j, listed_entry);
  }
  for (const std::string path : {"/v1/models/nothing", "/v1/models/digits:predict"}) {
    auto none = c.Get(path);
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 404) << path;
    EXPECT_EQ(nlohmann::json::parse(none->body, nullptr, false)["error"]["code"], 404) << path;
  }
  // Its only replica killed, digits is not ready (503) until that replica is back; ctr, on both,
  // stays ready.
  const pid_t killed = server_->replica_pid(1);
  ASSERT_GT(killed, 0);
  ASSERT_EQ(::kill(killed, SIGKILL), 0);
  auto ready_is = [&](bool want) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      auto r = c.Get("/v1/models/digits");
      if (r && r->status == (want ? 200 : 503) &&
          nlohmann::json::parse(r->body, nullptr, false)["ready"] == want) {
        return true;
      }
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  ASSERT_TRUE(ready_is(false));
  auto ctr = c.Get("/v1/models/ctr");
  ASSERT_TRUE(ctr);
  EXPECT_EQ(ctr->status, 200) << ctr->body;
  ASSERT_TRUE(ready_is(true));
  Status r = server_->Reload();
  ASSERT_TRUE(r.ok()) << r.message();
  check();
  server_.reset();

  // Placements that cannot be served are refused at start.
  auto refused = [&](std::map<std::string, std::vector<int>> placement, const std::string& why,
                     int max_replicas = 0) {
    ServeOptions bad = Options();
    bad.placement = std::move(placement);
    bad.max_replicas = max_replicas;
    Server s(bad);
    Status st = s.Start();
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.message();
    EXPECT_NE(st.message().find(why), std::string::npos) << st.message();
  };
  refused({{"images", {0}}}, "no model file holds");
  refused({{"digits", {2}}}, "replica 2 is not within 0..1");
  refused({{"digits", {}}}, "names no replica");
  refused({{"digits", {0}}, {"ctr", {0}}}, "leaves replica 1 no model");
  refused({{"digits", {2}}}, "none of its replicas is among the 2 always running", 3);
}

TEST(ServiceGroups, ReplicasSharingAModelAreOneGroup) {
  using Placement = std::map<std::string, std::vector<int>>;
  auto groups = [](int replicas, std::vector<std::string> models, Placement place) {
    return ServiceGroups(replicas, models, [&](int r, const std::string& m) {
      auto it = place.find(m);
      return it == place.end() || std::count(it->second.begin(), it->second.end(), r) > 0;
    });
  };
  // Nothing placed: every replica serves every model, one group.
  auto one = groups(3, {"b", "a"}, {});
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].name, "all");
  EXPECT_EQ(one[0].models, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(one[0].replicas, (std::vector<int>{0, 1, 2}));
  // Apart: two groups, in order of their lowest replica, named by their models.
  auto two = groups(4, {"a", "b", "c"}, {{"a", {2, 3}}, {"b", {0}}, {"c", {1, 0}}});
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].name, "b+c");
  EXPECT_EQ(two[0].replicas, (std::vector<int>{0, 1}));
  EXPECT_EQ(two[1].name, "a");
  EXPECT_EQ(two[1].replicas, (std::vector<int>{2, 3}));
  // A chain of shared replicas joins everything: a on 0-1, b on 1-2, c on 2-3.
  auto chain = groups(4, {"a", "b", "c"}, {{"a", {0, 1}}, {"b", {1, 2}}, {"c", {2, 3}}});
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_EQ(chain[0].replicas, (std::vector<int>{0, 1, 2, 3}));
  // A replica serving nothing is in no group; a model nobody serves neither.
  auto idle = groups(3, {"a", "b", "z"}, {{"a", {0}}, {"b", {2}}, {"z", {}}});
  ASSERT_EQ(idle.size(), 2u);
  EXPECT_EQ(idle[0].replicas, (std::vector<int>{0}));
  EXPECT_EQ(idle[1].replicas, (std::vector<int>{2}));
  EXPECT_EQ(idle[1].models, (std::vector<std::string>{"b"}));

  EXPECT_EQ(TowerStatePath("/s/tower.json", "a+b", 2), "/s/tower.a+b.json");
  EXPECT_EQ(TowerStatePath("/s/tower.json", "all", 1), "/s/tower.json");
  EXPECT_EQ(TowerStatePath("tower", "a", 2), "tower.a");
  EXPECT_EQ(TowerStatePath("", "a", 2), "");
}

// With models placed on different replicas, each service group's Tower learns from its own
// requests: traffic to ctr alone shows in ctr's group and not in digits', each group's
// replicas hold its target, and each Tower keeps its own state file. --tower-groups one puts
// everything under one Tower again.
TEST_F(ServerTest, EachServiceGroupsTowerLearnsFromItsOwnLoad) {
  for (const std::string mode : {"placement", "one"}) {
    SCOPED_TRACE(mode);
    const std::string state = dir_ + "/" + mode + "/tower.json";
    ServeOptions o = Options();
    o.placement = {{"ctr", {0}}, {"digits", {1}}};
    o.controller = "autothrottle";
    o.tower_groups = mode;
    o.tower_interval_s = 1;
    o.tower.state_path = state;
    StartServer(o);
    std::string m;
    {
      Traffic traffic(server_->port(), 2);
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      m = server_->Metrics();  // the last decision saw only ctr's requests
      traffic.Stop();
      ASSERT_GT(traffic.ok(), 0);
      ASSERT_EQ(traffic.failed(), 0) << traffic.first_failure();
    }
    if (mode == "placement") {
      EXPECT_GT(Metric(m, "overcast_serve_tower_last_rate{group=\"ctr\""), 0) << m;
      EXPECT_EQ(Metric(m, "overcast_serve_tower_last_rate{group=\"digits\""), 0) << m;
      EXPECT_GE(Metric(m, "overcast_serve_tower_decisions_total{group=\"digits\""), 2) << m;
      EXPECT_EQ(UngroupedFamily(m), "") << m;  // two replicas, two towers
      for (const auto& [replica, group] : {std::pair{0, "ctr"}, std::pair{1, "digits"}}) {
        EXPECT_EQ(
            Metric(m, fmt::format("overcast_serve_replica_throttle_target{{replica=\"{}\"", replica)),
            Metric(m, fmt::format("overcast_serve_tower_target{{group=\"{}\"", group)))
            << m;
      }
    } else {
      EXPECT_GT(Metric(m, "overcast_serve_tower_last_rate{group=\"all\""), 0) << m;
      EXPECT_EQ(m.find("group=\"ctr\""), std::string::npos) << m;
    }
    server_.reset();
    const fs::path d = fs::path(state).parent_path();
    EXPECT_EQ(fs::exists(d / "tower.json"), mode == "one");
    EXPECT_EQ(fs::exists(d / "tower.ctr.json"), mode == "placement");
    EXPECT_EQ(fs::exists(d / "tower.digits.json"), mode == "placement");
  }
}

// --max-replicas: under more load than one replica should carry a second one starts, and once
// the load has been light for the down window it is drained and stopped, with no request
// failing on the way.
TEST_F(ServerTest, TheReplicaCountFollowsTheLoad) {
  ServeOptions o = CountingOptions(1, 2);
  StartServer(o);
  EXPECT_EQ(server_->replica_count(), 2);
  EXPECT_EQ(server_->active_replicas(), 1);
  EXPECT_LE(server_->replica_pid(1), 0);
  auto heavy = std::make_unique<Traffic>(server_->port(), 4, "digits", HeavyDigits());
  pid_t added = -1;
  for (int i = 0; i < 750 && added <= 0; ++i) {
    added = server_->replica_pid(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(added, 0) << "no second replica under load";
  EXPECT_EQ(server_->totals().scale_outs, 1u);
  // Both replicas take the load for a moment, then it drops to one light client.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Traffic light(server_->port(), 1, "ctr", R"({"instances":[{"ids":[1,5],"values":[1,2]}]})", 20);
  heavy->Stop();
  for (int i = 0; i < 750 && server_->active_replicas() > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int i = 0; i < 250 && server_->replica_pid(1) > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int ok_at_scale_in = light.ok();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  light.Stop();
  EXPECT_EQ(server_->active_replicas(), 1) << "the second replica did not stop once idle";
  EXPECT_LE(server_->replica_pid(1), 0);
  if (added > 0) {
    EXPECT_NE(::kill(added, 0), 0) << "the scaled-in replica still runs";
  }
  EXPECT_EQ(server_->totals().scale_ins, 1u);
  EXPECT_EQ(heavy->failed(), 0) << "first failure: " << heavy->first_failure();
  EXPECT_EQ(light.failed(), 0) << "first failure: " << light.first_failure();
  EXPECT_GT(light.ok(), ok_at_scale_in) << "traffic did not go on after the scale-in";
  EXPECT_NE(server_->Metrics().find("overcast_serve_replicas 1\n"), std::string::npos);
  // Out of range: fewer at most than at least.
  ServeOptions bad = Options();
  bad.max_replicas = 1;
  Server refused(bad);
  EXPECT_EQ(refused.Start().code(), Code::kInvalidArgument);
}

// With --place, the count rule runs per service group: load on the model of replicas 1 and 3
// starts replica 3, its group's idle slot, and not replica 2, the lowest idle slot, which
// serves only the idle model; once the load is gone, replica 3 is stopped.
TEST_F(ServerTest, TheReplicaCountFollowsEachServiceGroupsLoad) {
  ServeOptions o = CountingOptions(2, 4);
  o.placement = {{"ctr", {0, 2}}, {"digits", {1, 3}}};
  StartServer(o);
  EXPECT_EQ(server_->active_replicas(), 2);
  Traffic heavy(server_->port(), 4, "digits", HeavyDigits());
  pid_t added = -1;
  bool wrong_group = false;
  for (int i = 0; i < 750 && added <= 0; ++i) {
    added = server_->replica_pid(3);
    wrong_group = wrong_group || server_->replica_pid(2) > 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(added, 0) << "no second replica for digits under its load";
  // Both of digits' replicas carry the load for a moment; ctr's idle group stays at one.
  for (int i = 0; i < 25; ++i) {
    wrong_group = wrong_group || server_->replica_pid(2) > 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(wrong_group) << "replica 2 (ctr's) was started for digits' load";
  EXPECT_EQ(server_->active_replicas(), 3);
  heavy.Stop();
  // Counted once the process is stopped.
  for (int i = 0; i < 1000 && server_->totals().scale_ins < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_LE(server_->replica_pid(3), 0) << "digits' second replica did not stop once idle";
  if (added > 0) {
    EXPECT_NE(::kill(added, 0), 0) << "the scaled-in replica still runs";
  }
  EXPECT_EQ(server_->active_replicas(), 2);
  EXPECT_GT(server_->replica_pid(0), 0);
  EXPECT_GT(server_->replica_pid(1), 0);
  EXPECT_EQ(server_->totals().scale_outs, 1u);
  EXPECT_EQ(server_->totals().scale_ins, 1u);
  EXPECT_EQ(heavy.failed(), 0) << "first failure: " << heavy.first_failure();
  EXPECT_GT(heavy.ok(), 0);
}

// --model-dir: the directory is listed again at each reload, so a model file added there is
// served after the reload and one removed is no longer; a directory left empty is refused.
TEST_F(ServerTest, ReloadServesTheModelDirectoryAsItIsNow) {
  const std::string models = dir_ + "/models";
  fs::create_directories(models);
  fs::copy_file(dir_ + "/ctr.model", models + "/ctr.model");
  ServeOptions o = Options();
  o.model_paths.clear();
  o.model_dir = models;
  StartServer(o);
  auto c = Client();
  const std::string dense = nlohmann::json({{"instances", {std::vector<float>(784, 0.5f)}}}).dump();
  auto status = [&](const std::string& model, const std::string& body) {
    auto r = c.Post("/v1/models/" + model + ":predict", body, "application/json");
    return r ? r->status : -1;
  };
  const std::string row = R"({"instances":[{"ids":[1,2,3]}]})";
  EXPECT_EQ(status("ctr", row), 200);
  EXPECT_EQ(status("digits", dense), 404);
  // Half-written files of an atomic write are not models yet: not listed.
  ASSERT_TRUE(WriteFileAtomic(models + "/.hidden", "not a model").ok());
  ASSERT_TRUE(WriteFileAtomic(models + "/digits.model.tmp-1", "not a model").ok());
  fs::copy_file(dir_ + "/digits.model", models + "/digits.model");
  Status r = server_->Reload();
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(status("digits", dense), 200);
  EXPECT_EQ(status("ctr", row), 200);
  fs::remove(models + "/ctr.model");
  r = server_->Reload();
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(status("ctr", row), 404);
  EXPECT_EQ(status("digits", dense), 200);
  fs::remove(models + "/digits.model");
  r = server_->Reload();
  EXPECT_EQ(r.code(), Code::kInvalidArgument);
  EXPECT_NE(r.message().find("holds no model file"), std::string::npos) << r.message();
  EXPECT_EQ(status("digits", dense), 200);  // refused: the last good models go on serving
}

// A reload whose models change the service groups moves the Towers with them: an unplaced
// model puts every replica in one group; without it the placed models' groups come apart, each
// with its own Tower. A new group's state file that does not load refuses the reload.
TEST_F(ServerTest, AReloadThatChangesTheModelsRegroupsTheTowers) {
  const std::string models = dir_ + "/models";
  fs::create_directories(models);
  fs::copy_file(dir_ + "/ctr.model", models + "/ctr.model");
  fs::copy_file(dir_ + "/digits.model", models + "/digits.model");
  ASSERT_TRUE(WriteRandomLinearModel(models + "/extra.model", "extra", Task::kBinary, 1000, 2, 3).ok());
  ServeOptions o = Options();
  o.model_paths.clear();
  o.model_dir = models;
  o.placement = {{"ctr", {0}}, {"digits", {1}}};
  o.controller = "autothrottle";
  o.tower_interval_s = 1;
  o.tower.state_path = dir_ + "/towers/tower.json";
  StartServer(o);
  const std::string all = "overcast_serve_tower_target{group=\"all\"";
  const std::string ctr = "overcast_serve_tower_target{group=\"ctr\"";
  EXPECT_GE(Metric(server_->Metrics(), all), 0);
  EXPECT_EQ(Metric(server_->Metrics(), ctr), -1);
  Status r = server_->Reload();  // the same files: the same group
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_GE(Metric(server_->Metrics(), all), 0);

  fs::remove(models + "/extra.model");
  fs::create_directories(dir_ + "/towers");
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/towers/tower.digits.json", "not a table").ok());
  r = server_->Reload();
  EXPECT_EQ(r.code(), Code::kInvalidArgument) << r.message();
  EXPECT_NE(r.message().find("tower.digits.json"), std::string::npos) << r.message();
  EXPECT_GE(Metric(server_->Metrics(), all), 0) << "refused: the groups stay as they were";
  auto c = Client();
  auto extra = c.Post("/v1/models/extra:predict", R"({"instances":[{"ids":[1,2,3]}]})",
                      "application/json");
  ASSERT_TRUE(extra);
  EXPECT_EQ(extra->status, 200) << extra->body;

  fs::remove(dir_ + "/towers/tower.digits.json");
  r = server_->Reload();
  ASSERT_TRUE(r.ok()) << r.message();
  const std::string m = server_->Metrics();
  EXPECT_EQ(Metric(m, all), -1) << m;
  EXPECT_GE(Metric(m, ctr), 0) << m;
  EXPECT_GE(Metric(m, "overcast_serve_tower_target{group=\"digits\""), 0) << m;
  EXPECT_EQ(Metric(m, "overcast_serve_replica_throttle_target{replica=\"0\""), Metric(m, ctr));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a decision of each Tower
  server_.reset();
  EXPECT_TRUE(fs::exists(dir_ + "/towers/tower.ctr.json"));
  EXPECT_TRUE(fs::exists(dir_ + "/towers/tower.digits.json"));
}

}  // namespace
}  // namespace overcast::serve
