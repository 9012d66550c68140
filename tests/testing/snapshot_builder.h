#pragma once

// Fluent builder for core::Snapshot fixtures, so that a pg_locks scenario reads like the rows it stands for:
//
//   Snapshot s = SnapshotBuilder()
//                    .Version(150000).Now(Sec(100))
//                    .Session(101).State("idle in transaction")
//                    .Session(102).State("active")
//                    .Lock(101).TransactionId(731).Mode("ExclusiveLock").Granted()
//                    .Lock(102).TransactionId(731).Mode("ShareLock").Waiting(Sec(90))
//                    .Build();
//
// Session(...) and Lock(...) open a new row; the setters that follow apply to the row opened last of that
// kind. Lock rows default to granted=false, fastpath=false, virtualtransaction "<pid>/1".

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "agent/core/lock_mode.h"
#include "agent/core/snapshot.h"

namespace lockwatch::testing {

// Seconds to the microsecond timestamps of the snapshot model.
constexpr core::TimestampUs Sec(int64_t seconds) { return seconds * 1000000; }

class SnapshotBuilder {
 public:
  SnapshotBuilder() {
    snapshot_.server_version_num = 150000;
    snapshot_.locks_read = true;
  }

  SnapshotBuilder& Version(int server_version_num) {
    snapshot_.server_version_num = server_version_num;
    return *this;
  }
  SnapshotBuilder& Now(core::TimestampUs now) {
    snapshot_.captured_at_us = now;
    return *this;
  }
  SnapshotBuilder& OwnPid(int32_t pid) {
    snapshot_.own_pid = pid;
    return *this;
  }
  SnapshotBuilder& RelationName(uint32_t database, uint32_t relation, std::string name) {
    snapshot_.relation_names.push_back(core::RelationName{database, relation, std::move(name)});
    return *this;
  }
  SnapshotBuilder& Prepared(uint32_t xid, std::string gid) {
    core::PreparedXact p;
    p.transaction = xid;
    p.gid = std::move(gid);
    snapshot_.prepared.push_back(std::move(p));
    return *this;
  }

  // --- pg_stat_activity rows
  SnapshotBuilder& Session(int32_t pid) {
    core::Session s;
    s.pid = pid;
    s.backend_type = "client backend";
    s.state = "active";
    snapshot_.sessions.push_back(std::move(s));
    in_lock_ = false;
    return *this;
  }
  SnapshotBuilder& State(std::string state) {
    LastSession().state = std::move(state);
    return *this;
  }
  SnapshotBuilder& LeaderPid(int32_t leader) {
    LastSession().leader_pid = leader;
    return *this;
  }
  SnapshotBuilder& StateChange(core::TimestampUs at) {
    LastSession().state_change = at;
    return *this;
  }
  SnapshotBuilder& Query(std::string query) {
    LastSession().query = std::move(query);
    return *this;
  }

