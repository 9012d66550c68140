#include "tests/bench/peers/monitors.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <utility>

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/core/analysis.h"
#include "agent/pg/collector.h"

namespace lockwatch::bench {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Reading the lock table once and the activity view once: what any blocking-graph monitor has to pay.
// count(*) makes the server produce every pg_locks row without shipping them.
const std::vector<std::string> kFloorSql = {"SELECT * FROM pg_catalog.pg_stat_activity",
                                            "SELECT count(*) FROM pg_catalog.pg_locks"};
const std::vector<std::string> kActivitySql = {"SELECT * FROM pg_catalog.pg_stat_activity"};
const std::vector<std::string> kBlockingPidsSql = {
    "SELECT pid, pg_catalog.pg_blocking_pids(pid) FROM pg_catalog.pg_stat_activity "
    "WHERE wait_event_type = 'Lock'"};

// The approach of the PostgreSQL wiki's lock-monitoring page, written for this benchmark: every waiting
// lock row joined to every granted row of another session on the same lock target (all identity columns,
// NULL-safe), with both sessions' activity rows.
const std::vector<std::string> kWikiStyleSql = {
    "SELECT w.pid AS waiting_pid, wa.usename AS waiting_user, wa.query AS waiting_query,\n"
    "       h.pid AS holding_pid, ha.usename AS holding_user, ha.query AS holding_query,\n"
    "       w.locktype, w.mode AS wanted_mode, h.mode AS held_mode\n"
    "FROM pg_catalog.pg_locks AS w\n"
    "JOIN pg_catalog.pg_stat_activity AS wa ON wa.pid = w.pid\n"
    "JOIN pg_catalog.pg_locks AS h\n"
    "  ON h.locktype = w.locktype\n"
    " AND h.database IS NOT DISTINCT FROM w.database\n"
    " AND h.relation IS NOT DISTINCT FROM w.relation\n"
    " AND h.page IS NOT DISTINCT FROM w.page\n"
    " AND h.tuple IS NOT DISTINCT FROM w.tuple\n"
    " AND h.virtualxid IS NOT DISTINCT FROM w.virtualxid\n"
    " AND h.transactionid IS NOT DISTINCT FROM w.transactionid\n"
    " AND h.classid IS NOT DISTINCT FROM w.classid\n"
    " AND h.objid IS NOT DISTINCT FROM w.objid\n"
    " AND h.objsubid IS NOT DISTINCT FROM w.objsubid\n"
    " AND h.pid <> w.pid\n"
    "JOIN pg_catalog.pg_stat_activity AS ha ON ha.pid = h.pid\n"
    "WHERE NOT w.granted AND h.granted"};

void ReplaceAll(std::string* text, const std::string& from, const std::string& to) {
  for (size_t at = text->find(from); at != std::string::npos; at = text->find(from, at + to.size())) {
    text->replace(at, from.size(), to);
  }
}

// pg_activity's query as the package ships it, with its Python placeholders filled the way pg_activity
// fills them by default (duration from query_start, no minimum duration, no database filter).
std::string LoadPgActivitySql(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read pg_activity's SQL file " + path + " (install the Debian package pg-activity)";
    return "";
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string sql = buffer.str();
  ReplaceAll(&sql, "{duration_column}", "query_start");
  ReplaceAll(&sql, "%(min_duration)s", "0");
  ReplaceAll(&sql, "%(dbname_filter)s", "NULL");
  return sql;
}

class SqlMonitor : public Monitor {
 public:
  SqlMonitor(MonitorOptions options, std::vector<std::string> statements)
      : options_(std::move(options)), statements_(std::move(statements)) {}
  ~SqlMonitor() override {
    if (conn_ != nullptr) PQfinish(conn_);
  }
  SqlMonitor(const SqlMonitor&) = delete;
  SqlMonitor& operator=(const SqlMonitor&) = delete;

  std::string Connect() override {
    conn_ = PQconnectdb(options_.dsn.c_str());
    if (PQstatus(conn_) != CONNECTION_OK) return PQerrorMessage(conn_);
    const std::string set = "SET statement_timeout = " + std::to_string(options_.statement_timeout_ms) +
                            "; SET jit = off; SET application_name = 'lw_bench_peer'";
    PGresult* res = PQexec(conn_, set.c_str());
    const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok ? "" : PQerrorMessage(conn_);
  }

  PollCost Poll() override {
    PollCost cost;
    const auto start = Clock::now();
    cost.ok = true;
    for (const std::string& sql : statements_) {
      PGresult* res = PQexec(conn_, sql.c_str());
      if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cost.ok = false;
        cost.error = PQresultErrorMessage(res);
        PQclear(res);
        break;
      }
      const int rows = PQntuples(res);
      const int fields = PQnfields(res);
      for (int r = 0; r < rows; ++r) {
        cost.bytes += 7;
        for (int f = 0; f < fields; ++f) cost.bytes += 4 + static_cast<uint64_t>(PQgetlength(res, r, f));
      }
      PQclear(res);
    }
    cost.client_ms = MsSince(start);
    while (!cost.error.empty() && cost.error.back() == '\n') cost.error.pop_back();
    return cost;
  }

 private:
  MonitorOptions options_;
  std::vector<std::string> statements_;
  PGconn* conn_ = nullptr;
};

