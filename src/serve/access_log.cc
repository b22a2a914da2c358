#include "serve/access_log.h"

#include <time.h>

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>
#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <fmt/format.h>

#include "serve/api.h"

namespace overcast::serve {

Result<std::unique_ptr<AccessLog>> AccessLog::Open(const AccessLogOptions& o) {
  if (o.path.empty()) return InvalidArgument("--access-log: no path given");
  spdlog::sink_ptr sink;
  try {
    if (o.path == "-") {
      sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    } else if (o.rotate_bytes > 0) {
      sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          o.path, o.rotate_bytes, std::max<size_t>(1, o.keep_files));
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(o.path, /*truncate=*/false);
    }
  } catch (const spdlog::spdlog_ex& e) {
    return InvalidArgument(fmt::format("--access-log {}: cannot open it: {}", o.path, e.what()));
  }
  sink->set_pattern("%v");
  auto pool =
      std::make_shared<spdlog::details::thread_pool>(std::max<size_t>(16, o.queue_lines), 1);
  // Not registered with spdlog: its name is free, and nothing else flushes or drops it.
  auto logger = std::make_shared<spdlog::async_logger>(
      "access", std::move(sink), pool, spdlog::async_overflow_policy::overrun_oldest);
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::off);  // flushed by FlushEvery, not each line
  return std::unique_ptr<AccessLog>(new AccessLog(std::move(pool), std::move(logger)));
}

AccessLog::AccessLog(std::shared_ptr<spdlog::details::thread_pool> pool,
                     std::shared_ptr<spdlog::async_logger> logger)
    : pool_(std::move(pool)), logger_(std::move(logger)) {
  flusher_ = std::thread([this] { FlushEvery(std::chrono::milliseconds(500)); });
}

AccessLog::~AccessLog() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  flusher_.join();
  logger_->flush();  // queued behind every line; the pool's thread writes them all first
  logger_.reset();
  pool_.reset();  // joins the pool's thread once its queue is empty
}

void AccessLog::FlushEvery(std::chrono::milliseconds period) {
  std::unique_lock<std::mutex> l(mu_);
  while (!cv_.wait_for(l, period, [this] { return stop_; })) logger_->flush();
}

void AccessLog::Add(const AccessRecord& r) {
  const std::string line = Line(r);
  logger_->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));  // as is
}

uint64_t AccessLog::dropped() const { return pool_->overrun_counter(); }

std::string AccessLog::Line(const AccessRecord& r) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.at.time_since_epoch());
  const time_t secs = static_cast<time_t>(ms.count() / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  nlohmann::ordered_json j;
  j["time"] = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.tm_year + 1900,
                          t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                          ms.count() % 1000);
  j["remote"] = r.remote;
  j["method"] = r.method;
  j["target"] = r.target;
  j["status"] = r.status;
  j["ms"] = std::round(r.seconds * 1e6) / 1e3;  // to the microsecond
  j["in"] = r.bytes_in;
  j["out"] = r.bytes_out;
  return DumpJson(j);
}

}  // namespace overcast::serve
