#include "serve/http_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "net/auth.h"
#include "serve/api.h"

namespace overcast::serve {

namespace {

// SSL_write on a peer that closed raises SIGPIPE in the writing thread; OpenSSL's socket writes
// take no MSG_NOSIGNAL, so a TLS connection's thread blocks the signal and drops any it caused.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlocked() {
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_, old_;
};

// httplib's task queue, elastic: `least` threads always, one more for each connection that
// arrives (or comes back from the parking lot) with none idle, up to `most`. Threads are
// detached; shutdown() waits for all to end. A connection that gets no thread raises demand in
// `signals` (when the server has them): a connection waiting on its client gives its thread up,
// or the next one to go idle does; demands owed beyond the connections still waiting are
// withdrawn as threads take them.
class ElasticPool final : public httplib::TaskQueue {
 public:
  ElasticPool(size_t least, size_t most, std::chrono::milliseconds idle_end,
              http_detail::Signals* signals)
      : least_(least), most_(std::max(least, most)), idle_end_(idle_end), signals_(signals) {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t i = 0; i < least_; ++i) SpawnLocked();
    if (signals_ != nullptr) signals_->parking().Open(this);
  }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> l(mu_);
    jobs_.push_back(std::move(fn));
    // A thread still starting takes a job as an idle one does; counting it as busy raised
    // demand for a job it was about to take, and closed an idle connection for nothing.
    if (waiting_.size() + waking_ + starting_ < jobs_.size() &&
        !(live_ < most_ && SpawnLocked()) && signals_ != nullptr) {
      signals_->Demand();
    }
    if (!waiting_.empty()) {  // the thread idle the shortest: the others may reach idle_end_
      Waiter* w = waiting_.back();
      waiting_.pop_back();
      ++waking_;
      w->woken = true;
      w->cv.notify_one();
    }
    PublishLocked();
  }

  void shutdown() override {
    // Before the threads end: no parked connection comes back to a pool that is going.
    if (signals_ != nullptr) signals_->parking().Close();
    std::unique_lock<std::mutex> l(mu_);
    shutdown_ = true;
    for (Waiter* w : waiting_) w->cv.notify_one();
    ended_.wait(l, [this] { return live_ == 0; });
  }

 private:
  // When the system refuses another thread (a limit on tasks or memory), the connection waits
  // for one of the running threads, as it would past `most`.
  bool SpawnLocked() {
    try {
      std::thread([this] { Work(); }).detach();
      ++live_;
      ++starting_;
      PublishLocked();
      return true;
    } catch (const std::system_error&) {
      return false;
    }
  }

  // An idle thread, waiting for a job. Jobs go to the thread idle the shortest (a stack), so
  // that after a burst the threads it started stay idle and end; woken in turn, every thread of
  // a large pool took a job now and then under a light load, and none reached idle_end_.
  struct Waiter {
    std::condition_variable cv;
    bool woken = false;
  };

  void Work() {
    std::unique_lock<std::mutex> l(mu_);
    --starting_;
    for (;;) {
      bool timed_out = false;
      if (jobs_.empty() && !shutdown_) {
        Waiter w;
        waiting_.push_back(&w);
        PublishLocked();
        timed_out = !w.cv.wait_for(l, idle_end_, [&] { return w.woken || shutdown_; });
        if (w.woken) {
          --waking_;
        } else {
          std::erase(waiting_, &w);
          PublishLocked();
        }
      }
      if (jobs_.empty()) {  // another thread took the job first, or none came
        if (shutdown_ || (timed_out && live_ > least_)) break;
        continue;
      }
      std::function<void()> fn = std::move(jobs_.front());
      jobs_.pop_front();
      if (signals_ != nullptr) signals_->Waiting(jobs_.size());
      l.unlock();
      fn();  // one connection, until it closes or parks
      l.lock();
    }
    --live_;
    PublishLocked();
    if (live_ == 0) ended_.notify_all();
  }

  // The threads' counts, for the server's metrics. A thread woken for a job counts as busy.
  void PublishLocked() {
    if (signals_ != nullptr) {
      signals_->SetPoolThreads(
          {static_cast<uint32_t>(live_), static_cast<uint32_t>(waiting_.size())});
    }
  }

  const size_t least_, most_;
  const std::chrono::milliseconds idle_end_;  // a thread beyond `least` idle this long ends
  http_detail::Signals* const signals_;
  std::mutex mu_;
  std::condition_variable ended_;
  std::deque<std::function<void()>> jobs_;
  std::vector<Waiter*> waiting_;  // the idle threads, the one idle the shortest last
  size_t live_ = 0, starting_ = 0, waking_ = 0;  // waking: taken off waiting_, not yet running
  bool shutdown_ = false;
};

}  // namespace

void ConfigureHttpServer(httplib::Server& server, int threads, int max_threads,
                         size_t max_body_bytes, size_t max_parked,
                         std::chrono::milliseconds thread_idle_end) {
  const size_t most = static_cast<size_t>(std::max(1, max_threads));
  const size_t least = std::min(most, static_cast<size_t>(std::max(1, threads)));
  auto* signals = dynamic_cast<http_detail::Signals*>(&server);
  if (signals != nullptr) signals->parking().set_limit(max_parked);
  server.new_task_queue = [least, most, thread_idle_end, signals] {
    return new ElasticPool(least, most, thread_idle_end, signals);
  };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(1u << 30);
  server.set_keep_alive_timeout(60);
  server.set_payload_max_length(max_body_bytes);
  server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    const std::string enc = req.get_header_value("Content-Encoding");
    if (enc.empty() || enc == "identity") return httplib::Server::HandlerResponse::Unhandled;
    res.status = 415;
    res.set_header("Connection", "close");
    res.set_content(JsonError(415, "Content-Encoding '" + enc + "' is not accepted: send the "
                                   "body uncompressed"),
                    "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      res.set_content(JsonError(res.status, HttpReason(res.status)), "application/json");
    }
  });
}

bool HasBearer(const httplib::Request& req, std::string_view secret) {
  const std::string auth = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  return auth.starts_with(kBearer) &&
         net::SecretMatches(secret, std::string_view(auth).substr(kBearer.size()));
}

