#include "agent/core/tree_render.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/analysis.h"

#include "tests/app/tree_fixtures.h"

namespace lockwatch::app_test {
namespace {

using core::LockMode;

constexpr uint32_t kTable = 16384;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// Columns as a terminal shows them: UTF-8 code points, ANSI escape sequences excluded.
int Columns(const std::string& line) {
  int n = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\x1b') {
      while (i < line.size() && line[i] != 'm') ++i;
      continue;
    }
    if ((static_cast<unsigned char>(line[i]) & 0xC0U) != 0x80U) ++n;
  }
  return n;
}

// The only line containing `needle`; fails the test when there is none or more than one.
std::string LineWith(const std::string& text, const std::string& needle) {
  std::string found;
  int count = 0;
  for (const std::string& line : Lines(text)) {
    if (line.find(needle) != std::string::npos) {
      found = line;
      ++count;
    }
  }
  EXPECT_EQ(count, 1) << "lines containing '" << needle << "' in:\n" << text;
  return found;
}

int LineIndex(const std::string& text, const std::string& prefix) {
  const std::vector<std::string> lines = Lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind(prefix, 0) == 0) return static_cast<int>(i);
  }
  return -1;
}

std::string Render(const core::Snapshot& snapshot, int width = 1000, bool color = false) {
  core::TreeRenderOptions options;
  options.width = width;
  options.color = color;
  return core::RenderTree(snapshot, core::Analyze(snapshot), options);
}

// S4 of the reference scenarios: an idle transaction read t, ALTER TABLE queued for AccessExclusiveLock, and
// readers queued behind the ALTER (not behind the idle transaction, whose AccessShareLock they share).
SnapshotFixture DdlPileUp(int server_version_num = 150018) {
  SnapshotFixture f(server_version_num);
  f.Relation(kTable, "public.t")
      .Session(101, "idle in transaction", "select count(*) from t", 60)
      .Session(102, "active", "alter table t add column x int", 30, "deploy", "migrate", "")
      .Session(103, "active", "select count(*) from t", 20, "web", "api", "10.0.0.7")
      .Session(104, "active", "select count(*) from t", 10, "web", "api", "10.0.0.8")
      .HoldsRelation(101, kTable, LockMode::kAccessShare)
      .WaitsRelation(102, kTable, LockMode::kAccessExclusive, 30)
      .WaitsRelation(103, kTable, LockMode::kAccessShare, 20)
      .WaitsRelation(104, kTable, LockMode::kAccessShare, 10);
  return f;
}

TEST(TreeRenderTest, DdlPileUpShowsReadersQueuedBehindTheAlterUnderIt) {
  const std::string text = Render(DdlPileUp().snapshot());

  const std::string root = LineWith(text, "ROOT");
  EXPECT_EQ(
      root.rfind(
          "101 | idle in transaction 60s | ROOT idle_in_transaction: blocks 3 sessions (1 direct), depth 2",
          0),
      0u)
      << root;
  EXPECT_NE(root.find("| user=alice app=psql client=10.0.0.5 |"), std::string::npos) << root;
  EXPECT_NE(root.find("ROOT idle_in_transaction: blocks 3 sessions (1 direct), depth 2"), std::string::npos);
  EXPECT_NE(root.find("holds AccessShareLock on relation public.t"), std::string::npos) << root;
  EXPECT_NE(root.find("select count(*) from t"), std::string::npos);

  const std::string alter = LineWith(text, "alter table");
  EXPECT_EQ(alter.rfind("`- 102 | waiting 30s | wants AccessExclusiveLock on relation public.t | hard: 101 "
                        "holds AccessShareLock | user=deploy app=migrate client=local",
                        0),
            0u)
      << alter;
  EXPECT_NE(alter.find("wants AccessExclusiveLock on relation public.t"), std::string::npos);
  EXPECT_NE(alter.find("hard: 101 holds AccessShareLock"), std::string::npos);

  for (const char* pid : {"103", "104"}) {
    const std::string reader = LineWith(text, std::string("- ") + pid + " |");
    EXPECT_EQ(reader.rfind("   ", 0), 0u) << "readers are indented under 102: " << reader;
    EXPECT_NE(reader.find("wants AccessShareLock on relation public.t"), std::string::npos);
    EXPECT_NE(reader.find("soft: queued behind 102 (wants AccessExclusiveLock)"), std::string::npos)
        << reader;
    EXPECT_EQ(reader.find("also blocked by"), std::string::npos) << "readers do not wait for 101: " << reader;
    EXPECT_EQ(reader.find("uncertain"), std::string::npos);
  }
  // Longest waiter first under a blocker, and the last child drawn with a corner.
  EXPECT_LT(LineIndex(text, "101 |"), LineIndex(text, "`- 102 |"));
  EXPECT_LT(LineIndex(text, "`- 102 |"), LineIndex(text, "   +- 103 |"));
  EXPECT_LT(LineIndex(text, "   +- 103 |"), LineIndex(text, "   `- 104 |"));
  EXPECT_NE(text.find("3 sessions blocked, max depth 2, longest wait 30s"), std::string::npos) << text;
}

