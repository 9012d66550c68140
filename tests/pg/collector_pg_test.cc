// Collector against a real PostgreSQL server (LOCKWATCH_TEST_DSN: a superuser on a throwaway cluster).
// Helper sessions use plain libpq so a blocked statement can be sent without waiting (PQsendQuery).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include "agent/pg/collector.h"
#include "agent/pg/queries.h"

namespace lockwatch::pg {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

class Session {
 public:
  explicit Session(const std::string& dsn) : conn_(PQconnectdb(dsn.c_str())) {}
  ~Session() { PQfinish(conn_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(conn_); }
  int pid() const { return PQbackendPID(conn_); }

  // Runs a statement and returns the first value of the first row ("" when none); records a failure on
  // error.
  std::string Exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    const ExecStatusType st = PQresultStatus(r);
    std::string value;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      ADD_FAILURE() << sql << ": " << PQerrorMessage(conn_);
    } else if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0) {
      value = PQgetvalue(r, 0, 0);
    }
    PQclear(r);
    return value;
  }

  // Runs a query and returns every row, its fields joined by '|' (NULL as "<null>"), in result order.
  std::vector<std::string> Rows(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    std::vector<std::string> rows;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      ADD_FAILURE() << sql << ": " << PQerrorMessage(conn_);
    } else {
      for (int i = 0; i < PQntuples(r); ++i) {
        std::string row;
        for (int c = 0; c < PQnfields(r); ++c) {
          if (c > 0) row += '|';
          row += PQgetisnull(r, i, c) != 0 ? std::string("<null>") : std::string(PQgetvalue(r, i, c));
        }
        rows.push_back(row);
      }
    }
    PQclear(r);
    return rows;
  }

  // Sends without waiting (the statement is expected to block).
  void Send(const std::string& sql) { ASSERT_EQ(PQsendQuery(conn_, sql.c_str()), 1) << error(); }

  // Waits for the results of a sent statement.
  void Drain() {
    while (PGresult* r = PQgetResult(conn_)) PQclear(r);
  }

 private:
  PGconn* conn_;
};

const char* TestDsn() { return std::getenv("LOCKWATCH_TEST_DSN"); }

class CollectorPgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(TestDsn(), nullptr) << "LOCKWATCH_TEST_DSN is not set: it must be a libpq conninfo for a "
                                     "superuser on a throwaway PostgreSQL cluster (e.g. \"host=/tmp/sock "
                                     "port=55432 user=postgres dbname=postgres\")";
    dsn_ = TestDsn();
    control_ = std::make_unique<Session>(dsn_);
    ASSERT_TRUE(control_->ok()) << control_->error();
  }

  // Creates a fresh table with rows 1..3.
  void CreateTable(const std::string& name) {
    control_->Exec("DROP TABLE IF EXISTS " + name);
    control_->Exec("CREATE TABLE " + name + " (id int PRIMARY KEY, v int)");
    control_->Exec("INSERT INTO " + name + " SELECT g, 0 FROM generate_series(1, 3) g");
  }

  // Waits until `pid` waits on a heavyweight lock.
  void WaitUntilLockWait(int pid) {
    const auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (steady_clock::now() < deadline) {
      if (control_->Exec("SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(pid) +
                         " AND wait_event_type = 'Lock'") == "1") {
        return;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    FAIL() << "pid " << pid << " never waited on a lock";
  }

  std::string dsn_;
  std::unique_ptr<Session> control_;
};

const core::LockRow* FindLock(const core::Snapshot& s, int pid, bool granted, const std::string& locktype) {
  for (const core::LockRow& l : s.locks) {
    if (l.pid == pid && l.granted == granted && l.locktype == locktype) return &l;
  }
  return nullptr;
}

std::string SettingValue(const core::Snapshot& s, const std::string& name) {
  for (const core::Setting& setting : s.settings) {
    if (setting.name == name) return setting.value;
  }
  return "<missing>";
}

TEST_F(CollectorPgTest, SessionsCarryTheirRolesSuperuserAttribute) {
  control_->Exec(
      "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lw_coll_plain') THEN "
      "CREATE ROLE lw_coll_plain LOGIN NOSUPERUSER; END IF; END$$");
  Session plain(dsn_ + " user=lw_coll_plain");
  ASSERT_TRUE(plain.ok()) << plain.error();

  Collector collector(dsn_);
  ASSERT_TRUE(collector.Connect().ok());
  core::Result<core::Snapshot> r = collector.Poll();
  ASSERT_TRUE(r.ok()) << r.status().message();
  struct Case {
    int pid;
    std::optional<bool> want;
  };
  for (const Case& c : {Case{control_->pid(), true}, Case{plain.pid(), false}}) {
    bool found = false;
    for (const core::Session& s : r.value().sessions) {
      if (s.pid != c.pid) continue;
      found = true;
      EXPECT_EQ(s.superuser, c.want) << "pid " << c.pid << " (" << s.usename << ")";
    }
    EXPECT_TRUE(found) << "pid " << c.pid;
  }
  // Background processes have no role: unknown, not "not a superuser".
  for (const core::Session& s : r.value().sessions) {
    if (s.backend_type == "checkpointer") {
      EXPECT_EQ(s.superuser, std::nullopt);
    }
  }
}

TEST_F(CollectorPgTest, SteadyStatePollSkipsPgLocksAndAppliesSessionSettings) {
  Collector collector(dsn_);
  ASSERT_TRUE(collector.Connect().ok());
  EXPECT_TRUE(collector.connected());
  EXPECT_GE(collector.server_version_num(), 150000);

  PollStats stats;
  core::Result<core::Snapshot> r = collector.Poll(&stats);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const core::Snapshot& s = r.value();
  EXPECT_FALSE(s.locks_read);
  EXPECT_FALSE(stats.locks_read);
  EXPECT_TRUE(s.locks.empty());
  EXPECT_EQ(s.server_version_num, collector.server_version_num());
  EXPECT_EQ(s.current_database, control_->Exec("SELECT current_database()"));
  EXPECT_GT(s.captured_at_us, 1600000000LL * 1000000);
  EXPECT_NE(s.own_pid, 0);
  bool control_seen = false;
  for (const core::Session& session : s.sessions) {
    EXPECT_NE(session.pid, s.own_pid);
    if (session.pid == control_->pid()) control_seen = true;
  }
  EXPECT_TRUE(control_seen);
  EXPECT_EQ(SettingValue(s, "lock_timeout"), "100ms");
  EXPECT_EQ(SettingValue(s, "statement_timeout"), "2s");
  EXPECT_EQ(SettingValue(s, "max_prepared_transactions"),
            control_->Exec("SELECT current_setting('max_prepared_transactions')"));

  // Seen from another session: lockwatch's own backend carries its name and settings.
  EXPECT_EQ(control_->Exec("SELECT application_name FROM pg_stat_activity WHERE pid = " +
                           std::to_string(s.own_pid)),
            "lockwatch");

  EXPECT_EQ(stats.round_trips, 1);
  EXPECT_GT(stats.bytes_received, 100u);
  EXPECT_GT(stats.client_seconds, 0.0);
  EXPECT_GE(stats.server_seconds, 0.0);
  EXPECT_LE(stats.server_seconds, stats.client_seconds);
  EXPECT_TRUE(stats.relation_names_status.ok());
  // Repeated polls reuse the prepared plan and read no pg_locks.
  constexpr int kPolls = 20;
  double client = 0;
  double server = 0;
  for (int i = 0; i < kPolls; ++i) {
    PollStats again;
    ASSERT_TRUE(collector.Poll(&again).ok());
    EXPECT_FALSE(again.locks_read);
    client += again.client_seconds;
    server += again.server_seconds;
  }
  std::printf("steady-state poll: %llu bytes, %zu sessions; mean of %d: client %.6f s, server %.6f s\n",
              static_cast<unsigned long long>(stats.bytes_received), s.sessions.size(), kPolls,
              client / kPolls, server / kPolls);
}

TEST_F(CollectorPgTest, RowLockWaitIsCollectedWithRelationName) {
  CreateTable("lw_it_rowlock");
  const std::string oid = control_->Exec("SELECT 'lw_it_rowlock'::regclass::oid");
  Session holder(dsn_);
  Session waiter(dsn_);
  ASSERT_TRUE(holder.ok() && waiter.ok());
  holder.Exec("BEGIN");
  holder.Exec("UPDATE lw_it_rowlock SET v = v + 1 WHERE id = 1");
  waiter.Send("UPDATE lw_it_rowlock SET v = v + 1 WHERE id = 1");
  WaitUntilLockWait(waiter.pid());

  Collector collector(dsn_);
  ASSERT_TRUE(collector.Connect().ok());
  PollStats stats;
  core::Result<core::Snapshot> r = collector.Poll(&stats);
  holder.Exec("ROLLBACK");
  waiter.Drain();
  ASSERT_TRUE(r.ok()) << r.status().message();
  const core::Snapshot& s = r.value();

  EXPECT_TRUE(s.locks_read);
  EXPECT_TRUE(stats.locks_read);
  const core::LockRow* wait = FindLock(s, waiter.pid(), false, "transactionid");
  ASSERT_NE(wait, nullptr);
  EXPECT_EQ(wait->mode, core::LockMode::kShare);
  EXPECT_TRUE(wait->waitstart.has_value());
  const core::LockRow* hold = FindLock(s, holder.pid(), true, "transactionid");
  ASSERT_NE(hold, nullptr);
  EXPECT_EQ(hold->transactionid, wait->transactionid);
  EXPECT_EQ(hold->mode, core::LockMode::kExclusive);
  const core::LockRow* tuple = FindLock(s, waiter.pid(), true, "tuple");
  ASSERT_NE(tuple, nullptr);
  EXPECT_EQ(std::to_string(tuple->relation.value_or(0)), oid);
  for (const core::LockRow& l : s.locks) {
    EXPECT_NE(l.pid, s.own_pid);
    EXPECT_FALSE(l.fastpath);
    EXPECT_NE(l.mode, core::LockMode::kSIRead);
  }
  bool named = false;
  for (const core::RelationName& n : s.relation_names) {
    if (std::to_string(n.relation) == oid) named = n.name == "public.lw_it_rowlock";
  }
  EXPECT_TRUE(named);
  EXPECT_EQ(stats.round_trips, 2);
  std::printf("row-lock poll: %llu bytes, client %.6f s, server %.6f s, %zu lock rows\n",
              static_cast<unsigned long long>(stats.bytes_received), stats.client_seconds,
              stats.server_seconds, s.locks.size());
}

TEST_F(CollectorPgTest, PreparedTransactionHoldingARowIsNamedByGid) {
  CreateTable("lw_it_prepared");
  if (control_->Exec("SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'lw_it_gx1'") == "1") {
    control_->Exec("ROLLBACK PREPARED 'lw_it_gx1'");  // left over by an aborted run
  }
  Session preparer(dsn_);
  Session waiter(dsn_);
  preparer.Exec("BEGIN");
  preparer.Exec("UPDATE lw_it_prepared SET v = 1 WHERE id = 2");
  preparer.Exec("PREPARE TRANSACTION 'lw_it_gx1'");
  waiter.Send("UPDATE lw_it_prepared SET v = 2 WHERE id = 2");
  WaitUntilLockWait(waiter.pid());

  Collector collector(dsn_);
  ASSERT_TRUE(collector.Connect().ok());
  core::Result<core::Snapshot> r = collector.Poll();
  control_->Exec("ROLLBACK PREPARED 'lw_it_gx1'");
  waiter.Drain();
  ASSERT_TRUE(r.ok()) << r.status().message();
  const core::Snapshot& s = r.value();
  const core::LockRow* wait = FindLock(s, waiter.pid(), false, "transactionid");
  ASSERT_NE(wait, nullptr);
  bool prepared_holder = false;
  for (const core::LockRow& l : s.locks) {
    if (!l.pid.has_value() && l.granted && l.transactionid == wait->transactionid) prepared_holder = true;
  }
  EXPECT_TRUE(prepared_holder);
  bool gid_found = false;
  for (const core::PreparedXact& p : s.prepared) {
    if (p.gid == "lw_it_gx1") gid_found = p.transaction == wait->transactionid;
  }
  EXPECT_TRUE(gid_found);
}

// The snapshot statement's plan line for pg_lock_status(), from EXPLAIN ANALYZE ("" when absent).
std::string LockFunctionPlanLine(Session& session) {
  const int version = std::stoi(session.Exec("SELECT current_setting('server_version_num')"));
  for (const std::string& line :
       session.Rows("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + SnapshotSql(version))) {
    if (line.find("pg_lock_status") != std::string::npos) return line;
  }
  return "";
}

TEST_F(CollectorPgTest, SnapshotStatementRunsPgLockStatusOnlyWhenSomeoneWaits) {
  const std::string idle = LockFunctionPlanLine(*control_);
  EXPECT_NE(idle.find("Function Scan on pg_lock_status"), std::string::npos) << idle;
  EXPECT_NE(idle.find("(never executed)"), std::string::npos) << idle;

  control_->Exec("DROP TABLE IF EXISTS lw_it_gate");
  control_->Exec("CREATE TABLE lw_it_gate (id int)");
  Session holder(dsn_);
  Session waiter(dsn_);
  ASSERT_TRUE(holder.ok() && waiter.ok());
  holder.Exec("BEGIN");
  holder.Exec("LOCK TABLE lw_it_gate IN ACCESS SHARE MODE");
  waiter.Send("BEGIN; LOCK TABLE lw_it_gate IN ACCESS EXCLUSIVE MODE");
  WaitUntilLockWait(waiter.pid());
  const std::string busy = LockFunctionPlanLine(*control_);
  holder.Exec("ROLLBACK");
  waiter.Drain();
  waiter.Exec("ROLLBACK");
  EXPECT_NE(busy.find("Function Scan on pg_lock_status"), std::string::npos) << busy;
  EXPECT_EQ(busy.find("never executed"), std::string::npos) << busy;
}

// The snapshot's lock rows are exactly those of the plain definition (a correlated EXISTS over every key
// column with IS NOT DISTINCT FROM, no sentinels, no pre-filter) in a pile-up mixing relation, advisory,
// row (transactionid and tuple) and prepared-transaction waits with many granted locks nobody waits for.
TEST_F(CollectorPgTest, SnapshotLockRowsAreThoseOfThePlainDefinition) {
  CreateTable("lw_it_def_rows");
  control_->Exec("DROP TABLE IF EXISTS lw_it_def_rel");
  control_->Exec("CREATE TABLE lw_it_def_rel (id int)");
  if (control_->Exec("SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'lw_it_def_gx'") == "1") {
    control_->Exec("ROLLBACK PREPARED 'lw_it_def_gx'");  // left over by an aborted run
  }
  Session row_holder(dsn_), row_waiter(dsn_), tuple_waiter(dsn_), advisory_holder(dsn_),
      advisory_waiter(dsn_), rel_holder(dsn_), rel_exclusive(dsn_), rel_share(dsn_), preparer(dsn_),
      prepared_waiter(dsn_);
  for (Session* s : {&row_holder, &row_waiter, &tuple_waiter, &advisory_holder, &advisory_waiter, &rel_holder,
                     &rel_exclusive, &rel_share, &preparer, &prepared_waiter}) {
    ASSERT_TRUE(s->ok()) << s->error();
  }
  row_holder.Exec("BEGIN");
  row_holder.Exec("UPDATE lw_it_def_rows SET v = 1 WHERE id = 1");
  row_waiter.Send("UPDATE lw_it_def_rows SET v = 2 WHERE id = 1");
  WaitUntilLockWait(row_waiter.pid());
  tuple_waiter.Send("UPDATE lw_it_def_rows SET v = 3 WHERE id = 1");
  WaitUntilLockWait(tuple_waiter.pid());
  advisory_holder.Exec("BEGIN");
  advisory_holder.Exec("SELECT count(pg_advisory_xact_lock(k)) FROM generate_series(7000, 7200) AS k");
  advisory_waiter.Send("SELECT pg_advisory_xact_lock(7100)");
  WaitUntilLockWait(advisory_waiter.pid());
  rel_holder.Exec("BEGIN");
  rel_holder.Exec("LOCK TABLE lw_it_def_rel IN ACCESS SHARE MODE");
  rel_holder.Exec("SELECT count(pg_advisory_xact_lock(k)) FROM generate_series(8000, 8100) AS k");
  rel_exclusive.Send("BEGIN; LOCK TABLE lw_it_def_rel IN ACCESS EXCLUSIVE MODE");
  WaitUntilLockWait(rel_exclusive.pid());
  rel_share.Send("SELECT count(*) FROM lw_it_def_rel");
  WaitUntilLockWait(rel_share.pid());
  preparer.Exec("BEGIN");
  preparer.Exec("UPDATE lw_it_def_rows SET v = 4 WHERE id = 2");
  preparer.Exec("PREPARE TRANSACTION 'lw_it_def_gx'");
  prepared_waiter.Send("UPDATE lw_it_def_rows SET v = 5 WHERE id = 2");
  WaitUntilLockWait(prepared_waiter.pid());

  const int version = std::stoi(control_->Exec("SELECT current_setting('server_version_num')"));
  std::string columns;
  for (std::size_t i = 1; i <= kLockFields.size(); ++i) columns += (i > 1 ? ", c" : "c") + std::to_string(i);
  std::vector<std::string> got =
      control_->Rows("SELECT " + columns + " FROM (" + SnapshotSql(version) + ") AS t WHERE kind = 'l'");
  const std::string same = " IS NOT DISTINCT FROM l.";
  std::vector<std::string> want = control_->Rows(
      "WITH l AS MATERIALIZED (SELECT * FROM pg_lock_status() WHERE NOT fastpath AND mode <> 'SIReadLock')\n"
      "SELECT locktype, database::text, relation::text, page::text, tuple::text, virtualxid,\n"
      "       transactionid::text, classid::text, objid::text, objsubid::text, virtualtransaction, "
      "pid::text,\n"
      "       mode, CASE WHEN granted THEN 't' ELSE 'f' END, CASE WHEN fastpath THEN 't' ELSE 'f' END,\n"
      "       (extract(epoch FROM waitstart) * 1000000)::int8::text\n"
      "FROM l WHERE pid IS NULL\n"
      "   OR EXISTS (SELECT 1 FROM l AS x WHERE NOT x.granted AND x.locktype = l.locktype\n"
      "              AND x.database" +
      same + "database AND x.relation" + same +
      "relation\n"
      "              AND x.page" +
      same + "page AND x.tuple" + same +
      "tuple\n"
      "              AND x.virtualxid" +
      same + "virtualxid AND x.transactionid" + same +
      "transactionid\n"
      "              AND x.classid" +
      same + "classid AND x.objid" + same +
      "objid\n"
      "              AND x.objsubid" +
      same +
      "objsubid)\n"
      "   OR (locktype = 'tuple' AND granted AND pid IN (SELECT y.pid FROM l AS y WHERE NOT y.granted))");
  const std::string granted_locks = control_->Exec("SELECT count(*) FROM pg_locks WHERE granted");

  rel_holder.Exec("ROLLBACK");
  rel_exclusive.Drain();
  rel_exclusive.Exec("ROLLBACK");
  rel_share.Drain();
  advisory_holder.Exec("ROLLBACK");
  advisory_waiter.Drain();
  row_holder.Exec("ROLLBACK");
  row_waiter.Drain();
  tuple_waiter.Drain();
  control_->Exec("ROLLBACK PREPARED 'lw_it_def_gx'");
  prepared_waiter.Drain();

  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  // 6 waiting rows, their holders and queue, the prepared transaction's rows, the row waiter's tuple lock.
  EXPECT_GE(want.size(), 13u);
  EXPECT_GT(std::stoi(granted_locks), 300);  // the advisory locks nobody waits for were there
  for (const char* locktype : {"relation", "advisory", "transactionid", "tuple"}) {
    EXPECT_TRUE(std::any_of(want.begin(), want.end(),
                            [&](const std::string& row) {
                              return row.rfind(std::string(locktype) + "|", 0) == 0 &&
                                     row.find("|f|f|") != std::string::npos;
                            }))
        << "no waiting " << locktype << " row";
  }
}

TEST_F(CollectorPgTest, BadDsnIsInvalidArgumentWithoutThePassword) {
  Collector collector("hots=localhost password=Sekr3tPw");
  core::Status st = collector.Connect();
  EXPECT_EQ(st.code(), core::Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("invalid connection option \"hots\""), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("Sekr3tPw"), std::string::npos);
  EXPECT_EQ(collector.redacted_dsn(), "hots=localhost password=***");
  EXPECT_FALSE(collector.connected());
}

TEST_F(CollectorPgTest, RefusedPortIsUnavailableAndPollNeedsConnect) {
  Collector collector("host=127.0.0.1 port=1 user=nobody password=Sekr3tPw connect_timeout=2");
  core::Status st = collector.Connect();
  EXPECT_EQ(st.code(), core::Status::Code::kUnavailable) << st.message();
  EXPECT_EQ(st.message().find("Sekr3tPw"), std::string::npos);
  EXPECT_NE(st.message().find("password=***"), std::string::npos) << st.message();
  EXPECT_EQ(collector.server_version_num(), 0);
  core::Result<core::Snapshot> r = collector.Poll();
  EXPECT_EQ(r.status().code(), core::Status::Code::kUnavailable);
}

TEST_F(CollectorPgTest, UnknownRoleIsPermissionDenied) {
  Collector collector(dsn_ + " user=lw_it_no_such_role");
  core::Status st = collector.Connect();
  EXPECT_EQ(st.code(), core::Status::Code::kPermissionDenied) << st.message();
}

TEST_F(CollectorPgTest, TerminatedSessionIsUnavailableThenReconnects) {
  Collector collector(dsn_);
  ASSERT_TRUE(collector.Connect().ok());
  core::Result<core::Snapshot> first = collector.Poll();
  ASSERT_TRUE(first.ok()) << first.status().message();
  control_->Exec("SELECT pg_terminate_backend(" + std::to_string(first.value().own_pid) + ")");
  std::this_thread::sleep_for(milliseconds(200));
  core::Result<core::Snapshot> lost = collector.Poll();
  EXPECT_EQ(lost.status().code(), core::Status::Code::kUnavailable) << lost.status().message();
  // Says what happened, not libpqxx's "Could not obtain client encoding".
  EXPECT_NE(lost.status().message().find("the server closed the connection"), std::string::npos)
      << lost.status().message();
  EXPECT_EQ(lost.status().message().find("encoding"), std::string::npos) << lost.status().message();
  EXPECT_FALSE(collector.connected());
  ASSERT_TRUE(collector.Connect().ok());
  core::Result<core::Snapshot> again = collector.Poll();
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_NE(again.value().own_pid, first.value().own_pid);
}

// A DBA's LOCK TABLE pg_class (or VACUUM FULL pg_class) must not stall the monitor: the snapshot
// statement touches no pg_class, and the names statement gives up after lock_timeout.
TEST_F(CollectorPgTest, LockedPgClassLeavesRelationUnnamedButPollSucceeds) {
  CreateTable("lw_it_catalog");
  const std::string oid = control_->Exec("SELECT 'lw_it_catalog'::regclass::oid");
  Collector collector(dsn_);
  ASSERT_TRUE(collector.Connect().ok());
  ASSERT_TRUE(
      collector.Poll().ok());  // a monitoring connection is long-lived: statement prepared, caches warm

  Session holder(dsn_);
  Session waiter(dsn_);
  Session dba(dsn_);
  holder.Exec("BEGIN");
  holder.Exec("UPDATE lw_it_catalog SET v = v + 1 WHERE id = 1");
  waiter.Send("UPDATE lw_it_catalog SET v = v + 1 WHERE id = 1");
  WaitUntilLockWait(waiter.pid());
  dba.Exec("SET lock_timeout = '5s'");
  dba.Exec("BEGIN");
  dba.Exec("LOCK TABLE pg_class IN ACCESS EXCLUSIVE MODE");

  const auto start = steady_clock::now();
  PollStats stats;
  core::Result<core::Snapshot> r = collector.Poll(&stats);
  const double seconds = std::chrono::duration<double>(steady_clock::now() - start).count();
  dba.Exec("ROLLBACK");
  holder.Exec("ROLLBACK");
  waiter.Drain();

  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_LT(seconds, 2.0);
  const core::Snapshot& s = r.value();
  EXPECT_TRUE(s.locks_read);
  ASSERT_NE(FindLock(s, waiter.pid(), false, "transactionid"), nullptr);
  const core::LockRow* tuple = FindLock(s, waiter.pid(), true, "tuple");
  ASSERT_NE(tuple, nullptr);
  EXPECT_EQ(std::to_string(tuple->relation.value_or(0)), oid);
  for (const core::RelationName& n : s.relation_names) EXPECT_NE(std::to_string(n.relation), oid) << n.name;
  EXPECT_EQ(stats.relation_names_status.code(), core::Status::Code::kTimeout)
      << stats.relation_names_status.message();
  EXPECT_NE(stats.relation_names_status.message().find("55P03"), std::string::npos);
  std::printf("poll with pg_class locked: %.3f s; names: %s\n", seconds,
              stats.relation_names_status.message().c_str());

  // The connection survived the names statement's timeout.
  EXPECT_TRUE(collector.connected());
  EXPECT_TRUE(collector.Poll().ok());
}

// A fresh backend reads pg_class during startup: while a catalog is locked it must fail fast (lock_timeout
// in the startup packet) instead of queueing behind the lock, where it would stay even after the client
// gave up.
TEST_F(CollectorPgTest, ConnectWhilePgClassLockedFailsFastWithoutQueueing) {
  Session dba(dsn_);
  dba.Exec("SET lock_timeout = '5s'");
  dba.Exec("BEGIN");
  dba.Exec("LOCK TABLE pg_class IN ACCESS EXCLUSIVE MODE");
  Collector collector(dsn_);
  const auto start = steady_clock::now();
  core::Status st = collector.Connect();
  const double seconds = std::chrono::duration<double>(steady_clock::now() - start).count();
  std::this_thread::sleep_for(milliseconds(200));
  // The lock holder itself may read the catalog; nobody may be left waiting for it.
  const std::string waiting = dba.Exec("SELECT count(*) FROM pg_lock_status() WHERE NOT granted");
  dba.Exec("ROLLBACK");
  EXPECT_EQ(st.code(), core::Status::Code::kUnavailable) << st.message();
  EXPECT_NE(st.message().find("lock timeout"), std::string::npos) << st.message();
  EXPECT_LT(seconds, 2.0);
  EXPECT_EQ(waiting, "0");
  ASSERT_TRUE(collector.Connect().ok());  // once the lock is gone
}

}  // namespace
}  // namespace lockwatch::pg