int BindHttpServer(httplib::Server& server, const std::string& host, int port) {
  int listening = -1;
  server.set_socket_options([&listening](socket_t sock) {
    httplib::default_socket_options(sock);
    listening = sock;  // the last socket tried is the one that bound
  });
  const int bound =
      port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  server.set_socket_options(httplib::default_socket_options);
  // listen() again on a listening socket only changes its backlog (capped by somaxconn).
  if (bound > 0 && listening >= 0) ::listen(listening, 1024);
  return bound;
}

void StopHttpServer(httplib::Server& server) {
  if (auto* signals = dynamic_cast<http_detail::Signals*>(&server)) signals->Stop();
  server.stop();
}

namespace http_detail {

// Without an eventfd (the process is out of descriptors) poll() skips the -1: connections
// notice a stop within their second-long wait.
Signals::Signals() : stop_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Signals::~Signals() {
  parking_.Close();  // its thread polls stop_fd_
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void Signals::Stop() {
  const uint64_t one = 1;
  if (stop_fd_ >= 0) (void)!::write(stop_fd_, &one, sizeof one);  // nobody reads it
}

uint64_t Signals::EnterIdle(int wake_fd) {
  std::lock_guard<std::mutex> l(mu_);
  if (owed_ > 0) {
    --owed_;
    idle_given_up_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  idle_.emplace(next_ticket_, wake_fd);
  return next_ticket_++;
}

bool Signals::LeaveIdle(uint64_t ticket) {
  std::lock_guard<std::mutex> l(mu_);
  return idle_.erase(ticket) == 1;
}

Signals::Arriving Signals::EnterArriving(int sock, int64_t since) {
  std::lock_guard<std::mutex> l(mu_);
  const Arriving a{since, next_ticket_++};
  arriving_.emplace(a, sock);
  return a;
}

bool Signals::LeaveArriving(const Arriving& a) {
  std::lock_guard<std::mutex> l(mu_);
  return arriving_.erase(a) == 1;
}

size_t Signals::waiting_on_clients() const {
  std::lock_guard<std::mutex> l(mu_);
  return idle_.size() + arriving_.size();
}

void Signals::Demand() {
  std::lock_guard<std::mutex> l(mu_);
  // Under the lock: an owner closes its socket only after leaving, so it is still open. An idle
  // connection's thread wakes on its eventfd and parks it; an arriving request's owner wakes on
  // the shutdown, reads the end, and can still write its 503: only the reading side is shut.
  if (!idle_.empty()) {
    const uint64_t one = 1;
    (void)!::write(idle_.begin()->second, &one, sizeof one);
    idle_.erase(idle_.begin());
    idle_given_up_.fetch_add(1, std::memory_order_relaxed);
  } else if (!arriving_.empty()) {
    ::shutdown(arriving_.begin()->second, SHUT_RD);
    arriving_.erase(arriving_.begin());
    arriving_given_up_.fetch_add(1, std::memory_order_relaxed);
  } else {
    ++owed_;
  }
}

void Signals::Waiting(size_t connections) {
  std::lock_guard<std::mutex> l(mu_);
  owed_ = std::min(owed_, connections);
}

// The slot of Signals::answered_ counting `status`, or -1.
static int AnsweredSlot(int status) {
  return status == 408 ? 0 : status == 413 ? 1 : status == 431 ? 2 : status == 503 ? 3 : -1;
}

void Signals::LoopAnswered(const LoopAnswer& a) {
  const int slot = AnsweredSlot(a.status);
  if (slot >= 0) answered_[slot].fetch_add(1, std::memory_order_relaxed);
  if (on_loop_answer_) on_loop_answer_(a);
}

uint64_t Signals::loop_answers(int status) const {
  const int slot = AnsweredSlot(status);
  return slot < 0 ? 0 : answered_[slot].load(std::memory_order_relaxed);
}

void ParkingLot::Open(httplib::TaskQueue* pool) {
  std::lock_guard<std::mutex> l(mu_);
  pool_ = pool;
  open_ = true;
}

void ParkingLot::Close() {
  std::vector<Go> closing;
  std::thread ending;
  {
    std::lock_guard<std::mutex> l(mu_);
    open_ = false;
    pool_ = nullptr;
    while (!cars_.empty()) LeaveLocked(cars_.begin()->first, closing);
    ending = std::move(thread_);
    if (wake_fd_ >= 0) {
      const uint64_t one = 1;
      (void)!::write(wake_fd_, &one, sizeof one);
    }
  }
  if (ending.joinable()) ending.join();
  {
    SigpipeBlocked quiet;  // closing a TLS connection writes its close_notify
    for (Go& go : closing) go(false);
    closing.clear();
  }
  std::lock_guard<std::mutex> l(mu_);
  for (int* fd : {&epoll_fd_, &wake_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void ParkingLot::set_limit(size_t cars) {
  std::lock_guard<std::mutex> l(mu_);
  limit_ = cars;
}

size_t ParkingLot::limit() const {
  std::lock_guard<std::mutex> l(mu_);
  return limit_;
}

uint64_t ParkingLot::closed_past_limit() const {
  std::lock_guard<std::mutex> l(mu_);
  return closed_past_limit_;
}

size_t ParkingLot::parked() const {
  std::lock_guard<std::mutex> l(mu_);
  return cars_.size();
}

void ParkingLot::Park(int sock, Clock::time_point until, bool back_at_until, Go go) {
  std::vector<Go> closing;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (open_ && epoll_fd_ < 0) {  // the first parked connection starts the lot's thread
      epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
      wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      epoll_event wake{EPOLLIN, {.u64 = kWakeId}};
      epoll_event stop{EPOLLIN, {.u64 = kStopId}};
      if (epoll_fd_ < 0 || wake_fd_ < 0 ||
          ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake) != 0 ||
          (stop_fd_ >= 0 && ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &stop) != 0)) {
        open_ = false;  // out of descriptors: connections close instead of parking
      } else {
        try {
          thread_ = std::thread([this] { Loop(); });
        } catch (const std::system_error&) {
          open_ = false;
        }
      }
    }
    const uint64_t id = next_id_++;
    epoll_event e{EPOLLIN | EPOLLRDHUP, {.u64 = id}};
    if (!open_ || ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sock, &e) != 0) {
      closing.push_back(std::move(go));
    } else {
      const bool soonest = deadlines_.empty() || until < deadlines_.begin()->first;
      cars_.emplace(id, Car{sock, until, back_at_until, std::move(go)});
      deadlines_.emplace(until, id);
      // Past the bound, the car due first leaves: its client loses a connection it had let
      // idle, not a request.
      if (cars_.size() > limit_) {
        LeaveLocked(deadlines_.begin()->second, closing);
        ++closed_past_limit_;
      }
      if (soonest) {  // the lot's thread sleeps until the deadline it knew
        const uint64_t one = 1;
        (void)!::write(wake_fd_, &one, sizeof one);
      }
    }
  }
  for (Go& g : closing) g(false);
}

void ParkingLot::LeaveLocked(uint64_t id, std::vector<Go>& out) {
  auto it = cars_.find(id);
  if (it == cars_.end()) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.sock, nullptr);
  deadlines_.erase({it->second.until, id});
  out.push_back(std::move(it->second.go));
  cars_.erase(it);
}

void ParkingLot::Loop() {
  SigpipeBlocked quiet;  // closing a TLS connection writes its close_notify
  epoll_event events[64];
  for (;;) {
    int ms = 1000;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!open_) return;
      if (!deadlines_.empty()) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(
            deadlines_.begin()->first - Clock::now());
        ms = static_cast<int>(std::clamp<long long>(left.count(), 0, 1000));
      }
    }
    const int n = ::epoll_wait(epoll_fd_, events, 64, ms);
    std::vector<Go> resuming, closing;
    httplib::TaskQueue* pool = nullptr;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!open_) return;
      bool stopping = false;
      for (int i = 0; i < n; ++i) {
        const uint64_t id = events[i].data.u64;
        if (id == kWakeId) {
          uint64_t count;
          (void)!::read(wake_fd_, &count, sizeof count);
        } else if (id == kStopId) {
          stopping = true;
        } else {
          // A connection in error or closed both ways closes here; one with bytes (or a client
          // that sent its last request and shut its side) goes back to a thread.
          const bool over = (events[i].events & (EPOLLERR | EPOLLHUP)) != 0;
          LeaveLocked(id, over ? closing : resuming);
        }
      }
      if (stopping) {  // the server's stop (its eventfd stays raised): every car closes
        open_ = false;
        for (Go& g : resuming) closing.push_back(std::move(g));
        resuming.clear();
        while (!cars_.empty()) LeaveLocked(cars_.begin()->first, closing);
      }
      const auto now = Clock::now();
      while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        const uint64_t id = deadlines_.begin()->second;
        LeaveLocked(id, cars_.at(id).back_at_until ? resuming : closing);
      }
      pool = pool_;
    }
    for (Go& g : closing) g(false);
    // Close() waits for this thread before the pool goes, so the pool outlives these calls.
    for (Go& g : resuming) pool->enqueue([g = std::move(g)] { g(true); });
  }
}

