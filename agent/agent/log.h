#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <variant>

#include <spdlog/common.h>

#include "agent/config/config.h"

namespace lockwatch::agent {

// One structured log field. In text format it is appended as key=value (quoted when needed); in JSON format
// it becomes a member of the line's object with its JSON type.
struct LogField {
  LogField(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  LogField(std::string k, const char* v) : key(std::move(k)), value(std::string(v)) {}
  LogField(std::string k, int64_t v) : key(std::move(k)), value(v) {}
  LogField(std::string k, int v) : key(std::move(k)), value(int64_t{v}) {}
  LogField(std::string k, double v) : key(std::move(k)), value(v) {}
  std::string key;
  std::variant<std::string, int64_t, double> value;
};

// Installs the process-wide logger on stderr: level and format ("text": one human-readable line per event;
// "json": one JSON object per line with "ts" (RFC 3339, UTC, milliseconds), "level", "msg" and the fields).
// Lines logged through spdlog directly by other layers are formatted the same way (message only).
// Call before any thread logs; safe to call again (a reload changes the level and format).
void SetupLogging(const config::LogConfig& log);

// Logs `msg` with structured fields through the default spdlog logger. Values must already be redacted.
void Log(spdlog::level::level_enum level, const std::string& msg,
         std::initializer_list<LogField> fields = {});

}  // namespace lockwatch::agent
