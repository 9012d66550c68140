// Each explanation built on a real PostgreSQL 15: the situation is produced with real sessions, read with
// lockwatch's collector, analysed by the core and explained; the test checks the explanation's kind and
// the pids it names. The autovacuum case switches autovacuum on for its own duration (the test cluster runs
// with it off).

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/analysis.h"
#include "agent/core/explain.h"
#include "agent/core/snapshot.h"
#include "agent/pg/collector.h"

#include "tests/integration/pg_fixture.h"
#include "tests/testing/pg_harness.h"

namespace lockwatch::explain_test {
namespace {

using testing::PgSession;
using Strings = std::vector<std::string>;

class ExplainPgTest : public integration::PgFixture {
 protected:
  void SetUp() override {
    PgFixture::SetUp();
    collector_ = std::make_unique<pg::Collector>(dsn_);
    const core::Status status = collector_->Connect();
    if (!status.ok()) throw testing::HarnessError("collector cannot connect: " + status.message());
  }
  void TearDown() override {
    collector_.reset();
    PgFixture::TearDown();
  }

  void SendAndWait(PgSession& session, const std::string& sql) {
    session.Send(sql);
    testing::WaitUntilWaiting(observer(), session, integration::kWaitTimeout);
  }

  // One real poll, analysed and explained.
  std::vector<core::Explanation> PollExplain(const core::ExplainOptions& options = {}) {
    core::Result<core::Snapshot> polled = collector_->Poll();
    if (!polled.ok()) throw testing::HarnessError("poll failed: " + polled.status().message());
    snapshot_ = polled.value();
    report_ = core::Analyze(snapshot_);
    return core::Explain(snapshot_, report_, options);
  }

  static Strings KindsFor(const std::vector<core::Explanation>& found, const core::NodeRef& root) {
    Strings kinds;
    for (const core::Explanation* f : core::ExplanationsFor(found, root)) {
      kinds.push_back(core::ExplanationKindName(f->kind));
    }
    return kinds;
  }
  static Strings KindsFor(const std::vector<core::Explanation>& found, int32_t pid) {
    return KindsFor(found, core::NodeRef{pid, ""});
  }
  static const core::Explanation* First(const std::vector<core::Explanation>& found,
                                        const core::NodeRef& root) {
    const auto list = core::ExplanationsFor(found, root);
    return list.empty() ? nullptr : list.front();
  }
  static const core::Explanation* ServerWide(const std::vector<core::Explanation>& found,
                                             core::ExplanationKind kind) {
    for (const core::Explanation& f : found) {
      if (!f.root && f.kind == kind) return &f;
    }
    return nullptr;
  }
  static std::string Describe(const std::vector<core::Explanation>& found) {
    std::string out;
    for (const core::Explanation& f : found) {
      out += std::string(core::ExplanationKindName(f.kind)) +
             " root=" + (f.root ? std::to_string(f.root->pid) + f.root->gid : "-") + ": " + f.situation +
             " || " + f.remedy + "\n";
    }
    return out;
  }

  core::Snapshot snapshot_;
  core::Report report_;

 private:
  std::unique_ptr<pg::Collector> collector_;
};

TEST_F(ExplainPgTest, IdleInTransactionHolder) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1");
  SendAndWait(b, "UPDATE t SET v = v + 1 WHERE id = 1");
  const auto found = PollExplain();
  EXPECT_EQ(KindsFor(found, a.pid()), Strings({"idle_in_transaction_holder"})) << Describe(found);
  const core::Explanation* f = First(found, core::NodeRef{a.pid(), ""});
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->remedy.find("pg_terminate_backend(" + std::to_string(a.pid()) + ")"), std::string::npos)
      << f->remedy;
  EXPECT_NE(f->situation.find("app lwit-A"), std::string::npos) << f->situation;
}

TEST_F(ExplainPgTest, DdlQueuedBehindLongTransactionAmplifiesThePileUp) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  PgSession& c = Open("C");
  PgSession& d = Open("D");
  a.Exec("BEGIN; SELECT count(*) FROM t");
  SendAndWait(b, "ALTER TABLE t ADD COLUMN x int");
  SendAndWait(c, "SELECT count(*) FROM t");
  SendAndWait(d, "SELECT count(*) FROM t");
  const auto found = PollExplain();
  EXPECT_EQ(KindsFor(found, a.pid()), Strings({"ddl_amplifier", "idle_in_transaction_holder"}))
      << Describe(found);
  const core::Explanation* f = First(found, core::NodeRef{a.pid(), ""});
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->pids, std::vector<int32_t>({b.pid()}));
  EXPECT_NE(f->situation.find("ALTER TABLE by pid " + std::to_string(b.pid())), std::string::npos)
      << f->situation;
  EXPECT_NE(f->situation.find("2 sessions queue behind the DDL"), std::string::npos) << f->situation;
  EXPECT_NE(f->remedy.find("SELECT pg_cancel_backend(" + std::to_string(b.pid()) + ")"), std::string::npos);
  EXPECT_NE(f->remedy.find("lock_timeout"), std::string::npos);
}

