// The parameter-server client that workers use: asynchronous pull/push, keys batched per server.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"
#include "net/frame.h"
#include "net/tcp.h"
#include "ps/checkpoint.h"
#include "ps/table_spec.h"

namespace overcast::ps {

struct ClientOptions {
  std::vector<std::string> servers;  // host:port, in server-id order (server i has --id i)
  std::string secret;                // needed when the servers have one
  net::FrameLimits limits;
  net::Compression compression = net::Compression::kNone;  // for large requests
  size_t compress_threshold = 64 << 10;
  int timeout_ms = 5000;  // connect and handshake
  std::string tcp_congestion = net::kDefaultCongestion;  // of its connections (net/tcp.h)
  // Whether a dense pull's reply is checked against its frame checksum as it lands. Checking
  // reads every byte once more after the kernel's copy, which on loopback is about a quarter
  // of the receiving thread's work (the copy leaves the bytes out of the core's caches: the
  // check reads them at 31-34 GB/s, a second pass at 65-68). Unchecked 16 MB pulls ran 2-11%
  // faster in four runs of `overcast bench ps --only dense` (figures.ps_dense_pull_unchecked_*)
  // and 10-15% faster in pull-only runs (docs/wire_protocol.md). Turn it off only where no
  // wire lies between the two ends; every other reply is always checked.
  bool verify_dense_pulls = true;
};

// Thread-safe: any thread may call any method; replies are handled on the client's own I/O
// thread. Buffers passed to asynchronous calls (keys, gradients, outputs) must stay alive and
// untouched until the returned future is ready. Many requests may be in flight at once.
class Client {
 public:
  static Result<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();

  uint32_t num_servers() const;

  // Connects again to every server whose connection was lost (a restarted server, say).
  // Calls made while a server is down fail with Unavailable; after Reconnect() they work
  // again. OK when every server is connected.
  Status Reconnect();

  // Creates the table on every server (dense tables split by range); creating an existing
  // table with the same spec succeeds, so every worker may call it.
  Status CreateTable(const TableSpec& spec);
  Status DropTable(const std::string& name);
  // The spec as the first server has it (dense: length and optimizer; range of server 0).
  Result<TableSpec> Describe(const std::string& name);

  // out: keys.size() * dim floats, written in key order.
  std::future<Status> Pull(const std::string& table, std::span<const uint64_t> keys, float* out);
  // grads: keys.size() * dim floats, row i for keys[i]; a key may repeat (each row applied).
  std::future<Status> Push(const std::string& table, std::span<const uint64_t> keys,
                           std::span<const float> grads);
  std::future<Status> PullDense(const std::string& table, uint64_t offset, uint64_t count,
                                float* out);
  std::future<Status> PushDense(const std::string& table, uint64_t offset,
                                std::span<const float> grads);

  Result<std::string> GetBlob(const std::string& key);
  Status SetBlob(const std::string& key, std::string_view value);
  // Sets the blob only if it does not exist (atomically: one of racing creators wins, the
  // others get AlreadyExists). Workers claim work with it.
  Status CreateBlob(const std::string& key, std::string_view value);
  Status DeleteBlob(const std::string& key);

  // Returns once `parties` callers have reached the barrier `name` (held by server 0).
  Status Barrier(const std::string& name, uint32_t parties);
  // A checkpoint on every server; one entry per server.
  Result<std::vector<CheckpointInfo>> Checkpoint();
  // One stats object per server. With a positive `timeout_ms`, Unavailable for a server that
  // does not answer within it (one that is stopped, or cut off without a reset).
  Result<nlohmann::json> Stats(int timeout_ms = 0);

  class Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace overcast::ps
