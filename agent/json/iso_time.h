#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/core/snapshot.h"

namespace lockwatch::json {

// "2026-11-25T13:45:00.123456Z": UTC, always six fractional digits, so documents sort and diff as text.
std::string FormatIso8601(core::TimestampUs us);

// A timestamp as a JSON string, or null when absent.
nlohmann::json IsoOrNull(const std::optional<core::TimestampUs>& us);

// An optional value as JSON, or null when absent.
template <typename T>
nlohmann::json ValueOrNull(const std::optional<T>& v) {
  if (!v) return nullptr;
  return *v;
}

// A lock mode's pg_locks name ("AccessShareLock"), or null for kNone.
nlohmann::json ModeOrNull(core::LockMode mode);

// Parses what FormatIso8601 writes ("YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z"); nullopt for anything else.
std::optional<core::TimestampUs> ParseIso8601(std::string_view text);

}  // namespace lockwatch::json
