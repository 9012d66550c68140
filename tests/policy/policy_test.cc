// The pure policy model and evaluator (agent/core/policy.h): links only core, the core test helpers and
// gtest.

#include "agent/core/policy.h"

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/analysis.h"

#include "tests/testing/snapshot_builder.h"

namespace lockwatch::core {
namespace {

using testing::Sec;
using testing::SnapshotBuilder;

constexpr uint32_t kDb = 16384;
constexpr uint32_t kAccounts = 16385;

Session& SessionOf(Snapshot& s, int32_t pid) {
  for (Session& x : s.sessions) {
    if (x.pid == pid) return x;
  }
  throw std::logic_error("no session " + std::to_string(pid));
}

void Identity(Session& s, const std::string& user, const std::string& application, const std::string& client,
              const std::string& database) {
  s.usename = user;
  s.application_name = application;
  s.client_addr = client;
  s.datname = database;
  s.superuser = false;
  s.backend_start = Sec(10 + s.pid);
}

// A pile-up behind a queued ALTER TABLE at t=1000s:
//   101 idle in transaction since 500s (transaction since 400s), holds AccessShareLock on public.accounts
//   102 ALTER TABLE since 900s, queued for AccessExclusiveLock behind 101         -> the amplifier
//   103, 104 readers queued (AccessShareLock) behind the ALTER since 950s / 960s -> only wait
//   105 idle, unrelated, other database
Snapshot Pileup() {
  SnapshotBuilder b;
  b.Now(Sec(1000)).RelationName(kDb, kAccounts, "public.accounts");
  b.Session(101)
      .State("idle in transaction")
      .StateChange(Sec(500))
      .Query("SELECT * FROM accounts WHERE id = 42");
  b.Session(102).State("active").StateChange(Sec(900)).Query("ALTER TABLE accounts ADD COLUMN note text");
  b.Session(103).State("active").StateChange(Sec(950)).Query("SELECT balance FROM accounts WHERE id = 7");
  b.Session(104).State("active").StateChange(Sec(960)).Query("SELECT count(*) FROM accounts");
  b.Session(105).State("idle").StateChange(Sec(100)).Query("COMMIT");
  b.Lock(101).Relation(kDb, kAccounts).Mode("AccessShareLock").Granted();
  b.Lock(102).Relation(kDb, kAccounts).Mode("AccessExclusiveLock").Waiting(Sec(900));
  b.Lock(103).Relation(kDb, kAccounts).Mode("AccessShareLock").Waiting(Sec(950));
  b.Lock(104).Relation(kDb, kAccounts).Mode("AccessShareLock").Waiting(Sec(960));
  Snapshot s = b.Build();
  Identity(SessionOf(s, 101), "app", "web", "10.1.2.3", "shop");
  Identity(SessionOf(s, 102), "deploy", "migrate", "10.9.0.1", "shop");
  Identity(SessionOf(s, 103), "app", "checkout", "2001:db8::5", "shop");
  Identity(SessionOf(s, 104), "report", "checkout-batch", "", "shop");
  Identity(SessionOf(s, 105), "app", "web", "10.1.2.4", "other");
  SessionOf(s, 101).xact_start = Sec(400);
  SessionOf(s, 102).xact_start = Sec(900);
  SessionOf(s, 102).query_start = Sec(900);
  SessionOf(s, 103).xact_start = Sec(950);
  SessionOf(s, 103).query_start = Sec(950);
  SessionOf(s, 104).xact_start = Sec(960);
  SessionOf(s, 104).query_start = Sec(960);
  return s;
}

// Root `root_pid` (idle in transaction) holds transaction `xid`; `waiters` sessions wait for it.
void AddRowLockTree(SnapshotBuilder& b, int32_t root_pid, uint32_t xid, int waiters) {
  b.Session(root_pid).State("idle in transaction").StateChange(Sec(100));
  b.Lock(root_pid).TransactionId(xid).Mode("ExclusiveLock").Granted();
  for (int i = 1; i <= waiters; ++i) {
    b.Session(root_pid + i).State("active");
    b.Lock(root_pid + i).TransactionId(xid).Mode("ShareLock").Waiting(Sec(900));
  }
}

void IdentifyAll(Snapshot& s) {
  for (Session& x : s.sessions) Identity(x, "app", "web", "10.0.0.1", "shop");
}

Rule MakeRule(const std::string& name, PolicyRole role, ActionKind action = ActionKind::kTerminate) {
  Rule r;
  r.name = name;
  r.match.role = role;
  r.action = action;
  if (action == ActionKind::kCancelThenTerminate) r.grace_seconds = 30;
  return r;
}

std::vector<PolicyDecision> Decide(const std::vector<Rule>& rules, const Snapshot& s,
                                   const Protection& p = {}, const QueryNormalizer& normalizer = {}) {
  Policy policy;
  policy.rules = rules;
  return Evaluate(policy, p, s, Analyze(s), s.captured_at_us, normalizer);
}

std::vector<int32_t> Pids(const std::vector<PolicyDecision>& decisions) {
  std::vector<int32_t> out;
  out.reserve(decisions.size());
  for (const PolicyDecision& d : decisions) out.push_back(d.node.pid);
  std::sort(out.begin(), out.end());
  return out;
}

const PolicyDecision* Find(const std::vector<PolicyDecision>& decisions, int32_t pid) {
  for (const PolicyDecision& d : decisions) {
    if (d.node.pid == pid) return &d;
  }
  return nullptr;
}

QueryPattern Regex(const std::string& text) {
  return QueryPattern{text, std::regex(text, std::regex::ECMAScript | std::regex::icase)};
}

NamePattern Name(const std::string& text) { return NamePattern{text}; }

ClientMatcher Client(const std::string& text) {
  ClientMatcher m;
  m.text = text;
  if (text == "local") {
    m.local = true;
  } else {
    m.range = ParseCidr(text).value();
  }
  return m;
}

// ---------------------------------------------------------------------------------------------------
// Roles

TEST(PolicyRoleTest, EachRoleSelectsItsPlaceInTheGraph) {
  struct Case {
    PolicyRole role;
    std::vector<int32_t> pids;
  };
  const Case cases[] = {
      {PolicyRole::kRoot, {101}},
      {PolicyRole::kAmplifier, {102}},
      {PolicyRole::kBlocker, {101, 102}},
      {PolicyRole::kAny, {101, 102, 103, 104, 105}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(PolicyRoleName(c.role));
    EXPECT_EQ(Pids(Decide({MakeRule("r", c.role)}, Pileup())), c.pids);
  }
}

TEST(PolicyRoleTest, AmplifierRuleCancelsTheQueuedAlterNotTheReaderItWaitsFor) {
  Rule rule = MakeRule("ddl-amplifier", PolicyRole::kAmplifier, ActionKind::kCancel);
  rule.match.query = Regex("^\\s*alter\\s");
  rule.match.min_blocked_total = 2;
  const std::vector<PolicyDecision> d = Decide({rule}, Pileup());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].node.pid, 102);
  EXPECT_FALSE(d[0].skipped()) << d[0].skip_detail;
  EXPECT_EQ(d[0].planned.action, ActionKind::kCancel);
  EXPECT_EQ(d[0].planned.role, "amplifier");
  EXPECT_EQ(d[0].planned.blocked_direct, 2);
  EXPECT_EQ(d[0].planned.blocked_total, 2);
  EXPECT_NE(d[0].planned.reason.find("query matches"), std::string::npos) << d[0].planned.reason;
}

TEST(PolicyRoleTest, RootFactsComeFromTheReport) {
  const std::vector<PolicyDecision> d = Decide({MakeRule("r", PolicyRole::kRoot)}, Pileup());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].planned.role, "root");
  EXPECT_EQ(d[0].planned.blocked_direct, 1);
  EXPECT_EQ(d[0].planned.blocked_total, 3);
  EXPECT_EQ(d[0].chain_depth, 2);
  EXPECT_EQ(d[0].planned.decided_at, Sec(1000));
  EXPECT_NE(d[0].planned.reason.find("root blocker, blocks 3 sessions (1 directly)"), std::string::npos)
      << d[0].planned.reason;
}

