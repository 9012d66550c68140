// One behaviour of the graph construction per test: queue order, uncertainty, exclusions, lock groups,
// prepared transactions, deduplication, cycles. Assertions go through the public Analyze().

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/analysis.h"

#include "tests/core/report_strings.h"
#include "tests/testing/snapshot_builder.h"

namespace lockwatch::core {
namespace {

using testing::Sec;
using testing::SnapshotBuilder;
using Strings = std::vector<std::string>;

constexpr uint32_t kDb = 16384;
constexpr uint32_t kT = 16385;
constexpr uint32_t kT2 = 16390;

SnapshotBuilder Base(int version = 150000) {
  return SnapshotBuilder().Version(version).Now(Sec(1000)).RelationName(kDb, kT, "public.t");
}

// A holds AccessShare; B queues for AccessExclusive, C for AccessShare. C is soft-blocked by B only if B
// is ahead of it.
Snapshot DdlQueue(std::optional<TimestampUs> b_since, std::optional<TimestampUs> c_since) {
  SnapshotBuilder b = Base();
  b.Session(101).Session(102).Session(103);
  b.Lock(101).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(b_since);
  b.Lock(103).Relation(kDb, kT).Mode("AccessShareLock").Waiting(c_since);
  return b.Build();
}

TEST(WaitGraphTest, SoftBlockerQueuedAheadOfWaiter) {
  EXPECT_EQ(EdgeStrings(Analyze(DdlQueue(Sec(900), Sec(910)))), (Strings{"102->101 hard", "103->102 soft"}));
}

TEST(WaitGraphTest, CompatibleWaiterAheadOfConflictingOneIsNotBlockedByIt) {
  // C arrived first: it is not behind B, and B's request does not conflict with anything C asks.
  EXPECT_EQ(EdgeStrings(Analyze(DdlQueue(Sec(910), Sec(900)))), (Strings{"102->101 hard", "102->103 soft"}));
}

TEST(WaitGraphTest, TiedWaitstartMakesSoftEdgeUncertainAndBreaksTieByPid) {
  EXPECT_EQ(EdgeStrings(Analyze(DdlQueue(Sec(900), Sec(900)))), (Strings{"102->101 hard", "103->102 soft?"}));
}

TEST(WaitGraphTest, NullWaitstartIsNewestAndUncertain) {
  struct Case {
    const char* name;
    std::optional<TimestampUs> b_since;
    std::optional<TimestampUs> c_since;
    Strings edges;
  };
  const Case cases[] = {
      {"waiter NULL", Sec(900), std::nullopt, {"102->101 hard", "103->102 soft?"}},
      {"blocker NULL", std::nullopt, Sec(900), {"102->101 hard", "102->103 soft?"}},
      {"both NULL, by pid", std::nullopt, std::nullopt, {"102->101 hard", "103->102 soft?"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(EdgeStrings(Analyze(DdlQueue(c.b_since, c.c_since))), c.edges);
  }
}

TEST(WaitGraphTest, HardEdgesAreCertainEvenWithoutWaitstart) {
  for (const Edge& e : Analyze(DdlQueue(std::nullopt, std::nullopt)).edges) {
    if (e.kind == EdgeKind::kHard) {
      EXPECT_TRUE(e.certain);
    }
  }
}

// PG13 has no waitstart: state_change of the waiting session orders the queue, every soft edge is
// uncertain, hard edges stay exact.
Snapshot Pg13Queue(TimestampUs b_change, TimestampUs c_change) {
  SnapshotBuilder b = Base(130000);
  b.Session(101).State("idle in transaction").StateChange(Sec(100));
  b.Session(102).StateChange(b_change).Session(103).StateChange(c_change);
  b.Lock(101).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting();
  b.Lock(103).Relation(kDb, kT).Mode("AccessShareLock").Waiting();
  return b.Build();
}

TEST(WaitGraphTest, Pg13OrdersQueueByStateChangeAndFlagsSoftEdges) {
  EXPECT_EQ(EdgeStrings(Analyze(Pg13Queue(Sec(900), Sec(910)))),
            (Strings{"102->101 hard", "103->102 soft?"}));
  EXPECT_EQ(EdgeStrings(Analyze(Pg13Queue(Sec(910), Sec(900)))),
            (Strings{"102->101 hard", "102->103 soft?"}));
}

TEST(WaitGraphTest, Pg13WaitTimesUseStateChange) {
  const Report r = Analyze(Pg13Queue(Sec(900), Sec(910)));
  ASSERT_EQ(r.waiters.size(), 2u);
  EXPECT_EQ(r.waiters[0].since, Sec(900));
  EXPECT_DOUBLE_EQ(r.waiters[0].wait_seconds, 100.0);
  EXPECT_DOUBLE_EQ(r.roots[0].max_wait_seconds, 100.0);
  EXPECT_FALSE(r.edges[0].waiter_since.has_value());  // no waitstart column before 14
}

// S6: A and B hold AccessShare; C queues for AccessExclusive; then A asks for AccessExclusive too.
Snapshot QueueJump(bool a_holds) {
  SnapshotBuilder b = Base();
  b.Session(101).Session(102).Session(103);
  if (a_holds) b.Lock(101).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(103).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(900));
  b.Lock(101).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(910));
  return b.Build();
}

TEST(WaitGraphTest, HolderJumpsAheadOfConflictingWaiter) {
  const Report r = Analyze(QueueJump(true));
  EXPECT_EQ(EdgeStrings(r), (Strings{"101->102 hard", "103->101 hard", "103->102 hard"}));
  EXPECT_TRUE(r.cycles.empty());  // naive waitstart order would add 101->103 and a fake cycle
}

TEST(WaitGraphTest, WaiterHoldingNothingQueuesAtTheTail) {
  EXPECT_EQ(EdgeStrings(Analyze(QueueJump(false))),
            (Strings{"101->102 hard", "101->103 soft", "103->102 hard"}));
}

TEST(WaitGraphTest, JumpUsesModesHeldByTheLockGroup) {
  // The worker 201 of leader 101 holds AccessShare; 101 itself holds nothing but still jumps ahead of 103.
  SnapshotBuilder b = Base();
  b.Session(101).Session(201).LeaderPid(101).Session(102).Session(103);
  b.Lock(201).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(103).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(900));
  b.Lock(101).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(910));
  EXPECT_EQ(EdgeStrings(Analyze(b.Build())), (Strings{"101->102 hard", "103->101 hard", "103->102 hard"}));
}