TEST(TreeRenderTest, RootIsFollowedByWhyAndFixOfItsMostActionableFinding) {
  const std::string text = Render(DdlPileUp().snapshot());
  const int root = LineIndex(text, "101 |");
  ASSERT_GE(root, 0) << text;
  const std::vector<std::string> lines = Lines(text);
  ASSERT_GT(lines.size(), static_cast<size_t>(root + 3));
  EXPECT_EQ(lines[root + 1].rfind("  why: ddl_amplifier: ALTER TABLE by pid 102", 0), 0u) << text;
  EXPECT_NE(lines[root + 1].find("and 2 sessions queue behind the DDL"), std::string::npos) << text;
  EXPECT_EQ(lines[root + 2].rfind("  fix: cancel the DDL: SELECT pg_cancel_backend(102); retry it with SET "
                                  "lock_timeout = '2s'",
                                  0),
            0u)
      << text;
  EXPECT_EQ(lines[root + 3].rfind("`- 102 |", 0), 0u) << text;
  // One pair per root: the holder's own finding is in the JSON document, not repeated here.
  EXPECT_EQ(text.find("idle_in_transaction_holder"), std::string::npos) << text;
}

TEST(TreeRenderTest, ExplanationsCanBeTurnedOff) {
  core::TreeRenderOptions options;
  options.width = 1000;
  options.explain = false;
  const core::Snapshot snapshot = DdlPileUp().snapshot();
  const std::string text = core::RenderTree(snapshot, core::Analyze(snapshot), options);
  EXPECT_EQ(text.find("why:"), std::string::npos) << text;
  EXPECT_EQ(text.find("fix:"), std::string::npos) << text;
  EXPECT_EQ(LineIndex(text, "`- 102 |"), LineIndex(text, "101 |") + 1) << text;
}

TEST(TreeRenderTest, GivenExplanationsAreRenderedAsGiven) {
  const core::Snapshot snapshot = DdlPileUp().snapshot();
  core::Explanation f;
  f.kind = core::ExplanationKind::kLongRunningStatement;
  f.root = core::NodeRef{101, ""};
  f.situation = "situation\nwith a newline";
  f.remedy = "remedy";
  core::Explanation server_wide;
  server_wide.kind = core::ExplanationKind::kLockManagerContention;
  server_wide.situation = "many waits";
  server_wide.remedy = "fewer partitions";
  core::TreeRenderOptions options;
  options.width = 1000;
  const std::string text = core::RenderTree(snapshot, core::Analyze(snapshot), {f, server_wide}, options);
  EXPECT_EQ(LineIndex(text, "  why: long_running_statement: situation with a newline"),
            LineIndex(text, "101 |") + 1)
      << text;
  EXPECT_EQ(LineIndex(text, "  fix: remedy"), LineIndex(text, "101 |") + 2) << text;
  // Server-wide findings come before the summary line.
  EXPECT_EQ(LineIndex(text, "why: lock_manager_contention: many waits") + 2,
            LineIndex(text, "3 sessions blocked"))
      << text;
}

