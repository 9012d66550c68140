#include "agent/forensics/incident_timeline.h"

#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/core/tree_render.h"
#include "agent/forensics/dump_reader.h"
#include "agent/forensics/timeline_render.h"

#include "tests/forensics/dump_test_util.h"
#include "tests/forensics/incident_scenarios.h"

namespace lockwatch::forensics {
namespace {

using test::kT0;
using test::PollSpec;
using test::RootSpec;
using test::RootState;
using testing::Sec;

Timeline Build(const std::vector<RootSpec>& roots, const std::vector<PollSpec>& polls,
               const test::ScenarioOptions& options = {}) {
  test::TempDir dir;
  const std::string path = dir.File("incident.dump.gz");
  test::WriteIncidentDump(path, roots, polls, options);
  core::Result<Timeline> t = ReadTimeline(options.close ? path : path + ".partial");
  if (!t.ok()) throw std::runtime_error(t.status().message());
  return std::move(t).value();
}

nlohmann::json Action(int seconds, const std::string& action, int32_t pid, bool dry_run) {
  return nlohmann::json{{"type", "action"},
                        {"at", core::FormatTimestampUtc(kT0 + Sec(seconds))},
                        {"rule", "idle-tx-root"},
                        {"action", action},
                        {"pid", pid},
                        {"result", "ok"},
                        {"dry_run", dry_run}};
}

TEST(IncidentTimelineTest, NamesRootPeakAndFirstWait) {
  const Timeline t = Build({RootSpec{}}, test::PileUpPolls(RootState::kCommitted));
  ASSERT_TRUE(t.incident.has_value());
  EXPECT_EQ(t.incident->trigger, "12 blocked sessions >= 10");
  EXPECT_EQ(t.incident->started_at, kT0 + Sec(5));
  EXPECT_TRUE(t.incident->resolved_at.has_value());
  ASSERT_EQ(t.roots.size(), 1U);
  const TimelineRoot& root = t.roots[0];
  EXPECT_EQ(root.node.pid, 100);
  EXPECT_EQ(root.usename, "app_user");
  EXPECT_EQ(root.application_name, "billing-api");
  EXPECT_EQ(root.client_addr, "10.20.30.40");
  EXPECT_EQ(root.state, "idle in transaction");
  EXPECT_EQ(root.classification, core::RootClass::kIdleInTransaction);
  // The default privacy mode normalises constants.
  EXPECT_EQ(root.query, "update accounts set balance = $1 where id = $2");
  EXPECT_FALSE(root.query_fingerprint.empty());
  // First seen in a compact "before" record at kT0 (2 waiters), transaction open since kT0-300 s.
  EXPECT_EQ(root.first_seen_at, kT0);
  EXPECT_EQ(root.xact_start, kT0 - Sec(300));
  EXPECT_EQ(root.peak_blocked_sessions, 20);
  EXPECT_EQ(root.peak_at, kT0 + Sec(15));
  ASSERT_TRUE(t.peak.has_value());
  EXPECT_EQ(t.points[*t.peak].at, kT0 + Sec(15));
  EXPECT_EQ(t.points[*t.peak].blocked_sessions, 20);
  EXPECT_EQ(t.peak_report.blocked_sessions, 20);
  ASSERT_TRUE(t.first_wait_began.has_value());
  EXPECT_EQ(*t.first_wait_began, kT0);
  EXPECT_EQ(t.first_waiter.pid, 200);
  EXPECT_EQ(t.first_wait_target, "ShareLock on transaction 731");
  // Phases in order: compact before-records, during, after.
  ASSERT_GE(t.points.size(), 4U);
  EXPECT_EQ(t.points.front().phase, "before");
  EXPECT_TRUE(t.points.front().compact);
  EXPECT_EQ(t.points.back().phase, "after");
  EXPECT_EQ(t.points.front().sessions, 1 + 1 + 3 + 5);  // lockwatch, root, mobile idle, other idle
}

TEST(IncidentTimelineTest, EndCauseOfTheRoot) {
  const struct {
    const char* name;
    RootState end;
    bool waiters_give_up;
    std::vector<std::pair<size_t, nlohmann::json>> extra;
    RootEnd want;
    const char* detail;
  } cases[] = {
      {"commit",
       RootState::kCommitted,
       false,
       {},
       RootEnd::kCommitted,
       "transaction ended, session still connected (20 waiters released)"},
      {"terminated",
       RootState::kGone,
       false,
       {},
       RootEnd::kTerminated,
       "backend gone (terminated, crashed or disconnected); 20 waiters released"},
      {"lockwatch",
       RootState::kGone,
       false,
       {{6, Action(18, "terminate", 100, false)}},
       RootEnd::kTerminatedByLockwatch,
       "terminated by lockwatch (rule idle-tx-root terminated pid 100); 20 waiters released"},
      {"dry run",
       RootState::kGone,
       false,
       {{6, Action(18, "terminate", 100, true)}},
       RootEnd::kTerminated,
       "backend gone (terminated, crashed or disconnected); 20 waiters released"},
      {"timeout",
       RootState::kInTransaction,
       true,
       {},
       RootEnd::kWaitersGaveUp,
       "transaction still open; 20 waiters gave up (lock_timeout, statement_timeout or cancel)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    test::ScenarioOptions options;
    options.extra_records = c.extra;
    const Timeline t = Build({RootSpec{}}, test::PileUpPolls(c.end, c.waiters_give_up), options);
    ASSERT_EQ(t.roots.size(), 1U);
    EXPECT_EQ(t.roots[0].end, c.want) << RootEndName(t.roots[0].end);
    EXPECT_EQ(t.roots[0].end_detail, c.detail);
    EXPECT_EQ(t.roots[0].ended_at, kT0 + Sec(20));
    EXPECT_EQ(t.roots[0].last_seen_at, kT0 + Sec(15));
  }
}

TEST(IncidentTimelineTest, ActionRecordsJoinTheStory) {
  test::ScenarioOptions options;
  options.extra_records = {{6, Action(18, "terminate", 100, true)}};
  const Timeline t = Build({RootSpec{}}, test::PileUpPolls(RootState::kGone), options);
  ASSERT_EQ(t.actions.size(), 1U);
  std::vector<std::string> story;
  for (const TimelineEvent& e : t.events) story.push_back(FormatClock(e.at) + " " + e.kind + " " + e.text);
  const std::vector<std::string> want = {
      "14:00:00 first_wait first wait began: pid 200 waits for ShareLock on transaction 731",
      "14:00:00 root pid 100 (app_user, billing-api, 10.20.30.40) starts blocking (idle in transaction, "
      "transaction open 5m00s)",
      "14:00:05 incident_opened incident opened: 12 blocked sessions >= 10",
      "14:00:15 peak peak: 20 sessions blocked behind 1 root, chain depth 1, longest wait 15.0 s",
      "14:00:18 action rule idle-tx-root terminated pid 100 (dry run)",
      "14:00:20 root_end pid 100 (app_user, billing-api, 10.20.30.40): backend gone (terminated, crashed or "
      "disconnected); 20 waiters released",
      "14:00:30 incident_resolved incident resolved",
  };
  EXPECT_EQ(story, want);
}

TEST(IncidentTimelineTest, PlannedAndExecutedRecordsOfOneSignalReadAsDecisionAndOutcome) {
  auto with = [](nlohmann::json record, const std::string& decision, const std::string& result) {
    record["decision"] = decision;
    record["result"] = result;
    record.erase("dry_run");
    record["mode"] = "enforce";
    return record;
  };
  struct Case {
    std::string name;
    std::vector<std::pair<std::string, std::string>> records;  // decision, result
    std::vector<std::string> action_lines;
    RootEnd end;
  };
  const std::vector<Case> cases = {
      {"planned then executed",
       {{"planned", ""}, {"executed", "exited"}},
       {"action rule idle-tx-root decided to terminate pid 100",
        "action rule idle-tx-root terminated pid 100"},
       RootEnd::kTerminatedByLockwatch},
      {"planned only: no signal is claimed",
       {{"planned", ""}},
       {"action rule idle-tx-root decided to terminate pid 100"},
       RootEnd::kTerminated},
      {"planned then failed",
       {{"planned", ""}, {"failed", "permission_denied"}},
       {"action rule idle-tx-root decided to terminate pid 100",
        "action rule idle-tx-root failed to terminate pid 100: permission_denied"},
       RootEnd::kTerminated},
      {"skipped",
       {{"skipped", "rate_limited"}},
       {"action rule idle-tx-root did not terminate pid 100: rate_limited"},
       RootEnd::kTerminated},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    test::ScenarioOptions options;
    for (size_t i = 0; i < c.records.size(); ++i) {
      options.extra_records.push_back({6, with(Action(17 + static_cast<int>(i), "terminate", 100, false),
                                               c.records[i].first, c.records[i].second)});
    }
    const Timeline t = Build({RootSpec{}}, test::PileUpPolls(RootState::kGone), options);
    std::vector<std::string> lines;
    for (const TimelineEvent& e : t.events) {
      if (e.kind == "action") lines.push_back(e.kind + " " + e.text);
    }
    EXPECT_EQ(lines, c.action_lines);
    ASSERT_EQ(t.roots.size(), 1U);
    EXPECT_EQ(t.roots[0].end, c.end) << RootEndName(t.roots[0].end) << ": " << t.roots[0].end_detail;
  }
}

TEST(IncidentTimelineTest, TwoRootsHaveTheirOwnSeriesAndEnds) {
  RootSpec second;
  second.pid = 101;
  second.xid = 732;
  second.usename = "reporter";
  second.application_name = "report-job";
  second.client_addr = "10.9.9.9";
  second.query = "lock table ledger in exclusive mode";
  std::vector<PollSpec> polls;
  const auto poll = [](int t, RootState second_state, int w0, int w1, int idle1) {
    PollSpec p;
    p.at = kT0 + Sec(t);
    p.roots = {RootState::kInTransaction, second_state};
    p.waiters = {w0, w1};
    p.idle_waiters = {0, idle1};
    return p;
  };
  polls.push_back(poll(0, RootState::kInTransaction, 5, 4, 0));
  polls.push_back(poll(5, RootState::kInTransaction, 6, 8, 0));
  polls.push_back(poll(10, RootState::kCommitted, 9, 0, 8));
  polls.push_back(poll(15, RootState::kCommitted, 11, 0, 8));
  test::ScenarioOptions options;
  options.query_text = QueryTextMode::kKeep;
  const Timeline t = Build({RootSpec{}, second}, polls, options);
  ASSERT_EQ(t.roots.size(), 2U);
  EXPECT_EQ(t.roots[0].node.pid, 100);
  EXPECT_EQ(t.roots[1].node.pid, 101);
  EXPECT_EQ(t.roots[1].query, "lock table ledger in exclusive mode");
  EXPECT_EQ(t.roots[1].usename, "reporter");
  EXPECT_EQ(t.roots[0].end, RootEnd::kStillBlocking);
  EXPECT_EQ(t.roots[1].end, RootEnd::kCommitted);
  EXPECT_EQ(t.roots[1].ended_at, kT0 + Sec(10));
  EXPECT_EQ(t.roots[1].peak_blocked_sessions, 8);
  std::vector<std::vector<int>> series;
  for (const TimelinePoint& p : t.points) series.push_back(p.root_blocked);
  const std::vector<std::vector<int>> want = {{5, 4}, {6, 8}, {9, 0}, {11, 0}};
  EXPECT_EQ(series, want);
  EXPECT_TRUE(t.complete);
}

TEST(IncidentTimelineTest, SurgeNamesApplicationNetworkAndNumbers) {
  std::vector<PollSpec> polls = test::PileUpPolls(RootState::kCommitted);
  for (PollSpec& p : polls) {
    if (p.at == kT0 + Sec(10)) p.surge = 150;
    if (p.at == kT0 + Sec(15)) p.surge = 300;
  }
  const Timeline t = Build({RootSpec{}}, polls);
  ASSERT_TRUE(t.surge.has_value());
  const TimelineSurge& s = *t.surge;
  EXPECT_TRUE(s.detected);
  EXPECT_EQ(s.by_pair.before_at, kT0 - Sec(10));
  EXPECT_EQ(s.by_pair.after_at, kT0 + Sec(15));
  EXPECT_EQ(s.by_pair.sessions_before, 10);
  EXPECT_EQ(s.by_pair.sessions_after, 10 + 20 + 300);
  ASSERT_GE(s.by_pair.contributors.size(), 2U);
  EXPECT_EQ(s.by_pair.contributors[0].application_name, "mobile-api");
  EXPECT_EQ(s.by_pair.contributors[0].client_network, "10.1.2.0/24");
  EXPECT_EQ(s.by_pair.contributors[0].before, 3);
  EXPECT_EQ(s.by_pair.contributors[0].after, 303);
  EXPECT_EQ(s.by_application.contributors[0].application_name, "mobile-api");
  EXPECT_EQ(s.by_application.contributors[0].added(), 300);
  EXPECT_EQ(s.by_network.contributors[0].client_network, "10.1.2.0/24");
  EXPECT_EQ(s.new_backends, 300);
  EXPECT_EQ(t.points[*t.peak].blocked_sessions, 320);
}

TEST(IncidentTimelineTest, SurgeNeedsGrowthOverThresholds) {
  const struct {
    int other_idle;
    bool want;
  } cases[] = {
      {5, true},     // 10 -> 30 sessions: the 20 waiters are new connections
      {200, false},  // 205 -> 225: 20 more on a busy server is no surge
  };
  for (const auto& c : cases) {
    std::vector<PollSpec> polls = test::PileUpPolls(RootState::kCommitted);
    for (PollSpec& p : polls) p.other_idle = c.other_idle;
    const Timeline t = Build({RootSpec{}}, polls);
    ASSERT_TRUE(t.surge.has_value());
    EXPECT_EQ(t.surge->detected, c.want) << c.other_idle;
    EXPECT_EQ(t.surge->by_pair.sessions_after - t.surge->by_pair.sessions_before, 20);
  }
}

TEST(IncidentTimelineTest, PartialDumpKeepsWhatWasWritten) {
  test::ScenarioOptions options;
  options.close = false;
  const Timeline t = Build({RootSpec{}}, test::PileUpPolls(RootState::kCommitted), options);
  EXPECT_FALSE(t.complete);
  ASSERT_FALSE(t.warnings.empty());
  EXPECT_EQ(t.warnings[0], "truncated: no end record");
  EXPECT_EQ(t.roots.size(), 1U);
}

TEST(IncidentTimelineTest, UnusableRecordsAreSkippedWithAWarning) {
  const std::string text =
      std::string(R"({"format":"lockwatch-dump","schema_version":1,"reason":"manual","target":"t"})") + "\n" +
      R"({"type":"snapshot","phase":"manual","snapshot":{"sessions":"nope"}})" + "\n" +
      R"({"type":"snapshot","phase":"manual","snapshot":{"captured_at":"2026-11-25T14:00:00.000000Z"}})" +
      "\n" + R"({"type":"hologram","at":1})" + "\n" + R"({"type":"action","at":"never"})" + "\n" +
      R"({"type":"end","records":4})" + "\n";
  core::Result<Dump> dump = ReadDumpFromBytes(test::Gzip(text));
  ASSERT_TRUE(dump.ok()) << dump.status().message();
  core::Result<Timeline> t = BuildTimeline(dump.value());
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t.value().points.size(), 1U);
  const std::vector<std::string> want = {
      "line 4: unknown record type \"hologram\" kept unread",
      "line 5: action record without a valid \"at\" ignored",
      "line 2: snapshot: \"sessions\" is not an array (record ignored)",
  };
  EXPECT_EQ(t.value().warnings, want);
}

TEST(IncidentTimelineTest, DumpWithoutSnapshotsIsAnError) {
  const std::string text =
      std::string(R"({"format":"lockwatch-dump","schema_version":1})") + "\n" + R"({"type":"end"})" + "\n";
  core::Result<Dump> dump = ReadDumpFromBytes(test::Gzip(text));
  ASSERT_TRUE(dump.ok());
  core::Result<Timeline> t = BuildTimeline(dump.value());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "the dump holds no readable snapshot record");
}

TEST(IncidentTimelineTest, UnknownSchemaVersionIsRefused) {
  Dump dump;
  dump.schema_version = 7;
  core::Result<Timeline> t = BuildTimeline(dump);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "dump schema_version 7 is not one this lockwatch reads (1)");
}

TEST(IncidentTimelineTest, DurationsReadWell) {
  const struct {
    double seconds;
    const char* want;
  } cases[] = {{-1, "0 s"},    {0, "0 s"},      {2.25, "2.2 s"},  {45, "45 s"},
               {185, "3m05s"}, {7440, "2h04m"}, {266400, "3d02h"}};
  for (const auto& c : cases) EXPECT_EQ(FormatDuration(c.seconds), c.want) << c.seconds;
}

}  // namespace
}  // namespace lockwatch::forensics
