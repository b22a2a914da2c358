// A framed TCP connection on an asio io_context, and the handshake on both ends.
#pragma once

#include <asio.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "net/auth.h"
#include "net/frame.h"

namespace overcast::net {

// One TCP connection carrying frames both ways. Threading: every method runs on the thread
// that runs the socket's io_context, except Send(), which any thread may call.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using FrameHandler = std::function<void(const FrameHeader&, std::string&& payload)>;
  using CloseHandler = std::function<void(const Status&)>;

  Connection(asio::ip::tcp::socket socket, FrameLimits limits);
  ~Connection();

  // Starts the read loop. `on_frame` gets each valid frame; `on_close` is called once, with
  // the reason, when the peer goes, a read fails or a frame is malformed.
  void Start(FrameHandler on_frame, CloseHandler on_close);
  // Replaces the frame handler once the current frame's handler returns (a handler may call
  // this on itself).
  void SetFrameHandler(FrameHandler on_frame) { next_on_frame_ = std::move(on_frame); }

  void Send(std::string frame);       // any thread
  void SendOnIo(std::string frame);   // io thread
  void Close(const Status& why);      // io thread; idempotent
  bool closed() const { return closed_; }
  const std::string& peer() const { return peer_; }
  asio::any_io_executor executor() { return socket_.get_executor(); }

 private:
  void ReadHeader();
  void ReadPayload();
  void WriteMore();

  asio::ip::tcp::socket socket_;
  FrameLimits limits_;
  std::string peer_;
  FrameHandler on_frame_, next_on_frame_;
  CloseHandler on_close_;
  bool closed_ = false;
  char header_[kHeaderSize];
  FrameHeader hdr_;
  std::string payload_;
  std::deque<std::string> queued_;
  std::vector<std::string> writing_;
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