TEST(TreeRenderTest, LockManagerContentionIsShownEvenWithoutLockWaits) {
  SnapshotFixture f;
  for (int32_t pid = 901; pid <= 906; ++pid) f.Session(pid, "active", "select * from parted", 1);
  for (core::Session& s : f.mutable_snapshot().sessions) {
    if (s.pid >= 901) {
      s.wait_event_type = "LWLock";
      s.wait_event = "LockManager";
    }
  }
  f.mutable_snapshot().locks_read = false;
  const std::string text = Render(f.snapshot());
  EXPECT_EQ(LineIndex(text, "No lock waits"), 1) << text;
  EXPECT_GE(LineIndex(text, "why: lock_manager_contention: 6 sessions wait on LWLock:LockManager"), 2)
      << text;
  EXPECT_GE(LineIndex(text, "fix: lock fewer relations per transaction"), 3) << text;
}

TEST(TreeRenderTest, HeaderNamesVersionCaptureTimeSessionsAndWaiting) {
  const std::string text = Render(DdlPileUp().snapshot());
  EXPECT_EQ(Lines(text).front(),
            "PostgreSQL 15.18, captured_at 2026-11-25T13:45:00.123456Z, 4 sessions, 3 waiting");
}

TEST(TreeRenderTest, OldServerVersionIsPrintedWithThreeParts) {
  SnapshotFixture f(90624);
  EXPECT_EQ(Lines(Render(f.snapshot())).front().rfind("PostgreSQL 9.6.24, ", 0), 0u);
}

// Two forests: 301 blocks two sessions, 201 one. A session blocked by two roots appears once.
TEST(TreeRenderTest, RootThatBlocksMostComesFirstAndSharedWaiterIsNotDuplicated) {
  SnapshotFixture f;
  f.Relation(kTable, "public.t")
      .Relation(kTable + 1, "public.orders")
      .Session(201, "idle in transaction", "update accounts set v = 1 where id = 1", 50)
      .Session(202, "active", "update accounts set v = 2 where id = 1", 40)
      .HoldsXid(201, 9201)
      .WaitsXid(202, 9201, 40)
      .Session(301, "active", "vacuum full orders", 45)
      .Session(302, "active", "select * from orders", 35)
      .Session(303, "active", "insert into orders values (1)", 25)
      .HoldsRelation(301, kTable + 1, LockMode::kAccessExclusive)
      .WaitsRelation(302, kTable + 1, LockMode::kAccessShare, 35)
      .WaitsRelation(303, kTable + 1, LockMode::kRowExclusive, 25)
      // 401 and 402 both read t; 403 wants it exclusively and waits for both.
      .Session(401, "idle in transaction", "select 1 from t", 30)
      .Session(402, "idle in transaction", "select 2 from t", 30)
      .Session(403, "active", "truncate t", 15)
      .HoldsRelation(401, kTable, LockMode::kAccessShare)
      .HoldsRelation(402, kTable, LockMode::kAccessShare)
      .WaitsRelation(403, kTable, LockMode::kAccessExclusive, 15);
  const std::string text = Render(f.snapshot());

  const int r301 = LineIndex(text, "301 |");
  const int r201 = LineIndex(text, "201 |");
  const int r401 = LineIndex(text, "401 |");
  const int r402 = LineIndex(text, "402 |");
  ASSERT_GE(r301, 0) << text;
  ASSERT_GE(r201, 0) << text;
  EXPECT_LT(r301, r201) << text;
  EXPECT_LT(r201, r401) << "ties by pid: " << text;
  EXPECT_LT(r401, r402) << text;
  EXPECT_NE(LineWith(text, "301 |").find("blocks 2 sessions (2 direct), depth 1"), std::string::npos);

  // 403 is placed under 401 (first root) and only referenced under 402.
  const std::string shared = LineWith(text, "truncate t");
  EXPECT_EQ(shared.rfind("`- 403 | waiting 15s", 0), 0u) << shared;
  EXPECT_NE(shared.find("hard: 401 holds AccessShareLock"), std::string::npos) << shared;
  EXPECT_NE(shared.find("also blocked by 402 (hard)"), std::string::npos) << shared;
  // Directly under its root, after the root's why:/fix: pair.
  EXPECT_EQ(LineIndex(text, "  why: idle_in_transaction_holder: pid 401"), r401 + 1) << text;
  EXPECT_EQ(LineIndex(text, "  fix: SELECT pg_terminate_backend(401)"), r401 + 2) << text;
  EXPECT_EQ(LineIndex(text, "`- 403 | waiting"), r401 + 3) << text;
  const std::string reference = LineWith(text, "also waits for this");
  EXPECT_EQ(LineIndex(text, "`- 403 | also waits for this (hard), shown above"), r402 + 3) << text;
  EXPECT_EQ(reference.find("waiting"), std::string::npos);
}

