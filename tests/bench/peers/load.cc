#include "tests/bench/peers/load.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <utility>

namespace lockwatch::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string Error(PGconn* conn) {
  std::string e = PQerrorMessage(conn);
  while (!e.empty() && e.back() == '\n') e.pop_back();
  return e;
}

bool Exec(PGconn* conn, const std::string& sql, std::string* error) {
  PGresult* res = PQexec(conn, sql.c_str());
  const ExecStatusType st = PQresultStatus(res);
  PQclear(res);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return true;
  *error = sql.substr(0, 60) + ": " + Error(conn);
  return false;
}

std::string Table(int root) { return "lw_hot_" + std::to_string(root); }

}  // namespace

PileUp::~PileUp() { Teardown(); }

PGconn* PileUp::Open(const char* application_name, std::string* error) {
  const std::string conninfo = dsn_ + " application_name=" + application_name;
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    *error = "connect: " + Error(conn);
    PQfinish(conn);
    return nullptr;
  }
  return conn;
}

// Session-level advisory locks on `count` keys of its own: they live in the main lock table (advisory
// locks never use the fast path), so every one is a pg_locks row until the session ends.
bool PileUp::HoldAdvisory(PGconn* conn, int64_t session, int count, std::string* error) {
  if (count <= 0) return true;
  const int64_t base = session * 100'000;
  return Exec(conn,
              "SELECT count(pg_advisory_lock(k)) FROM generate_series(" + std::to_string(base) + "::int8, " +
                  std::to_string(base + count - 1) + "::int8) AS k",
              error);
}

int64_t PileUp::WaitingCount() {
  PGresult* res = PQexec(admin_,
                         "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                         "AND application_name = 'lw_load'");
  int64_t n = -1;
  if (PQresultStatus(res) == PGRES_TUPLES_OK) n = std::stoll(PQgetvalue(res, 0, 0));
  PQclear(res);
  return n;
}

bool PileUp::WaitForWaiting(int64_t count, std::string* error) {
  const auto deadline = Clock::now() + std::chrono::seconds(180);
  int64_t n = 0;
  while ((n = WaitingCount()) < count) {
    if (Clock::now() > deadline) {
      *error = "only " + std::to_string(n) + " of " + std::to_string(count) + " sessions wait after 180 s";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::string PileUp::Build(const Shape& shape) {
  std::string error;
  const int roots = shape.waiters > 0 ? std::max(1, shape.roots) : 0;
  for (int r = 0; r < roots; ++r) {
    PGconn* conn = Open("lw_load", &error);
    if (conn == nullptr) return error;
    conns_.push_back(conn);
    if (!HoldAdvisory(conn, next_session_++, shape.extra_locks, &error)) return error;
    if (!Exec(conn, "BEGIN; LOCK TABLE " + Table(r) + " IN ACCESS SHARE MODE", &error)) return error;
  }
  for (int i = 0; i < shape.idle; ++i) {
    PGconn* conn = Open("lw_load", &error);
    if (conn == nullptr) return error;
    conns_.push_back(conn);
    if (!HoldAdvisory(conn, next_session_++, shape.extra_locks, &error)) return error;
  }
  // The ALTER-like waiters first, and only then the rest: an ACCESS SHARE request that arrived before the
  // ACCESS EXCLUSIVE one would simply be granted.
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < shape.waiters; ++i) {
      const bool exclusive = i < roots;
      if ((pass == 0) != exclusive) continue;
      PGconn* conn = Open("lw_load", &error);
      if (conn == nullptr) return error;
      conns_.push_back(conn);
      if (!HoldAdvisory(conn, next_session_++, shape.extra_locks, &error)) return error;
      const std::string sql = "BEGIN; LOCK TABLE " + Table(i % roots) + " IN ACCESS " +
                              (exclusive ? "EXCLUSIVE" : "SHARE") + " MODE";
      if (PQsendQuery(conn, sql.c_str()) != 1) return "send: " + Error(conn);
    }
    if (!WaitForWaiting(pass == 0 ? roots : shape.waiters, &error)) return error;
  }
  if (shape.churners > 0 && roots > 0) {
    stop_churn_ = false;
    churn_ = std::thread([this, shape] { Churn(shape.churners, shape.extra_locks); });
  }
  return "";
}

// Keeps `churners` extra sessions waiting behind root 0, replacing the oldest one continuously: connect,
// take the extra locks, queue; cancel and disconnect the oldest. Sessions come and go while monitors poll.
void PileUp::Churn(int churners, int extra_locks) {
  std::deque<PGconn*> ring;
  std::string error;
  while (!stop_churn_) {
    PGconn* conn = Open("lw_churn", &error);
    if (conn == nullptr) break;
    if (!HoldAdvisory(conn, churn_session_++, extra_locks, &error) ||
        PQsendQuery(conn, ("BEGIN; LOCK TABLE " + Table(0) + " IN ACCESS SHARE MODE").c_str()) != 1) {
      PQfinish(conn);
      break;
    }
    ring.push_back(conn);
    if (static_cast<int>(ring.size()) > churners) {
      PGconn* old = ring.front();
      ring.pop_front();
      if (PGcancel* cancel = PQgetCancel(old); cancel != nullptr) {
        char buf[256];
        PQcancel(cancel, buf, sizeof buf);
        PQfreeCancel(cancel);
      }
      PQfinish(old);
      ++churn_cycles_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (PGconn* conn : ring) {
    if (PGcancel* cancel = PQgetCancel(conn); cancel != nullptr) {
      char buf[256];
      PQcancel(cancel, buf, sizeof buf);
      PQfreeCancel(cancel);
    }
    PQfinish(conn);
  }
}

void PileUp::Teardown() {
  if (churn_.joinable()) {
    stop_churn_ = true;
    churn_.join();
  }
  if (conns_.empty()) return;
  // A backend waiting on a lock does not notice that its client went away: terminate them all.
  PQclear(PQexec(admin_,
                 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE application_name IN ('lw_load', 'lw_churn')"));
  for (PGconn* conn : conns_) PQfinish(conn);
  conns_.clear();
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    PGresult* res = PQexec(admin_,
                           "SELECT count(*) FROM pg_stat_activity "
                           "WHERE application_name IN ('lw_load', 'lw_churn')");
    const bool done = PQresultStatus(res) == PGRES_TUPLES_OK && std::string(PQgetvalue(res, 0, 0)) == "0";
    PQclear(res);
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace lockwatch::bench
