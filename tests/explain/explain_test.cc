#include "agent/core/explain.h"

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/analysis.h"

#include "tests/testing/snapshot_builder.h"

namespace lockwatch::core {
namespace {

using testing::Sec;
using testing::SnapshotBuilder;
using Strings = std::vector<std::string>;

constexpr uint32_t kDb = 5;
constexpr uint32_t kTable = 16384;
constexpr TimestampUs kNow = Sec(10000);

// Sets session fields the builder has no setter for.
void Edit(Snapshot& snapshot, int32_t pid, const std::function<void(Session&)>& edit) {
  for (Session& s : snapshot.sessions) {
    if (s.pid == pid) edit(s);
  }
}

void Who(Snapshot& snapshot, int32_t pid, const std::string& user, const std::string& app,
         const std::string& client) {
  Edit(snapshot, pid, [&](Session& s) {
    s.usename = user;
    s.application_name = app;
    s.client_addr = client;
  });
}

// S1: an idle transaction updated a row, another session waits for its xid.
Snapshot IdleInTransaction() {
  Snapshot s = SnapshotBuilder()
                   .Now(kNow)
                   .Session(101)
                   .State("idle in transaction")
                   .StateChange(kNow - Sec(720))
                   .Query("update accounts set balance = 0 where id = 1")
                   .Session(102)
                   .State("active")
                   .Query("update accounts set balance = 1 where id = 1")
                   .Lock(101)
                   .TransactionId(731)
                   .Mode("ExclusiveLock")
                   .Granted()
                   .Lock(102)
                   .TransactionId(731)
                   .Mode("ShareLock")
                   .Waiting(kNow - Sec(30))
                   .Build();
  Who(s, 101, "alice", "billing", "10.0.0.5");
  Edit(s, 101, [](Session& x) { x.xact_start = kNow - Sec(900); });
  return s;
}

// S4: ALTER TABLE queued behind an idle reader, two readers queued behind the ALTER.
Snapshot DdlPileUp() {
  return SnapshotBuilder()
      .Now(kNow)
      .RelationName(kDb, kTable, "public.t")
      .Session(101)
      .State("idle in transaction")
      .StateChange(kNow - Sec(60))
      .Query("select count(*) from t")
      .Session(102)
      .Query("/* deploy */ alter table t add column x int")
      .Session(103)
      .Query("select count(*) from t")
      .Session(104)
      .Query("select count(*) from t")
      .Lock(101)
      .Relation(kDb, kTable)
      .Mode("AccessShareLock")
      .Granted()
      .Lock(102)
      .Relation(kDb, kTable)
      .Mode("AccessExclusiveLock")
      .Waiting(kNow - Sec(30))
      .Lock(103)
      .Relation(kDb, kTable)
      .Mode("AccessShareLock")
      .Waiting(kNow - Sec(20))
      .Lock(104)
      .Relation(kDb, kTable)
      .Mode("AccessShareLock")
      .Waiting(kNow - Sec(10))
      .Build();
}

Snapshot LongRunning() {
  Snapshot s = SnapshotBuilder()
                   .Now(kNow)
                   .RelationName(kDb, kTable, "public.t")
                   .Session(101)
                   .State("active")
                   .Query("update t set v = v + 1")
                   .Session(102)
                   .Query("lock table t in exclusive mode")
                   .Lock(101)
                   .Relation(kDb, kTable)
                   .Mode("RowExclusiveLock")
                   .Granted()
                   .Lock(102)
                   .Relation(kDb, kTable)
                   .Mode("ExclusiveLock")
                   .Waiting(kNow - Sec(5))
                   .Build();
  Edit(s, 101, [](Session& x) {
    x.query_start = kNow - Sec(300);
    x.xact_start = kNow - Sec(300);
  });
  return s;
}

Snapshot PreparedRoot() {
  Snapshot s = SnapshotBuilder()
                   .Now(kNow)
                   .Prepared(900, "it's gx1")
                   .Session(102)
                   .Query("update t set v = 1 where id = 3")
                   .PreparedLock("-1/900")
                   .TransactionId(900)
                   .Mode("ExclusiveLock")
                   .Granted()
                   .Lock(102)
                   .TransactionId(900)
                   .Mode("ShareLock")
                   .Waiting(kNow - Sec(40))
                   .Build();
  s.prepared[0].owner = "billing_tm";
  s.prepared[0].database = "appdb";
  s.prepared[0].prepared = kNow - Sec(3600);
  return s;
}

Snapshot AdvisoryHolder() {
  return SnapshotBuilder()
      .Now(kNow)
      .Session(101)
      .State("idle")
      .StateChange(kNow - Sec(95))
      .Query("select pg_advisory_lock(42)")
      .Session(102)
      .Query("select pg_advisory_lock(42)")
      .Lock(101)
      .Advisory(kDb, 42)
      .Mode("ExclusiveLock")
      .Granted()
      .Lock(102)
      .Advisory(kDb, 42)
      .Mode("ExclusiveLock")
      .Waiting(kNow - Sec(9))
      .Build();
}

// S11b: a repeatable-read transaction keeps an old snapshot; CREATE INDEX CONCURRENTLY waits for its vxid.
Snapshot CicWaitsForSnapshot() {
  Snapshot s = SnapshotBuilder()
                   .Now(kNow)
                   .Session(101)
                   .State("idle in transaction")
                   .StateChange(kNow - Sec(50))
                   .Query("select * from other")
                   .Session(102)
                   .Query("create index concurrently on t2(v)")
                   .Lock(101)
                   .VirtualXid("3/7")
                   .Mode("ExclusiveLock")
                   .Granted()
                   .Lock(102)
                   .VirtualXid("3/7")
                   .Mode("ShareLock")
                   .Waiting(kNow - Sec(20))
                   .Build();
  Edit(s, 101, [](Session& x) { x.xact_start = kNow - Sec(65); });
  return s;
}

Snapshot Autovacuum(bool wraparound) {
  Snapshot s = SnapshotBuilder()
                   .Now(kNow)
                   .RelationName(kDb, kTable, "public.t")
                   .Session(101)
                   .Query(wraparound ? "autovacuum: VACUUM public.t (to prevent wraparound)"
                                     : "autovacuum: VACUUM ANALYZE public.t")
                   .Session(102)
                   .Query("truncate t")
                   .Lock(101)
                   .Relation(kDb, kTable)
                   .Mode("ShareUpdateExclusiveLock")
                   .Granted()
                   .Lock(102)
                   .Relation(kDb, kTable)
                   .Mode("AccessExclusiveLock")
                   .Waiting(kNow - Sec(3))
                   .Build();
  Edit(s, 101, [](Session& x) { x.backend_type = "autovacuum worker"; });
  return s;
}

Snapshot Deadlock() {
  Snapshot s = SnapshotBuilder()
                   .Now(kNow)
                   .Session(201)
                   .Session(202)
                   .Lock(201)
                   .TransactionId(1)
                   .Mode("ExclusiveLock")
                   .Granted()
                   .Lock(202)
                   .TransactionId(2)
                   .Mode("ExclusiveLock")
                   .Granted()
                   .Lock(201)
                   .TransactionId(2)
                   .Mode("ShareLock")
                   .Waiting(kNow - Sec(70))
                   .Lock(202)
                   .TransactionId(1)
                   .Mode("ShareLock")
                   .Waiting(kNow - Sec(65))
                   .Build();
  s.settings.push_back({"deadlock_timeout", "1s"});
  return s;
}

// One inserter holds the extension lock of t, `waiters` wait for it.
Snapshot Extension(int waiters) {
  SnapshotBuilder b;
  b.Now(kNow).RelationName(kDb, kTable, "public.t").Session(300).Query("insert into t select ...");
  for (int i = 1; i <= waiters; ++i) b.Session(300 + i).Query("insert into t select ...");
  b.Lock(300).Extend(kDb, kTable).Mode("ExclusiveLock").Granted();
  for (int i = 1; i <= waiters; ++i) {
    b.Lock(300 + i).Extend(kDb, kTable).Mode("ExclusiveLock").Waiting(kNow - Sec(1));
  }
  Snapshot s = b.Build();
  for (int i = 1; i <= waiters; ++i) {
    Edit(s, 300 + i, [](Session& x) {
      x.wait_event_type = "Lock";
      x.wait_event = "extend";
    });
  }
  return s;
}

// Sessions reported waiting on extend, without the pg_locks rows (the holder already released it).
Snapshot ExtensionWithoutLocks(int waiters) {
  SnapshotBuilder b;
  b.Now(kNow);
  for (int i = 1; i <= waiters; ++i) b.Session(400 + i);
  Snapshot s = b.Build();
  for (Session& x : s.sessions) {
    x.wait_event_type = "Lock";
    x.wait_event = "extend";
  }
  return s;
}

Snapshot LockManager(int waiters, const std::string& event = "LockManager") {
  SnapshotBuilder b;
  b.Now(kNow);
  for (int i = 1; i <= waiters; ++i) b.Session(500 + i).Query("select * from parted");
  Snapshot s = b.Build();
  s.locks_read = false;
  for (Session& x : s.sessions) {
    x.wait_event_type = "LWLock";
    x.wait_event = event;
  }
  return s;
}

Snapshot WalsenderRoot() {
  Snapshot s = SnapshotBuilder()
                   .Now(kNow)
                   .RelationName(kDb, kTable, "public.t")
                   .Session(101)
                   .State("")
                   .Session(102)
                   .Query("drop table t")
                   .Lock(101)
                   .Relation(kDb, kTable)
                   .Mode("AccessShareLock")
                   .Granted()
                   .Lock(102)
                   .Relation(kDb, kTable)
                   .Mode("AccessExclusiveLock")
                   .Waiting(kNow - Sec(3))
                   .Build();
  Edit(s, 101, [](Session& x) { x.backend_type = "walsender"; });
  return s;
}

struct Case {
  const char* name;
  std::function<Snapshot()> snapshot;
  Strings kinds;                    // ExplanationKindName of every finding, in order
  std::vector<int32_t> first_pids;  // pids of the first finding
  Strings situation_has;            // substrings of the first finding's situation
  Strings remedy_has;               // substrings of the first finding's remedy
};

class ExplainTest : public ::testing::TestWithParam<Case> {};

TEST_P(ExplainTest, NamesTheSituationAndTheRemedy) {
  const Case& c = GetParam();
  const Snapshot snapshot = c.snapshot();
  const Report report = Analyze(snapshot);
  const std::vector<Explanation> found = Explain(snapshot, report);
  Strings kinds;
  for (const Explanation& f : found) kinds.push_back(ExplanationKindName(f.kind));
  ASSERT_EQ(kinds, c.kinds);
  const Explanation& first = found.front();
  EXPECT_EQ(first.pids, c.first_pids);
  for (const std::string& s : c.situation_has) {
    EXPECT_NE(first.situation.find(s), std::string::npos) << "'" << s << "' not in: " << first.situation;
  }
  for (const std::string& s : c.remedy_has) {
    EXPECT_NE(first.remedy.find(s), std::string::npos) << "'" << s << "' not in: " << first.remedy;
  }
  for (const Explanation& f : found) {
    for (const std::string* text : {&f.situation, &f.remedy}) {
      EXPECT_FALSE(text->empty());
      EXPECT_EQ(text->find('\n'), std::string::npos) << *text;
      // Query text stays out of explanations (it can carry secrets and is shown elsewhere).
      for (const Session& s : snapshot.sessions) {
        if (!s.query.empty()) {
          EXPECT_EQ(text->find(s.query), std::string::npos) << *text;
        }
      }
    }
  }
  // Root-bound findings come in root order, each root at least once.
  for (const Root& root : report.roots) EXPECT_FALSE(ExplanationsFor(found, root.node).empty());
}

INSTANTIATE_TEST_SUITE_P(
    Situations, ExplainTest,
    ::testing::Values(
        Case{"IdleInTransactionHolder",
             IdleInTransaction,
             {"idle_in_transaction_holder"},
             {},
             {"pid 101 (alice, app billing, client 10.0.0.5)", "idle in transaction for 12m00s",
              "transaction open 15m00s", "blocks 1 session"},
             {"SELECT pg_terminate_backend(101)", "idle_in_transaction_session_timeout"}},
        Case{"DdlAmplifierThenTheHolder",
             DdlPileUp,
             {"ddl_amplifier", "idle_in_transaction_holder"},
             {102},
             {"ALTER TABLE by pid 102", "AccessExclusiveLock on public.t", "behind pid 101",
              "2 sessions queue behind the DDL"},
             {"SELECT pg_cancel_backend(102)", "SET lock_timeout = '2s'"}},
        Case{"LongRunningStatement",
             LongRunning,
             {"long_running_statement"},
             {},
             {"UPDATE by pid 101", "running for 5m00s"},
             {"SELECT pg_cancel_backend(101)", "statement_timeout"}},
        Case{"OrphanedPreparedTransactionNamedByGidWithQuotesDoubled",
             PreparedRoot,
             {"orphaned_prepared_xact"},
             {},
             {"prepared transaction 'it''s gx1' prepared 1h00m ago by billing_tm in database appdb"},
             {"ROLLBACK PREPARED 'it''s gx1'", "COMMIT PREPARED 'it''s gx1'", "in database appdb"}},
        Case{"SessionLevelAdvisoryLock",
             AdvisoryHolder,
             {"advisory_lock_holder"},
             {},
             {"is idle for 1m35s", "advisory key 42"},
             {"pg_advisory_unlock", "SELECT pg_terminate_backend(101)"}},
        Case{"CreateIndexConcurrentlyWaitsForOldSnapshotThenTheHolder",
             CicWaitsForSnapshot,
             {"cic_waiting_for_snapshots", "idle_in_transaction_holder"},
             {102},
             {"CREATE INDEX CONCURRENTLY by pid 102", "transaction of pid 101 (open 1m05s)"},
             {"pg_terminate_backend(101)", "INVALID index"}},
        Case{"AutovacuumInTheWay",
             [] { return Autovacuum(false); },
             {"autovacuum_blocking"},
             {},
             {"autovacuum pid 101", "deadlock_timeout"},
             {"SELECT pg_cancel_backend(101)"}},
        Case{"AntiWraparoundAutovacuumIsNotCancelledAutomatically",
             [] { return Autovacuum(true); },
             {"autovacuum_blocking"},
             {},
             {"(to prevent wraparound)", "not cancelled automatically"},
             {"let it finish"}},
        Case{"DeadlockFormingBeforeDeadlockTimeout",
             Deadlock,
             {"deadlock_forming"},
             {201, 202},
             {"sessions 201 and 202 wait for each other", "1s"},
             {"SELECT pg_cancel_backend(201)"}},
        Case{"ExtensionLockHolderAndItsWaiters",
             [] { return Extension(3); },
             {"relation_extension_waits"},
             {301, 302, 303},
             {"3 sessions wait for pid 300 to finish extending public.t"},
             {"COPY"}},
        Case{"ExtensionWaitsSeenOnlyInActivity",
             [] { return ExtensionWithoutLocks(4); },
             {"relation_extension_waits"},
             {401, 402, 403, 404},
             {"4 sessions wait on Lock:extend"},
             {"partitions"}},
        Case{"LockManagerContention",
             [] { return LockManager(6); },
             {"lock_manager_contention"},
             {501, 502, 503, 504, 505, 506},
             {"6 sessions wait on LWLock:LockManager", "fast-path"},
             {"max_locks_per_transaction"}},
        Case{"LockManagerContentionOnOldServers",
             [] { return LockManager(5, "lock_manager"); },
             {"lock_manager_contention"},
             {501, 502, 503, 504, 505},
             {"5 sessions"},
             {"pooler"}},
        Case{"BackgroundProcessRoot",
             WalsenderRoot,
             {"unclassified_holder"},
             {},
             {"pid 101", "walsender"},
             {"pg_stat_activity WHERE pid = 101"}}),
    [](const ::testing::TestParamInfo<Case>& param) { return std::string(param.param.name); });

struct QuietCase {
  const char* name;
  std::function<Snapshot()> snapshot;
};

class ExplainQuietTest : public ::testing::TestWithParam<QuietCase> {};

TEST_P(ExplainQuietTest, BelowThresholdsNothingIsReported) {
  const Snapshot snapshot = GetParam().snapshot();
  EXPECT_TRUE(Explain(snapshot, Analyze(snapshot)).empty());
}

INSTANTIATE_TEST_SUITE_P(
    Thresholds, ExplainQuietTest,
    ::testing::Values(QuietCase{"TwoExtensionWaits", [] { return ExtensionWithoutLocks(2); }},
                      QuietCase{"FourLockManagerWaits", [] { return LockManager(4); }},
                      QuietCase{"NoWaits", [] { return SnapshotBuilder().Now(kNow).Build(); }}),
    [](const ::testing::TestParamInfo<QuietCase>& param) { return std::string(param.param.name); });

TEST(ExplainOptionsTest, ThresholdsAndLockTimeoutAreConfigurable) {
  ExplainOptions options;
  options.min_extension_waiters = 1;
  options.min_lock_manager_waiters = 1;
  options.ddl_lock_timeout = "500ms";
  Snapshot ext = ExtensionWithoutLocks(1);
  ASSERT_EQ(Explain(ext, Analyze(ext), options).size(), 1u);
  Snapshot lm = LockManager(1);
  ASSERT_EQ(Explain(lm, Analyze(lm), options).size(), 1u);
  Snapshot ddl = DdlPileUp();
  const auto found = Explain(ddl, Analyze(ddl), options);
  ASSERT_FALSE(found.empty());
  EXPECT_NE(found[0].remedy.find("SET lock_timeout = '500ms'"), std::string::npos) << found[0].remedy;
}

TEST(ExplainTextTest, ClientProvidedNamesCannotBreakTheLine) {
  Snapshot s = IdleInTransaction();
  Who(s, 101, "al\x1b[31mice", "bill\ning", "10.0.0.5");
  const auto found = Explain(s, Analyze(s));
  ASSERT_EQ(found.size(), 1u);
  for (char c : found[0].situation) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << found[0].situation;
}

TEST(ExplainTextTest, SoftOnlyCycleIsNotCalledADeadlock) {
  Report report;
  report.cycles.push_back(Cycle{{1, 2}, false});
  EXPECT_TRUE(Explain(SnapshotBuilder().Now(kNow).Build(), report).empty());
}

struct DurationCase {
  double seconds;
  const char* text;
};

class CompactDurationTest : public ::testing::TestWithParam<DurationCase> {};

TEST_P(CompactDurationTest, Formats) { EXPECT_EQ(CompactDuration(GetParam().seconds), GetParam().text); }

INSTANTIATE_TEST_SUITE_P(Durations, CompactDurationTest,
                         ::testing::Values(DurationCase{-3, "0s"}, DurationCase{0.9, "0s"},
                                           DurationCase{59.9, "59s"}, DurationCase{60, "1m00s"},
                                           DurationCase{725, "12m05s"}, DurationCase{3600, "1h00m"},
                                           DurationCase{11220, "3h07m"}, DurationCase{187200, "2d04h"}));

}  // namespace
}  // namespace lockwatch::core
