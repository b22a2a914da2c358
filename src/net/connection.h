// A framed TCP connection on an asio io_context, and the handshake on both ends.
#pragma once

#include <asio.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/hash.h"
#include "common/status.h"
#include "net/auth.h"
#include "net/frame.h"
#include "net/tcp.h"

namespace overcast::net {

// A frame to send: `bytes`, then `tail_size` bytes at `tail` that live elsewhere and go out
// without being copied (a dense pull's reply straight from the table). `keep` holds whatever
// keeps the tail valid and unchanged until the write is done; it is released on the io thread.
struct OutFrame {
  std::string bytes;
  const char* tail = nullptr;
  size_t tail_size = 0;
  std::shared_ptr<const void> keep;
};

// A payload is read in pieces of at most this many bytes, each hashed right after it arrives
// while it is still in cache: one pass over memory instead of two, which matters for
// multi-megabyte frames (dense pulls), where the kernel's copy is otherwise all the work.
// 16 MB dense pulls (`overcast bench ps --only dense`, alternating runs, reno on loopback):
// 32 KiB pieces 4.0 GB/s, 64 KiB 4.0-5.2, 256 KiB 5.4-6.1, 512 KiB 5.8-6.6, 1 MiB 6.1, 4 MiB
// 6.0-6.4. Under BBR's pacing (the kernel's default before net/tcp.h chose reno on loopback)
// the bytes arrived slower and 64 KiB was best (a plain client reading 4 MiB replies: 16 KiB
// 2.9-3.4 GB/s, 64 KiB 3.8-4.8, 256 KiB 2.8-3.1).
inline constexpr size_t kReadPiece = size_t{512} << 10;

// One TCP connection carrying frames both ways. Threading: every method runs on the thread
// that runs the socket's io_context, except Send(), which any thread may call.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using FrameHandler = std::function<void(const FrameHeader&, std::string&& payload)>;
  using CloseHandler = std::function<void(const Status&)>;
  // Offered the header of each uncompressed, non-empty frame before its payload is read: it
  // returns where to put the payload (exactly h.wire_length bytes, valid until the frame's
  // handler runs) or nullptr for the connection's own buffer. A frame received this way
  // reaches the frame handler with an empty payload string; the bytes are in the given place
  // and their checksum has been verified (unless the sink was set with verify false).
  using PayloadSink = std::function<char*(const FrameHeader&)>;

  Connection(asio::ip::tcp::socket socket, FrameLimits limits);
  ~Connection();

  // Starts the read loop. `on_frame` gets each valid frame; `on_close` is called once, with
  // the reason, when the peer goes, a read fails or a frame is malformed.
  void Start(FrameHandler on_frame, CloseHandler on_close);
  // Replaces the frame handler once the current frame's handler returns (a handler may call
  // this on itself).
  void SetFrameHandler(FrameHandler on_frame) { next_on_frame_ = std::move(on_frame); }
  // Before Start(), or on the io thread. With `verify` false, payloads that go to the sink
  // are not hashed and their checksum is not checked (the header's still is): for a receiver
  // whose bytes never cross a wire, where checking is most of its work beyond the kernel's
  // copy (ps::ClientOptions::verify_dense_pulls).
  void SetPayloadSink(PayloadSink sink, bool verify = true) {
    sink_ = std::move(sink);
    verify_sink_ = verify;
  }

  void Send(std::string frame);       // any thread
  void SendOnIo(std::string frame);   // io thread
  void Send(OutFrame frame);          // any thread
  void SendOnIo(OutFrame frame);      // io thread
  void Close(const Status& why);      // io thread; idempotent
  bool closed() const { return closed_; }
  const std::string& peer() const { return peer_; }
  asio::any_io_executor executor() { return socket_.get_executor(); }

 private:
  void ReadHeader();
  void ReadPayload();
  void ReadPayloadSome(char* dst, size_t done);
  void PayloadDone();
  void WriteMore();

  asio::ip::tcp::socket socket_;
  FrameLimits limits_;
  std::string peer_;
  FrameHandler on_frame_, next_on_frame_;
  CloseHandler on_close_;
  PayloadSink sink_;
  Checksummer payload_hash_;  // of the payload being read, updated as each piece arrives
  BlockChecksummer payload_blocks_;  // the same, for a frame with kFlagBlockChecksum
  bool direct_ = false;       // the payload being read goes where sink_ said
  bool verify_sink_ = true;   // whether payloads read into the sink are checked
  bool check_ = true;         // whether the payload being read is hashed and checked
  bool closed_ = false;
  char header_[kHeaderSize];
  FrameHeader hdr_;
  std::string payload_;
  std::deque<OutFrame> queued_;
  std::vector<OutFrame> writing_;
  std::vector<asio::const_buffer> buffers_;
};

// Server side of the handshake: sends Hello (server id, nonce, whether a secret is needed),
// waits for Auth, verifies it, answers AuthOk, then hands frames to `on_frame`. A connection
// that sends anything else first, or a wrong MAC, is closed with a log line.
void ServeConnection(std::shared_ptr<Connection> conn, uint32_t server_id,
                     const std::string& secret, Connection::FrameHandler on_frame,
                     Connection::CloseHandler on_close);

struct ConnectOptions {
  std::string secret;  // empty: none
  FrameLimits limits;
  int timeout_ms = 5000;
  std::string congestion = kDefaultCongestion;
};

// Client side: connects to host:port and performs the handshake synchronously, then returns
// a socket ready to be wrapped in a Connection. `server_id` receives the server's id.
Result<asio::ip::tcp::socket> ConnectAndHandshake(asio::io_context& io, const std::string& address,
                                                  const ConnectOptions& options,
                                                  uint32_t* server_id);

// Blocking exact reads and writes of frames on a plain socket (handshakes, simple tools),
// each failing with Unavailable when the peer is silent for `timeout_ms` (0: no limit).
Status WriteFrameSync(asio::ip::tcp::socket& s, const std::string& frame, int timeout_ms);
Status ReadFrameSync(asio::ip::tcp::socket& s, const FrameLimits& limits, FrameHeader* h,
                     std::string* payload, int timeout_ms);

}  // namespace overcast::net
