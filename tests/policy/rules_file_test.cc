#include "agent/policy/rules_file.h"

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/config/config.h"

namespace lockwatch::policy {
namespace {

// A valid rule prefix so each error case only shows what is wrong.
constexpr const char* kHead =
    "rules:\n"
    "  - name: r1\n"
    "    match:\n"
    "      role: root\n";

TEST(RulesFileTest, ParsesEveryKey) {
  const std::string text =
      "version: 1\n"
      "rules:\n"
      "  - name: everything\n"
      "    description: all the keys\n"
      "    match:\n"
      "      role: amplifier\n"
      "      state: [active, idle in transaction (aborted)]\n"
      "      min_running: 1m30s\n"
      "      min_waiting: 500ms\n"
      "      min_transaction_age: 1h\n"
      "      min_blocked_direct: 2\n"
      "      min_blocked_total: 5\n"
      "      min_chain_depth: 3\n"
      "      lock_type: relation\n"
      "      lock_mode: [AccessExclusiveLock, Share]\n"
      "      relation: [public.accounts, \"orders*\"]\n"
      "      database: shop\n"
      "      user: [app, \"etl_*\"]\n"
      "      application: web\n"
      "      client: [10.0.0.0/8, \"2001:db8::/32\", local]\n"
      "      backend_type: [client backend, autovacuum worker]\n"
      "      query: '^\\s*alter'\n"
      "      blocks_application: checkout\n"
      "      blocks_user: [payments]\n"
      "      include_superusers: true\n"
      "    action: cancel_then_terminate\n"
      "    grace: 20s\n"
      "  - name: second\n"
      "    match: {role: root, min_idle_in_transaction: 30s}\n"
      "    action: log\n";
  core::Result<core::Policy> parsed = ParseRules(text, "all.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const core::Policy& p = parsed.value();
  ASSERT_EQ(p.rules.size(), 2u);
  const core::Rule& r = p.rules[0];
  EXPECT_EQ(r.name, "everything");
  EXPECT_EQ(r.description, "all the keys");
  EXPECT_EQ(r.line, 3);
  EXPECT_EQ(r.action, core::ActionKind::kCancelThenTerminate);
  EXPECT_DOUBLE_EQ(r.grace_seconds, 20);
  const core::RuleConditions& m = r.match;
  EXPECT_EQ(m.role, core::PolicyRole::kAmplifier);
  EXPECT_EQ(m.states, (std::vector<std::string>{"active", "idle in transaction (aborted)"}));
  EXPECT_FALSE(m.min_idle_in_transaction.has_value());
  EXPECT_DOUBLE_EQ(*m.min_running, 90);
  EXPECT_DOUBLE_EQ(*m.min_waiting, 0.5);
  EXPECT_DOUBLE_EQ(*m.min_transaction_age, 3600);
  EXPECT_EQ(*m.min_blocked_direct, 2);
  EXPECT_EQ(*m.min_blocked_total, 5);
  EXPECT_EQ(*m.min_chain_depth, 3);
  EXPECT_EQ(m.lock_types, (std::vector<std::string>{"relation"}));
  EXPECT_EQ(m.lock_modes,
            (std::vector<core::LockMode>{core::LockMode::kAccessExclusive, core::LockMode::kShare}));
  ASSERT_EQ(m.relations.size(), 2u);
  EXPECT_EQ(m.relations[1].text, "orders*");
  ASSERT_EQ(m.databases.size(), 1u);
  ASSERT_EQ(m.users.size(), 2u);
  ASSERT_EQ(m.applications.size(), 1u);
  ASSERT_EQ(m.clients.size(), 3u);
  EXPECT_TRUE(core::ClientMatches(m.clients[0], "10.2.3.4"));
  EXPECT_TRUE(core::ClientMatches(m.clients[1], "2001:db8::9"));
  EXPECT_TRUE(m.clients[2].local);
  EXPECT_EQ(m.backend_types, (std::vector<std::string>{"client backend", "autovacuum worker"}));
  ASSERT_TRUE(m.query.has_value());
  EXPECT_TRUE(std::regex_search("  ALTER TABLE t ADD c int", m.query->regex));
  EXPECT_FALSE(std::regex_search("SELECT 'alter'", m.query->regex));
  ASSERT_EQ(m.blocks_applications.size(), 1u);
  ASSERT_EQ(m.blocks_users.size(), 1u);
  EXPECT_TRUE(m.include_superusers);
  EXPECT_EQ(p.rules[1].action, core::ActionKind::kLog);
  EXPECT_EQ(p.rules[1].match.role, core::PolicyRole::kRoot);
  EXPECT_DOUBLE_EQ(*p.rules[1].match.min_idle_in_transaction, 30);
  EXPECT_EQ(p.source, "all.yaml");
}

TEST(RulesFileTest, DefaultsAndEmptyPolicy) {
  core::Result<core::Policy> parsed = ParseRules(
      "rules:\n  - name: ctt\n    match: {role: blocker}\n    action: cancel_then_terminate\n", "f");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_DOUBLE_EQ(parsed.value().rules[0].grace_seconds, 30);
  EXPECT_FALSE(parsed.value().rules[0].match.include_superusers);
  core::Result<core::Policy> empty = ParseRules("rules: []\n", "f");
  ASSERT_TRUE(empty.ok()) << empty.status().message();
  EXPECT_TRUE(empty.value().rules.empty());
  EXPECT_TRUE(ParseRules("rules:\n", "f").ok());
}

TEST(RulesFileTest, ErrorsNameFileLineColumnAndWhatWasExpected) {
  struct Case {
    std::string name;
    std::string text;
    std::string error;
  };
  const std::string head = kHead;
  const std::vector<Case> cases = {
      {"empty file", "", "f.yaml:1:1: expected a \"rules\" list at the top level (the file is empty)"},
      {"no rules key", "version: 1\n", "f.yaml:1:1: expected a \"rules\" list at the top level"},
      {"invalid yaml", "rules: [\n", "f.yaml:2:1: invalid YAML: end of sequence flow not found"},
      {"top level not a map", "- a\n",
       "f.yaml:1:1: expected the top level to be a mapping of keys to values"},
      {"unknown top-level key", "rule: []\n",
       "f.yaml:1:1: unknown key \"rule\" in the top level (expected one of: version, rules)"},
      {"bad version", "version: 2\nrules: []\n", "f.yaml:1:10: expected version 1"},
      {"rules not a list", "rules: {}\n",
       "f.yaml:1:8: expected \"rules\" to be a list of rules (- name: ..., match: ..., action: ...)"},
      {"rule not a map", "rules:\n  - r1\n", "f.yaml:2:5: expected a rule to be a mapping of keys to values"},
      {"unknown rule key", head + "    action: log\n    when: now\n",
       "f.yaml:6:5: unknown key \"when\" in a rule (expected one of: name, description, match, action, "
       "grace)"},
      {"duplicate key", head + "    action: log\n    action: cancel\n",
       "f.yaml:6:5: duplicate key \"action\" in a rule"},
      {"missing name", "rules:\n  - match: {role: root}\n    action: log\n",
       "f.yaml:2:5: expected a \"name\" in every rule"},
      {"bad name", "rules:\n  - name: has space\n    match: {role: root}\n    action: log\n",
       "f.yaml:2:11: expected a rule name of 1 to 64 letters, digits, '_', '-' or '.', got \"has space\""},
      {"name not a string", "rules:\n  - name: [a]\n    match: {role: root}\n    action: log\n",
       "f.yaml:2:11: expected a string for \"name\""},
      {"missing match", "rules:\n  - name: r1\n    action: log\n",
       "f.yaml:2:5: expected a \"match\" in rule \"r1\""},
      {"missing action", head,
       "f.yaml:2:5: expected an \"action\" (log, cancel, terminate or cancel_then_terminate) in rule \"r1\""},
      {"unknown action", head + "    action: kill\n",
       "f.yaml:5:13: expected an action (log, cancel, terminate or cancel_then_terminate), got \"kill\""},
      {"match not a map", "rules:\n  - name: r1\n    match: root\n    action: log\n",
       "f.yaml:3:12: expected \"match\" to be a mapping of keys to values"},
      {"match empty", "rules:\n  - name: r1\n    match:\n    action: log\n",
       "f.yaml:3:5: expected \"match\" to be a mapping of keys to values"},
      {"missing role", "rules:\n  - name: r1\n    match: {state: active}\n    action: log\n",
       "f.yaml:3:12: expected \"role\" in \"match\" (root, amplifier, blocker or any)"},
      {"unknown role", "rules:\n  - name: r1\n    match: {role: victim}\n    action: log\n",
       "f.yaml:3:19: expected a role (root, amplifier, blocker or any), got \"victim\""},
      {"unknown match key", head + "      min_blocked: 5\n    action: log\n",
       "f.yaml:5:7: unknown key \"min_blocked\" in \"match\" (expected one of: role, state, "
       "min_idle_in_transaction, min_running, min_waiting, min_transaction_age, min_blocked_direct, "
       "min_blocked_total, min_chain_depth, lock_type, lock_mode, relation, database, user, application, "
       "client, backend_type, query, blocks_application, blocks_user, include_superusers)"},
      {"unknown state", head + "      state: [active, idle in tx]\n    action: log\n",
       "f.yaml:5:23: expected a pg_stat_activity state (active, disabled, fastpath function call, idle, idle "
       "in "
       "transaction, idle in transaction (aborted)), got \"idle in tx\""},
      {"empty state list", head + "      state: []\n    action: log\n",
       "f.yaml:5:14: expected a session state or a list of them for \"state\""},
      {"state list of maps", head + "      state: [{a: b}]\n    action: log\n",
       "f.yaml:5:15: expected a session state in the list \"state\""},
      {"bad duration", head + "      min_idle_in_transaction: 30 seconds\n    action: log\n",
       "f.yaml:5:32: expected a duration like 500ms, 2s or 1m, got \"30 seconds\" for "
       "\"min_idle_in_transaction\""},
      {"zero duration", head + "      min_running: 0s\n    action: log\n",
       "f.yaml:5:20: " + config::ParseDuration("0s").status().message() + " for \"min_running\""},
      {"duration not a scalar", head + "      min_waiting: [1s]\n    action: log\n",
       "f.yaml:5:20: expected a duration like 500ms, 30s, 5m or 1h for \"min_waiting\""},
      {"count not a number", head + "      min_blocked_total: five\n    action: log\n",
       "f.yaml:5:26: expected a whole number of at least 1 for \"min_blocked_total\", got \"five\""},
      {"count zero", head + "      min_blocked_direct: 0\n    action: log\n",
       "f.yaml:5:27: expected a whole number of at least 1 for \"min_blocked_direct\", got \"0\""},
      {"count negative", head + "      min_chain_depth: -1\n    action: log\n",
       "f.yaml:5:24: expected a whole number of at least 1 for \"min_chain_depth\", got \"-1\""},
      {"unknown lock type", head + "      lock_type: table\n    action: log\n",
       "f.yaml:5:18: expected a pg_locks lock type (advisory, applytransaction, extend, frozenid, object, "
       "page, "
       "relation, spectoken, transactionid, tuple, userlock, virtualxid), got \"table\""},
      {"unknown lock mode", head + "      lock_mode: [AccessExclusiveLock, Exclusif]\n    action: log\n",
       "f.yaml:5:40: expected a lock mode (AccessShareLock, RowShareLock, RowExclusiveLock, "
       "ShareUpdateExclusiveLock, ShareLock, ShareRowExclusiveLock, ExclusiveLock, AccessExclusiveLock; the "
       "\"Lock\" suffix may be omitted), got \"Exclusif\""},
      {"SIRead is not a lock mode here", head + "      lock_mode: SIReadLock\n    action: log\n",
       "f.yaml:5:18: expected a lock mode (AccessShareLock, RowShareLock, RowExclusiveLock, "
       "ShareUpdateExclusiveLock, ShareLock, ShareRowExclusiveLock, ExclusiveLock, AccessExclusiveLock; the "
       "\"Lock\" suffix may be omitted), got \"SIReadLock\""},
      {"bad cidr", head + "      client: [10.0.0.0/33]\n    action: log\n",
       "f.yaml:5:16: expected an address range like 10.0.0.0/8, 192.0.2.7, 2001:db8::/32 or the word local, "
       "got "
       "\"10.0.0.0/33\""},
      {"bad ipv6", head + "      client: \"2001:db8::g/32\"\n    action: log\n",
       "f.yaml:5:15: expected an address range like 10.0.0.0/8, 192.0.2.7, 2001:db8::/32 or the word local, "
       "got "
       "\"2001:db8::g/32\""},
      {"bad regex", head + "      query: '(alter'\n    action: log\n",
       "f.yaml:5:14: expected a regular expression (ECMAScript syntax) for \"query\": "},
      {"empty regex", head + "      query: ''\n    action: log\n",
       "f.yaml:5:14: expected a regular expression of 1 to 1000 characters for \"query\""},
      {"regex list", head + "      query: [a, b]\n    action: log\n",
       "f.yaml:5:14: expected a string for \"query\""},
      {"empty user", head + "      user: ''\n    action: log\n",
       "f.yaml:5:13: expected a user name for \"user\", got an empty string"},
      {"bad boolean", head + "      include_superusers: yes please\n    action: log\n",
       "f.yaml:5:27: expected true or false for \"include_superusers\", got \"yes please\""},
      {"grace without escalation", head + "    action: terminate\n    grace: 10s\n",
       "f.yaml:6:5: \"grace\" applies only to action cancel_then_terminate"},
      {"bad grace", head + "    action: cancel_then_terminate\n    grace: soon\n",
       "f.yaml:6:12: expected a duration like 500ms, 2s or 1m, got \"soon\" for \"grace\""},
      {"cancel on idle in transaction state", head + "      state: idle in transaction\n    action: cancel\n",
       "f.yaml:6:13: expected action terminate or log: rule \"r1\" only matches idle-in-transaction "
       "sessions, and "
       "cancel does nothing to them (only terminate ends their transaction)"},
      {"cancel then terminate on idle in transaction duration",
       head + "      min_idle_in_transaction: 1m\n    action: cancel_then_terminate\n",
       "f.yaml:6:13: expected action terminate or log: rule \"r1\" only matches idle-in-transaction "
       "sessions, and "
       "cancel does nothing to them (only terminate ends their transaction)"},
      {"duplicate rule name",
       head + "    action: log\n  - name: r1\n    match: {role: blocker}\n    action: log\n",
       "f.yaml:6:11: duplicate rule name \"r1\" (first defined at line 2)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    core::Result<core::Policy> parsed = ParseRules(c.text, "f.yaml");
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), core::Status::Code::kInvalidArgument);
    if (c.name == "bad regex") {
      // The regex library's own words follow the prefix.
      EXPECT_EQ(parsed.status().message().rfind(c.error, 0), 0u) << parsed.status().message();
      EXPECT_GT(parsed.status().message().size(), c.error.size());
    } else {
      EXPECT_EQ(parsed.status().message(), c.error);
    }
  }
}

TEST(RulesFileTest, ReportsTheFirstErrorOfEveryRule) {
  const std::string text =
      "rules:\n"
      "  - name: a\n"
      "    match: {role: root}\n"
      "    action: explode\n"
      "  - name: b\n"
      "    match: {role: root}\n"
      "    action: log\n"
      "  - name: c\n"
      "    match: {role: nobody}\n"
      "    action: log\n";
  core::Result<core::Policy> parsed = ParseRules(text, "multi.yaml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "multi.yaml:4:13: expected an action (log, cancel, terminate or cancel_then_terminate), got "
            "\"explode\"\n"
            "multi.yaml:9:19: expected a role (root, amplifier, blocker or any), got \"nobody\"");
}

TEST(RulesFileTest, CancelIsAllowedWhenTheRuleAlsoMatchesActiveSessions) {
  core::Result<core::Policy> parsed = ParseRules(
      std::string(kHead) + "      state: [active, idle in transaction]\n    action: cancel\n", "f.yaml");
  EXPECT_TRUE(parsed.ok()) << parsed.status().message();
}

TEST(RulesFileTest, LoadRulesNamesAMissingFile) {
  core::Result<core::Policy> parsed = LoadRules("/nonexistent/rules.yaml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message().rfind("/nonexistent/rules.yaml: cannot read rules file", 0), 0u)
      << parsed.status().message();
}

TEST(RulesFileTest, ParseClientMatcher) {
  EXPECT_TRUE(ParseClientMatcher("local").value().local);
  EXPECT_TRUE(ParseClientMatcher("192.0.2.0/24").ok());
  EXPECT_TRUE(ParseClientMatcher("::1").ok());
  EXPECT_FALSE(ParseClientMatcher("localhost").ok());
  EXPECT_FALSE(ParseClientMatcher("").ok());
}

TEST(RulesFileTest, EveryShippedExampleIsValid) {
  const std::filesystem::path dir = std::filesystem::path(LOCKWATCH_SOURCE_DIR) / "rules" / "remediation";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    SCOPED_TRACE(entry.path().string());
    core::Result<core::Policy> parsed = LoadRules(entry.path().string());
    ASSERT_TRUE(parsed.ok()) << parsed.status().message();
    EXPECT_FALSE(parsed.value().rules.empty());
    for (const core::Rule& r : parsed.value().rules) EXPECT_FALSE(r.description.empty()) << r.name;
  }
  EXPECT_GE(files, 4);
}

}  // namespace
}  // namespace lockwatch::policy
