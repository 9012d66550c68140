#include "agent/pg/decode.h"

#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/lock_mode.h"

#include "tests/pg/snapshot_fixtures.h"

namespace lockwatch::pg {
namespace {

using testing::AllVersionFixtures;
using testing::kNull;
using testing::MakeResult;
using testing::Meta;
using testing::Setting;

const core::Session* FindSession(const core::Snapshot& s, int32_t pid) {
  for (const core::Session& session : s.sessions) {
    if (session.pid == pid) return &session;
  }
  return nullptr;
}

core::Snapshot DecodeOk(const testing::VersionFixture& f, PollMeta* meta = nullptr) {
  core::Result<core::Snapshot> r = DecodeSnapshot(f.result, f.version, meta);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value() : core::Snapshot();
}

TEST(DecodeSnapshotTest, EveryVersionFixtureDecodesWithItsVersion) {
  for (const testing::VersionFixture& f : AllVersionFixtures()) {
    SCOPED_TRACE(f.version);
    core::Snapshot s = DecodeOk(f);
    EXPECT_EQ(s.server_version_num, f.version);
    EXPECT_EQ(s.captured_at_us, 1795614812289637);
    EXPECT_EQ(s.own_pid, 8020);
    EXPECT_EQ(s.current_database, "postgres");
    EXPECT_FALSE(s.sessions.empty());
    EXPECT_EQ(s.locks_read, !s.locks.empty());
  }
}

TEST(DecodeSnapshotTest, MetaRowGivesDatabaseOidAndServerElapsed) {
  PollMeta meta;
  DecodeOk(testing::Pg15(), &meta);
  EXPECT_EQ(meta.database_oid, 5u);
  EXPECT_EQ(meta.elapsed_us, 7368);
}

TEST(DecodeSnapshotTest, Pg12SessionsHaveNoLeaderAndLocksNoWaitstart) {
  core::Snapshot s = DecodeOk(testing::Pg12());
  ASSERT_EQ(s.sessions.size(), 2u);
  for (const core::Session& session : s.sessions) EXPECT_FALSE(session.leader_pid.has_value());
  ASSERT_EQ(s.locks.size(), 2u);
  for (const core::LockRow& l : s.locks) EXPECT_FALSE(l.waitstart.has_value());
}

TEST(DecodeSnapshotTest, Pg12SpeculativeTokenKeepsServerSpellingAndGenericLayout) {
  core::Snapshot s = DecodeOk(testing::Pg12());
  const core::LockRow& waiter = s.locks[1];
  EXPECT_EQ(waiter.locktype, "speculative token");
  EXPECT_EQ(waiter.database, 730u);  // before PG16 the xid travels in the database column
  EXPECT_EQ(waiter.classid, 1u);     // ... and the token in classid
  EXPECT_EQ(waiter.objid, 0u);
  EXPECT_EQ(waiter.objsubid, 0);
  EXPECT_FALSE(waiter.transactionid.has_value());
  EXPECT_EQ(waiter.mode, core::LockMode::kShare);
  EXPECT_FALSE(waiter.granted);
  EXPECT_EQ(waiter.pid, 4100);
}

TEST(DecodeSnapshotTest, Pg13ParallelWorkerCarriesLeaderPid) {
  core::Snapshot s = DecodeOk(testing::Pg13());
  const core::Session* worker = FindSession(s, 5201);
  const core::Session* leader = FindSession(s, 5200);
  ASSERT_NE(worker, nullptr);
  ASSERT_NE(leader, nullptr);
  EXPECT_EQ(worker->leader_pid, 5200);
  EXPECT_EQ(worker->backend_type, "parallel worker");
  EXPECT_FALSE(leader->leader_pid.has_value());
  EXPECT_FALSE(leader->backend_xid.has_value());
  EXPECT_EQ(leader->backend_xmin, 900u);
  EXPECT_EQ(leader->client_addr, "");  // NULL (Unix socket) reads as empty
  EXPECT_EQ(s.locks[0].mode, core::LockMode::kAccessShare);
  EXPECT_EQ(s.locks[1].mode, core::LockMode::kAccessExclusive);
  EXPECT_EQ(s.locks[2].locktype, "spectoken");
  EXPECT_EQ(s.locks[2].database, 905u);
}

TEST(DecodeSnapshotTest, Pg14WaitstartOnlyOnTheWaitingRow) {
  core::Snapshot s = DecodeOk(testing::Pg14());
  ASSERT_EQ(s.locks.size(), 2u);
  EXPECT_TRUE(s.locks[0].granted);
  EXPECT_FALSE(s.locks[0].waitstart.has_value());
  EXPECT_FALSE(s.locks[1].granted);
  EXPECT_EQ(s.locks[1].waitstart, 1795614801000123);
  EXPECT_EQ(s.locks[1].classid, 0u);
  EXPECT_EQ(s.locks[1].objid, 42u);
  EXPECT_EQ(s.locks[1].objsubid, 1);
  const core::Session* idle = FindSession(s, 6101);
  ASSERT_NE(idle, nullptr);
  EXPECT_EQ(idle->wait_event_type, "");
  EXPECT_FALSE(idle->xact_start.has_value());
  EXPECT_EQ(idle->query_start, 1795614790000000);
}

TEST(DecodeSnapshotTest, Pg15RecordedRowLockWaitAndPreparedXact) {
  core::Snapshot s = DecodeOk(testing::Pg15());
  ASSERT_EQ(s.sessions.size(), 3u);
  const core::Session* waiter = FindSession(s, 8016);
  ASSERT_NE(waiter, nullptr);
  EXPECT_EQ(waiter->usename, "postgres");
  EXPECT_EQ(waiter->application_name, "psql");
  EXPECT_EQ(waiter->state, "active");
  EXPECT_EQ(waiter->wait_event_type, "Lock");
  EXPECT_EQ(waiter->wait_event, "transactionid");
  EXPECT_EQ(waiter->backend_start, 1795614811585201);
  EXPECT_EQ(waiter->xact_start, 1795614811588074);
  EXPECT_EQ(waiter->state_change, 1795614811588075);
  EXPECT_EQ(waiter->backend_xid, 726u);
  EXPECT_EQ(waiter->backend_xmin, 725u);
  EXPECT_EQ(waiter->query, "update t set v=v+1 where id=1");
  const core::Session* launcher = FindSession(s, 7135);
  ASSERT_NE(launcher, nullptr);
  EXPECT_EQ(launcher->usename, "");
  EXPECT_EQ(launcher->state, "");

  ASSERT_EQ(s.locks.size(), 4u);
  const core::LockRow& wait = s.locks[0];
  EXPECT_EQ(wait.locktype, "transactionid");
  EXPECT_EQ(wait.transactionid, 725u);
  EXPECT_FALSE(wait.database.has_value());
  EXPECT_EQ(wait.virtualtransaction, "4/2");
  EXPECT_EQ(wait.mode, core::LockMode::kShare);
  EXPECT_FALSE(wait.granted);
  EXPECT_FALSE(wait.fastpath);
  EXPECT_EQ(wait.waitstart, 1795614811589098);
  const core::LockRow& tuple = s.locks[2];
  EXPECT_EQ(tuple.locktype, "tuple");
  EXPECT_EQ(tuple.database, 5u);
  EXPECT_EQ(tuple.relation, 16385u);
  EXPECT_EQ(tuple.page, 0);
  EXPECT_EQ(tuple.tuple, 1);
  const core::LockRow& prepared_hold = s.locks[3];
  EXPECT_FALSE(prepared_hold.pid.has_value());
  EXPECT_EQ(prepared_hold.virtualtransaction, "3/24");

  ASSERT_EQ(s.prepared.size(), 1u);
  EXPECT_EQ(s.prepared[0].transaction, 740u);
  EXPECT_EQ(s.prepared[0].gid, "gx1");
  EXPECT_EQ(s.prepared[0].prepared, 1795614790000000);
  EXPECT_EQ(s.prepared[0].owner, "postgres");
  EXPECT_EQ(s.prepared[0].database, "postgres");

  ASSERT_EQ(s.settings.size(), 4u);
  EXPECT_EQ(s.settings[1].name, "lock_timeout");
  EXPECT_EQ(s.settings[1].value, "100ms");
}

TEST(DecodeSnapshotTest, Pg16SpectokenAndApplyTransactionLayout) {
  core::Snapshot s = DecodeOk(testing::Pg16());
  ASSERT_EQ(s.locks.size(), 3u);
  const core::LockRow& spec = s.locks[1];
  EXPECT_EQ(spec.locktype, "spectoken");
  EXPECT_EQ(spec.transactionid, 811u);  // PG16+: xid in transactionid, token in objid
  EXPECT_EQ(spec.objid, 5u);
  EXPECT_FALSE(spec.database.has_value());
  EXPECT_FALSE(spec.classid.has_value());
  const core::LockRow& apply = s.locks[2];
  EXPECT_EQ(apply.locktype, "applytransaction");
  EXPECT_EQ(apply.database, 16384u);
  EXPECT_EQ(apply.transactionid, 1234567u);
  EXPECT_EQ(apply.objid, 16500u);
  EXPECT_EQ(apply.objsubid, 1);
  EXPECT_FALSE(apply.classid.has_value());
  const core::Session* apply_worker = FindSession(s, 9200);
  ASSERT_NE(apply_worker, nullptr);
  EXPECT_EQ(apply_worker->leader_pid, 9199);
}

TEST(DecodeSnapshotTest, Pg17VirtualxidIsOpaqueText) {
  core::Snapshot s = DecodeOk(testing::Pg17());
  ASSERT_EQ(s.locks.size(), 2u);
  EXPECT_EQ(s.locks[0].virtualxid, "103/7");
  EXPECT_EQ(s.locks[1].virtualtransaction, "101/3");
  EXPECT_EQ(s.locks[1].mode, core::LockMode::kShare);
}

TEST(DecodeSnapshotTest, Pg18SteadyStateHasNoLocks) {
  core::Snapshot s = DecodeOk(testing::Pg18());
  EXPECT_FALSE(s.locks_read);
  EXPECT_TRUE(s.locks.empty());
  ASSERT_EQ(s.settings.size(), 2u);
  EXPECT_EQ(s.settings[0].name, "max_locks_per_transaction");
}

TEST(DecodeSnapshotTest, SuperuserIsDecodedForEveryVersionAndNullIsUnknown) {
  struct Case {
    testing::VersionFixture fixture;
    int32_t pid;
    std::optional<bool> want;
  };
  const std::vector<Case> cases = {
      {testing::Pg12(), 4100, false}, {testing::Pg13(), 5300, true},   {testing::Pg13(), 5201, false},
      {testing::Pg14(), 6101, false}, {testing::Pg15(), 8005, true},   {testing::Pg15(), 7135, std::nullopt},
      {testing::Pg16(), 9200, true},  {testing::Pg17(), 10100, false}, {testing::Pg18(), 11100, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.fixture.version) + " pid " + std::to_string(c.pid));
    const core::Snapshot s = DecodeOk(c.fixture);
    const core::Session* session = FindSession(s, c.pid);
    ASSERT_NE(session, nullptr);
    EXPECT_EQ(session->superuser, c.want);
  }
}

TEST(DecodeSnapshotTest, ExtremeValuesAtTheTypeLimitsDecode) {
  RowSet r = MakeResult({
      {"a", "2147483647", kNull, "", "", kNull, "", "", "", "", "", "-9223372036854775808", kNull, kNull,
       "9223372036854775807", "4294967295", "0", "", kNull},
      {"l", "object", "0", kNull, kNull, kNull, kNull, kNull, "4294967295", "4294967295", "-2147483648",
       "1/1", "1", "AccessShareLock", "t", "f", kNull},
      Meta("150018", "t"),
  });
  core::Result<core::Snapshot> s = DecodeSnapshot(r, 150018);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s.value().sessions[0].pid, 2147483647);
  EXPECT_EQ(s.value().sessions[0].backend_start, INT64_MIN);
  EXPECT_EQ(s.value().sessions[0].backend_xid, 4294967295u);
  EXPECT_EQ(s.value().locks[0].objsubid, INT32_MIN);
}

