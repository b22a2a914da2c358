#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace overcast {

void InitLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("overcast");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%P] %v");
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

}  // namespace overcast
