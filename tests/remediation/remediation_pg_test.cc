// Enforcement end to end against a real PostgreSQL: the collector, the analysis, the policy engine (rules
// parsed from YAML), the remediator with its gate, and the real actuator. Needs LOCKWATCH_TEST_DSN (a
// superuser on a throwaway server); the sessions under test log in as unprivileged roles created here.

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "agent/core/analysis.h"
#include "agent/core/policy.h"
#include "agent/pg/actuator.h"
#include "agent/pg/collector.h"
#include "agent/policy/rules_file.h"
#include "agent/remediation/audit_log.h"
#include "agent/remediation/remediator.h"

#include "tests/integration/pg_fixture.h"
#include "tests/testing/pg_harness.h"
#include "tests/testing/temp_dir.h"

namespace lockwatch::remediation {
namespace {

using integration::kWaitTimeout;
using lockwatch::testing::PgSession;

constexpr const char* kAppRole = "lwrem_app";
constexpr const char* kProtectedRole = "lwrem_protected";

class RecordingObserver : public RemediationObserver {
 public:
  void OnDecision(const AuditEntry& entry) override {
    if (!entry.repeat) entries.push_back(entry);
  }
  std::vector<AuditEntry> Of(const std::string& decision) const {
    std::vector<AuditEntry> out;
    for (const AuditEntry& e : entries) {
      if (e.decision == decision) out.push_back(e);
    }
    return out;
  }
  std::vector<AuditEntry> entries;
};

// An audit line without what legitimately differs between a dry run and enforcement of the same decision:
// time, mode, result and message (and the reason text, which carries measured durations).
std::string Comparable(const AuditEntry& e) {
  return e.rule + " " + e.decision + " " + e.action + " " + e.plan + " pid=" + std::to_string(e.pid) +
         " role=" + e.role + " direct=" + std::to_string(e.blocked_direct) +
         " total=" + std::to_string(e.blocked_total) + " user=" + e.usename + " app=" + e.application_name;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

core::Policy Rules(const std::string& yaml) {
  core::Result<core::Policy> policy = policy::ParseRules(yaml, "test-rules.yaml");
  if (!policy.ok())
    throw lockwatch::testing::HarnessError("rules do not parse: " + policy.status().message());
  return policy.value();
}

class RemediationPgTest : public integration::PgFixture {
 protected:
  void SetUp() override {
    PgFixture::SetUp();
    for (const char* role : {kAppRole, kProtectedRole}) {
      observer().Exec(std::string("DO $$ BEGIN CREATE ROLE ") + role +
                      " LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;");
      observer().Exec("GRANT USAGE ON SCHEMA " + schema() + " TO " + role +
                      "; GRANT ALL ON ALL TABLES IN SCHEMA " + schema() + " TO " + role + ";");
    }
    // The queued ALTER TABLE runs as the unprivileged role: it must own the table.
    observer().Exec("ALTER TABLE " + schema() + ".t OWNER TO " + kAppRole + ";");
    collector_ = std::make_unique<pg::Collector>(dsn_);
    core::Status status = collector_->Connect();
    if (!status.ok()) throw lockwatch::testing::HarnessError("collector cannot connect: " + status.message());
    protection_.users = {core::NamePattern{kProtectedRole}};
  }

  void TearDown() override {
    std::vector<int32_t> pids;
    for (auto& [label, s] : sessions_) {
      if (!s->closed()) pids.push_back(s->pid());
      if (s->pending()) s->Cancel();
    }
    sessions_.clear();
    if (!pids.empty()) lockwatch::testing::WaitUntilGone(observer(), pids, kWaitTimeout);
    remediator_.reset();
    collector_.reset();
    PgFixture::TearDown();
  }

  // A session logged in as `role` (application_name "lwit-<label>"), search_path on the test schema.
  PgSession& OpenAs(const std::string& label, const std::string& role) {
    const std::string sep =
        dsn_.find("://") == std::string::npos ? " " : (dsn_.find('?') == std::string::npos ? "?" : "&");
    auto s = std::make_unique<PgSession>(dsn_ + sep + "user=" + role, "lwit-" + label);
    lockwatch::testing::SetSearchPath(*s, schema());
    PgSession& ref = *s;
    sessions_[label] = std::move(s);
    return ref;
  }
  PgSession& S(const std::string& label) { return *sessions_.at(label); }

  // `holder` opens a transaction holding the row lock of t.id = `row` and stays idle in transaction;
  // `waiters` sessions queue behind it with an UPDATE of the same row.
  std::vector<std::string> IdleRootWithWaiters(const std::string& holder, const std::string& role, int row,
                                               int waiters) {
    PgSession& h = OpenAs(holder, role);
    h.Exec("BEGIN; UPDATE t SET v = v + 1 WHERE id = " + std::to_string(row) + ";");
    std::vector<std::string> labels;
    for (int i = 0; i < waiters; ++i) {
      const std::string label = holder + "-w" + std::to_string(i);
      PgSession& w = OpenAs(label, kAppRole);
      w.Send("UPDATE t SET v = v + 1 WHERE id = " + std::to_string(row));
      lockwatch::testing::WaitUntilWaiting(observer(), w, kWaitTimeout);
      labels.push_back(label);
    }
    return labels;
  }

  void MakeRemediator(bool enforce, const std::function<void(RemediatorOptions*)>& tweak = nullptr) {
    remediator_.reset();
    RemediatorOptions o;
    o.target = "pgtest";
    o.gate.enforce = enforce;
    o.kill_switch_file = dir_.File("pause");
    o.terminate_wait = std::chrono::milliseconds(5000);
    if (tweak) tweak(&o);
    audit_log_ = std::make_shared<AuditLog>(
        AuditLogOptions{dir_.File(enforce ? "enforce.jsonl" : "dry.jsonl"), false});
    observer_ = std::make_shared<RecordingObserver>();
    remediator_ = std::make_unique<Remediator>(o, MakeActuatorSender(dsn_), audit_log_, observer_);
  }

  struct Poll {
    core::Snapshot snapshot;
    core::Report report;
    std::vector<core::PolicyDecision> decisions;
  };

  Poll PollOnce(const core::Policy& policy) {
    core::Result<core::Snapshot> snapshot = collector_->Poll();
    if (!snapshot.ok()) throw lockwatch::testing::HarnessError("poll failed: " + snapshot.status().message());
    Poll p;
    p.snapshot = std::move(snapshot).value();
    p.report = core::Analyze(p.snapshot);
    p.decisions =
        core::Evaluate(policy, protection_, p.snapshot, p.report, p.snapshot.captured_at_us, nullptr);
    return p;
  }

  // One poll -> policy -> remediator evaluation, then waits until the signal (if any) was sent.
  void Step(const core::Policy& policy) {
    Poll p = PollOnce(policy);
    remediator_->Evaluate(p.snapshot, p.report, p.decisions);
    ASSERT_TRUE(remediator_->WaitIdle(kWaitTimeout));
  }

  // Steps (spaced `gap` apart) until an entry with `decision` about `pid` appears, or the deadline.
  bool StepUntil(const core::Policy& policy, const std::string& decision, int32_t pid,
                 std::chrono::milliseconds gap = std::chrono::milliseconds(200)) {
    const auto deadline = std::chrono::steady_clock::now() + kWaitTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      Step(policy);
      for (const AuditEntry& e : observer_->entries) {
        if (e.decision == decision && e.pid == pid) return true;
      }
      std::this_thread::sleep_for(gap);
    }
    return false;
  }

  bool Alive(int32_t pid) {
    return observer().ExecScalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                                 std::to_string(pid)) == "1";
  }
  std::string StateOf(int32_t pid) {
    return observer()
        .ExecScalar("SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = " + std::to_string(pid))
        .value_or("");
  }
  std::vector<std::string> StillWaiting(const std::vector<std::string>& labels) {
    std::vector<std::string> out;
    for (const std::string& l : labels) {
      if (S(l).IsBusy()) out.push_back(l);
    }
    return out;
  }

