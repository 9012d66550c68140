#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace lockwatch::pg {

// Server versions the SQL below is written for (server_version_num, inclusive).
inline constexpr int kMinServerVersion = 120000;
inline constexpr int kMaxServerVersion = 189999;
bool SupportedServerVersion(int server_version_num);

// ---------------------------------------------------------------------------------------------------------
// Result layout of SnapshotSql(). One statement, one result: column "kind" tags each row, then columns
// c1..c18 (all text) carry the row's fields positionally. A kind with fewer fields leaves the remaining
// columns NULL. The tables below are the single definition of each kind's fields: the SQL builder emits
// its select lists from them and the decoder reads by them, so the two cannot drift.
//
//  kind 'a' (pg_stat_activity, all rows except lockwatch's own backend):
//    c1 pid  c2 leader_pid (NULL before PG13)  c3 usename  c4 application_name  c5 client_addr (host(), no
//    mask)  c6 datname  c7 backend_type  c8 state  c9 wait_event_type  c10 wait_event  c11 backend_start
//    c12 xact_start  c13 query_start  c14 state_change (timestamps: int8 microseconds since the epoch)
//    c15 backend_xid  c16 backend_xmin  c17 query  c18 superuser (the role's rolsuper, 't'/'f'; NULL when the
//    session has no role, e.g. background processes, or the role is gone)
//  kind 'l' (pg_lock_status(), only when some backend waits on a heavyweight lock; SIReadLock and
//    fast-path rows dropped; only rows of contended targets, every pid-IS-NULL row (prepared transactions)
//    and the granted tuple locks of waiting pids (they name the row a transactionid waiter wants)):
//    c1 locktype  c2 database  c3 relation  c4 page  c5 tuple  c6 virtualxid  c7 transactionid  c8 classid
//    c9 objid  c10 objsubid  c11 virtualtransaction  c12 pid  c13 mode  c14 granted ('t'/'f')
//    c15 fastpath ('t'/'f')  c16 waitstart (us; NULL before PG14)
//  kind 'p' (pg_prepared_xacts): c1 transaction  c2 gid  c3 prepared (us)  c4 owner  c5 database
//  kind 's' (settings, current_setting() text as SHOW prints it): c1 name  c2 value
//  kind 'm' (exactly one row, emitted last): c1 server_version_num  c2 now() (us)  c3 pg_backend_pid()
//    c4 current_database()  c5 current database oid  c6 waiting ('t' when some backend waited on a
//    heavyweight lock, i.e. pg_locks was read)  c7 server elapsed microseconds at the end of the statement
// ---------------------------------------------------------------------------------------------------------

inline constexpr char kKindActivity = 'a';
inline constexpr char kKindLock = 'l';
inline constexpr char kKindPrepared = 'p';
inline constexpr char kKindSetting = 's';
inline constexpr char kKindMeta = 'm';

