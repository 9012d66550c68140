#include "agent/metrics/process_metrics.h"

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <dirent.h>
#include <unistd.h>

namespace lockwatch::metrics {
namespace {

std::optional<uint64_t> ParseUnsigned(std::string_view s) {
  uint64_t value = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (ec != std::errc() || ptr != end || s.empty()) return std::nullopt;
  return value;
}

std::vector<std::string_view> SplitWhitespace(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t' && s[i] != '\n') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// Calls `fn(line)` for every line of `text`.
template <typename Fn>
void ForEachLine(std::string_view text, Fn fn) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    fn(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::optional<uint64_t> ParseKbLine(std::string_view line, std::string_view key) {
  if (!StartsWith(line, key)) return std::nullopt;
  auto parts = SplitWhitespace(line.substr(key.size()));
  if (parts.empty()) return std::nullopt;
  auto kb = ParseUnsigned(parts[0]);
  // Every Vm* line of status(5) is in kB; refuse anything else rather than guess.
  if (!kb || (parts.size() > 1 && parts[1] != "kB")) return std::nullopt;
  return *kb * 1024;
}

std::optional<std::string> ReadFile(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::optional<uint64_t> CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  uint64_t count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  // The directory stream itself holds one descriptor while counting; do not report it.
  return count > 0 ? count - 1 : 0;
}

}  // namespace

core::Result<ProcStat> ParseProcStat(std::string_view text) {
  // The command name is "(comm)" and may itself contain ") ": only the last ')' ends it.
  size_t close = text.rfind(')');
  if (close == std::string_view::npos) return core::Status::Corrupt("/proc stat: no command name");
  auto fields = SplitWhitespace(text.substr(close + 1));
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  constexpr size_t kRssField = 24;
  if (fields.size() < kRssField - 2) return core::Status::Corrupt("/proc stat: too few fields");
  auto field = [&fields](size_t n) { return ParseUnsigned(fields[n - 3]); };
  auto utime = field(14);
  auto stime = field(15);
  auto starttime = field(22);
  auto vsize = field(23);
  auto rss = field(24);
  if (!utime || !stime || !starttime || !vsize || !rss) {
    return core::Status::Corrupt("/proc stat: non-numeric field");
  }
  ProcStat stat;
  stat.utime_ticks = *utime;
  stat.stime_ticks = *stime;
  stat.starttime_ticks = *starttime;
  stat.vsize_bytes = *vsize;
  stat.rss_pages = *rss;
  return stat;
}

ProcStatus ParseProcStatus(std::string_view text) {
  ProcStatus status;
  ForEachLine(text, [&status](std::string_view line) {
    if (auto rss = ParseKbLine(line, "VmRSS:")) status.vm_rss_bytes = rss;
    if (auto size = ParseKbLine(line, "VmSize:")) status.vm_size_bytes = size;
  });
  return status;
}

std::optional<uint64_t> ParseMaxOpenFiles(std::string_view limits_text) {
  std::optional<uint64_t> result;
  ForEachLine(limits_text, [&result](std::string_view line) {
    constexpr std::string_view kKey = "Max open files";
    if (!StartsWith(line, kKey)) return;
    auto parts = SplitWhitespace(line.substr(kKey.size()));
    if (!parts.empty()) result = ParseUnsigned(parts[0]);  // "unlimited" -> nullopt
  });
  return result;
}

std::optional<int64_t> ParseBootTime(std::string_view proc_stat_text) {
  std::optional<int64_t> result;
  ForEachLine(proc_stat_text, [&result](std::string_view line) {
    auto parts = SplitWhitespace(line);
    if (parts.size() == 2 && parts[0] == "btime") {
      if (auto v = ParseUnsigned(parts[1])) result = static_cast<int64_t>(*v);
    }
  });
  return result;
}

ProcessStats ComputeProcessStats(const ProcStat& stat, const ProcStatus& status, int64_t ticks_per_second,
                                 int64_t page_size, int64_t boot_time_s, std::optional<uint64_t> open_fds,
                                 std::optional<uint64_t> max_fds) {
  ProcessStats out;
  const double ticks = ticks_per_second > 0 ? static_cast<double>(ticks_per_second) : 100.0;
  out.cpu_seconds = static_cast<double>(stat.utime_ticks + stat.stime_ticks) / ticks;
  out.start_time_seconds =
      static_cast<double>(boot_time_s) + static_cast<double>(stat.starttime_ticks) / ticks;
  out.resident_memory_bytes = status.vm_rss_bytes
                                  ? static_cast<double>(*status.vm_rss_bytes)
                                  : static_cast<double>(stat.rss_pages) * static_cast<double>(page_size);
  out.virtual_memory_bytes = status.vm_size_bytes ? static_cast<double>(*status.vm_size_bytes)
                                                  : static_cast<double>(stat.vsize_bytes);
  if (open_fds) out.open_fds = static_cast<double>(*open_fds);
  if (max_fds) out.max_fds = static_cast<double>(*max_fds);
  return out;
}

std::optional<ProcessStats> ReadProcessStats() {
  auto stat_text = ReadFile("/proc/self/stat");
  if (!stat_text) return std::nullopt;
  auto stat = ParseProcStat(*stat_text);
  if (!stat.ok()) return std::nullopt;
  ProcStatus status;
  if (auto text = ReadFile("/proc/self/status")) status = ParseProcStatus(*text);
  std::optional<uint64_t> max_fds;
  if (auto text = ReadFile("/proc/self/limits")) max_fds = ParseMaxOpenFiles(*text);
  int64_t boot_time = 0;
  if (auto text = ReadFile("/proc/stat")) boot_time = ParseBootTime(*text).value_or(0);
  return ComputeProcessStats(stat.value(), status, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), boot_time,
                             CountOpenFds(), max_fds);
}

}  // namespace lockwatch::metrics