  lockwatch::testing::TempDir dir_{"lw-rem-pg"};
  core::Protection protection_;
  std::unique_ptr<pg::Collector> collector_;
  std::map<std::string, std::unique_ptr<PgSession>> sessions_;
  std::shared_ptr<AuditLog> audit_log_;
  std::shared_ptr<RecordingObserver> observer_;
  std::unique_ptr<Remediator> remediator_;
};

const char* const kIdleRootRules = R"(version: 1
rules:
  - name: idle-root
    match:
      role: root
      state: ["idle in transaction"]
      min_blocked_total: 20
      user: [lwrem_app]
    action: terminate
)";

TEST_F(RemediationPgTest, IdleInTransactionRootBlocking20DryRunChangesNothingThenEnforcementTerminatesIt) {
  const core::Policy policy = Rules(kIdleRootRules);
  const std::vector<std::string> waiters = IdleRootWithWaiters("root", kAppRole, 1, 20);
  const int32_t root = S("root").pid();

  // Dry run: decided, audited, and nothing happens to the database.
  MakeRemediator(/*enforce=*/false);
  ASSERT_TRUE(StepUntil(policy, "executed", root));
  Step(policy);
  Step(policy);
  EXPECT_TRUE(Alive(root));
  EXPECT_EQ(StateOf(root), "idle in transaction");
  EXPECT_EQ(StillWaiting(waiters).size(), 20U);
  const std::vector<AuditEntry> dry_planned = observer_->Of("planned");
  ASSERT_EQ(dry_planned.size(), 1U);
  EXPECT_EQ(dry_planned[0].pid, root);
  EXPECT_EQ(dry_planned[0].blocked_total, 20);
  EXPECT_EQ(dry_planned[0].usename, kAppRole);
  EXPECT_TRUE(dry_planned[0].dry_run);
  const std::vector<AuditEntry> dry_executed = observer_->Of("executed");
  ASSERT_EQ(dry_executed.size(), 1U);
  EXPECT_EQ(dry_executed[0].result, "dry_run");
  for (const std::string& line : ReadLines(dir_.File("dry.jsonl"))) {
    EXPECT_EQ(nlohmann::json::parse(line).at("mode"), "dry_run") << line;
  }

  // Enforced: the root is terminated and the 20 complete their statements.
  MakeRemediator(/*enforce=*/true);
  ASSERT_TRUE(StepUntil(policy, "executed", root)) << "no executed entry";
  const std::vector<AuditEntry> planned = observer_->Of("planned");
  ASSERT_EQ(planned.size(), 1U);
  EXPECT_FALSE(planned[0].dry_run);
  EXPECT_EQ(Comparable(planned[0]), Comparable(dry_planned[0]));
  const std::vector<AuditEntry> executed = observer_->Of("executed");
  ASSERT_EQ(executed.size(), 1U);
  EXPECT_EQ(executed[0].result, "exited");
  EXPECT_EQ(Comparable(executed[0]), Comparable(dry_executed[0]));
  EXPECT_FALSE(Alive(root));
  for (const std::string& w : waiters) EXPECT_EQ(S(w).Drain(kWaitTimeout), "") << w;
  EXPECT_EQ(observer().ExecScalar("SELECT v FROM " + schema() + ".t WHERE id = 1"), "20");
  EXPECT_TRUE(observer_->Of("failed").empty());
}

