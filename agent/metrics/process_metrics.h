#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "agent/core/status.h"

namespace lockwatch::metrics {

// The standard `process_*` figures of the Prometheus client libraries, for this process.
struct ProcessStats {
  double cpu_seconds = 0;  // user + system CPU time
  double resident_memory_bytes = 0;
  double virtual_memory_bytes = 0;
  double start_time_seconds = 0;   // since the Unix epoch
  std::optional<double> open_fds;  // absent when /proc/self/fd cannot be listed
  std::optional<double> max_fds;   // soft RLIMIT_NOFILE; absent when "unlimited" or unreadable
};

// The fields lockwatch uses from /proc/<pid>/stat (see proc(5)), in the file's own units.
struct ProcStat {
  uint64_t utime_ticks = 0;      // field 14
  uint64_t stime_ticks = 0;      // field 15
  uint64_t starttime_ticks = 0;  // field 22, clock ticks after boot
  uint64_t vsize_bytes = 0;      // field 23
  uint64_t rss_pages = 0;        // field 24
};

// Parses the one line of /proc/<pid>/stat. The command name (field 2) may contain spaces and parentheses;
// fields are counted after its last ')'. Returns kCorrupt on truncated or non-numeric input. Pure.
core::Result<ProcStat> ParseProcStat(std::string_view text);

// VmRSS and VmSize of /proc/<pid>/status, converted to bytes; a missing line leaves the field empty. Pure.
struct ProcStatus {
  std::optional<uint64_t> vm_rss_bytes;
  std::optional<uint64_t> vm_size_bytes;
};
ProcStatus ParseProcStatus(std::string_view text);

// The soft limit of the "Max open files" line of /proc/<pid>/limits; nullopt when absent or "unlimited".
// Pure.
std::optional<uint64_t> ParseMaxOpenFiles(std::string_view limits_text);

// The "btime" line of /proc/stat (boot time, seconds since the epoch); nullopt when absent. Pure.
std::optional<int64_t> ParseBootTime(std::string_view proc_stat_text);

// Combines the parsed files into ProcessStats. `status` (kB-exact, preferred) overrides the page-based
// figures of `stat` when present. Pure.
ProcessStats ComputeProcessStats(const ProcStat& stat, const ProcStatus& status, int64_t ticks_per_second,
                                 int64_t page_size, int64_t boot_time_s, std::optional<uint64_t> open_fds,
                                 std::optional<uint64_t> max_fds);

// Reads /proc/self/{stat,status,limits,fd} and /proc/stat. Returns nullopt when /proc/self/stat cannot be
// read or parsed (not Linux, /proc not mounted). Does file I/O; cheap enough for every scrape.
std::optional<ProcessStats> ReadProcessStats();

}  // namespace lockwatch::metrics
