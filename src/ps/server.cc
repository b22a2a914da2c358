#include "ps/server.h"

#include <unistd.h>

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unordered_map>

#include "common/log.h"
#include "net/auth.h"
#include "net/connection.h"
#include "ps/checkpoint.h"
#include "ps/protocol.h"
#include "ps/shard.h"

namespace overcast::ps {

using net::Connection;
using net::FrameBuilder;
using net::FrameHeader;
using ConnPtr = std::shared_ptr<Connection>;

namespace {

std::string ErrorFrame(uint8_t type, uint64_t id, const Status& s) {
  return net::MakeFrame(type, id, s.message(), net::kFlagResponse,
                        static_cast<uint8_t>(s.code()));
}

uint64_t ResidentBytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// A request answered by several shards: the last one to finish sends the reply.
struct Pending {
  ConnPtr conn;
  uint8_t type = 0;
  uint64_t id = 0;
  std::string request;     // owns the bytes the shards read keys and gradients from
  FrameBuilder response;   // shards write their rows into disjoint parts of it
  std::atomic<int> remaining{0};
  std::mutex error_mu;
  Status error;
};

}  // namespace

class Server::Impl {
 public:
  explicit Impl(const ServerOptions& o) : opts_(o), acceptor_(io_) {}

  Status Init();
  void Run() { io_.run(); }
  void Stop();
  void Wait();

  ServerOptions opts_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::unique_ptr<asio::steady_timer> checkpoint_timer_;
  std::vector<std::unique_ptr<ShardThread>> shards_;
  std::thread io_thread_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;

  // I/O-thread state.
  std::unordered_map<std::string, TableSpec> tables_;
  std::set<ConnPtr> conns_;
  struct BarrierState {
    uint32_t parties = 0;
    std::vector<std::pair<std::weak_ptr<Connection>, uint64_t>> waiting;
  };
  std::unordered_map<std::string, BarrierState> barriers_;
  uint64_t checkpoint_seq_ = 0;
  uint64_t requests_ = 0, bad_frames_ = 0;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  // Checkpoint writer thread.
  struct CheckpointJob {
    uint64_t seq;
    std::vector<std::string> shards;
    ConnPtr conn;  // null for periodic checkpoints
    uint64_t request_id = 0;
  };
  std::thread writer_;
  std::mutex writer_mu_;
  std::condition_variable writer_cv_;
  std::deque<std::unique_ptr<CheckpointJob>> writer_queue_;
  bool writer_stop_ = false;
  void WriterLoop();

  uint32_t num_shards() const { return static_cast<uint32_t>(shards_.size()); }
  // A request that touches one shard and at most kInlineKeys keys runs on this I/O thread
  // when that shard is idle: the reply then leaves without waking the shard's thread and
  // the I/O thread again (two hand-offs of about 15 us each on this kind of VM). Larger
  // requests, and requests spread over several shards, keep the shard threads' parallelism.
  static constexpr uint64_t kInlineKeys = uint64_t{1} << 16;
  void RunOrPost(uint32_t shard, uint64_t keys, ShardThread::Task task) {
    if (keys <= kInlineKeys && shards_[shard]->TryRunInline(task)) return;
    shards_[shard]->Post(std::move(task));
  }
  uint32_t DenseOwner(const std::string& name) const {
    return ShardOf(MixKey(Checksum64(name)), num_shards());
  }

