// The lock scenarios of the reference (postgres-locks.md, section 9), reproduced on a real PostgreSQL 15:
// each test builds the situation with real sessions, polls it with lockwatch's collector, analyses it with
// the core, and checks the edges, roots and cycles — and that for every session lockwatch's blockers are
// exactly the set pg_blocking_pids() reports, PostgreSQL itself being the oracle.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/pg_fixture.h"
#include "tests/testing/pg_harness.h"

namespace lockwatch::integration {
namespace {

using core::EdgeKind;
using testing::PgSession;
using Strings = std::vector<std::string>;

constexpr EdgeKind kHard = EdgeKind::kHard;
constexpr EdgeKind kSoft = EdgeKind::kSoft;

class ScenarioTest : public PgFixture {
 protected:
  // Sends `sql` on `session` and waits until it blocks on a heavyweight lock with waitstart recorded.
  void SendAndWait(PgSession& session, const std::string& sql) {
    session.Send(sql);
    testing::WaitUntilWaiting(observer(), session, kWaitTimeout);
  }
};

TEST_F(ScenarioTest, S1RowUpdateWaitsForIdleTransaction) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1");
  SendAndWait(b, "UPDATE t SET v = v + 1 WHERE id = 1");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "A", kHard}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_in_transaction"}));
  EXPECT_TRUE(OurCycles(report).empty());
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 1);
}

TEST_F(ScenarioTest, S1bWaitOnSubtransactionXidMapsToTopLevelSession) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("BEGIN; UPDATE t SET v = v WHERE id = 9; SAVEPOINT s1; UPDATE t SET v = v + 1 WHERE id = 5");
  SendAndWait(b, "UPDATE t SET v = v + 1 WHERE id = 5");

  // The scenario is only meaningful if B really waits on a sub-transaction xid, not on A's top-level xid.
  const std::string waited = observer()
                                 .ExecScalar(
                                     "SELECT transactionid::text FROM pg_locks WHERE NOT granted AND "
                                     "locktype = 'transactionid' AND pid = " +
                                     std::to_string(b.pid()))
                                 .value_or("");
  const std::string top =
      observer()
          .ExecScalar("SELECT backend_xid::text FROM pg_stat_activity WHERE pid = " + std::to_string(a.pid()))
          .value_or("");
  ASSERT_FALSE(waited.empty());
  ASSERT_FALSE(top.empty());
  EXPECT_NE(waited, top);

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "A", kHard}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_in_transaction"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 1);
}

TEST_F(ScenarioTest, S2TupleLockQueueChainsThroughFirstWaiterAndIgnoresSIRead) {
  PgSession& e = Open("E");
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  PgSession& c = Open("C");
  PgSession& d = Open("D");
  e.Exec("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT * FROM t WHERE id = 1");
  a.Exec("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1");
  SendAndWait(b, "UPDATE t SET v = v + 1 WHERE id = 1");
  SendAndWait(c, "UPDATE t SET v = v + 1 WHERE id = 1");
  SendAndWait(d, "SELECT * FROM t WHERE id = 1 FOR UPDATE");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report),
            EdgeStrings({{"B", "A", kHard}, {"C", "B", kHard}, {"D", "B", kHard}, {"D", "C", kSoft}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_in_transaction"}));
  EXPECT_TRUE(OurCycles(report).empty());
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 3);
}

TEST_F(ScenarioTest, S3ForUpdateChainOfThreeLevels) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  PgSession& c = Open("C");
  a.Exec("BEGIN; SELECT * FROM t WHERE id = 1 FOR UPDATE");
  b.Exec("BEGIN; SELECT * FROM t WHERE id = 2 FOR UPDATE");
  SendAndWait(b, "SELECT * FROM t WHERE id = 1 FOR UPDATE");
  c.Exec("BEGIN; SELECT * FROM t WHERE id = 3 FOR UPDATE");
  SendAndWait(c, "SELECT * FROM t WHERE id = 2 FOR UPDATE");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "A", kHard}, {"C", "B", kHard}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_in_transaction"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 2);
}

TEST_F(ScenarioTest, S4DdlPileUpReadersQueueBehindAlterNotBehindHolder) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  PgSession& c = Open("C");
  PgSession& d = Open("D");
  a.Exec("BEGIN; SELECT count(*) FROM t");
  SendAndWait(b, "ALTER TABLE t ADD COLUMN x int");
  SendAndWait(c, "SELECT count(*) FROM t");
  SendAndWait(d, "SELECT count(*) FROM t");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "A", kHard}, {"C", "B", kSoft}, {"D", "B", kSoft}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_in_transaction"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 3);
}

TEST_F(ScenarioTest, S5CompatibleRequestQueuesBehindConflictingWaiter) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  PgSession& c = Open("C");
  PgSession& d = Open("D");
  a.Exec("BEGIN; LOCK t3 IN SHARE MODE");
  b.Exec("BEGIN");
  SendAndWait(b, "LOCK t3 IN ROW EXCLUSIVE MODE");
  c.Exec("BEGIN");
  SendAndWait(c, "LOCK t3 IN SHARE MODE");
  d.Exec("BEGIN; LOCK t3 IN ACCESS SHARE MODE");  // granted at once: conflicts with nothing held or queued

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "A", kHard}, {"C", "B", kSoft}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_in_transaction"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 2);
}