// ---- Malformed input ---------------------------------------------------------------------------------

// A small valid result; each case breaks one thing. Row numbers: 0 'a', 1 'l', 2 'p', 3 's', 4 'm'.
RowSet Valid() {
  return MakeResult({
      {"a", "100", kNull, "u", "app", kNull, "db", "client backend", "active", "Lock", "relation", "1", "2",
       "3", "4", "700", "699", "SELECT 1", "f"},
      {"l", "relation", "5", "16385", kNull, kNull, kNull, kNull, kNull, kNull, kNull, "3/1", "100",
       "AccessShareLock", "f", "f", "5"},
      {"p", "740", "gx1", "6", "postgres", "db"},
      Setting("lock_timeout", "100ms"),
      Meta("150018", "t"),
  });
}

struct MalformedCase {
  std::string name;
  std::function<void(RowSet*)> mutate;
  int version;
  std::vector<std::string> message_has;
};

void Set(RowSet* r, std::size_t row, std::size_t col, testing::Cell value) {
  r->rows[row][col] = std::move(value);
}

TEST(DecodeSnapshotTest, MalformedInputIsCorruptAndNamesRowAndColumn) {
  const std::vector<MalformedCase> cases = {
      {"empty result", [](RowSet* r) { *r = RowSet(); }, 150018, {"columns"}},
      {"wrong column name", [](RowSet* r) { r->columns[3] = "c33"; }, 150018, {"columns", "\"c33\""}},
      {"missing column in header", [](RowSet* r) { r->columns.pop_back(); }, 150018, {"columns"}},
      {"short row", [](RowSet* r) { r->rows[1].pop_back(); }, 150018, {"row 1 has 18 values, want 19"}},
      {"empty row", [](RowSet* r) { r->rows[2].clear(); }, 150018, {"row 2 has 0 values"}},
      {"unknown kind", [](RowSet* r) { Set(r, 0, 0, "x"); }, 150018, {"row 0", "kind", "unknown kind \"x\""}},
      {"NULL kind", [](RowSet* r) { Set(r, 3, 0, kNull); }, 150018, {"row 3", "unknown kind NULL"}},
      {"two-letter kind", [](RowSet* r) { Set(r, 3, 0, "ss"); }, 150018, {"row 3", "unknown kind \"ss\""}},
      {"bad integer",
       [](RowSet* r) { Set(r, 0, 1, "12a"); },
       150018,
       {"row 0 (kind 'a')", "c1 (pid)", "bad integer"}},
      {"empty integer", [](RowSet* r) { Set(r, 1, 3, ""); }, 150018, {"row 1 (kind 'l')", "c3 (relation)"}},
      {"leading space", [](RowSet* r) { Set(r, 0, 1, " 1"); }, 150018, {"c1 (pid)"}},
      {"plus sign", [](RowSet* r) { Set(r, 0, 1, "+1"); }, 150018, {"c1 (pid)"}},
      {"int32 overflow", [](RowSet* r) { Set(r, 0, 1, "2147483648"); }, 150018, {"c1 (pid)", "32 bit"}},
      {"negative xid", [](RowSet* r) { Set(r, 0, 15, "-1"); }, 150018, {"c15 (backend_xid)", "unsigned"}},
      {"xid overflow", [](RowSet* r) { Set(r, 0, 16, "4294967296"); }, 150018, {"c16 (backend_xmin)"}},
      {"timestamp overflow",
       [](RowSet* r) { Set(r, 0, 11, "9223372036854775808"); },
       150018,
       {"c11 (backend_start)", "64 bit"}},
      {"NULL pid", [](RowSet* r) { Set(r, 0, 1, kNull); }, 150018, {"c1 (pid)", "unexpected NULL"}},
      {"bad boolean",
       [](RowSet* r) { Set(r, 1, 14, "true"); },
       150018,
       {"row 1", "c14 (granted)", "bad boolean"}},
      {"NULL boolean",
       [](RowSet* r) { Set(r, 1, 15, kNull); },
       150018,
       {"c15 (fastpath)", "unexpected NULL"}},
      {"unknown mode", [](RowSet* r) { Set(r, 1, 13, "FooLock"); }, 150018, {"c13 (mode)", "FooLock"}},
      {"bad superuser boolean",
       [](RowSet* r) { Set(r, 0, 18, "true"); },
       150018,
       {"row 0 (kind 'a')", "c18 (superuser)", "bad boolean"}},
      {"NULL locktype", [](RowSet* r) { Set(r, 1, 1, kNull); }, 150018, {"c1 (locktype)"}},
      {"NULL gid", [](RowSet* r) { Set(r, 2, 2, kNull); }, 150018, {"row 2 (kind 'p')", "c2 (gid)"}},
      {"value in unused column",
       [](RowSet* r) { Set(r, 2, 6, "x"); },
       150018,
       {"row 2", "c6", "does not use"}},
      {"NULL setting value", [](RowSet* r) { Set(r, 3, 2, kNull); }, 150018, {"row 3", "c2 (value)"}},
      {"no meta row", [](RowSet* r) { r->rows.pop_back(); }, 150018, {"no meta row"}},
      {"second meta row",
       [](RowSet* r) { r->rows.push_back(r->rows.back()); },
       150018,
       {"row 5", "second meta"}},
      {"version mismatch", [](RowSet*) {}, 140000, {"row 4 (kind 'm')", "server_version_num", "140000"}},
      {"bad meta boolean", [](RowSet* r) { Set(r, 4, 6, "yes"); }, 150018, {"row 4", "c6 (waiting)"}},
      {"lock rows without waiting", [](RowSet* r) { Set(r, 4, 6, "f"); }, 150018, {"row 1", "was not read"}},
      {"leader_pid before 13",
       [](RowSet* r) {
         Set(r, 0, 2, "99");
         Set(r, 4, 1, "120010");
         Set(r, 1, 16, kNull);
       },
       120010,
       {"c2 (leader_pid)", "before 13"}},
      {"waitstart before 14",
       [](RowSet* r) { Set(r, 4, 1, "130010"); },
       130010,
       {"row 1", "c16 (waitstart)", "before 14"}},
      {"binary junk quoted safely",
       [](RowSet* r) { Set(r, 0, 1, std::string("\x01\xff", 2)); },
       150018,
       {"\"??\""}},
  };
  for (const MalformedCase& c : cases) {
    SCOPED_TRACE(c.name);
    RowSet r = Valid();
    c.mutate(&r);
    core::Result<core::Snapshot> s = DecodeSnapshot(r, c.version);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), core::Status::Code::kCorrupt);
    for (const std::string& part : c.message_has) {
      EXPECT_NE(s.status().message().find(part), std::string::npos)
          << "message: " << s.status().message() << "\nwanted: " << part;
    }
  }
}