  Status Restore();
  void Accept();
  void OnFrame(const ConnPtr& c, const FrameHeader& h, std::string&& payload);
  Status Handle(const ConnPtr& c, const FrameHeader& h, std::string&& payload);
  void Reply(const ConnPtr& c, const FrameHeader& h, std::string_view payload = {}) {
    c->SendOnIo(net::MakeFrame(h.type, h.request_id, payload, net::kFlagResponse));
  }
  Status HandleSparse(const ConnPtr& c, const FrameHeader& h, std::string&& payload, bool push);
  Status HandleDense(const ConnPtr& c, const FrameHeader& h, std::string&& payload, bool push);
  Status HandleBlob(const ConnPtr& c, const FrameHeader& h, std::string&& payload);
  Status HandleCreate(const FrameHeader& h, std::string_view payload);
  void HandleBarrier(const ConnPtr& c, const FrameHeader& h, std::string_view payload);
  void StartCheckpoint(ConnPtr c, uint64_t request_id);
  void HandleStats(const ConnPtr& c, const FrameHeader& h);
  void ScheduleCheckpoint();
  static void Finish(const std::shared_ptr<Pending>& p, net::Compression compression,
                     size_t threshold);
};

Status Server::Impl::Init() {
  std::string host;
  uint16_t port;
  OC_RETURN_IF_ERROR(net::ParseHostPort(opts_.listen, &host, &port));
  if (!net::IsLoopback(host) && opts_.secret.empty()) {
    return InvalidArgument("refusing to listen on " + opts_.listen +
                           " without a shared secret: pass --secret-file, or bind 127.0.0.1");
  }
  OC_RETURN_IF_ERROR(net::ValidateCongestion(opts_.tcp_congestion));
  uint32_t n = opts_.shards ? opts_.shards : std::max(1u, std::thread::hardware_concurrency());
  for (uint32_t i = 0; i < n; ++i) shards_.push_back(std::make_unique<ShardThread>(i));
  if (opts_.restore) {
    if (opts_.checkpoint_dir.empty()) return InvalidArgument("--restore needs a checkpoint directory");
    OC_RETURN_IF_ERROR(Restore());
  }
  if (!opts_.checkpoint_dir.empty()) {
    checkpoint_seq_ = std::max(checkpoint_seq_, HighestCheckpointSeq(opts_.checkpoint_dir));
  }
  std::error_code ec;
  asio::ip::tcp::resolver resolver(io_);
  auto eps = resolver.resolve(host, std::to_string(port), ec);
  if (ec || eps.empty()) return InvalidArgument("cannot resolve " + opts_.listen);
  auto ep = eps.begin()->endpoint();
  acceptor_.open(ep.protocol(), ec);
  acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  acceptor_.bind(ep, ec);
  if (ec) return Unavailable("bind " + opts_.listen + ": " + ec.message());
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("listen " + opts_.listen + ": " + ec.message());
  writer_ = std::thread([this] { WriterLoop(); });
  Accept();
  ScheduleCheckpoint();
  io_thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

Status Server::Impl::Restore() {
  auto loaded = ReadNewestCheckpoint(opts_.checkpoint_dir);
  if (!loaded.ok()) {
    if (loaded.status().code() == Code::kNotFound) {
      spdlog::warn("no checkpoint to restore in {}; starting empty", opts_.checkpoint_dir);
      return Status::Ok();
    }
    return loaded.status();
  }
  // Rows go to the shard their key hashes to now, so the shard count may differ from the
  // one that wrote the checkpoint. The shard threads have not run a task yet.
  auto ensure = [&](const TableSpec& spec) {
    if (tables_.emplace(spec.name, spec).second) {
      for (uint32_t i = 0; i < num_shards(); ++i) {
        (void)shards_[i]->shard_for_setup().CreateTable(spec, false);
      }
    }
  };
  uint64_t rows = 0;
  for (const std::string& payload : loaded->shards) {
    Shard tmp(0);
    ByteReader r(payload);
    Status s = tmp.Load(
        &r,
        [&](const TableSpec& spec, uint64_t key, const float* row) {
          ensure(spec);
          uint64_t h = MixKey(key);
          TablePart* t = shards_[ShardOf(h, num_shards())]->shard_for_setup().Find(spec.name);
          bool inserted;
          float* dst = t->sparse->FindOrInsert(key, SparseTable::Hash(key), &inserted);
          std::memcpy(dst, row, t->stride * sizeof(float));
          ++rows;
          return Status::Ok();
        },
        [&](const TableSpec& spec, const TablePart& part) {
          ensure(spec);
          TablePart* t = shards_[DenseOwner(spec.name)]->shard_for_setup().Find(spec.name);
          t->weights = part.weights;
          t->block_digests.clear();
          t->state = part.state;
          t->step = part.step;
          rows += part.weights.size();
          return Status::Ok();
        });
    if (!s.ok()) return s.WithContext("restoring " + loaded->info.path);
    for (auto& [k, v] : tmp.blobs()) {
      shards_[ShardOf(BlobHash(k), num_shards())]->shard_for_setup().blobs()[k] = std::move(v);
    }
  }
  checkpoint_seq_ = loaded->info.seq;
  spdlog::info("restored checkpoint {} ({} tables, {} rows, {} bytes)", loaded->info.path,
               tables_.size(), rows, loaded->info.bytes);
  return Status::Ok();
}

void Server::Impl::Accept() {
  acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket sock) {
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        spdlog::warn("accept: {}", ec.message());
        Accept();
      }
      return;
    }
    if (Status c = net::ApplyCongestion(sock.native_handle(), opts_.tcp_congestion); !c.ok()) {
      spdlog::warn("accept: {}", c.ToString());
    }
    auto conn = std::make_shared<Connection>(std::move(sock), opts_.limits);
    conns_.insert(conn);
    std::weak_ptr<Connection> weak = conn;
    net::ServeConnection(
        conn, opts_.id, opts_.secret,
        [this, weak](const FrameHeader& h, std::string&& payload) {
          if (auto c = weak.lock()) OnFrame(c, h, std::move(payload));
        },
        [this, weak, peer = conn->peer()](const Status& why) {
          if (!why.ok()) {
            ++bad_frames_;
            spdlog::warn("closing connection from {}: {}", peer, why.ToString());
          }
          if (auto c = weak.lock()) conns_.erase(c);
        });
    Accept();
  });
}

