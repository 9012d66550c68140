#include "agent/pg/pq_session.h"

#include <cctype>
#include <utility>

#include "agent/pg/queries.h"

namespace lockwatch::pg {
namespace {

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// libpq reports a failed connection as text only (no SQLSTATE reaches the client before the session
// exists), so authentication failures are recognised by libpq's and the server's English messages.
bool LooksLikeAuthFailure(std::string_view message) {
  return Contains(message, "authentication failed") || Contains(message, "pg_hba.conf") ||
         Contains(message, "no password supplied") || Contains(message, "password is required") ||
         (Contains(message, "role \"") && Contains(message, "does not exist"));
}

}  // namespace

std::string TrimRight(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.pop_back();
  return s;
}

std::string BrokenConnectionMessage(const std::string& what, const std::string& dsn) {
  if (Contains(what, "Could not obtain client encoding")) {
    return "the server closed the connection (backend terminated, server restarting or shutting down, or the "
           "network failed)";
  }
  return ScrubSecrets(TrimRight(what), dsn);
}

std::string ServerMessage(const std::string& what) {
  std::string first = what.substr(0, what.find('\n'));
  for (std::string_view prefix : {"ERROR:  ", "FATAL:  "}) {
    if (first.rfind(prefix, 0) == 0) first.erase(0, prefix.size());
  }
  return TrimRight(first);
}

bool SessionEnded(std::string_view sqlstate) {
  return sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

std::string SqlState(const pqxx::sql_error& e) {
  if (!e.sqlstate().empty()) return e.sqlstate();
  const pqxx::sql_error* p = &e;
  if (dynamic_cast<const pqxx::insufficient_privilege*>(p) != nullptr) return "42501";
  if (dynamic_cast<const pqxx::deadlock_detected*>(p) != nullptr) return "40P01";
  if (dynamic_cast<const pqxx::serialization_failure*>(p) != nullptr) return "40001";
  if (dynamic_cast<const pqxx::too_many_connections*>(p) != nullptr) return "53300";
  if (dynamic_cast<const pqxx::out_of_memory*>(p) != nullptr) return "53200";
  if (dynamic_cast<const pqxx::disk_full*>(p) != nullptr) return "53100";
  if (dynamic_cast<const pqxx::syntax_error*>(p) != nullptr) return "42601";
  if (dynamic_cast<const pqxx::undefined_table*>(p) != nullptr) return "42P01";
  if (dynamic_cast<const pqxx::undefined_column*>(p) != nullptr) return "42703";
  if (dynamic_cast<const pqxx::undefined_function*>(p) != nullptr) return "42883";
  if (dynamic_cast<const pqxx::feature_not_supported*>(p) != nullptr) return "0A000";
  return std::string();
}

core::Status SqlErrorStatus(const std::string& sqlstate, const std::string& message) {
  if (sqlstate == "42501" || sqlstate == "28P01" || sqlstate == "28000")
    return core::Status::PermissionDenied(message);
  if (sqlstate == "57014" || sqlstate == "55P03") return core::Status::Timeout(message);
  if (SessionEnded(sqlstate)) return core::Status::Unavailable(message);
  return core::Status::QueryFailed(message);
}

std::string SessionConninfo(const ConnParams& parsed, const SessionOptions& options) {
  ConnParams params = parsed;
  // Always ours: it is how lockwatch recognises its own sessions (and how a DBA does).
  SetParam(&params, "application_name", options.application_name, /*override=*/true);
  // Timeouts travel in the startup packet too: a new backend reads pg_class and friends before it is
  // ready, and without lock_timeout it would queue (with no end, even after libpq gave up at
  // connect_timeout) behind a LOCK TABLE / VACUUM FULL on a catalog. Appended last so they win over
  // -c settings in the user's options.
  std::string startup = "-c lock_timeout=" + std::to_string(options.lock_timeout.count()) +
                        " -c statement_timeout=" + std::to_string(options.statement_timeout.count());
  if (const std::string* user = FindParam(params, "options"); user != nullptr && !user->empty()) {
    startup = *user + " " + startup;
  }
  SetParam(&params, "options", startup, /*override=*/true);
  // The rest only when the DSN does not choose otherwise.
  SetParam(&params, "connect_timeout", std::to_string(options.connect_timeout.count()), false);
  SetParam(&params, "keepalives", "1", false);
  SetParam(&params, "keepalives_idle", std::to_string(options.keepalives_idle_s), false);
  SetParam(&params, "keepalives_interval", std::to_string(options.keepalives_interval_s), false);
  SetParam(&params, "keepalives_count", std::to_string(options.keepalives_count), false);
  return ToConninfo(params);
}

core::Status OpenSession(const std::string& dsn, const std::string& redacted_dsn,
                         const SessionOptions& options, std::unique_ptr<pqxx::connection>* conn) {
  conn->reset();
  core::Result<ConnParams> params = ParseDsn(dsn);
  if (!params.ok()) return params.status();
  const std::string conninfo = SessionConninfo(params.value(), options);
  const std::string where = "connect to " + redacted_dsn;
  try {
    *conn = std::make_unique<pqxx::connection>(conninfo);
  } catch (const pqxx::broken_connection& e) {
    const std::string message = where + ": " + ScrubSecrets(TrimRight(e.what()), dsn);
    if (LooksLikeAuthFailure(message)) return core::Status::PermissionDenied(message);
    return core::Status::Unavailable(message);
  } catch (const std::exception& e) {
    return core::Status::Unavailable(where + ": " + ScrubSecrets(TrimRight(e.what()), dsn));
  }
  const int version = (*conn)->server_version();
  if (!SupportedServerVersion(version)) {
    conn->reset();
    return core::Status::InvalidArgument(where + ": server_version_num " + std::to_string(version) +
                                         " is not supported (PostgreSQL 12 to 18)");
  }
  return core::Status::Ok();
}

}  // namespace lockwatch::pg