TEST_F(ScenarioTest, S6UpgradeJumpsAheadOfConflictingWaiter) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  PgSession& c = Open("C");
  a.Exec("BEGIN; LOCK t4 IN ACCESS SHARE MODE");
  b.Exec("BEGIN; LOCK t4 IN ACCESS SHARE MODE");
  c.Exec("BEGIN");
  SendAndWait(c, "LOCK t4 IN ACCESS EXCLUSIVE MODE");
  SendAndWait(a, "LOCK t4 IN ACCESS EXCLUSIVE MODE");

  core::Report report = PollAndAnalyze();
  // Naive arrival order would add A->C (soft) and a fake A<->C cycle.
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"A", "B", kHard}, {"C", "A", kHard}, {"C", "B", kHard}}));
  EXPECT_EQ(OurRoots(report), Strings({"B idle_in_transaction"}));
  EXPECT_TRUE(OurCycles(report).empty());
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 2);
}

TEST_F(ScenarioTest, S7PreparedTransactionIsRootNamedByGid) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  const std::string gid = gid_prefix() + "gx1";
  a.Exec("BEGIN; UPDATE t SET v = v + 1 WHERE id = 3; PREPARE TRANSACTION '" + gid + "'");
  SendAndWait(b, "UPDATE t SET v = v + 1 WHERE id = 3");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "prepared:" + gid, kHard}}));
  EXPECT_EQ(OurRoots(report), Strings({"prepared:" + gid + " prepared"}));
  EXPECT_EQ(testing::BlockingPids(observer(), b.pid()), std::vector<int32_t>({0}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 1);
}

TEST_F(ScenarioTest, S8AdvisoryLocksSharedWaiterBehindExclusiveWaiter) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  PgSession& c = Open("C");
  PgSession& d = Open("D");
  a.Exec("SELECT pg_advisory_lock(42)");
  SendAndWait(b, "SELECT pg_advisory_lock(42)");
  SendAndWait(c, "SELECT pg_advisory_lock_shared(42)");
  d.Exec("SELECT pg_advisory_lock(4294967297), pg_advisory_lock(1, 2)");  // other keys: not blocked

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "A", kHard}, {"C", "A", kHard}, {"C", "B", kSoft}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_advisory"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 2);
  // Session-level advisory locks outlive the transaction: release them so the next test starts clean.
  a.Exec("SELECT pg_advisory_unlock_all()");
}

TEST_F(ScenarioTest, S9DeadlockIsCycleWithoutRoot) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("SET deadlock_timeout = '60s'; BEGIN; UPDATE t SET v = v + 1 WHERE id = 1");
  b.Exec("SET deadlock_timeout = '60s'; BEGIN; UPDATE t SET v = v + 1 WHERE id = 2");
  SendAndWait(a, "UPDATE t SET v = v + 1 WHERE id = 2");
  SendAndWait(b, "UPDATE t SET v = v + 1 WHERE id = 1");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"A", "B", kHard}, {"B", "A", kHard}}));
  EXPECT_TRUE(OurRoots(report).empty());
  EXPECT_EQ(OurCycles(report), Strings({"A,B hard"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 2);
}

TEST_F(ScenarioTest, S10ParallelWorkersFoldIntoTheirLeader) {
  testing::ResetScenarioSchema(observer(), schema(), {/*big_table=*/true});
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  PgSession& c = Open("C");
  a.Exec(
      "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;"
      "SET min_parallel_table_scan_size = 0; SET parallel_leader_participation = on");
  // Sanity: the plan is parallel with two workers, otherwise this test proves nothing.
  const testing::Rows plan = a.Exec("EXPLAIN SELECT count(*) FROM big WHERE slow_true(id)");
  std::string plan_text;
  for (const testing::Row& row : plan) plan_text += row[0].value_or("") + "\n";
  ASSERT_NE(plan_text.find("Workers Planned: 2"), std::string::npos) << plan_text;
  // About 100 s of pg_sleep spread over three processes: far longer than the test, which cancels it.
  a.Send("SELECT count(*) FROM big WHERE slow_true(id)");
  testing::WaitUntilParallelWorkers(observer(), a.pid(), 2, kWaitTimeout);
  // A worker shows in pg_stat_activity before it opens `big`: wait until all three hold their lock, so that
  // B's request queues behind all of them.
  testing::WaitUntilTrue(
      observer(),
      "SELECT count(DISTINCT l.pid) = 3 FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
      "WHERE l.relation = '" +
          schema() +
          ".big'::regclass AND l.granted AND "
          "l.mode = 'AccessShareLock' AND coalesce(a.leader_pid, a.pid) = " +
          std::to_string(a.pid()),
      "the leader and both workers hold AccessShareLock on big", kWaitTimeout);
  b.Exec("BEGIN");
  SendAndWait(b, "LOCK big IN ACCESS EXCLUSIVE MODE");
  SendAndWait(c, "SELECT count(*) FROM big");

  // Leader and both workers hold AccessShareLock: the server names the leader once per PROCLOCK.
  EXPECT_EQ(testing::BlockingPids(observer(), b.pid()), std::vector<int32_t>({a.pid(), a.pid(), a.pid()}));
  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "A", kHard}, {"C", "B", kSoft}}));
  EXPECT_EQ(OurRoots(report), Strings({"A active"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 2);
  // The workers are still running: the graph was built while they held their own locks.
  testing::WaitUntilParallelWorkers(observer(), a.pid(), 2, kWaitTimeout);
}

TEST_F(ScenarioTest, S11CreateIndexConcurrentlyWaitsForLockerVxid) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("BEGIN; INSERT INTO t2 VALUES (2, 2)");
  SendAndWait(b, "CREATE INDEX CONCURRENTLY ON t2(v)");
  EXPECT_EQ(
      observer()
          .ExecScalar("SELECT locktype FROM pg_locks WHERE NOT granted AND pid = " + std::to_string(b.pid()))
          .value_or(""),
      "virtualxid");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "A", kHard}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_in_transaction"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 1);
}

