// The HTTP server under every overcast HTTP endpoint (the serve front end and its replicas):
// httplib's request parser and router, each connection served by a loop of overcast's own that
// bounds what a client may send and keeps idle connections cheap.
#pragma once

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace overcast::serve {

// What one request may send before it is routed: its request line and header fields together,
// in bytes and in fields. Past either, the client gets a 431 with a JSON error and the
// connection closes. httplib 0.11 reads a line whole before it checks its length, and keeps
// every header field: 2 M fields took a server from 14 MB to 233 MB of resident memory, and one
// 100 MB line without an end to 257 MB.
inline constexpr size_t kMaxHeaderBytes = 64 << 10;
inline constexpr size_t kMaxHeaderFields = 100;

// How long a request may take to arrive: a grace, plus its bytes at a least rate. A client
// slower than that (one byte every few seconds keeps httplib's per-read timeout from firing, and
// held a connection thread for as long as it liked) gets a JSON 408 and the connection closes.
struct RequestDeadline {
  double grace_s = 10;
  double min_bytes_per_s = 8 << 10;
};

// The settings every overcast HTTP server shares (front end and replicas): a pool of `threads`
// connection threads that grows up to `max_threads` (below), TCP_NODELAY (else Nagle + delayed
// ACK add ~40 ms per hop), long keep-alive, a body limit, a 415 on the headers of a request
// whose body has a Content-Encoding (httplib would inflate it whole before any size check), and
// JSON bodies for the errors httplib answers by itself.
//
// httplib serves each connection on one pool thread for the connection's whole life, keep-alive
// included. With a fixed pool, `threads` idle connections held every thread and every later
// client, /healthz too, waited up to the keep-alive timeout (60 s). So a connection that finds
// no thread idle starts one, up to `max_threads`; threads beyond `threads` end after 30 s idle
// (each job goes to the thread idle the shortest, so the others can).
// Past `max_threads`, a connection waits for a thread; on a GuardedServer a connection waiting on
// its client gives its thread up for it (http_detail::Signals), and idle connections leave
// their threads anyway after a short spell (set_idle_spell). `threads` is capped at it.
//
// `max_parked`: on a GuardedServer, idle connections kept without a thread (ParkingLot); past
// it, the one whose keep-alive deadline comes first closes. Each is a descriptor: with the
// threads' connections, within the open-files limit, so that accept() never runs out.
// `thread_idle_end`: a thread beyond `threads` idle this long ends.
inline constexpr size_t kMaxParkedConnections = 16384;
void ConfigureHttpServer(httplib::Server& server, int threads, int max_threads,
                         size_t max_body_bytes, size_t max_parked = kMaxParkedConnections,
                         std::chrono::milliseconds thread_idle_end = std::chrono::seconds(30));

// Binds `server` to host:port (0: any free port) and listens with a backlog of 1024; returns the
// port, or -1. Debian's cpp-httplib is a shared library built with a backlog of 5, which a burst
// of connects overflows (each dropped handshake costs its client a retransmit, and now and then
// a failed request), so the backlog is raised on the bound socket.
int BindHttpServer(httplib::Server& server, const std::string& host, int port);

// Stops `server`. On a GuardedServer this also raises its stop signal, so connections waiting
// for their next request end at once rather than at their next second-long wake-up.
void StopHttpServer(httplib::Server& server);

// Whether `req` carries `Authorization: Bearer SECRET`, compared in constant time.
bool HasBearer(const httplib::Request& req, std::string_view secret);

namespace http_detail {

using Clock = std::chrono::steady_clock;

// Where connections wait on their clients once they have left their threads (for their next
// request, or the rest of one being gathered): one thread polls them all (epoll) and queues each
// for a connection thread again when its client sends, or at its request's deadline (for the
// 408); it closes one at its keep-alive deadline, when the server stops, or past its limit (the
// one whose deadline comes first). Started with the server's first parked connection.
class ParkingLot {
 public:
  // Called once: with true on a connection thread when the client sent something, or with
  // false (the connection is to close) on any thread.
  using Go = std::function<void(bool resume)>;

  explicit ParkingLot(int stop_fd) : stop_fd_(stop_fd) {}
  ~ParkingLot() { Close(); }
  ParkingLot(const ParkingLot&) = delete;
  ParkingLot& operator=(const ParkingLot&) = delete;

  // Connections resume on `pool`'s threads from now until Close().
  void Open(httplib::TaskQueue* pool);
  // Every parked connection closes, and later ones close as they come; the thread ends.
  void Close();
  // The connection on `sock` waits here for its client's next bytes, until `until` (its
  // keep-alive deadline, or its request's); `go` is told what became of it: at `until` it closes,
  // or with `back_at_until` it goes back to a connection thread (to answer a request late). Closed
  // at once when the lot is not open (the server stops, or the lot could not start: out of
  // descriptors or threads).
  void Park(int sock, Clock::time_point until, bool back_at_until, Go go);
  size_t parked() const;
  // Connections kept at most (ConfigureHttpServer's `max_parked`).
  void set_limit(size_t cars);
  size_t limit() const;
  // Connections closed so far to keep within the limit.
  uint64_t closed_past_limit() const;

 private:
  struct Car {
    int sock;
    Clock::time_point until;
    bool back_at_until;
    Go go;
  };
  static constexpr uint64_t kWakeId = 0, kStopId = UINT64_MAX;  // epoll ids beside the cars'
  void Loop();
  // Takes car `id` out (its Go into `out`) and stops polling its socket.
  void LeaveLocked(uint64_t id, std::vector<Go>& out);

  const int stop_fd_;
  mutable std::mutex mu_;
  httplib::TaskQueue* pool_ = nullptr;
  bool open_ = false;
  size_t limit_ = kMaxParkedConnections;
  int epoll_fd_ = -1, wake_fd_ = -1;
  std::thread thread_;
  std::map<uint64_t, Car> cars_;
  std::set<std::pair<Clock::time_point, uint64_t>> deadlines_;
  uint64_t next_id_ = 1;
  uint64_t closed_past_limit_ = 0;
};

// What a connection waiting on its client answers to, beside its socket:
// - stop: an eventfd written once when the server stops; every such connection ends;
// - demand: an accepted connection (or a parked one whose client sent) the pool has no thread
//   for, all `max_threads` holding connections. A connection waiting on its client gives its
//   thread up:
//   - first the one that has waited longest on its client while idle: for its next request
//     (keep-alive), its first byte, or the rest of a request being gathered (its head, or a body of
//     known length or chunks: GuardedServer). It leaves for the parking lot at once instead of at
//     the end of its spell (set_idle_spell). Its client loses nothing;
//   - else the one whose request began longest ago and is still arriving in the parser (a body sent
//     after a 100 Continue, say: the parser cannot move to another thread) or whose TLS handshake
//     is: it gets a 503 and the connection closes. Requests arrive in milliseconds, so the oldest
//     still arriving is a client holding its thread (a byte at a time within the RequestDeadline);
//   - with none waiting on its client (every thread runs a handler or writes an answer), the
//     next connection to start waiting for its next request is parked at once.
//   Only the connection chosen wakes (an idle one through its thread's own eventfd).
class Signals {
 public:
  Signals();
  ~Signals();
  Signals(const Signals&) = delete;
  Signals& operator=(const Signals&) = delete;
  void Stop();
  int stop_fd() const { return stop_fd_; }

  // The connection whose thread waits on `wake_fd` (an eventfd) starts waiting for its next
  // request: a ticket for LeaveIdle, or 0 when a connection waits for a thread and this one is
  // to leave for the parking lot at once.
  uint64_t EnterIdle(int wake_fd);
  // It stops waiting: false when it was asked to give its thread up (Demand); its wake_fd was
  // written once.
  bool LeaveIdle(uint64_t ticket);

  // The connection on `sock` waits for more of a request (or a TLS handshake) that began at
  // `since` (steady clock, ns): a ticket for LeaveArriving.
  struct Arriving {
    int64_t since;
    uint64_t ticket;
    auto operator<=>(const Arriving&) const = default;
  };
  Arriving EnterArriving(int sock, int64_t since);
  // It stops waiting: false when its reading side was shut down to give its thread up.
  bool LeaveArriving(const Arriving& a);

  // A connection has no thread: a connection waiting on its client gives its thread up, or,
  // with none waiting, the next to start waiting for its next request will.
  void Demand();
  // A thread took a connection that had none, and `connections` still wait for one: demands
  // owed beyond them are withdrawn.
  void Waiting(size_t connections);

  // Connections waiting on their clients on their threads now (idle, or a request arriving).
  size_t waiting_on_clients() const;
  ParkingLot& parking() { return parking_; }
  const ParkingLot& parking() const { return parking_; }
  size_t parked() const { return parking_.parked(); }

  // The connection pool's threads (ConfigureHttpServer), as its last change left them: all, and
  // those idle (waiting for a connection to serve).
  struct PoolThreads {
    uint32_t all = 0, idle = 0;
  };
  void SetPoolThreads(PoolThreads t) { pool_threads_.store(t, std::memory_order_relaxed); }
  PoolThreads pool_threads() const { return pool_threads_.load(std::memory_order_relaxed); }

  // An answer the connection loop wrote itself: the request never reached httplib's router
  // (and so its logger). A 408 (too slow to arrive), a 413 (a Content-Length over the body limit,
  // answered before the body is sent), a 431 (a head past the bounds) or a 503 (its thread given
  // up while the parser read it).
  struct LoopAnswer {
    int status = 0;
    std::string_view method, target;  // the request line's, once it came whole (else empty)
    std::string remote;               // the client's address
    Clock::time_point began;          // when the request began arriving
    size_t body_bytes = 0;            // of its body, read before the answer
    size_t answer_bytes = 0;          // the answer's JSON body
  };
  using LoopAnswerHandler = std::function<void(const LoopAnswer&)>;
  // Set before listening; called on the connection's thread.
  void set_loop_answer_handler(LoopAnswerHandler h) { on_loop_answer_ = std::move(h); }
  // Counts `a`, then hands it to the handler.
  void LoopAnswered(const LoopAnswer& a);
  // The loop's answers so far with `status` (408, 413, 431 or 503; 0 for any other).
  uint64_t loop_answers(int status) const;

  // Connections that gave their threads up for others so far: idle ones (parked early), and
  // ones whose request was arriving (a 503, closed).
  uint64_t idle_given_up() const { return idle_given_up_.load(std::memory_order_relaxed); }
  uint64_t arriving_given_up() const {
    return arriving_given_up_.load(std::memory_order_relaxed);
  }

 private:
  const int stop_fd_;
  mutable std::mutex mu_;
  std::map<uint64_t, int> idle_;  // ticket (rising: the longest waiting first) -> wake eventfd
  std::map<Arriving, int> arriving_;  // the oldest request first -> socket
  uint64_t next_ticket_ = 1;
  size_t owed_ = 0;  // threads owed to connections waiting for one, at most one each
  std::atomic<uint64_t> idle_given_up_{0}, arriving_given_up_{0};
  std::atomic<uint64_t> answered_[4]{};  // the loop's 408s, 413s, 431s and 503s
  LoopAnswerHandler on_loop_answer_;
  std::atomic<PoolThreads> pool_threads_{};  // one word: the two counts agree
  ParkingLot parking_{stop_fd_};
};

struct ConnectionSettings {
  size_t keep_alive_max_count;
  time_t keep_alive_timeout_sec;
  time_t read_timeout_sec, read_timeout_usec, write_timeout_sec, write_timeout_usec;
  size_t payload_max_length;
  RequestDeadline deadline;
  int idle_spell_ms;
};

// httplib's Server::process_request for one request on `strm`.
using ProcessRequest =
    std::function<bool(httplib::Stream& strm, bool close_connection, bool& connection_closed)>;

// Serves the accepted connection `sock` request after request until it closes, the keep-alive
// timeout passes, `signals` stop it, or `listening` becomes INVALID_SOCKET; then closes `sock`.
// Between requests it may leave its thread for `signals`' parking lot, and come back on another.
// `tls`: null for plain TCP, else the context to run a TLS handshake with first.
bool ServeConnection(const ConnectionSettings& settings, int sock, SSL_CTX* tls,
                     Signals& signals, const std::atomic<socket_t>& listening,
                     const ProcessRequest& process);

}  // namespace http_detail

// An httplib server (Base: httplib::Server, or httplib::SSLServer for HTTPS) whose connections
// are served by http_detail::ServeConnection instead of httplib's loop:
// - the request line and headers are bounded (kMaxHeaderBytes, kMaxHeaderFields), a request in
//   all (headers, body, chunk framing) to twice the body limit plus the headers' bound, and the
//   time it takes to arrive (RequestDeadline);
// - bytes a client sends ahead (pipelined requests) are kept for the next request, where
//   httplib's loop dropped them and the client waited for an answer that never came;
// - a connection waiting for its next request sleeps in poll() until bytes come, where httplib
//   woke it 100 times a second (300 idle connections cost the front end 0.48 cores); after its
//   idle spell (1 s) it leaves its thread for the parking lot (ParkingLot), and comes back on a
//   thread when its client sends. Sooner when a connection has no thread (Signals);
// - a request is gathered in the connection's buffer before httplib's parser reads it: its head,
//   and the body the parser will read (a POST, PUT or PATCH with a Content-Length within the body
//   limit, or chunks of the body limit together; no Expect or Content-Encoding). While its client
//   is behind, the connection waits as an idle one does, and may park with the bytes so far; its
//   deadline still runs. Other bodies are read by the parser as they come, on the thread; one
//   whose Content-Length is over the body limit gets a 413 once the head is whole, and the
//   connection closes, without waiting for a body the parser would only read to drop.
template <class Base>
class GuardedServer final : public Base, public http_detail::Signals {
 public:
  using Base::Base;

  // Set before listening.
  void set_request_deadline(RequestDeadline d) { deadline_ = d; }
  // How long a connection waits on its client on its thread (for its next request, or for more
  // of one being gathered) before it leaves for the parking lot (http_detail::ParkingLot): busy
  // keep-alive connections stay on their threads, and an idle one costs a socket and its
  // buffers (16 KiB, or the request gathered so far, and the TLS session), not a thread. Longer
  // than the keep-alive: connections never park unless a connection has no thread.
  void set_idle_spell(std::chrono::milliseconds spell) {
    idle_spell_ms_ = static_cast<int>(std::clamp<long long>(spell.count(), 0, INT_MAX));
  }

 private:
  bool process_and_close_socket(socket_t sock) override {
    const http_detail::ConnectionSettings s{
        this->keep_alive_max_count_, this->keep_alive_timeout_sec_, this->read_timeout_sec_,
        this->read_timeout_usec_,    this->write_timeout_sec_,      this->write_timeout_usec_,
        this->payload_max_length_,   deadline_,                     idle_spell_ms_};
    SSL_CTX* tls = nullptr;
    if constexpr (std::is_base_of_v<httplib::SSLServer, Base>) tls = this->ssl_context();
    return http_detail::ServeConnection(
        s, sock, tls, *this, this->svr_sock_,
        [this](httplib::Stream& strm, bool close_connection, bool& connection_closed) {
          return this->process_request(strm, close_connection, connection_closed, nullptr);
        });
  }

  RequestDeadline deadline_;
  int idle_spell_ms_ = 1000;
};

// When the request being processed on this thread (by a GuardedServer) began arriving: its first
// byte read after the answer before it. For handlers and loggers; outside a request, the time of
// the last one on this thread.
std::chrono::steady_clock::time_point RequestBegan();
// Whether the connection loop answered the request being processed on this thread itself
// (http_detail::Signals::LoopAnswer: a 408, 431 or 503 while the parser read it). httplib's
// logger still sees the parser's own answer to that request (a 400), which was never sent.
bool AnsweredByTheLoop();

using HttpServer = GuardedServer<httplib::Server>;
using HttpsServer = GuardedServer<httplib::SSLServer>;

}  // namespace overcast::serve
