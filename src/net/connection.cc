#include "net/connection.h"

#include <poll.h>
#include <sys/socket.h>

#include "common/bytes.h"
#include "common/log.h"

namespace overcast::net {
namespace {
// asio's transfer_all caps every read_some/write_some at 64 KiB, which turns one large frame
// into hundreds of system calls and reactor round trips; this asks for everything left.
struct TransferRest {
  size_t total;
  size_t operator()(const std::error_code& ec, size_t done) const {
    return ec ? 0 : total - done;
  }
};

}  // namespace

Connection::Connection(asio::ip::tcp::socket socket, FrameLimits limits)
    : socket_(std::move(socket)), limits_(limits) {
  std::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  auto ep = socket_.remote_endpoint(ec);
  peer_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
}

Connection::~Connection() = default;

void Connection::Start(FrameHandler on_frame, CloseHandler on_close) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  ReadHeader();
}

void Connection::ReadHeader() {
  auto self = shared_from_this();
  asio::async_read(socket_, asio::buffer(header_, kHeaderSize),
                   [self](std::error_code ec, size_t) {
                     if (self->closed_) return;
                     if (ec) {
                       self->Close(ec == asio::error::eof ? Status::Ok()
                                                          : Unavailable(ec.message()));
                       return;
                     }
                     Status s = DecodeHeader(self->header_, self->limits_, &self->hdr_);
                     if (!s.ok()) {
                       self->Close(s);
                       return;
                     }
                     self->ReadPayload();
                   });
}

void Connection::ReadPayload() {
  char* dst = nullptr;
  if (sink_ && hdr_.wire_length > 0 && hdr_.compression() == Compression::kNone) {
    dst = sink_(hdr_);
  }
  direct_ = dst != nullptr;
  check_ = !direct_ || verify_sink_;
  if (!direct_) {
    payload_.resize(hdr_.wire_length);
    dst = payload_.data();
  }
  payload_hash_.Reset();
  payload_blocks_.Reset();
  if (hdr_.wire_length == 0) {
    PayloadDone();
  } else {
    ReadPayloadSome(dst, 0);
  }
}

