#include "agent/core/arrivals.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/snapshot.h"

#include "tests/testing/snapshot_builder.h"

namespace lockwatch::core {
namespace {

using testing::Sec;

struct Conn {
  int32_t pid;
  int64_t started_s;
  std::string app;
  std::string client;
  std::string backend_type = "client backend";
};

Snapshot At(int64_t now_s, const std::vector<Conn>& conns, int32_t own_pid = 1) {
  Snapshot s;
  s.captured_at_us = Sec(now_s);
  s.own_pid = own_pid;
  for (const Conn& c : conns) {
    Session x;
    x.pid = c.pid;
    x.backend_start = Sec(c.started_s);
    x.application_name = c.app;
    x.client_addr = c.client;
    x.backend_type = c.backend_type;
    x.state = "idle";
    s.sessions.push_back(x);
  }
  return s;
}

std::vector<std::string> Keys(const ArrivalBreakdown& b) {
  std::vector<std::string> out;
  for (const ArrivalGroup& g : b.top) out.push_back(g.key + "=" + std::to_string(g.count));
  return out;
}

TEST(ArrivalTrackerTest, FirstSnapshotCountsOnlySessionsStartedWithinTheLongestWindow) {
  ArrivalTracker t;
  EXPECT_EQ(
      t.Observe(At(1000, {{10, 100, "old", ""}, {11, 995, "web", "10.1.2.3"}, {12, 950, "web", "10.1.2.4"}})),
      2);
  const ArrivalStats s = t.Stats();
  ASSERT_EQ(s.windows.size(), 2u);
  EXPECT_EQ(s.windows[0].arrivals, 1);  // 10 s: only pid 11
  EXPECT_EQ(s.windows[1].arrivals, 2);  // 60 s: 11 and 12
  EXPECT_EQ(s.total, 2u);
  EXPECT_DOUBLE_EQ(s.interval_seconds, 0.0);
}

TEST(ArrivalTrackerTest, NewSessionsAreNewPidBackendStartPairs) {
  ArrivalTracker t;
  t.Observe(At(1000, {{10, 100, "a", ""}, {11, 200, "a", ""}}));
  // 10 stays, 11 leaves, 11 comes back as a new backend (recycled pid), 12 is new.
  EXPECT_EQ(t.Observe(At(1001, {{10, 100, "a", ""}, {11, 1001, "a", ""}, {12, 1000, "b", ""}})), 2);
  const ArrivalStats s = t.Stats();
  EXPECT_EQ(s.new_sessions, 2);
  EXPECT_DOUBLE_EQ(s.interval_seconds, 1.0);
  EXPECT_EQ(s.total, 2u);
  // Nothing new: zero.
  EXPECT_EQ(t.Observe(At(1002, {{10, 100, "a", ""}, {11, 1001, "a", ""}, {12, 1000, "b", ""}})), 0);
  EXPECT_EQ(t.Stats().new_sessions, 0);
  EXPECT_EQ(t.Stats().total, 2u);
}

TEST(ArrivalTrackerTest, OwnSessionWorkersAndBackgroundProcessesAreNotArrivals) {
  ArrivalTracker t;
  t.Observe(At(1000, {}));
  EXPECT_EQ(t.Observe(At(1001, {{1, 1001, "lockwatch", ""},
                                {20, 1001, "x", "", "parallel worker"},
                                {21, 1001, "", "", "autovacuum worker"},
                                {22, 1001, "app", ""}})),
            1);
}

TEST(ArrivalTrackerTest, WindowsSlideAndRatesAreArrivalsPerSecond) {
  ArrivalTracker t;
  t.Observe(At(1000, {}));
  std::vector<Conn> conns;
  conns.reserve(20);
  for (int i = 0; i < 20; ++i) conns.push_back({100 + i, 1001, "web", "10.0.0.1"});
  t.Observe(At(1001, conns));
  ArrivalStats s = t.Stats();
  EXPECT_EQ(s.windows[0].arrivals, 20);
  EXPECT_DOUBLE_EQ(s.windows[0].per_second, 2.0);           // 20 in 10 s
  EXPECT_NEAR(s.windows[1].per_second, 20.0 / 60.0, 1e-9);  // 20 in 60 s
  // 15 s later the 10 s window has forgotten them, the 60 s window has not.
  t.Observe(At(1016, conns));
  s = t.Stats();
  EXPECT_EQ(s.windows[0].arrivals, 0);
  EXPECT_EQ(s.windows[1].arrivals, 20);
  // 61 s after arrival, both have.
  t.Observe(At(1062, conns));
  EXPECT_EQ(t.Stats().windows[1].arrivals, 0);
  EXPECT_EQ(t.Stats().total, 20u);
}

TEST(ArrivalTrackerTest, BreakdownsKeepTopNAndSumTheRestIntoOther) {
  ArrivalOptions options;
  options.top_n = 2;
  ArrivalTracker t(options);
  t.Observe(At(1000, {}));
  std::vector<Conn> conns;
  conns.reserve(12);
  int pid = 100;
  for (int i = 0; i < 5; ++i) conns.push_back({pid++, 1001, "billing", "10.1.2.3"});
  for (int i = 0; i < 3; ++i) conns.push_back({pid++, 1001, "web", "10.1.2.200"});
  for (int i = 0; i < 2; ++i) conns.push_back({pid++, 1001, "", "192.168.7.1"});
  conns.push_back({pid++, 1001, "batch", ""});
  conns.push_back({pid++, 1001, "admin", "2001:db8:1:2::5"});
  t.Observe(At(1001, conns));
  const ArrivalStats stats = t.Stats();
  const ArrivalWindow& w = stats.windows[0];
  EXPECT_EQ(w.arrivals, 12);
  EXPECT_EQ(Keys(w.by_application), (std::vector<std::string>{"billing=5", "web=3"}));
  EXPECT_EQ(w.by_application.other, 4);  // (none)=2, admin=1, batch=1
  EXPECT_EQ(Keys(w.by_network), (std::vector<std::string>{"10.1.2.0/24=8", "192.168.7.0/24=2"}));
  EXPECT_EQ(w.by_network.other, 2);  // local=1, 2001:db8:1:2::/64=1
}

TEST(ArrivalTrackerTest, EmptyNamesGetReadableKeys) {
  ArrivalTracker t;
  t.Observe(At(1000, {}));
  t.Observe(At(1001, {{7, 1001, "", ""}}));
  const ArrivalStats stats = t.Stats();
  const ArrivalWindow& w = stats.windows[0];
  EXPECT_EQ(Keys(w.by_application), (std::vector<std::string>{"(none)=1"}));
  EXPECT_EQ(Keys(w.by_network), (std::vector<std::string>{"local=1"}));
}

TEST(ArrivalTrackerTest, OlderSnapshotIsIgnored) {
  ArrivalTracker t;
  t.Observe(At(1000, {}));
  EXPECT_EQ(t.Observe(At(999, {{7, 999, "a", ""}})), 0);
  EXPECT_EQ(t.Stats().at, Sec(1000));
  EXPECT_EQ(t.Stats().total, 0u);
}

TEST(ArrivalTrackerTest, MemoryIsBounded) {
  ArrivalOptions options;
  options.max_remembered = 10;
  ArrivalTracker t(options);
  t.Observe(At(1000, {}));
  std::vector<Conn> conns;
  conns.reserve(50);
  for (int i = 0; i < 50; ++i) conns.push_back({100 + i, 1001, "web", ""});
  EXPECT_EQ(t.Observe(At(1001, conns)), 50);
  EXPECT_EQ(t.Stats().total, 50u);
  EXPECT_EQ(t.Stats().windows[0].arrivals, 10);
}

}  // namespace
}  // namespace lockwatch::core
