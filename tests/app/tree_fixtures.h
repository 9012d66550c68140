#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "agent/core/lock_mode.h"
#include "agent/core/snapshot.h"

namespace lockwatch::app_test {

// 2026-11-25T13:45:00.123456Z, the server's now() of every fixture snapshot.
inline constexpr core::TimestampUs kNow = 1795614300123456;
inline constexpr core::TimestampUs kSecond = 1000000;
inline constexpr uint32_t kDatabase = 5;
inline constexpr int32_t kOwnPid = 1;

// A small fluent builder of snapshots as the pg adapter would read them: sessions, and the pg_locks rows of
// relation, transaction and prepared-transaction locks.
class SnapshotFixture {
 public:
  explicit SnapshotFixture(int server_version_num = 150018) {
    snapshot_.server_version_num = server_version_num;
    snapshot_.captured_at_us = kNow;
    snapshot_.own_pid = kOwnPid;
    snapshot_.current_database = "appdb";
    snapshot_.locks_read = true;
    core::Session own;
    own.pid = kOwnPid;
    own.usename = "monitor";
    own.application_name = "lockwatch";
    own.datname = "appdb";
    own.backend_type = "client backend";
    own.state = "active";
    own.query = "select ... from pg_locks";
    snapshot_.sessions.push_back(own);
    snapshot_.settings.push_back({"deadlock_timeout", "1s"});
    snapshot_.settings.push_back({"max_prepared_transactions", "10"});
  }

  // A client session in `state` since `seconds_in_state` ago (query_start too).
  SnapshotFixture& Session(int32_t pid, std::string state, std::string query, int seconds_in_state = 60,
                           std::string user = "alice", std::string app = "psql",
                           std::string client = "10.0.0.5") {
    core::Session s;
    s.pid = pid;
    s.usename = std::move(user);
    s.application_name = std::move(app);
    s.client_addr = std::move(client);
    s.datname = "appdb";
    s.backend_type = "client backend";
    s.state = std::move(state);
    s.backend_start = kNow - 3600 * kSecond;
    s.xact_start = kNow - seconds_in_state * kSecond;
    s.query_start = kNow - seconds_in_state * kSecond;
    s.state_change = kNow - seconds_in_state * kSecond;
    s.backend_xid = 700 + static_cast<uint32_t>(pid);
    s.query = std::move(query);
    snapshot_.sessions.push_back(std::move(s));
    return *this;
  }

  SnapshotFixture& Relation(uint32_t oid, std::string name) {
    snapshot_.relation_names.push_back({kDatabase, oid, std::move(name)});
    return *this;
  }

  // A granted relation lock.
  SnapshotFixture& HoldsRelation(int32_t pid, uint32_t oid, core::LockMode mode) {
    core::LockRow r = RelationRow(oid, mode);
    r.pid = pid;
    r.virtualtransaction = Vxid(pid);
    r.granted = true;
    snapshot_.locks.push_back(std::move(r));
    return *this;
  }

  // A waiting relation lock requested `seconds_ago` (waitstart NULL when nullopt).
  SnapshotFixture& WaitsRelation(int32_t pid, uint32_t oid, core::LockMode mode,
                                 std::optional<int> seconds_ago) {
    core::LockRow r = RelationRow(oid, mode);
    r.pid = pid;
    r.virtualtransaction = Vxid(pid);
    r.granted = false;
    if (seconds_ago && snapshot_.server_version_num >= 140000) r.waitstart = kNow - *seconds_ago * kSecond;
    snapshot_.locks.push_back(std::move(r));
    SetWaiting(pid, "relation");
    return *this;
  }

  // A granted ExclusiveLock on its own xid (every transaction that wrote holds one).
  SnapshotFixture& HoldsXid(int32_t pid, uint32_t xid) {
    snapshot_.locks.push_back(XidRow(xid, pid, core::LockMode::kExclusive, true, std::nullopt));
    return *this;
  }

  // ShareLock waiting on another transaction's xid (a row lock wait).
  SnapshotFixture& WaitsXid(int32_t pid, uint32_t xid, int seconds_ago) {
    snapshot_.locks.push_back(XidRow(xid, pid, core::LockMode::kShare, false, kNow - seconds_ago * kSecond));
    SetWaiting(pid, "transactionid");
    return *this;
  }

  // A prepared transaction holding its xid (and optionally a relation lock), as pg_locks shows it: pid NULL.
  SnapshotFixture& Prepared(std::string gid, uint32_t xid, int seconds_ago, std::string owner = "billing") {
    core::PreparedXact p;
    p.transaction = xid;
    p.gid = std::move(gid);
    p.prepared = kNow - seconds_ago * kSecond;
    p.owner = std::move(owner);
    p.database = "appdb";
    snapshot_.prepared.push_back(std::move(p));
    core::LockRow r = XidRow(xid, 0, core::LockMode::kExclusive, true, std::nullopt);
    r.pid.reset();
    r.virtualtransaction = "-1/" + std::to_string(xid);
    snapshot_.locks.push_back(std::move(r));
    return *this;
  }

  const core::Snapshot& snapshot() const { return snapshot_; }
  core::Snapshot& mutable_snapshot() { return snapshot_; }

 private:
  static std::string Vxid(int32_t pid) { return std::to_string(pid % 100 + 1) + "/" + std::to_string(pid); }

  static core::LockRow RelationRow(uint32_t oid, core::LockMode mode) {
    core::LockRow r;
    r.locktype = "relation";
    r.database = kDatabase;
    r.relation = oid;
    r.mode = mode;
    return r;
  }

  static core::LockRow XidRow(uint32_t xid, int32_t pid, core::LockMode mode, bool granted,
                              std::optional<core::TimestampUs> waitstart) {
    core::LockRow r;
    r.locktype = "transactionid";
    r.transactionid = xid;
    r.pid = pid;
    r.virtualtransaction = Vxid(pid);
    r.mode = mode;
    r.granted = granted;
    r.waitstart = waitstart;
    return r;
  }

  void SetWaiting(int32_t pid, const char* event) {
    for (core::Session& s : snapshot_.sessions) {
      if (s.pid == pid) {
        s.state = "active";
        s.wait_event_type = "Lock";
        s.wait_event = event;
      }
    }
  }

  core::Snapshot snapshot_;
};

}  // namespace lockwatch::app_test