void Server::Impl::OnFrame(const ConnPtr& c, const FrameHeader& h, std::string&& payload) {
  ++requests_;
  if (h.is_response() || h.type < kFirstPsMessage || h.type > kLastPsMessage) {
    c->Close(Corruption("unexpected message type " + std::to_string(h.type)));
    return;
  }
  Status s = Handle(c, h, std::move(payload));
  if (!s.ok()) {
    if (s.code() == Code::kCorruption) {
      // A payload that does not parse is a broken or hostile client: drop the connection.
      c->Close(s.WithContext(std::string(MessageName(h.type))));
    } else {
      c->SendOnIo(ErrorFrame(h.type, h.request_id, s));
    }
  }
}

Status Server::Impl::Handle(const ConnPtr& c, const FrameHeader& h, std::string&& payload) {
  switch (h.type) {
    case kPull: return HandleSparse(c, h, std::move(payload), false);
    case kPush: return HandleSparse(c, h, std::move(payload), true);
    case kPullDense: return HandleDense(c, h, std::move(payload), false);
    case kPushDense: return HandleDense(c, h, std::move(payload), true);
    case kBlobGet:
    case kBlobSet:
    case kBlobCreate:
    case kBlobDelete: return HandleBlob(c, h, std::move(payload));
    case kCreateTable: {
      OC_RETURN_IF_ERROR(HandleCreate(h, payload));
      Reply(c, h);
      return Status::Ok();
    }
    case kDropTable: {
      std::string name;
      ByteReader r(payload);
      OC_RETURN_IF_ERROR(GetName(&r, &name));
      if (tables_.erase(name) == 0) return NotFound("no table '" + name + "'");
      for (auto& s : shards_) s->Post([name](Shard& sh) { sh.DropTable(name); });
      Reply(c, h);
      return Status::Ok();
    }
    case kDescribe: {
      std::string name;
      ByteReader r(payload);
      OC_RETURN_IF_ERROR(GetName(&r, &name));
      auto it = tables_.find(name);
      if (it == tables_.end()) return NotFound("no table '" + name + "'");
      std::string out;
      ByteWriter w(&out);
      EncodeSpec(it->second, &w);
      Reply(c, h, out);
      return Status::Ok();
    }
    case kBarrier: HandleBarrier(c, h, payload); return Status::Ok();
    case kCheckpoint:
      if (opts_.checkpoint_dir.empty()) {
        return InvalidArgument("this server has no checkpoint directory (--checkpoint-dir)");
      }
      StartCheckpoint(c, h.request_id);
      return Status::Ok();
    case kStats: HandleStats(c, h); return Status::Ok();
  }
  return Corruption("unknown message");
}

