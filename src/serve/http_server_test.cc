// The guarded HTTP server under clients that send too much, too slowly, or more than one
// request at a time.
#include "serve/http_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <nlohmann/json.hpp>

#include "net/tcp.h"

namespace overcast::serve {
namespace {

namespace fs = std::filesystem;

constexpr size_t kBodyLimit = 64 << 10;
constexpr size_t kEnough = 64 << 20;  // a client that sent this much was never stopped

constexpr size_t kBigAnswer = 16 << 20;  // more than a loopback socket holds

// A guarded server on a free loopback port until it goes out of scope: GET /hello, GET /who (the
// client's address), GET /port (the client's port: which connection), POST /echo (the body's
// size), GET /big (kBigAnswer bytes), GET /gate/N (answers once the test opens gate N, 0 or 1: a
// handler that holds its thread).
struct ServerSetup {
  RequestDeadline deadline;
  int max_threads = 16;
  std::chrono::milliseconds idle_spell{1000};  // the server's default
  time_t keep_alive_s = 60;
  std::chrono::milliseconds thread_idle_end{30000};  // the server's default
  size_t max_parked = kMaxParkedConnections;
  http_detail::Signals::LoopAnswerHandler on_loop_answer = nullptr;
};

// For the tests of what a connection waiting on its thread gives up: no idle spell ends in them.
constexpr std::chrono::milliseconds kNoSpellEnds{60000};

template <class S>
class Running {
 public:
  template <class... A>
  explicit Running(ServerSetup setup = {}, A&&... args) : server_(std::forward<A>(args)...) {
    ConfigureHttpServer(server_, 2, setup.max_threads, kBodyLimit, setup.max_parked,
                        setup.thread_idle_end);
    server_.set_request_deadline(setup.deadline);
    server_.set_idle_spell(setup.idle_spell);
    server_.set_keep_alive_timeout(setup.keep_alive_s);
    if (setup.on_loop_answer) server_.set_loop_answer_handler(setup.on_loop_answer);
    server_.Get("/hello", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("hello", "text/plain");
    });
    server_.Get("/who", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.remote_addr, "text/plain");
    });
    server_.Get("/port", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(std::to_string(req.remote_port), "text/plain");
    });
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(std::to_string(req.body.size()), "text/plain");
    });
    server_.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(kBigAnswer, 'x'), "text/plain");
    });
    server_.Get(R"(/gate/([01]))", [this](const httplib::Request& req, httplib::Response& res) {
      const int g = req.matches[1] == "1";
      std::unique_lock<std::mutex> l(gate_mu_);
      ++in_gates_;
      gate_cv_.notify_all();
      gate_cv_.wait(l, [&] { return open_[g]; });
      res.set_content("hello", "text/plain");
    });
    port_ = BindHttpServer(server_, "127.0.0.1", 0);
    if (port_ > 0) thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Running() {
    OpenGate(0);
    OpenGate(1);
    StopHttpServer(server_);
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }
  S& server() { return server_; }

  // Waits up to 10 s until `n` requests have reached a gate; false if they did not.
  bool InGates(int n) {
    std::unique_lock<std::mutex> l(gate_mu_);
    return gate_cv_.wait_for(l, std::chrono::seconds(10), [&] { return in_gates_ >= n; });
  }
  void OpenGate(int g) {
    std::lock_guard<std::mutex> l(gate_mu_);
    open_[g] = true;
    gate_cv_.notify_all();
  }

 private:
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  bool open_[2] = {false, false};
  int in_gates_ = 0;
  S server_;
  int port_ = -1;
  std::thread thread_;
};

