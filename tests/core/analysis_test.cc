// The verified scenarios of postgres-locks.md section 9 (S1..S15) as pg_locks fixtures, plus report-level
// behaviour: roots, classification, depth, wait times, ordering.

#include "agent/core/analysis.h"

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/core/report_strings.h"
#include "tests/testing/snapshot_builder.h"

namespace lockwatch::core {
namespace {

using testing::Sec;
using testing::SnapshotBuilder;

constexpr uint32_t kDb = 16384;
constexpr uint32_t kT = 16385;
constexpr uint32_t kT2 = 16390;
constexpr uint32_t kT3 = 16393;
constexpr uint32_t kT4 = 16396;
constexpr uint32_t kBig = 16405;

SnapshotBuilder Base() {
  return SnapshotBuilder()
      .Version(150000)
      .Now(Sec(1000))
      .OwnPid(999)
      .RelationName(kDb, kT, "public.t")
      .RelationName(kDb, kT2, "public.t2")
      .RelationName(kDb, kT3, "public.t3")
      .RelationName(kDb, kT4, "public.t4")
      .RelationName(kDb, kBig, "public.big")
      // lockwatch's own session and the locks of its pg_locks query are part of every real snapshot.
      .Session(999)
      .State("active")
      .Lock(999)
      .Relation(kDb, 12000)
      .Mode("AccessShareLock")
      .Granted()
      .FastPath()
      .Lock(999)
      .VirtualXid("9/99")
      .Mode("ExclusiveLock")
      .Granted()
      .FastPath();
}

// Every backend in a transaction holds its own vxid (fast path) and, once it writes, its xid.
void OwnXactLocks(SnapshotBuilder& b, int32_t pid, const std::string& vxid, std::optional<uint32_t> xid) {
  b.Lock(pid).VirtualXid(vxid).Mode("ExclusiveLock").Granted().FastPath().VirtualTransaction(vxid);
  if (xid) b.Lock(pid).TransactionId(*xid).Mode("ExclusiveLock").Granted().VirtualTransaction(vxid);
}

struct Scenario {
  const char* name;
  std::function<Snapshot()> snapshot;
  std::vector<std::string> edges;
  std::vector<std::string> roots;
  std::vector<std::string> cycles;
  std::vector<std::string> waiters;
};

Snapshot S1() {
  SnapshotBuilder b = Base();
  b.Session(101).State("idle in transaction").Session(102).State("active");
  OwnXactLocks(b, 101, "3/10", 731);
  b.Lock(101).Relation(kDb, kT).Mode("RowExclusiveLock").Granted().FastPath();
  OwnXactLocks(b, 102, "4/5", std::nullopt);
  b.Lock(102).Relation(kDb, kT).Mode("RowExclusiveLock").Granted().FastPath();
  b.Lock(102).Tuple(kDb, kT, 0, 1).Mode("ExclusiveLock").Granted();
  b.Lock(102).TransactionId(731).Mode("ShareLock").Waiting(Sec(990));
  return b.Build();
}

Snapshot S1bSavepoint() {
  SnapshotBuilder b = Base();
  b.Session(101).State("idle in transaction").Session(102).State("active");
  OwnXactLocks(b, 101, "3/11", 728);
  b.Lock(101).TransactionId(729).Mode("ExclusiveLock").Granted();  // sub-transaction xid
  b.Lock(102).Tuple(kDb, kT, 0, 5).Mode("ExclusiveLock").Granted();
  b.Lock(102).TransactionId(729).Mode("ShareLock").Waiting(Sec(995));
  return b.Build();
}

Snapshot S2() {
  SnapshotBuilder b = Base();
  b.Session(105).State("idle in transaction");
  b.Session(101).State("idle in transaction");
  b.Session(102).Session(103).Session(104);
  // E: serializable reader, predicate locks on the same tuple and relation keys.
  b.Lock(105).Relation(kDb, kT).Mode("SIReadLock").Granted();
  b.Lock(105).Tuple(kDb, kT, 0, 1).Mode("SIReadLock").Granted();
  b.Lock(105).Relation(kDb, kT).Mode("AccessShareLock").Granted().FastPath();
  OwnXactLocks(b, 101, "3/12", 740);
  b.Lock(102).Tuple(kDb, kT, 0, 1).Mode("ExclusiveLock").Granted();
  b.Lock(102).TransactionId(740).Mode("ShareLock").Waiting(Sec(900));
  b.Lock(103).Tuple(kDb, kT, 0, 1).Mode("ExclusiveLock").Waiting(Sec(910));
  b.Lock(104).Tuple(kDb, kT, 0, 1).Mode("AccessExclusiveLock").Waiting(Sec(920));
  return b.Build();
}

Snapshot S3() {
  SnapshotBuilder b = Base();
  b.Session(101).State("idle in transaction").Session(102).Session(103);
  OwnXactLocks(b, 101, "3/13", 750);
  OwnXactLocks(b, 102, "4/13", 751);
  OwnXactLocks(b, 103, "5/13", 752);
  b.Lock(102).Tuple(kDb, kT, 0, 1).Mode("AccessExclusiveLock").Granted();
  b.Lock(102).TransactionId(750).Mode("ShareLock").Waiting(Sec(900));
  b.Lock(103).Tuple(kDb, kT, 0, 2).Mode("AccessExclusiveLock").Granted();
  b.Lock(103).TransactionId(751).Mode("ShareLock").Waiting(Sec(910));
  return b.Build();
}

Snapshot S4() {
  SnapshotBuilder b = Base();
  b.Session(101).State("idle in transaction").Session(102).Session(103).Session(104);
  b.Lock(101).Relation(kDb, kT).Mode("AccessShareLock").Granted();  // moved out of the fast path
  b.Lock(102).Relation(kDb, kT).Mode("AccessExclusiveLock").Waiting(Sec(900));
  b.Lock(103).Relation(kDb, kT).Mode("AccessShareLock").Waiting(Sec(910));
  b.Lock(104).Relation(kDb, kT).Mode("AccessShareLock").Waiting(Sec(920));
  return b.Build();
}

Snapshot S5() {
  SnapshotBuilder b = Base();
  b.Session(101)
      .State("idle in transaction")
      .Session(102)
      .Session(103)
      .Session(104)
      .State("idle in transaction");
  b.Lock(101).Relation(kDb, kT3).Mode("ShareLock").Granted();
  b.Lock(102).Relation(kDb, kT3).Mode("RowExclusiveLock").Waiting(Sec(900));
  b.Lock(103).Relation(kDb, kT3).Mode("ShareLock").Waiting(Sec(910));
  b.Lock(104).Relation(kDb, kT3).Mode("AccessShareLock").Granted();
  return b.Build();
}

Snapshot S6() {
  SnapshotBuilder b = Base();
  b.Session(101).Session(102).State("idle in transaction").Session(103);
  b.Lock(101).Relation(kDb, kT4).Mode("AccessShareLock").Granted();
  b.Lock(102).Relation(kDb, kT4).Mode("AccessShareLock").Granted();
  b.Lock(103).Relation(kDb, kT4).Mode("AccessExclusiveLock").Waiting(Sec(900));
  b.Lock(101).Relation(kDb, kT4).Mode("AccessExclusiveLock").Waiting(Sec(910));  // arrives later, jumps
  return b.Build();
}

Snapshot S7(const std::string& virtualtransaction) {
  SnapshotBuilder b = Base();
  b.Prepared(760, "gx1");
  b.Session(102);
  b.PreparedLock(virtualtransaction).TransactionId(760).Mode("ExclusiveLock").Granted();
  b.PreparedLock(virtualtransaction).Relation(kDb, kT).Mode("RowExclusiveLock").Granted();
  b.Lock(102).Tuple(kDb, kT, 0, 3).Mode("ExclusiveLock").Granted();
  b.Lock(102).TransactionId(760).Mode("ShareLock").Waiting(Sec(950));
  return b.Build();
}

Snapshot S8() {
  SnapshotBuilder b = Base();
  b.Session(101).State("idle").Session(102).Session(103).Session(104).State("idle");
  b.Lock(101).Advisory(kDb, 42).Mode("ExclusiveLock").Granted().VirtualTransaction("3/0");
  b.Lock(102).Advisory(kDb, 42).Mode("ExclusiveLock").Waiting(Sec(900));
  b.Lock(103).Advisory(kDb, 42).Mode("ShareLock").Waiting(Sec(910));
  b.Lock(104).Advisory(kDb, 4294967297LL).Mode("ExclusiveLock").Granted();
  b.Lock(104).Advisory2(kDb, 1, 2).Mode("ExclusiveLock").Granted();
  return b.Build();
}

Snapshot S9() {
  SnapshotBuilder b = Base();
  b.Session(101).Session(102);
  OwnXactLocks(b, 101, "3/14", 770);
  OwnXactLocks(b, 102, "4/14", 771);
  b.Lock(101).Tuple(kDb, kT, 0, 2).Mode("ExclusiveLock").Granted();
  b.Lock(101).TransactionId(771).Mode("ShareLock").Waiting(Sec(900));
  b.Lock(102).Tuple(kDb, kT, 0, 1).Mode("ExclusiveLock").Granted();
  b.Lock(102).TransactionId(770).Mode("ShareLock").Waiting(Sec(910));
  return b.Build();
}

Snapshot S10() {
  SnapshotBuilder b = Base();
  b.Session(101).State("active").Session(201).LeaderPid(101).Session(202).LeaderPid(101);
  b.Session(102).Session(103);
  b.Lock(101).Relation(kDb, kBig).Mode("AccessShareLock").Granted().VirtualTransaction("3/39");
  b.Lock(201).Relation(kDb, kBig).Mode("AccessShareLock").Granted().VirtualTransaction("6/18");
  b.Lock(202).Relation(kDb, kBig).Mode("AccessShareLock").Granted().VirtualTransaction("7/9");
  b.Lock(102).Relation(kDb, kBig).Mode("AccessExclusiveLock").Waiting(Sec(900));
  b.Lock(103).Relation(kDb, kBig).Mode("AccessShareLock").Waiting(Sec(910));
  return b.Build();
}

Snapshot S11() {
  SnapshotBuilder b = Base();
  b.Session(101).State("idle in transaction").Session(102);
  b.Lock(101).VirtualXid("4/7").Mode("ExclusiveLock").Granted().VirtualTransaction("4/7");  // moved out of
                                                                                            // fast path
  b.Lock(101).TransactionId(790).Mode("ExclusiveLock").Granted().VirtualTransaction("4/7");
  b.Lock(101).Relation(kDb, kT2).Mode("RowExclusiveLock").Granted().FastPath();
  b.Lock(102).Relation(kDb, kT2).Mode("ShareUpdateExclusiveLock").Granted();
  b.Lock(102).VirtualXid("4/7").Mode("ShareLock").Waiting(Sec(940));
  return b.Build();
}

Snapshot S11b() {
  SnapshotBuilder b = Base();
  b.Session(101).State("idle in transaction").Session(102);
  b.Lock(101).VirtualXid("5/3").Mode("ExclusiveLock").Granted().VirtualTransaction("5/3");
  b.Lock(101).Relation(kDb, 16420).Mode("AccessShareLock").Granted().FastPath();
  b.Lock(102).Relation(kDb, kT2).Mode("ShareUpdateExclusiveLock").Granted();
  b.Lock(102).VirtualXid("5/3").Mode("ShareLock").Waiting(Sec(940));
  return b.Build();
}

Snapshot S12() {
  SnapshotBuilder b = Base();
  b.Session(101).State("idle in transaction").Session(102).State("idle in transaction").Session(103);
  OwnXactLocks(b, 101, "3/15", 780);
  OwnXactLocks(b, 102, "4/15", 781);
  b.Lock(101).Relation(kDb, kT).Mode("RowShareLock").Granted().FastPath();
  b.Lock(102).Relation(kDb, kT).Mode("RowShareLock").Granted().FastPath();
  b.Lock(103).Tuple(kDb, kT, 0, 6).Mode("ExclusiveLock").Granted();
  b.Lock(103).TransactionId(780).Mode("ShareLock").Waiting(Sec(960));
  return b.Build();
}

Snapshot S13() {
  SnapshotBuilder b = Base();
  b.Session(101)
      .State("idle in transaction")
      .Session(102)
      .Session(103)
      .State("idle")
      .Session(104)
      .Session(105);
  OwnXactLocks(b, 101, "3/16", 795);
  b.Lock(102).Tuple(kDb, kT, 0, 7).Mode("ExclusiveLock").Granted();
  b.Lock(102).TransactionId(795).Mode("ShareLock").Waiting(Sec(990));
  b.Lock(103).Advisory(kDb, 7).Mode("ExclusiveLock").Granted().VirtualTransaction("5/0");
  b.Lock(104).Advisory(kDb, 7).Mode("ExclusiveLock").Waiting(Sec(900));
  b.Lock(105).Advisory(kDb, 7).Mode("ExclusiveLock").Waiting(Sec(910));
  return b.Build();
}

Snapshot S14() {
  SnapshotBuilder b = Base();
  b.Session(101).State("idle in transaction").Session(102);
  OwnXactLocks(b, 101, "3/17", 800);
  b.Lock(101).Tuple(kDb, kT, 0, 8).Mode("SIReadLock").Granted();
  b.Lock(102).Relation(kDb, kT).Mode("AccessShareLock").Granted().FastPath();
  b.Lock(102).Relation(kDb, kT).Mode("SIReadLock").Granted();
  return b.Build();
}

Snapshot S15() {
  SnapshotBuilder b = Base();
  b.Session(101).State("idle in transaction").Session(102);
  OwnXactLocks(b, 101, "3/18", 810);
  b.Lock(101).Relation(kDb, kT).Mode("RowExclusiveLock").Granted().FastPath();
  OwnXactLocks(b, 102, "4/18", 811);
  b.Lock(102).Relation(kDb, kT).Mode("RowExclusiveLock").Granted().FastPath();
  b.Lock(102).TransactionId(810).Mode("ShareLock").Waiting(Sec(970));
  return b.Build();
}

TEST(AnalysisTest, VerifiedScenariosGiveThePgBlockingPidsAnswer) {
  const Scenario scenarios[] = {
      {"S1 simple row lock",
       S1,
       {"102->101 hard"},
       {"101 idle_in_transaction blocked=1 direct=1 depth=1"},
       {},
       {"102"}},
      {"S1b savepoint sub-xid",
       S1bSavepoint,
       {"102->101 hard"},
       {"101 idle_in_transaction blocked=1 direct=1 depth=1"},
       {},
       {"102"}},
      {"S2 tuple-lock queue with SIRead noise",
       S2,
       {"102->101 hard", "103->102 hard", "104->102 hard", "104->103 soft"},
       {"101 idle_in_transaction blocked=3 direct=1 depth=3"},
       {},
       {"102", "103", "104"}},
      {"S3 FOR UPDATE three levels",
       S3,
       {"102->101 hard", "103->102 hard"},
       {"101 idle_in_transaction blocked=2 direct=1 depth=2"},
       {},
       {"102", "103"}},
      {"S4 DDL pile-up",
       S4,
       {"102->101 hard", "103->102 soft", "104->102 soft"},
       {"101 idle_in_transaction blocked=3 direct=1 depth=2"},
       {},
       {"102", "103", "104"}},
      {"S5 LOCK TABLE modes",
       S5,
       {"102->101 hard", "103->102 soft"},
       {"101 idle_in_transaction blocked=2 direct=1 depth=2"},
       {},
       {"102", "103"}},
      {"S6 queue jump",
       S6,
       {"101->102 hard", "103->101 hard", "103->102 hard"},
       {"102 idle_in_transaction blocked=2 direct=2 depth=2"},
       {},
       {"101", "103"}},
      {"S7 prepared xact",
       [] { return S7("3/24"); },
       {"102->0:gx1 hard"},
       {"0:gx1 prepared blocked=1 direct=1 depth=1"},
       {},
       {"102"}},
      {"S7 prepared xact after restart",
       [] { return S7("-1/760"); },
       {"102->0:gx1 hard"},
       {"0:gx1 prepared blocked=1 direct=1 depth=1"},
       {},
       {"102"}},
      {"S8 advisory",
       S8,
       {"102->101 hard", "103->101 hard", "103->102 soft"},
       {"101 idle_advisory blocked=2 direct=2 depth=2"},
       {},
       {"102", "103"}},
      {"S9 deadlock", S9, {"101->102 hard", "102->101 hard"}, {}, {"101,102 hard"}, {"101", "102"}},
      {"S10 parallel query",
       S10,
       {"102->101 hard", "103->102 soft"},
       {"101 active blocked=2 direct=1 depth=2"},
       {},
       {"102", "103"}},
      {"S11 CIC waits for lockers",
       S11,
       {"102->101 hard"},
       {"101 idle_in_transaction blocked=1 direct=1 depth=1"},
       {},
       {"102"}},
      {"S11b CIC waits for old snapshot",
       S11b,
       {"102->101 hard"},
       {"101 idle_in_transaction blocked=1 direct=1 depth=1"},
       {},
       {"102"}},
      {"S12 multixact waits one member",
       S12,
       {"103->101 hard"},
       {"101 idle_in_transaction blocked=1 direct=1 depth=1"},
       {},
       {"103"}},
      {"S13 forest",
       S13,
       {"102->101 hard", "104->103 hard", "105->103 hard", "105->104 soft"},
       {"103 idle_advisory blocked=2 direct=2 depth=2", "101 idle_in_transaction blocked=1 direct=1 depth=1"},
       {},
       {"102", "104", "105"}},
      {"S14 safe snapshot is not a lock wait", S14, {}, {}, {}, {}},
      {"S15 duplicate key",
       S15,
       {"102->101 hard"},
       {"101 idle_in_transaction blocked=1 direct=1 depth=1"},
       {},
       {"102"}},
  };
  for (const Scenario& s : scenarios) {
    SCOPED_TRACE(s.name);
    const Report r = Analyze(s.snapshot());
    EXPECT_EQ(EdgeStrings(r), s.edges);
    EXPECT_EQ(RootStrings(r), s.roots);
    EXPECT_EQ(CycleStrings(r), s.cycles);
    EXPECT_EQ(WaiterStrings(r), s.waiters);
    EXPECT_TRUE(r.unknown_pids.empty());
  }
}

TEST(AnalysisTest, EdgeCarriesTargetModesAndSince) {
  const Report r = Analyze(S2());
  ASSERT_EQ(r.edges.size(), 4u);
  const Edge& d_to_c = r.edges[3];
  EXPECT_EQ(d_to_c.target.text, "row (0,1) of public.t");
  EXPECT_EQ(d_to_c.waiter_mode, LockMode::kAccessExclusive);
  EXPECT_EQ(d_to_c.blocker_held, 0);
  EXPECT_EQ(d_to_c.blocker_wanted, LockMode::kExclusive);
  EXPECT_EQ(d_to_c.waiter_since, Sec(920));
  const Edge& b_to_a = r.edges[0];
  EXPECT_EQ(b_to_a.target.text, "transaction 740");
  EXPECT_EQ(b_to_a.waiter_mode, LockMode::kShare);
  EXPECT_EQ(b_to_a.blocker_held, Bit(LockMode::kExclusive));
  EXPECT_EQ(b_to_a.blocker_wanted, LockMode::kNone);
}

TEST(AnalysisTest, CountsBlockedSessionsDepthAndWaits) {
  const Report r = Analyze(S2());
  EXPECT_EQ(r.blocked_sessions, 3);
  EXPECT_EQ(r.max_depth, 3);
  EXPECT_DOUBLE_EQ(r.max_wait_seconds, 100.0);  // B waits since 900, now is 1000
  ASSERT_EQ(r.roots.size(), 1u);
  EXPECT_DOUBLE_EQ(r.roots[0].max_wait_seconds, 100.0);
  ASSERT_EQ(r.waiters.size(), 3u);
  EXPECT_EQ(r.waiters[1].mode, LockMode::kExclusive);
  EXPECT_EQ(r.waiters[1].since, Sec(910));
  EXPECT_DOUBLE_EQ(r.waiters[1].wait_seconds, 90.0);
  EXPECT_EQ(r.waiters[1].target.text, "row (0,1) of public.t");
}

TEST(AnalysisTest, RootMaxWaitCoversOnlyItsOwnTree) {
  const Report r = Analyze(S13());
  ASSERT_EQ(r.roots.size(), 2u);
  EXPECT_DOUBLE_EQ(r.roots[0].max_wait_seconds, 100.0);  // advisory tree: D since 900
  EXPECT_DOUBLE_EQ(r.roots[1].max_wait_seconds, 10.0);   // row tree: B since 990
}

TEST(AnalysisTest, EmptySnapshotGivesEmptyReport) {
  const Report r = Analyze(Snapshot{});
  EXPECT_TRUE(r.edges.empty());
  EXPECT_TRUE(r.roots.empty());
  EXPECT_TRUE(r.cycles.empty());
  EXPECT_TRUE(r.waiters.empty());
  EXPECT_EQ(r.blocked_sessions, 0);
  EXPECT_EQ(r.max_depth, 0);
}

TEST(AnalysisTest, ClassifiesRootsBySessionState) {
  struct Case {
    const char* state;
    bool holds_advisory;
    RootClass expected;
  };
  const Case cases[] = {
      {"idle in transaction", false, RootClass::kIdleInTransaction},
      {"idle in transaction (aborted)", false, RootClass::kIdleInTransaction},
      {"active", false, RootClass::kActive},
      {"active", true, RootClass::kActive},
      {"idle", true, RootClass::kIdleAdvisory},
      {"idle", false, RootClass::kOther},
      {"fastpath function call", false, RootClass::kOther},
      {"", false, RootClass::kOther},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.state) + (c.holds_advisory ? " +advisory" : ""));
    SnapshotBuilder b = Base();
    b.Session(101).State(c.state).Session(102);
    b.Lock(101).Relation(kDb, kT).Mode("AccessExclusiveLock").Granted();
    if (c.holds_advisory) b.Lock(101).Advisory(kDb, 1).Mode("ShareLock").Granted();
    b.Lock(102).Relation(kDb, kT).Mode("AccessShareLock").Waiting(Sec(900));
    const Report r = Analyze(b.Build());
    ASSERT_EQ(r.roots.size(), 1u);
    EXPECT_EQ(r.roots[0].classification, c.expected);
  }
}

