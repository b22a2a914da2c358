// The guarded HTTP server under clients that send too much, or more than one request at a time.
#include "serve/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace overcast::serve {
namespace {

namespace fs = std::filesystem;

constexpr size_t kBodyLimit = 64 << 10;
constexpr size_t kEnough = 64 << 20;  // a client that sent this much was never stopped

// A guarded server on a free loopback port until it goes out of scope: GET /hello, GET /who (the
// client's address), POST /echo (the body's size).
template <class S>
class Running {
 public:
  template <class... A>
  explicit Running(A&&... args) : server_(std::forward<A>(args)...) {
    ConfigureHttpServer(server_, 2, 16, kBodyLimit);
    server_.Get("/hello", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("hello", "text/plain");
    });
    server_.Get("/who", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.remote_addr, "text/plain");
    });
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(std::to_string(req.body.size()), "text/plain");
    });
    port_ = BindHttpServer(server_, "127.0.0.1", 0);
    if (port_ > 0) thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Running() {
    StopHttpServer(server_);
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }
  S& server() { return server_; }

 private:
  S server_;
  int port_ = -1;
  std::thread thread_;
};

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
  }
  if (fd >= 0) ::close(fd);
  return -1;
}

bool SendAll(int fd, const std::string& s) {
  return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
}

// Everything the server sends until it closes the connection (or 10 s pass without a byte).
std::string ReadToEnd(int fd) {
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
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
  for (size_t i = 0; i < n; ++i) s += "X-" + std::to_string(1000 + i % 9000).substr(0, 4) + ": b\r\n";
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
    auto r = c.Get("/hello");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->body, "hello");
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

TEST(HttpServer, HttpsConnectionsHaveTheSameBounds) {
  const fs::path dir = fs::temp_directory_path() / ("oc-https-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string make_cert = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
                                "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
                                key + " -out " + cert + " 2>/dev/null";
  ASSERT_EQ(std::system(make_cert.c_str()), 0) << "needs the openssl command (Debian: openssl)";
  {
    Running<HttpsServer> s(cert.c_str(), key.c_str());
    ASSERT_TRUE(s.server().is_valid());
    httplib::SSLClient c("127.0.0.1", s.port());
    c.set_ca_cert_path(cert);
    c.enable_server_certificate_verification(true);
    c.set_keep_alive(true);
    for (int i = 0; i < 3; ++i) {
      auto r = c.Get("/hello");
      ASSERT_TRUE(r) << httplib::to_string(r.error());
      EXPECT_EQ(r->body, "hello");
    }
    httplib::Headers many;
    for (size_t i = 0; i < kMaxHeaderFields + 10; ++i) many.emplace("X-" + std::to_string(i), "b");
    httplib::SSLClient fresh("127.0.0.1", s.port());
    fresh.set_ca_cert_path(cert);
    fresh.enable_server_certificate_verification(true);
    auto r = fresh.Get("/hello", many);
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 431);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace overcast::serve