// A loopback connection whose reads and writes give up after 10 s; -1 on failure.
int Connect(int port) {
  const int fd = net::ConnectLoopback(port);
  if (fd >= 0) {
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  return fd;
}

bool SendAll(int fd, const std::string& s) {
  return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
}

// Everything the server sends until it closes the connection (or 10 s pass without a byte).
std::string ReadToEnd(int fd) {
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// Sends `head`, then `filler` over and over until the server answers or closes, or kEnough
// bytes went out; returns the answer, and in *sent the bytes sent.
std::string SendUntilAnswered(int port, const std::string& head, const std::string& filler,
                              size_t* sent) {
  const int fd = Connect(port);
  if (fd < 0) return "";
  *sent = 0;
  if (SendAll(fd, head)) {
    while (*sent < kEnough) {
      pollfd p{fd, POLLIN | POLLOUT, 0};
      if (::poll(&p, 1, 10000) <= 0 || (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0) break;
      if (!SendAll(fd, filler)) break;
      *sent += filler.size();
    }
  }
  std::string got = ReadToEnd(fd);
  ::close(fd);
  return got;
}

std::string Request(const std::string& extra_headers, bool close = true) {
  return "GET /hello HTTP/1.1\r\nHost: x\r\n" + extra_headers +
         (close ? "Connection: close\r\n" : "") + "\r\n";
}

// `n` header fields of 11 bytes each.
std::string Fields(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += "X-" + std::to_string(1000 + i % 9000) + ": b\r\n";
  return s;
}

void ExpectJson431(const std::string& got) {
  ASSERT_EQ(got.rfind("HTTP/1.1 431", 0), 0u) << got.substr(0, 300);
  const auto j = nlohmann::json::parse(got.substr(got.find("\r\n\r\n") + 4), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << got;
  EXPECT_EQ(j["error"]["code"], 431);
  EXPECT_NE(j["error"]["message"].get<std::string>().find("request line and headers"),
            std::string::npos);
}

TEST(HttpServer, AcceptsUpToTheFieldBoundAndRefusesOneMoreWith431) {
  Running<HttpServer> s;
  ASSERT_GT(s.port(), 0);
  // The request's Host and Connection fields count: 98 more make the bound, 99 pass it.
  int fd = Connect(s.port());
  ASSERT_TRUE(SendAll(fd, Request(Fields(kMaxHeaderFields - 2))));
  std::string got = ReadToEnd(fd);
  ::close(fd);
  EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got.substr(0, 300);

  fd = Connect(s.port());
  ASSERT_TRUE(SendAll(fd, Request(Fields(kMaxHeaderFields - 1))));
  got = ReadToEnd(fd);
  ::close(fd);
  ExpectJson431(got);
}

TEST(HttpServer, AFloodOfHeaderFieldsIsCutShortWith431) {
  Running<HttpServer> s;
  size_t sent = 0;
  const std::string got = SendUntilAnswered(
      s.port(), "GET /hello HTTP/1.1\r\nHost: x\r\n", Fields(1000), &sent);
  ExpectJson431(got);
  EXPECT_LT(sent, kEnough);
}

TEST(HttpServer, AHeaderLineWithoutEndIsCutShortWith431) {
  Running<HttpServer> s;
  size_t sent = 0;
  const std::string got = SendUntilAnswered(
      s.port(), "GET /hello HTTP/1.1\r\nHost: x\r\nX-Long: ", std::string(64 << 10, 'a'), &sent);
  ExpectJson431(got);
  EXPECT_LT(sent, kEnough);
  // A request line without end too.
  const std::string line = SendUntilAnswered(s.port(), "GET /", std::string(64 << 10, 'a'), &sent);
  ExpectJson431(line);
}

// A chunk-size line is read whole by httplib, like a header line; the request's bound (twice the
// body limit, plus the headers') ends it.
TEST(HttpServer, AChunkSizeLineWithoutEndEndsTheConnection) {
  Running<HttpServer> s;
  size_t sent = 0;
  const std::string got = SendUntilAnswered(
      s.port(), "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
      std::string(64 << 10, 'f'), &sent);
  EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got.substr(0, 300);
  EXPECT_LT(sent, kEnough);
}

// Sends `head`, then `trickle` a byte every 100 ms until the server answers or closes; returns
// the answer, and in *sent the bytes of `trickle` sent.
std::string Trickle(int port, const std::string& head, const std::string& trickle, size_t* sent) {
  const int fd = Connect(port);
  if (fd < 0) return "";
  *sent = 0;
  if (SendAll(fd, head)) {
    for (; *sent < trickle.size(); ++*sent) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) != 0 || !SendAll(fd, trickle.substr(*sent, 1))) break;
    }
  }
  std::string got = ReadToEnd(fd);
  ::close(fd);
  return got;
}

// httplib's loop waited up to its read timeout (5 s) for each byte, so a client could hold a
// connection thread for as long as it liked, a byte every few seconds.
TEST(HttpServer, ARequestArrivingTooSlowlyGets408) {
  Running<HttpServer> s(ServerSetup{RequestDeadline{1.0, 1024}});
  size_t sent = 0;
  const std::string headers = Request(Fields(5));  // ~110 bytes: 11 s at a byte per 100 ms
  std::string got = Trickle(s.port(), "", headers, &sent);
  ASSERT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got;
  EXPECT_LT(sent, headers.size());
  const auto j = nlohmann::json::parse(got.substr(got.find("\r\n\r\n") + 4), nullptr, false);
  EXPECT_EQ(j["error"]["code"], 408) << got;
  // The body too.
  const std::string body(100, 'x');
  got = Trickle(s.port(), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", body,
                &sent);
  EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got;
  EXPECT_LT(sent, body.size());
  // A request in a few pieces within the deadline is served.
  const int fd = Connect(s.port());
  ASSERT_TRUE(SendAll(fd, "GET /hel"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(SendAll(fd, "lo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(ReadToEnd(fd).rfind("HTTP/1.1 200", 0), 0u);
  ::close(fd);
}

// What the loop's own answers were handed on as (Signals::LoopAnswer), the views copied.
struct SeenAnswer {
  int status;
  std::string method, target, remote;
  size_t body_bytes, answer_bytes;
  double seconds;
};

class SeenAnswers {
 public:
  http_detail::Signals::LoopAnswerHandler Handler() {
    return [this](const http_detail::Signals::LoopAnswer& a) {
      std::lock_guard<std::mutex> l(mu_);
      seen_.push_back({a.status, std::string(a.method), std::string(a.target), a.remote,
                       a.body_bytes, a.answer_bytes,
                       std::chrono::duration<double>(http_detail::Clock::now() - a.began).count()});
      cv_.notify_all();
    };
  }
  // Waits up to `within` for the `n`-th answer (the handler runs after the answer went out).
  std::vector<SeenAnswer> Wait(size_t n,
                               std::chrono::milliseconds within = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, within, [&] { return seen_.size() >= n; });
    return seen_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SeenAnswer> seen_;
};

// The 408s and 431s the loop writes itself never reach httplib's router or logger: they are
// counted, and handed to the server's loop-answer handler (the front end's access log).
TEST(HttpServer, TheLoopsOwnAnswersAreCountedAndHandedOn) {
  SeenAnswers seen;
  ServerSetup setup{RequestDeadline{1.0, 1024}};
  setup.on_loop_answer = seen.Handler();
  Running<HttpServer> s(setup);
  const int fd = Connect(s.port());
  ASSERT_TRUE(SendAll(fd, Request(Fields(kMaxHeaderFields - 1))));  // one field too many
  ExpectJson431(ReadToEnd(fd));
  ::close(fd);
  size_t sent = 0;
  const std::string body(100, 'x');
  const std::string late =
      Trickle(s.port(), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", body,
              &sent);
  ASSERT_EQ(late.rfind("HTTP/1.1 408", 0), 0u) << late;
  const std::vector<SeenAnswer> got = seen.Wait(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].status, 431);
  EXPECT_EQ(got[0].method, "GET");
  EXPECT_EQ(got[0].target, "/hello");
  EXPECT_EQ(got[0].body_bytes, 0u);
  EXPECT_EQ(got[1].status, 408);
  EXPECT_EQ(got[1].method, "POST");
  EXPECT_EQ(got[1].target, "/echo");
  // The bytes of the body that came (one more may have been on its way as the 408 went out).
  EXPECT_LE(got[1].body_bytes, sent);
  EXPECT_GE(got[1].body_bytes + 1, sent);
  EXPECT_GE(got[1].seconds, 1.0);      // the deadline
  for (const SeenAnswer& a : got) {
    EXPECT_EQ(a.remote, "127.0.0.1");
    EXPECT_GT(a.answer_bytes, 0u);
  }
  EXPECT_EQ(s.server().loop_answers(431), 1u);
  EXPECT_EQ(s.server().loop_answers(408), 1u);
  EXPECT_EQ(s.server().loop_answers(503), 0u);
  // An answer of httplib's own (a 404) is not the loop's.
  httplib::Client c("127.0.0.1", s.port());
  const auto r = c.Get("/nowhere");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(seen.Wait(3, std::chrono::milliseconds(300)).size(), 2u);
}

// Reads one answer on `fd` until `want` has come (its headers and body may come in separate
// segments); false when the connection ends first. What was read is left in *read.
bool ReadUntil(int fd, const std::string& want, std::string* read = nullptr) {
  std::string got_here;
  std::string& got = read != nullptr ? *read : got_here;
  char buf[4096];
  for (ssize_t n; got.find(want) == std::string::npos &&
                  (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    got.append(buf, static_cast<size_t>(n));
  }
  return got.find(want) != std::string::npos;
}

bool ReadHello(int fd) { return ReadUntil(fd, "hello"); }

// An answer of POST /echo whose body (the size it was sent) is `n`.
bool ReadEcho(int fd, size_t n) { return ReadUntil(fd, "\r\n\r\n" + std::to_string(n)); }

// A request stopped inside a body its client sends after asking for a 100 Continue: httplib's
// parser reads that body as it comes, on the connection's thread (it is not gathered first).
const std::string kExpectHead =
    "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nab";
const std::string kExpectRest = "cde";

// `got` without the 100 Continue the parser sent before it read the body.
std::string WithoutContinue(const std::string& got) {
  const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  return got.rfind(kContinue, 0) == 0 ? got.substr(kContinue.size()) : got;
}

// Waits up to 10 s until `done()`; false if it did not come.
template <class F>
bool Eventually(F done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Waits up to 10 s until `n` of `server`'s connections wait on their clients (their threads are
// back in poll()); false if they did not.
bool WaitingOnClients(const http_detail::Signals& server, size_t n) {
  return Eventually([&] { return server.waiting_on_clients() == n; });
}

// Waits up to 10 s until `n` connections are parked; false if they were not.
bool Parked(const http_detail::Signals& server, size_t n) {
  return Eventually([&] { return server.parked() == n; });
}

// Whether `c` (a plain or a TLS client) gets its hello from GET /hello.
template <class C>
::testing::AssertionResult GetsHello(C& c) {
  auto r = c.Get("/hello");
  if (!r) return ::testing::AssertionFailure() << httplib::to_string(r.error());
  if (r->body != "hello") return ::testing::AssertionFailure() << "got: " << r->body;
  return ::testing::AssertionSuccess();
}

// Whether the server closed `fd` within a second (no byte left to read before the end).
bool ClosedByServer(int fd) {
  pollfd p{fd, POLLIN, 0};
  char b;
  return ::poll(&p, 1, 1000) > 0 && ::recv(fd, &b, 1, 0) == 0;
}

// With every thread holding an idle keep-alive connection, a new client is served at once: the
// connection idle longest gives its thread up and waits in the parking lot, still open. Before
// the lot, the new client waited for one to reach the keep-alive timeout (60 s), and later the
// idle connection was closed for it.
TEST(HttpServer, TheConnectionIdleLongestGivesItsThreadToANewOne) {
  Running<HttpServer> s(ServerSetup{{}, 2, kNoSpellEnds});
  std::vector<int> held;
  for (int i = 0; i < 2; ++i) {  // each holds a thread after its first answer
    const int fd = Connect(s.port());
    ASSERT_TRUE(SendAll(fd, Request("", false)));
    ASSERT_TRUE(ReadHello(fd));
    held.push_back(fd);
    ASSERT_TRUE(WaitingOnClients(s.server(), held.size()));  // idle, in this order
  }
  httplib::Client c("127.0.0.1", s.port());
  c.set_read_timeout(10, 0);
  ASSERT_TRUE(GetsHello(c));
  // The first to go idle was parked; the other still holds its thread. Both are served.
  EXPECT_EQ(s.server().idle_given_up(), 1u);
  EXPECT_EQ(s.server().parked(), 1u);
  for (int i : {0, 1, 0}) {
    ASSERT_TRUE(SendAll(held[i], Request("", false)));
    EXPECT_TRUE(ReadHello(held[i])) << i;
  }
  EXPECT_EQ(s.server().arriving_given_up(), 0u);
  for (int fd : held) ::close(fd);
}

// Every thread holds a request still arriving in the parser (a body after a 100 Continue): a new
// client is served at once, and the request that began longest ago gets a 503 and its
// connection closes. Before, the new client waited until one of them reached its read timeout
// (5 s) or its deadline (10 s by default).
TEST(HttpServer, TheRequestArrivingLongestGivesItsThreadToANewOne) {
  Running<HttpServer> s(ServerSetup{{}, 2, kNoSpellEnds});
  const std::string request = Request("", false);
  std::vector<int> slow;
  for (int i = 0; i < 2; ++i) {  // the first began first
    const int fd = Connect(s.port());
    ASSERT_TRUE(SendAll(fd, kExpectHead));
    slow.push_back(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(WaitingOnClients(s.server(), 2));  // both threads hold one
  httplib::Client c("127.0.0.1", s.port());
  c.set_read_timeout(3, 0);  // under the 5 s a stalled read waits before its thread gives up
  ASSERT_TRUE(GetsHello(c));
  const std::string got = WithoutContinue(ReadToEnd(slow[0]));
  ASSERT_EQ(got.rfind("HTTP/1.1 503", 0), 0u) << got;
  const auto j = nlohmann::json::parse(got.substr(got.find("\r\n\r\n") + 4), nullptr, false);
  EXPECT_EQ(j["error"]["code"], 503) << got;
  EXPECT_EQ(s.server().arriving_given_up(), 1u);
  EXPECT_EQ(s.server().idle_given_up(), 0u);
  EXPECT_EQ(s.server().loop_answers(503), 1u);
  // The younger one is served when the rest of its request comes, and stays open.
  ASSERT_TRUE(SendAll(slow[1], kExpectRest));
  EXPECT_TRUE(ReadEcho(slow[1], 5));
  ASSERT_TRUE(SendAll(slow[1], request));
  EXPECT_TRUE(ReadHello(slow[1]));
  for (int fd : slow) ::close(fd);
}

// A connection that has sent nothing yet waits for its first request as an idle one waits for
// its next: it gives its thread up before a request still arriving in the parser does, to the
// parking lot, and is served when its request comes.
TEST(HttpServer, AConnectionThatHasSentNothingGivesItsThreadFirstAndStaysOpen) {
  Running<HttpServer> s(ServerSetup{{}, 2, kNoSpellEnds});
  const std::string request = Request("", false);
  const int half = Connect(s.port());
  ASSERT_TRUE(SendAll(half, kExpectHead));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int mute = Connect(s.port());
  ASSERT_TRUE(WaitingOnClients(s.server(), 2));
  httplib::Client c("127.0.0.1", s.port());
  c.set_read_timeout(3, 0);
  c.set_keep_alive(true);
  ASSERT_TRUE(GetsHello(c));
  EXPECT_EQ(s.server().idle_given_up(), 1u);
  EXPECT_EQ(s.server().arriving_given_up(), 0u);
  EXPECT_EQ(s.server().parked(), 1u);
  // The mute one comes back when it sends, and takes the thread of the new client's connection
  // once that one waits idle (before, the request arriving would be chosen).
  ASSERT_TRUE(WaitingOnClients(s.server(), 2));
  ASSERT_TRUE(SendAll(mute, request));
  EXPECT_TRUE(ReadHello(mute));
  ASSERT_TRUE(SendAll(half, kExpectRest));
  EXPECT_TRUE(ReadEcho(half, 5));
  EXPECT_EQ(s.server().arriving_given_up(), 0u);
  for (int fd : {half, mute}) ::close(fd);
}

// Every thread runs a handler, so no connection waits on its client: a new connection waits,
// and the first of them to finish parks after its answer to give it its thread.
TEST(HttpServer, WithNoConnectionWaitingOnItsClientTheNextToGoIdleGivesItsThread) {
  Running<HttpServer> s(ServerSetup{{}, 2, kNoSpellEnds});
  std::vector<int> busy;
  for (int i = 0; i < 2; ++i) {
    const int fd = Connect(s.port());
    ASSERT_TRUE(SendAll(fd, "GET /gate/" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    busy.push_back(fd);
  }
  ASSERT_TRUE(s.InGates(2));
  const int waiting = Connect(s.port());
  ASSERT_TRUE(SendAll(waiting, Request("", false)));
  pollfd p{waiting, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 300), 0) << "answered without a thread";
  s.OpenGate(0);
  EXPECT_TRUE(ReadHello(busy[0]));
  EXPECT_TRUE(ReadHello(waiting));
  EXPECT_EQ(s.server().idle_given_up(), 1u);
  EXPECT_TRUE(Parked(s.server(), 1));
  // The other is served, and every connection stays open.
  s.OpenGate(1);
  EXPECT_TRUE(ReadHello(busy[1]));
  for (int fd : {busy[1], busy[0], waiting}) {
    ASSERT_TRUE(SendAll(fd, Request("", false)));
    EXPECT_TRUE(ReadHello(fd));
  }
  EXPECT_EQ(s.server().arriving_given_up(), 0u);
  for (int fd : {busy[0], busy[1], waiting}) ::close(fd);
}

// Connections idle past their spell leave their threads: many more keep-alive connections than
// threads stay open, hold no thread, and are each served again when their client sends. A
// parked connection whose client closes leaves the lot.
TEST(HttpServer, IdleConnectionsWaitParkedWithoutAThread) {
  Running<HttpServer> s(ServerSetup{{}, 2, std::chrono::milliseconds(50)});
  constexpr size_t kConnections = 40;
  std::vector<int> held;
  for (size_t i = 0; i < kConnections; ++i) {
    const int fd = Connect(s.port());
    ASSERT_TRUE(SendAll(fd, Request("", false)));
    ASSERT_TRUE(ReadHello(fd)) << i;
    held.push_back(fd);
  }
  ASSERT_TRUE(Parked(s.server(), kConnections));
  EXPECT_EQ(s.server().waiting_on_clients(), 0u);
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < kConnections; ++i) {
      ASSERT_TRUE(SendAll(held[i], Request("", false)));
      EXPECT_TRUE(ReadHello(held[i])) << round << " " << i;
    }
  }
  EXPECT_EQ(s.server().arriving_given_up(), 0u);
  ASSERT_TRUE(Parked(s.server(), kConnections));
  ::close(held.back());
  held.pop_back();
  EXPECT_TRUE(Parked(s.server(), kConnections - 1));
  for (int fd : held) ::close(fd);
}

// A request whose client is behind is gathered in its connection's buffer, and parks with its
// bytes so far (its head half sent, or its body): many more such requests than threads hold no
// thread, a new client is served at once, and each is answered when the rest comes. Before,
// each held a thread, and past --max-connections the oldest got a 503.
TEST(HttpServer, RequestsArrivingSlowlyWaitParkedWithoutAThread) {
  Running<HttpServer> s(ServerSetup{{}, 2, std::chrono::milliseconds(50)});
  const std::string body(3000, 'b');
  const std::string post = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n" + body;
  constexpr size_t kConnections = 20;
  std::vector<std::pair<int, size_t>> slow;  // a socket, the bytes it sent
  for (size_t i = 0; i < kConnections; ++i) {
    const int fd = Connect(s.port());
    const size_t cut = i % 2 ? 20 : post.size() - 1000;  // in the request line, or the body
    ASSERT_TRUE(SendAll(fd, post.substr(0, cut)));
    slow.emplace_back(fd, cut);
  }
  ASSERT_TRUE(Parked(s.server(), kConnections));
  EXPECT_EQ(s.server().waiting_on_clients(), 0u);
  httplib::Client c("127.0.0.1", s.port());
  c.set_read_timeout(3, 0);
  ASSERT_TRUE(GetsHello(c));
  for (const auto& [fd, cut] : slow) {
    ASSERT_TRUE(SendAll(fd, post.substr(cut)));
    EXPECT_TRUE(ReadEcho(fd, body.size())) << cut;
  }
  EXPECT_EQ(s.server().arriving_given_up(), 0u);
  for (const auto& [fd, cut] : slow) ::close(fd);
}

// A chunked body is gathered too: cut in its head, a chunk's size line (with an extension), its
// data, the CRLF after it, or before the line that ends the body, each request waits parked and
// is answered whole when the rest comes, and the request sent behind it on the same connection
// is read from where the parser stopped.
TEST(HttpServer, ChunkedRequestsArrivingSlowlyWaitParkedToo) {
  Running<HttpServer> s(ServerSetup{{}, 2, std::chrono::milliseconds(50)});
  const std::string head = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string post = head + "400;name=value\r\n" + std::string(1024, 'b') + "\r\n7B8\r\n" +
                           std::string(1976, 'c') + "\r\n0\r\n\r\n";
  const std::string behind = Request("", false);
  std::vector<std::pair<int, size_t>> slow;  // a socket, the bytes it sent
  for (const size_t cut : {head.size() - 3, head.size() + 2, head.size() + 10, head.size() + 500,
                           head.size() + 16 + 1024 + 1, post.size() - 9, post.size() - 4,
                           post.size() - 1}) {
    const int fd = Connect(s.port());
    ASSERT_TRUE(SendAll(fd, post.substr(0, cut)));
    slow.emplace_back(fd, cut);
  }
  ASSERT_TRUE(Parked(s.server(), slow.size()));
  EXPECT_EQ(s.server().waiting_on_clients(), 0u);
  for (const auto& [fd, cut] : slow) {
    ASSERT_TRUE(SendAll(fd, post.substr(cut) + behind));
    std::string got;  // both answers (they may come in one segment)
    EXPECT_TRUE(ReadUntil(fd, "hello", &got)) << cut;
    EXPECT_NE(got.find("\r\n\r\n3000HTTP/1.1 200"), std::string::npos) << cut << got;
  }
  EXPECT_EQ(s.server().arriving_given_up(), 0u);
  for (const auto& [fd, cut] : slow) ::close(fd);
}

// A chunked body this reading is not sure of is left to the parser at once (it does not wait for
// bytes the parser would not): a size with spaces or a 0x, a Content-Length beside the chunks,
// two Transfer-Encodings. Each gets the parser's own answer.
TEST(HttpServer, ChunkedBodiesTheGatheringIsUnsureOfGoToTheParser) {
  Running<HttpServer> s;
  const std::string head = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n";
  for (const std::string& request :
       {head + "\r\n 5\r\nabcde\r\n0\r\n\r\n", head + "\r\n0x5\r\nabcde\r\n0\r\n\r\n",
        head + "Content-Length: 99\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
        head + "Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"}) {
    const int fd = Connect(s.port());
    ASSERT_TRUE(SendAll(fd, request));
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 3000), 1) << request;  // an answer, or the connection's end
    ::close(fd);
  }
  EXPECT_EQ(s.server().parked(), 0u);
}

// A request parked while it is gathered still has its deadline: it comes back to a thread for
// its 408.
TEST(HttpServer, ARequestParkedWhileArrivingGets408AtItsDeadline) {
  Running<HttpServer> s(ServerSetup{RequestDeadline{1.0, 1024}, 2, std::chrono::milliseconds(50)});
  const int fd = Connect(s.port());
  const auto asked = std::chrono::steady_clock::now();
  ASSERT_TRUE(SendAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab"));
  EXPECT_TRUE(Parked(s.server(), 1));
  const std::string got = ReadToEnd(fd);
  ::close(fd);
  EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got;
  EXPECT_GE(std::chrono::steady_clock::now() - asked, std::chrono::seconds(1));
  EXPECT_EQ(s.server().parked(), 0u);
}

// Only a body the parser will read is gathered first: not a GET's (httplib reads none), nor one
// its client sends after the 100 Continue it waits for.
TEST(HttpServer, OnlyBodiesTheParserWillReadAreGathered) {
  Running<HttpServer> s;
  int fd = Connect(s.port());
  ASSERT_TRUE(SendAll(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"));
  EXPECT_TRUE(ReadHello(fd));
  ::close(fd);
  fd = Connect(s.port());
  ASSERT_TRUE(SendAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                          "Expect: 100-continue\r\n\r\n"));
  EXPECT_TRUE(ReadUntil(fd, "HTTP/1.1 100 Continue\r\n\r\n"));
  ASSERT_TRUE(SendAll(fd, "abc"));
  EXPECT_TRUE(ReadEcho(fd, 3));
  ::close(fd);
}

// A parked connection still closes at its keep-alive deadline (from its last answer), and not
// before.
TEST(HttpServer, AParkedConnectionClosesAtItsKeepAliveDeadline) {
  Running<HttpServer> s(ServerSetup{{}, 2, std::chrono::milliseconds(50), 1});
  const int fd = Connect(s.port());
  const auto asked = std::chrono::steady_clock::now();
  ASSERT_TRUE(SendAll(fd, Request("", false)));
  ASSERT_TRUE(ReadHello(fd));
  EXPECT_TRUE(Parked(s.server(), 1));
  EXPECT_TRUE(Parked(s.server(), 0));
  EXPECT_GE(std::chrono::steady_clock::now() - asked, std::chrono::seconds(1));
  EXPECT_TRUE(ClosedByServer(fd));
  ::close(fd);
}

// Past its limit the lot closes the connection whose keep-alive ends first (the one answered
// first), and the others stay.
TEST(HttpServer, PastItsLimitTheLotClosesTheConnectionDueFirst) {
  ServerSetup setup{{}, 2, std::chrono::milliseconds(50)};
  setup.max_parked = 3;
  Running<HttpServer> s(setup);
  EXPECT_EQ(s.server().parking().limit(), 3u);
  std::vector<int> held;
  for (size_t i = 0; i < 4; ++i) {
    const int fd = Connect(s.port());
    ASSERT_TRUE(SendAll(fd, Request("", false)));
    ASSERT_TRUE(ReadHello(fd)) << i;
    held.push_back(fd);
    ASSERT_TRUE(Parked(s.server(), std::min<size_t>(i + 1, 3))) << i;
  }
  EXPECT_TRUE(ClosedByServer(held[0]));
  EXPECT_EQ(s.server().parking().closed_past_limit(), 1u);
  for (size_t i = 1; i < 4; ++i) {
    ASSERT_TRUE(SendAll(held[i], Request("", false)));
    EXPECT_TRUE(ReadHello(held[i])) << i;
  }
  for (int fd : held) ::close(fd);
}

size_t ProcessThreads() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& task : fs::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// After a burst, the threads it started end once idle (1 s here) under a light load that still
// needs a thread now and then: each job goes to the thread idle the shortest. Woken in turn,
// each of the 16 took a job every third of a second, and none ended.
TEST(HttpServer, TheThreadsABurstStartedEndUnderALightLoad) {
  ServerSetup setup{{}, 16};
  setup.thread_idle_end = std::chrono::seconds(1);
  Running<HttpServer> s(setup);
  const size_t before = ProcessThreads();
  std::vector<int> burst;
  for (int i = 0; i < 16; ++i) {
    const int fd = Connect(s.port());
    ASSERT_TRUE(SendAll(fd, "GET /gate/0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    burst.push_back(fd);
  }
  ASSERT_TRUE(s.InGates(16));
  EXPECT_GE(ProcessThreads(), before + 14);  // 2 threads were started up front
  EXPECT_EQ(s.server().pool_threads().all, 16u);  // what the metrics show
  EXPECT_EQ(s.server().pool_threads().idle, 0u);
  s.OpenGate(0);
  for (int fd : burst) {
    EXPECT_TRUE(ReadHello(fd));
    ::close(fd);
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < end) {  // a connection, a job, every 20 ms
    const int fd = Connect(s.port());
    ASSERT_TRUE(SendAll(fd, Request("")));
    EXPECT_TRUE(ReadHello(fd));
    ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_LE(ProcessThreads(), before + 4);
  EXPECT_LE(s.server().pool_threads().all, 2u + 4u);
  EXPECT_LE(s.server().pool_threads().idle, s.server().pool_threads().all);
}

// Stopping the server ends the connections waiting on their clients at once. Before, a
// half-sent request held the stop up for its read timeout (5 s).
TEST(HttpServer, StoppingEndsTheRequestsStillArriving) {
  Running<HttpServer> s(ServerSetup{RequestDeadline{60, 1024}});
  const int fd = Connect(s.port());
  ASSERT_TRUE(SendAll(fd, Request("", false).substr(0, 10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // its thread waits for the rest
  StopHttpServer(s.server());
  EXPECT_TRUE(ClosedByServer(fd));
  ::close(fd);
}

TEST(HttpServer, PipelinedRequestsAreAllAnsweredInOrder) {
  Running<HttpServer> s;
  const int fd = Connect(s.port());
  const std::string body = "0123456789";
  ASSERT_TRUE(SendAll(fd, Request("", false) +
                              "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n" +
                              body + Request("")));
  const std::string got = ReadToEnd(fd);
  ::close(fd);
  const size_t first = got.find("hello"), second = got.find("\r\n\r\n10"),
               third = got.rfind("hello");
  ASSERT_NE(first, std::string::npos) << got;
  ASSERT_NE(second, std::string::npos) << got;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third) << got;
}

TEST(HttpServer, KeepAliveAndBodiesUpToTheLimitStillWork) {
  Running<HttpServer> s;
  httplib::Client c("127.0.0.1", s.port());
  c.set_keep_alive(true);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(GetsHello(c));
  }
  auto r = c.Post("/echo", std::string(kBodyLimit, 'x'), "text/plain");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->body, std::to_string(kBodyLimit));
  r = c.Post("/echo", std::string(kBodyLimit + 1, 'x'), "text/plain");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 413);
  // The remote address reaches the handlers as httplib's own loop gave it.
  r = c.Get("/who");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "127.0.0.1");
}

// A Content-Length over the body limit is answered 413 as soon as the request's head has come,
// with an Expect: 100-continue or without: the client need not send the body, which the parser
// read whole only to drop it, on the connection's thread.
TEST(HttpServer, ABodyOverTheLimitGets413BeforeItIsSent) {
  Running<HttpServer> s;
  for (const std::string expect : {"", "Expect: 100-continue\r\n"}) {
    const int fd = Connect(s.port());
    ASSERT_TRUE(SendAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\n" + expect + "Content-Length: " +
                                std::to_string(kBodyLimit + 1) + "\r\n\r\n"));
    const std::string got = ReadToEnd(fd);  // the answer, then the end: no body was sent
    ::close(fd);
    ASSERT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
    const auto j = nlohmann::json::parse(got.substr(got.find("\r\n\r\n") + 4), nullptr, false);
    EXPECT_EQ(j["error"]["code"], 413) << got;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(std::to_string(kBodyLimit)),
              std::string::npos);
  }
  EXPECT_EQ(s.server().loop_answers(413), 2u);
}

// 2,000 requests mutated from valid ones (a fixed seed): cut, spliced, bytes changed, framing
// tokens inserted. Each connection gets HTTP answers with 4xx or 2xx statuses, or none (a request
// cut short), never a 500; and the server answers a plain request after them all.
TEST(HttpServer, AnswersAnyBytesWithoutA500AndGoesOn) {
  Running<HttpServer> s;
  const std::vector<std::string> valid = {
      Request("", false),
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789",
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
      "GET /who?x=%ff HTTP/1.0\r\n\r\n" + Request(""),
      "GET /hello HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,3-4\r\n\r\n"};
  const std::vector<std::string> tokens = {
      "\r\n", "\n", "\r", std::string(1, '\0'), "\xff", ":", " ", "\r\n\r\n", "%", "HTTP/1.1",
      "Content-Length: 99999999999999999999\r\n", "Content-Length: -1\r\n",
      "Transfer-Encoding: chunked\r\n", "ffffffffffffffff\r\n", "0\r\n\r\n",
      "Range: bytes=-1-\r\n", "Content-Length: 5\r\nContent-Length: 6\r\n"};
  std::mt19937 rng(1);
  auto below = [&rng](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  std::map<std::string, int> statuses;
  for (int i = 0; i < 2000; ++i) {
    std::string b = valid[below(valid.size())];
    for (size_t edits = 1 + below(6); edits > 0; --edits) {
      const size_t pos = below(b.size() + 1);
      switch (below(5)) {
        case 0: b.erase(pos, 1 + below(8)); break;
        case 1: b.insert(pos, tokens[below(tokens.size())]); break;
        case 2:
          if (!b.empty()) b[std::min(pos, b.size() - 1)] = static_cast<char>(below(256));
          break;
        case 3: b.resize(pos); break;
        default: {
          const std::string piece = b.substr(pos, 1 + below(40));
          for (size_t k = below(5); k > 0; --k) b.insert(pos, piece);
        }
      }
    }
    const int fd = Connect(s.port());
    ASSERT_GE(fd, 0);
    if (SendAll(fd, b)) ::shutdown(fd, SHUT_WR);
    const std::string got = ReadToEnd(fd);
    ::close(fd);
    int answers = 0;
    for (size_t at = got.find("HTTP/1.1 "); at != std::string::npos;
         at = got.find("HTTP/1.1 ", at + 1)) {
      const std::string status = got.substr(at + 9, 3);
      if (status[0] < '1' || status[0] > '9') continue;  // the body of /echo or /who
      ++statuses[status];
      ++answers;
      ASSERT_TRUE(status[0] == '1' || status[0] == '2' || status[0] == '4')
          << status << " for:\n" << b << "\n---\n" << got;
    }
    if (answers == 0) ++statuses["none"];
  }
  std::string seen;
  for (const auto& [status, n] : statuses) seen += status + ":" + std::to_string(n) + " ";
  EXPECT_GT(statuses["200"], 0) << seen;
  EXPECT_GT(statuses["400"], 0) << seen;
  const int fd = Connect(s.port());
  ASSERT_TRUE(SendAll(fd, Request("")));
  EXPECT_EQ(ReadToEnd(fd).rfind("HTTP/1.1 200", 0), 0u) << seen;
  ::close(fd);
}

// A TLS client connection (the certificate unchecked); `ok` once its handshake is done.
struct TlsClient {
  explicit TlsClient(int port)
      : ctx(SSL_CTX_new(TLS_client_method())), ssl(SSL_new(ctx)), fd(Connect(port)) {
    ok = fd >= 0 && SSL_set_fd(ssl, fd) == 1 && SSL_connect(ssl) == 1;
  }
  ~TlsClient() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd >= 0) ::close(fd);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // The records that carry `bytes`, for the caller to send as it likes: from here on what the
  // connection writes lands in memory, not on the socket. Empty when the write failed.
  std::string Records(std::string_view bytes) {
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set0_wbio(ssl, out);
    if (SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size())) <= 0) return "";
    char* p = nullptr;
    const long size = BIO_get_mem_data(out, &p);
    return std::string(p, static_cast<size_t>(size));
  }

  // What the server sends until it closes, decrypted, after `got`.
  std::string ReadToEnd(std::string got = "") {
    char buf[4096];
    for (int n; (n = SSL_read(ssl, buf, sizeof buf)) > 0;) got.append(buf, n);
    return got;
  }

  SSL_CTX* const ctx;
  SSL* const ssl;
  const int fd;
  bool ok = false;
};

// Sends `request` over TLS with its encrypted bytes a byte every 100 ms (a client trickling
// inside one TLS record) until the server answers or closes; returns the answer decrypted, and
// in *sent the encrypted bytes sent and in *total those there were.
std::string TrickleTls(int port, const std::string& request, size_t* sent, size_t* total) {
  std::string got;
  *sent = *total = 0;
  TlsClient c(port);
  if (!c.ok) return got;
  const int flags = ::fcntl(c.fd, F_GETFL);
  ::fcntl(c.fd, F_SETFL, flags | O_NONBLOCK);
  const std::string records = c.Records(request);
  *total = records.size();
  char buf[4096];
  for (; *sent < records.size(); ++*sent) {
    pollfd p{c.fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 0) {  // TLS 1.3 session tickets, or the answer or the end
      const int n = SSL_read(c.ssl, buf, sizeof buf);
      if (n > 0) got.append(buf, n);
      if (n > 0 || SSL_get_error(c.ssl, n) != SSL_ERROR_WANT_READ) break;
    }
    if (!SendAll(c.fd, records.substr(*sent, 1))) break;
  }
  ::fcntl(c.fd, F_SETFL, flags);
  return c.ReadToEnd(got);
}

// Over TLS, POST /echo of `body`: the first half of the request in a record of its own, then the
// record of the rest in two halves, `between()` after each of those sends. The answer, decrypted.
std::string PostTlsInPieces(int port, const std::string& body,
                            const std::function<void()>& between) {
  const std::string post = "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  const int cut = static_cast<int>(post.size() / 2);
  TlsClient c(port);
  if (!c.ok || SSL_write(c.ssl, post.data(), cut) != cut) return "";
  between();
  const std::string records = c.Records(std::string_view(post).substr(cut));
  if (SendAll(c.fd, records.substr(0, records.size() / 2))) {
    between();
    (void)SendAll(c.fd, records.substr(records.size() / 2));
  }
  return c.ReadToEnd();
}

TEST(HttpServer, HttpsConnectionsHaveTheSameBounds) {
  const fs::path dir = fs::temp_directory_path() / ("oc-https-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string make_cert = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
                                "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
                                key + " -out " + cert + " 2>/dev/null";
  ASSERT_EQ(std::system(make_cert.c_str()), 0) << "needs the openssl command (Debian: openssl)";
  {
    Running<HttpsServer> s(ServerSetup{}, cert.c_str(), key.c_str());
    ASSERT_TRUE(s.server().is_valid());
    httplib::SSLClient c("127.0.0.1", s.port());
    c.set_ca_cert_path(cert);
    c.enable_server_certificate_verification(true);
    c.set_keep_alive(true);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(GetsHello(c));
    }
    // Bodies of many records each way on the kept connection (its socket is non-blocking).
    auto echo = c.Post("/echo", std::string(kBodyLimit, 'b'), "text/plain");
    ASSERT_TRUE(echo) << httplib::to_string(echo.error());
    EXPECT_EQ(echo->body, std::to_string(kBodyLimit));
    auto big = c.Get("/big");
    ASSERT_TRUE(big) << httplib::to_string(big.error());
    EXPECT_EQ(big->body.size(), kBigAnswer);
    httplib::Headers many;
    for (size_t i = 0; i < kMaxHeaderFields + 10; ++i) many.emplace("X-" + std::to_string(i), "b");
    httplib::SSLClient fresh("127.0.0.1", s.port());
    fresh.set_ca_cert_path(cert);
    fresh.enable_server_certificate_verification(true);
    auto r = fresh.Get("/hello", many);
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 431);
  }
  {
    // A TLS connection parked between requests comes back with its session: the same
    // connection (the client's port) answers again, on another thread.
    Running<HttpsServer> s(ServerSetup{{}, 2, std::chrono::milliseconds(50)}, cert.c_str(),
                           key.c_str());
    httplib::SSLClient c("127.0.0.1", s.port());
    c.set_ca_cert_path(cert);
    c.enable_server_certificate_verification(true);
    c.set_keep_alive(true);
    std::string port;
    for (int i = 0; i < 3; ++i) {
      auto r = c.Get("/port");
      ASSERT_TRUE(r) << httplib::to_string(r.error());
      if (i == 0) port = r->body;
      EXPECT_EQ(r->body, port) << i;
      ASSERT_TRUE(Parked(s.server(), 1)) << i;
    }
  }
  {
    // A TLS request parked while it is gathered: after a record with its first half, and inside
    // the record of the rest. It is answered when the rest comes.
    Running<HttpsServer> s(ServerSetup{{}, 2, std::chrono::milliseconds(50)}, cert.c_str(),
                           key.c_str());
    const std::string body(2000, 'b');
    const std::string got = PostTlsInPieces(s.port(), body, [&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      EXPECT_TRUE(Parked(s.server(), 1));
    });
    EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got;
    EXPECT_NE(got.find("\r\n\r\n2000"), std::string::npos) << got;
  }
  {
    // A request trickled inside one TLS record reaches its deadline as a plain one does. Before,
    // the read of a record waited for all of it, each byte within the 5 s read timeout.
    Running<HttpsServer> s(ServerSetup{RequestDeadline{1.0, 1024}}, cert.c_str(), key.c_str());
    size_t sent = 0, total = 0;
    const std::string got = TrickleTls(s.port(), Request(Fields(5)), &sent, &total);
    ASSERT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got;
    EXPECT_LT(sent, total);
  }
  {
    // Both threads wait on a client that never starts its handshake: a new client is served,
    // and the handshake begun first gives its thread up.
    Running<HttpsServer> s(ServerSetup{{}, 2}, cert.c_str(), key.c_str());
    std::vector<int> mute;
    for (int i = 0; i < 2; ++i) {
      mute.push_back(Connect(s.port()));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    httplib::SSLClient c("127.0.0.1", s.port());
    c.set_ca_cert_path(cert);
    c.enable_server_certificate_verification(true);
    c.set_read_timeout(5, 0);
    ASSERT_TRUE(GetsHello(c));
    EXPECT_TRUE(ClosedByServer(mute[0]));
    EXPECT_EQ(s.server().arriving_given_up(), 1u);
    for (int fd : mute) ::close(fd);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace overcast::serve
