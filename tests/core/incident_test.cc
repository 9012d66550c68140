#include "agent/core/incident.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/snapshot_builder.h"

namespace lockwatch::core {
namespace {

using testing::Sec;

// A report with the given figures and one root (pid 100) blocking `blocked` sessions.
Report Figures(int blocked, int depth, double wait, int32_t root_pid = 100) {
  Report r;
  r.blocked_sessions = blocked;
  r.max_depth = depth;
  r.max_wait_seconds = wait;
  if (blocked > 0) {
    Root root;
    root.node.pid = root_pid;
    root.blocked_sessions = blocked;
    root.depth = depth;
    root.max_wait_seconds = wait;
    root.classification = RootClass::kIdleInTransaction;
    r.roots.push_back(root);
  }
  return r;
}

struct Step {
  int64_t t;  // seconds
  int blocked;
  int depth;
  double wait;
  std::string events;  // expected event kinds, comma-separated, "" for none
};

struct TrackerCase {
  const char* name;
  std::vector<Step> steps;
};

class IncidentTrackerTableTest : public ::testing::TestWithParam<TrackerCase> {};

TEST_P(IncidentTrackerTableTest, EmitsExpectedEvents) {
  IncidentTracker tracker("db1");
  const Snapshot snapshot;
  for (const Step& step : GetParam().steps) {
    std::string got;
    for (const IncidentEvent& e :
         tracker.Observe(Figures(step.blocked, step.depth, step.wait), snapshot, Sec(step.t))) {
      if (!got.empty()) got += ",";
      got += IncidentEventKindName(e.kind);
    }
    EXPECT_EQ(got, step.events) << "at t=" << step.t << "s";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, IncidentTrackerTableTest,
    ::testing::Values(
        TrackerCase{"QuietNeverOpens", {{0, 0, 0, 0, ""}, {1, 9, 3, 5.0, ""}, {2, 1, 1, 4.9, ""}}},
        TrackerCase{"WaitLongerThanFiveSecondsOpens", {{0, 1, 1, 5.0, ""}, {1, 1, 1, 5.1, "opened"}}},
        TrackerCase{"TenBlockedSessionsOpen", {{0, 9, 1, 1, ""}, {1, 10, 1, 1, "opened"}}},
        TrackerCase{"ChainDeeperThanThreeOpens", {{0, 3, 3, 1, ""}, {1, 4, 4, 1, "opened"}}},
        TrackerCase{"SameFiguresNoUpdate", {{0, 1, 1, 6, "opened"}, {1, 1, 1, 6, ""}, {2, 1, 1, 6, ""}}},
        TrackerCase{"NewPeakUpdates",
                    {{0, 1, 1, 6, "opened"}, {1, 2, 1, 6, "updated"}, {2, 2, 2, 7, "updated"}}},
        TrackerCase{
            "ResolvesAfterThirtyQuietSeconds",
            {{0, 1, 1, 6, "opened"}, {10, 0, 0, 0, ""}, {39, 0, 0, 0, ""}, {40, 0, 0, 0, "resolved"}}},
        TrackerCase{"FlappingStaysOneIncident",
                    {{0, 1, 1, 6, "opened"},
                     {10, 0, 0, 0, ""},
                     {25, 1, 1, 6, ""},
                     {30, 0, 0, 0, ""},
                     {45, 1, 1, 6, ""},
                     {50, 0, 0, 0, ""},
                     {79, 0, 0, 0, ""},
                     {80, 0, 0, 0, "resolved"}}},
        TrackerCase{"BelowThresholdContentionKeepsQuietClockRunning",
                    {{0, 1, 1, 6, "opened"}, {1, 1, 1, 1, ""}, {31, 1, 1, 2, "resolved"}}},
        TrackerCase{
            "ReopensAfterResolve",
            {{0, 1, 1, 6, "opened"}, {1, 0, 0, 0, ""}, {31, 0, 0, 0, "resolved"}, {32, 1, 1, 6, "opened"}}}),
    [](const ::testing::TestParamInfo<TrackerCase>& p) { return std::string(p.param.name); });

TEST(IncidentTrackerTest, ResolvedIncidentCarriesTimesAndPeaks) {
  IncidentTracker tracker("db1");
  const Snapshot snapshot;
  ASSERT_EQ(tracker.Observe(Figures(3, 2, 7.5), snapshot, Sec(1000)).size(), 1U);
  tracker.Observe(Figures(12, 4, 20.0), snapshot, Sec(1001));
  tracker.Observe(Figures(2, 1, 1.0), snapshot, Sec(1002));
  tracker.Observe(Figures(0, 0, 0), snapshot, Sec(1003));
  const std::vector<IncidentEvent> events = tracker.Observe(Figures(0, 0, 0), snapshot, Sec(1032));
  ASSERT_EQ(events.size(), 1U);
  const Incident& in = events[0].incident;
  EXPECT_EQ(events[0].kind, IncidentEventKind::kResolved);
  EXPECT_EQ(in.started_at, Sec(1000));
  EXPECT_EQ(in.last_over_at, Sec(1001));
  EXPECT_EQ(in.ended_at, Sec(1002));
  EXPECT_EQ(in.peak_blocked_sessions, 12);
  EXPECT_EQ(in.peak_depth, 4);
  EXPECT_DOUBLE_EQ(in.peak_wait_seconds, 20.0);
  EXPECT_EQ(in.peak_roots, 1);
  EXPECT_EQ(in.observations, 5);
  EXPECT_EQ(in.trigger, "lock wait 7.5 s > 5.0 s");
  EXPECT_FALSE(tracker.current().has_value());
}

TEST(IncidentTrackerTest, IdNamesTargetAndUtcOpeningTime) {
  IncidentTracker tracker("prod-db");
  // 2026-11-25 13:45:07.5 UTC
  const TimestampUs at = Sec(1795614307) + 500000;
  const std::vector<IncidentEvent> events = tracker.Observe(Figures(10, 1, 1), Snapshot{}, at);
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].incident.id, "prod-db-20261125T134507Z");
  EXPECT_EQ(events[0].incident.trigger, "10 blocked sessions >= 10");
}

TEST(IncidentTrackerTest, RootsKeepSessionDetailsAndAccumulate) {
  Snapshot snapshot = testing::SnapshotBuilder()
                          .Session(100)
                          .State("idle in transaction")
                          .Query("update accounts set balance = 0")
                          .Session(200)
                          .Build();
  snapshot.sessions[0].usename = "app";
  snapshot.sessions[0].application_name = "billing";
  snapshot.sessions[0].client_addr = "10.0.0.7";
  snapshot.sessions[0].xact_start = Sec(90);
  IncidentTracker tracker("db1");
  tracker.Observe(Figures(1, 1, 6, 100), snapshot, Sec(100));
  const std::vector<IncidentEvent> events = tracker.Observe(Figures(1, 1, 6, 200), snapshot, Sec(101));
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].kind, IncidentEventKind::kUpdated);
  const std::vector<IncidentRoot>& roots = events[0].incident.roots;
  ASSERT_EQ(roots.size(), 2U);
  EXPECT_EQ(roots[0].pid, 100);
  EXPECT_EQ(roots[0].usename, "app");
  EXPECT_EQ(roots[0].application_name, "billing");
  EXPECT_EQ(roots[0].client_addr, "10.0.0.7");
  EXPECT_EQ(roots[0].state, "idle in transaction");
  EXPECT_EQ(roots[0].xact_start, Sec(90));
  EXPECT_EQ(roots[0].query, "update accounts set balance = 0");
  EXPECT_EQ(roots[0].classification, RootClass::kIdleInTransaction);
  EXPECT_EQ(roots[0].first_seen_at, Sec(100));
  EXPECT_EQ(roots[1].pid, 200);
  EXPECT_EQ(roots[1].first_seen_at, Sec(101));
}

