#pragma once

// Internal to the PostgreSQL adapter: what the collector and the actuator share about opening lockwatch's
// own sessions and turning libpqxx exceptions into core::Status values. Not for use outside agent/pg.

#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include <pqxx/pqxx>

#include "agent/core/status.h"
#include "agent/pg/collector.h"
#include "agent/pg/dsn.h"

namespace lockwatch::pg {

// `s` without trailing whitespace.
std::string TrimRight(std::string s);

// The server's message from an exception text, without libpq's "ERROR:  " / "FATAL:  " prefix and without
// the lines that follow the first.
std::string ServerMessage(const std::string& what);

// True for SQLSTATEs that mean the session is gone: connection exceptions (class 08) and operator
// intervention (admin shutdown, crash shutdown, pg_terminate_backend).
bool SessionEnded(std::string_view sqlstate);

// The SQLSTATE of a libpqxx SQL error. libpqxx 6.4 drops the code when it throws one of its specific
// subclasses (e.g. insufficient_privilege for 42501); the class then says it.
std::string SqlState(const pqxx::sql_error& e);

// The Status for an SQL error: 42501/28xxx kPermissionDenied, 57014/55P03 kTimeout, session ended
// kUnavailable, anything else kQueryFailed. `message` is already scrubbed.
core::Status SqlErrorStatus(const std::string& sqlstate, const std::string& message);

// The libpq conninfo of one of lockwatch's sessions: the user's DSN plus application_name (always ours),
// lock_timeout and statement_timeout in the startup packet, and connect_timeout/keepalives unless the DSN
// chooses otherwise.
std::string SessionConninfo(const ConnParams& params, const SessionOptions& options);

// Parses `dsn`, connects with SessionConninfo() and checks the server version is supported. Errors as
// Collector::Connect(). `redacted_dsn` names the server in messages.
core::Status OpenSession(const std::string& dsn, const std::string& redacted_dsn,
                         const SessionOptions& options, std::unique_ptr<pqxx::connection>* conn);

// The text of a lost connection. libpqxx 6.4 reports a connection the server closed during a statement as
// "Could not obtain client encoding: not connected." (it asks for the encoding before it looks at the
// result); that says nothing to a DBA, so it is replaced by what it means. Other texts are scrubbed of the
// DSN's secrets.
std::string BrokenConnectionMessage(const std::string& what, const std::string& dsn);

// Runs `fn` (which uses libpqxx) and turns libpqxx's exceptions into a Status; `what` prefixes messages,
// `dsn` is scrubbed from them.
template <typename Fn>
core::Status Guard(const std::string& what, const std::string& dsn, Fn&& fn) {
  try {
    fn();
    return core::Status::Ok();
  } catch (const pqxx::broken_connection& e) {
    return core::Status::Unavailable(what + ": connection lost: " + BrokenConnectionMessage(e.what(), dsn));
  } catch (const pqxx::sql_error& e) {
    const std::string state = SqlState(e);
    return SqlErrorStatus(state, what + ": SQLSTATE " + (state.empty() ? "?" : state) + ": " +
                                     ScrubSecrets(ServerMessage(e.what()), dsn));
  } catch (const std::exception& e) {
    return core::Status::Internal(what + ": " + ScrubSecrets(TrimRight(e.what()), dsn));
  }
}

}  // namespace lockwatch::pg
