#include <functional>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "agent/core/analysis.h"

#include "tests/testing/snapshot_builder.h"

namespace lockwatch::core {
namespace {

using testing::SnapshotBuilder;

constexpr uint32_t kDb = 16384;
constexpr uint32_t kAccounts = 16400;

struct Case {
  const char* name;
  int version;
  std::function<void(SnapshotBuilder&)> row;  // sets the identity columns of one lock row
  std::string text;
  std::optional<std::string> relation;
  std::optional<uint32_t> database;
};

LockTarget Describe(const Case& c) {
  SnapshotBuilder b;
  b.Version(c.version)
      .RelationName(kDb, kAccounts, "public.accounts")
      .RelationName(0, 1262, "pg_catalog.pg_database");
  b.Lock(101).Mode("ExclusiveLock").Granted();
  c.row(b);
  const Snapshot s = b.Build();
  return DescribeTarget(s.locks.back(), s);
}

TEST(LockTargetTest, DescribesEveryLocktypeInWords) {
  const Case cases[] = {
      {"relation", 150000, [](SnapshotBuilder& b) { b.Relation(kDb, kAccounts); }, "relation public.accounts",
       "public.accounts", kDb},
      {"unresolved relation", 150000, [](SnapshotBuilder& b) { b.Relation(kDb, 99999); }, "relation 99999",
       "oid 99999", kDb},
      {"relation of another database is not resolved", 150000,
       [](SnapshotBuilder& b) { b.Relation(kDb + 1, kAccounts); }, "relation 16400", "oid 16400", kDb + 1},
      {"shared catalog", 150000, [](SnapshotBuilder& b) { b.Relation(0, 1262); },
       "relation pg_catalog.pg_database", "pg_catalog.pg_database", 0u},
      {"tuple", 150000, [](SnapshotBuilder& b) { b.Tuple(kDb, kAccounts, 0, 7); },
       "row (0,7) of public.accounts", "public.accounts", kDb},
      {"page", 150000, [](SnapshotBuilder& b) { b.Page(kDb, kAccounts, 3); }, "page 3 of public.accounts",
       "public.accounts", kDb},
      {"extend", 150000, [](SnapshotBuilder& b) { b.Extend(kDb, kAccounts); }, "extension of public.accounts",
       "public.accounts", kDb},
      {"unresolved tuple", 150000, [](SnapshotBuilder& b) { b.Tuple(kDb, 5, 1, 2); },
       "row (1,2) of relation 5", "oid 5", kDb},
      {"transactionid", 150000, [](SnapshotBuilder& b) { b.TransactionId(731); }, "transaction 731",
       std::nullopt, std::nullopt},
      {"virtualxid", 150000, [](SnapshotBuilder& b) { b.VirtualXid("3/24"); }, "virtual transaction 3/24",
       std::nullopt, std::nullopt},
      {"advisory bigint", 150000, [](SnapshotBuilder& b) { b.Advisory(kDb, 42); }, "advisory key 42",
       std::nullopt, kDb},
      {"advisory bigint above 2^32", 150000, [](SnapshotBuilder& b) { b.Advisory(kDb, 4294967297LL); },
       "advisory key 4294967297", std::nullopt, kDb},
      {"advisory negative bigint", 150000, [](SnapshotBuilder& b) { b.Advisory(kDb, -5); }, "advisory key -5",
       std::nullopt, kDb},
      {"advisory int pair", 150000, [](SnapshotBuilder& b) { b.Advisory2(kDb, 1, 2); }, "advisory key (1,2)",
       std::nullopt, kDb},
      {"advisory negative int pair", 150000, [](SnapshotBuilder& b) { b.Advisory2(kDb, -1, 7); },
       "advisory key (-1,7)", std::nullopt, kDb},
      {"object", 150000, [](SnapshotBuilder& b) { b.Object(kDb, 2615, 2200, 0); },
       "object 2615/2200/0 in database 16384", std::nullopt, kDb},
      {"frozenid", 150000, [](SnapshotBuilder& b) { b.LockType("frozenid").Database(kDb); },
       "frozen xid of database 16384", std::nullopt, kDb},
      {"spectoken PG16 layout", 160000,
       [](SnapshotBuilder& b) { b.LockType("spectoken").Xid(900).ObjId(3).ObjSubId(0); },
       "speculative insertion token 3 of transaction 900", std::nullopt, std::nullopt},
      {"spectoken PG15 generic layout", 150000,
       [](SnapshotBuilder& b) { b.LockType("spectoken").Database(900).ClassId(3).ObjId(0).ObjSubId(0); },
       "speculative insertion token 3 of transaction 900", std::nullopt, std::nullopt},
      {"speculative token PG12 name", 120000,
       [](SnapshotBuilder& b) {
         b.LockType("speculative token").Database(901).ClassId(4).ObjId(0).ObjSubId(0);
       },
       "speculative insertion token 4 of transaction 901", std::nullopt, std::nullopt},
      {"applytransaction", 160000,
       [](SnapshotBuilder& b) {
         b.LockType("applytransaction").Database(kDb).Xid(5000).ObjId(16500).ObjSubId(1);
       },
       "remote transaction 5000 of subscription 16500", std::nullopt, kDb},
      {"userlock", 150000, [](SnapshotBuilder& b) { b.LockType("userlock").Database(kDb).ClassId(1); },
       "userlock lock", std::nullopt, std::nullopt},
      {"future type", 150000, [](SnapshotBuilder& b) { b.LockType("unknown 12"); }, "unknown 12 lock",
       std::nullopt, std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const LockTarget t = Describe(c);
    EXPECT_EQ(t.text, c.text);
    EXPECT_EQ(t.relation, c.relation);
    EXPECT_EQ(t.database, c.database);
  }
}

TEST(LockTargetTest, KeepsLocktypeVerbatim) {
  const Snapshot s = SnapshotBuilder().Lock(1).LockType("speculative token").Mode("ShareLock").Build();
  EXPECT_EQ(DescribeTarget(s.locks[0], s).locktype, "speculative token");
}

}  // namespace
}  // namespace lockwatch::core
