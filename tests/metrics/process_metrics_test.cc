#include "agent/metrics/process_metrics.h"

#include <ctime>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lockwatch::metrics {
namespace {

// A real line of /proc/<pid>/stat, with a command name that contains spaces and parentheses.
constexpr const char* kStatLine =
    "4242 (lockwatch (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 3 0 987654 "
    "123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

constexpr const char* kStatusText =
    "Name:\tlockwatch\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t  130000 kB\nVmSize:\t  120560 kB\n"
    "VmLck:\t       0 kB\nVmHWM:\t    9000 kB\nVmRSS:\t    8192 kB\nThreads:\t3\n";

constexpr const char* kLimitsText =
    "Limit                     Soft Limit           Hard Limit           Units     \n"
    "Max cpu time              unlimited            unlimited            seconds   \n"
    "Max open files            1024                 524288               files     \n"
    "Max locked memory         8388608              8388608              bytes     \n";

TEST(ProcessMetricsTest, ParsesStatFieldsAfterTheLastParenthesis) {
  auto stat = ParseProcStat(kStatLine);
  ASSERT_TRUE(stat.ok()) << stat.status().message();
  EXPECT_EQ(stat.value().utime_ticks, 250U);
  EXPECT_EQ(stat.value().stime_ticks, 75U);
  EXPECT_EQ(stat.value().starttime_ticks, 987654U);
  EXPECT_EQ(stat.value().vsize_bytes, 123456789U);
  EXPECT_EQ(stat.value().rss_pages, 2048U);
}

TEST(ProcessMetricsTest, RejectsMalformedStat) {
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"empty", ""},
      {"no command name", "4242 lockwatch S 1 2 3"},
      {"truncated before rss",
       "4242 (lw) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 3 0 987654 12345"},
      {"non-numeric utime",
       "4242 (lw) S 1 4242 4242 0 -1 4194560 1234 0 0 0 abc 75 0 0 20 0 3 0 987654 1 2 3"},
      {"negative rss", "4242 (lw) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 3 0 987654 1 -2 3"},
  };
  for (const auto& [name, text] : cases) {
    auto stat = ParseProcStat(text);
    EXPECT_FALSE(stat.ok()) << name;
    if (!stat.ok()) {
      EXPECT_EQ(stat.status().code(), core::Status::Code::kCorrupt) << name;
    }
  }
}

TEST(ProcessMetricsTest, ParsesStatusMemoryLinesInBytes) {
  struct Case {
    const char* name;
    std::string text;
    std::optional<uint64_t> rss;
    std::optional<uint64_t> size;
  };
  const std::vector<Case> cases = {
      {"full status", kStatusText, 8192U * 1024, 120560U * 1024},
      {"kernel thread has no Vm lines", "Name:\tkthreadd\nState:\tS (sleeping)\n", std::nullopt,
       std::nullopt},
      {"unit other than kB is refused", "VmRSS:\t 12 MB\nVmSize:\t 4 kB", std::nullopt, 4096U},
      {"no trailing newline", "VmRSS:\t 1 kB", 1024U, std::nullopt},
  };
  for (const auto& c : cases) {
    ProcStatus status = ParseProcStatus(c.text);
    EXPECT_EQ(status.vm_rss_bytes, c.rss) << c.name;
    EXPECT_EQ(status.vm_size_bytes, c.size) << c.name;
  }
}

TEST(ProcessMetricsTest, ParsesTheSoftOpenFilesLimit) {
  EXPECT_EQ(ParseMaxOpenFiles(kLimitsText), std::optional<uint64_t>(1024));
  EXPECT_EQ(ParseMaxOpenFiles("Max open files            unlimited            unlimited            files\n"),
            std::nullopt);
  EXPECT_EQ(
      ParseMaxOpenFiles("Max cpu time              unlimited            unlimited            seconds\n"),
      std::nullopt);
}

TEST(ProcessMetricsTest, ParsesBootTime) {
  EXPECT_EQ(ParseBootTime("cpu  1 2 3 4\nintr 5 6\nctxt 7\nbtime 1700000000\nprocesses 8\n"),
            std::optional<int64_t>(1700000000));
  EXPECT_EQ(ParseBootTime("cpu  1 2 3 4\n"), std::nullopt);
}

TEST(ProcessMetricsTest, ComputesSecondsAndBytes) {
  ProcStat stat = ParseProcStat(kStatLine).value();
  ProcessStats with_status =
      ComputeProcessStats(stat, ParseProcStatus(kStatusText), 100, 4096, 1'700'000'000, 7U, 1024U);
  EXPECT_DOUBLE_EQ(with_status.cpu_seconds, 3.25);
  EXPECT_DOUBLE_EQ(with_status.start_time_seconds, 1'700'000'000 + 9876.54);
  EXPECT_DOUBLE_EQ(with_status.resident_memory_bytes, 8192.0 * 1024);
  EXPECT_DOUBLE_EQ(with_status.virtual_memory_bytes, 120560.0 * 1024);
  EXPECT_EQ(with_status.open_fds, std::optional<double>(7));
  EXPECT_EQ(with_status.max_fds, std::optional<double>(1024));

  // Without status, the page-based figures of stat are used.
  ProcessStats from_stat = ComputeProcessStats(stat, ProcStatus{}, 100, 4096, 0, std::nullopt, std::nullopt);
  EXPECT_DOUBLE_EQ(from_stat.resident_memory_bytes, 2048.0 * 4096);
  EXPECT_DOUBLE_EQ(from_stat.virtual_memory_bytes, 123456789.0);
  EXPECT_FALSE(from_stat.open_fds.has_value());
  EXPECT_FALSE(from_stat.max_fds.has_value());
}

TEST(ProcessMetricsTest, ReadsThisProcess) {
  auto stats = ReadProcessStats();
  ASSERT_TRUE(stats.has_value()) << "/proc/self/stat unreadable";
  EXPECT_GT(stats->resident_memory_bytes, 0);
  EXPECT_GE(stats->virtual_memory_bytes, stats->resident_memory_bytes);
  ASSERT_TRUE(stats->open_fds.has_value());
  EXPECT_GE(*stats->open_fds, 3);  // stdin, stdout, stderr at least
  if (stats->max_fds) {
    EXPECT_GE(*stats->max_fds, *stats->open_fds);
  }
  EXPECT_GE(stats->cpu_seconds, 0);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_GT(stats->start_time_seconds, now - 600);  // this test process started moments ago
  EXPECT_LE(stats->start_time_seconds, now + 1);
}

}  // namespace
}  // namespace lockwatch::metrics
