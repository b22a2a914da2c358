#include "ps/client.h"

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>

#include "common/bytes.h"
#include "net/connection.h"
#include "ps/protocol.h"

namespace overcast::ps {

using net::FrameHeader;

// Completion of a call that fans out to several servers: the last part fulfils the promise
// with the first error seen, or OK.
struct Join {
  explicit Join(int parts) : left(parts) {}
  std::atomic<int> left;
  std::mutex mu;
  Status error;
  std::promise<Status> promise;
  void Done(const Status& s) {
    if (!s.ok()) {
      std::lock_guard lock(mu);
      if (error.ok()) error = s;
    }
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mu);
      promise.set_value(error);
    }
  }
};

class Client::Impl {
 public:
  using Callback = std::function<void(const Status&, std::string&& payload)>;

  explicit Impl(const ClientOptions& o) : opts_(o), work_(asio::make_work_guard(io_)) {}
  ~Impl() {
    asio::post(io_, [this] {
      for (auto& s : servers_) {
        if (s.conn) s.conn->Close(Cancelled("client closed"));
      }
    });
    work_.reset();
    if (thread_.joinable()) thread_.join();
  }

  Status Init() {
    if (opts_.servers.empty()) return InvalidArgument("no servers given");
    OC_RETURN_IF_ERROR(net::ValidateCongestion(opts_.tcp_congestion));
    servers_.resize(opts_.servers.size());
    for (uint32_t i = 0; i < servers_.size(); ++i) {
      OC_ASSIGN_OR_RETURN(auto conn, Open(i));
      servers_[i].conn = conn;
      Start(i, conn);
    }
    thread_ = std::thread([this] { io_.run(); });
    return Status::Ok();
  }

  // Connects and authenticates to server i (blocking, on the calling thread).
  Result<std::shared_ptr<net::Connection>> Open(uint32_t i) {
    net::ConnectOptions co{opts_.secret, opts_.limits, opts_.timeout_ms, opts_.tcp_congestion};
    uint32_t id = 0;
    OC_ASSIGN_OR_RETURN(auto sock, net::ConnectAndHandshake(io_, opts_.servers[i], co, &id));
    if (id != i) {
      return InvalidArgument("server " + opts_.servers[i] + " has id " + std::to_string(id) +
                             " but is listed at position " + std::to_string(i));
    }
    return std::make_shared<net::Connection>(std::move(sock), opts_.limits);
  }

  void Start(uint32_t i, const std::shared_ptr<net::Connection>& conn) {
    conn->SetPayloadSink([this, i](const FrameHeader& h) { return ReplyInto(i, h); },
                         opts_.verify_dense_pulls);
    conn->Start(
        [this, i](const FrameHeader& h, std::string&& payload) {
          OnReply(i, h, std::move(payload));
        },
        [this, i, weak = std::weak_ptr<net::Connection>(conn)](const Status& why) {
          if (weak.lock() == servers_[i].conn) OnClose(i, why);
        });
  }

  // kBlobSet or kBlobCreate: key, then the value's bytes.
  Status WriteBlob(uint8_t type, const std::string& key, std::string_view value) {
    std::string payload;
    ByteWriter w(&payload);
    w.PutString(key);
    w.PutBytes(value.data(), value.size());
    return CallSync(ServerOf(BlobHash(key), static_cast<uint32_t>(servers_.size())), type,
                    payload, nullptr);
  }

  Status Reconnect() {
    for (uint32_t i = 0; i < servers_.size(); ++i) {
      std::promise<bool> dead;
      asio::post(io_, [&] { dead.set_value(!servers_[i].dead.ok()); });
      if (!dead.get_future().get()) continue;
      OC_ASSIGN_OR_RETURN(auto conn, Open(i));
      std::promise<void> swapped;
      asio::post(io_, [&] {
        servers_[i].conn = conn;
        servers_[i].dead = Status::Ok();
        Start(i, conn);
        swapped.set_value();
      });
      swapped.get_future().wait();
    }
    return Status::Ok();
  }

  // Sends a frame built by `build` (which appends the payload) to server `s`; `cb` runs on the
  // I/O thread with the reply.
  template <typename Build>
  void Call(uint32_t s, uint8_t type, size_t hint, Build&& build, Callback cb) {
    CallInto(s, type, hint, std::forward<Build>(build), nullptr, 0, std::move(cb));
  }