TEST(WaitGraphTest, JumperStopsBeforeFirstConflictingWaiterOnly) {
  // Queue by arrival: 103 Share(900), 104 AccessExclusive(910), 101 RowExclusive(920). 101 holds
  // RowShare, which conflicts only with 104's request: 101 lands between 103 and 104.
  SnapshotBuilder b = Base();
  b.Session(100).Session(101).Session(103).Session(104);
  b.Lock(100).Relation(kDb, kT).Mode("ShareRowExclusiveLock").Granted();
  b.Lock(101).Relation(kDb, kT).Mode("RowShareLock").Granted();
  b.Lock(103).Relation(kDb, kT).Mode("ShareLock").Waiting(Sec(900));
  b.Lock(104).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(910));
  b.Lock(101).Relation(kDb, kT).Mode("RowExclusiveLock").Waiting(Sec(920));
  EXPECT_EQ(EdgeStrings(Analyze(b.Build())), (Strings{"101->100 hard", "101->103 soft", "103->100 hard",
                                                      "104->100 hard", "104->101 hard", "104->103 soft"}));
}

TEST(WaitGraphTest, FastPathRowsNeverBlockAndDuplicatesCollapse) {
  SnapshotBuilder b = Base();
  b.Session(101).Session(102).Session(103);
  // 101's AccessShare read twice while being transferred out of the fast path.
  b.Lock(101).Relation(kDb, kT).Mode("AccessShareLock").Granted().FastPath();
  b.Lock(101).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  // 103 only has a fast-path row (a stale read): it cannot conflict with a sleeping waiter.
  b.Lock(103).Relation(kDb, kT).Mode("RowExclusiveLock").Granted().FastPath();
  b.Lock(102).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(900));
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (Strings{"102->101 hard"}));
  EXPECT_EQ(r.edges[0].blocker_held, Bit(LockMode::kAccessShare));
}