TEST(PolicyRoleTest, NoBlockingMeansNoDecisionForGraphRoles) {
  SnapshotBuilder b;
  b.Now(Sec(1000)).Session(1).State("idle in transaction").Session(2).State("active");
  Snapshot s = b.Build();
  IdentifyAll(s);
  for (PolicyRole role : {PolicyRole::kRoot, PolicyRole::kAmplifier, PolicyRole::kBlocker}) {
    EXPECT_TRUE(Decide({MakeRule("r", role)}, s).empty()) << PolicyRoleName(role);
  }
}

// ---------------------------------------------------------------------------------------------------
// Conditions: every condition, matching and not, on the pile-up with role `any`.

TEST(PolicyConditionTest, EachConditionSelectsTheSessionsItDescribes) {
  struct Case {
    std::string name;
    std::function<void(RuleConditions&)> set;
    std::vector<int32_t> pids;
  };
  const std::vector<Case> cases = {
      {"state idle in transaction", [](RuleConditions& m) { m.states = {"idle in transaction"}; }, {101}},
      {"state active", [](RuleConditions& m) { m.states = {"active"}; }, {102, 103, 104}},
      {"state list",
       [](RuleConditions& m) {
         m.states = {"idle", "idle in transaction"};
       },
       {101, 105}},
      {"idle in transaction 400s", [](RuleConditions& m) { m.min_idle_in_transaction = 400; }, {101}},
      {"idle in transaction 600s", [](RuleConditions& m) { m.min_idle_in_transaction = 600; }, {}},
      {"running 60s", [](RuleConditions& m) { m.min_running = 60; }, {102}},
      {"running 40s", [](RuleConditions& m) { m.min_running = 40; }, {102, 103, 104}},
      {"waiting 45s", [](RuleConditions& m) { m.min_waiting = 45; }, {102, 103}},
      {"waiting 200s", [](RuleConditions& m) { m.min_waiting = 200; }, {}},
      {"transaction age 550s", [](RuleConditions& m) { m.min_transaction_age = 550; }, {101}},
      {"transaction age 45s", [](RuleConditions& m) { m.min_transaction_age = 45; }, {101, 102, 103}},
      {"blocked direct 1", [](RuleConditions& m) { m.min_blocked_direct = 1; }, {101, 102}},
      {"blocked direct 2", [](RuleConditions& m) { m.min_blocked_direct = 2; }, {102}},
      {"blocked total 3", [](RuleConditions& m) { m.min_blocked_total = 3; }, {101}},
      {"blocked total 4", [](RuleConditions& m) { m.min_blocked_total = 4; }, {}},
      {"chain depth 2", [](RuleConditions& m) { m.min_chain_depth = 2; }, {101}},
      {"chain depth 1", [](RuleConditions& m) { m.min_chain_depth = 1; }, {101, 102}},
      {"lock type relation", [](RuleConditions& m) { m.lock_types = {"relation"}; }, {101, 102}},
      {"lock type transactionid", [](RuleConditions& m) { m.lock_types = {"transactionid"}; }, {}},
      {"lock mode requested by a queued blocker",
       [](RuleConditions& m) { m.lock_modes = {LockMode::kAccessExclusive}; },
       {102}},
      {"lock mode held", [](RuleConditions& m) { m.lock_modes = {LockMode::kAccessShare}; }, {101}},
      {"lock mode nobody has", [](RuleConditions& m) { m.lock_modes = {LockMode::kRowExclusive}; }, {}},
      {"relation unqualified", [](RuleConditions& m) { m.relations = {Name("accounts")}; }, {101, 102}},
      {"relation qualified", [](RuleConditions& m) { m.relations = {Name("public.accounts")}; }, {101, 102}},
      {"relation other schema", [](RuleConditions& m) { m.relations = {Name("audit.accounts")}; }, {}},
      {"relation wildcard", [](RuleConditions& m) { m.relations = {Name("public.acc*")}; }, {101, 102}},
      {"lock conditions hold together",
       [](RuleConditions& m) {
         m.relations = {Name("accounts")};
         m.lock_modes = {LockMode::kAccessShare};
       },
       {101}},
      {"database", [](RuleConditions& m) { m.databases = {Name("other")}; }, {105}},
      {"user", [](RuleConditions& m) { m.users = {Name("deploy")}; }, {102}},
      {"user list",
       [](RuleConditions& m) {
         m.users = {Name("deploy"), Name("report")};
       },
       {102, 104}},
      {"application wildcard", [](RuleConditions& m) { m.applications = {Name("checkout*")}; }, {103, 104}},
      {"application exact", [](RuleConditions& m) { m.applications = {Name("checkout")}; }, {103}},
      {"client IPv4 range", [](RuleConditions& m) { m.clients = {Client("10.1.0.0/16")}; }, {101, 105}},
      {"client IPv6 range", [](RuleConditions& m) { m.clients = {Client("2001:db8::/32")}; }, {103}},
      {"client local", [](RuleConditions& m) { m.clients = {Client("local")}; }, {104}},
      {"client host", [](RuleConditions& m) { m.clients = {Client("10.9.0.1")}; }, {102}},
      {"backend type",
       [](RuleConditions& m) { m.backend_types = {"client backend"}; },
       {101, 102, 103, 104, 105}},
      {"backend type other", [](RuleConditions& m) { m.backend_types = {"walsender"}; }, {}},
      {"query, case-insensitive", [](RuleConditions& m) { m.query = Regex("^alter table"); }, {102}},
      {"query anywhere", [](RuleConditions& m) { m.query = Regex("from accounts"); }, {101, 103, 104}},
      {"blocks application",
       [](RuleConditions& m) { m.blocks_applications = {Name("checkout")}; },
       {101, 102}},
      {"blocks application nobody", [](RuleConditions& m) { m.blocks_applications = {Name("web")}; }, {}},
      {"blocks user", [](RuleConditions& m) { m.blocks_users = {Name("deploy")}; }, {101}},
      {"blocks user and application on one session",
       [](RuleConditions& m) {
         m.blocks_users = {Name("report")};
         m.blocks_applications = {Name("checkout")};
       },
       {}},
      {"all conditions hold together",
       [](RuleConditions& m) {
         m.states = {"active"};
         m.users = {Name("app")};
       },
       {103}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Rule rule = MakeRule("r", PolicyRole::kAny, ActionKind::kLog);
    c.set(rule.match);
    EXPECT_EQ(Pids(Decide({rule}, Pileup())), c.pids);
  }
}

TEST(PolicyConditionTest, QueryConditionSeesTheNormalisedText) {
  Rule rule = MakeRule("r", PolicyRole::kAny, ActionKind::kLog);
  rule.match.query = Regex("id = \\$1");
  const QueryNormalizer normalizer = [](std::string_view text) {
    std::string out(text);
    for (const char* constant : {"42", "7"}) {
      const size_t at = out.find(constant);
      if (at != std::string::npos) out.replace(at, std::string(constant).size(), "$1");
    }
    return out;
  };
  EXPECT_EQ(Pids(Decide({rule}, Pileup(), {}, normalizer)), (std::vector<int32_t>{101, 103}));
  EXPECT_TRUE(Decide({rule}, Pileup()).empty());
}

TEST(PolicyConditionTest, DurationConditionsUseTheEvaluationTime) {
  Rule rule = MakeRule("r", PolicyRole::kRoot);
  rule.match.min_idle_in_transaction = 600;
  Policy policy;
  policy.rules = {rule};
  const Snapshot s = Pileup();
  const Report report = Analyze(s);
  EXPECT_TRUE(Evaluate(policy, {}, s, report, Sec(1000), {}).empty());
  EXPECT_EQ(Evaluate(policy, {}, s, report, Sec(1100), {}).size(), 1u);
}

TEST(PolicyConditionTest, ReasonNamesTheMatchedConditionsWithTheirValues) {
  Rule rule = MakeRule("r", PolicyRole::kRoot);
  rule.match.min_idle_in_transaction = 30;
  rule.match.min_blocked_total = 2;
  rule.match.users = {Name("app")};
  const std::vector<PolicyDecision> d = Decide({rule}, Pileup());
  ASSERT_EQ(d.size(), 1u);
  const std::string& reason = d[0].planned.reason;
  EXPECT_NE(reason.find("idle in transaction for 8m20s (at least 30s)"), std::string::npos) << reason;
  EXPECT_NE(reason.find("(rule: at least 2 in all)"), std::string::npos) << reason;
  EXPECT_NE(reason.find("user app"), std::string::npos) << reason;
}

// ---------------------------------------------------------------------------------------------------
// Safety: never a victim.

TEST(PolicySafetyTest, ExcludedSessionsAreSkippedWithAMachineReason) {
  struct Case {
    std::string name;
    std::function<void(Snapshot&, Protection&, Rule&)> set;
    std::string skip;  // "" = acted on
  };
  const std::vector<Case> cases = {
      {"baseline acts", [](Snapshot&, Protection&, Rule&) {}, ""},
      // The analysis leaves the own pid out of the graph; a rule for any session still meets it.
      {"own pid",
       [](Snapshot& s, Protection&, Rule& r) {
         s.own_pid = 101;
         r.match.role = PolicyRole::kAny;
         r.match.states = {"idle in transaction"};
       },
       kSkipOwnSession},
      {"own application",
       [](Snapshot& s, Protection&, Rule&) { SessionOf(s, 101).application_name = "lockwatch"; },
       kSkipOwnSession},
      {"walsender", [](Snapshot& s, Protection&, Rule&) { SessionOf(s, 101).backend_type = "walsender"; },
       kSkipReplication},
      {"logical replication worker",
       [](Snapshot& s, Protection&, Rule&) { SessionOf(s, 101).backend_type = "logical replication worker"; },
       kSkipReplication},
      {"walsender even when named",
       [](Snapshot& s, Protection&, Rule& r) {
         SessionOf(s, 101).backend_type = "walsender";
         r.match.backend_types = {"walsender"};
       },
       kSkipReplication},
      {"autovacuum",
       [](Snapshot& s, Protection&, Rule&) { SessionOf(s, 101).backend_type = "autovacuum worker"; },
       kSkipAutovacuum},
      {"autovacuum named by the rule",
       [](Snapshot& s, Protection&, Rule& r) {
         SessionOf(s, 101).backend_type = "autovacuum worker";
         r.match.backend_types = {"autovacuum worker", "client backend"};
       },
       ""},
      {"superuser", [](Snapshot& s, Protection&, Rule&) { SessionOf(s, 101).superuser = true; },
       kSkipSuperuser},
      {"unknown superuser status",
       [](Snapshot& s, Protection&, Rule&) { SessionOf(s, 101).superuser.reset(); }, kSkipSuperuser},
      {"superuser included by the rule",
       [](Snapshot& s, Protection&, Rule& r) {
         SessionOf(s, 101).superuser = true;
         r.match.include_superusers = true;
       },
       ""},
      {"protected user", [](Snapshot&, Protection& p, Rule&) { p.users = {Name("ap*")}; },
       kSkipProtectedUser},
      {"protected user, superuser included",
       [](Snapshot& s, Protection& p, Rule& r) {
         SessionOf(s, 101).superuser = true;
         r.match.include_superusers = true;
         p.users = {Name("app")};
       },
       kSkipProtectedUser},
      {"protected application", [](Snapshot&, Protection& p, Rule&) { p.applications = {Name("web")}; },
       kSkipProtectedApplication},
      {"protected database", [](Snapshot&, Protection& p, Rule&) { p.databases = {Name("shop")}; },
       kSkipProtectedDatabase},
      {"protected client v4", [](Snapshot&, Protection& p, Rule&) { p.clients = {Client("10.1.0.0/16")}; },
       kSkipProtectedClient},
      {"protected client local",
       [](Snapshot& s, Protection& p, Rule&) {
         SessionOf(s, 101).client_addr = "";
         p.clients = {Client("local")};
       },
       kSkipProtectedClient},
      {"unprotected client", [](Snapshot&, Protection& p, Rule&) { p.clients = {Client("192.168.0.0/16")}; },
       ""},
      {"no backend_start", [](Snapshot& s, Protection&, Rule&) { SessionOf(s, 101).backend_start.reset(); },
       kSkipUnknownIdentity},
      {"cancel on idle in transaction",
       [](Snapshot&, Protection&, Rule& r) { r.action = ActionKind::kCancel; }, kSkipCancelIdleInTransaction},
      {"cancel then terminate on idle in transaction",
       [](Snapshot&, Protection&, Rule& r) {
         r.action = ActionKind::kCancelThenTerminate;
         r.grace_seconds = 10;
       },
       kSkipCancelIdleInTransaction},
      {"cancel on aborted transaction",
       [](Snapshot& s, Protection&, Rule& r) {
         SessionOf(s, 101).state = "idle in transaction (aborted)";
         r.action = ActionKind::kCancel;
       },
       kSkipCancelIdleInTransaction},
      {"log on idle in transaction", [](Snapshot&, Protection&, Rule& r) { r.action = ActionKind::kLog; },
       ""},
      {"cancel on an active root",
       [](Snapshot& s, Protection&, Rule& r) {
         SessionOf(s, 101).state = "active";
         r.action = ActionKind::kCancel;
       },
       ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Snapshot s = Pileup();
    Protection p;
    Rule rule = MakeRule("r", PolicyRole::kRoot);
    c.set(s, p, rule);
    const std::vector<PolicyDecision> d = Decide({rule}, s, p);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].node.pid, 101);
    EXPECT_EQ(d[0].skip, c.skip) << d[0].skip_detail;
    EXPECT_EQ(d[0].skip_detail.empty(), c.skip.empty()) << d[0].skip_detail;
    EXPECT_EQ(ActingDecisions(d).size(), c.skip.empty() ? 1u : 0u);
  }
}