Status Server::Impl::HandleCreate(const FrameHeader& h, std::string_view payload) {
  TableSpec spec;
  ByteReader r(payload);
  OC_RETURN_IF_ERROR(DecodeSpec(&r, &spec));
  auto it = tables_.find(spec.name);
  if (it != tables_.end()) {
    std::string a, b;
    ByteWriter wa(&a), wb(&b);
    EncodeSpec(it->second, &wa);
    EncodeSpec(spec, &wb);
    if (a != b) return AlreadyExists("table '" + spec.name + "' exists with another spec");
    return Status::Ok();  // creating the same table again is harmless: workers all do it
  }
  tables_.emplace(spec.name, spec);
  uint32_t owner = DenseOwner(spec.name);
  for (uint32_t i = 0; i < num_shards(); ++i) {
    shards_[i]->Post([spec, own = (i == owner)](Shard& sh) { (void)sh.CreateTable(spec, own); });
  }
  return Status::Ok();
}

void Server::Impl::Finish(const std::shared_ptr<Pending>& p, net::Compression compression,
                          size_t threshold) {
  Status err;
  {
    std::lock_guard lock(p->error_mu);
    err = p->error;
  }
  if (!err.ok()) {
    p->conn->Send(ErrorFrame(p->type, p->id, err));
    return;
  }
  p->conn->Send(std::move(p->response)
                    .Finish(p->type, p->id, net::kFlagResponse, 0, compression, threshold));
}

Status Server::Impl::HandleSparse(const ConnPtr& c, const FrameHeader& h, std::string&& payload,
                                  bool push) {
  std::string name;
  OC_RETURN_IF_ERROR(PeekTable(payload, &name));
  auto it = tables_.find(name);
  if (it == tables_.end()) return NotFound("no table '" + name + "'");
  const TableSpec& spec = it->second;
  if (spec.kind != TableKind::kSparse) return InvalidArgument(name + " is not a sparse table");
  auto p = std::make_shared<Pending>();
  p->conn = c;
  p->type = h.type;
  p->id = h.request_id;
  p->request = std::move(payload);
  SparseRequest req;
  OC_RETURN_IF_ERROR(DecodeSparse(p->request, push, spec.dim, &req));
  const uint32_t dim = spec.dim;
  if (!push) {
    if (req.n * dim * sizeof(float) > opts_.limits.max_frame_bytes) {
      return InvalidArgument("pull reply would exceed the frame limit");
    }
    p->response.buffer()->resize(net::kHeaderSize + req.n * dim * sizeof(float));
  }
  const uint32_t S = num_shards();
  auto compression = opts_.compression;
  auto threshold = opts_.compress_threshold;
  auto run = [p, req, push, compression, threshold](Shard& sh, const uint32_t* pos, size_t n) {
    ++sh.requests;
    TablePart* t = sh.Find(req.table);
    if (!t) {
      std::lock_guard lock(p->error_mu);
      p->error = NotFound("table '" + req.table + "' was dropped");
    } else if (push) {
      sh.Push(*t, req.keys, req.grads, pos, n);
    } else {
      float* out = reinterpret_cast<float*>(p->response.buffer()->data() + net::kHeaderSize);
      sh.Pull(*t, req.keys, pos, n, out);
    }
    if (p->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      Finish(p, compression, threshold);
    }
  };
  if (S == 1) {
    p->remaining = 1;
    RunOrPost(0, req.n, [run, n = req.n](Shard& sh) { run(sh, nullptr, n); });
    return Status::Ok();
  }
  std::vector<std::vector<uint32_t>> parts(S);
  for (auto& v : parts) v.reserve(req.n / S + 16);
  for (uint64_t i = 0; i < req.n; ++i) {
    parts[ShardOf(MixKey(LoadU64(req.keys + 8 * i)), S)].push_back(static_cast<uint32_t>(i));
  }
  int touched = 0;
  for (auto& v : parts) touched += !v.empty();
  if (touched == 0) {
    p->remaining = 1;
    shards_[0]->Post([run](Shard& sh) { run(sh, nullptr, 0); });
    return Status::Ok();
  }
  p->remaining = touched;
  for (uint32_t s = 0; s < S; ++s) {
    if (parts[s].empty()) continue;
    auto task = [run, v = std::move(parts[s])](Shard& sh) { run(sh, v.data(), v.size()); };
    if (touched == 1) {
      RunOrPost(s, req.n, std::move(task));
    } else {
      shards_[s]->Post(std::move(task));
    }
  }
  return Status::Ok();
}

