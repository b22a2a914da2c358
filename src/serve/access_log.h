// The front end's access log (--access-log): one JSON object per request, a line each. A request
// thread only hands its line to spdlog's asynchronous logger; a thread of the log's own writes
// the lines to the file (rotated by size) or to standard output, and flushes twice a second.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/status.h"

namespace spdlog {
class async_logger;
namespace details {
class thread_pool;
}
}  // namespace spdlog

namespace overcast::serve {

struct AccessLogOptions {
  std::string path;            // "-": standard output
  // Past this the file is renamed with .1 before its extension (access.log -> access.1.log,
  // older ones to .2, ...); 0: never.
  size_t rotate_bytes = 0;
  size_t keep_files = 5;       // rotated files kept
  size_t queue_lines = 8192;   // lines waiting to be written; past it the oldest are dropped
};

// What the log records of one request.
struct AccessRecord {
  std::chrono::system_clock::time_point at;  // when the request began arriving
  std::string_view remote, method, target;
  int status = 0;
  double seconds = 0;  // from its first byte to its answer written
  size_t bytes_in = 0, bytes_out = 0;  // the bodies
};

class AccessLog {
 public:
  // Opens (creates, appends to) the file. InvalidArgument when it cannot be opened.
  static Result<std::unique_ptr<AccessLog>> Open(const AccessLogOptions& o);
  ~AccessLog();  // writes what is queued
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Queues the record's line; never waits for the file.
  void Add(const AccessRecord& r);
  // Lines dropped because the queue was full (the file could not keep up).
  uint64_t dropped() const;

  // The record as its line (without the newline): time (UTC, ms), remote, method, target,
  // status, ms, in, out. Bytes that are not UTF-8 in the target become U+FFFD.
  static std::string Line(const AccessRecord& r);

 private:
  AccessLog(std::shared_ptr<spdlog::details::thread_pool> pool,
            std::shared_ptr<spdlog::async_logger> logger);
  void FlushEvery(std::chrono::milliseconds period);

  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<spdlog::async_logger> logger_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread flusher_;
};

}  // namespace overcast::serve
