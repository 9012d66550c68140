#include "agent/pg/relation_names.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lockwatch::pg {
namespace {

constexpr uint32_t kDb = 5;

core::LockRow Rel(std::optional<uint32_t> database, std::optional<uint32_t> relation) {
  core::LockRow l;
  l.locktype = relation.has_value() ? "relation" : "transactionid";
  l.database = database;
  l.relation = relation;
  return l;
}

core::Snapshot WithLocks(std::vector<core::LockRow> locks) {
  core::Snapshot s;
  s.locks = std::move(locks);
  return s;
}

// A fake names statement: answers from a table, records each call's oids.
struct FakeCatalog {
  std::vector<std::pair<uint32_t, std::string>> table;
  std::vector<std::vector<uint32_t>> calls;
  core::Status fail;

  FetchRelationNamesFn Fn() {
    return [this](const std::vector<uint32_t>& oids) -> core::Result<RowSet> {
      calls.push_back(oids);
      if (!fail.ok()) return fail;
      RowSet r{{"oid", "?column?"}, {}};
      for (const auto& [oid, name] : table) {
        for (uint32_t want : oids) {
          if (want == oid) r.rows.push_back({std::to_string(oid), name});
        }
      }
      return r;
    };
  }
};

std::vector<std::string> Names(const core::Snapshot& s) {
  std::vector<std::string> out;
  for (const core::RelationName& n : s.relation_names) {
    out.push_back(std::to_string(n.database) + ":" + std::to_string(n.relation) + "=" + n.name);
  }
  return out;
}

TEST(NameableRelationsTest, OnlyCurrentDatabaseAndSharedDeduplicated) {
  core::Snapshot s = WithLocks({Rel(kDb, 16390), Rel(kDb, 16385), Rel(kDb, 16390), Rel(0, 1262),
                                Rel(99, 16385), Rel(std::nullopt, std::nullopt)});
  const std::vector<RelationKey> want = {{0, 1262}, {kDb, 16385}, {kDb, 16390}};
  EXPECT_EQ(NameableRelations(s, kDb), want);
}

TEST(ResolveRelationNamesTest, FetchesMissesOnceThenServesFromCache) {
  FakeCatalog catalog{{{16385, "public.t"}, {1262, "pg_catalog.pg_database"}}, {}, {}};
  RelationNameCache cache;
  core::Snapshot s = WithLocks({Rel(kDb, 16385), Rel(0, 1262), Rel(99, 777)});
  bool fetched = false;
  EXPECT_TRUE(ResolveRelationNames(kDb, catalog.Fn(), &cache, &s, &fetched).ok());
  EXPECT_TRUE(fetched);
  ASSERT_EQ(catalog.calls.size(), 1u);
  EXPECT_EQ(catalog.calls[0], (std::vector<uint32_t>{1262, 16385}));
  EXPECT_EQ(Names(s), (std::vector<std::string>{"0:1262=pg_catalog.pg_database", "5:16385=public.t"}));

  core::Snapshot again = WithLocks({Rel(kDb, 16385)});
  EXPECT_TRUE(ResolveRelationNames(kDb, catalog.Fn(), &cache, &again, &fetched).ok());
  EXPECT_FALSE(fetched);
  EXPECT_EQ(catalog.calls.size(), 1u);
  EXPECT_EQ(Names(again), (std::vector<std::string>{"5:16385=public.t"}));
}

TEST(ResolveRelationNamesTest, NoRelationsNoFetch) {
  FakeCatalog catalog;
  RelationNameCache cache;
  core::Snapshot s = WithLocks({Rel(std::nullopt, std::nullopt)});
  EXPECT_TRUE(ResolveRelationNames(kDb, catalog.Fn(), &cache, &s).ok());
  EXPECT_TRUE(catalog.calls.empty());
}

TEST(ResolveRelationNamesTest, FetchFailureLeavesOidsAndKeepsCachedNames) {
  FakeCatalog catalog{{{16385, "public.t"}}, {}, {}};
  RelationNameCache cache;
  core::Snapshot first = WithLocks({Rel(kDb, 16385)});
  ASSERT_TRUE(ResolveRelationNames(kDb, catalog.Fn(), &cache, &first).ok());

  catalog.fail = core::Status::Timeout("SQLSTATE 55P03: canceling statement due to lock timeout");
  core::Snapshot s = WithLocks({Rel(kDb, 16385), Rel(kDb, 16400)});
  core::Status st = ResolveRelationNames(kDb, catalog.Fn(), &cache, &s);
  EXPECT_EQ(st.code(), core::Status::Code::kTimeout);
  EXPECT_EQ(Names(s), (std::vector<std::string>{"5:16385=public.t"}));
  EXPECT_EQ(s.locks.size(), 2u);
}

TEST(ResolveRelationNamesTest, MalformedAnswerIsReportedNotFatal) {
  RelationNameCache cache;
  core::Snapshot s = WithLocks({Rel(kDb, 16385)});
  FetchRelationNamesFn bad = [](const std::vector<uint32_t>&) -> core::Result<RowSet> {
    return RowSet{{"oid", "name"}, {{"not-an-oid", "x"}}};
  };
  core::Status st = ResolveRelationNames(kDb, bad, &cache, &s);
  EXPECT_EQ(st.code(), core::Status::Code::kCorrupt);
  EXPECT_TRUE(s.relation_names.empty());
}

TEST(ResolveRelationNamesTest, DroppedRelationStaysUnnamed) {
  FakeCatalog catalog;  // knows nothing: the relation was dropped between the two statements
  RelationNameCache cache;
  core::Snapshot s = WithLocks({Rel(kDb, 16385)});
  EXPECT_TRUE(ResolveRelationNames(kDb, catalog.Fn(), &cache, &s).ok());
  EXPECT_TRUE(s.relation_names.empty());
  EXPECT_EQ(cache.size(), 0u);
}

TEST(RelationNameCacheTest, ClearsWhenFullAndStillNamesTheCurrentPoll) {
  RelationNameCache small(2);
  small.Insert({kDb, 1}, "a");
  small.Insert({kDb, 2}, "b");
  small.Insert({kDb, 2}, "b2");  // an update of a present key does not clear
  EXPECT_EQ(small.size(), 2u);
  small.Insert({kDb, 3}, "c");
  EXPECT_EQ(small.size(), 1u);
  EXPECT_EQ(small.Find({kDb, 1}), nullptr);
  ASSERT_NE(small.Find({kDb, 3}), nullptr);
  EXPECT_EQ(*small.Find({kDb, 3}), "c");

  FakeCatalog catalog{{{10, "s.x"}, {11, "s.y"}, {12, "s.z"}}, {}, {}};
  RelationNameCache tiny(1);
  core::Snapshot s = WithLocks({Rel(kDb, 10), Rel(kDb, 11), Rel(kDb, 12)});
  EXPECT_TRUE(ResolveRelationNames(kDb, catalog.Fn(), &tiny, &s).ok());
  EXPECT_EQ(s.relation_names.size(), 3u);
  EXPECT_LE(tiny.size(), 1u);
}

TEST(OidArrayLiteralTest, BraceList) {
  EXPECT_EQ(OidArrayLiteral({}), "{}");
  EXPECT_EQ(OidArrayLiteral({16385}), "{16385}");
  EXPECT_EQ(OidArrayLiteral({1, 4294967295u}), "{1,4294967295}");
}

}  // namespace
}  // namespace lockwatch::pg