TEST_F(ExplainPgTest, LongRunningStatementHoldingALock) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Send("BEGIN; LOCK TABLE t3 IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)");
  testing::WaitUntilWaitEvent(observer(), a.pid(), "Timeout", "PgSleep", integration::kWaitTimeout);
  SendAndWait(b, "SELECT count(*) FROM t3");
  const auto found = PollExplain();
  EXPECT_EQ(KindsFor(found, a.pid()), Strings({"long_running_statement"})) << Describe(found);
  const core::Explanation* f = First(found, core::NodeRef{a.pid(), ""});
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->remedy.find("SELECT pg_cancel_backend(" + std::to_string(a.pid()) + ")"), std::string::npos);
}

TEST_F(ExplainPgTest, OrphanedPreparedTransaction) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  const std::string gid = gid_prefix() + "gx1";
  a.Exec("BEGIN; UPDATE t SET v = v + 1 WHERE id = 3; PREPARE TRANSACTION '" + gid + "'");
  SendAndWait(b, "UPDATE t SET v = v + 1 WHERE id = 3");
  const auto found = PollExplain();
  const core::NodeRef root{0, gid};
  EXPECT_EQ(KindsFor(found, root), Strings({"orphaned_prepared_xact"})) << Describe(found);
  const core::Explanation* f = First(found, root);
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->remedy.find("ROLLBACK PREPARED '" + gid + "'"), std::string::npos) << f->remedy;
  EXPECT_NE(f->remedy.find("in database lockwatch_test"), std::string::npos) << f->remedy;
}

TEST_F(ExplainPgTest, SessionLevelAdvisoryLockHeldByIdleSession) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("SELECT pg_advisory_lock(770042)");
  SendAndWait(b, "SELECT pg_advisory_lock(770042)");
  const auto found = PollExplain();
  EXPECT_EQ(KindsFor(found, a.pid()), Strings({"advisory_lock_holder"})) << Describe(found);
  const core::Explanation* f = First(found, core::NodeRef{a.pid(), ""});
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->situation.find("advisory key 770042"), std::string::npos) << f->situation;
  b.Cancel();
  b.Drain(integration::kWaitTimeout);
  a.Exec("SELECT pg_advisory_unlock_all()");
}

TEST_F(ExplainPgTest, CreateIndexConcurrentlyWaitsForAnOldSnapshot) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM other");
  SendAndWait(b, "CREATE INDEX CONCURRENTLY t2_v_idx ON t2(v)");
  const auto found = PollExplain();
  EXPECT_EQ(KindsFor(found, a.pid()), Strings({"cic_waiting_for_snapshots", "idle_in_transaction_holder"}))
      << Describe(found);
  const core::Explanation* f = First(found, core::NodeRef{a.pid(), ""});
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->pids, std::vector<int32_t>({b.pid()}));
  EXPECT_NE(f->situation.find("CREATE INDEX CONCURRENTLY by pid " + std::to_string(b.pid())),
            std::string::npos)
      << f->situation;
}

TEST_F(ExplainPgTest, DeadlockFormingBeforeDeadlockTimeout) {
  PgSession& a = Open("A");
  PgSession& b = Open("B");
  a.Exec("SET deadlock_timeout = '10min'; BEGIN; UPDATE t SET v = v + 1 WHERE id = 1");
  b.Exec("SET deadlock_timeout = '10min'; BEGIN; UPDATE t SET v = v + 1 WHERE id = 2");
  SendAndWait(a, "UPDATE t SET v = v + 1 WHERE id = 2");
  SendAndWait(b, "UPDATE t SET v = v + 1 WHERE id = 1");
  const auto found = PollExplain();
  const core::Explanation* f = ServerWide(found, core::ExplanationKind::kDeadlockForming);
  ASSERT_NE(f, nullptr) << Describe(found);
  std::vector<int32_t> pids{a.pid(), b.pid()};
  std::sort(pids.begin(), pids.end());
  EXPECT_EQ(f->pids, pids);
  EXPECT_NE(f->remedy.find("SELECT pg_cancel_backend(" + std::to_string(pids.front()) + ")"),
            std::string::npos);
  b.Cancel();
}