Status Server::Impl::HandleDense(const ConnPtr& c, const FrameHeader& h, std::string&& payload,
                                 bool push) {
  auto p = std::make_shared<Pending>();
  p->conn = c;
  p->type = h.type;
  p->id = h.request_id;
  p->request = std::move(payload);
  DenseRequest req;
  OC_RETURN_IF_ERROR(DecodeDense(p->request, push, &req));
  auto it = tables_.find(req.table);
  if (it == tables_.end()) return NotFound("no table '" + req.table + "'");
  if (it->second.kind != TableKind::kDense) return InvalidArgument(req.table + " is not dense");
  const size_t bytes = req.count * sizeof(float);
  auto compression = opts_.compression;
  auto threshold = opts_.compress_threshold;
  // An uncompressed reply goes out straight from the table (see Shard::LendDense): the shard
  // hashes the range, the kernel copies it, and nothing else touches it.
  const bool lend = !push && (compression == net::Compression::kNone || bytes < threshold);
  if (!push) {
    if (bytes > opts_.limits.max_frame_bytes) {
      return InvalidArgument("dense pull would exceed the frame limit");
    }
    // Reserved, not resized: the shard appends the rows, so the reply is written once.
    if (!lend) p->response.buffer()->reserve(net::kHeaderSize + bytes);
  }
  p->remaining = 1;
  shards_[DenseOwner(req.table)]->Post([p, req, push, lend, compression, threshold](Shard& sh) {
    ++sh.requests;
    TablePart* t = sh.Find(req.table);
    if (t && lend) {
      net::OutFrame f;
      uint64_t checksum = 0;
      bool blocks = false;
      Status s = sh.LendDense(*t, req.offset, req.count, &f.tail, &f.keep, &checksum, &blocks);
      if (s.ok()) {
        f.tail_size = req.count * sizeof(float);
        const uint8_t flags = net::kFlagResponse | (blocks ? net::kFlagBlockChecksum : 0);
        f.bytes = net::MakeHeader(p->type, p->id, flags, 0, f.tail_size, checksum);
        p->conn->Send(std::move(f));
        return;
      }
      std::lock_guard lock(p->error_mu);
      p->error = s;
      Finish(p, compression, threshold);
      return;
    }
    uint64_t checksum = 0;
    Status s = !t ? NotFound("table '" + req.table + "' was dropped")
               : push ? sh.PushDense(*t, req.offset, req.count, req.grads)
                      : sh.PullDense(*t, req.offset, req.count, p->response.buffer(), &checksum);
    if (s.ok() && !push) p->response.SetPayloadChecksum(checksum);
    if (!s.ok()) {
      std::lock_guard lock(p->error_mu);
      p->error = s;
    }
    Finish(p, compression, threshold);
  });
  return Status::Ok();
}