void Connection::ReadPayloadSome(char* dst, size_t done) {
  // Takes what the kernel already holds piece by piece with non-blocking reads, and goes back
  // to the reactor only when the socket runs dry: a 16 MiB payload would otherwise cost 256
  // trips through the io_context's queue.
  const int fd = socket_.native_handle();
  while (done < hdr_.wire_length) {
    const size_t want = std::min<size_t>(hdr_.wire_length - done, kReadPiece);
    ssize_t got = ::recv(fd, dst + done, want, MSG_DONTWAIT);
    if (got > 0) {
      if (check_ && hdr_.block_checksum()) {
        payload_blocks_.Update(dst + done, static_cast<size_t>(got));
      } else if (check_) {
        payload_hash_.Update(dst + done, static_cast<size_t>(got));
      }
      done += static_cast<size_t>(got);
      continue;
    }
    if (got == 0) {
      Close(Unavailable("truncated frame: connection closed by peer"));
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    Close(ErrnoStatus("truncated frame: recv", errno));
    return;
  }
  if (done == hdr_.wire_length) {
    PayloadDone();
    return;
  }
  socket_.async_wait(asio::socket_base::wait_read,
                     [self = shared_from_this(), dst, done](std::error_code ec) {
                       if (self->closed_) return;
                       if (ec) {
                         self->Close(Unavailable("truncated frame: " + ec.message()));
                         return;
                       }
                       self->ReadPayloadSome(dst, done);
                     });
}

void Connection::PayloadDone() {
  Status s = !check_ ? Status::Ok()
                     : CheckPayloadChecksum(hdr_, hdr_.block_checksum() ? payload_blocks_.Finish()
                                                                       : payload_hash_.Digest());
  if (s.ok() && !direct_) s = DecompressPayload(hdr_, &payload_);
  if (!s.ok()) {
    Close(s);
    return;
  }
  // The handler may take the payload (the server keeps requests alive) or leave it (the
  // client copies replies out); a payload left here is reused by the next frame of the same
  // size without being allocated or zero-filled again.
  FrameHeader h = hdr_;
  if (direct_) {
    std::string none;
    on_frame_(h, std::move(none));
  } else {
    on_frame_(h, std::move(payload_));
  }
  if (next_on_frame_) {
    on_frame_ = std::move(next_on_frame_);
    next_on_frame_ = nullptr;
  }
  if (!closed_) ReadHeader();
}

void Connection::Send(std::string frame) {
  OutFrame f;
  f.bytes = std::move(frame);
  Send(std::move(f));
}

void Connection::SendOnIo(std::string frame) {
  OutFrame f;
  f.bytes = std::move(frame);
  SendOnIo(std::move(f));
}

void Connection::Send(OutFrame frame) {
  // On the I/O thread itself (a reply computed inline) this queues the frame at once.
  asio::dispatch(socket_.get_executor(),
                 [self = shared_from_this(), f = std::move(frame)]() mutable {
                   self->SendOnIo(std::move(f));
                 });
}

void Connection::SendOnIo(OutFrame frame) {
  if (closed_) return;
  queued_.push_back(std::move(frame));
  if (writing_.empty()) WriteMore();
}

void Connection::WriteMore() {
  // Coalesce every queued frame into one gathered write.
  writing_.clear();
  buffers_.clear();
  while (!queued_.empty() && writing_.size() < 64) {
    writing_.push_back(std::move(queued_.front()));
    queued_.pop_front();
  }
  if (writing_.empty()) return;
  size_t total = 0;
  for (auto& w : writing_) {
    buffers_.emplace_back(asio::buffer(w.bytes));
    total += w.bytes.size();
    if (w.tail_size > 0) {
      buffers_.emplace_back(asio::buffer(w.tail, w.tail_size));
      total += w.tail_size;
    }
  }
  asio::async_write(socket_, buffers_, TransferRest{total},
                    [self = shared_from_this()](std::error_code ec, size_t) {
    if (self->closed_) return;
    if (ec) {
      self->Close(Unavailable("write failed: " + ec.message()));
      return;
    }
    self->writing_.clear();
    if (!self->queued_.empty()) self->WriteMore();
  });
}

void Connection::Close(const Status& why) {
  if (closed_) return;
  closed_ = true;
  std::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  queued_.clear();
  if (on_close_) {
    auto cb = std::move(on_close_);
    on_close_ = nullptr;
    cb(why);
  }
}

void ServeConnection(std::shared_ptr<Connection> conn, uint32_t server_id,
                     const std::string& secret, Connection::FrameHandler on_frame,
                     Connection::CloseHandler on_close) {
  Nonce nonce = RandomNonce();
  std::string hello;
  ByteWriter w(&hello);
  w.Put<uint32_t>(server_id);
  w.Put<uint8_t>(secret.empty() ? 0 : 1);
  w.PutBytes(nonce.data(), nonce.size());
  std::weak_ptr<Connection> weak = conn;
  conn->Start(
      [weak, secret, nonce, on_frame = std::move(on_frame)](const FrameHeader& h,
                                                             std::string&& payload) {
        auto c = weak.lock();
        if (!c) return;
        if (h.type != kAuth) {
          c->Close(PermissionDenied("request before authentication"));
          return;
        }
        if (!secret.empty() && !VerifyMac(secret, nonce, payload)) {
          c->Close(PermissionDenied("authentication failed"));
          return;
        }
        c->SendOnIo(MakeFrame(kAuthOk, h.request_id, {}, kFlagResponse));
        c->SetFrameHandler(on_frame);
      },
      std::move(on_close));
  conn->SendOnIo(MakeFrame(kHello, 0, hello));
}

namespace {
// Blocking I/O with a deadline on the raw descriptor: asio's own synchronous calls wait in
// poll() without a timeout, which would let a silent peer hang a handshake forever.
Status WaitFd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms <= 0 ? -1 : timeout_ms);
    if (r > 0) return Status::Ok();
    if (r == 0) return Unavailable("timed out after " + std::to_string(timeout_ms) + " ms");
    if (errno != EINTR) return ErrnoStatus("poll", errno);
  }
}