  // Call() for a reply whose payload is exactly `len` bytes that belong at `into`: the
  // connection receives them there, checksum verified on the way, so a large reply (a dense
  // pull) is not copied again. `cb` then gets an empty payload; a reply of another size is an
  // error. (A compressed reply is received as usual and copied.)
  template <typename Build>
  void CallInto(uint32_t s, uint8_t type, size_t hint, Build&& build, char* into, size_t len,
                Callback cb) {
    net::FrameBuilder b(hint);
    build(b.buffer());
    uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
    std::string frame =
        std::move(b).Finish(type, id, 0, 0, opts_.compression, opts_.compress_threshold);
    asio::post(io_, [this, s, id, into, len, f = std::move(frame), cb = std::move(cb)]() mutable {
      Server& srv = servers_[s];
      if (!srv.dead.ok()) {
        cb(srv.dead, {});
        return;
      }
      srv.pending.emplace(id, PendingCall{std::move(cb), into, len, false});
      srv.conn->SendOnIo(std::move(f));
    });
  }

  // Blocking call for control messages.
  // Waits for the reply, at most `timeout_ms` when it is positive: then Unavailable, and a
  // reply that comes later is dropped.
  Status CallSync(uint32_t s, uint8_t type, const std::string& payload, std::string* out,
                  int timeout_ms = 0) {
    struct Reply {
      std::promise<Status> done;
      std::string payload;
    };
    auto reply = std::make_shared<Reply>();
    auto fut = reply->done.get_future();
    Call(
        s, type, payload.size(), [&](std::string* buf) { buf->append(payload); },
        [reply](const Status& st, std::string&& p) {
          reply->payload = std::move(p);
          reply->done.set_value(st);
        });
    if (timeout_ms > 0 &&
        fut.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
      return Unavailable(opts_.servers[s] + ": no answer within " + std::to_string(timeout_ms) +
                         " ms");
    }
    Status st = fut.get();
    if (out) *out = std::move(reply->payload);
    return st;
  }

  // The connection's payload sink: a successful reply of the expected size to a CallInto
  // goes straight to the caller's buffer.
  char* ReplyInto(uint32_t s, const FrameHeader& h) {
    Server& srv = servers_[s];
    auto it = srv.pending.find(h.request_id);
    if (it == srv.pending.end() || !h.is_response() || h.status != 0) return nullptr;
    PendingCall& call = it->second;
    if (!call.into || h.wire_length != call.len) return nullptr;
    call.landed = true;
    return call.into;
  }

  void OnReply(uint32_t s, const FrameHeader& h, std::string&& payload) {
    Server& srv = servers_[s];
    auto it = srv.pending.find(h.request_id);
    if (it == srv.pending.end() || !h.is_response()) {
      srv.conn->Close(Corruption("reply to unknown request " + std::to_string(h.request_id)));
      return;
    }
    PendingCall call = std::move(it->second);
    srv.pending.erase(it);
    if (h.status != 0) {
      call.cb(Status(static_cast<Code>(h.status), opts_.servers[s] + ": " + payload), {});
    } else if (call.landed) {
      call.cb(Status::Ok(), {});
    } else if (call.into) {
      // Not received in place (compressed, or a server that sent the wrong size).
      if (payload.size() != call.len) {
        call.cb(Corruption(opts_.servers[s] + ": reply of " + std::to_string(payload.size()) +
                           " bytes, expected " + std::to_string(call.len)),
                {});
        return;
      }
      if (call.len) std::memcpy(call.into, payload.data(), call.len);
      call.cb(Status::Ok(), {});
    } else {
      call.cb(Status::Ok(), std::move(payload));
    }
  }

  void OnClose(uint32_t s, const Status& why) {
    Server& srv = servers_[s];
    srv.dead = Unavailable("connection to " + opts_.servers[s] + " lost" +
                           (why.ok() ? std::string() : ": " + why.message()));
    auto pending = std::move(srv.pending);
    srv.pending.clear();
    for (auto& [id, call] : pending) call.cb(srv.dead, {});
  }

  // The table's spec, from the cache or asked of server 0 once.
  Result<TableSpec> Spec(const std::string& table) {
    {
      std::lock_guard lock(specs_mu_);
      auto it = specs_.find(table);
      if (it != specs_.end()) return it->second;
    }
    return Describe(table);
  }

  Result<uint32_t> Dim(const std::string& table) {
    OC_ASSIGN_OR_RETURN(TableSpec spec, Spec(table));
    return spec.dim;
  }

  Result<TableSpec> Describe(const std::string& table) {
    std::string payload, out;
    ByteWriter w(&payload);
    PutName(&w, table);
    OC_RETURN_IF_ERROR(CallSync(0, kDescribe, payload, &out));
    ByteReader r(out);
    TableSpec spec;
    OC_RETURN_IF_ERROR(DecodeSpec(&r, &spec));
    std::lock_guard lock(specs_mu_);
    specs_[table] = spec;
    return spec;
  }

