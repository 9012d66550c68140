#include "agent/pg/queries.h"

#include <string>
#include <vector>

namespace lockwatch::pg {
namespace {

// Timestamps travel as int8 microseconds: no time zone or DateStyle parsing on the client, and exact.
std::string Micros(const std::string& expr) {
  return "(extract(epoch FROM " + expr + ") * 1000000)::int8::text";
}

// Booleans as 't'/'f' (bool::text would give 'true'/'false').
std::string Bool(const std::string& expr) { return "CASE WHEN " + expr + " THEN 't' ELSE 'f' END"; }

// The CTE `a` already converted everything to text; the branch just lists its columns in field order.
std::string ActivityExpr(ActivityField field) {
  switch (field) {
    case ActivityField::kPid:
      return "a.pid";
    case ActivityField::kLeaderPid:
      return "a.leader_pid";
    case ActivityField::kUsename:
      return "a.usename";
    case ActivityField::kApplicationName:
      return "a.application_name";
    case ActivityField::kClientAddr:
      return "a.client_addr";
    case ActivityField::kDatname:
      return "a.datname";
    case ActivityField::kBackendType:
      return "a.backend_type";
    case ActivityField::kState:
      return "a.state";
    case ActivityField::kWaitEventType:
      return "a.wait_event_type";
    case ActivityField::kWaitEvent:
      return "a.wait_event";
    case ActivityField::kBackendStart:
      return "a.backend_start";
    case ActivityField::kXactStart:
      return "a.xact_start";
    case ActivityField::kQueryStart:
      return "a.query_start";
    case ActivityField::kStateChange:
      return "a.state_change";
    case ActivityField::kBackendXid:
      return "a.backend_xid";
    case ActivityField::kBackendXmin:
      return "a.backend_xmin";
    case ActivityField::kQuery:
      return "a.query";
    case ActivityField::kSuperuser:
      return "a.superuser";
    case ActivityField::kCount:
      break;
  }
  return "NULL";
}

std::string LockExpr(LockField field, int version) {
  switch (field) {
    case LockField::kLocktype:
      return "l.locktype";
    case LockField::kDatabase:
      return "l.database::text";
    case LockField::kRelation:
      return "l.relation::text";
    case LockField::kPage:
      return "l.page::text";
    case LockField::kTuple:
      return "l.tuple::text";
    case LockField::kVirtualxid:
      return "l.virtualxid";
    case LockField::kTransactionid:
      return "l.transactionid::text";
    case LockField::kClassid:
      return "l.classid::text";
    case LockField::kObjid:
      return "l.objid::text";
    case LockField::kObjsubid:
      return "l.objsubid::text";
    case LockField::kVirtualtransaction:
      return "l.virtualtransaction";
    case LockField::kPid:
      return "l.pid::text";
    case LockField::kMode:
      return "l.mode";
    case LockField::kGranted:
      return Bool("l.granted");
    case LockField::kFastpath:
      return Bool("l.fastpath");
    case LockField::kWaitstart:
      return version >= 140000 ? Micros("l.waitstart") : std::string("NULL::text");
    case LockField::kCount:
      break;
  }
  return "NULL";
}

std::string PreparedExpr(PreparedField field) {
  switch (field) {
    case PreparedField::kTransaction:
      return "p.transaction::text";
    case PreparedField::kGid:
      return "p.gid";
    case PreparedField::kPrepared:
      return Micros("p.prepared");
    case PreparedField::kOwner:
      return "p.owner::text";
    case PreparedField::kDatabase:
      return "p.database::text";
    case PreparedField::kCount:
      break;
  }
  return "NULL";
}

std::string SettingExpr(SettingField field) {
  switch (field) {
    case SettingField::kName:
      return "s.name";
    case SettingField::kValue:
      return "current_setting(s.name, true)";
    case SettingField::kCount:
      break;
  }
  return "NULL";
}

std::string MetaExpr(MetaField field) {
  switch (field) {
    case MetaField::kServerVersionNum:
      return "current_setting('server_version_num')";
    case MetaField::kNowUs:
      return Micros("now()");
    case MetaField::kOwnPid:
      return "pg_backend_pid()::text";
    case MetaField::kCurrentDatabase:
      return "current_database()::text";
    // The own backend's datid: no catalog lookup needed (pg_database is only read inside the view).
    case MetaField::kDatabaseOid:
      return "(SELECT a.datid FROM a WHERE a.pid = pg_backend_pid()::text)";
    case MetaField::kWaiting:
      return Bool("(SELECT w.waiting FROM w)");
    // Evaluated when the last branch runs, i.e. after every other row was produced.
    case MetaField::kElapsedUs:
      return Micros("clock_timestamp() - statement_timestamp()");
    case MetaField::kCount:
      break;
  }
  return "NULL";
}

// One UNION ALL branch: kind literal, the kind's fields in table order, NULL up to kPayloadColumns. The
// first branch also names the result columns (kind, c1..cN).
template <typename Field, std::size_t N, typename ExprFn>
std::string Branch(char kind, const std::array<std::string_view, N>& fields, ExprFn expr, bool name_columns) {
  std::string sql = "SELECT '";
  sql += kind;
  sql += "'::text";
  if (name_columns) sql += " AS kind";
  for (std::size_t i = 0; i < kPayloadColumns; ++i) {
    sql += i % 4 == 3 ? ",\n       " : ", ";
    sql += i < fields.size() ? expr(static_cast<Field>(i)) : std::string("NULL::text");
    if (name_columns) sql += " AS c" + std::to_string(i + 1);
  }
  sql += "\n";
  return sql;
}

// rolsuper comes from pg_roles, not pg_authid: pg_authid is readable only by superusers (it holds
// rolpassword) and lockwatch runs as a pg_monitor role. The planner hashes pg_authid once and removes the
// view's pg_db_role_setting join (no column of it is used), so the cost is one hash join per poll.
std::string ActivityCte(int version) {
  std::string leader = version >= 130000 ? "leader_pid::text" : "NULL::text";
  return "a AS MATERIALIZED (\n"
         "  SELECT pid::text AS pid, datid::text AS datid, " +
         leader +
         " AS leader_pid, usename::text AS usename,\n"
         "         application_name, host(client_addr) AS client_addr, datname::text AS datname, "
         "backend_type,\n"
         "         state, wait_event_type, wait_event,\n"
         "         " +
         Micros("backend_start") + " AS backend_start,\n         " + Micros("xact_start") +
         " AS xact_start,\n         " + Micros("query_start") + " AS query_start,\n         " +
         Micros("state_change") +
         " AS state_change,\n"
         "         backend_xid::text AS backend_xid, backend_xmin::text AS backend_xmin, query,\n"
         "         CASE WHEN r.rolsuper THEN 't' WHEN NOT r.rolsuper THEN 'f' END AS superuser\n"
         "  FROM pg_stat_activity LEFT JOIN pg_roles AS r ON r.oid = usesysid)";
}

// pg_lock_status() is the function behind pg_locks; calling it directly skips the view. The CTE selects the
// function's columns exactly, in order and without a WHERE clause, so the plan has no projection: each row
// is copied into the CTE's tuplestore as it is, instead of being taken apart and rebuilt (in a pile-up of
// 100,000 lock rows the rebuild alone cost as much as a tenth of the poll). For the same reason the
// waiting gate is not here but on the one reader that starts the CTE (the lock branch below): a one-time
// filter needs a gating Result node, and that node always projects. Fast-path and SIReadLock rows are
// stored too and dropped at the end: they are always granted, so they never make a target contended.
std::string LockCte(int version) {
  return "l AS MATERIALIZED (\n"
         "  SELECT s.locktype, s.database, s.relation, s.page, s.tuple, s.virtualxid, s.transactionid,\n"
         "         s.classid, s.objid, s.objsubid, s.virtualtransaction, s.pid, s.mode, s.granted, "
         "s.fastpath" +
         std::string(version >= 140000 ? ",\n         s.waitstart" : "") +
         "\n"
         "  FROM pg_lock_status() AS s)";
}

// The waiting rows (not granted), narrow: their targets are the contended ones, their pids the waiters.
// Read only from the lock branch's sub-selects, i.e. behind the gate.
std::string WaitCte() {
  return "q AS MATERIALIZED (\n"
         "  SELECT l.locktype, l.database, l.relation, l.page, l.tuple, l.virtualxid, l.transactionid,\n"
         "         l.classid, l.objid, l.objsubid, l.pid\n"
         "  FROM l WHERE NOT l.granted)";
}

// The lock target key with NULLs replaced by sentinels so the IN can be hashed. Within one locktype the
// set of NULL columns is fixed (lockfuncs.c fills columns per type), so a sentinel never equals a real
// value of another row with the same locktype. xid has no btree operator family (a row comparison needs
// one), so it is compared as text; the cast runs only for rows whose transactionid is not NULL.
std::string KeyTuple(const std::string& t) {
  return "(" + t + ".locktype, coalesce(" + t + ".database, 0::oid), coalesce(" + t +
         ".relation, 0::oid), coalesce(" + t + ".page, -1), coalesce(" + t + ".tuple, -1), coalesce(" + t +
         ".virtualxid, ''), coalesce(" + t + ".transactionid::text, ''), coalesce(" + t +
         ".classid, 0::oid), coalesce(" + t + ".objid, 0::oid), coalesce(" + t + ".objsubid, -1))";
}

// The lock branch's row source. Rows of contended targets (some row not granted), every prepared-
// transaction row (pid NULL, needed to map a waited-on xid to its gid) and the tuple locks held by
// waiters: a row-lock waiter waits on a transactionid, and its granted tuple lock is the only row that says
// which table and row it wants. Everything else in pg_locks cannot take part in a wait.
//
// Two stages, because evaluating the 10-column key of every row was the most expensive step of a
// pile-up poll. The inner scan (OFFSET 0 keeps it a separate plan node) reads every row but only tests
// one hashed oid: relation for relation-like targets (relation, extend, page, tuple), else objid (object,
// advisory, userlock, spectoken, applytransaction); rows with neither (transactionid, virtualxid,
// frozenid) and every tuple row go through, as does every pid-NULL row. Equal keys have equal relation and
// objid columns, so this drops no row the exact test keeps. The outer filter, on the few rows left, is the
// exact test. The waiting gate sits on the inner scan: without a heavyweight-lock waiter the CTE scan
// never starts, so pg_lock_status() (which takes all 16 lock-manager partition locks) never runs, and
// neither do the sub-selects on q.
std::string LockSource() {
  return "FROM (SELECT * FROM l\n"
         "      WHERE (SELECT w.waiting FROM w)\n"
         "        AND (l.pid IS NULL OR l.tuple IS NOT NULL OR (l.relation IS NULL AND l.objid IS NULL)\n"
         "             OR coalesce(l.relation, l.objid) IN (SELECT coalesce(x.relation, x.objid) FROM q AS "
         "x))\n"
         "      OFFSET 0) AS l\n"
         "WHERE NOT l.fastpath AND l.mode <> 'SIReadLock'\n"
         "  AND (l.pid IS NULL\n"
         "       OR " +
         KeyTuple("l") + " IN (\n         SELECT " + KeyTuple("x").substr(1, KeyTuple("x").size() - 2) +
         " FROM q AS x)\n"
         "       OR (l.locktype = 'tuple' AND l.granted AND l.pid IN (SELECT y.pid FROM q AS y)))\n";
}

}  // namespace

bool SupportedServerVersion(int server_version_num) {
  return server_version_num >= kMinServerVersion && server_version_num <= kMaxServerVersion;
}

std::string SnapshotSql(int server_version_num) {
  const int v = server_version_num;
  std::string settings;
  for (std::string_view name : kRecordedSettings) {
    if (!settings.empty()) settings += ", ";
    settings += "'";
    settings += name;
    settings += "'";
  }
  std::string sql = "WITH " + ActivityCte(v) +
                    ",\n"
                    "w AS (SELECT EXISTS (SELECT 1 FROM a WHERE a.wait_event_type = 'Lock'\n"
                    "                       AND a.pid <> pg_backend_pid()::text) AS waiting),\n" +
                    LockCte(v) + ",\n" + WaitCte() + "\n";
  sql += Branch<ActivityField>(kKindActivity, kActivityFields, ActivityExpr, true);
  sql += "FROM a WHERE a.pid <> pg_backend_pid()::text\nUNION ALL\n";
  sql += Branch<LockField>(
      kKindLock, kLockFields, [v](LockField field) { return LockExpr(field, v); }, false);
  sql += LockSource() + "UNION ALL\n";
  sql += Branch<PreparedField>(kKindPrepared, kPreparedFields, PreparedExpr, false);
  sql += "FROM pg_prepared_xacts AS p\nUNION ALL\n";
  sql += Branch<SettingField>(kKindSetting, kSettingFields, SettingExpr, false);
  sql += "FROM unnest(ARRAY[" + settings +
         "]::text[]) AS s(name)\n"
         "WHERE current_setting(s.name, true) IS NOT NULL\nUNION ALL\n";
  sql += Branch<MetaField>(kKindMeta, kMetaFields, MetaExpr, false);
  return sql;
}

std::string RelationNamesSql() {
  return "SELECT c.oid::text, n.nspname || '.' || c.relname\n"
         "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace\n"
         "WHERE c.oid = ANY ($1::oid[])";
}

namespace {

// A timestamptz from int8 microseconds since the epoch, exact: int8 -> float8 is exact below 2^53 us
// (year 2255) and interval arithmetic on a pure-microsecond interval is integer arithmetic, independent of
// TimeZone. The opposite direction (extract(epoch ...)) is what the snapshot statement sends.
std::string TimestampParam(int n) {
  return "('epoch'::timestamptz + $" + std::to_string(n) + "::int8 * interval '1 microsecond')";
}

}  // namespace

// The identity is matched in a MATERIALIZED CTE so the signal function runs at most once, and only on the
// row that matched; CASE evaluates it only for a valid victim, so a refused row is reported without being
// touched. A session without a readable role counts as a superuser. A role without pg_read_all_stats sees
// other roles' sessions with NULL details: such a row matches on pid alone so the answer can say "cannot
// see it" (permission denied) instead of a misleading "stale", and it is never signalled.
std::string SignalSql(bool terminate, int server_version_num) {
  std::string signal;
  if (!terminate) {
    signal = "pg_cancel_backend(v.pid)";
  } else if (server_version_num >= 140000) {
    signal = "pg_terminate_backend(v.pid, $9::int8)";
  } else {
    signal = "pg_terminate_backend(v.pid)";
  }
  return std::string(
             "WITH v AS MATERIALIZED (\n"
             "  SELECT a.pid, a.backend_start IS NOT NULL AS visible,\n"
             "         CASE WHEN a.backend_start IS NULL\n"
             "                THEN 'a session of role ' || coalesce(a.usesysid::regrole::text, 'unknown') "
             "||\n"
             "                     ' whose details this role cannot read (it needs pg_read_all_stats, e.g. "
             "via "
             "pg_monitor)'\n"
             "              WHEN a.pid = pg_backend_pid() THEN 'lockwatch''s own session'\n"
             "              WHEN a.application_name LIKE '") +
         kSignalRefusalPrefix +
         "%' THEN 'a lockwatch session (application_name ' || a.application_name || ')'\n"
         "              WHEN a.backend_type = 'autovacuum worker' AND NOT $8::bool\n"
         "                THEN 'an autovacuum worker (the rule does not name autovacuum workers)'\n"
         "              WHEN a.backend_type NOT IN ('client backend', 'autovacuum worker')\n"
         "                THEN 'backend type ' || coalesce(a.backend_type, 'unknown') || ' is never "
         "signalled'\n"
         "              WHEN a.backend_type = 'client backend' AND NOT $7::bool AND coalesce(r.rolsuper, "
         "true)\n"
         "                THEN 'a superuser session (role ' || coalesce(a.usename::text, 'unknown') ||\n"
         "                     '; the rule does not name superusers)'\n"
         "         END AS refusal\n"
         "  FROM pg_stat_activity AS a LEFT JOIN pg_roles AS r ON r.oid = a.usesysid\n"
         "  WHERE a.pid = $1::int4\n"
         "    AND (a.backend_start IS NULL OR (a.backend_start = " +
         TimestampParam(2) +
         "\n"
         "    AND (NOT $3::bool OR a.xact_start = " +
         TimestampParam(4) +
         ")\n"
         "    AND (NOT $5::bool OR a.state_change = " +
         TimestampParam(6) +
         "))))\n"
         "SELECT v.pid::text, v.refusal,\n"
         "       CASE WHEN v.refusal IS NULL THEN CASE WHEN " +
         signal +
         " THEN 't' ELSE 'f' END END AS signalled,\n"
         "       CASE WHEN v.visible THEN 't' ELSE 'f' END AS visible\n"
         "FROM v";
}

std::string SessionAliveSql() {
  return "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = $1::int4\n"
         "  AND a.backend_start = " +
         TimestampParam(2) + ") THEN 't' ELSE 'f' END";
}

}  // namespace lockwatch::pg