TEST(AnalysisTest, RootClassNamesAreStable) {
  EXPECT_STREQ(RootClassName(RootClass::kIdleInTransaction), "idle_in_transaction");
  EXPECT_STREQ(RootClassName(RootClass::kActive), "active");
  EXPECT_STREQ(RootClassName(RootClass::kIdleAdvisory), "idle_advisory");
  EXPECT_STREQ(RootClassName(RootClass::kPrepared), "prepared");
  EXPECT_STREQ(RootClassName(RootClass::kOther), "other");
}

TEST(AnalysisTest, RootsOrderedByBlockedSessionsThenPid) {
  SnapshotBuilder b = Base();
  b.Session(300).Session(200).Session(100).Session(301).Session(302).Session(201).Session(101);
  b.Lock(300).Advisory(kDb, 3).Mode("ExclusiveLock").Granted();
  b.Lock(301).Advisory(kDb, 3).Mode("ShareLock").Waiting(Sec(900));
  b.Lock(302).Advisory(kDb, 3).Mode("ShareLock").Waiting(Sec(901));
  b.Lock(200).Advisory(kDb, 2).Mode("ExclusiveLock").Granted();
  b.Lock(201).Advisory(kDb, 2).Mode("ShareLock").Waiting(Sec(902));
  b.Lock(100).Advisory(kDb, 1).Mode("ExclusiveLock").Granted();
  b.Lock(101).Advisory(kDb, 1).Mode("ShareLock").Waiting(Sec(903));
  const Report r = Analyze(b.Build());
  EXPECT_EQ(RootStrings(r), (std::vector<std::string>{"300 active blocked=2 direct=2 depth=1",
                                                      "100 active blocked=1 direct=1 depth=1",
                                                      "200 active blocked=1 direct=1 depth=1"}));
}