const char* const kAmplifierRules = R"(version: 1
rules:
  - name: ddl-amplifier
    match:
      role: amplifier
      lock_mode: [AccessExclusiveLock]
      min_blocked_direct: 10
    action: cancel
)";

TEST_F(RemediationPgTest, QueuedDdlAmplifierDryRunChangesNothingThenEnforcementCancelsItAndTheHolderStays) {
  const core::Policy policy = Rules(kAmplifierRules);
  PgSession& holder = OpenAs("holder", kAppRole);
  holder.Exec("BEGIN; SELECT count(*) FROM t;");
  PgSession& ddl = OpenAs("ddl", kAppRole);
  ddl.Send("ALTER TABLE t ADD COLUMN c int");
  lockwatch::testing::WaitUntilWaiting(observer(), ddl, kWaitTimeout);
  std::vector<std::string> readers;
  for (int i = 0; i < 10; ++i) {
    const std::string label = "reader" + std::to_string(i);
    PgSession& r = OpenAs(label, kAppRole);
    r.Send("SELECT count(*) FROM t");
    lockwatch::testing::WaitUntilWaiting(observer(), r, kWaitTimeout);
    readers.push_back(label);
  }

  MakeRemediator(/*enforce=*/false);
  ASSERT_TRUE(StepUntil(policy, "executed", ddl.pid()));
  Step(policy);
  EXPECT_TRUE(ddl.IsBusy());
  EXPECT_EQ(StillWaiting(readers).size(), 10U);
  EXPECT_EQ(StateOf(holder.pid()), "idle in transaction");
  const std::vector<AuditEntry> dry_planned = observer_->Of("planned");
  ASSERT_EQ(dry_planned.size(), 1U);
  EXPECT_EQ(dry_planned[0].action, "cancel");
  EXPECT_EQ(dry_planned[0].role, "amplifier");

  MakeRemediator(/*enforce=*/true);
  ASSERT_TRUE(StepUntil(policy, "executed", ddl.pid()));
  const std::vector<AuditEntry> planned = observer_->Of("planned");
  ASSERT_EQ(planned.size(), 1U);
  EXPECT_EQ(Comparable(planned[0]), Comparable(dry_planned[0]));
  EXPECT_EQ(observer_->Of("executed").at(0).result, "signalled");
  EXPECT_NE(ddl.Drain(kWaitTimeout).find("canceling statement due to user request"), std::string::npos);
  for (const std::string& r : readers) EXPECT_EQ(S(r).Drain(kWaitTimeout), "") << r;
  // The original holder is untouched and can still commit.
  EXPECT_EQ(StateOf(holder.pid()), "idle in transaction");
  holder.Exec("COMMIT");
}