// Several sessions bulk-insert into one fresh table; every new page needs the relation's extension lock.
// Polls until one snapshot shows a session waiting on Lock:extend (bounded).
TEST_F(ExplainPgTest, RelationExtensionWaitsUnderConcurrentBulkInserts) {
  observer().Exec("CREATE UNLOGGED TABLE " + schema() + ".ext (id int, pad text)");
  std::vector<PgSession*> writers;
  writers.reserve(6);
  for (int i = 0; i < 6; ++i) writers.push_back(&Open("W" + std::to_string(i)));
  core::ExplainOptions options;
  options.min_extension_waiters = 1;
  const core::Explanation* seen = nullptr;
  std::vector<core::Explanation> found;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while (seen == nullptr && std::chrono::steady_clock::now() < deadline) {
    for (PgSession* w : writers) {
      if (w->pending() && !w->IsBusy()) w->Drain(integration::kWaitTimeout);
      if (!w->pending()) {
        w->Send("INSERT INTO ext SELECT g, repeat('x', 1500) FROM generate_series(1, 20000) g");
      }
    }
    found = PollExplain(options);
    for (const core::Explanation& f : found) {
      if (f.kind == core::ExplanationKind::kRelationExtensionWaits) seen = &f;
    }
  }
  ASSERT_NE(seen, nullptr) << "no session seen waiting on Lock:extend within 40 s";
  EXPECT_FALSE(seen->pids.empty());
  EXPECT_NE(seen->situation.find("extend"), std::string::npos) << seen->situation;
}

// Forty sessions each lock all 64 partitions of a table in short transactions: more than the 16 fast-path
// slots a backend has, so every lock goes through the shared lock table and its 16 partition LWLocks. Polls
// until one snapshot shows at least five sessions waiting on LWLock:LockManager (bounded).
TEST_F(ExplainPgTest, LockManagerContentionWhenTransactionsLockManyPartitions) {
  const std::string table = schema() + ".parted";
  observer().Exec("CREATE TABLE " + table + " (id int, v int) PARTITION BY HASH (id)");
  observer().Exec("DO $$ BEGIN FOR i IN 0..63 LOOP EXECUTE format('CREATE TABLE " + table +
                  "_%s PARTITION OF " + table +
                  " FOR VALUES WITH (MODULUS 64, REMAINDER %s)', i, i); END LOOP; END $$");
  // One transaction per scan, so every scan takes its 64 locks again.
  observer().Exec("CREATE PROCEDURE " + schema() +
                  ".scan_all(n int) LANGUAGE plpgsql AS $$ BEGIN FOR i IN 1..n LOOP PERFORM count(*) FROM " +
                  table + "; COMMIT; END LOOP; END $$");
  std::vector<PgSession*> scanners;
  scanners.reserve(40);
  for (int i = 0; i < 40; ++i) scanners.push_back(&Open("S" + std::to_string(i)));
  const core::Explanation* seen = nullptr;
  std::vector<core::Explanation> found;
  int most_waiting = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while (seen == nullptr && std::chrono::steady_clock::now() < deadline) {
    for (PgSession* s : scanners) {
      if (s->pending() && !s->IsBusy()) s->Drain(integration::kWaitTimeout);
      if (!s->pending()) s->Send("CALL scan_all(2000)");
    }
    found = PollExplain();
    const auto waiting = std::count_if(snapshot_.sessions.begin(), snapshot_.sessions.end(),
                                       [](const core::Session& x) { return x.wait_event == "LockManager"; });
    most_waiting = std::max(most_waiting, static_cast<int>(waiting));
    for (const core::Explanation& f : found) {
      if (f.kind == core::ExplanationKind::kLockManagerContention) seen = &f;
    }
  }
  for (PgSession* s : scanners) s->Cancel();
  ASSERT_NE(seen, nullptr) << "no snapshot with 5 sessions waiting on LWLock:LockManager within 40 s (most "
                           << most_waiting << ")";
  EXPECT_FALSE(seen->root.has_value());
  EXPECT_GE(seen->pids.size(), 5U);
  // Each waiter is a scanner or one of its parallel workers (the scans run as parallel appends).
  auto scanner = [&](int32_t pid) {
    return std::any_of(scanners.begin(), scanners.end(), [&](PgSession* s) { return s->pid() == pid; });
  };
  for (int32_t pid : seen->pids) {
    const auto session = std::find_if(snapshot_.sessions.begin(), snapshot_.sessions.end(),
                                      [&](const core::Session& x) { return x.pid == pid; });
    ASSERT_NE(session, snapshot_.sessions.end()) << pid;
    EXPECT_TRUE(scanner(pid) || (session->leader_pid && scanner(*session->leader_pid)))
        << "pid " << pid << " is neither a scanner nor a scanner's parallel worker";
  }
  EXPECT_NE(seen->situation.find("LockManager"), std::string::npos) << seen->situation;
  EXPECT_NE(seen->remedy.find("fewer relations"), std::string::npos) << seen->remedy;
}