namespace {

// Of the request being processed on this thread (RequestBegan, AnsweredByTheLoop).
thread_local Clock::time_point t_request_began;
thread_local bool t_loop_answered = false;

int64_t Nanoseconds(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Waits up to `ms` for `events` on `sock` (or an end a read reports): 1 when they came, 0 at
// the timeout, 2 when `wake_fd` (an eventfd; -1 for none) was written first, -1 when `stop_fd`
// (Signals::stop_fd) was raised first or poll() failed: a connection waiting on its client does
// not hold up the server's stop.
int WaitUnlessStopped(int sock, short events, int ms, int stop_fd, int wake_fd = -1) {
  pollfd p[3] = {{sock, events, 0}, {stop_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
  for (;;) {
    const int r = ::poll(p, 3, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (r > 0 && p[1].revents != 0)) return -1;
    if (r > 0 && p[0].revents != 0) return 1;
    return r > 0 ? 2 : 0;
  }
}

// The calling thread's own eventfd (-1 when the process has no descriptor left: the thread then
// notices a Demand at the end of its idle spell).
int ThreadWakeFd() {
  struct WakeFd {
    const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ~WakeFd() {
      if (fd >= 0) ::close(fd);
    }
  };
  thread_local WakeFd w;
  return w.fd;
}

int ToMs(time_t sec, time_t usec) {
  return static_cast<int>(std::min<long long>(INT_MAX, sec * 1000LL + (usec + 999) / 1000));
}

// Whether `a` is `lower` with any of its ASCII letters in either case.
bool SameLetters(std::string_view a, std::string_view lower) {
  return a.size() == lower.size() &&
         std::equal(a.begin(), a.end(), lower.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? static_cast<char>(x - 'A' + 'a') : x) == y;
         });
}

std::string_view Trimmed(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// Whether httplib's parser takes `line` (without its LF) as a request line: METHOD SP TARGET SP
// VERSION CR, a method it knows, HTTP/1.0 or 1.1. When it does not, it answers 400 after this
// line alone. Anything unusual (two spaces in a row, say) counts as refused here: the parser then
// reads the rest as it comes, as before.
bool TakenAsARequestLine(std::string_view line) {
  if (line.empty() || line.back() != '\r') return false;
  line.remove_suffix(1);
  const size_t a = line.find(' '), b = line.rfind(' ');
  if (a == std::string_view::npos || b <= a + 1) return false;
  const std::string_view method = line.substr(0, a), target = line.substr(a + 1, b - a - 1),
                         version = line.substr(b + 1);
  static constexpr std::string_view kMethods[] = {"GET",     "HEAD",    "POST",  "PUT",   "DELETE",
                                                  "CONNECT", "OPTIONS", "TRACE", "PATCH", "PRI"};
  return target.find(' ') == std::string_view::npos &&
         (version == "HTTP/1.1" || version == "HTTP/1.0") &&
         std::find(std::begin(kMethods), std::end(kMethods), method) != std::end(kMethods);
}

// How httplib's parser reads the body of a request whose head (request line and header lines,
// each ending in LF) is `head`, where that is sure (BodyToGather): `length` bytes (the
// Content-Length, at most `max_body`), or chunks (`chunked`).
struct BodyFraming {
  size_t length = 0;
  bool chunked = false;
  bool too_large = false;  // a Content-Length over `max_body`: answered 413 before it is sent
};

// The body to gather before httplib's parser reads a request whose head is `head`: that of a
// POST, PUT or PATCH whose body httplib reads by its Content-Length (at most `max_body`: a longer
// one is refused before it is read) or as chunks (one `Transfer-Encoding: chunked` and no
// Content-Length), with no Expect and no Content-Encoding (those bodies are refused, or read as
// they come). No body for anything else, or anything this reading is not sure of: the parser
// then reads the rest as it comes. A wrong "no body" only keeps a thread waiting, as before; a
// wrong length would wait for bytes the parser does not want. A Content-Length over `max_body`
// (no Transfer-Encoding or Content-Encoding beside it, an Expect or not) is `too_large`: the
// parser would read the whole body only to drop it.
BodyFraming BodyToGather(std::string_view head, size_t max_body) {
  const size_t sp = head.find(' ');
  const std::string_view method = head.substr(0, sp);
  if (method != "POST" && method != "PUT" && method != "PATCH") return {};
  std::optional<size_t> length;
  int encodings = 0;
  bool chunked = false, expect = false;
  size_t at = head.find('\n') + 1;
  while (at < head.size()) {
    const size_t end = head.find('\n', at);
    std::string_view line = head.substr(at, end - at);
    at = end + 1;
    if (line.empty() || line.back() != '\r') continue;  // httplib skips a line without CR
    line.remove_suffix(1);
    if (line.empty()) break;  // the blank line: the head's end
    const size_t colon = line.find(':');
    if (line[0] == ' ' || line[0] == '\t' || colon == std::string_view::npos) return {};
    const std::string_view name = line.substr(0, colon), value = Trimmed(line.substr(colon + 1));
    if (name.find_first_of(" \t") != std::string_view::npos) return {};
    if (SameLetters(name, "expect")) expect = true;
    if (SameLetters(name, "transfer-encoding")) {
      ++encodings;
      chunked = SameLetters(value, "chunked");
    }
    if (SameLetters(name, "content-encoding") && !value.empty() &&
        !SameLetters(value, "identity")) {
      return {};
    }
    if (SameLetters(name, "content-length")) {
      if (length || value.empty() || value.size() > 18 ||
          value.find_first_not_of("0123456789") != std::string_view::npos) {
        length = SIZE_MAX;  // two lengths, or one the parser may read otherwise: not sure
        continue;
      }
      length = std::stoull(std::string(value));
    }
  }
  if (encodings > 0) {  // a length beside the chunks is not for this reading to settle
    return encodings == 1 && chunked && !length && !expect ? BodyFraming{0, true}
                                                           : BodyFraming{};
  }
  if (!length || *length == SIZE_MAX) return {};
  if (*length > max_body) return BodyFraming{0, false, true};
  return expect ? BodyFraming{} : BodyFraming{*length, false};
}

// How far a chunked body has been read (ScanChunks): `at`, the offset of its next line to read
// (a chunk's size, or the line after the last chunk); `data`, the chunks' bytes before it;
// `last`, whether the last chunk (size 0) was read.
struct ChunkScan {
  size_t at = 0, data = 0;
  bool last = false;
};

// A chunk-size line (with any extension) longer than this is left to the parser.
constexpr size_t kMaxChunkLine = 64;

enum class Chunks { kMore, kWhole, kParser };
// Reads on in `body` (a chunked body, from its first byte) from `s`, as httplib's parser reads
// it: each chunk is a size in hex (an extension after ';' ignored) ending in CRLF, the data, and
// CRLF; the last has size 0 and is followed by one line. kWhole (s.at: the body's end) when that
// line has come, kMore when bytes are still to come, and kParser for anything unusual (a size
// with a sign, spaces or a 0x, a line over kMaxChunkLine, data not followed by CRLF, chunks over
// `max_body` together): the parser reads the rest as it comes, as before.
Chunks ScanChunks(std::string_view body, size_t max_body, ChunkScan& s) {
  for (;;) {
    const size_t lf = body.find('\n', s.at);
    if (lf == std::string_view::npos) {
      return body.size() - s.at > kMaxChunkLine ? Chunks::kParser : Chunks::kMore;
    }
    if (lf - s.at > kMaxChunkLine) return Chunks::kParser;
    if (s.last) {  // the line after the last chunk: the parser reads it, whatever it says
      s.at = lf + 1;
      return Chunks::kWhole;
    }
    std::string_view size = body.substr(s.at, lf - s.at);
    if (size.empty() || size.back() != '\r') return Chunks::kParser;
    size.remove_suffix(1);
    size = size.substr(0, size.find(';'));
    if (size.empty() || size.size() > 15 ||
        size.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) {
      return Chunks::kParser;
    }
    const size_t n = std::stoull(std::string(size), nullptr, 16);
    if (n == 0) {
      s.last = true;
      s.at = lf + 1;
      continue;
    }
    if (n > max_body - s.data) return Chunks::kParser;
    const size_t end = lf + 1 + n;  // the data's end
    if (body.size() < end + 2) return Chunks::kMore;
    if (body.substr(end, 2) != "\r\n") return Chunks::kParser;
    s.data += n;
    s.at = end + 2;
  }
}

// One connection's bytes, for httplib's parser: a read buffer that lives as long as the
// connection (so pipelined requests survive from one request to the next, and a request that
// arrives slowly is gathered there before the parser reads it: Gather), and a count of what
// each request has sent, which ends the connection past the bounds in http_server.h.
class GuardedStream final : public httplib::Stream {
 public:
  // `accepted`: when the connection's thread took it up.
  GuardedStream(int sock, SSL* ssl, const ConnectionSettings& s, Signals& signals,
                Clock::time_point accepted)
      : sock_(sock),
        ssl_(ssl),
        signals_(signals),
        read_ms_(ToMs(s.read_timeout_sec, s.read_timeout_usec)),
        write_ms_(ToMs(s.write_timeout_sec, s.write_timeout_usec)),
        deadline_(s.deadline),
        max_body_(s.payload_max_length),
        request_start_(accepted),
        request_cap_(kMaxHeaderBytes + (s.payload_max_length > SIZE_MAX / 4
                                            ? SIZE_MAX / 2
                                            : 2 * s.payload_max_length + (64 << 10))) {}

  // Resets the per-request counts: the next byte read starts a request line, and the request
  // is to be gathered (Gather) before the parser reads it.
  void BeginRequest() {
    request_bytes_ = header_bytes_ = lines_ = line_len_ = 0;
    in_headers_ = true;
    last_ = 0;
    request_start_ = Clock::now();
    received_ = end_ - pos_;
    gather_ = Gathering{};
    request_line_.clear();
    gathering_ = true;
    if (buf_.size() > kBufferBytes && end_ - pos_ <= kBufferBytes) {  // after a large request
      std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
      buf_.resize(kBufferBytes);
      buf_.shrink_to_fit();
    }
  }

  // When the request began arriving (BeginRequest).
  Clock::time_point request_start() const { return request_start_; }

  // A request has begun and is not gathered yet (it may have left its thread meanwhile).
  bool gathering() const { return gathering_; }

  // The connection cannot carry another request (a bound was passed).
  bool broken() const { return read_broken_; }

  bool Buffered() const { return pos_ < end_ || (ssl_ != nullptr && SSL_pending(ssl_) > 0); }

  enum class Next { kRequest, kPark, kEnd };
  // Waits on this thread for the first byte of the next request (or of the first one) for up to
  // `spell_ms`, and never past `until` (the keep-alive deadline): kRequest when it came; kPark
  // when the spell ended first, or a connection with no thread asked for this one's
  // (Signals::Demand); kEnd past `until`, when the server stops, or when `listening` closed.
  Next WaitForRequest(Clock::time_point until, int spell_ms,
                      const std::atomic<socket_t>& listening) const {
    if (Buffered() || Wait(POLLIN, 0)) return Next::kRequest;
    if (listening == INVALID_SOCKET) return Next::kEnd;
    switch (WaitIdle(std::min(until, Clock::now() + std::chrono::milliseconds(spell_ms)),
                     listening)) {
      case Idle::kBytes: return Next::kRequest;
      case Idle::kAsked: return Next::kPark;
      case Idle::kStop: return Next::kEnd;
      case Idle::kTimeUp: break;
    }
    return Clock::now() >= until ? Next::kEnd : Next::kPark;
  }

  // Reads the request begun (BeginRequest) into the buffer before the parser reads any of it:
  // its head, and the body the parser will read (BodyToGather, ScanChunks). kRequest when it
  // is there, or at once when the parser is to read the rest as it comes (a head past the
  // bounds, which the parser refuses; a body BodyToGather leaves to it). Waiting on its client it
  // is idle (Signals): it may leave its thread, kPark, when the spell ends or a connection
  // with no thread asks for this one's; the request's deadline still runs (RequestDue). kEnd when
  // the deadline passed (answered 408) or the server stops.
  Next Gather(int spell_ms, const std::atomic<socket_t>& listening) {
    for (;;) {
      if (Gathered()) {
        gathering_ = false;
        if (gather_.too_large) {  // answered now: the client need not send the body at all
          Answer(413, fmt::format("the request body is over the limit of {} bytes", max_body_));
          return Next::kEnd;
        }
        return Next::kRequest;
      }
      const ssize_t n = ReadMore();
      if (n > 0) continue;
      if (n != kWouldBlock) {  // the client closed (its side) or failed: the parser says what
        gathering_ = false;    // it says to that, as before (a 400 for a head cut short)
        return Next::kRequest;
      }
      const long long left = MsLeft();
      if (left <= 0) {
        AnswerLate();
        return Next::kEnd;
      }
      if (listening == INVALID_SOCKET) return Next::kEnd;
      switch (WaitIdle(std::min(RequestDue(), Clock::now() + std::chrono::milliseconds(spell_ms)),
                       listening)) {
        case Idle::kBytes: break;  // the loop reads them
        case Idle::kAsked: return Next::kPark;
        case Idle::kStop: return Next::kEnd;
        case Idle::kTimeUp:
          if (MsLeft() > 0) return Next::kPark;  // the spell ended; else the loop answers 408
          break;
      }
    }
  }

  // How a wait on the client while idle (WaitIdle) ended.
  enum class Idle { kBytes, kTimeUp, kAsked, kStop };
  // Waits on the client as an idle connection (Signals::EnterIdle) until bytes come or `end`:
  // kAsked when a connection with no thread asked for this one's (Demand), kStop when the server
  // stops or `listening` closed.
  Idle WaitIdle(Clock::time_point end, const std::atomic<socket_t>& listening) const {
    const int wake = ThreadWakeFd();
    const uint64_t ticket = signals_.EnterIdle(wake);
    if (ticket == 0) return Idle::kAsked;
    int r = 0;
    while (r == 0 && listening != INVALID_SOCKET) {
      const long long left =
          std::chrono::ceil<std::chrono::milliseconds>(end - Clock::now()).count();
      if (left <= 0) break;
      // The second-long slices only matter when the server is stopped without the signal.
      r = WaitUnlessStopped(sock_, POLLIN, static_cast<int>(std::min(left, 1000LL)),
                            signals_.stop_fd(), wake);
    }
    const bool kept = signals_.LeaveIdle(ticket);
    if (!kept) {  // Demand wrote the thread's eventfd once: read it back for the next wait
      uint64_t count;
      (void)!::read(wake, &count, sizeof count);
    }
    if (r < 0 || listening == INVALID_SOCKET) return Idle::kStop;
    if (!kept) return Idle::kAsked;
    return r == 1 ? Idle::kBytes : Idle::kTimeUp;
  }

  // When the request being gathered is late (its RequestDeadline at the bytes so far).
  Clock::time_point RequestDue() const {
    const double s = deadline_.grace_s + static_cast<double>(received_) /
                                             std::max(1.0, deadline_.min_bytes_per_s);
    return request_start_ + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(s));
  }

  bool is_readable() const override { return Buffered() || Wait(POLLIN, read_ms_); }
  bool is_writable() const override { return Wait(POLLOUT, write_ms_); }

  ssize_t read(char* ptr, size_t size) override {
    if (read_broken_) return -1;
    if (pos_ == end_) {
      const ssize_t n = Fill();
      if (n <= 0) return n;
    }
    const size_t n = std::min(size, end_ - pos_);
    if (!Admit(buf_.data() + pos_, n)) return -1;
    std::memcpy(ptr, buf_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (write_blocked_ || !Wait(POLLOUT, write_ms_)) return -1;
    return Send(ptr, size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Address(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Address(::getsockname, ip, port);
  }
  socket_t socket() const override { return sock_; }

  // After a bound was passed: stops sending, then reads and drops what the client still sends
  // (up to a second, 4 MiB), so that closing does not reset the connection before the client
  // has read the answer.
  void Linger() {
    if (ssl_ != nullptr) return;
    ::shutdown(sock_, SHUT_WR);
    const auto deadline = Clock::now() + std::chrono::seconds(1);
    size_t dropped = 0;
    while (dropped < (4u << 20) && Clock::now() < deadline && Wait(POLLIN, 100)) {
      const ssize_t n = ::recv(sock_, buf_.data(), buf_.size(), 0);
      if (n <= 0) break;
      dropped += static_cast<size_t>(n);
    }
  }

 private:
  bool Wait(short events, int ms) const {
    pollfd p{sock_, events, 0};
    for (;;) {
      const int r = ::poll(&p, 1, ms);
      if (r < 0 && errno == EINTR) continue;
      return r > 0;
    }
  }

  // Milliseconds left before the request's deadline (RequestDeadline), at its bytes so far.
  long long MsLeft() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(RequestDue() - Clock::now())
        .count();
  }

  static constexpr ssize_t kWouldBlock = -2;

  // Reads what the client has sent, without waiting: the number of bytes, 0 at the peer's end,
  // -1 on error, kWouldBlock when nothing has come (or, over TLS, no whole record). A TLS socket
  // is non-blocking (AcceptTls); a plain one is read with MSG_DONTWAIT.
  ssize_t ReadSome(char* p, size_t cap) {
    for (;;) {
      if (ssl_ != nullptr) {
        const int n = SSL_read(ssl_, p, static_cast<int>(std::min<size_t>(cap, INT_MAX)));
        if (n > 0) return n;
        const int e = SSL_get_error(ssl_, n);
        if (e == SSL_ERROR_WANT_READ) return kWouldBlock;
        // OpenSSL has a record of its own to send first: the read is retried once it can.
        if (e == SSL_ERROR_WANT_WRITE && Wait(POLLOUT, write_ms_)) continue;
        return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
      }
      const ssize_t n = ::recv(sock_, p, cap, MSG_DONTWAIT);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? kWouldBlock : -1;
    }
  }

  // Refills the buffer for the parser: the number of bytes read, 0 at the peer's end, -1 on
  // error or timeout. What has not come yet (a TLS record not whole yet too) is waited for
  // within the request's deadline.
  ssize_t Fill() {
    pos_ = end_ = 0;
    for (;;) {
      const ssize_t n = ReadSome(buf_.data(), buf_.size());
      if (n != kWouldBlock) {
        if (n > 0) {
          end_ = static_cast<size_t>(n);
          received_ += end_;
        }
        return n;
      }
      if (!WaitForBytes()) return -1;
    }
  }

  // Reads what the client has sent onto the buffer's end (ReadSome's results), making room: a
  // request being gathered may be larger than the buffer.
  ssize_t ReadMore() {
    if (end_ == buf_.size()) {
      if (pos_ > 0) {
        std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
        end_ -= pos_;
        pos_ = 0;
      } else {
        buf_.resize(buf_.size() * 2);
      }
    }
    const ssize_t n = ReadSome(buf_.data() + end_, buf_.size() - end_);
    if (n > 0) {
      end_ += static_cast<size_t>(n);
      received_ += static_cast<size_t>(n);
    }
    return n;
  }

  // Whether the request begun at pos_ is gathered (Gather), looking only at bytes not looked at
  // before. Its head ends at a line that is exactly CRLF after the request line, as httplib's
  // does; a head past the bounds, or a request line the parser refuses, is for the parser now.
  bool Gathered() {
    Gathering& g = gather_;
    const std::string_view have(buf_.data() + pos_, end_ - pos_);
    if (have.size() > request_cap_) return true;  // the parser ends it at its bound (Admit)
    while (g.need == 0) {
      if (g.looked >= kMaxHeaderBytes || g.lines > kMaxHeaderFields + 1) return true;
      const size_t lf = have.find('\n', g.looked);
      if (lf == std::string_view::npos) {
        g.looked = have.size();
        return g.looked >= kMaxHeaderBytes;
      }
      const std::string_view line = have.substr(g.line_start, lf - g.line_start);
      g.looked = g.line_start = lf + 1;
      if (g.lines++ == 0) {
        if (!TakenAsARequestLine(line)) return true;  // the parser answers 400 at once
        request_line_.assign(line.substr(0, line.size() - 1));  // for the loop's own answers
      } else if (line == "\r") {
        const size_t head = lf + 1;
        g.head = head;
        const BodyFraming body = BodyToGather(have.substr(0, head), max_body_);
        if (body.too_large) {
          g.too_large = true;
          return true;
        }
        g.need = head + body.length;
        g.chunked = body.chunked;
      }
    }
    if (g.chunked) {
      const size_t head = g.need;
      return ScanChunks(have.substr(head), max_body_, g.chunks) != Chunks::kMore;
    }
    return have.size() >= g.need;
  }

  // Waits for the client's next bytes for the parser, within the request's deadline; false
  // (after a 408 or a 503 where one is owed) when they did not come, the server stops, or the
  // connection gave its thread up (a 503: the parser cannot resume on another thread).
  bool WaitForBytes() {
    const long long left = MsLeft();
    const bool deadline_first = left < read_ms_;
    bool ready = left > 0 && Wait(POLLIN, 0);
    if (!ready && left > 0) {  // the client is behind: its thread may be given up meanwhile
      const Signals::Arriving a = signals_.EnterArriving(sock_, Nanoseconds(request_start_));
      const int r =
          WaitUnlessStopped(sock_, POLLIN, deadline_first ? static_cast<int>(left) : read_ms_,
                            signals_.stop_fd());
      if (!signals_.LeaveArriving(a)) {
        Answer(503, "the server's connection threads are all taken and this request was the "
                    "slowest to arrive; retry");
        return false;
      }
      if (r < 0) return false;  // the server stops: the request will not be served
      ready = r > 0;
    }
    if (!ready) {
      if (deadline_first) AnswerLate();
      return false;
    }
    return true;
  }

  void AnswerLate() {
    Answer(408, fmt::format("the request took too long to arrive: over {} s plus 1 s per {} bytes",
                            deadline_.grace_s, deadline_.min_bytes_per_s));
  }

  ssize_t Send(const char* ptr, size_t size) {
    for (;;) {
      ssize_t n;
      if (ssl_ != nullptr) {
        n = SSL_write(ssl_, ptr, static_cast<int>(std::min<size_t>(size, INT_MAX)));
        if (n <= 0) {  // non-blocking: the same write again once the socket allows it
          const int e = SSL_get_error(ssl_, static_cast<int>(n));
          if ((e == SSL_ERROR_WANT_WRITE && Wait(POLLOUT, write_ms_)) ||
              (e == SSL_ERROR_WANT_READ && Wait(POLLIN, write_ms_))) {
            continue;
          }
        }
      } else {
        n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
      }
      return n > 0 ? n : -1;
    }
  }

  // Counts `n` bytes about to reach the parser; false (and the connection ends) past a bound.
  bool Admit(const char* p, size_t n) {
    request_bytes_ += n;
    if (request_bytes_ > request_cap_) {
      read_broken_ = true;  // the answer to what was read (a 413, a 400) may still go out
      return false;
    }
    for (size_t i = 0; in_headers_ && i < n; ++i) {
      const char c = p[i];
      if (++header_bytes_ > kMaxHeaderBytes) return TooLarge();
      if (c == '\n') {
        // httplib ends the headers at a line that is exactly CRLF, after the request line.
        if (line_len_ == 1 && last_ == '\r' && lines_ > 0) {
          in_headers_ = false;
        } else if (++lines_ > kMaxHeaderFields + 1) {
          return TooLarge();
        }
        line_len_ = 0;
      } else {
        ++line_len_;
      }
      last_ = c;
    }
    return true;
  }

  bool TooLarge() {
    Answer(431, fmt::format("the request line and headers are over {} bytes or {} fields",
                            kMaxHeaderBytes, kMaxHeaderFields));
    return false;
  }

  // Sends `code` with a JSON error and ends the connection; httplib's own answer to the request
  // it could not finish reading (a 400) stays unsent. The answer is counted and handed on
  // (Signals::LoopAnswered) before it is written: a client that read it finds it counted.
  void Answer(int code, const std::string& message) {
    const std::string body = JsonError(code, message);
    Told(code, body.size());
    const std::string answer = fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
        "Connection: close\r\n\r\n{}",
        code,
        code == 408   ? "Request Timeout"
        : code == 413 ? "Payload Too Large"
        : code == 431 ? "Request Header Fields Too Large"
                      : "Service Unavailable",
        body.size(), body);
    for (size_t sent = 0; sent < answer.size() && Wait(POLLOUT, write_ms_);) {
      const ssize_t n = Send(answer.data() + sent, answer.size() - sent);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    read_broken_ = write_blocked_ = true;
  }

  // Hands the loop's answer `code` (a JSON body of `body_bytes`) to Signals::LoopAnswered.
  void Told(int code, size_t body_bytes) {
    Signals::LoopAnswer a;
    a.status = code;
    const std::string_view line = request_line_;  // "METHOD TARGET VERSION", or empty
    const size_t sp = line.find(' '), last = line.rfind(' ');
    if (sp != std::string_view::npos && last > sp) {
      a.method = line.substr(0, sp);
      a.target = line.substr(sp + 1, last - sp - 1);
    }
    int port = 0;
    Address(::getpeername, a.remote, port);
    a.began = request_start_;
    const size_t head = gather_.head;
    a.body_bytes = head > 0 && received_ > head ? received_ - head : 0;
    a.answer_bytes = body_bytes;
    t_loop_answered = true;
    signals_.LoopAnswered(a);
  }

  void Address(int (*name)(int, sockaddr*, socklen_t*), std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    ip.clear();
    port = 0;
    if (name(sock_, reinterpret_cast<sockaddr*>(&a), &len) != 0) return;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&a), len, host, sizeof host, serv, sizeof serv,
                      NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
      return;
    }
    ip = host;
    port = std::atoi(serv);
  }

  const int sock_;
  SSL* const ssl_;
  Signals& signals_;
  const int read_ms_, write_ms_;
  const RequestDeadline deadline_;
  const size_t max_body_;
  Clock::time_point request_start_;  // the connection's, until its first request
  const size_t request_cap_;
  static constexpr size_t kBufferBytes = 16 << 10;  // grown while a larger request is gathered
  std::vector<char> buf_ = std::vector<char>(kBufferBytes);
  size_t pos_ = 0, end_ = 0;
  size_t received_ = 0;  // bytes of this request (and any sent behind it) read from the client
  // How far Gathered looked into the request from pos_.
  struct Gathering {
    size_t looked = 0, line_start = 0, lines = 0;
    size_t need = 0;  // the request's bytes to gather, once its head is whole (its head's alone
                      // for a chunked body)
    size_t head = 0;  // its head's bytes, once whole
    bool too_large = false;  // its Content-Length is over the body limit (BodyToGather)
    bool chunked = false;
    ChunkScan chunks;  // of a chunked body
  };
  Gathering gather_;
  std::string request_line_;  // of the request begun, once gathered (without its CRLF)
  bool gathering_ = false;
  size_t request_bytes_ = 0, header_bytes_ = 0, lines_ = 0, line_len_ = 0;
  bool in_headers_ = true;
  char last_ = 0;
  bool read_broken_ = false, write_blocked_ = false;
};


// The TLS handshake, within the request deadline's grace: run on the socket made non-blocking,
// waiting in poll() for what OpenSSL asks for. A client that trickles its handshake would
// otherwise hold the connection's thread for the socket timeouts of every record.
// While it waits on the client, its thread may be given up to a new connection (Signals).
// The socket stays non-blocking: GuardedStream waits for each record's bytes itself, within
// the request's deadline (a blocking SSL_read waited for a whole record, each byte within the
// read timeout, so a client trickling inside a record held the thread as long as it liked).
bool AcceptTls(SSL* ssl, int sock, double grace_s, Signals& signals, Clock::time_point start) {
  const int flags = ::fcntl(sock, F_GETFL);
  if (flags < 0 || ::fcntl(sock, F_SETFL, flags | O_NONBLOCK) != 0) return false;
  const auto due = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(grace_s));
  bool done = false;
  for (;;) {
    const int r = SSL_accept(ssl);
    if (r == 1) {
      done = true;
      break;
    }
    const int e = SSL_get_error(ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(due - Clock::now());
    if (left.count() <= 0) break;
    const Signals::Arriving a = signals.EnterArriving(sock, Nanoseconds(start));
    const int ready =
        WaitUnlessStopped(sock, static_cast<short>(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT),
                          static_cast<int>(left.count()), signals.stop_fd());
    if (!signals.LeaveArriving(a) || ready <= 0) break;
  }
  return done;
}

// A connection between its threads: its socket, TLS session and stream, and what is left of its
// keep-alive. It closes when its last owner (a thread serving it, or the parking lot) lets go.
struct Connection {
  Connection(const ConnectionSettings& s, int sock, Signals& signals,
             const std::atomic<socket_t>& listening, const ProcessRequest& process)
      : settings(s),
        sock(sock),
        signals(signals),
        listening(listening),
        process(process),
        left(s.keep_alive_max_count),
        until(Clock::now() + std::chrono::seconds(s.keep_alive_timeout_sec)) {}
  ~Connection() {
    if (ssl != nullptr) {
      if (tls_up) SSL_shutdown(ssl);
      SSL_free(ssl);
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const ConnectionSettings settings;
  const int sock;
  Signals& signals;
  const std::atomic<socket_t>& listening;
  const ProcessRequest process;
  SSL* ssl = nullptr;
  bool tls_up = false;
  std::unique_ptr<GuardedStream> strm;
  size_t left;               // requests the keep-alive still allows
  Clock::time_point until;   // the keep-alive deadline of the wait for the next request
};

void Serve(std::shared_ptr<Connection> c);

// Leaves `c` in the parking lot until its client sends (Serve goes on with it on a pool thread)
// or `until`: then an idle connection closes, and one whose request is being gathered comes back
// to a thread for its 408.
void Park(std::shared_ptr<Connection> c, Clock::time_point until, bool gathering) {
  const int sock = c->sock;
  Signals& signals = c->signals;
  signals.parking().Park(sock, until, gathering, [c = std::move(c)](bool resume) {
    if (resume) Serve(c);
  });
}

// Serves `c` request after request on this thread, until it ends or leaves for the parking lot.
void Serve(std::shared_ptr<Connection> c) {
  std::optional<SigpipeBlocked> quiet;
  if (c->ssl != nullptr) quiet.emplace();
  GuardedStream& strm = *c->strm;
  const int spell = c->settings.idle_spell_ms;
  while (c->left > 0) {
    if (!strm.gathering()) {
      const auto next = strm.WaitForRequest(c->until, spell, c->listening);
      if (next == GuardedStream::Next::kPark) {
        const Clock::time_point until = c->until;
        return Park(std::move(c), until, false);
      }
      if (next == GuardedStream::Next::kEnd) break;
      strm.BeginRequest();
    }
    const auto gathered = strm.Gather(spell, c->listening);
    if (gathered == GuardedStream::Next::kPark) {
      const Clock::time_point due = strm.RequestDue();
      return Park(std::move(c), due, true);
    }
    if (gathered == GuardedStream::Next::kEnd) break;
    bool closed = false;
    t_request_began = strm.request_start();
    t_loop_answered = false;
    const bool ok = c->process(strm, c->left == 1, closed);
    --c->left;
    if (!ok || closed || strm.broken()) break;
    c->until = Clock::now() + std::chrono::seconds(c->settings.keep_alive_timeout_sec);
  }
  if (strm.broken()) strm.Linger();
}

}  // namespace

bool ServeConnection(const ConnectionSettings& s, int sock, SSL_CTX* tls, Signals& signals,
                     const std::atomic<socket_t>& listening, const ProcessRequest& process) {
  const auto accepted = Clock::now();
  auto c = std::make_shared<Connection>(s, sock, signals, listening, process);
  if (tls != nullptr) {
    SigpipeBlocked quiet;
    c->ssl = SSL_new(tls);
    if (c->ssl == nullptr || SSL_set_fd(c->ssl, sock) != 1 ||
        !AcceptTls(c->ssl, sock, s.deadline.grace_s, signals, accepted)) {
      c.reset();  // closes, with SIGPIPE still blocked
      return false;
    }
    c->tls_up = true;
  }
  c->strm = std::make_unique<GuardedStream>(sock, c->ssl, s, signals, accepted);
  Serve(std::move(c));
  return true;
}

}  // namespace http_detail

std::chrono::steady_clock::time_point RequestBegan() { return http_detail::t_request_began; }
bool AnsweredByTheLoop() { return http_detail::t_loop_answered; }

}  // namespace overcast::serve