TEST(PolicySafetyTest, SessionsThatOnlyWaitAreNeverVictims) {
  Rule rule = MakeRule("r", PolicyRole::kAny);
  rule.match.applications = {Name("checkout*")};
  const std::vector<PolicyDecision> d = Decide({rule}, Pileup());
  ASSERT_EQ(Pids(d), (std::vector<int32_t>{103, 104}));
  for (const PolicyDecision& x : d) EXPECT_EQ(x.skip, kSkipOnlyWaits);
}

TEST(PolicySafetyTest, PreparedTransactionIsReportedButNeverSignalled) {
  SnapshotBuilder b;
  b.Now(Sec(1000)).Prepared(760, "gx1");
  b.Session(102);
  b.PreparedLock("-1/760").TransactionId(760).Mode("ExclusiveLock").Granted();
  b.Lock(102).TransactionId(760).Mode("ShareLock").Waiting(Sec(950));
  Snapshot s = b.Build();
  IdentifyAll(s);
  s.prepared[0].owner = "app";
  s.prepared[0].database = "shop";
  s.prepared[0].prepared = Sec(100);
  Rule rule = MakeRule("r", PolicyRole::kRoot);
  rule.match.min_transaction_age = 600;
  rule.match.users = {Name("app")};
  const std::vector<PolicyDecision> d = Decide({rule}, s);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_TRUE(d[0].node.is_prepared());
  EXPECT_EQ(d[0].node.gid, "gx1");
  EXPECT_EQ(d[0].planned.victim.pid, 0);
  EXPECT_EQ(d[0].skip, kSkipPreparedTransaction);
  EXPECT_EQ(d[0].state, "prepared");
  // Session-only conditions never match a prepared transaction.
  rule.match.applications = {Name("*")};
  EXPECT_TRUE(Decide({rule}, s).empty());
}

