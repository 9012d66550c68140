#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "agent/metrics/metrics.h"

// `promtool check metrics` is Prometheus' own parser and linter for the exposition format. The test needs it
// (Debian package `prometheus`): a missing promtool is a failure, not a skip, so the check cannot silently
// stop running.

namespace lockwatch::metrics {
namespace {

std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path == nullptr ? "" : path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A render with every series present: contention, both histograms with observations, label values that need
// escaping, a second target that failed, and the real process metrics.
std::string FullRender() {
  constexpr int64_t kT0Us = 1'700'000'000'000'000;
  constexpr double kNow = 1'700'000'000.0;
  AgentMetrics m(BuildInfo{"0.1.0", "abc123"});
  m.AddTarget("primary", std::chrono::seconds(5));
  m.AddTarget("replica \"b\"", std::chrono::seconds(5));

  core::Snapshot snapshot;
  snapshot.server_version_num = 150018;
  snapshot.captured_at_us = kT0Us;
  auto session = [&snapshot](int32_t pid, const char* state, const char* datname, const char* wet,
                             const char* we) {
    core::Session s;
    s.pid = pid;
    s.state = state;
    s.datname = datname;
    s.wait_event_type = wet;
    s.wait_event = we;
    s.backend_start = kT0Us - 100'000'000;
    s.state_change = kT0Us - 60'000'000;
    snapshot.sessions.push_back(s);
  };
  session(10, "idle in transaction", "weird \"db\\name\"\nx", "Client", "ClientRead");
  session(11, "active", "weird \"db\\name\"\nx", "Lock", "relation");
  session(12, "active", "shop", "", "");
  core::Report report;
  core::Edge edge;
  edge.waiter = core::NodeRef{11, ""};
  edge.blocker = core::NodeRef{10, ""};
  report.edges.push_back(edge);
  core::Root root;
  root.node = core::NodeRef{10, ""};
  root.blocked_sessions = 1;
  root.depth = 1;
  root.classification = core::RootClass::kIdleInTransaction;
  report.roots.push_back(root);
  core::Waiter waiter;
  waiter.node = core::NodeRef{11, ""};
  waiter.since = kT0Us - 12'000'000;
  waiter.wait_seconds = 12;
  waiter.target.locktype = "relation";
  waiter.target.text = "relation public.t";
  report.waiters.push_back(waiter);
  report.blocked_sessions = 1;
  report.max_depth = 1;
  report.max_wait_seconds = 12;

  PollCost cost;
  cost.client_seconds = 0.003;
  cost.server_seconds = 0.001;
  cost.bytes_received = 4096;
  cost.locks_read = true;
  m.RecordPoll("primary", snapshot, report, cost, kNow);
  report.waiters.clear();  // the wait ended: one lock_wait_duration observation
  m.RecordPoll("primary", snapshot, report, cost, kNow + 5);
  m.RecordPollError("replica \"b\"", "connect", kNow + 5);
  return m.Render(kNow + 6);
}

TEST(PromtoolTest, RenderPassesPromtoolCheckMetrics) {
  const std::string promtool = FindOnPath("promtool");
  ASSERT_FALSE(promtool.empty()) << "promtool not found on PATH; install the Debian package 'prometheus' "
                                    "(apt-get install prometheus), which ships /usr/bin/promtool";
  const std::string text = FullRender();
  ASSERT_NE(text.find("lockwatch_lock_wait_duration_seconds_count{target=\"primary\"} 1"), std::string::npos)
      << text;
  ASSERT_NE(text.find("lockwatch_blocked_sessions"), std::string::npos) << text;
  ASSERT_NE(text.find("process_open_fds"), std::string::npos) << text;

  std::string dir = ::testing::TempDir();
  std::string metrics_path = dir + "/lockwatch_metrics_promtool.prom";
  std::string output_path = dir + "/lockwatch_metrics_promtool.out";
  {
    std::ofstream out(metrics_path);
    out << text;
  }
  std::string command =
      "'" + promtool + "' check metrics < '" + metrics_path + "' > '" + output_path + "' 2>&1";
  int rc = std::system(command.c_str());
  std::string output = ReadAll(output_path);
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << "promtool exit status " << rc << ":\n" << output;
  EXPECT_EQ(output, "") << "promtool reported problems:\n" << output << "\nin:\n" << text;
  std::remove(metrics_path.c_str());
  std::remove(output_path.c_str());
}

}  // namespace
}  // namespace lockwatch::metrics