  ClientOptions opts_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::atomic<uint64_t> next_id_{1};
  struct PendingCall {
    Callback cb;
    char* into = nullptr;  // CallInto: where the reply's payload goes
    size_t len = 0;
    bool landed = false;  // the payload was received at `into`
  };
  struct Server {
    std::shared_ptr<net::Connection> conn;
    std::unordered_map<uint64_t, PendingCall> pending;  // I/O thread only
    Status dead;                                      // I/O thread only
  };
  std::vector<Server> servers_;
  std::mutex specs_mu_;
  std::unordered_map<std::string, TableSpec> specs_;
};

namespace {
std::future<Status> Ready(Status s) {
  std::promise<Status> p;
  p.set_value(std::move(s));
  return p.get_future();
}
}  // namespace

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  OC_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;
uint32_t Client::num_servers() const { return static_cast<uint32_t>(impl_->servers_.size()); }
Status Client::Reconnect() { return impl_->Reconnect(); }

Status Client::CreateTable(const TableSpec& spec_in) {
  OC_RETURN_IF_ERROR(ValidateSpec([&] {
    TableSpec s = spec_in;
    if (s.kind == TableKind::kDense) s.begin = 0, s.end = s.length;
    return s;
  }()));
  const uint32_t n = num_servers();
  for (uint32_t i = 0; i < n; ++i) {
    TableSpec s = spec_in;
    if (s.kind == TableKind::kDense) {
      s.begin = DenseBegin(s.length, i, n);
      s.end = DenseBegin(s.length, i + 1, n);
    }
    std::string payload;
    ByteWriter w(&payload);
    EncodeSpec(s, &w);
    OC_RETURN_IF_ERROR(impl_->CallSync(i, kCreateTable, payload, nullptr));
  }
  std::lock_guard lock(impl_->specs_mu_);
  impl_->specs_[spec_in.name] = spec_in;
  return Status::Ok();
}

Status Client::DropTable(const std::string& name) {
  std::string payload;
  ByteWriter w(&payload);
  PutName(&w, name);
  Status first;
  for (uint32_t i = 0; i < num_servers(); ++i) {
    Status s = impl_->CallSync(i, kDropTable, payload, nullptr);
    if (first.ok() && !s.ok()) first = s;
  }
  std::lock_guard lock(impl_->specs_mu_);
  impl_->specs_.erase(name);
  return first;
}

Result<TableSpec> Client::Describe(const std::string& name) { return impl_->Describe(name); }

std::future<Status> Client::Pull(const std::string& table, std::span<const uint64_t> keys,
                                 float* out) {
  auto dim_or = impl_->Dim(table);
  if (!dim_or.ok()) return Ready(dim_or.status());
  const uint32_t dim = *dim_or;
  const uint32_t n = num_servers();
  auto encode = [&table](std::string* buf, std::span<const uint64_t> ks) {
    ByteWriter w(buf);
    PutName(&w, table);
    w.Put<uint64_t>(ks.size());
    w.PutArray(ks);
  };
  if (n == 1) {
    auto p = std::make_shared<std::promise<Status>>();
    auto fut = p->get_future();
    const size_t want = keys.size() * dim * sizeof(float);
    impl_->Call(
        0, kPull, 16 + table.size() + keys.size_bytes(),
        [&](std::string* buf) { encode(buf, keys); },
        [p, out, want](const Status& s, std::string&& payload) {
          if (s.ok() && payload.size() != want) {
            p->set_value(Corruption("pull reply of wrong size"));
            return;
          }
          if (s.ok()) std::memcpy(out, payload.data(), want);
          p->set_value(s);
        });
    return fut;
  }
  // Several servers: split the keys, remember where each came from, scatter the rows back.
  auto parts = std::make_shared<std::vector<std::vector<uint32_t>>>(n);
  std::vector<std::vector<uint64_t>> part_keys(n);
  for (size_t i = 0; i < keys.size(); ++i) {
    uint32_t s = ServerOf(MixKey(keys[i]), n);
    (*parts)[s].push_back(static_cast<uint32_t>(i));
    part_keys[s].push_back(keys[i]);
  }
  int touched = 0;
  for (auto& v : *parts) touched += !v.empty();
  if (touched == 0) return Ready(Status::Ok());
  auto join = std::make_shared<Join>(touched);
  auto fut = join->promise.get_future();
  for (uint32_t s = 0; s < n; ++s) {
    if ((*parts)[s].empty()) continue;
    impl_->Call(
        s, kPull, 16 + table.size() + part_keys[s].size() * 8,
        [&](std::string* buf) { encode(buf, part_keys[s]); },
        [join, parts, s, out, dim](const Status& st, std::string&& payload) {
          const auto& pos = (*parts)[s];
          if (st.ok() && payload.size() != pos.size() * dim * sizeof(float)) {
            join->Done(Corruption("pull reply of wrong size"));
            return;
          }
          if (st.ok()) {
            const char* src = payload.data();
            for (size_t i = 0; i < pos.size(); ++i) {
              std::memcpy(out + size_t{pos[i]} * dim, src + i * dim * sizeof(float),
                          dim * sizeof(float));
            }
          }
          join->Done(st);
        });
  }
  return fut;
}