TEST(PolicySafetyTest, BlockerMissingFromPgStatActivityIsUnverifiable) {
  SnapshotBuilder b;
  b.Now(Sec(1000)).Session(102);
  b.Lock(999).TransactionId(800).Mode("ExclusiveLock").Granted();
  b.Lock(102).TransactionId(800).Mode("ShareLock").Waiting(Sec(950));
  Snapshot s = b.Build();
  IdentifyAll(s);
  const std::vector<PolicyDecision> d = Decide({MakeRule("r", PolicyRole::kBlocker)}, s);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].node.pid, 999);
  EXPECT_EQ(d[0].skip, kSkipUnknownIdentity);
}

// ---------------------------------------------------------------------------------------------------
// Decisions

TEST(PolicyDecisionTest, VictimIdentityPinsTheSessionAndItsTransaction) {
  const Snapshot s = Pileup();
  const std::vector<PolicyDecision> d = Decide({MakeRule("r", PolicyRole::kBlocker)}, s);
  const PolicyDecision* idle = Find(d, 101);
  const PolicyDecision* alter = Find(d, 102);
  ASSERT_NE(idle, nullptr);
  ASSERT_NE(alter, nullptr);
  EXPECT_EQ(idle->planned.victim.pid, 101);
  EXPECT_EQ(idle->planned.victim.backend_start, Sec(111));
  EXPECT_EQ(idle->planned.victim.xact_start, Sec(400));
  EXPECT_EQ(idle->planned.victim.state_change, Sec(500));  // idle in transaction: pinned
  EXPECT_EQ(alter->planned.victim.backend_start, Sec(112));
  EXPECT_EQ(alter->planned.victim.xact_start, Sec(900));
  EXPECT_FALSE(alter->planned.victim.state_change.has_value());  // active: not pinned
  EXPECT_EQ(idle->user, "app");
  EXPECT_EQ(idle->application, "web");
  EXPECT_EQ(idle->client_addr, "10.1.2.3");
  EXPECT_EQ(idle->database, "shop");
  EXPECT_TRUE(idle->planned.target.empty());
}