TEST(WaitGraphTest, NonAdjacentRowsOfOneHolderFormOneProclock) {
  // 101's two granted modes and its upgrade request are scattered among other rows: still one holder
  // that holds AccessShare+RowExclusive and jumps the queue with them.
  SnapshotBuilder b = Base();
  b.Session(101).Session(102).Session(103);
  b.Lock(101).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(103).Relation(kDb, kT).Mode("ShareLock").Waiting(Sec(900));
  b.Lock(101).Relation(kDb, kT).Mode("RowExclusiveLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("RowShareLock").Granted();
  b.Lock(101).Relation(kDb, kT).Mode("ExclusiveLock").Waiting(Sec(910));
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (Strings{"101->102 hard", "103->101 hard"}));
  EXPECT_EQ(r.edges[1].blocker_held, Bit(LockMode::kAccessShare) | Bit(LockMode::kRowExclusive));
  EXPECT_EQ(r.edges[1].blocker_wanted, LockMode::kExclusive);
}

TEST(WaitGraphTest, SIReadLocksNeverBlockNorCollideWithTupleKeys) {
  SnapshotBuilder b = Base();
  b.Session(105).Session(102).Session(103);
  b.Lock(105).Tuple(kDb, kT, 0, 1).Mode("SIReadLock").Granted();
  b.PreparedLock("-1/0").Tuple(kDb, kT, 0, 1).Mode("SIReadLock").Granted();  // summarized: pid NULL
  b.Lock(102).Tuple(kDb, kT, 0, 1).Mode("ExclusiveLock").Granted();
  b.Lock(103).Tuple(kDb, kT, 0, 1).Mode("AccessExclusiveLock").Waiting(Sec(900));
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (Strings{"103->102 hard"}));
  EXPECT_EQ(r.edges[0].blocker_held, Bit(LockMode::kExclusive));
}

TEST(WaitGraphTest, OwnSessionIsExcluded) {
  SnapshotBuilder b = Base();
  b.OwnPid(999).Session(999).Session(102).Session(103);
  b.Lock(999).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(900));
  b.Lock(999).Relation(kDb, kT2).Mode("AccessExclusiveLock").Waiting(Sec(900));
  b.Lock(103).Relation(kDb, kT2).Mode("AccessExclusiveLock").Granted();
  const Report r = Analyze(b.Build());
  EXPECT_TRUE(r.edges.empty());
  EXPECT_EQ(WaiterStrings(r), (Strings{"102"}));
  EXPECT_TRUE(r.unknown_pids.empty());
}

TEST(WaitGraphTest, UnknownPidIsKeptAsRawPidAndReported) {
  SnapshotBuilder b = Base();
  b.Session(102).Session(104);
  b.Lock(300).Relation(kDb, kT).Mode("AccessExclusiveLock").Granted();  // vanished from pg_stat_activity
  b.Lock(102).Relation(kDb, kT).Mode("AccessShareLock").Waiting(Sec(900));
  b.Lock(301).Relation(kDb, kT2).Mode("AccessShareLock").Waiting(Sec(950));  // waiter gone too
  b.Lock(104).Relation(kDb, kT2).Mode("AccessExclusiveLock").Granted();
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (Strings{"102->300 hard", "301->104 hard"}));
  EXPECT_EQ(RootStrings(r),
            (Strings{"104 active blocked=1 direct=1 depth=1", "300 other blocked=1 direct=1 depth=1"}));
  EXPECT_EQ(r.unknown_pids, (std::vector<int32_t>{300, 301}));
  EXPECT_DOUBLE_EQ(r.waiters[1].wait_seconds, 50.0);
}

TEST(WaitGraphTest, ExtendLockInsideLockGroupIsSkippedLikePgBlockingPids) {
  SnapshotBuilder b = Base();
  b.Session(101).Session(201).LeaderPid(101).Session(102);
  b.Lock(101).Extend(kDb, kT).Mode("ExclusiveLock").Granted();
  b.Lock(201).Extend(kDb, kT).Mode("ExclusiveLock").Waiting(Sec(900));
  b.Lock(102).Extend(kDb, kT).Mode("ExclusiveLock").Waiting(Sec(901));
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (Strings{"102->101 hard"}));
  EXPECT_EQ(r.edges[0].target.text, "extension of public.t");
  EXPECT_EQ(WaiterStrings(r), (Strings{"101", "102"}));  // the worker's wait is shown under its leader
}