TEST(TreeRenderTest, HardCycleIsShownAsDeadlockWithItsWaiters) {
  SnapshotFixture f;
  f.Relation(kTable, "public.t")
      .Session(501, "active", "update t set v = 1 where id = 2", 20)
      .Session(502, "active", "update t set v = 2 where id = 1", 10)
      .Session(503, "active", "lock table t", 5)
      .HoldsXid(501, 9501)
      .HoldsXid(502, 9502)
      .WaitsXid(501, 9502, 20)
      .WaitsXid(502, 9501, 10)
      .HoldsRelation(501, kTable, LockMode::kRowExclusive)
      .WaitsRelation(503, kTable, LockMode::kAccessExclusive, 5);
  const std::string text = Render(f.snapshot());

  const std::string header = LineWith(text, "deadlock cycle:");
  EXPECT_EQ(header.rfind("deadlock cycle: 501 -> 502 -> 501", 0), 0u) << text;
  EXPECT_EQ(header.find("soft"), std::string::npos);
  EXPECT_EQ(text.find("ROOT"), std::string::npos) << "a cycle has no root: " << text;
  EXPECT_NE(LineWith(text, "+- 501 |").find("hard: 502 holds ExclusiveLock"), std::string::npos) << text;
  EXPECT_NE(LineWith(text, "`- 502 |").find("hard: 501 holds ExclusiveLock"), std::string::npos) << text;
  // 503 waits for 501 only and hangs under it.
  const std::string waiter = LineWith(text, "lock table t");
  EXPECT_EQ(waiter.rfind("|  `- 503 | waiting 5s", 0), 0u) << text;
  EXPECT_NE(waiter.find("hard: 501 holds RowExclusiveLock"), std::string::npos);
  // The cycle's explanation follows its header.
  const int at = LineIndex(text, "deadlock cycle:");
  EXPECT_EQ(LineIndex(text, "  why: deadlock_forming: sessions 501 and 502 wait for each other"), at + 1)
      << text;
  EXPECT_EQ(LineIndex(text, "  fix: cancel one now: SELECT pg_cancel_backend(501)"), at + 2) << text;
}