std::future<Status> Client::Push(const std::string& table, std::span<const uint64_t> keys,
                                 std::span<const float> grads) {
  auto dim_or = impl_->Dim(table);
  if (!dim_or.ok()) return Ready(dim_or.status());
  const uint32_t dim = *dim_or;
  if (grads.size() != keys.size() * dim) {
    return Ready(InvalidArgument("push of " + std::to_string(keys.size()) + " keys needs " +
                                 std::to_string(keys.size() * dim) + " gradient floats, got " +
                                 std::to_string(grads.size())));
  }
  const uint32_t n = num_servers();
  auto header = [&table](ByteWriter& w, size_t count) {
    PutName(&w, table);
    w.Put<uint64_t>(count);
  };
  if (n == 1) {
    auto join = std::make_shared<Join>(1);
    auto fut = join->promise.get_future();
    impl_->Call(
        0, kPush, 16 + table.size() + keys.size_bytes() + grads.size_bytes(),
        [&](std::string* buf) {
          ByteWriter w(buf);
          header(w, keys.size());
          w.PutArray(keys);
          w.PutArray(grads);
        },
        [join](const Status& s, std::string&&) { join->Done(s); });
    return fut;
  }
  std::vector<std::vector<uint32_t>> parts(n);
  for (size_t i = 0; i < keys.size(); ++i) {
    parts[ServerOf(MixKey(keys[i]), n)].push_back(static_cast<uint32_t>(i));
  }
  int touched = 0;
  for (auto& v : parts) touched += !v.empty();
  if (touched == 0) return Ready(Status::Ok());
  auto join = std::make_shared<Join>(touched);
  auto fut = join->promise.get_future();
  for (uint32_t s = 0; s < n; ++s) {
    const auto& pos = parts[s];
    if (pos.empty()) continue;
    impl_->Call(
        s, kPush, 16 + table.size() + pos.size() * (8 + dim * 4),
        [&](std::string* buf) {
          ByteWriter w(buf);
          header(w, pos.size());
          for (uint32_t i : pos) w.Put<uint64_t>(keys[i]);
          for (uint32_t i : pos) w.PutBytes(grads.data() + size_t{i} * dim, dim * sizeof(float));
        },
        [join](const Status& st, std::string&&) { join->Done(st); });
  }
  return fut;
}

namespace {
// Pieces of [offset, offset+count) by server for a dense table of `length` over n servers.
struct DensePiece {
  uint32_t server;
  uint64_t offset, count;
};
// Large ranges go as requests of at most 4 MiB, all in flight at once, so the server copies
// and checksums one piece while the previous one is on the wire and the client checks it.
// Measured (bench ps --quick --dense-mb 16, alternating runs): 2.07 GB/s as one frame,
// 2.53 GB/s in 4 MiB pieces, 2.06 GB/s in 1 MiB pieces. Again once replies were sent from
// the table and received in place (bench ps --only dense, 4 alternating runs, a loaded
// machine; ratio to the loopback stream): 1 MiB 0.50, 4 MiB 0.54, 16 MiB 0.47.
constexpr uint64_t kDenseChunkFloats = (uint64_t{4} << 20) / sizeof(float);

std::vector<DensePiece> SplitDense(uint64_t length, uint32_t n, uint64_t offset, uint64_t count) {
  std::vector<DensePiece> out;
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t b = DenseBegin(length, i, n), e = DenseBegin(length, i + 1, n);
    uint64_t lo = std::max(b, offset), hi = std::min(e, offset + count);
    for (uint64_t at = lo; at < hi; at += kDenseChunkFloats) {
      out.push_back({i, at, std::min(kDenseChunkFloats, hi - at)});
    }
  }
  return out;
}
}  // namespace