TEST(AnalysisTest, RootBlockingACycleCountsTheWholeCycle) {
  // 101 waits on a lock held by both 102 and the root 103; 102 waits on a lock held by 101.
  SnapshotBuilder b = Base();
  b.Session(101).Session(102).Session(103).State("idle in transaction").Session(104);
  b.Lock(102).Relation(kDb, kT).Mode("ShareLock").Granted();
  b.Lock(103).Relation(kDb, kT).Mode("ShareLock").Granted();
  b.Lock(101).Relation(kDb, kT).Mode("ExclusiveLock").Waiting(Sec(900));
  b.Lock(101).Relation(kDb, kT2).Mode("ShareLock").Granted();
  b.Lock(102).Relation(kDb, kT2).Mode("ExclusiveLock").Waiting(Sec(910));
  b.Lock(104).Relation(kDb, kT2).Mode("AccessShareLock").Granted();
  const Report r = Analyze(b.Build());
  EXPECT_EQ(EdgeStrings(r), (std::vector<std::string>{"101->102 hard", "101->103 hard", "102->101 hard"}));
  EXPECT_EQ(CycleStrings(r), (std::vector<std::string>{"101,102 hard"}));
  // The cycle is condensed to one step, so the chain 102->101->103 counts as depth 1.
  EXPECT_EQ(RootStrings(r), (std::vector<std::string>{"103 idle_in_transaction blocked=2 direct=1 depth=1"}));
}