TEST(WaitGraphTest, LockGroupFoldsToLeaderAndUnionsHeldModes) {
  SnapshotBuilder b = Base();
  b.Session(101).Session(201).LeaderPid(101).Session(202).LeaderPid(101).Session(102);
  b.Lock(101).Relation(kDb, kT).Mode("RowExclusiveLock").Granted();
  b.Lock(201).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(202).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(900));
  const Report r = Analyze(b.Build());
  ASSERT_EQ(EdgeStrings(r), (Strings{"102->101 hard"}));
  EXPECT_EQ(r.edges[0].blocker_held, Bit(LockMode::kAccessShare) | Bit(LockMode::kRowExclusive));
}

TEST(WaitGraphTest, WorkerWaitIsTheLeadersWait) {
  // A worker waiting on a lock makes its leader a waiting node; blockers come out in leader terms.
  SnapshotBuilder b = Base();
  b.Session(101).Session(201).LeaderPid(101).Session(102).State("idle in transaction");
  b.Lock(102).Relation(kDb, kT).Mode("AccessExclusiveLock").Granted();
  b.Lock(201).Relation(kDb, kT).Mode("AccessShareLock").Waiting(Sec(900));
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (Strings{"101->102 hard"}));
  EXPECT_EQ(WaiterStrings(r), (Strings{"101"}));
  EXPECT_EQ(RootStrings(r), (Strings{"102 idle_in_transaction blocked=1 direct=1 depth=1"}));
}

TEST(WaitGraphTest, HardBeatsSoftForTheSamePair) {
  // 101 holds AccessShare and queues for AccessExclusive ahead of 103: 103 is blocked by 101 both ways.
  SnapshotBuilder b = Base();
  b.Session(101).Session(102).Session(103);
  b.Lock(101).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(101).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(900));
  b.Lock(103)
      .Relation(kDb, kT)
      .Mode("AccessExclusiveLock")
      .Waiting(Sec(900));  // tie: soft would be uncertain
  const Report r = Analyze(b.Build());
  ASSERT_EQ(EdgeStrings(r), (Strings{"101->102 hard", "103->101 hard", "103->102 hard"}));
  EXPECT_EQ(r.edges[1].blocker_held, Bit(LockMode::kAccessShare));
  EXPECT_EQ(r.edges[1].blocker_wanted, LockMode::kAccessExclusive);
  EXPECT_TRUE(r.edges[1].certain);
}

TEST(WaitGraphTest, MultiplePreparedTransactionsAreDistinctBlockers) {
  SnapshotBuilder b = Base();
  b.Prepared(760, "gx1").Prepared(761, "gx2").Session(102);
  b.PreparedLock("3/24").TransactionId(760).Mode("ExclusiveLock").Granted();
  b.PreparedLock("3/24").Relation(kDb, kT).Mode("RowExclusiveLock").Granted();
  b.PreparedLock("-1/761").TransactionId(761).Mode("ExclusiveLock").Granted();
  b.PreparedLock("-1/761").Relation(kDb, kT).Mode("RowExclusiveLock").Granted();
  b.PreparedLock("4/2")
      .Relation(kDb, kT)
      .Mode("ShareUpdateExclusiveLock")
      .Granted();  // not in pg_prepared_xacts yet
  b.Lock(102).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(900));
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (Strings{"102->0:?4/2 hard", "102->0:gx1 hard", "102->0:gx2 hard"}));
  EXPECT_EQ(RootStrings(r), (Strings{"0:?4/2 prepared blocked=1 direct=1 depth=1",
                                     "0:gx1 prepared blocked=1 direct=1 depth=1",
                                     "0:gx2 prepared blocked=1 direct=1 depth=1"}));
  EXPECT_TRUE(r.unknown_pids.empty());
}

TEST(WaitGraphTest, PreparedTransactionHoldingTableLock) {
  SnapshotBuilder b = Base();
  b.Prepared(770, "lock-t").Session(102);
  b.PreparedLock("5/9").TransactionId(770).Mode("ExclusiveLock").Granted();
  b.PreparedLock("5/9").Relation(kDb, kT).Mode("AccessExclusiveLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("AccessShareLock").Waiting(Sec(900));
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (Strings{"102->0:lock-t hard"}));
  EXPECT_EQ(r.roots[0].classification, RootClass::kPrepared);
}