std::future<Status> Client::PullDense(const std::string& table, uint64_t offset, uint64_t count,
                                      float* out) {
  auto spec = impl_->Spec(table);
  if (!spec.ok()) return Ready(spec.status());
  if (offset + count > spec->length || offset + count < offset) {
    return Ready(InvalidArgument("dense range beyond the table's length"));
  }
  auto pieces = SplitDense(spec->length, num_servers(), offset, count);
  if (pieces.empty()) return Ready(Status::Ok());
  auto join = std::make_shared<Join>(static_cast<int>(pieces.size()));
  auto fut = join->promise.get_future();
  for (const DensePiece& pc : pieces) {
    impl_->CallInto(
        pc.server, kPullDense, 32 + table.size(),
        [&](std::string* buf) {
          ByteWriter w(buf);
          PutName(&w, table);
          w.Put<uint64_t>(pc.offset);
          w.Put<uint64_t>(pc.count);
        },
        reinterpret_cast<char*>(out + (pc.offset - offset)), pc.count * sizeof(float),
        [join](const Status& st, std::string&&) { join->Done(st); });
  }
  return fut;
}

std::future<Status> Client::PushDense(const std::string& table, uint64_t offset,
                                      std::span<const float> grads) {
  auto spec = impl_->Spec(table);
  if (!spec.ok()) return Ready(spec.status());
  if (offset + grads.size() > spec->length) {
    return Ready(InvalidArgument("dense range beyond the table's length"));
  }
  auto pieces = SplitDense(spec->length, num_servers(), offset, grads.size());
  if (pieces.empty()) return Ready(Status::Ok());
  auto join = std::make_shared<Join>(static_cast<int>(pieces.size()));
  auto fut = join->promise.get_future();
  for (const DensePiece& pc : pieces) {
    impl_->Call(
        pc.server, kPushDense, 32 + table.size() + pc.count * 4,
        [&](std::string* buf) {
          ByteWriter w(buf);
          PutName(&w, table);
          w.Put<uint64_t>(pc.offset);
          w.Put<uint64_t>(pc.count);
          w.PutBytes(grads.data() + (pc.offset - offset), pc.count * sizeof(float));
        },
        [join](const Status& st, std::string&&) { join->Done(st); });
  }
  return fut;
}

namespace {
uint32_t BlobServer(const std::string& key, uint32_t n) { return ServerOf(BlobHash(key), n); }
}  // namespace

Result<std::string> Client::GetBlob(const std::string& key) {
  std::string payload, out;
  ByteWriter(&payload).PutString(key);
  OC_RETURN_IF_ERROR(impl_->CallSync(BlobServer(key, num_servers()), kBlobGet, payload, &out));
  return out;
}

Status Client::SetBlob(const std::string& key, std::string_view value) {
  return impl_->WriteBlob(kBlobSet, key, value);
}

Status Client::CreateBlob(const std::string& key, std::string_view value) {
  return impl_->WriteBlob(kBlobCreate, key, value);
}

Status Client::DeleteBlob(const std::string& key) {
  std::string payload;
  ByteWriter(&payload).PutString(key);
  return impl_->CallSync(BlobServer(key, num_servers()), kBlobDelete, payload, nullptr);
}

Status Client::Barrier(const std::string& name, uint32_t parties) {
  std::string payload;
  ByteWriter w(&payload);
  PutName(&w, name);
  w.Put<uint32_t>(parties);
  return impl_->CallSync(0, kBarrier, payload, nullptr);
}

Result<std::vector<CheckpointInfo>> Client::Checkpoint() {
  std::vector<CheckpointInfo> out;
  for (uint32_t i = 0; i < num_servers(); ++i) {
    std::string reply;
    OC_RETURN_IF_ERROR(impl_->CallSync(i, kCheckpoint, {}, &reply));
    CheckpointInfo info;
    ByteReader r(reply);
    OC_RETURN_IF_ERROR(r.Get(&info.seq));
    OC_RETURN_IF_ERROR(r.Get(&info.bytes));
    OC_RETURN_IF_ERROR(r.GetString(&info.path));
    out.push_back(info);
  }
  return out;
}

Result<nlohmann::json> Client::Stats(int timeout_ms) {
  nlohmann::json all = nlohmann::json::array();
  for (uint32_t i = 0; i < num_servers(); ++i) {
    std::string reply;
    OC_RETURN_IF_ERROR(impl_->CallSync(i, kStats, {}, &reply, timeout_ms));
    auto j = nlohmann::json::parse(reply, nullptr, false);
    if (j.is_discarded()) return Corruption("stats reply is not JSON");
    all.push_back(std::move(j));
  }
  return all;
}

}  // namespace overcast::ps