TEST(TreeRenderTest, SoftOnlyCycleIsMarkedAsPossibleArtifact) {
  SnapshotFixture f;
  f.Session(601, "active", "select pg_advisory_lock(1)", 9)
      .Session(602, "active", "select pg_advisory_lock(2)", 8);
  core::Report report;
  core::Edge a;
  a.waiter = {601, ""};
  a.blocker = {602, ""};
  a.kind = core::EdgeKind::kSoft;
  a.certain = false;
  a.target.locktype = "advisory";
  a.target.text = "advisory key 1";
  a.waiter_mode = LockMode::kExclusive;
  a.blocker_wanted = LockMode::kExclusive;
  core::Edge b = a;
  b.waiter = {602, ""};
  b.blocker = {601, ""};
  report.edges = {a, b};
  report.cycles = {core::Cycle{{601, 602}, false}};
  report.waiters = {core::Waiter{{601, ""}, LockMode::kExclusive, std::nullopt, 9, a.target},
                    core::Waiter{{602, ""}, LockMode::kExclusive, std::nullopt, 8, a.target}};
  report.blocked_sessions = 2;
  const std::string text = core::RenderTree(f.snapshot(), report, core::TreeRenderOptions{200, false});

  const std::string header = LineWith(text, "cycle");
  EXPECT_EQ(header.rfind(
                "possible cycle (soft edges only, may be an artifact of queue order): 601 -> 602 -> 601", 0),
            0u)
      << text;
  EXPECT_EQ(text.find("deadlock cycle"), std::string::npos);
  EXPECT_NE(LineWith(text, "- 601 |").find("soft: queued behind 602 (wants ExclusiveLock) (order uncertain)"),
            std::string::npos)
      << text;
}

TEST(TreeRenderTest, PreparedTransactionRootShowsGidOwnerDatabaseAndAge) {
  SnapshotFixture f;
  f.Session(701, "active", "update t set v = v + 1 where id = 3", 20, "bob", "batch")
      .Prepared("gx1", 8001, 120)
      .WaitsXid(701, 8001, 20);
  const std::string text = Render(f.snapshot());

  const std::string root = LineWith(text, "ROOT");
  EXPECT_EQ(root.rfind("prepared transaction 'gx1' | prepared 120s ago | ROOT prepared:", 0), 0u) << text;
  EXPECT_NE(root.find("ROOT prepared: blocks 1 session (1 direct), depth 1"), std::string::npos) << root;
  EXPECT_NE(root.find("| owner=billing database=appdb"), std::string::npos) << root;
  EXPECT_NE(root.find("holds ExclusiveLock on transaction 8001"), std::string::npos) << root;
  const std::string waiter = LineWith(text, "- 701 |");
  EXPECT_NE(waiter.find("wants ShareLock on transaction 8001"), std::string::npos) << waiter;
  EXPECT_NE(waiter.find("hard: prepared transaction 'gx1' holds ExclusiveLock"), std::string::npos) << waiter;
  EXPECT_NE(waiter.find("user=bob app=batch"), std::string::npos);
}

TEST(TreeRenderTest, NoLockWaitsPrintsSessionsByState) {
  SnapshotFixture f;
  f.Session(801, "active", "select 1", 1)
      .Session(802, "idle", "select 2", 100)
      .Session(803, "idle in transaction", "select 3", 5)
      .Session(804, "active", "select 4", 2);
  f.mutable_snapshot().locks_read = false;
  const std::vector<std::string> lines = Lines(Render(f.snapshot()));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "PostgreSQL 15.18, captured_at 2026-11-25T13:45:00.123456Z, 4 sessions, 0 waiting");
  EXPECT_EQ(lines[1], "No lock waits");
  EXPECT_EQ(lines[2], "sessions by state: 2 active, 1 idle, 1 idle in transaction");
}

TEST(TreeRenderTest, NoLineIsLongerThanTheWidth) {
  SnapshotFixture f = DdlPileUp();
  // Long, multi-byte queries: cutting must respect code points as well as the width.
  for (core::Session& s : f.mutable_snapshot().sessions) {
    for (int i = 0; i < 20; ++i) s.query += " and name = 'Grüße, 東京' ";
  }
  for (int width : {20, 40, 80, 120}) {
    for (bool color : {false, true}) {
      const std::string text = Render(f.snapshot(), width, color);
      int cut = 0;
      for (const std::string& line : Lines(text)) {
        EXPECT_LE(Columns(line), width) << "width " << width << ": " << line;
        if (line.size() >= 3 && line.compare(line.size() - 3, 3, "...") == 0) {
          ++cut;
          const unsigned char before = static_cast<unsigned char>(line[line.size() - 4]);
          EXPECT_FALSE(before >= 0xC0) << "a UTF-8 sequence was cut: " << line;
        }
        if (!color) {
          EXPECT_EQ(line.find('\x1b'), std::string::npos);
        }
      }
      EXPECT_GT(cut, 0) << "width " << width << " should have cut the long queries";
      if (color) {
        EXPECT_NE(text.find("\x1b["), std::string::npos);
      }
    }
  }
}