Status Server::Impl::HandleBlob(const ConnPtr& c, const FrameHeader& h, std::string&& payload) {
  auto p = std::make_shared<Pending>();
  p->conn = c;
  p->type = h.type;
  p->id = h.request_id;
  ByteReader r(payload);
  std::string key;
  OC_RETURN_IF_ERROR(r.GetString(&key, 4096));
  std::string value;
  if (h.type == kBlobSet || h.type == kBlobCreate) value.assign(r.position(), r.remaining());
  else if (r.remaining() != 0) return Corruption("trailing bytes in blob request");
  uint8_t type = h.type;
  shards_[ShardOf(BlobHash(key), num_shards())]->Post(
      [p, type, key = std::move(key), value = std::move(value)](Shard& sh) mutable {
        auto& blobs = sh.blobs();
        if (type == kBlobSet) {
          blobs[key] = std::move(value);
        } else if (type == kBlobCreate) {
          // Atomic: the shard thread owns its blobs, so check-and-insert cannot interleave.
          if (!blobs.try_emplace(key, std::move(value)).second)
            p->error = AlreadyExists("blob '" + key + "' exists");
        } else if (type == kBlobDelete) {
          blobs.erase(key);
        } else {
          auto it = blobs.find(key);
          if (it == blobs.end()) {
            p->error = NotFound("no blob '" + key + "'");
          } else {
            p->response.buffer()->append(it->second);
          }
        }
        Finish(p, net::Compression::kNone, 0);
      });
  return Status::Ok();
}

void Server::Impl::HandleBarrier(const ConnPtr& c, const FrameHeader& h, std::string_view payload) {
  std::string name;
  uint32_t parties = 0;
  ByteReader r(payload);
  if (!GetName(&r, &name).ok() || !r.Get(&parties).ok() || parties == 0) {
    c->SendOnIo(ErrorFrame(h.type, h.request_id, InvalidArgument("bad barrier request")));
    return;
  }
  BarrierState& b = barriers_[name];
  if (b.waiting.empty()) b.parties = parties;
  if (b.parties != parties) {
    c->SendOnIo(ErrorFrame(h.type, h.request_id,
                           InvalidArgument("barrier '" + name + "' has " +
                                           std::to_string(b.parties) + " parties, not " +
                                           std::to_string(parties))));
    return;
  }
  b.waiting.emplace_back(c, h.request_id);
  if (b.waiting.size() < b.parties) return;
  for (auto& [weak, id] : b.waiting) {
    if (auto w = weak.lock()) w->SendOnIo(net::MakeFrame(kBarrier, id, {}, net::kFlagResponse));
  }
  barriers_.erase(name);
}

void Server::Impl::StartCheckpoint(ConnPtr c, uint64_t request_id) {
  // Every shard serialises when it reaches this task. This thread posts tasks to the shards in
  // the order requests arrive, so all shards cut at the same point: a request dispatched before
  // the checkpoint is in it on every shard, one dispatched after is in it on none.
  auto job = std::make_shared<CheckpointJob>();
  job->seq = ++checkpoint_seq_;
  job->conn = std::move(c);
  job->request_id = request_id;
  job->shards.resize(num_shards());
  auto left = std::make_shared<std::atomic<int>>(static_cast<int>(num_shards()));
  for (uint32_t i = 0; i < num_shards(); ++i) {
    shards_[i]->Post([this, job, left, i](Shard& sh) {
      sh.Serialize(&job->shards[i]);
      if (left->fetch_sub(1) == 1) {
        std::lock_guard lock(writer_mu_);
        writer_queue_.push_back(std::make_unique<CheckpointJob>(std::move(*job)));
        writer_cv_.notify_one();
      }
    });
  }
}

void Server::Impl::WriterLoop() {
  for (;;) {
    std::unique_ptr<CheckpointJob> job;
    {
      std::unique_lock lock(writer_mu_);
      writer_cv_.wait(lock, [&] { return writer_stop_ || !writer_queue_.empty(); });
      if (writer_queue_.empty()) return;
      job = std::move(writer_queue_.front());
      writer_queue_.pop_front();
    }
    auto t0 = std::chrono::steady_clock::now();
    auto info = WriteCheckpoint(opts_.checkpoint_dir, job->seq, opts_.id, job->shards,
                                opts_.keep_checkpoints);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (info.ok()) {
      spdlog::info("checkpoint {} written: {} bytes in {:.3f} s", info->path, info->bytes, secs);
    } else {
      spdlog::error("checkpoint {} failed: {}", job->seq, info.status().ToString());
    }
    if (job->conn) {
      if (info.ok()) {
        std::string out;
        ByteWriter w(&out);
        w.Put<uint64_t>(info->seq);
        w.Put<uint64_t>(info->bytes);
        w.PutString(info->path);
        job->conn->Send(net::MakeFrame(kCheckpoint, job->request_id, out, net::kFlagResponse));
      } else {
        job->conn->Send(ErrorFrame(kCheckpoint, job->request_id, info.status()));
      }
    }
  }
}

