#include "agent/pg/queries.h"

#include <array>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lockwatch::pg {
namespace {

bool Has(const std::string& sql, const std::string& part) { return sql.find(part) != std::string::npos; }

std::size_t Count(const std::string& sql, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t pos = sql.find(part); pos != std::string::npos; pos = sql.find(part, pos + 1)) ++n;
  return n;
}

constexpr std::array<int, 12> kVersions = {120000, 120022, 130000, 130018, 140000, 140015,
                                           150018, 160000, 160010, 170006, 180001, 189999};

TEST(SnapshotSqlTest, LeaderPidOnlyFromPg13) {
  for (int v : kVersions) {
    SCOPED_TRACE(v);
    const std::string sql = SnapshotSql(v);
    EXPECT_EQ(Has(sql, "leader_pid::text AS leader_pid"), v >= 130000);
    EXPECT_EQ(Has(sql, "NULL::text AS leader_pid"), v < 130000);
  }
}

TEST(SnapshotSqlTest, WaitstartOnlyFromPg14) {
  for (int v : kVersions) {
    SCOPED_TRACE(v);
    const std::string sql = SnapshotSql(v);
    EXPECT_EQ(Has(sql, "s.fastpath,\n         s.waitstart\n  FROM pg_lock_status() AS s)"), v >= 140000);
    EXPECT_EQ(Has(sql, "s.fastpath\n  FROM pg_lock_status() AS s)"), v < 140000);
    EXPECT_EQ(Has(sql, "(extract(epoch FROM l.waitstart) * 1000000)::int8::text"), v >= 140000);
    EXPECT_EQ(Has(sql, "waitstart"), v >= 140000);
  }
}

TEST(SnapshotSqlTest, ReadsLockFunctionOnceBehindTheWaitingGate) {
  for (int v : kVersions) {
    SCOPED_TRACE(v);
    const std::string sql = SnapshotSql(v);
    EXPECT_EQ(Count(sql, "pg_lock_status()"), 1u);
    EXPECT_FALSE(Has(sql, "pg_locks"));
    EXPECT_TRUE(Has(sql, "l AS MATERIALIZED"));
    EXPECT_TRUE(Has(sql, "q AS MATERIALIZED"));
    // The lock CTE has no WHERE clause (no projection); its only direct readers are the gated lock branch
    // and q, which only that branch's sub-selects read.
    EXPECT_TRUE(Has(sql, "  FROM pg_lock_status() AS s)"));
    EXPECT_EQ(Count(sql, "FROM l ") + Count(sql, "FROM l\n"), 2u);
    EXPECT_TRUE(Has(sql, "FROM (SELECT * FROM l\n      WHERE (SELECT w.waiting FROM w)\n"));
    EXPECT_TRUE(Has(sql, "  FROM l WHERE NOT l.granted)"));
    EXPECT_EQ(Count(sql, "FROM q AS"), 3u);
    EXPECT_TRUE(Has(sql, "WHERE NOT l.fastpath AND l.mode <> 'SIReadLock'"));
    EXPECT_TRUE(Has(sql, "a.wait_event_type = 'Lock'"));
  }
}

TEST(SnapshotSqlTest, NeverJoinsRelationCatalogs) {
  for (int v : kVersions) {
    const std::string sql = SnapshotSql(v);
    EXPECT_FALSE(Has(sql, "pg_class")) << v;
    EXPECT_FALSE(Has(sql, "pg_namespace")) << v;
    EXPECT_FALSE(Has(sql, "pg_settings")) << v;  // current_setting() needs no view
    EXPECT_FALSE(Has(sql, "$1")) << v;           // no parameters
  }
}