// Autovacuum switched on for this test only (ALTER SYSTEM + reload), and back off however the test ends.
class AutovacuumOn {
 public:
  explicit AutovacuumOn(PgSession& observer) : observer_(observer) {
    observer_.Exec("ALTER SYSTEM SET autovacuum = on");
    observer_.Exec("ALTER SYSTEM SET autovacuum_naptime = '1s'");
    observer_.Exec("SELECT pg_reload_conf()");
  }
  ~AutovacuumOn() {
    try {
      observer_.Exec("ALTER SYSTEM RESET autovacuum");
      observer_.Exec("ALTER SYSTEM RESET autovacuum_naptime");
      observer_.Exec("SELECT pg_reload_conf()");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "could not switch autovacuum off again: " << e.what();
    }
  }
  AutovacuumOn(const AutovacuumOn&) = delete;
  AutovacuumOn& operator=(const AutovacuumOn&) = delete;

 private:
  PgSession& observer_;
};

// A real autovacuum worker, throttled to one page per 100 ms on a table full of dead rows, holds its
// ShareUpdateExclusiveLock while a LOCK TABLE waits. The waiter's deadlock_timeout is raised so PostgreSQL
// does not cancel the worker (it does so once a blocked session reaches deadlock_timeout) before the poll.
TEST_F(ExplainPgTest, AutovacuumWorkerInTheWayOfALockTable) {
  const std::string table = schema() + ".av";
  observer().Exec("CREATE TABLE " + table +
                  " (id int, pad text) WITH (autovacuum_vacuum_cost_delay = 100, "
                  "autovacuum_vacuum_cost_limit = 1, autovacuum_vacuum_threshold = 0, "
                  "autovacuum_vacuum_scale_factor = 0, autovacuum_analyze_threshold = 2000000000)");
  observer().Exec("INSERT INTO " + table + " SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g");
  observer().Exec("DELETE FROM " + table);
  AutovacuumOn autovacuum(observer());
  // The worker's query reads "autovacuum: VACUUM <schema>.av".
  testing::WaitUntilTrue(observer(),
                         "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' "
                         "AND query LIKE 'autovacuum: VACUUM " +
                             table + "%'",
                         "an autovacuum worker on " + table, std::chrono::seconds(60));
  const int32_t worker = std::stoi(
      observer()
          .ExecScalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND query "
                      "LIKE 'autovacuum: VACUUM " +
                      table + "%'")
          .value_or("0"));
  PgSession& b = Open("B");
  b.Exec("SET deadlock_timeout = '10min'");
  SendAndWait(b, "BEGIN; LOCK TABLE av IN ACCESS EXCLUSIVE MODE");
  const auto found = PollExplain();
  EXPECT_EQ(KindsFor(found, worker), Strings({"autovacuum_blocking"})) << Describe(found);
  const core::Explanation* f = First(found, core::NodeRef{worker, ""});
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->situation.find("autovacuum pid " + std::to_string(worker)), std::string::npos) << f->situation;
  EXPECT_EQ(f->situation.find("wraparound"), std::string::npos) << f->situation;
  EXPECT_NE(f->remedy.find("pg_cancel_backend(" + std::to_string(worker) + ")"), std::string::npos)
      << f->remedy;
  // The waiter's edge is the one PostgreSQL reports.
  EXPECT_EQ(observer().ExecScalar("SELECT pg_blocking_pids(" + std::to_string(b.pid()) + ")::text"),
            "{" + std::to_string(worker) + "}");
  b.Cancel();
  b.Drain(integration::kWaitTimeout);
  observer().Exec("SELECT pg_cancel_backend(" + std::to_string(worker) + ")");
}

}  // namespace
}  // namespace lockwatch::explain_test