TEST_F(ScenarioTest, S11bCreateIndexConcurrentlyWaitsForOlderSnapshot) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM other");
  SendAndWait(b, "CREATE INDEX CONCURRENTLY ON t2(v)");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "A", kHard}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_in_transaction"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 1);
}

TEST_F(ScenarioTest, S12MultixactWaiterSeesOneShareLockerAtATime) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  PgSession& c = Open("C");
  a.Exec("BEGIN; SELECT * FROM t WHERE id = 6 FOR SHARE");
  b.Exec("BEGIN; SELECT * FROM t WHERE id = 6 FOR SHARE");
  SendAndWait(c, "UPDATE t SET v = v + 1 WHERE id = 6");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"C", "A", kHard}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_in_transaction"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 1);

  // When A ends, C moves on to the next share locker.
  a.Exec("ROLLBACK");
  testing::WaitUntilWaiting(observer(), c, kWaitTimeout);
  report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"C", "B", kHard}}));
  EXPECT_EQ(OurRoots(report), Strings({"B idle_in_transaction"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 1);
}

TEST_F(ScenarioTest, S13ForestOfTwoTreesRootsOrderedByBlockedCount) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  PgSession& c = Open("C");
  PgSession& d = Open("D");
  PgSession& e = Open("E");
  a.Exec("BEGIN; UPDATE t SET v = v + 1 WHERE id = 7");
  SendAndWait(b, "UPDATE t SET v = v + 1 WHERE id = 7");
  c.Exec("SELECT pg_advisory_lock(7)");
  SendAndWait(d, "SELECT pg_advisory_lock(7)");
  SendAndWait(e, "SELECT pg_advisory_lock(7)");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report),
            EdgeStrings({{"B", "A", kHard}, {"D", "C", kHard}, {"E", "C", kHard}, {"E", "D", kSoft}}));
  // C blocks two sessions, A one: C comes first.
  EXPECT_EQ(OurRoots(report), Strings({"C idle_advisory", "A idle_in_transaction"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 3);
  c.Exec("SELECT pg_advisory_unlock_all()");
}

TEST_F(ScenarioTest, S14SafeSnapshotWaitIsNotALockEdge) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("BEGIN ISOLATION LEVEL SERIALIZABLE; UPDATE t SET v = v + 1 WHERE id = 8");
  b.Exec("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE");
  b.Send("SELECT count(*) FROM t");
  testing::WaitUntilWaitEvent(observer(), b.pid(), "IPC", "SafeSnapshot", kWaitTimeout);

  EXPECT_TRUE(testing::BlockingPids(observer(), b.pid()).empty());
  EXPECT_EQ(testing::SafeSnapshotBlockingPids(observer(), b.pid()), std::vector<int32_t>({a.pid()}));
  core::Report report = PollAndAnalyze();
  EXPECT_TRUE(OurEdges(report).empty());
  EXPECT_TRUE(OurRoots(report).empty());
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 0);
}

TEST_F(ScenarioTest, S15DuplicateKeyInsertWaitsForInserter) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("BEGIN; INSERT INTO t VALUES (100, 0)");
  SendAndWait(b, "INSERT INTO t VALUES (100, 0)");

  core::Report report = PollAndAnalyze();
  EXPECT_EQ(OurEdges(report), EdgeStrings({{"B", "A", kHard}}));
  EXPECT_EQ(OurRoots(report), Strings({"A idle_in_transaction"}));
  EXPECT_EQ(ExpectBlockersMatchPgBlockingPids(report), 1);
}

}  // namespace
}  // namespace lockwatch::integration