Status ReadExact(int fd, char* p, size_t n, int timeout_ms) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, MSG_DONTWAIT);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return Unavailable("connection closed by peer");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return ErrnoStatus("recv", errno);
    OC_RETURN_IF_ERROR(WaitFd(fd, POLLIN, timeout_ms));
  }
  return Status::Ok();
}

Status WriteAll(int fd, const char* p, size_t n, int timeout_ms) {
  while (n > 0) {
    ssize_t r = ::send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return ErrnoStatus("send", errno);
    OC_RETURN_IF_ERROR(WaitFd(fd, POLLOUT, timeout_ms));
  }
  return Status::Ok();
}
}  // namespace

Status WriteFrameSync(asio::ip::tcp::socket& s, const std::string& frame, int timeout_ms) {
  return WriteAll(s.native_handle(), frame.data(), frame.size(), timeout_ms);
}

Status ReadFrameSync(asio::ip::tcp::socket& s, const FrameLimits& limits, FrameHeader* h,
                     std::string* payload, int timeout_ms) {
  char hdr[kHeaderSize];
  OC_RETURN_IF_ERROR(ReadExact(s.native_handle(), hdr, kHeaderSize, timeout_ms));
  OC_RETURN_IF_ERROR(DecodeHeader(hdr, limits, h));
  payload->resize(h->wire_length);
  OC_RETURN_IF_ERROR(ReadExact(s.native_handle(), payload->data(), payload->size(), timeout_ms));
  return DecodePayload(*h, limits, payload);
}

Result<asio::ip::tcp::socket> ConnectAndHandshake(asio::io_context& io, const std::string& address,
                                                  const ConnectOptions& options,
                                                  uint32_t* server_id) {
  std::string host;
  uint16_t port;
  OC_RETURN_IF_ERROR(ParseHostPort(address, &host, &port));
  asio::ip::tcp::resolver resolver(io);
  std::error_code ec;
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec) return Unavailable("resolve " + address + ": " + ec.message());
  asio::ip::tcp::socket s(io);
  asio::connect(s, endpoints, ec);
  if (ec) return Unavailable("connect " + address + ": " + ec.message());
  s.set_option(asio::ip::tcp::no_delay(true), ec);
  if (Status c = ApplyCongestion(s.native_handle(), options.congestion); !c.ok()) {
    spdlog::warn("{}: {}", address, c.ToString());
  }
  const int t = options.timeout_ms;
  FrameHeader h;
  std::string payload;
  OC_RETURN_IF_ERROR(ReadFrameSync(s, options.limits, &h, &payload, t).WithContext(address));
  ByteReader r(payload);
  uint8_t auth_required = 0;
  const char* nonce_bytes = nullptr;
  if (h.type != kHello || !r.Get(server_id).ok() || !r.Get(&auth_required).ok() ||
      !r.GetView(kNonceSize, 1, &nonce_bytes).ok()) {
    return Unavailable(address + ": not an overcast server (bad hello)");
  }
  if (auth_required && options.secret.empty()) {
    return PermissionDenied(address + " requires a shared secret");
  }
  std::string mac;
  if (!options.secret.empty()) {
    Nonce nonce;
    std::memcpy(nonce.data(), nonce_bytes, kNonceSize);
    Mac m = ComputeMac(options.secret, nonce);
    mac.assign(reinterpret_cast<const char*>(m.data()), m.size());
  }
  OC_RETURN_IF_ERROR(WriteFrameSync(s, MakeFrame(kAuth, 0, mac), t).WithContext(address));
  Status st = ReadFrameSync(s, options.limits, &h, &payload, t);
  if (!st.ok() || h.type != kAuthOk) {
    return PermissionDenied(address + ": authentication refused");
  }
  return s;
}

}  // namespace overcast::net