TEST(TreeRenderTest, AtEightyColumnsTheStartOfTheLineSurvives) {
  const std::string text = Render(DdlPileUp().snapshot(), 80);
  for (const std::string& line : Lines(text)) EXPECT_LE(Columns(line), 80) << line;
  EXPECT_EQ(LineWith(text, "- 102 |")
                .rfind("`- 102 | waiting 30s | wants AccessExclusiveLock on relation public.t", 0),
            0u)
      << text;
}

TEST(TreeRenderTest, QueryWhitespaceCollapsesAndControlCharactersAreNeutralised) {
  SnapshotFixture f = DdlPileUp();
  for (core::Session& s : f.mutable_snapshot().sessions) {
    if (s.pid == 102) s.query = "  alter table t\n\t  add column x int;\r\n  -- done\n";
    if (s.pid == 103) s.application_name = "evil\x1b[2Japp";
  }
  const std::string text = Render(f.snapshot());
  const std::string alter = LineWith(text, "- 102 |");
  const std::string tail = " | alter table t add column x int; -- done";
  ASSERT_GT(alter.size(), tail.size());
  EXPECT_EQ(alter.substr(alter.size() - tail.size()), tail) << alter;
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_NE(LineWith(text, "- 103 |").find("app=evil?[2Japp"), std::string::npos);
}

struct UncertainCase {
  const char* name;
  int server_version_num;
  bool null_waitstart;
  bool uncertain;
};

class UncertainMarkerTest : public ::testing::TestWithParam<UncertainCase> {};

TEST_P(UncertainMarkerTest, SoftEdgesOfUnknownQueueOrderAreMarked) {
  const UncertainCase& c = GetParam();
  SnapshotFixture f = DdlPileUp(c.server_version_num);
  if (c.null_waitstart) {
    for (core::LockRow& r : f.mutable_snapshot().locks) r.waitstart.reset();
  }
  const std::string text = Render(f.snapshot());
  const std::string reader = LineWith(text, "- 103 |");
  EXPECT_NE(reader.find("soft: queued behind 102"), std::string::npos) << text;
  EXPECT_EQ(reader.find("(order uncertain)") != std::string::npos, c.uncertain) << text;
  EXPECT_EQ(LineWith(text, "- 102 |").find("uncertain"), std::string::npos)
      << "hard edges are certain: " << text;
}

INSTANTIATE_TEST_SUITE_P(Versions, UncertainMarkerTest,
                         ::testing::Values(UncertainCase{"pg15_waitstart", 150018, false, false},
                                           UncertainCase{"pg15_null_waitstart", 150018, true, true},
                                           UncertainCase{"pg13_no_waitstart", 130011, false, true}),
                         [](const ::testing::TestParamInfo<UncertainCase>& param_info) {
                           return param_info.param.name;
                         });

struct TimestampCase {
  core::TimestampUs us;
  const char* text;
};

TEST(FormatTimestampUtcTest, FormatsUtcWithMicroseconds) {
  const TimestampCase cases[] = {
      {0, "1970-01-01T00:00:00.000000Z"},
      {kNow, "2026-11-25T13:45:00.123456Z"},
      {-1, "1969-12-31T23:59:59.999999Z"},
      {1709164800000001, "2024-02-29T00:00:00.000001Z"},
      {951782400000000, "2000-02-29T00:00:00.000000Z"},
      {4102444799999999, "2099-12-31T23:59:59.999999Z"},
  };
  for (const TimestampCase& c : cases) EXPECT_EQ(core::FormatTimestampUtc(c.us), c.text) << c.us;
}

}  // namespace
}  // namespace lockwatch::app_test
