#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

// Helpers for tests against a real, throwaway PostgreSQL server (started by tests/pg_cluster.sh), written on
// raw libpq so that the harness never shares code with the adapter under test.
//
// Errors are reported by throwing HarnessError: GoogleTest turns an exception escaping a test body, SetUp or
// TearDown into a failure that prints the message, and RAII owners (PgSession) clean up during unwinding.

struct pg_conn;  // libpq's PGconn

namespace lockwatch::testing {

class HarnessError : public std::runtime_error {
 public:
  explicit HarnessError(const std::string& message) : std::runtime_error(message) {}
};

// The libpq conninfo of the test server from LOCKWATCH_TEST_DSN. Throws HarnessError with instructions when
// the variable is unset or empty, so a test run without a server fails loudly instead of passing or skipping.
std::string TestDsn();

// One row of text values; std::nullopt for SQL NULL.
using Row = std::vector<std::optional<std::string>>;
using Rows = std::vector<Row>;

// One client connection. Non-copyable, non-movable (hold it in a std::unique_ptr). The destructor cancels a
// running statement and closes the connection; the server rolls back an open transaction when the
// connection ends (prepared transactions survive: see RollbackPreparedWithPrefix).
class PgSession {
 public:
  // Connects and fails (throws) on error. `application_name` shows in pg_stat_activity.
  PgSession(const std::string& dsn, const std::string& application_name);
  ~PgSession();
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;
  PgSession(PgSession&&) = delete;
  PgSession& operator=(PgSession&&) = delete;

  // Backend pid of this connection.
  int32_t pid() const { return pid_; }

  // Runs `sql` (one or more statements) and waits for it. Throws on any SQL error or when a statement sent
  // with Send() is still pending. Returns the rows of the last statement.
  Rows Exec(const std::string& sql);
  // Exec for a statement returning exactly one row with one column; throws otherwise.
  std::optional<std::string> ExecScalar(const std::string& sql);

  // Sends `sql` without waiting for it (PQsendQuery). Throws when another statement is still pending.
  void Send(const std::string& sql);
  // True while a statement sent with Send() has not finished on the server. Reads available input.
  bool IsBusy();
  // True between Send() and a Drain() that collected the results.
  bool pending() const { return pending_; }

  // Waits up to `timeout` for the pending statement to finish and collects its results. Returns the error
  // message of a failed statement, "" on success; throws when the statement is still running at the deadline.
  // A no-op returning "" when nothing is pending.
  std::string Drain(std::chrono::milliseconds timeout);

  // Asks the server to cancel the running statement (PQcancel); does not wait. Returns false if the request
  // could not be sent.
  bool Cancel();

  // Cancels a pending statement, waits briefly for it, and closes the connection. Idempotent, never throws.
  void Close();
  bool closed() const { return conn_ == nullptr; }

 private:
  void CheckOpen() const;

  pg_conn* conn_ = nullptr;
  int32_t pid_ = 0;
  bool pending_ = false;
  std::string application_name_;
};

// Outcome of waiting on a session that runs a statement sent with Send().
enum class WaitOutcome {
  kWaitingOnLock,  // blocked on a heavyweight lock and its pg_locks row shows waitstart
  kFinished,       // the statement completed (successfully or not) before blocking
};

// Waits until `pid` waits on a heavyweight lock: pg_stat_activity.wait_event_type = 'Lock' AND its
// granted=false pg_locks row has waitstart IS NOT NULL (so arrival order is recorded). Throws HarnessError
// with the session's state on timeout.
void WaitUntilWaiting(PgSession& observer, int32_t pid, std::chrono::milliseconds timeout);
// Same, and throws immediately (with the server's message) if `session`'s statement finishes instead.
void WaitUntilWaiting(PgSession& observer, PgSession& session, std::chrono::milliseconds timeout);

// Waits until the statement pending on `session` either finished (its results are then collected, and the
// error message, if any, stored in *error) or blocks on a heavyweight lock with waitstart set.
WaitOutcome WaitUntilFinishedOrWaiting(PgSession& observer, PgSession& session,
                                       std::chrono::milliseconds timeout, std::string* error);

// Waits until pg_stat_activity shows `wait_event_type`/`wait_event` for `pid` (e.g. "IPC"/"SafeSnapshot").
void WaitUntilWaitEvent(PgSession& observer, int32_t pid, const std::string& wait_event_type,
                        const std::string& wait_event, std::chrono::milliseconds timeout);

// Waits until `sql` (a query returning one boolean) returns true. `what` names the condition in the timeout
// message.
void WaitUntilTrue(PgSession& observer, const std::string& sql, const std::string& what,
                   std::chrono::milliseconds timeout);

// Waits until `count` parallel workers of `leader_pid` are visible (pg_stat_activity.leader_pid).
void WaitUntilParallelWorkers(PgSession& observer, int32_t leader_pid, int count,
                              std::chrono::milliseconds timeout);

// Waits until none of `pids` is in pg_stat_activity any more; terminates the stragglers after half the
// timeout. Throws on timeout.
void WaitUntilGone(PgSession& observer, const std::vector<int32_t>& pids, std::chrono::milliseconds timeout);

// pg_blocking_pids(pid), sorted ascending, duplicates kept (0 = a prepared transaction).
std::vector<int32_t> BlockingPids(PgSession& observer, int32_t pid);
// pg_safe_snapshot_blocking_pids(pid), sorted ascending.
std::vector<int32_t> SafeSnapshotBlockingPids(PgSession& observer, int32_t pid);

// ROLLBACK PREPARED every prepared transaction whose gid starts with `prefix`. Returns how many.
int RollbackPreparedWithPrefix(PgSession& observer, const std::string& prefix);

// Which optional objects ResetScenarioSchema creates.
struct ScenarioSchemaOptions {
  bool big_table = false;  // `big` (200000 rows, analyzed) and parallel-safe slow_true(int), for S10
};

// Drops and recreates `schema` holding the section 9 tables of the lock reference (t, t2, t3, t4, other and
// optionally big + slow_true). Sessions reach them with SetSearchPath.
void ResetScenarioSchema(PgSession& admin, const std::string& schema,
                         const ScenarioSchemaOptions& options = {});
// DROP SCHEMA ... CASCADE (if it exists).
void DropSchema(PgSession& admin, const std::string& schema);
// SET search_path on a session.
void SetSearchPath(PgSession& session, const std::string& schema);

// Text dump of pg_stat_activity and pg_locks rows of `pids` (plus rows with a NULL pid), for failure
// messages.
std::string DumpLockState(PgSession& observer, const std::vector<int32_t>& pids);

}  // namespace lockwatch::testing
