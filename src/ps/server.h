// The parameter server process: a TCP front end and shard threads that own the tables.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "net/frame.h"
#include "net/tcp.h"

namespace overcast::ps {

struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // port 0: any free port
  uint32_t id = 0;                      // this server's position in the clients' server list
  uint32_t shards = 0;                  // shard threads; 0 = one per core
  std::string secret;                   // required to listen beyond loopback
  net::FrameLimits limits;
  net::Compression compression = net::Compression::kNone;  // for large responses
  size_t compress_threshold = 64 << 10;
  std::string checkpoint_dir;           // where checkpoints go; empty: checkpoints refused
  double checkpoint_every_seconds = 0;  // 0: only on request
  int keep_checkpoints = 3;
  bool restore = false;                 // load the newest valid checkpoint of checkpoint_dir
  std::string tcp_congestion = net::kDefaultCongestion;  // of accepted connections (net/tcp.h)
};

// Threads: one I/O thread runs every connection and dispatches each request to the shard
// threads that own its keys; shard threads apply it and send the reply; one writer thread
// puts checkpoints on disk. See docs/architecture.md.
class Server {
 public:
  // Binds, restores if asked, and starts serving. Refuses a non-loopback address without a
  // secret (InvalidArgument).
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();

  uint16_t port() const;
  std::string address() const;
  void Stop();  // any thread; idempotent
  void Wait();  // until Stop()

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace overcast::ps
