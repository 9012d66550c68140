#include "agent/json/iso_time.h"

#include <cstdint>

#include "agent/core/tree_render.h"

namespace lockwatch::json {
namespace {

// Howard Hinnant's civil-to-days algorithm: days since 1970-01-01 of a proleptic Gregorian date.
int64_t DaysFromCivil(int64_t year, int month, int day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t yoe = year - era * 400;
  const int64_t doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// Reads exactly `digits` decimal digits at `pos`.
bool ReadNumber(std::string_view text, size_t pos, size_t digits, int64_t* out) {
  if (pos + digits > text.size()) return false;
  int64_t value = 0;
  for (size_t i = pos; i < pos + digits; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    value = value * 10 + (text[i] - '0');
  }
  *out = value;
  return true;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

}  // namespace

std::string FormatIso8601(core::TimestampUs us) { return core::FormatTimestampUtc(us); }

nlohmann::json IsoOrNull(const std::optional<core::TimestampUs>& us) {
  if (!us) return nullptr;
  return FormatIso8601(*us);
}

std::optional<core::TimestampUs> ParseIso8601(std::string_view text) {
  int64_t year = 0;
  int64_t month = 0;
  int64_t day = 0;
  int64_t hour = 0;
  int64_t minute = 0;
  int64_t second = 0;
  if (text.size() < 20 || !ReadNumber(text, 0, 4, &year) || text[4] != '-' ||
      !ReadNumber(text, 5, 2, &month) || text[7] != '-' || !ReadNumber(text, 8, 2, &day) || text[10] != 'T' ||
      !ReadNumber(text, 11, 2, &hour) || text[13] != ':' || !ReadNumber(text, 14, 2, &minute) ||
      text[16] != ':' || !ReadNumber(text, 17, 2, &second)) {
    return std::nullopt;
  }
  static constexpr int kDaysInMonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return std::nullopt;
  const int64_t month_days = kDaysInMonth[month - 1] + (month == 2 && IsLeap(year) ? 1 : 0);
  if (day > month_days) return std::nullopt;
  size_t pos = 19;
  int64_t micros = 0;
  if (text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (++digits > 6) return std::nullopt;
      micros = micros * 10 + (text[pos] - '0');
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 6; ++digits) micros *= 10;
  }
  if (pos + 1 != text.size() || text[pos] != 'Z') return std::nullopt;
  const int64_t days = DaysFromCivil(year, static_cast<int>(month), static_cast<int>(day));
  return ((days * 86400 + hour * 3600 + minute * 60 + second) * 1000000) + micros;
}

nlohmann::json ModeOrNull(core::LockMode mode) {
  if (mode == core::LockMode::kNone) return nullptr;
  return std::string(core::LockModeName(mode));
}

}  // namespace lockwatch::json