class LockwatchMonitor : public Monitor {
 public:
  explicit LockwatchMonitor(const MonitorOptions& options)
      : collector_(options.dsn, Session(options.statement_timeout_ms)) {}

  std::string Connect() override {
    const core::Status st = collector_.Connect();
    return st.ok() ? "" : st.message();
  }

  PollCost Poll() override {
    PollCost cost;
    const auto start = Clock::now();
    pg::PollStats stats;
    core::Result<core::Snapshot> snapshot = collector_.Poll(&stats);
    if (!snapshot.ok()) {
      cost.error = snapshot.status().message();
      cost.client_ms = MsSince(start);
      return cost;
    }
    const core::Report report = core::Analyze(snapshot.value());
    cost.client_ms = MsSince(start);
    cost.ok = true;
    cost.bytes = stats.bytes_received;
    cost.self_server_ms = stats.server_seconds * 1000.0;
    cost.blocked = report.blocked_sessions;
    return cost;
  }

 private:
  static pg::SessionOptions Session(int statement_timeout_ms) {
    pg::SessionOptions s;
    s.statement_timeout = std::chrono::milliseconds(statement_timeout_ms);
    return s;
  }
  pg::Collector collector_;
};

// One GET /metrics over HTTP/1.0 (the exporter closes the connection after the response).
class ExporterMonitor : public Monitor {
 public:
  explicit ExporterMonitor(const MonitorOptions& options) : address_(options.exporter_address) {}

  std::string Connect() override {
    const size_t colon = address_.rfind(':');
    if (colon == std::string::npos) return "exporter address must be host:port, got '" + address_ + "'";
    host_ = address_.substr(0, colon);
    port_ = std::stoi(address_.substr(colon + 1));
    return "";
  }

  PollCost Poll() override {
    PollCost cost;
    const auto start = Clock::now();
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    inet_pton(AF_INET, host_.c_str(), &addr.sin_addr);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the BSD socket API
    if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      if (fd >= 0) close(fd);
      cost.error = "cannot connect to the exporter at " + address_;
      return cost;
    }
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: " + host_ + "\r\n\r\n";
    if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
      close(fd);
      cost.error = "cannot send the request to the exporter";
      return cost;
    }
    std::string response;
    char buf[65536];
    for (;;) {
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      response.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    cost.client_ms = MsSince(start);
    const size_t body = response.find("\r\n\r\n");
    if (response.rfind("HTTP/1.0 200", 0) != 0 && response.rfind("HTTP/1.1 200", 0) != 0) {
      cost.error = "exporter answered: " + response.substr(0, response.find('\r'));
      return cost;
    }
    cost.ok = true;
    cost.bytes = body == std::string::npos ? 0 : response.size() - body - 4;
    return cost;
  }

 private:
  std::string address_;
  std::string host_;
  int port_ = 0;
};

}  // namespace

const std::vector<std::string>& MethodNames() {
  static const std::vector<std::string> kNames = {"lockwatch",     "floor",       "activity", "blocking_pids",
                                                  "wiki_selfjoin", "pg_activity", "exporter"};
  return kNames;
}

std::string MethodDescription(const std::string& method) {
  if (method == "lockwatch") {
    return "lockwatch's poll through the real `pg::Collector` (one prepared statement, plus the "
           "relation-names statement when names are missing) and `core::Analyze`";
  }
  if (method == "floor") {
    return "`SELECT * FROM pg_stat_activity` then `SELECT count(*) FROM pg_locks`: reading the activity "
           "view and the lock table once";
  }
  if (method == "activity") return "`SELECT * FROM pg_stat_activity` (a bare activity read)";
  if (method == "blocking_pids") {
    return "`SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`";
  }
  if (method == "wiki_selfjoin") {
    return "wiki-style self-join: pg_locks joined to itself on every lock identity column (waiting vs "
           "granted, other pid), pg_stat_activity joined on both sides";
  }
  if (method == "pg_activity") {
    return "pg_activity 3.0.3's blocking query, read at run time from the installed package "
           "(`get_blocking_post_090600.sql`, placeholders filled with its defaults)";
  }
  if (method == "exporter") {
    return "one `GET /metrics` of prometheus-postgres-exporter 0.11.1 (default collectors; it reports "
           "pg_locks counts per mode, not who blocks whom)";
  }
  return method;
}

std::unique_ptr<Monitor> MakeMonitor(const std::string& method, const MonitorOptions& options,
                                     std::string* error) {
  if (method == "lockwatch") return std::make_unique<LockwatchMonitor>(options);
  if (method == "floor") return std::make_unique<SqlMonitor>(options, kFloorSql);
  if (method == "activity") return std::make_unique<SqlMonitor>(options, kActivitySql);
  if (method == "blocking_pids") return std::make_unique<SqlMonitor>(options, kBlockingPidsSql);
  if (method == "wiki_selfjoin") return std::make_unique<SqlMonitor>(options, kWikiStyleSql);
  if (method == "pg_activity") {
    std::string sql = LoadPgActivitySql(options.pg_activity_sql, error);
    if (sql.empty()) return nullptr;
    return std::make_unique<SqlMonitor>(options, std::vector<std::string>{sql});
  }
  if (method == "exporter") return std::make_unique<ExporterMonitor>(options);
  *error = "unknown method " + method;
  return nullptr;
}

}  // namespace lockwatch::bench
