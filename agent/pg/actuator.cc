#include "agent/pg/actuator.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "agent/pg/dsn.h"
#include "agent/pg/pq_session.h"
#include "agent/pg/queries.h"

namespace lockwatch::pg {
namespace {

constexpr const char* kCancelStatement = "lockwatch_cancel";
constexpr const char* kTerminateStatement = "lockwatch_terminate";
constexpr const char* kAliveStatement = "lockwatch_session_alive";
constexpr const char* kDefaultApplicationName = "lockwatch-actuator";

// Before 14 the actuator polls pg_stat_activity for the exit; each probe is one short statement.
constexpr std::chrono::milliseconds kExitPollInterval{20};

// Collects the server's notices (WARNINGs) while it is registered. pg_cancel_backend and
// pg_terminate_backend say why they returned false only in a WARNING ("PID n is not a PostgreSQL backend
// process", "backend with PID n did not terminate within m milliseconds"). Returning false keeps the
// notice from libpq's default processor, which would print it on stderr.
class NoticeCollector final : public pqxx::errorhandler {
 public:
  explicit NoticeCollector(pqxx::connection& conn) : pqxx::errorhandler(conn) {}
  bool operator()(const char* msg) noexcept override {
    try {
      notices_.push_back(TrimRight(msg));
    } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory: the notice is only a diagnosis
    }
    return false;
  }
  const std::vector<std::string>& notices() const { return notices_; }
  bool Has(std::string_view part) const {
    return std::any_of(notices_.begin(), notices_.end(),
                       [&](const std::string& n) { return n.find(part) != std::string::npos; });
  }
  std::string Joined() const {
    std::string out;
    for (const std::string& n : notices_) {
      if (!out.empty()) out += "; ";
      std::string_view text = n;
      if (text.rfind("WARNING:  ", 0) == 0) text.remove_prefix(10);
      out += text;
    }
    return out;
  }

 private:
  std::vector<std::string> notices_;
};

std::string Micros(const std::optional<core::TimestampUs>& t) {
  return t.has_value() ? std::to_string(*t) : "-";
}

std::string Describe(const core::VictimIdentity& v) {
  std::string out = "pid " + std::to_string(v.pid) + " (backend_start " + Micros(v.backend_start);
  if (v.xact_start.has_value()) out += ", xact_start " + Micros(v.xact_start);
  if (v.state_change.has_value()) out += ", state_change " + Micros(v.state_change);
  return out + ")";
}

// The server's answer to the signalling statement.
struct StatementAnswer {
  bool matched = false;
  std::optional<std::string> refusal;
  std::optional<bool> signalled;
  bool visible = true;
};

}  // namespace

const char* SignalKindName(SignalKind kind) {
  switch (kind) {
    case SignalKind::kCancel:
      return "cancel";
    case SignalKind::kTerminate:
      return "terminate";
  }
  return "unknown";
}

const char* SignalResultName(SignalResult result) {
  switch (result) {
    case SignalResult::kSignalled:
      return "signalled";
    case SignalResult::kExited:
      return "exited";
    case SignalResult::kStillRunning:
      return "still_running";
    case SignalResult::kStale:
      return "stale";
    case SignalResult::kRefused:
      return "refused";
    case SignalResult::kPermissionDenied:
      return "permission_denied";
    case SignalResult::kError:
      return "error";
  }
  return "unknown";
}

bool SignalSent(SignalResult result) {
  return result == SignalResult::kSignalled || result == SignalResult::kExited ||
         result == SignalResult::kStillRunning;
}

struct Actuator::Impl {
  std::string dsn;
  SessionOptions options;
  std::string redacted_dsn;
  std::unique_ptr<pqxx::connection> conn;
  int server_version_num = 0;
  int forced_version = 0;
  // The statement_timeout currently set on the session (ms); a terminate that waits raises it.
  int64_t statement_timeout_ms = 0;

  int version() const { return forced_version != 0 ? forced_version : server_version_num; }
  bool TerminateWaitsOnServer() const { return version() >= 140000; }

  void Drop() {
    conn.reset();
    server_version_num = 0;
    statement_timeout_ms = 0;
  }

  // Drops the connection when libpq says it is gone, or when the error says the session ended; the
  // caller sees kUnavailable and connects again next time.
  core::Status Check(core::Status status) {
    if (!status.ok() &&
        (status.code() == core::Status::Code::kUnavailable || conn == nullptr || !conn->is_open())) {
      Drop();
      if (status.code() != core::Status::Code::kUnavailable)
        return core::Status::Unavailable(status.message());
    }
    return status;
  }