TEST(PolicyDecisionTest, GraceIsSetOnlyForCancelThenTerminate) {
  Snapshot s = Pileup();
  for (ActionKind kind :
       {ActionKind::kLog, ActionKind::kCancel, ActionKind::kTerminate, ActionKind::kCancelThenTerminate}) {
    Rule rule = MakeRule("r", PolicyRole::kAmplifier, kind);
    rule.grace_seconds = 45;
    const std::vector<PolicyDecision> d = Decide({rule}, s);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].planned.action, kind);
    EXPECT_EQ(d[0].planned.grace_seconds, kind == ActionKind::kCancelThenTerminate ? 45 : 0);
    EXPECT_EQ(d[0].planned.rule, "r");
  }
}

TEST(PolicyDecisionTest, MostImpactfulFirst) {
  SnapshotBuilder b;
  b.Now(Sec(1000));
  AddRowLockTree(b, 100, 700, 1);
  AddRowLockTree(b, 200, 701, 4);
  AddRowLockTree(b, 300, 702, 2);
  Snapshot s = b.Build();
  IdentifyAll(s);
  // The rule that matches the smallest tree comes first in the file; the order is still by impact.
  Rule small = MakeRule("small", PolicyRole::kRoot);
  small.match.users = {Name("app")};
  const std::vector<PolicyDecision> d = Decide({small}, s);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].node.pid, 200);
  EXPECT_EQ(d[0].planned.blocked_total, 4);
  EXPECT_EQ(d[1].node.pid, 300);
  EXPECT_EQ(d[2].node.pid, 100);
}

