#include "agent/json/tree_document.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/core/analysis.h"
#include "agent/core/explain.h"
#include "agent/json/iso_time.h"

#include "tests/app/tree_fixtures.h"

namespace lockwatch::app_test {
namespace {

using core::LockMode;
using nlohmann::json;

// Every kind of node and edge at once: a prepared transaction blocking a row update, an idle transaction
// blocking an ALTER with a reader queued behind it (soft), and a two-session deadlock.
core::Snapshot Everything() {
  SnapshotFixture f;
  f.Relation(16384, "public.t")
      .Session(701, "active", "update t set v = v + 1 where id = 3", 20)
      .Prepared("gx1", 8001, 120)
      .WaitsXid(701, 8001, 20)
      .Session(101, "idle in transaction", "select count(*) from t", 60)
      .Session(102, "active", "alter table t add column x int", 30)
      .Session(103, "active", "select count(*) from t", 20)
      .HoldsRelation(101, 16384, LockMode::kAccessShare)
      .WaitsRelation(102, 16384, LockMode::kAccessExclusive, 30)
      .WaitsRelation(103, 16384, LockMode::kAccessShare, 20)
      .Session(501, "active", "update t set v = 1 where id = 2", 20)
      .Session(502, "active", "update t set v = 2 where id = 1", 10)
      .HoldsXid(501, 9501)
      .HoldsXid(502, 9502)
      .WaitsXid(501, 9502, 20)
      .WaitsXid(502, 9501, 10);
  core::Snapshot s = f.snapshot();
  s.sessions.back().backend_xid.reset();  // a NULL xid must stay null
  s.sessions.back().query_start.reset();  // and a NULL timestamp too
  return s;
}

json Document() {
  const core::Snapshot snapshot = Everything();
  const core::Report report = core::Analyze(snapshot);
  return json::parse(lockwatch::json::TreeDocument(snapshot, report, core::Explain(snapshot, report)).dump());
}

enum class Type { kInteger, kNumber, kString, kBoolean, kArray, kObject, kIsoTimestamp, kNullable };

bool HasType(const json& value, Type type) {
  switch (type) {
    case Type::kInteger:
      return value.is_number_integer();
    case Type::kNumber:
      return value.is_number();
    case Type::kString:
      return value.is_string();
    case Type::kBoolean:
      return value.is_boolean();
    case Type::kArray:
      return value.is_array();
    case Type::kObject:
      return value.is_object();
    case Type::kIsoTimestamp:
      return value.is_string() && lockwatch::json::ParseIso8601(value.get<std::string>()).has_value();
    case Type::kNullable:
      return true;
  }
  return false;
}

struct FieldCase {
  const char* container;  // JSON pointer of the object or array whose members are checked ("" = document)
  const char* field;
  Type type;
  Type or_null_type;  // kNullable when the field is never null; else the type when not null
};

constexpr Type kNever = Type::kNullable;

// The schema of agent/docs/json-schema.md, field by field.
const FieldCase kFields[] = {
    {"", "schema_version", Type::kInteger, kNever},
    {"", "captured_at", Type::kIsoTimestamp, kNever},
    {"", "server_version_num", Type::kInteger, kNever},
    {"", "own_pid", Type::kInteger, kNever},
    {"", "current_database", Type::kString, kNever},
    {"", "locks_read", Type::kBoolean, kNever},
    {"", "settings", Type::kObject, kNever},
    {"", "sessions", Type::kArray, kNever},
    {"", "prepared_xacts", Type::kArray, kNever},
    {"", "edges", Type::kArray, kNever},
    {"", "roots", Type::kArray, kNever},
    {"", "cycles", Type::kArray, kNever},
    {"", "waiters", Type::kArray, kNever},
    {"", "summary", Type::kObject, kNever},
    {"", "unknown_pids", Type::kArray, kNever},
    {"", "explanations", Type::kArray, kNever},
    {"/sessions", "pid", Type::kInteger, kNever},
    {"/sessions", "leader_pid", Type::kNullable, Type::kInteger},
    {"/sessions", "usename", Type::kString, kNever},
    {"/sessions", "application_name", Type::kString, kNever},
    {"/sessions", "client_addr", Type::kString, kNever},
    {"/sessions", "datname", Type::kString, kNever},
    {"/sessions", "backend_type", Type::kString, kNever},
    {"/sessions", "state", Type::kString, kNever},
    {"/sessions", "wait_event_type", Type::kString, kNever},
    {"/sessions", "wait_event", Type::kString, kNever},
    {"/sessions", "backend_start", Type::kNullable, Type::kIsoTimestamp},
    {"/sessions", "xact_start", Type::kNullable, Type::kIsoTimestamp},
    {"/sessions", "query_start", Type::kNullable, Type::kIsoTimestamp},
    {"/sessions", "state_change", Type::kNullable, Type::kIsoTimestamp},
    {"/sessions", "backend_xid", Type::kNullable, Type::kInteger},
    {"/sessions", "backend_xmin", Type::kNullable, Type::kInteger},
    {"/sessions", "query", Type::kString, kNever},
    {"/prepared_xacts", "transaction", Type::kInteger, kNever},
    {"/prepared_xacts", "gid", Type::kString, kNever},
    {"/prepared_xacts", "prepared", Type::kNullable, Type::kIsoTimestamp},
    {"/prepared_xacts", "owner", Type::kString, kNever},
    {"/prepared_xacts", "database", Type::kString, kNever},
    {"/edges", "waiter_pid", Type::kInteger, kNever},
    {"/edges", "blocker_pid", Type::kInteger, kNever},
    {"/edges", "blocker_gid", Type::kNullable, Type::kString},
    {"/edges", "kind", Type::kString, kNever},
    {"/edges", "certain", Type::kBoolean, kNever},
    {"/edges", "locktype", Type::kString, kNever},
    {"/edges", "target", Type::kString, kNever},
    {"/edges", "relation", Type::kNullable, Type::kString},
    {"/edges", "database_oid", Type::kNullable, Type::kInteger},
    {"/edges", "waiter_mode", Type::kString, kNever},
    {"/edges", "blocker_held_modes", Type::kArray, kNever},
    {"/edges", "blocker_wanted_mode", Type::kNullable, Type::kString},
    {"/edges", "waiter_since", Type::kNullable, Type::kIsoTimestamp},
    {"/roots", "pid", Type::kInteger, kNever},
    {"/roots", "gid", Type::kNullable, Type::kString},
    {"/roots", "blocked_sessions", Type::kInteger, kNever},
    {"/roots", "direct_blocked", Type::kInteger, kNever},
    {"/roots", "depth", Type::kInteger, kNever},
    {"/roots", "max_wait_seconds", Type::kNumber, kNever},
    {"/roots", "classification", Type::kString, kNever},
    {"/cycles", "pids", Type::kArray, kNever},
    {"/cycles", "has_hard_edge", Type::kBoolean, kNever},
    {"/waiters", "pid", Type::kInteger, kNever},
    {"/waiters", "gid", Type::kNullable, Type::kString},
    {"/waiters", "mode", Type::kString, kNever},
    {"/waiters", "since", Type::kNullable, Type::kIsoTimestamp},
    {"/waiters", "wait_seconds", Type::kNumber, kNever},
    {"/waiters", "locktype", Type::kString, kNever},
    {"/waiters", "target", Type::kString, kNever},
    {"/waiters", "relation", Type::kNullable, Type::kString},
    {"/waiters", "database_oid", Type::kNullable, Type::kInteger},
    {"/summary", "sessions", Type::kInteger, kNever},
    {"/summary", "waiting", Type::kInteger, kNever},
    {"/summary", "blocked_sessions", Type::kInteger, kNever},
    {"/summary", "max_depth", Type::kInteger, kNever},
    {"/summary", "max_wait_seconds", Type::kNumber, kNever},
    {"/summary", "sessions_by_state", Type::kObject, kNever},
    {"/explanations", "kind", Type::kString, kNever},
    {"/explanations", "root_pid", Type::kNullable, Type::kInteger},
    {"/explanations", "root_gid", Type::kNullable, Type::kString},
    {"/explanations", "pids", Type::kArray, kNever},
    {"/explanations", "situation", Type::kString, kNever},
    {"/explanations", "remedy", Type::kString, kNever},
};

TEST(TreeDocumentTest, EveryDocumentedFieldIsPresentWithItsType) {
  const json doc = Document();
  for (const FieldCase& c : kFields) {
    const json& container = doc.at(json::json_pointer(c.container));
    std::vector<const json*> objects;
    if (container.is_array()) {
      ASSERT_FALSE(container.empty()) << "fixture must populate " << c.container;
      for (const json& element : container) objects.push_back(&element);
    } else {
      objects.push_back(&container);
    }
    for (const json* object : objects) {
      ASSERT_TRUE(object->contains(c.field)) << c.container << "/" << c.field;
      const json& value = object->at(c.field);
      const bool ok = c.type == Type::kNullable ? (value.is_null() || HasType(value, c.or_null_type))
                                                : HasType(value, c.type);
      EXPECT_TRUE(ok) << c.container << "/" << c.field << " = " << value.dump();
    }
  }
}

TEST(TreeDocumentTest, NoUndocumentedFields) {
  const json doc = Document();
  const char* containers[] = {"",        "/sessions", "/prepared_xacts", "/edges",       "/roots",
                              "/cycles", "/waiters",  "/summary",        "/explanations"};
  for (const char* pointer : containers) {
    const json& container = doc.at(json::json_pointer(pointer));
    const json& object = container.is_array() ? container.at(0) : container;
    for (const auto& item : object.items()) {
      bool documented = false;
      for (const FieldCase& c : kFields) {
        documented = documented || (std::string(c.container) == pointer && item.key() == c.field);
      }
      EXPECT_TRUE(documented) << pointer << "/" << item.key();
    }
  }
}

TEST(TreeDocumentTest, ExplanationsNameEachRootInOrderAndTheDeadlock) {
  const json doc = Document();
  const json& found = doc.at("explanations");
  std::vector<std::string> kinds;
  for (const json& e : found) kinds.push_back(e.at("kind").get<std::string>());
  EXPECT_EQ(kinds, (std::vector<std::string>{"ddl_amplifier", "idle_in_transaction_holder",
                                             "orphaned_prepared_xact", "deadlock_forming"}));
  ASSERT_EQ(found.size(), 4u);
  EXPECT_EQ(found[0].at("root_pid"), 101);
  EXPECT_TRUE(found[0].at("root_gid").is_null());
  EXPECT_EQ(found[0].at("pids"), json::array({102}));
  EXPECT_NE(found[0].at("remedy").get<std::string>().find("pg_cancel_backend(102)"), std::string::npos);
  EXPECT_EQ(found[2].at("root_pid"), 0);
  EXPECT_EQ(found[2].at("root_gid"), "gx1");
  EXPECT_NE(found[2].at("remedy").get<std::string>().find("ROLLBACK PREPARED 'gx1'"), std::string::npos);
  EXPECT_TRUE(found[3].at("root_pid").is_null());
  EXPECT_EQ(found[3].at("pids"), json::array({501, 502}));
}

TEST(TreeDocumentTest, FormWithoutExplanationsHasNoExplanationsKey) {
  const core::Snapshot snapshot = Everything();
  const json doc = lockwatch::json::TreeDocument(snapshot, core::Analyze(snapshot));
  EXPECT_FALSE(doc.contains("explanations"));
  json with = Document();
  with.erase("explanations");
  EXPECT_EQ(json::parse(doc.dump()), with);
}

TEST(TreeDocumentTest, SchemaVersionIsOne) { EXPECT_EQ(Document().at("schema_version"), 1); }

TEST(TreeDocumentTest, PreparedBlockerIsPidZeroWithGid) {
  const json doc = Document();
  int prepared_edges = 0;
  for (const json& e : doc.at("edges")) {
    if (e.at("waiter_pid") == 701) {
      ++prepared_edges;
      EXPECT_EQ(e.at("blocker_pid"), 0);
      EXPECT_EQ(e.at("blocker_gid"), "gx1");
      EXPECT_EQ(e.at("kind"), "hard");
      EXPECT_EQ(e.at("locktype"), "transactionid");
      EXPECT_EQ(e.at("waiter_mode"), "ShareLock");
      EXPECT_EQ(e.at("blocker_held_modes"), json::array({"ExclusiveLock"}));
      EXPECT_TRUE(e.at("relation").is_null());
    } else {
      EXPECT_GT(e.at("blocker_pid").get<int>(), 0);
      EXPECT_TRUE(e.at("blocker_gid").is_null());
    }
  }
  EXPECT_EQ(prepared_edges, 1);
  bool prepared_root = false;
  for (const json& r : doc.at("roots")) {
    if (r.at("pid") == 0) {
      prepared_root = true;
      EXPECT_EQ(r.at("gid"), "gx1");
      EXPECT_EQ(r.at("classification"), "prepared");
    } else {
      EXPECT_TRUE(r.at("gid").is_null());
    }
  }
  EXPECT_TRUE(prepared_root);
}

TEST(TreeDocumentTest, SoftEdgeNamesTheModeTheBlockerWaitsFor) {
  const json doc = Document();
  bool found = false;
  for (const json& e : doc.at("edges")) {
    if (e.at("waiter_pid") == 103) {
      found = true;
      EXPECT_EQ(e.at("blocker_pid"), 102);
      EXPECT_EQ(e.at("kind"), "soft");
      EXPECT_EQ(e.at("certain"), true);
      EXPECT_EQ(e.at("blocker_wanted_mode"), "AccessExclusiveLock");
      EXPECT_EQ(e.at("blocker_held_modes"), json::array());
      EXPECT_EQ(e.at("relation"), "public.t");
      EXPECT_EQ(e.at("target"), "relation public.t");
      EXPECT_EQ(e.at("waiter_since"), "2026-11-25T13:44:40.123456Z");
    }
  }
  EXPECT_TRUE(found);
}

TEST(TreeDocumentTest, CyclesAndSummary) {
  const json doc = Document();
  ASSERT_EQ(doc.at("cycles").size(), 1u);
  EXPECT_EQ(doc.at("cycles").at(0).at("pids"), json::array({501, 502}));
  EXPECT_EQ(doc.at("cycles").at(0).at("has_hard_edge"), true);
  const json& summary = doc.at("summary");
  EXPECT_EQ(summary.at("sessions"), 6);
  EXPECT_EQ(summary.at("waiting"), 5);
  EXPECT_EQ(summary.at("sessions_by_state"), json({{"active", 5}, {"idle in transaction", 1}}));
  EXPECT_EQ(doc.at("settings").at("deadlock_timeout"), "1s");
}

TEST(TreeDocumentTest, TimestampsAreIsoUtcWithMicrosecondsAndNullsStayNull) {
  const core::Snapshot snapshot = Everything();
  const json doc = Document();
  EXPECT_EQ(doc.at("captured_at"), "2026-11-25T13:45:00.123456Z");
  ASSERT_EQ(doc.at("sessions").size(), snapshot.sessions.size());
  for (size_t i = 0; i < snapshot.sessions.size(); ++i) {
    const core::Session& s = snapshot.sessions[i];
    const json& j = doc.at("sessions").at(i);
    EXPECT_EQ(j.at("pid"), s.pid);
    if (s.query_start) {
      EXPECT_EQ(lockwatch::json::ParseIso8601(j.at("query_start").get<std::string>()), s.query_start);
    } else {
      EXPECT_TRUE(j.at("query_start").is_null());
    }
    if (s.backend_xid) {
      EXPECT_EQ(j.at("backend_xid"), *s.backend_xid);
    } else {
      EXPECT_TRUE(j.at("backend_xid").is_null());
    }
  }
  EXPECT_EQ(doc.at("prepared_xacts").at(0).at("prepared"), "2026-11-25T13:43:00.123456Z");
}

TEST(TreeDocumentTest, RoundTripsThroughText) {
  const core::Snapshot snapshot = Everything();
  const json doc = lockwatch::json::TreeDocument(snapshot, core::Analyze(snapshot));
  EXPECT_EQ(json::parse(doc.dump()), doc);
  EXPECT_EQ(json::parse(doc.dump(2)), doc);
}

TEST(TreeDocumentTest, EmptySnapshotStillHasEverySection) {
  const core::Snapshot snapshot = SnapshotFixture().snapshot();
  const json doc = lockwatch::json::TreeDocument(snapshot, core::Analyze(snapshot));
  for (const char* key : {"edges", "roots", "cycles", "waiters", "prepared_xacts", "unknown_pids"}) {
    EXPECT_TRUE(doc.at(key).is_array()) << key;
    EXPECT_TRUE(doc.at(key).empty()) << key;
  }
  EXPECT_EQ(doc.at("summary").at("blocked_sessions"), 0);
}

}  // namespace
}  // namespace lockwatch::app_test
