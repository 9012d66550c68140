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
    EXPECT_EQ(Has(sql, "s.waitstart AS waitstart"), v >= 140000);
    EXPECT_EQ(Has(sql, "NULL::timestamptz AS waitstart"), v < 140000);
  }
}

TEST(SnapshotSqlTest, ReadsLockFunctionOnceBehindTheWaitingGate) {
  for (int v : kVersions) {
    SCOPED_TRACE(v);
    const std::string sql = SnapshotSql(v);
    EXPECT_EQ(Count(sql, "pg_lock_status()"), 1u);
    EXPECT_FALSE(Has(sql, "pg_locks"));
    EXPECT_TRUE(Has(sql, "l AS MATERIALIZED"));
    EXPECT_TRUE(Has(sql, "WHERE (SELECT w.waiting FROM w) AND s.mode <> 'SIReadLock' AND NOT s.fastpath"));
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
  // The first branch names kind and c1..c17; no c18.
  EXPECT_TRUE(Has(sql, "'a'::text AS kind"));
  EXPECT_TRUE(Has(sql, "AS c" + std::to_string(kPayloadColumns)));
  EXPECT_FALSE(Has(sql, "AS c" + std::to_string(kPayloadColumns + 1)));
  EXPECT_EQ(Count(sql, "UNION ALL"), 4u);
  // Padding per branch: l 1, p 12, s 15, m 10.
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
  EXPECT_TRUE(Has(sql, "l.pid IS NULL OR (l.locktype, coalesce(l.database, 0::oid)"));
  EXPECT_TRUE(Has(sql, "FROM l AS x WHERE NOT x.granted"));
  EXPECT_TRUE(Has(sql, "coalesce(x.transactionid::text, '')"));
  EXPECT_TRUE(Has(sql, "l.locktype = 'tuple' AND l.granted"));
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

TEST(FieldTablesTest, WidestKindDefinesThePayloadWidth) {
  EXPECT_EQ(kPayloadColumns, 17u);
  EXPECT_LE(kLockFields.size(), kPayloadColumns);
  EXPECT_LE(kMetaFields.size(), kPayloadColumns);
  EXPECT_EQ(kSnapshotColumns, kPayloadColumns + 1);
}

}  // namespace
}  // namespace lockwatch::pg