  // statement_timeout for the next statement: the configured one, plus the server-side wait of a PG14+
  // terminate, so the statement is never cancelled while pg_terminate_backend waits as asked.
  core::Status EnsureStatementTimeout(int64_t ms) {
    if (ms == statement_timeout_ms) return core::Status::Ok();
    core::Status st = Guard("set statement_timeout on " + redacted_dsn, dsn, [&] {
      pqxx::nontransaction tx(*conn);
      tx.exec_params("SELECT set_config('statement_timeout', $1::text, false)", std::to_string(ms) + "ms");
      tx.commit();
    });
    if (st.ok()) statement_timeout_ms = ms;
    return st;
  }

  // Prepares the statements of this connection (libpqxx prepares them on the server at first use).
  void Prepare() {
    conn->prepare(kCancelStatement, SignalSql(false, version()));
    conn->prepare(kTerminateStatement, SignalSql(true, version()));
    conn->prepare(kAliveStatement, SessionAliveSql());
  }

  core::Result<bool> StillThere(const core::VictimIdentity& v) {
    bool alive = false;
    core::Status st = Guard("check " + Describe(v) + " on " + redacted_dsn, dsn, [&] {
      pqxx::nontransaction tx(*conn);
      const pqxx::result r = tx.exec_prepared(kAliveStatement, v.pid, *v.backend_start);
      tx.commit();
      alive = r.size() == 1 && !r[0][0].is_null() && std::string(r[0][0].c_str()) == "t";
    });
    if (!st.ok()) return st;
    return alive;
  }
};

Actuator::Actuator(std::string dsn, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->redacted_dsn = RedactDsn(dsn);
  impl_->dsn = std::move(dsn);
  if (options.application_name == SessionOptions().application_name) {
    options.application_name = kDefaultApplicationName;
  }
  impl_->options = std::move(options);
}

Actuator::~Actuator() = default;

bool Actuator::connected() const { return impl_->conn != nullptr && impl_->conn->is_open(); }

void Actuator::Disconnect() { impl_->Drop(); }

int Actuator::server_version_num() const { return impl_->server_version_num; }

const std::string& Actuator::redacted_dsn() const { return impl_->redacted_dsn; }

void Actuator::ForceServerVersionForTesting(int server_version_num) {
  impl_->forced_version = server_version_num;
  if (connected()) impl_->Drop();  // prepared statements follow the version: prepare again on connect
}

core::Status Actuator::Connect() {
  Impl& d = *impl_;
  if (connected()) return core::Status::Ok();
  d.Drop();
  if (core::Status opened = OpenSession(d.dsn, d.redacted_dsn, d.options, &d.conn); !opened.ok())
    return opened;
  d.server_version_num = d.conn->server_version();
  // The startup packet set statement_timeout and lock_timeout (SessionConninfo).
  d.statement_timeout_ms = static_cast<int64_t>(d.options.statement_timeout.count());
  core::Status st = Guard("connect to " + d.redacted_dsn, d.dsn, [&] { d.Prepare(); });
  if (!st.ok()) {
    d.Drop();
    return st;
  }
  return core::Status::Ok();
}