TEST(PolicyDecisionTest, FirstRuleThatActsOnASessionWins) {
  Rule first = MakeRule("first", PolicyRole::kRoot, ActionKind::kLog);
  Rule second = MakeRule("second", PolicyRole::kBlocker, ActionKind::kTerminate);
  const std::vector<PolicyDecision> d = Decide({first, second}, Pileup());
  // 101: first acts (log), second is already decided; 102: only second matches it as a blocker.
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].node.pid, 101);
  EXPECT_EQ(d[0].planned.rule, "first");
  EXPECT_FALSE(d[0].skipped());
  EXPECT_EQ(d[1].node.pid, 101);
  EXPECT_EQ(d[1].planned.rule, "second");
  EXPECT_EQ(d[1].skip, kSkipAlreadyDecided);
  EXPECT_EQ(d[2].node.pid, 102);
  EXPECT_FALSE(d[2].skipped());
  EXPECT_EQ(ActingDecisions(d).size(), 2u);
}

TEST(PolicyDecisionTest, RuleDependentSkipDoesNotStopALaterRule) {
  Snapshot s = Pileup();
  SessionOf(s, 101).superuser = true;
  Rule plain = MakeRule("plain", PolicyRole::kRoot);
  Rule with_superusers = MakeRule("with-superusers", PolicyRole::kRoot);
  with_superusers.match.include_superusers = true;
  const std::vector<PolicyDecision> d = Decide({plain, with_superusers}, s);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].skip, kSkipSuperuser);
  EXPECT_EQ(d[1].planned.rule, "with-superusers");
  EXPECT_FALSE(d[1].skipped());
}