TEST(AnalysisTest, LongChainDoesNotRecurse) {
  // 100000 sessions, each waiting on the xid of the next one: a chain deeper than any call stack.
  constexpr int kChain = 100000;
  SnapshotBuilder b = Base();
  for (int i = 0; i < kChain; ++i) {
    const int32_t pid = 1000 + i;
    b.Session(pid);
    b.Lock(pid).TransactionId(static_cast<uint32_t>(5000 + i)).Mode("ExclusiveLock").Granted();
    if (i + 1 < kChain)
      b.Lock(pid).TransactionId(static_cast<uint32_t>(5001 + i)).Mode("ShareLock").Waiting(Sec(900));
  }
  const Report r = Analyze(b.Build());
  ASSERT_EQ(r.roots.size(), 1u);
  EXPECT_EQ(r.roots[0].node.pid, 1000 + kChain - 1);
  EXPECT_EQ(r.roots[0].blocked_sessions, kChain - 1);
  EXPECT_EQ(r.roots[0].depth, kChain - 1);
  EXPECT_EQ(r.max_depth, kChain - 1);
  EXPECT_TRUE(r.cycles.empty());
}

TEST(AnalysisTest, LongCycleIsOneComponent) {
  constexpr int kRing = 50000;
  SnapshotBuilder b = Base();
  for (int i = 0; i < kRing; ++i) {
    const int32_t pid = 1000 + i;
    b.Session(pid);
    b.Lock(pid).TransactionId(static_cast<uint32_t>(5000 + i)).Mode("ExclusiveLock").Granted();
    b.Lock(pid)
        .TransactionId(static_cast<uint32_t>(5000 + (i + 1) % kRing))
        .Mode("ShareLock")
        .Waiting(Sec(900));
  }
  const Report r = Analyze(b.Build());
  ASSERT_EQ(r.cycles.size(), 1u);
  EXPECT_EQ(r.cycles[0].pids.size(), static_cast<size_t>(kRing));
  EXPECT_TRUE(r.cycles[0].has_hard_edge);
  EXPECT_TRUE(r.roots.empty());
}

}  // namespace
}  // namespace lockwatch::core
