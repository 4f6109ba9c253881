#pragma once

#include <string_view>

#include "base/result.h"

namespace chronos {

// Configures the process-wide spdlog logger. format: "text" or "json";
// level: trace|debug|info|warn|error. Call once at start-up, before threads
// start logging. Log with spdlog::info(...) etc. Never log secrets.
Status setup_logging(std::string_view level, std::string_view format);

}  // namespace chronos