TEST(SnapshotSqlTest, EveryBranchHasTheSameWidth) {
  const std::string sql = SnapshotSql(150018);
  // The first branch names kind and c1..c18; no c19.
  EXPECT_TRUE(Has(sql, "'a'::text AS kind"));
  EXPECT_TRUE(Has(sql, "AS c" + std::to_string(kPayloadColumns)));
  EXPECT_FALSE(Has(sql, "AS c" + std::to_string(kPayloadColumns + 1)));
  EXPECT_EQ(Count(sql, "UNION ALL"), 4u);
  // Padding per branch: l 2, p 13, s 16, m 11.
  const std::size_t padding =
      (kPayloadColumns - kLockFields.size()) + (kPayloadColumns - kPreparedFields.size()) +
      (kPayloadColumns - kSettingFields.size()) + (kPayloadColumns - kMetaFields.size());
  EXPECT_EQ(Count(sql, "NULL::text,") + Count(sql, "NULL::text\n"), padding);
}

TEST(SnapshotSqlTest, MetaRowComesLastSoItsClockReadingEndsTheStatement) {
  const std::string sql = SnapshotSql(150018);
  EXPECT_GT(sql.find("SELECT 'm'"), sql.find("SELECT 's'"));
  EXPECT_GT(sql.find("SELECT 's'"), sql.find("SELECT 'p'"));
  EXPECT_TRUE(Has(sql, "clock_timestamp() - statement_timestamp()"));
}

TEST(SnapshotSqlTest, KeepsContendedTargetsPreparedRowsAndWaitersTupleLocks) {
  const std::string sql = SnapshotSql(150018);
  // Inner stage: one hashed oid per row, everything without relation and objid (and every tuple or
  // prepared-transaction row) passes on to the exact test.
  EXPECT_TRUE(
      Has(sql, "AND (l.pid IS NULL OR l.tuple IS NOT NULL OR (l.relation IS NULL AND l.objid IS NULL)"));
  EXPECT_TRUE(
      Has(sql, "coalesce(l.relation, l.objid) IN (SELECT coalesce(x.relation, x.objid) FROM q AS x)"));
  EXPECT_TRUE(Has(sql, "OFFSET 0) AS l"));
  // Outer stage: the exact key.
  EXPECT_TRUE(Has(sql, "AND (l.pid IS NULL\n       OR (l.locktype, coalesce(l.database, 0::oid)"));
  EXPECT_TRUE(Has(sql, "coalesce(x.transactionid::text, '')"));
  EXPECT_TRUE(Has(sql, "coalesce(x.objsubid, -1) FROM q AS x)"));
  EXPECT_TRUE(Has(sql, "l.locktype = 'tuple' AND l.granted AND l.pid IN (SELECT y.pid FROM q AS y)"));
}

TEST(SnapshotSqlTest, RecordsTheSettingsThatShapeWaits) {
  const std::string sql = SnapshotSql(150018);
  for (std::string_view name : kRecordedSettings)
    EXPECT_TRUE(Has(sql, "'" + std::string(name) + "'")) << name;
}

TEST(SnapshotSqlTest, ExcludesOwnBackendFromSessions) {
  EXPECT_TRUE(Has(SnapshotSql(150018), "FROM a WHERE a.pid <> pg_backend_pid()::text"));
}

TEST(SupportedServerVersionTest, TwelveToEighteen) {
  EXPECT_FALSE(SupportedServerVersion(110022));
  EXPECT_FALSE(SupportedServerVersion(119999));
  EXPECT_TRUE(SupportedServerVersion(120000));
  EXPECT_TRUE(SupportedServerVersion(189999));
  EXPECT_FALSE(SupportedServerVersion(190000));
}

TEST(RelationNamesSqlTest, TakesAnOidArrayAndReturnsQualifiedNames) {
  const std::string sql = RelationNamesSql();
  EXPECT_TRUE(Has(sql, "$1::oid[]"));
  EXPECT_TRUE(Has(sql, "n.nspname || '.' || c.relname"));
}

TEST(SnapshotSqlTest, ReadsSuperuserFromPgRolesNotPgAuthid) {
  for (int v : kVersions) {
    SCOPED_TRACE(v);
    const std::string sql = SnapshotSql(v);
    EXPECT_TRUE(Has(sql, "LEFT JOIN pg_roles AS r ON r.oid = usesysid"));
    EXPECT_TRUE(Has(sql, "END AS superuser"));
    EXPECT_TRUE(Has(sql, "a.superuser AS c18"));
    EXPECT_FALSE(Has(sql, "pg_authid"));  // readable only by superusers
  }
}

