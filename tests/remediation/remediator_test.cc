#include "agent/remediation/remediator.h"

#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "tests/testing/temp_dir.h"

namespace lockwatch::remediation {
namespace {

using core::ActionKind;
using core::TimestampUs;

constexpr TimestampUs kT0 = 1'764'078'300'000'000;
constexpr std::chrono::milliseconds kWait{5000};

TimestampUs At(double seconds) { return kT0 + static_cast<TimestampUs>(seconds * 1e6); }
TimestampUs BackendStart(int32_t pid) { return kT0 - 1'000'000 * static_cast<TimestampUs>(pid); }

// A SignalSender that records requests and answers with a configurable result.
class FakeSender : public SignalSender {
 public:
  struct Shared {
    std::mutex mu;
    std::vector<pg::SignalRequest> requests;
    pg::SignalResult result = pg::SignalResult::kSignalled;
    bool fail_unavailable = false;
    bool connected = false;
    int disconnects = 0;
  };
  explicit FakeSender(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

  core::Result<pg::SignalOutcome> Signal(const pg::SignalRequest& request) override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->requests.push_back(request);
    if (shared_->fail_unavailable) return core::Status::Unavailable("server closed the connection");
    shared_->connected = true;
    pg::SignalOutcome o;
    o.result = shared_->result;
    return o;
  }
  bool connected() const override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    return shared_->connected;
  }
  void Disconnect() override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->connected) ++shared_->disconnects;
    shared_->connected = false;
  }

 private:
  std::shared_ptr<Shared> shared_;
};

class RecordingObserver : public RemediationObserver {
 public:
  void OnDecision(const AuditEntry& entry) override { entries.push_back(entry); }
  std::vector<AuditEntry> entries;
};

// "decision action reason result" of the observed entries of `pid`, repeats included unless dropped.
std::vector<std::string> Lines(const std::vector<AuditEntry>& entries, bool with_repeats = false) {
  std::vector<std::string> out;
  for (const AuditEntry& e : entries) {
    if (e.repeat && !with_repeats) continue;
    std::string line = std::to_string(e.pid) + " " + e.decision + " " + e.action + " " + e.mode();
    if (!e.reason.empty() && e.decision != "planned" && e.decision != "executed") line += " " + e.reason;
    if (!e.result.empty()) line += " -> " + e.result;
    out.push_back(line);
  }
  return out;
}

// A root (pid 100 unless changed) blocking two waiters, in `state`.
struct World {
  core::Snapshot snapshot;
  core::Report report;
};

World Blocking(double at, const std::string& root_state = "idle in transaction", int32_t root = 100) {
  World w;
  w.snapshot.captured_at_us = At(at);
  w.snapshot.own_pid = 7;
  auto add = [&w](int32_t pid, const std::string& state) {
    core::Session s;
    s.pid = pid;
    s.usename = "app";
    s.application_name = "billing";
    s.backend_type = "client backend";
    s.state = state;
    s.backend_start = BackendStart(pid);
    s.superuser = false;
    w.snapshot.sessions.push_back(s);
  };
  add(7, "active");
  add(root, root_state);
  for (int32_t pid : {201, 202}) {
    add(pid, "active");
    core::Edge e;
    e.waiter = core::NodeRef{pid, ""};
    e.blocker = core::NodeRef{root, ""};
    w.report.edges.push_back(e);
    core::Waiter waiter;
    waiter.node = core::NodeRef{pid, ""};
    w.report.waiters.push_back(waiter);
  }
  return w;
}

core::PolicyDecision Decision(int32_t pid, ActionKind action, double at,
                              const std::string& rule = "idle-root", double grace = 0) {
  core::PolicyDecision d;
  d.planned.rule = rule;
  d.planned.action = action;
  d.planned.victim.pid = pid;
  d.planned.victim.backend_start = BackendStart(pid);
  d.planned.grace_seconds = grace;
  d.planned.role = "root";
  d.planned.blocked_direct = 2;
  d.planned.blocked_total = 2;
  d.planned.reason = "idle in transaction for 45s";
  d.planned.decided_at = At(at);
  d.node = core::NodeRef{pid, ""};
  d.user = "app";
  d.application = "billing";
  return d;
}

core::PolicyDecision Skipped(int32_t pid, const std::string& skip, double at) {
  core::PolicyDecision d = Decision(pid, ActionKind::kTerminate, at);
  d.skip = skip;
  d.skip_detail = "detail of " + skip;
  return d;
}

RemediatorOptions Options(bool enforce) {
  RemediatorOptions o;
  o.target = "main";
  o.gate.enforce = enforce;
  o.gate.settle_after_action_seconds = 0;
  o.gate.session_cooldown_seconds = 0;
  return o;
}