TEST(DecodeSnapshotTest, ValidBaseOfTheMalformedCasesDecodes) {
  core::Result<core::Snapshot> s = DecodeSnapshot(Valid(), 150018);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s.value().locks.size(), 1u);
}

TEST(DecodeSnapshotTest, ZeroVersionSkipsTheVersionCheck) { EXPECT_TRUE(DecodeSnapshot(Valid(), 0).ok()); }

// Random byte-level damage never crashes and never yields a half-decoded value without an error.
TEST(DecodeSnapshotTest, RandomDamageGivesCorruptOrAValidSnapshot) {
  std::mt19937 rng(12345);
  const std::vector<std::string> junk = {"",  "-",   "t",  "f", "m", "l", "99999999999999999999",
                                         "0", "x\n", "NaN"};
  int corrupt = 0;
  for (int i = 0; i < 3000; ++i) {
    RowSet r = testing::Pg15().result;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      auto& row = r.rows[rng() % r.rows.size()];
      if (row.empty()) row.emplace_back("a");
      switch (rng() % 4) {
        case 0:
          row[rng() % row.size()] = junk[rng() % junk.size()];
          break;
        case 1:
          row[rng() % row.size()] = kNull;
          break;
        case 2:
          row.resize(rng() % (row.size() + 2));
          break;
        default:
          r.rows.push_back(row);
          break;
      }
    }
    core::Result<core::Snapshot> s = DecodeSnapshot(r, 150018);
    if (s.ok()) {
      EXPECT_EQ(s.value().server_version_num, 150018);
    } else {
      EXPECT_EQ(s.status().code(), core::Status::Code::kCorrupt);
      ++corrupt;
    }
  }
  EXPECT_GT(corrupt, 1000);
}