enum class ActivityField : std::size_t {
  kPid,
  kLeaderPid,
  kUsename,
  kApplicationName,
  kClientAddr,
  kDatname,
  kBackendType,
  kState,
  kWaitEventType,
  kWaitEvent,
  kBackendStart,
  kXactStart,
  kQueryStart,
  kStateChange,
  kBackendXid,
  kBackendXmin,
  kQuery,
  kSuperuser,
  kCount,
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(ActivityField::kCount)>
    kActivityFields = {"pid",           "leader_pid",   "usename",     "application_name", "client_addr",
                       "datname",       "backend_type", "state",       "wait_event_type",  "wait_event",
                       "backend_start", "xact_start",   "query_start", "state_change",     "backend_xid",
                       "backend_xmin",  "query",        "superuser"};

enum class LockField : std::size_t {
  kLocktype,
  kDatabase,
  kRelation,
  kPage,
  kTuple,
  kVirtualxid,
  kTransactionid,
  kClassid,
  kObjid,
  kObjsubid,
  kVirtualtransaction,
  kPid,
  kMode,
  kGranted,
  kFastpath,
  kWaitstart,
  kCount,
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(LockField::kCount)> kLockFields = {
    "locktype", "database",   "relation",           "page",
    "tuple",    "virtualxid", "transactionid",      "classid",
    "objid",    "objsubid",   "virtualtransaction", "pid",
    "mode",     "granted",    "fastpath",           "waitstart"};

enum class PreparedField : std::size_t { kTransaction, kGid, kPrepared, kOwner, kDatabase, kCount };
inline constexpr std::array<std::string_view, static_cast<std::size_t>(PreparedField::kCount)>
    kPreparedFields = {"transaction", "gid", "prepared", "owner", "database"};

enum class SettingField : std::size_t { kName, kValue, kCount };
inline constexpr std::array<std::string_view, static_cast<std::size_t>(SettingField::kCount)> kSettingFields =
    {"name", "value"};

enum class MetaField : std::size_t {
  kServerVersionNum,
  kNowUs,
  kOwnPid,
  kCurrentDatabase,
  kDatabaseOid,
  kWaiting,
  kElapsedUs,
  kCount,
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(MetaField::kCount)> kMetaFields = {
    "server_version_num", "now", "own_pid", "current_database", "database_oid", "waiting", "elapsed_us"};

// Number of payload columns (c1..cN) of the snapshot result: the widest kind.
inline constexpr std::size_t kPayloadColumns = kActivityFields.size();
// Total result columns: "kind" + c1..cN.
inline constexpr std::size_t kSnapshotColumns = 1 + kPayloadColumns;

// Settings recorded with every snapshot (kind 's').
inline constexpr std::array<std::string_view, 7> kRecordedSettings = {"deadlock_timeout",
                                                                      "lock_timeout",
                                                                      "max_connections",
                                                                      "max_locks_per_transaction",
                                                                      "max_prepared_transactions",
                                                                      "statement_timeout",
                                                                      "idle_in_transaction_session_timeout"};

// The one statement of a poll for a server of the given version (must be SupportedServerVersion). It takes
// no parameters, touches no catalog other than what pg_stat_activity/pg_prepared_xacts join internally
// (pg_database, pg_authid) and pg_roles (pg_authid again, for rolsuper), and only executes pg_lock_status()
// when some backend waits on a heavyweight lock (an InitPlan one-time filter).
std::string SnapshotSql(int server_version_num);

// Best-effort relation names: parameter $1 is an oid[] literal ("{16384,16390}"). Result columns: oid, name
// ("schema.relation"). Reads pg_class/pg_namespace, so it can hit lock_timeout while a catalog is locked.
std::string RelationNamesSql();

// ---------------------------------------------------------------------------------------------------------
// The actuator's one statement (see actuator.h). Parameters, all bound and never NULL:
//   $1 int4 pid  $2 int8 backend_start (us since the epoch)  $3 bool compare xact_start  $4 int8 xact_start
//   $5 bool compare state_change  $6 int8 state_change  $7 bool allow superuser  $8 bool allow autovacuum
//   worker  $9 int8 terminate timeout in ms (only in the PG14+ terminate statement)
// Result: zero rows when no live session matches the identity ("stale"); otherwise one row: c1 pid,
// c2 refusal (NULL when the session is a valid victim, else why not), c3 the signal function's result
// ('t'/'f'; NULL when refused, i.e. nothing was sent), c4 visible ('f' when this role cannot read the
// session's details, i.e. lacks pg_read_all_stats: then the row matched on pid alone and c2 says so).
inline constexpr const char* kSignalRefusalPrefix = "lockwatch";  // application_name prefix never signalled
std::string SignalSql(bool terminate, int server_version_num);

// Whether the session with pid $1 (int4) and backend_start $2 (int8 us) is still in pg_stat_activity: one row
// with 't' or 'f'. Used to await a terminate on servers before 14.
std::string SessionAliveSql();

}  // namespace lockwatch::pg