TEST(WaitGraphTest, SoftOnlyCycleIsReportedWithoutHardEdge) {
  // Two lock groups each waiting behind the other on different tables: soft edges both ways.
  SnapshotBuilder b = Base();
  b.Session(101).Session(201).LeaderPid(101).Session(102).Session(202).LeaderPid(102).Session(103).Session(
      104);
  b.Lock(103).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(100));
  b.Lock(101).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(200));
  b.Lock(104).Relation(kDb, kT2).Mode("AccessShareLock").Granted();
  b.Lock(201).Relation(kDb, kT2).Mode("AccessExclusiveLock").Waiting(Sec(100));
  b.Lock(202).Relation(kDb, kT2).Mode("AccessExclusiveLock").Waiting(Sec(200));
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (Strings{"101->102 soft", "101->103 hard", "101->104 hard", "102->101 soft",
                                     "102->103 hard", "102->104 hard"}));
  EXPECT_EQ(CycleStrings(r), (Strings{"101,102 soft"}));
}

TEST(WaitGraphTest, ThreeWayDeadlockIsOneHardCycle) {
  SnapshotBuilder b = Base();
  b.Session(101).Session(102).Session(103).Session(104);
  for (int i = 0; i < 3; ++i) {
    const int32_t pid = 101 + i;
    b.Lock(pid).TransactionId(static_cast<uint32_t>(700 + i)).Mode("ExclusiveLock").Granted();
    b.Lock(pid)
        .TransactionId(static_cast<uint32_t>(700 + (i + 1) % 3))
        .Mode("ShareLock")
        .Waiting(Sec(900 + i));
  }
  b.Lock(104).TransactionId(700).Mode("ShareLock").Waiting(Sec(950));  // waits on the cycle, not part of it
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (Strings{"101->102 hard", "102->103 hard", "103->101 hard", "104->101 hard"}));
  EXPECT_EQ(CycleStrings(r), (Strings{"101,102,103 hard"}));
  EXPECT_TRUE(r.roots.empty());
  EXPECT_EQ(r.blocked_sessions, 4);
}

TEST(WaitGraphTest, TargetKeyIncludesEveryIdentityColumnAndNulls) {
  // Same numbers in different columns or locktypes are different locks.
  SnapshotBuilder b = Base();
  b.Session(101).Session(102).Session(103).Session(104);
  b.Lock(101).Object(kDb, 1259, 16385, 0).Mode("AccessExclusiveLock").Granted();
  b.Lock(102).Relation(kDb, 16385).Mode("AccessShareLock").Waiting(Sec(900));
  b.Lock(103).Advisory2(kDb, 1259, 16385).Mode("ExclusiveLock").Granted();            // objsubid 2, not 0
  b.Lock(104).Object(kDb, 1259, 16385, 1).Mode("AccessShareLock").Waiting(Sec(900));  // column 1
  b.Lock(104).LockType("object").Database(kDb).ClassId(1259).ObjId(16385).Mode("AccessShareLock").Granted();
  const Report r = Analyze(b.Build());
  EXPECT_TRUE(r.edges.empty());
  EXPECT_EQ(WaiterStrings(r), (Strings{"102", "104"}));
}

TEST(WaitGraphTest, ManyCompatibleWaitersBehindOneConflictingWaiter) {
  // 10000 AccessShare waiters behind one queued AccessExclusive: one soft edge each, nothing between them.
  constexpr int kWaiters = 10000;
  SnapshotBuilder b = Base();
  b.Session(100).State("idle in transaction").Session(101);
  b.Lock(100).Relation(kDb, kT).Mode("AccessShareLock").Granted();
  b.Lock(101).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(1));
  for (int i = 0; i < kWaiters; ++i) {
    b.Session(1000 + i).Lock(1000 + i).Relation(kDb, kT).Mode("AccessShareLock").Waiting(Sec(2 + i % 7));
  }
  const Report r = Analyze(b.Build());
  ASSERT_EQ(r.edges.size(), static_cast<size_t>(kWaiters + 1));
  for (size_t i = 1; i < r.edges.size(); ++i) {
    EXPECT_EQ(r.edges[i].blocker.pid, 101);
    EXPECT_EQ(r.edges[i].kind, EdgeKind::kSoft);
  }
  ASSERT_EQ(r.roots.size(), 1u);
  EXPECT_EQ(r.roots[0].blocked_sessions, kWaiters + 1);
  EXPECT_EQ(r.roots[0].depth, 2);
}

}  // namespace
}  // namespace lockwatch::core