const char* const kCatchAllRules = R"(version: 1
rules:
  - name: everything
    match:
      role: any
    action: terminate
)";

TEST_F(RemediationPgTest, ProtectedUserSuperuserOwnSessionAndPureWaitersAreNeverTouched) {
  const core::Policy policy = Rules(kCatchAllRules);
  const std::vector<std::string> su_waiters = IdleRootWithWaiters("su", "postgres", 2, 1);
  const std::vector<std::string> prot_waiters = IdleRootWithWaiters("prot", kProtectedRole, 3, 1);
  // A session of another lockwatch instance (application_name "lockwatch") blocking a waiter.
  auto other_instance = std::make_unique<PgSession>(dsn_, "lockwatch");
  lockwatch::testing::SetSearchPath(*other_instance, schema());
  other_instance->Exec("BEGIN; UPDATE t SET v = v + 1 WHERE id = 5;");
  const int32_t other_pid = other_instance->pid();
  sessions_["other-instance"] = std::move(other_instance);
  PgSession& other_waiter = OpenAs("other-instance-w0", kAppRole);
  other_waiter.Send("UPDATE t SET v = v + 1 WHERE id = 5");
  lockwatch::testing::WaitUntilWaiting(observer(), other_waiter, kWaitTimeout);
  MakeRemediator(/*enforce=*/true, [](RemediatorOptions* o) { o->gate.settle_after_action_seconds = 0; });
  for (int i = 0; i < 3; ++i) {
    Step(policy);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(observer_->Of("planned").empty());
  EXPECT_TRUE(observer_->Of("executed").empty());
  std::map<int32_t, std::string> skip_of;
  for (const AuditEntry& e : observer_->Of("skipped")) skip_of[e.pid] = e.reason;
  EXPECT_EQ(skip_of[S("su").pid()], core::kSkipSuperuser);
  EXPECT_EQ(skip_of[S("prot").pid()], core::kSkipProtectedUser);
  EXPECT_EQ(skip_of[S("su-w0").pid()], core::kSkipOnlyWaits);
  EXPECT_EQ(skip_of[S("prot-w0").pid()], core::kSkipOnlyWaits);
  EXPECT_EQ(skip_of[S("other-instance-w0").pid()], core::kSkipOnlyWaits);
  EXPECT_EQ(skip_of[other_pid], core::kSkipOwnSession);
  // The collector's own backend is never even a candidate.
  const Poll p = PollOnce(policy);
  ASSERT_NE(p.snapshot.own_pid, 0);
  for (const AuditEntry& e : observer_->entries) {
    if (e.pid == p.snapshot.own_pid) {
      EXPECT_EQ(e.reason, core::kSkipOwnSession);
    }
  }
  for (const char* l : {"su", "prot", "other-instance"}) {
    EXPECT_EQ(StateOf(S(l).pid()), "idle in transaction") << l;
  }
  EXPECT_EQ(StillWaiting({"su-w0", "prot-w0", "other-instance-w0"}).size(), 3U);
}

TEST_F(RemediationPgTest, ReusedPidIsStaleAndNotSignalled) {
  const core::Policy policy = Rules(R"(version: 1
rules:
  - name: idle-root
    match:
      role: root
      state: ["idle in transaction"]
      user: [lwrem_app]
    action: terminate
)");
  IdleRootWithWaiters("old", kAppRole, 4, 1);
  const Poll before = PollOnce(policy);
  const int32_t old_pid = S("old").pid();
  const auto old_decision = std::find_if(
      before.decisions.begin(), before.decisions.end(),
      [&](const core::PolicyDecision& d) { return d.planned.victim.pid == old_pid && !d.skipped(); });
  ASSERT_NE(old_decision, before.decisions.end());

  // The analysed session ends; a new one takes its place in the same pile-up.
  sessions_.at("old")->Close();
  lockwatch::testing::WaitUntilGone(observer(), {old_pid}, kWaitTimeout);
  ASSERT_EQ(S("old-w0").Drain(kWaitTimeout), "");
  IdleRootWithWaiters("new", kAppRole, 4, 1);
  const int32_t new_pid = S("new").pid();

  // (a) The decision about the ended session, evaluated late: the actuator finds no matching backend.
  MakeRemediator(/*enforce=*/true);
  remediator_->Evaluate(before.snapshot, before.report, before.decisions);
  ASSERT_TRUE(remediator_->WaitIdle(kWaitTimeout));
  Step(policy);  // collects the result (and plans nothing new while re-reading)
  std::vector<AuditEntry> skipped = observer_->Of("skipped");
  auto stale = [](const AuditEntry& e) { return e.reason == "stale"; };
  ASSERT_EQ(std::count_if(skipped.begin(), skipped.end(), stale), 1);
  EXPECT_TRUE(Alive(new_pid));

  // (b) A forged identity: the new session's pid with the old backend_start, in a snapshot that agrees.
  Poll forged = before;
  for (core::Session& s : forged.snapshot.sessions) {
    if (s.pid == old_pid) s.pid = new_pid;
  }
  for (core::Edge& e : forged.report.edges) {
    if (e.blocker.pid == old_pid) e.blocker.pid = new_pid;
  }
  core::PolicyDecision d = *old_decision;
  d.planned.victim.pid = new_pid;
  forged.snapshot.captured_at_us += 60'000'000;  // past the gate's settle and re-read
  MakeRemediator(/*enforce=*/true);
  remediator_->Evaluate(forged.snapshot, forged.report, {d});
  ASSERT_TRUE(remediator_->WaitIdle(kWaitTimeout));
  remediator_->Stop();
  skipped = observer_->Of("skipped");
  ASSERT_EQ(std::count_if(skipped.begin(), skipped.end(), stale), 1) << "forged identity was not stale";
  EXPECT_TRUE(observer_->Of("executed").empty());
  EXPECT_TRUE(Alive(new_pid));
  EXPECT_EQ(StateOf(new_pid), "idle in transaction");
}

const char* const kManyRootsRules = R"(version: 1
rules:
  - name: idle-roots
    match:
      role: root
      state: ["idle in transaction"]
      user: [lwrem_app]
    action: terminate
)";

