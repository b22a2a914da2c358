// Logging: spdlog to standard error, configured once by the binary and passed nowhere else.
#pragma once

#include <spdlog/spdlog.h>

namespace overcast {

// Sets the default logger's level ("debug", "info", "warn", "error") and a compact pattern.
void InitLogging(const std::string& level);

}  // namespace overcast