  // --- pg_locks rows; Lock() with no pid is a row of a prepared transaction (pid NULL)
  SnapshotBuilder& Lock(std::optional<int32_t> pid) {
    core::LockRow r;
    r.pid = pid;
    r.virtualtransaction = pid ? std::to_string(*pid) + "/1" : "-1/0";
    snapshot_.locks.push_back(std::move(r));
    in_lock_ = true;
    return *this;
  }
  SnapshotBuilder& PreparedLock(std::string virtualtransaction) {
    Lock(std::nullopt);
    LastLock().virtualtransaction = std::move(virtualtransaction);
    return *this;
  }
  SnapshotBuilder& Relation(uint32_t database, uint32_t relation) {
    auto& r = Typed("relation");
    r.database = database;
    r.relation = relation;
    return *this;
  }
  SnapshotBuilder& Extend(uint32_t database, uint32_t relation) {
    auto& r = Typed("extend");
    r.database = database;
    r.relation = relation;
    return *this;
  }
  SnapshotBuilder& Page(uint32_t database, uint32_t relation, int32_t page) {
    auto& r = Typed("page");
    r.database = database;
    r.relation = relation;
    r.page = page;
    return *this;
  }
  SnapshotBuilder& Tuple(uint32_t database, uint32_t relation, int32_t page, int32_t tuple) {
    auto& r = Typed("tuple");
    r.database = database;
    r.relation = relation;
    r.page = page;
    r.tuple = tuple;
    return *this;
  }
  SnapshotBuilder& TransactionId(uint32_t xid) {
    Typed("transactionid").transactionid = xid;
    return *this;
  }
  SnapshotBuilder& VirtualXid(std::string vxid) {
    Typed("virtualxid").virtualxid = std::move(vxid);
    return *this;
  }
  // pg_advisory_lock(bigint)
  SnapshotBuilder& Advisory(uint32_t database, int64_t key) {
    auto& r = Typed("advisory");
    const auto k = static_cast<uint64_t>(key);
    r.database = database;
    r.classid = static_cast<uint32_t>(k >> 32);
    r.objid = static_cast<uint32_t>(k & 0xFFFFFFFFu);
    r.objsubid = 1;
    return *this;
  }
  // pg_advisory_lock(int, int)
  SnapshotBuilder& Advisory2(uint32_t database, int32_t key1, int32_t key2) {
    auto& r = Typed("advisory");
    r.database = database;
    r.classid = static_cast<uint32_t>(key1);
    r.objid = static_cast<uint32_t>(key2);
    r.objsubid = 2;
    return *this;
  }
  SnapshotBuilder& Object(uint32_t database, uint32_t classid, uint32_t objid, int32_t objsubid) {
    auto& r = Typed("object");
    r.database = database;
    r.classid = classid;
    r.objid = objid;
    r.objsubid = objsubid;
    return *this;
  }
  // Any layout: sets the locktype only; fill the columns with the setters below.
  SnapshotBuilder& LockType(std::string locktype) {
    Typed(std::move(locktype));
    return *this;
  }
  SnapshotBuilder& Database(uint32_t v) {
    LastLock().database = v;
    return *this;
  }
  SnapshotBuilder& ClassId(uint32_t v) {
    LastLock().classid = v;
    return *this;
  }
  SnapshotBuilder& ObjId(uint32_t v) {
    LastLock().objid = v;
    return *this;
  }
  SnapshotBuilder& ObjSubId(int32_t v) {
    LastLock().objsubid = v;
    return *this;
  }
  SnapshotBuilder& Xid(uint32_t v) {
    LastLock().transactionid = v;
    return *this;
  }

  SnapshotBuilder& Mode(const std::string& mode) {
    auto parsed = core::ParseLockMode(mode);
    if (!parsed) throw std::invalid_argument("unknown lock mode " + mode);
    LastLock().mode = *parsed;
    return *this;
  }
  SnapshotBuilder& Granted() {
    LastLock().granted = true;
    LastLock().waitstart.reset();
    return *this;
  }
  // granted=false with waitstart; Waiting() without argument leaves waitstart NULL.
  SnapshotBuilder& Waiting(std::optional<core::TimestampUs> waitstart = std::nullopt) {
    LastLock().granted = false;
    LastLock().waitstart = waitstart;
    return *this;
  }
  SnapshotBuilder& FastPath() {
    LastLock().fastpath = true;
    return *this;
  }
  SnapshotBuilder& VirtualTransaction(std::string vt) {
    LastLock().virtualtransaction = std::move(vt);
    return *this;
  }

  core::Snapshot Build() const { return snapshot_; }

 private:
  core::Session& LastSession() {
    if (snapshot_.sessions.empty() || in_lock_) throw std::logic_error("session setter without Session()");
    return snapshot_.sessions.back();
  }
  core::LockRow& LastLock() {
    if (snapshot_.locks.empty() || !in_lock_) throw std::logic_error("lock setter without Lock()");
    return snapshot_.locks.back();
  }
  core::LockRow& Typed(std::string locktype) {
    core::LockRow& r = LastLock();
    r.locktype = std::move(locktype);
    return r;
  }

  core::Snapshot snapshot_;
  bool in_lock_ = false;
};

}  // namespace lockwatch::testing