TEST_F(RemediationPgTest, RateLimitHoldsWithManyCandidates) {
  const core::Policy policy = Rules(kManyRootsRules);
  std::vector<int32_t> roots;
  for (int i = 0; i < 6; ++i) {
    IdleRootWithWaiters("r" + std::to_string(i), kAppRole, i + 1, 1);
    roots.push_back(S("r" + std::to_string(i)).pid());
  }
  MakeRemediator(/*enforce=*/true, [](RemediatorOptions* o) {
    o->gate.settle_after_action_seconds = 0;
    o->gate.global_max_per_minute = 2;
    o->gate.rule_max_per_minute = 10;
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    Step(policy);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(observer_->Of("planned").size(), 2U);
  EXPECT_EQ(observer_->Of("executed").size(), 2U);
  int alive = 0;
  for (int32_t pid : roots) alive += Alive(pid) ? 1 : 0;
  EXPECT_EQ(alive, 4);
  std::vector<AuditEntry> skipped = observer_->Of("skipped");
  EXPECT_TRUE(std::any_of(skipped.begin(), skipped.end(),
                          [](const AuditEntry& e) { return e.reason == core::kSkipRateLimitedGlobal; }));
  EXPECT_EQ(remediator_->Stats().skipped.count(core::kSkipRateLimitedGlobal), 1U);
}

TEST_F(RemediationPgTest, KillSwitchFileStopsEveryActionUntilRemoved) {
  const core::Policy policy = Rules(kManyRootsRules);
  IdleRootWithWaiters("r", kAppRole, 1, 1);
  const int32_t root = S("r").pid();
  MakeRemediator(/*enforce=*/true);
  { std::ofstream(dir_.File("pause")) << "paused for maintenance\n"; }
  for (int i = 0; i < 3; ++i) {
    Step(policy);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(observer_->Of("planned").empty());
  ASSERT_FALSE(observer_->Of("skipped").empty());
  EXPECT_EQ(observer_->Of("skipped")[0].reason, core::kSkipKillSwitch);
  EXPECT_TRUE(Alive(root));
  EXPECT_TRUE(remediator_->Stats().kill_switch);

  ASSERT_EQ(::unlink(dir_.File("pause").c_str()), 0);
  ASSERT_TRUE(StepUntil(policy, "executed", root));
  EXPECT_FALSE(Alive(root));
}

}  // namespace
}  // namespace lockwatch::remediation