// ---- Relation names ------------------------------------------------------------------------------------

TEST(DecodeRelationNamesTest, DecodesOidAndName) {
  RowSet r{{"oid", "?column?"}, {{"16385", "public.t"}, {"1259", "pg_catalog.pg_class"}}};
  auto names = DecodeRelationNames(r);
  ASSERT_TRUE(names.ok()) << names.status().message();
  ASSERT_EQ(names.value().size(), 2u);
  EXPECT_EQ(names.value()[0].first, 16385u);
  EXPECT_EQ(names.value()[1].second, "pg_catalog.pg_class");
}

TEST(DecodeRelationNamesTest, MalformedRowsAreCorrupt) {
  struct Case {
    RowSet rows;
    std::string message_has;
  };
  const std::vector<Case> cases = {
      {RowSet{{"oid"}, {}}, "1 columns"},
      {RowSet{{"oid", "name"}, {{"1", "a"}, {"2"}}}, "row 1 has 1 values"},
      {RowSet{{"oid", "name"}, {{"x", "a"}}}, "row 0, column oid: bad unsigned"},
      {RowSet{{"oid", "name"}, {{"-5", "a"}}}, "column oid"},
      {RowSet{{"oid", "name"}, {{kNull, "a"}}}, "column oid: unexpected NULL"},
      {RowSet{{"oid", "name"}, {{"1", kNull}}}, "column name: unexpected NULL"},
  };
  for (const Case& c : cases) {
    auto names = DecodeRelationNames(c.rows);
    ASSERT_FALSE(names.ok()) << c.message_has;
    EXPECT_EQ(names.status().code(), core::Status::Code::kCorrupt);
    EXPECT_NE(names.status().message().find(c.message_has), std::string::npos) << names.status().message();
  }
}

}  // namespace
}  // namespace lockwatch::pg
