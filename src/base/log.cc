#include "base/log.h"

#include <string>

#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace chronos {

Status setup_logging(std::string_view level, std::string_view format) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return Error::validation("logging.level",
                             "must be one of trace, debug, info, warn, error, off");
  }
  auto logger = spdlog::stderr_logger_mt("chronos");
  if (format == "json") {
    // One JSON object per line; the message is escaped by the caller's
    // formatting only where it may contain quotes (we never log raw input).
    logger->set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","msg":"%v"})", spdlog::pattern_time_type::utc);
  } else if (format == "text" || format.empty()) {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %v", spdlog::pattern_time_type::utc);
  } else {
    return Error::validation("logging.format", "must be text or json");
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return ok_status();
}

}  // namespace chronos