TEST(PolicyDecisionTest, OnlyIdleInTransactionRules) {
  RuleConditions m;
  EXPECT_FALSE(m.OnlyIdleInTransaction());
  m.states = {"idle in transaction", "idle in transaction (aborted)"};
  EXPECT_TRUE(m.OnlyIdleInTransaction());
  m.states.push_back("active");
  EXPECT_FALSE(m.OnlyIdleInTransaction());
  m.min_idle_in_transaction = 5;
  EXPECT_TRUE(m.OnlyIdleInTransaction());
}

// ---------------------------------------------------------------------------------------------------
// Addresses, names, durations

TEST(CidrTest, Contains) {
  struct Case {
    std::string range;
    std::string address;
    bool inside;
  };
  const Case cases[] = {
      {"10.0.0.0/8", "10.255.1.2", true},
      {"10.0.0.0/8", "11.0.0.1", false},
      {"10.1.2.3/8", "10.9.9.9", true},  // host bits cleared
      {"192.168.1.0/24", "192.168.1.255", true},
      {"192.168.1.0/24", "192.168.2.0", false},
      {"192.168.1.128/25", "192.168.1.127", false},
      {"192.168.1.128/25", "192.168.1.128", true},
      {"192.0.2.7", "192.0.2.7", true},
      {"192.0.2.7", "192.0.2.8", false},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"10.0.0.0/8", "::ffff:10.1.2.3", true},  // IPv4-mapped
      {"10.0.0.0/8", "::ffff:11.1.2.3", false},
      {"10.0.0.0/8", "2001:db8::1", false},
      {"2001:db8::/32", "2001:db8:ffff::1", true},
      {"2001:db8::/32", "2001:db9::1", false},
      {"2001:db8::/33", "2001:db8:8000::1", false},
      {"::1", "::1", true},
      {"::1/128", "::2", false},
      {"fe80::/10", "fe80::1234:5678", true},
      {"fe80::/10", "fec0::1", false},
      {"::/0", "2001:db8::1", true},
      {"::ffff:0:0/96", "10.0.0.1", true},  // an IPv4 address seen as IPv4-mapped
      {"2001:db8::/32", "10.0.0.1", false},
      {"10.0.0.0/8", "", false},
      {"10.0.0.0/8", "10.0.0.1/32", true},
      {"2001:db8:0:0:0:0:0:1", "2001:db8::1", true},
      {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", true},
      {"::ffff:192.0.2.0/120", "::ffff:192.0.2.77", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.range + " " + c.address);
    const std::optional<Cidr> range = ParseCidr(c.range);
    ASSERT_TRUE(range.has_value());
    EXPECT_EQ(CidrContains(*range, c.address), c.inside);
  }
}

