#include "tests/testing/pg_harness.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <sstream>
#include <thread>

#include <libpq-fe.h>
#include <poll.h>

namespace lockwatch::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Polling interval while waiting for server-side state: short enough to keep tests fast, long enough not to
// flood the server on 2 cores.
constexpr std::chrono::milliseconds kPollInterval{5};

std::string ConnError(const PGconn* conn) {
  std::string message = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

std::string ResultError(const PGresult* result) {
  std::string message = PQresultErrorMessage(result);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

std::string QuoteIdent(const std::string& ident) {
  std::string out = "\"";
  for (char c : ident) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::vector<int32_t> ParseIntColumn(const Rows& rows) {
  std::vector<int32_t> out;
  out.reserve(rows.size());
  for (const Row& row : rows) {
    if (!row.empty() && row[0].has_value()) out.push_back(std::stoi(*row[0]));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string TestDsn() {
  const char* dsn = std::getenv("LOCKWATCH_TEST_DSN");
  if (dsn == nullptr || *dsn == '\0') {
    throw HarnessError(
        "LOCKWATCH_TEST_DSN is not set: these tests need a throwaway PostgreSQL 15 server. Run "
        "`bash tests/run.sh` (it starts one), or start one with `eval \"$(bash tests/pg_cluster.sh start)\"` "
        "and run ctest again; `ctest -LE pg` runs the unit tests alone.");
  }
  return dsn;
}

PgSession::PgSession(const std::string& dsn, const std::string& application_name)
    : application_name_(application_name) {
  const std::array<const char*, 4> keywords = {"dbname", "application_name", "connect_timeout", nullptr};
  const std::array<const char*, 4> values = {dsn.c_str(), application_name.c_str(), "10", nullptr};
  // expand_dbname=1: the first "dbname" value is a full conninfo string; later keywords override it.
  conn_ = PQconnectdbParams(keywords.data(), values.data(), 1);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    std::string message = ConnError(conn_);
    PQfinish(conn_);
    conn_ = nullptr;
    throw HarnessError("cannot connect to the test server (" + application_name + "): " + message);
  }
  pid_ = PQbackendPID(conn_);
  // NOTICEs (DROP ... CASCADE details, "does not exist, skipping") would only clutter test output.
  PQsetNoticeProcessor(
      conn_, [](void* /*arg*/, const char* /*message*/) {}, nullptr);
}

PgSession::~PgSession() { Close(); }

void PgSession::CheckOpen() const {
  if (conn_ == nullptr) throw HarnessError("session " + application_name_ + " is closed");
}

Rows PgSession::Exec(const std::string& sql) {
  CheckOpen();
  if (pending_) {
    throw HarnessError("session " + application_name_ + " (pid " + std::to_string(pid_) +
                       ") still runs a sent statement; cannot Exec: " + sql);
  }
  if (PQsendQuery(conn_, sql.c_str()) == 0) {
    throw HarnessError("send failed on pid " + std::to_string(pid_) + ": " + ConnError(conn_));
  }
  Rows rows;
  std::string error;
  while (PGresult* result = PQgetResult(conn_)) {
    ExecStatusType status = PQresultStatus(result);
    if (status == PGRES_TUPLES_OK) {
      rows.clear();
      const int n_rows = PQntuples(result);
      const int n_cols = PQnfields(result);
      for (int r = 0; r < n_rows; ++r) {
        Row row;
        row.reserve(static_cast<size_t>(n_cols));
        for (int c = 0; c < n_cols; ++c) {
          if (PQgetisnull(result, r, c) != 0) {
            row.emplace_back(std::nullopt);
          } else {
            row.emplace_back(
                std::string(PQgetvalue(result, r, c), static_cast<size_t>(PQgetlength(result, r, c))));
          }
        }
        rows.push_back(std::move(row));
      }
    } else if (status == PGRES_COMMAND_OK) {
      rows.clear();
    } else if (error.empty()) {
      error = ResultError(result);
    }
    PQclear(result);
  }
  if (!error.empty()) {
    throw HarnessError("SQL failed on pid " + std::to_string(pid_) + " (" + application_name_ +
                       "): " + error + "\n  statement: " + sql);
  }
  if (PQstatus(conn_) != CONNECTION_OK) {
    throw HarnessError("connection of pid " + std::to_string(pid_) + " broken: " + ConnError(conn_));
  }
  return rows;
}

std::optional<std::string> PgSession::ExecScalar(const std::string& sql) {
  Rows rows = Exec(sql);
  if (rows.size() != 1 || rows[0].size() != 1) {
    throw HarnessError("expected one value from: " + sql + " (got " + std::to_string(rows.size()) + " rows)");
  }
  return rows[0][0];
}

void PgSession::Send(const std::string& sql) {
  CheckOpen();
  if (pending_) {
    throw HarnessError("session " + application_name_ +
                       " already runs a sent statement; cannot send: " + sql);
  }
  if (PQsendQuery(conn_, sql.c_str()) == 0) {
    throw HarnessError("send failed on pid " + std::to_string(pid_) + ": " + ConnError(conn_));
  }
  pending_ = true;
}

bool PgSession::IsBusy() {
  if (conn_ == nullptr || !pending_) return false;
  if (PQconsumeInput(conn_) == 0) return false;  // connection broken: Drain reports it
  return PQisBusy(conn_) != 0;
}

std::string PgSession::Drain(std::chrono::milliseconds timeout) {
  if (conn_ == nullptr || !pending_) return "";
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    if (PQconsumeInput(conn_) == 0) {
      pending_ = false;
      return "connection broken: " + ConnError(conn_);
    }
    if (PQisBusy(conn_) == 0) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      throw HarnessError("statement on pid " + std::to_string(pid_) + " (" + application_name_ +
                         ") still running after " + std::to_string(timeout.count()) + " ms");
    }
    pollfd fd{};
    fd.fd = PQsocket(conn_);
    fd.events = POLLIN;
    poll(&fd, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
  }
  std::string error;
  while (PGresult* result = PQgetResult(conn_)) {
    ExecStatusType status = PQresultStatus(result);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY &&
        error.empty()) {
      error = ResultError(result);
      if (error.empty()) error = PQresStatus(status);
    }
    PQclear(result);
  }
  pending_ = false;
  return error;
}

bool PgSession::Cancel() {
  if (conn_ == nullptr) return false;
  PGcancel* cancel = PQgetCancel(conn_);
  if (cancel == nullptr) return false;
  std::array<char, 256> errbuf{};
  const bool sent = PQcancel(cancel, errbuf.data(), static_cast<int>(errbuf.size())) != 0;
  PQfreeCancel(cancel);
  return sent;
}

void PgSession::Close() {
  if (conn_ == nullptr) return;
  if (pending_) {
    Cancel();
    try {
      Drain(std::chrono::milliseconds(5000));
    } catch (const HarnessError&) {
      // Still running after a cancel: closing the connection below ends the backend anyway.
    }
    pending_ = false;
  }
  PQfinish(conn_);
  conn_ = nullptr;
}

namespace {

// One probe of a pid's lock wait: true when it waits on a heavyweight lock with waitstart recorded.
bool IsWaitingOnLock(PgSession& observer, int32_t pid) {
  const std::string p = std::to_string(pid);
  std::optional<std::string> v = observer.ExecScalar(
      "SELECT coalesce((SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = " + p +
      "), false) AND EXISTS (SELECT 1 FROM pg_locks WHERE pid = " + p +
      " AND NOT granted AND waitstart IS NOT NULL)");
  return v.has_value() && *v == "t";
}

std::string ActivityOf(PgSession& observer, int32_t pid) {
  Rows rows =
      observer.Exec("SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity WHERE pid = " +
                    std::to_string(pid));
  if (rows.empty()) return "pid " + std::to_string(pid) + " not in pg_stat_activity";
  auto s = [](const std::optional<std::string>& v) { return v.value_or("NULL"); };
  return "pid " + std::to_string(pid) + " state=" + s(rows[0][0]) + " wait=" + s(rows[0][1]) + "/" +
         s(rows[0][2]) + " query=" + s(rows[0][3]);
}

}  // namespace

void WaitUntilWaiting(PgSession& observer, int32_t pid, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (!IsWaitingOnLock(observer, pid)) {
    if (Clock::now() > deadline) {
      throw HarnessError("timeout after " + std::to_string(timeout.count()) +
                         " ms waiting for a lock wait with waitstart: " + ActivityOf(observer, pid));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void WaitUntilWaiting(PgSession& observer, PgSession& session, std::chrono::milliseconds timeout) {
  std::string error;
  if (WaitUntilFinishedOrWaiting(observer, session, timeout, &error) == WaitOutcome::kFinished) {
    throw HarnessError("statement of pid " + std::to_string(session.pid()) +
                       " finished instead of waiting on a lock" + (error.empty() ? "" : ": " + error));
  }
}

WaitOutcome WaitUntilFinishedOrWaiting(PgSession& observer, PgSession& session,
                                       std::chrono::milliseconds timeout, std::string* error) {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    if (!session.IsBusy()) {
      std::string message = session.Drain(std::chrono::milliseconds(1000));
      if (error != nullptr) *error = message;
      return WaitOutcome::kFinished;
    }
    if (IsWaitingOnLock(observer, session.pid())) return WaitOutcome::kWaitingOnLock;
    if (Clock::now() > deadline) {
      throw HarnessError(
          "timeout after " + std::to_string(timeout.count()) +
          " ms: statement neither finished nor waits on a lock: " + ActivityOf(observer, session.pid()));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void WaitUntilWaitEvent(PgSession& observer, int32_t pid, const std::string& wait_event_type,
                        const std::string& wait_event, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  const std::string sql = "SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(pid) +
                          " AND wait_event_type = '" + wait_event_type + "' AND wait_event = '" + wait_event +
                          "'";
  while (observer.ExecScalar(sql).value_or("0") != "1") {
    if (Clock::now() > deadline) {
      std::string message = "timeout waiting for wait event ";
      message += wait_event_type;
      message += "/";
      message += wait_event;
      message += ": ";
      message += ActivityOf(observer, pid);
      throw HarnessError(message);
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void WaitUntilTrue(PgSession& observer, const std::string& sql, const std::string& what,
                   std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (observer.ExecScalar(sql).value_or("f") != "t") {
    if (Clock::now() > deadline) {
      throw HarnessError("timeout after " + std::to_string(timeout.count()) + " ms waiting until " + what);
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void WaitUntilParallelWorkers(PgSession& observer, int32_t leader_pid, int count,
                              std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  const std::string sql =
      "SELECT count(*) FROM pg_stat_activity WHERE leader_pid = " + std::to_string(leader_pid) +
      " AND pid <> " + std::to_string(leader_pid) + " AND backend_type = 'parallel worker'";
  while (std::stoi(observer.ExecScalar(sql).value_or("0")) < count) {
    if (Clock::now() > deadline) {
      throw HarnessError("timeout waiting for " + std::to_string(count) + " parallel workers of leader " +
                         ActivityOf(observer, leader_pid));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void WaitUntilGone(PgSession& observer, const std::vector<int32_t>& pids, std::chrono::milliseconds timeout) {
  if (pids.empty()) return;
  std::string list;
  for (int32_t pid : pids) list += (list.empty() ? "" : ",") + std::to_string(pid);
  const std::string count_sql = "SELECT count(*) FROM pg_stat_activity WHERE pid IN (" + list + ")";
  const Clock::time_point start = Clock::now();
  bool terminated = false;
  while (observer.ExecScalar(count_sql).value_or("0") != "0") {
    const auto elapsed = Clock::now() - start;
    if (!terminated && elapsed > timeout / 2) {
      observer.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN (" + list + ")");
      terminated = true;
    }
    if (elapsed > timeout) {
      throw HarnessError("backends still present after " + std::to_string(timeout.count()) + " ms: " + list);
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::vector<int32_t> BlockingPids(PgSession& observer, int32_t pid) {
  return ParseIntColumn(observer.Exec("SELECT unnest(pg_blocking_pids(" + std::to_string(pid) + "))"));
}

std::vector<int32_t> SafeSnapshotBlockingPids(PgSession& observer, int32_t pid) {
  return ParseIntColumn(
      observer.Exec("SELECT unnest(pg_safe_snapshot_blocking_pids(" + std::to_string(pid) + "))"));
}

int RollbackPreparedWithPrefix(PgSession& observer, const std::string& prefix) {
  Rows rows = observer.Exec("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()");
  int n = 0;
  for (const Row& row : rows) {
    if (!row[0].has_value() || row[0]->compare(0, prefix.size(), prefix) != 0) continue;
    std::string gid;
    for (char c : *row[0]) {
      if (c == '\'') gid += '\'';
      gid += c;
    }
    observer.Exec("ROLLBACK PREPARED '" + gid + "'");
    ++n;
  }
  return n;
}

void ResetScenarioSchema(PgSession& admin, const std::string& schema, const ScenarioSchemaOptions& options) {
  const std::string s = QuoteIdent(schema);
  admin.Exec("DROP SCHEMA IF EXISTS " + s + " CASCADE; CREATE SCHEMA " + s + "; SET search_path = " + s +
             ";" +
             "CREATE TABLE t(id int PRIMARY KEY, v int);"
             "INSERT INTO t SELECT g, 0 FROM generate_series(1, 10) g;"
             "CREATE TABLE t2(id int, v int); INSERT INTO t2 VALUES (1, 1);"
             "CREATE TABLE t3(id int); CREATE TABLE t4(id int);"
             "CREATE TABLE other(id int); INSERT INTO other VALUES (1);");
  if (options.big_table) {
    admin.Exec(
        "CREATE TABLE big AS SELECT g AS id, g AS v FROM generate_series(1, 200000) g; ANALYZE big;"
        "CREATE FUNCTION slow_true(int) RETURNS bool LANGUAGE plpgsql PARALLEL SAFE AS "
        "$$BEGIN PERFORM pg_sleep(0.0005); RETURN true; END$$;");
  }
  admin.Exec("RESET search_path");
}

void DropSchema(PgSession& admin, const std::string& schema) {
  admin.Exec("DROP SCHEMA IF EXISTS " + QuoteIdent(schema) + " CASCADE");
}

void SetSearchPath(PgSession& session, const std::string& schema) {
  session.Exec("SET search_path = " + QuoteIdent(schema));
}

std::string DumpLockState(PgSession& observer, const std::vector<int32_t>& pids) {
  std::string list;
  for (int32_t pid : pids) list += (list.empty() ? "" : ",") + std::to_string(pid);
  if (list.empty()) list = "-1";
  std::ostringstream out;
  auto print = [&out](const Rows& rows) {
    for (const Row& row : rows) {
      out << "  ";
      for (size_t i = 0; i < row.size(); ++i) out << (i == 0 ? "" : " | ") << row[i].value_or("NULL");
      out << "\n";
    }
  };
  out << "pg_stat_activity (pid | leader_pid | application_name | state | wait_event_type | wait_event | "
         "blocking | query):\n";
  print(
      observer.Exec("SELECT pid, leader_pid, application_name, state, wait_event_type, wait_event, "
                    "pg_blocking_pids(pid)::text, left(query, 80) FROM pg_stat_activity WHERE pid IN (" +
                    list + ") OR leader_pid IN (" + list + ") ORDER BY pid"));
  out << "pg_locks (locktype | database | relation | page | tuple | virtualxid | transactionid | classid | "
         "objid | objsubid | virtualtransaction | pid | mode | granted | fastpath | waitstart):\n";
  print(observer.Exec(
      "SELECT locktype, database, relation::regclass::text, page, tuple, virtualxid, transactionid, classid, "
      "objid, "
      "objsubid, virtualtransaction, pid, mode, granted, fastpath, waitstart FROM pg_locks WHERE pid IN (" +
      list + ") OR pid IN (SELECT pid FROM pg_stat_activity WHERE leader_pid IN (" + list +
      ")) OR pid IS NULL ORDER BY pid, locktype, mode"));
  out << "pg_prepared_xacts (transaction | gid):\n";
  print(observer.Exec("SELECT transaction, gid FROM pg_prepared_xacts ORDER BY gid"));
  return out.str();
}

}  // namespace lockwatch::testing
