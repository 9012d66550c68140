#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "agent/core/action.h"
#include "agent/core/status.h"
#include "agent/pg/collector.h"

namespace lockwatch::pg {

// The signal sent to a backend.
enum class SignalKind { kCancel, kTerminate };

// "cancel", "terminate".
const char* SignalKindName(SignalKind kind);

// What happened to one signal request. Every value except kSignalled/kExited/kStillRunning means nothing was
// sent.
enum class SignalResult {
  kSignalled,     // cancel sent; or terminate sent and not awaited (terminate_wait 0)
  kExited,        // terminate sent and the backend was gone within terminate_wait
  kStillRunning,  // terminate sent, the backend was still there when terminate_wait ran out
  kStale,         // no live backend matched the identity (pid gone or reused, transaction or state changed)
  kRefused,  // the live backend is not a valid victim: superuser (without allow_superuser), lockwatch's own
             // session, or a backend type other than a client backend (autovacuum worker without
             // allow_autovacuum, walsender, background worker, ...); `message` says which
  kPermissionDenied,  // the server refused the signal (SQLSTATE 42501: not a member of pg_signal_backend or
                      // of the victim's role), or this role cannot read the session's details in
                      // pg_stat_activity (needs pg_read_all_stats, e.g. via pg_monitor), so its identity
                      // cannot be checked: count it, never retry in a loop
  kError,  // the statement failed for another reason (message carries the SQLSTATE); the signal may or may
           // not have been sent (e.g. statement_timeout while waiting for the exit)
};

// "signalled", "exited", "still_running", "stale", "refused", "permission_denied", "error".
const char* SignalResultName(SignalResult result);

// True for the results where a signal reached the backend (kSignalled, kExited, kStillRunning).
bool SignalSent(SignalResult result);

struct SignalOutcome {
  SignalResult result = SignalResult::kError;
  std::string message;  // human-readable detail (why refused, the server's warning or error); no secrets
  double seconds = 0;   // wall time of Signal(), waiting for the exit included
};

struct SignalRequest {
  // The session as analysed. pid and backend_start are required (a request without backend_start is
  // rejected with kInvalidArgument: pid alone is never enough); xact_start and state_change are compared
  // when set. Timestamps compare exactly, to the microsecond.
  core::VictimIdentity victim;
  SignalKind kind = SignalKind::kCancel;
  // kTerminate: how long to wait for the backend to exit (PG14+: pg_terminate_backend(pid, timeout); older
  // servers: the actuator polls pg_stat_activity). 0 = do not wait (result kSignalled).
  std::chrono::milliseconds terminate_wait{5000};
  // A rule that names superusers explicitly. Sessions whose role cannot be read count as superusers.
  bool allow_superuser = false;
  // A rule that names autovacuum workers explicitly (their backend_type is 'autovacuum worker'; signalling
  // one needs superuser, or pg_signal_autovacuum_worker on PG18+). Other non-client backends are never
  // victims.
  bool allow_autovacuum = false;
};

// The race-free signalling statement, on its own short-lived connection. One Signal() is one statement
// that re-reads the live pg_stat_activity row and signals it only when pid, backend_start (and, when set,
// xact_start and state_change) still equal the analysed identity and the session is a valid victim (never
// lockwatch's own sessions, i.e. this connection and every session whose application_name starts with
// "lockwatch"; superusers only with allow_superuser). Permissions needed: pg_read_all_stats (e.g. via
// pg_monitor) to see other roles' sessions and pg_signal_backend (or membership in the victim's role) to
// signal them; not superuser.
//
// Not thread-safe: one actuator per target, used by one thread. Non-copyable; owns the connection.
class Actuator {
 public:
  // `dsn` as for Collector. `options.application_name` defaults to "lockwatch-actuator" when left at the
  // collector's default; statement_timeout bounds a cancel and is extended by terminate_wait for a
  // terminate; lock_timeout keeps the statement out of any lock queue.
  explicit Actuator(std::string dsn, SessionOptions options = {});
  ~Actuator();
  Actuator(const Actuator&) = delete;
  Actuator& operator=(const Actuator&) = delete;

  // Opens the connection (if not open). Errors as Collector::Connect(). Signal() connects on demand, so
  // calling this first is optional; Disconnect() when idle so no connection slot is held needlessly.
  core::Status Connect();
  bool connected() const;
  void Disconnect();

  // Sends one signal. A non-OK Result means no attempt could be made or its outcome is unknown because the
  // connection was lost (kUnavailable: reconnect later), or the request is invalid (kInvalidArgument);
  // every answer from the server, including "permission denied", is an OK Result with a SignalResult.
  core::Result<SignalOutcome> Signal(const SignalRequest& request);

  // Testing only: choose the SQL as if the server were of this version (e.g. 130000 on a PG15 server runs
  // the pre-14 terminate that polls for the exit). 0 (the default) uses the real version.
  void ForceServerVersionForTesting(int server_version_num);

  // The server_version_num of the connected server (0 when not connected).
  int server_version_num() const;
  // The DSN with the password removed, for logs.
  const std::string& redacted_dsn() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lockwatch::pg
