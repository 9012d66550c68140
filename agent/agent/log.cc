#include "agent/agent/log.h"

#include <atomic>
#include <ctime>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace lockwatch::agent {
namespace {

// Payloads built by Log() in JSON mode start with this byte and carry the JSON members of the line; the
// formatter only prepends ts and level. Anything else is a plain message and gets escaped into "msg".
constexpr char kJsonPayloadMark = '\x1e';

std::atomic<bool> g_json{false};

std::string Timestamp(spdlog::log_clock::time_point tp) {
  const auto since_epoch = tp.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - secs).count();
  const std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof(out), "%.*s.%03dZ", static_cast<int>(n), buf, static_cast<int>(millis));
  return out;
}

class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string payload(msg.payload.data(), msg.payload.size());
    const auto level = spdlog::level::to_string_view(msg.level);
    nlohmann::ordered_json head;
    head["ts"] = Timestamp(msg.time);
    head["level"] = std::string(level.data(), level.size());
    std::string line;
    if (payload.size() >= 2 && payload[0] == kJsonPayloadMark && payload[1] == '{') {
      line = head.dump();
      line.pop_back();  // '}'
      if (payload.size() > 3)
        line += "," + payload.substr(2);
      else
        line += "}";
    } else {
      head["msg"] = payload;
      line = head.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  for (char c : s) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || c == '\n' || c == '\t') return true;
  }
  return false;
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

void SetupLogging(const config::LogConfig& log) {
  auto logger = spdlog::default_logger();
  if (!logger || logger->name() != "lockwatch") {
    logger = std::make_shared<spdlog::logger>("lockwatch", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    spdlog::set_default_logger(logger);
  }
  const bool json = log.format == "json";
  g_json.store(json);
  if (json) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(spdlog::level::from_str(log.level));
  logger->flush_on(spdlog::level::info);
}

void Log(spdlog::level::level_enum level, const std::string& msg, std::initializer_list<LogField> fields) {
  auto logger = spdlog::default_logger_raw();
  if (logger == nullptr || !logger->should_log(level)) return;
  if (g_json.load()) {
    nlohmann::ordered_json obj;
    obj["msg"] = msg;
    for (const LogField& f : fields) {
      std::visit([&](const auto& v) { obj[f.key] = v; }, f.value);
    }
    logger->log(level, "{}{}", kJsonPayloadMark,
                obj.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  std::string line = msg;
  for (const LogField& f : fields) {
    line += ' ';
    line += f.key;
    line += '=';
    if (const auto* s = std::get_if<std::string>(&f.value)) {
      line += NeedsQuotes(*s) ? Quote(*s) : *s;
    } else if (const auto* i = std::get_if<int64_t>(&f.value)) {
      line += std::to_string(*i);
    } else {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.3f", std::get<double>(f.value));
      line += buf;
    }
  }
  logger->log(level, "{}", line);
}

}  // namespace lockwatch::agent