void Server::Impl::ScheduleCheckpoint() {
  if (opts_.checkpoint_every_seconds <= 0 || opts_.checkpoint_dir.empty()) return;
  checkpoint_timer_ = std::make_unique<asio::steady_timer>(
      io_, std::chrono::milliseconds(static_cast<int64_t>(opts_.checkpoint_every_seconds * 1000)));
  checkpoint_timer_->async_wait([this](std::error_code ec) {
    if (ec) return;
    StartCheckpoint(nullptr, 0);
    ScheduleCheckpoint();
  });
}

void Server::Impl::HandleStats(const ConnPtr& c, const FrameHeader& h) {
  auto result = std::make_shared<std::vector<nlohmann::json>>(num_shards());
  auto left = std::make_shared<std::atomic<int>>(static_cast<int>(num_shards()));
  nlohmann::json server = {
      {"server_id", opts_.id},
      {"shards", num_shards()},
      {"connections", conns_.size()},
      {"requests", requests_},
      {"bad_frames", bad_frames_},
      {"checkpoint_seq", checkpoint_seq_},
      {"uptime_seconds",
       std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count()}};
  for (uint32_t i = 0; i < num_shards(); ++i) {
    shards_[i]->Post([c, h, result, left, server, i](Shard& sh) {
      (*result)[i] = sh.Stats();
      if (left->fetch_sub(1) != 1) return;
      nlohmann::json j = server;
      j["resident_bytes"] = ResidentBytes();
      j["shard_stats"] = *result;
      uint64_t rows = 0, bytes = 0;
      for (auto& s : *result) {
        for (auto& [name, t] : s["tables"].items()) {
          rows += t["rows"].get<uint64_t>();
          bytes += t["bytes"].get<uint64_t>();
        }
      }
      j["rows"] = rows;
      j["table_bytes"] = bytes;
      c->Send(net::MakeFrame(h.type, h.request_id, j.dump(), net::kFlagResponse));
    });
  }
}

void Server::Impl::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  std::promise<void> closed;
  asio::post(io_, [this, &closed] {
    std::error_code ec;
    acceptor_.close(ec);
    if (checkpoint_timer_) checkpoint_timer_->cancel();
    auto conns = conns_;
    for (auto& c : conns) c->Close(Cancelled("server stopping"));
    conns_.clear();
    closed.set_value();
  });
  if (io_thread_.joinable() && io_thread_.get_id() != std::this_thread::get_id()) {
    closed.get_future().wait();
  }
  for (auto& s : shards_) s->Stop();
  {
    std::lock_guard lock(writer_mu_);
    writer_stop_ = true;
  }
  writer_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  io_.stop();
  if (io_thread_.joinable() && io_thread_.get_id() != std::this_thread::get_id()) {
    io_thread_.join();
  }
  stop_cv_.notify_all();
}

void Server::Impl::Wait() {
  std::unique_lock lock(stop_mu_);
  stop_cv_.wait(lock, [&] { return stopped_; });
}

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  Status s = impl->Init();
  if (!s.ok()) {
    impl->Stop();
    return s;
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }
uint16_t Server::port() const {
  std::error_code ec;
  return impl_->acceptor_.local_endpoint(ec).port();
}
std::string Server::address() const {
  std::error_code ec;
  auto ep = impl_->acceptor_.local_endpoint(ec);
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}
void Server::Stop() { impl_->Stop(); }
void Server::Wait() { impl_->Wait(); }

}  // namespace overcast::ps