class RemediatorTest : public ::testing::Test {
 protected:
  std::unique_ptr<Remediator> Make(RemediatorOptions options, const std::string& audit_path = "") {
    sender_ = std::make_shared<FakeSender::Shared>();
    observer_ = std::make_shared<RecordingObserver>();
    if (!audit_path.empty()) audit_ = std::make_shared<AuditLog>(AuditLogOptions{audit_path, false});
    return std::make_unique<Remediator>(std::move(options), std::make_unique<FakeSender>(sender_), audit_,
                                        observer_);
  }
  size_t Requests() {
    std::lock_guard<std::mutex> lock(sender_->mu);
    return sender_->requests.size();
  }

  std::shared_ptr<FakeSender::Shared> sender_;
  std::shared_ptr<RecordingObserver> observer_;
  std::shared_ptr<AuditLog> audit_;
};

TEST_F(RemediatorTest, DryRunAuditsPlannedAndExecutedAndSendsNothing) {
  testing::TempDir dir("lw-rem");
  auto r = Make(Options(/*enforce=*/false), dir.File("audit.jsonl"));
  World w = Blocking(0);
  r->Evaluate(w.snapshot, w.report, {Decision(100, ActionKind::kTerminate, 0)});
  ASSERT_TRUE(r->WaitIdle(kWait));
  EXPECT_EQ(Requests(), 0U);
  EXPECT_EQ(Lines(observer_->entries),
            (std::vector<std::string>{"100 planned terminate dry_run",
                                      "100 executed terminate dry_run -> dry_run"}));
  const AuditEntry& planned = observer_->entries.at(0);
  EXPECT_EQ(planned.target, "main");
  EXPECT_EQ(planned.usename, "app");
  EXPECT_EQ(planned.application_name, "billing");
  EXPECT_EQ(planned.reason, "idle in transaction for 45s");
  EXPECT_EQ((r->Stats().actions[{"terminate", "dry_run"}]), 1U);

  std::ifstream in(dir.File("audit.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(nlohmann::json::parse(line).at("mode"), "dry_run");
}

TEST_F(RemediatorTest, EnforceSendsOnTheWorkerAndAuditsTheResultAtTheNextEvaluation) {
  auto r = Make(Options(/*enforce=*/true));
  sender_->result = pg::SignalResult::kExited;
  World w = Blocking(0);
  r->Evaluate(w.snapshot, w.report, {Decision(100, ActionKind::kTerminate, 0)});
  ASSERT_TRUE(r->WaitIdle(kWait));
  ASSERT_EQ(Requests(), 1U);
  const pg::SignalRequest& req = sender_->requests[0];
  EXPECT_EQ(req.kind, pg::SignalKind::kTerminate);
  EXPECT_EQ(req.victim.pid, 100);
  EXPECT_EQ(req.victim.backend_start, BackendStart(100));
  EXPECT_FALSE(req.allow_superuser);
  EXPECT_EQ(Lines(observer_->entries), (std::vector<std::string>{"100 planned terminate enforce"}));

  World after = Blocking(1);
  r->Evaluate(after.snapshot, after.report, {});
  EXPECT_EQ(Lines(observer_->entries),
            (std::vector<std::string>{"100 planned terminate enforce",
                                      "100 executed terminate enforce -> exited"}));
  EXPECT_EQ((r->Stats().actions[{"terminate", "enforce"}]), 1U);
}

TEST_F(RemediatorTest, PolicySkipsAreAuditedWithTheirReason) {
  auto r = Make(Options(/*enforce=*/true));
  World w = Blocking(0);
  r->Evaluate(w.snapshot, w.report,
              {Skipped(100, core::kSkipProtectedUser, 0), Skipped(201, core::kSkipOnlyWaits, 0),
               Skipped(7, core::kSkipOwnSession, 0), Skipped(100, core::kSkipSuperuser, 0)});
  ASSERT_TRUE(r->WaitIdle(kWait));
  EXPECT_EQ(Requests(), 0U);
  EXPECT_EQ(Lines(observer_->entries),
            (std::vector<std::string>{
                "100 skipped terminate enforce protected_user", "201 skipped terminate enforce only_waits",
                "7 skipped terminate enforce own_session", "100 skipped terminate enforce superuser"}));
  EXPECT_EQ(observer_->entries[0].message, "detail of protected_user");
  EXPECT_EQ(r->Stats().skipped["protected_user"], 1U);
}

struct DefenceCase {
  const char* name;
  int32_t pid;
  ActionKind action;
  std::string root_state;
  bool wrong_backend_start;
  std::string reason;
};

class RemediatorDefenceTest : public RemediatorTest, public ::testing::WithParamInterface<DefenceCase> {};

TEST_P(RemediatorDefenceTest, UnsafeDecisionIsSkippedAndNothingSent) {
  const DefenceCase& c = GetParam();
  auto r = Make(Options(/*enforce=*/true));
  World w = Blocking(0, c.root_state);
  core::PolicyDecision d = Decision(c.pid, c.action, 0);
  if (c.wrong_backend_start) d.planned.victim.backend_start = BackendStart(c.pid) + 1;
  r->Evaluate(w.snapshot, w.report, {d});
  ASSERT_TRUE(r->WaitIdle(kWait));
  EXPECT_EQ(Requests(), 0U);
  ASSERT_EQ(observer_->entries.size(), 1U);
  EXPECT_EQ(observer_->entries[0].decision, "skipped");
  EXPECT_EQ(observer_->entries[0].reason, c.reason);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RemediatorDefenceTest,
    ::testing::Values(
        DefenceCase{"own_session", 7, ActionKind::kTerminate, "active", false, "own_session"},
        DefenceCase{"pure_waiter", 201, ActionKind::kTerminate, "active", false, "only_waits"},
        DefenceCase{"pid_reused", 100, ActionKind::kTerminate, "active", true, "unknown_identity"},
        DefenceCase{"not_in_snapshot", 555, ActionKind::kTerminate, "active", false, "unknown_identity"},
        DefenceCase{"prepared", 0, ActionKind::kTerminate, "active", false, "prepared_transaction"},
        DefenceCase{"cancel_idle_in_tx", 100, ActionKind::kCancel, "idle in transaction", false,
                    "cancel_idle_in_transaction"},
        DefenceCase{"cancel_then_terminate_idle_in_tx", 100, ActionKind::kCancelThenTerminate,
                    "idle in transaction (aborted)", false, "cancel_idle_in_transaction"}),
    [](const ::testing::TestParamInfo<DefenceCase>& param_info) { return param_info.param.name; });

TEST_F(RemediatorTest, KillSwitchFilePausesEnforcementImmediately) {
  testing::TempDir dir("lw-rem");
  RemediatorOptions o = Options(/*enforce=*/true);
  o.kill_switch_file = dir.File("pause");
  auto r = Make(o);
  { std::ofstream(o.kill_switch_file) << ""; }
  World w = Blocking(0);
  r->Evaluate(w.snapshot, w.report, {Decision(100, ActionKind::kTerminate, 0)});
  ASSERT_TRUE(r->WaitIdle(kWait));
  EXPECT_EQ(Requests(), 0U);
  EXPECT_EQ(Lines(observer_->entries),
            (std::vector<std::string>{"100 skipped terminate enforce kill_switch"}));
  EXPECT_TRUE(r->Stats().kill_switch);

  ASSERT_EQ(::unlink(o.kill_switch_file.c_str()), 0);
  World later = Blocking(1);
  r->Evaluate(later.snapshot, later.report, {Decision(100, ActionKind::kTerminate, 1)});
  ASSERT_TRUE(r->WaitIdle(kWait));
  EXPECT_EQ(Requests(), 1U);
  EXPECT_FALSE(r->Stats().kill_switch);
}

TEST_F(RemediatorTest, PermissionDeniedIsCountedAndNotRetried) {
  auto r = Make(Options(/*enforce=*/true));
  sender_->result = pg::SignalResult::kPermissionDenied;
  for (int i = 0; i < 5; ++i) {
    World w = Blocking(i);
    r->Evaluate(w.snapshot, w.report, {Decision(100, ActionKind::kTerminate, i)});
    ASSERT_TRUE(r->WaitIdle(kWait));
  }
  EXPECT_EQ(Requests(), 1U);
  const RemediationStats stats = r->Stats();
  EXPECT_EQ((stats.failures.at({"terminate", "permission_denied"})), 1U);
  EXPECT_EQ(stats.skipped.at("permission_denied_before"), 1U);  // repeats are not counted
  const std::vector<std::string> lines = Lines(observer_->entries);
  EXPECT_EQ(lines.at(1), "100 failed terminate enforce permission_denied -> permission_denied");
  // The evaluation that collects the result is not a re-read of the server; the next one is.
  EXPECT_EQ(lines.at(2), "100 skipped terminate enforce settling");
  EXPECT_EQ(lines.at(3), "100 skipped terminate enforce permission_denied_before");
  EXPECT_EQ(lines.size(), 4U);
}

TEST_F(RemediatorTest, LostConnectionIsAFailureAndTheBreakerOpens) {
  RemediatorOptions o = Options(/*enforce=*/true);
  o.gate.breaker_failures = 2;
  auto r = Make(o);
  sender_->fail_unavailable = true;
  // t0 sent (fails), t1 re-read pending, t2 sent (fails: breaker opens at t3), t3..t5 circuit open.
  for (int i = 0; i < 6; ++i) {
    World w = Blocking(i, "active", 100 + i);
    r->Evaluate(w.snapshot, w.report, {Decision(100 + i, ActionKind::kTerminate, i)});
    ASSERT_TRUE(r->WaitIdle(kWait));
  }
  EXPECT_EQ(Requests(), 2U);
  const RemediationStats stats = r->Stats();
  EXPECT_EQ(stats.breaker, "open");
  EXPECT_EQ((stats.failures.at({"terminate", "unavailable"})), 2U);
  EXPECT_EQ(stats.skipped.at("circuit_open"), 3U);
}

TEST_F(RemediatorTest, CancelThenTerminateEscalatesWhenTheSessionStaysInItsAbortedTransaction) {
  auto r = Make(Options(/*enforce=*/true));
  World active = Blocking(0, "active");
  r->Evaluate(active.snapshot, active.report,
              {Decision(100, ActionKind::kCancelThenTerminate, 0, "slow", 2)});
  ASSERT_TRUE(r->WaitIdle(kWait));
  ASSERT_EQ(Requests(), 1U);
  EXPECT_EQ(sender_->requests[0].kind, pg::SignalKind::kCancel);

  // After the cancel the session sits in its aborted transaction, still holding the lock: the policy skips
  // it (a cancel would be useless), the pending terminate step still applies.
  for (double at : {1.0, 2.0, 3.5}) {
    World aborted = Blocking(at, "idle in transaction (aborted)");
    core::PolicyDecision d = Decision(100, ActionKind::kCancelThenTerminate, at, "slow", 2);
    d.skip = core::kSkipCancelIdleInTransaction;
    r->Evaluate(aborted.snapshot, aborted.report, {d});
    ASSERT_TRUE(r->WaitIdle(kWait));
  }
  ASSERT_EQ(Requests(), 2U);
  EXPECT_EQ(sender_->requests[1].kind, pg::SignalKind::kTerminate);
  bool saw_escalation = false;
  for (const AuditEntry& e : observer_->entries) {
    if (e.decision == "planned" && e.escalation && e.action == "terminate") saw_escalation = true;
  }
  EXPECT_TRUE(saw_escalation);
  EXPECT_EQ(Lines(observer_->entries).at(2), "100 skipped terminate enforce grace");
}

TEST_F(RemediatorTest, RepeatedSkipsAreWrittenOncePerPeriodButObservedEveryTime) {
  testing::TempDir dir("lw-rem");
  auto r = Make(Options(/*enforce=*/true), dir.File("audit.jsonl"));
  for (int i = 0; i < 3; ++i) {
    World w = Blocking(i);
    r->Evaluate(w.snapshot, w.report, {Skipped(100, core::kSkipProtectedUser, i)});
  }
  EXPECT_EQ(observer_->entries.size(), 3U);
  EXPECT_FALSE(observer_->entries[0].repeat);
  EXPECT_TRUE(observer_->entries[1].repeat);
  EXPECT_EQ(audit_->lines(), 1U);
  EXPECT_EQ(r->Stats().skipped["protected_user"], 1U);
  // After the period it is written again.
  World later = Blocking(61);
  r->Evaluate(later.snapshot, later.report, {Skipped(100, core::kSkipProtectedUser, 61)});
  EXPECT_EQ(audit_->lines(), 2U);
}

TEST_F(RemediatorTest, ActuatorConnectionIsClosedWhenIdle) {
  RemediatorOptions o = Options(/*enforce=*/true);
  o.idle_disconnect = std::chrono::milliseconds(50);
  auto r = Make(o);
  World w = Blocking(0);
  r->Evaluate(w.snapshot, w.report, {Decision(100, ActionKind::kTerminate, 0)});
  ASSERT_TRUE(r->WaitIdle(kWait));
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  int disconnects = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(sender_->mu);
      disconnects = sender_->disconnects;
    }
    if (disconnects > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(disconnects, 1);
}

TEST_F(RemediatorTest, StopAuditsResultsNotYetCollected) {
  auto r = Make(Options(/*enforce=*/true));
  World w = Blocking(0);
  r->Evaluate(w.snapshot, w.report, {Decision(100, ActionKind::kTerminate, 0)});
  ASSERT_TRUE(r->WaitIdle(kWait));
  r->Stop();
  EXPECT_EQ(Lines(observer_->entries),
            (std::vector<std::string>{"100 planned terminate enforce",
                                      "100 executed terminate enforce -> signalled"}));
}

}  // namespace
}  // namespace lockwatch::remediation