TEST(IncidentTrackerTest, PreparedRootTakesOwnerFromPreparedXacts) {
  Snapshot snapshot = testing::SnapshotBuilder().Prepared(731, "tx-1").Build();
  snapshot.prepared[0].owner = "batch";
  Report report = Figures(1, 1, 6);
  report.roots[0].node = NodeRef{0, "tx-1"};
  report.roots[0].classification = RootClass::kPrepared;
  IncidentTracker tracker("db1");
  const std::vector<IncidentEvent> events = tracker.Observe(report, snapshot, Sec(1));
  ASSERT_EQ(events.size(), 1U);
  ASSERT_EQ(events[0].incident.roots.size(), 1U);
  EXPECT_EQ(events[0].incident.roots[0].gid, "tx-1");
  EXPECT_EQ(events[0].incident.roots[0].usename, "batch");
}

TEST(IncidentTrackerTest, CustomThresholdsAndHysteresis) {
  IncidentThresholds t;
  t.max_wait_seconds = 1;
  t.resolve_after_us = Sec(5);
  IncidentTracker tracker("db1", t);
  EXPECT_EQ(tracker.Observe(Figures(1, 1, 1.5), Snapshot{}, Sec(0)).size(), 1U);
  EXPECT_TRUE(tracker.Observe(Figures(0, 0, 0), Snapshot{}, Sec(1)).empty());
  const std::vector<IncidentEvent> events = tracker.Observe(Figures(0, 0, 0), Snapshot{}, Sec(6));
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].kind, IncidentEventKind::kResolved);
}

struct UtcCase {
  TimestampUs us;
  const char* want;
};

TEST(CompactUtcTest, FormatsCivilTime) {
  const UtcCase cases[] = {
      {0, "19700101T000000Z"},
      {Sec(951782400), "20000229T000000Z"},  // leap day
      {Sec(1795614307) + 999999, "20261125T134507Z"},
      {-1, "19691231T235959Z"},
  };
  for (const UtcCase& c : cases) EXPECT_EQ(CompactUtc(c.us), c.want) << c.us;
}

}  // namespace
}  // namespace lockwatch::core