TEST(SignalSqlTest, SignalFunctionPerKindAndVersion) {
  struct Case {
    bool terminate;
    int version;
    const char* signal;
    bool has_timeout_param;
  };
  const std::vector<Case> cases = {
      {false, 120022, "pg_cancel_backend(v.pid)", false},
      {false, 150018, "pg_cancel_backend(v.pid)", false},
      {true, 120022, "pg_terminate_backend(v.pid)", false},
      {true, 130018, "pg_terminate_backend(v.pid)", false},
      {true, 140000, "pg_terminate_backend(v.pid, $9::int8)", true},
      {true, 180001, "pg_terminate_backend(v.pid, $9::int8)", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.version) + (c.terminate ? " terminate" : " cancel"));
    const std::string sql = SignalSql(c.terminate, c.version);
    EXPECT_TRUE(Has(sql, c.signal));
    EXPECT_EQ(Has(sql, "$9"), c.has_timeout_param);
    EXPECT_EQ(Count(sql, "pg_cancel_backend") + Count(sql, "pg_terminate_backend"), 1u);
  }
}

TEST(SignalSqlTest, MatchesTheIdentityExactlyAndSignalsOnlyAValidVictim) {
  const std::string sql = SignalSql(true, 150018);
  // Integer microseconds, never floating seconds.
  EXPECT_TRUE(Has(sql, "a.backend_start = ('epoch'::timestamptz + $2::int8 * interval '1 microsecond')"));
  EXPECT_TRUE(Has(sql, "(NOT $3::bool OR a.xact_start = ('epoch'::timestamptz + $4::int8"));
  EXPECT_TRUE(Has(sql, "(NOT $5::bool OR a.state_change = ('epoch'::timestamptz + $6::int8"));
  EXPECT_FALSE(Has(sql, "to_timestamp"));
  EXPECT_TRUE(Has(sql, "WHERE a.pid = $1::int4"));
  EXPECT_TRUE(Has(sql, "WITH v AS MATERIALIZED"));
  EXPECT_TRUE(Has(sql, "CASE WHEN v.refusal IS NULL THEN CASE WHEN pg_terminate_backend"));
  // Refusals: unreadable details, own session, lockwatch sessions, autovacuum unless allowed, other backend
  // types, superusers (unknown role counts as one) unless allowed.
  EXPECT_TRUE(Has(sql, "WHEN a.backend_start IS NULL"));
  EXPECT_TRUE(Has(sql, "WHEN a.pid = pg_backend_pid()"));
  EXPECT_TRUE(Has(sql, "a.application_name LIKE 'lockwatch%'"));
  EXPECT_TRUE(Has(sql, "a.backend_type = 'autovacuum worker' AND NOT $8::bool"));
  EXPECT_TRUE(Has(sql, "a.backend_type NOT IN ('client backend', 'autovacuum worker')"));
  EXPECT_TRUE(Has(sql, "NOT $7::bool AND coalesce(r.rolsuper, true)"));
  EXPECT_FALSE(Has(sql, "pg_authid"));
}

TEST(SessionAliveSqlTest, ComparesPidAndExactBackendStart) {
  const std::string sql = SessionAliveSql();
  EXPECT_TRUE(Has(sql, "a.pid = $1::int4"));
  EXPECT_TRUE(Has(sql, "a.backend_start = ('epoch'::timestamptz + $2::int8 * interval '1 microsecond')"));
}

TEST(FieldTablesTest, WidestKindDefinesThePayloadWidth) {
  EXPECT_EQ(kPayloadColumns, 18u);
  EXPECT_LE(kLockFields.size(), kPayloadColumns);
  EXPECT_LE(kMetaFields.size(), kPayloadColumns);
  EXPECT_EQ(kSnapshotColumns, kPayloadColumns + 1);
}

}  // namespace
}  // namespace lockwatch::pg
