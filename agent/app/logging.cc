#include "agent/app/logging.h"

#include <cstdio>
#include <memory>
#include <utility>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace lockwatch::app {
namespace {

// The message as the body of a JSON string: log messages may quote server errors and user input, so quotes,
// backslashes and control characters must not break the one-object-per-line format.
class JsonEscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*tm_time*/,
              spdlog::memory_buf_t& dest) override {
    for (char c : msg.payload) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\r':
          dest.append(std::string_view("\\r"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
            dest.append(std::string_view(buf));
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return spdlog::details::make_unique<JsonEscapedMessage>();
  }
};

}  // namespace

const std::vector<std::string>& LogLevelNames() {
  static const std::vector<std::string> kNames = {"trace", "debug",    "info", "warn",
                                                  "error", "critical", "off"};
  return kNames;
}

core::Status ConfigureLogging(const GlobalOptions& options, std::string_view default_level) {
  const std::string level_name = options.log_level.empty() ? std::string(default_level) : options.log_level;
  bool known = false;
  for (const std::string& name : LogLevelNames()) known = known || name == level_name;
  if (!known) return core::Status::InvalidArgument("unknown log level '" + level_name + "'");

  // Reconfiguring (tests do) replaces the registered logger instead of failing on the duplicate name.
  spdlog::drop("lockwatch");
  std::shared_ptr<spdlog::logger> logger;
  if (options.log_format == "json") {
    logger = spdlog::stderr_logger_mt("lockwatch");
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%*"})");
    logger->set_formatter(std::move(formatter));
  } else if (options.log_format == "text") {
    logger = spdlog::stderr_color_mt("lockwatch");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  } else {
    return core::Status::InvalidArgument("unknown log format '" + options.log_format + "' (text or json)");
  }
  logger->set_level(spdlog::level::from_str(level_name));
  spdlog::set_default_logger(std::move(logger));
  return core::Status::Ok();
}

}  // namespace lockwatch::app