core::Result<SignalOutcome> Actuator::Signal(const SignalRequest& request) {
  Impl& d = *impl_;
  const core::VictimIdentity& v = request.victim;
  if (v.pid <= 0)
    return core::Status::InvalidArgument("signal: pid " + std::to_string(v.pid) + " is not a pid");
  if (!v.backend_start.has_value()) {
    return core::Status::InvalidArgument("signal " + Describe(v) + ": backend_start is required");
  }
  if (request.terminate_wait.count() < 0) {
    return core::Status::InvalidArgument("signal " + Describe(v) + ": negative terminate_wait");
  }
  const auto start = std::chrono::steady_clock::now();
  auto finish = [&](SignalResult result, std::string message) -> core::Result<SignalOutcome> {
    SignalOutcome out;
    out.result = result;
    out.message = std::move(message);
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
  };

  if (core::Status st = Connect(); !st.ok()) return st;
  const bool terminate = request.kind == SignalKind::kTerminate;
  const bool server_wait = terminate && d.TerminateWaitsOnServer();
  const int64_t wait_ms = static_cast<int64_t>(request.terminate_wait.count());
  const int64_t base_ms = static_cast<int64_t>(d.options.statement_timeout.count());
  if (core::Status st = d.Check(d.EnsureStatementTimeout(server_wait ? base_ms + wait_ms : base_ms));
      !st.ok())
    return st;

  const std::string what = std::string(SignalKindName(request.kind)) + " " + Describe(v);
  StatementAnswer answer;
  std::optional<NoticeCollector> notices;
  core::Status st = Guard(what + " on " + d.redacted_dsn, d.dsn, [&] {
    notices.emplace(*d.conn);
    pqxx::nontransaction tx(*d.conn);
    const int64_t xact = v.xact_start.value_or(0);
    const int64_t state_change = v.state_change.value_or(0);
    const pqxx::result r =
        server_wait
            ? tx.exec_prepared(kTerminateStatement, v.pid, *v.backend_start, v.xact_start.has_value(), xact,
                               v.state_change.has_value(), state_change, request.allow_superuser,
                               request.allow_autovacuum, wait_ms)
            : tx.exec_prepared(terminate ? kTerminateStatement : kCancelStatement, v.pid, *v.backend_start,
                               v.xact_start.has_value(), xact, v.state_change.has_value(), state_change,
                               request.allow_superuser, request.allow_autovacuum);
    tx.commit();
    if (r.empty()) return;
    answer.matched = true;
    if (!r[0][1].is_null()) answer.refusal = r[0][1].c_str();
    if (!r[0][2].is_null()) answer.signalled = std::string(r[0][2].c_str()) == "t";
    answer.visible = std::string(r[0][3].c_str()) == "t";
  });
  const std::string warnings = notices.has_value() ? notices->Joined() : std::string();
  const bool not_a_backend = notices.has_value() && notices->Has("is not a PostgreSQL backend process");
  const bool timed_out = notices.has_value() && notices->Has("did not terminate within");
  notices.reset();

  if (!st.ok()) {
    switch (st.code()) {
      case core::Status::Code::kPermissionDenied:
        return finish(SignalResult::kPermissionDenied, st.message());
      case core::Status::Code::kUnavailable:
        // The outcome is unknown: the signal may have been sent before the connection broke.
        return d.Check(std::move(st));
      default:
        if (!connected()) return d.Check(std::move(st));
        return finish(SignalResult::kError, st.message());
    }
  }
  if (!answer.matched) {
    return finish(SignalResult::kStale,
                  "no live session matches " + Describe(v) +
                      ": it ended, its pid was reused, or its transaction or state changed");
  }
  if (!answer.visible) {
    return finish(SignalResult::kPermissionDenied,
                  "pid " + std::to_string(v.pid) + " is " + answer.refusal.value_or("not readable"));
  }
  if (answer.refusal.has_value())
    return finish(SignalResult::kRefused, "pid " + std::to_string(v.pid) + " is " + *answer.refusal);
  if (!answer.signalled.value_or(false)) {
    // The session matched a moment earlier; false comes with the server's reason in a WARNING.
    if (not_a_backend) return finish(SignalResult::kStale, warnings);
    if (timed_out) return finish(SignalResult::kStillRunning, warnings);
    return finish(SignalResult::kError, warnings.empty() ? "the server did not send the signal" : warnings);
  }
  if (!terminate || wait_ms == 0) return finish(SignalResult::kSignalled, warnings);
  if (server_wait) return finish(SignalResult::kExited, warnings);

  // Before 14: pg_terminate_backend(pid) only sends SIGTERM; watch pg_stat_activity for the exit.
  const auto deadline = std::chrono::steady_clock::now() + request.terminate_wait;
  for (;;) {
    core::Result<bool> alive = d.StillThere(v);
    if (!alive.ok()) {
      if (core::Status checked = d.Check(alive.status()); checked.code() == core::Status::Code::kUnavailable)
        return checked;
      return finish(SignalResult::kError, "terminate sent; " + alive.status().message());
    }
    if (!alive.value()) return finish(SignalResult::kExited, warnings);
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return finish(SignalResult::kStillRunning, "terminate sent; pid " + std::to_string(v.pid) +
                                                     " still present after " + std::to_string(wait_ms) +
                                                     " ms");
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(kExitPollInterval, deadline - now));
  }
}

}  // namespace lockwatch::pg