TEST(CidrTest, RejectsMalformedRanges) {
  for (const char* text : {"",
                           "10.0.0",
                           "10.0.0.0.0",
                           "256.0.0.1",
                           "10.0.0.0/33",
                           "10.0.0.0/",
                           "10.0.0.0/-1",
                           "10.0.0.0/8/8",
                           "1::2::3",
                           "1:2:3:4:5:6:7:8:9",
                           "1:2:3:4:5:6:7",
                           "12345::",
                           "g::1",
                           "::/129",
                           "local",
                           "10.0.0.1 ",
                           " 10.0.0.1",
                           "10.0.0.01x",
                           ":1",
                           "1:",
                           "1::2:3:4:5:6:7:8",
                           "::1.2.3",
                           "1.2.3.4::"}) {
    EXPECT_FALSE(ParseCidr(text).has_value()) << text;
  }
}

TEST(CidrTest, ClientMatcherLocalMatchesOnlyUnixSockets) {
  EXPECT_TRUE(ClientMatches(Client("local"), ""));
  EXPECT_FALSE(ClientMatches(Client("local"), "127.0.0.1"));
  EXPECT_TRUE(ClientMatches(Client("127.0.0.0/8"), "127.0.0.1"));
  EXPECT_FALSE(ClientMatches(Client("0.0.0.0/0"), ""));
  EXPECT_FALSE(ClientMatches(Client("::/0"), ""));
}

TEST(NamePatternTest, Wildcards) {
  struct Case {
    std::string pattern;
    std::string name;
    bool matches;
  };
  const Case cases[] = {
      {"web", "web", true},
      {"web", "Web", false},
      {"web", "web1", false},
      {"web*", "web", true},
      {"web*", "web-1", true},
      {"*-batch", "nightly-batch", true},
      {"*-batch", "batch", false},
      {"a*b*c", "axxbyyc", true},
      {"a*b*c", "axxbyy", false},
      {"*", "", true},
      {"", "", true},
      {"", "x", false},
      {"**", "anything", true},
      {"a*a*a", "aaaa", true},
      {"*ab", "aab", true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(NamePattern{c.pattern}.Matches(c.name), c.matches) << c.pattern << " vs " << c.name;
  }
}

TEST(PolicyRoleNameTest, RoundTrips) {
  for (PolicyRole r : {PolicyRole::kRoot, PolicyRole::kAmplifier, PolicyRole::kBlocker, PolicyRole::kAny}) {
    EXPECT_EQ(ParsePolicyRole(PolicyRoleName(r)), r);
  }
  EXPECT_FALSE(ParsePolicyRole("waiter").has_value());
}

TEST(FormatSecondsTest, ShortHumanDurations) {
  EXPECT_EQ(FormatSeconds(0.75), "750ms");
  EXPECT_EQ(FormatSeconds(1.5), "1.5s");
  EXPECT_EQ(FormatSeconds(45), "45s");
  EXPECT_EQ(FormatSeconds(125), "2m5s");
  EXPECT_EQ(FormatSeconds(120), "2m");
  EXPECT_EQ(FormatSeconds(3780), "1h3m");
  EXPECT_EQ(FormatSeconds(-3), "0ms");
}

}  // namespace
}  // namespace lockwatch::core
