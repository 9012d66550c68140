#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/lock_mode.h"

namespace lockwatch::core {

// Timestamps are microseconds since the Unix epoch (UTC), as read from the server. The core never reads a
// clock: "now" is always Snapshot::captured_at_us (the server's now()) or a parameter.
using TimestampUs = int64_t;

// One pg_stat_activity row. Optional fields are NULL in the view (or absent in the server version).
struct Session {
  int32_t pid = 0;
  std::optional<int32_t> leader_pid;  // PG13+; set only on parallel workers (and PG16 apply workers)
  std::string usename;
  std::string application_name;
  std::string client_addr;  // "" when local socket / NULL
  std::string datname;
  std::string backend_type;  // "client backend", "autovacuum worker", "walsender", ...
  std::string state;         // "active", "idle", "idle in transaction", ... ; "" when NULL
  std::string wait_event_type;
  std::string wait_event;
  std::optional<TimestampUs> backend_start;
  std::optional<TimestampUs> xact_start;
  std::optional<TimestampUs> query_start;
  std::optional<TimestampUs> state_change;
  std::optional<uint32_t> backend_xid;
  std::optional<uint32_t> backend_xmin;
  std::string query;
  // The role's rolsuper when the collector read it (nullopt: unknown, e.g. an older fixture). Remediation
  // treats an unknown as a superuser: never a victim unless a rule names superusers.
  std::optional<bool> superuser;
};

// One pg_locks row. The identity columns (locktype .. objsubid) form the lock target key; NULLs matter.
struct LockRow {
  std::string locktype;
  std::optional<uint32_t> database;
  std::optional<uint32_t> relation;
  std::optional<int32_t> page;
  std::optional<int32_t> tuple;
  std::optional<std::string> virtualxid;
  std::optional<uint32_t> transactionid;
  std::optional<uint32_t> classid;
  std::optional<uint32_t> objid;
  std::optional<int32_t> objsubid;
  std::string virtualtransaction;
  std::optional<int32_t> pid;  // NULL for prepared transactions (and summarized SIRead locks)
  LockMode mode = LockMode::kNone;
  bool granted = false;
  bool fastpath = false;
  std::optional<TimestampUs> waitstart;  // PG14+, only on granted=false rows, may be NULL briefly
};

// One pg_prepared_xacts row.
struct PreparedXact {
  uint32_t transaction = 0;
  std::string gid;
  std::optional<TimestampUs> prepared;
  std::string owner;
  std::string database;
};

// A relation name resolved by the adapter: "schema.name". Relations of other databases cannot be resolved
// from one connection and are simply absent.
struct RelationName {
  uint32_t database = 0;  // 0 for shared catalogs
  uint32_t relation = 0;
  std::string name;
};

// Server settings recorded with a snapshot (text as SHOW prints it).
struct Setting {
  std::string name;
  std::string value;
};

// One poll of a server: what the graph is built from. Produced by the PostgreSQL adapter (or by test
// fixtures); consumed read-only by the analysis.
struct Snapshot {
  int server_version_num = 0;      // e.g. 150018
  TimestampUs captured_at_us = 0;  // server now() of the read
  int32_t own_pid = 0;             // lockwatch's own backend; excluded from the graph
  std::string current_database;    // database lockwatch is connected to (relation names resolve there)
  bool locks_read = false;         // false when no backend waited on a heavyweight lock (pg_locks skipped)
  std::vector<Session> sessions;
  std::vector<LockRow> locks;
  std::vector<PreparedXact> prepared;
  std::vector<RelationName> relation_names;
  std::vector<Setting> settings;
};

}  // namespace lockwatch::core
