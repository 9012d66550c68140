// The actuator against a real PostgreSQL server (LOCKWATCH_TEST_DSN: a superuser on a throwaway cluster with
// trust authentication on its socket). Victim sessions are plain libpq connections
// (tests/testing/pg_harness); identities come from real collector snapshots, so the exact-microsecond
// comparison is exercised end to end.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/snapshot.h"
#include "agent/pg/actuator.h"
#include "agent/pg/collector.h"

#include "tests/testing/pg_harness.h"

namespace lockwatch::pg {
namespace {

using lockwatch::testing::PgSession;
using std::chrono::milliseconds;

constexpr const char* kVictimRole = "lw_act_victim";
constexpr const char* kActorRole = "lw_act_actor";  // no pg_signal_backend until a test grants it
constexpr milliseconds kWait{10000};

std::string AsRole(const std::string& dsn, const std::string& role) { return dsn + " user=" + role; }

class ActuatorPgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = lockwatch::testing::TestDsn();
    admin_ = std::make_unique<PgSession>(dsn_, "actuator-test-admin");
    for (const char* role : {kVictimRole, kActorRole}) {
      const std::string exists =
          admin_->ExecScalar("SELECT count(*) FROM pg_roles WHERE rolname = '" + std::string(role) + "'")
              .value_or("0");
      if (exists == "0") admin_->Exec("CREATE ROLE " + std::string(role) + " LOGIN NOSUPERUSER");
    }
    admin_->Exec("REVOKE pg_monitor, pg_signal_backend FROM " + std::string(kActorRole));
    admin_->Exec("GRANT CONNECT ON DATABASE " + admin_->ExecScalar("SELECT current_database()").value() +
                 " TO " + kVictimRole + ", " + kActorRole);
  }

  std::unique_ptr<PgSession> Victim(const std::string& role = kVictimRole) {
    return std::make_unique<PgSession>(AsRole(dsn_, role), "actuator-test-victim");
  }

  // The session of `pid` as a collector snapshot sees it (fails the test when absent).
  core::Session Observe(int32_t pid) {
    Collector collector(dsn_);
    core::Status st = collector.Connect();
    EXPECT_TRUE(st.ok()) << st.message();
    core::Result<core::Snapshot> snap = collector.Poll();
    EXPECT_TRUE(snap.ok()) << snap.status().message();
    if (snap.ok()) {
      for (const core::Session& s : snap.value().sessions) {
        if (s.pid == pid) return s;
      }
    }
    ADD_FAILURE() << "pid " << pid << " not in the snapshot";
    return core::Session();
  }

  static core::VictimIdentity Identity(const core::Session& s, bool with_xact, bool with_state_change) {
    core::VictimIdentity v;
    v.pid = s.pid;
    v.backend_start = s.backend_start;
    if (with_xact) v.xact_start = s.xact_start;
    if (with_state_change) v.state_change = s.state_change;
    return v;
  }

  bool Alive(int32_t pid) {
    return admin_->ExecScalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(pid)) ==
           std::optional<std::string>("1");
  }

  // Waits until `pid` shows `state` (and, when given, `wait_event`).
  void WaitForState(int32_t pid, const std::string& state, const std::string& wait_event = "") {
    std::string sql = "SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = " + std::to_string(pid) +
                      " AND state = '" + state + "'";
    if (!wait_event.empty()) sql += " AND wait_event = '" + wait_event + "'";
    lockwatch::testing::WaitUntilTrue(*admin_, sql, "pid " + std::to_string(pid) + " " + state, kWait);
  }

  SignalOutcome SignalOk(Actuator& actuator, const SignalRequest& request) {
    core::Result<SignalOutcome> r = actuator.Signal(request);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : SignalOutcome();
  }

  std::string dsn_;
  std::unique_ptr<PgSession> admin_;
};

SignalRequest Request(const core::VictimIdentity& v, SignalKind kind) {
  SignalRequest r;
  r.victim = v;
  r.kind = kind;
  return r;
}

TEST_F(ActuatorPgTest, CancelOfARunningStatementIsSignalledAndTheStatementIsCanceled) {
  auto victim = Victim();
  victim->Send("SELECT pg_sleep(30)");
  WaitForState(victim->pid(), "active", "PgSleep");
  const core::Session seen = Observe(victim->pid());
  ASSERT_TRUE(seen.backend_start.has_value());
  EXPECT_EQ(seen.superuser, std::optional<bool>(false));

  Actuator actuator(dsn_);  // connects on demand
  const SignalOutcome out = SignalOk(actuator, Request(Identity(seen, true, true), SignalKind::kCancel));
  EXPECT_EQ(out.result, SignalResult::kSignalled) << out.message;
  EXPECT_TRUE(SignalSent(out.result));
  EXPECT_TRUE(actuator.connected());
  // 57014 query_canceled.
  EXPECT_NE(victim->Drain(kWait).find("canceling statement due to user request"), std::string::npos);
  EXPECT_EQ(victim->ExecScalar("SELECT 1"), std::optional<std::string>("1"));  // the session lives on
}

TEST_F(ActuatorPgTest, TerminateOfAnIdleInTransactionSessionWaitsForTheExit) {
  auto victim = Victim();
  victim->Exec("BEGIN; SELECT 1");
  WaitForState(victim->pid(), "idle in transaction");
  const core::Session seen = Observe(victim->pid());
  ASSERT_TRUE(seen.xact_start.has_value());

  Actuator actuator(dsn_);
  ASSERT_TRUE(actuator.Connect().ok());
  const SignalOutcome out = SignalOk(actuator, Request(Identity(seen, true, true), SignalKind::kTerminate));
  EXPECT_EQ(out.result, SignalResult::kExited) << out.message;
  EXPECT_FALSE(Alive(seen.pid));  // pg_terminate_backend(pid, timeout) returned only after the exit
  EXPECT_LT(out.seconds, 5.0);
}

TEST_F(ActuatorPgTest, BeforePg14TerminateIsAwaitedByPollingTheActivityView) {
  struct Case {
    milliseconds wait;
    SignalResult want;
  };
  for (const Case& c :
       {Case{milliseconds(3000), SignalResult::kExited}, Case{milliseconds(0), SignalResult::kSignalled}}) {
    SCOPED_TRACE(c.wait.count());
    auto victim = Victim();
    victim->Exec("BEGIN; SELECT 1");
    WaitForState(victim->pid(), "idle in transaction");
    const core::Session seen = Observe(victim->pid());

    Actuator actuator(dsn_);
    actuator.ForceServerVersionForTesting(130000);  // pg_terminate_backend(pid) without a timeout
    SignalRequest request = Request(Identity(seen, true, false), SignalKind::kTerminate);
    request.terminate_wait = c.wait;
    const SignalOutcome out = SignalOk(actuator, request);
    EXPECT_EQ(out.result, c.want) << out.message;
    if (c.want == SignalResult::kExited) {
      EXPECT_FALSE(Alive(seen.pid));
    }
    lockwatch::testing::WaitUntilGone(*admin_, {seen.pid}, kWait);
  }
}

TEST_F(ActuatorPgTest, TerminateWithoutWaitOnPg14IsSignalledOnly) {
  auto victim = Victim();
  victim->Exec("BEGIN; SELECT 1");
  WaitForState(victim->pid(), "idle in transaction");
  const core::Session seen = Observe(victim->pid());
  Actuator actuator(dsn_);
  SignalRequest request = Request(Identity(seen, false, false), SignalKind::kTerminate);
  request.terminate_wait = milliseconds(0);
  EXPECT_EQ(SignalOk(actuator, request).result, SignalResult::kSignalled);
  lockwatch::testing::WaitUntilGone(*admin_, {seen.pid}, kWait);
}

// A timestamp one microsecond off in either direction never matches, and nothing is signalled.
TEST_F(ActuatorPgTest, IdentityOneMicrosecondOffIsStaleAndNothingIsSignalled) {
  auto victim = Victim();
  victim->Exec("BEGIN; SELECT 1");
  WaitForState(victim->pid(), "idle in transaction");
  const core::Session seen = Observe(victim->pid());
  ASSERT_TRUE(seen.backend_start.has_value() && seen.xact_start.has_value() && seen.state_change.has_value());

  struct Case {
    const char* name;
    std::optional<core::TimestampUs> core::VictimIdentity::*field;
    int64_t delta;
  };
  const std::vector<Case> cases = {
      {"backend_start +1us", &core::VictimIdentity::backend_start, 1},
      {"backend_start -1us", &core::VictimIdentity::backend_start, -1},
      {"xact_start +1us", &core::VictimIdentity::xact_start, 1},
      {"xact_start -1us", &core::VictimIdentity::xact_start, -1},
      {"state_change +1us", &core::VictimIdentity::state_change, 1},
      {"state_change -1us", &core::VictimIdentity::state_change, -1},
  };
  Actuator actuator(dsn_);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    core::VictimIdentity v = Identity(seen, true, true);
    v.*c.field = *(v.*c.field) + c.delta;
    const SignalOutcome out = SignalOk(actuator, Request(v, SignalKind::kTerminate));
    EXPECT_EQ(out.result, SignalResult::kStale) << out.message;
    EXPECT_FALSE(SignalSent(out.result));
    EXPECT_TRUE(Alive(seen.pid));
  }
  // The exact identity still matches: the cases above failed only because of the one microsecond.
  EXPECT_EQ(SignalOk(actuator, Request(Identity(seen, true, true), SignalKind::kTerminate)).result,
            SignalResult::kExited);
}

TEST_F(ActuatorPgTest, EndedSessionAndReusedPidAreStale) {
  auto first = Victim();
  const core::Session old = Observe(first->pid());
  const int32_t old_pid = first->pid();
  first->Close();
  lockwatch::testing::WaitUntilGone(*admin_, {old_pid}, kWait);

  Actuator actuator(dsn_);
  // The old identity: nothing with that pid and backend_start exists any more.
  SignalOutcome out = SignalOk(actuator, Request(Identity(old, false, false), SignalKind::kTerminate));
  EXPECT_EQ(out.result, SignalResult::kStale) << out.message;

  // New sessions: the postmaster may hand out the old pid again. Whatever pid a new session has, an identity
  // naming that pid with the old backend_start never matches.
  std::vector<std::unique_ptr<PgSession>> fresh;
  for (int i = 0; i < 3; ++i) fresh.push_back(Victim());
  for (const auto& s : fresh) {
    core::VictimIdentity v = Identity(old, false, false);
    v.pid = s->pid();
    out = SignalOk(actuator, Request(v, SignalKind::kTerminate));
    EXPECT_EQ(out.result, SignalResult::kStale) << "pid " << s->pid() << ": " << out.message;
    EXPECT_TRUE(Alive(s->pid()));
    EXPECT_EQ(s->ExecScalar("SELECT 1"), std::optional<std::string>("1"));
  }
}

TEST_F(ActuatorPgTest, NewTransactionOrStateMakesAnIdentityCarryingThemStale) {
  auto victim = Victim();
  victim->Exec("BEGIN; SELECT 1");
  WaitForState(victim->pid(), "idle in transaction");
  const core::Session before = Observe(victim->pid());
  // Committed and began another transaction: same backend, new xact_start.
  std::this_thread::sleep_for(milliseconds(2));
  victim->Exec("COMMIT; BEGIN; SELECT 2");
  WaitForState(victim->pid(), "idle in transaction");

  Actuator actuator(dsn_);
  SignalOutcome out = SignalOk(actuator, Request(Identity(before, true, false), SignalKind::kTerminate));
  EXPECT_EQ(out.result, SignalResult::kStale) << out.message;
  out = SignalOk(actuator, Request(Identity(before, false, true), SignalKind::kTerminate));
  EXPECT_EQ(out.result, SignalResult::kStale) << out.message;
  EXPECT_TRUE(Alive(victim->pid()));
  EXPECT_EQ(victim->ExecScalar("SELECT 3"), std::optional<std::string>("3"));

  // Without xact_start the identity (pid, backend_start) still names the same backend.
  const core::Session after = Observe(victim->pid());
  EXPECT_EQ(after.backend_start, before.backend_start);
  out = SignalOk(actuator, Request(Identity(before, false, false), SignalKind::kCancel));
  EXPECT_EQ(out.result, SignalResult::kSignalled) << out.message;
}

TEST_F(ActuatorPgTest, SuperuserVictimIsRefusedUnlessTheRequestAllowsIt) {
  auto victim = Victim("postgres");
  victim->Exec("BEGIN; SELECT 1");
  WaitForState(victim->pid(), "idle in transaction");
  const core::Session seen = Observe(victim->pid());
  EXPECT_EQ(seen.superuser, std::optional<bool>(true));

  Actuator actuator(dsn_);
  for (SignalKind kind : {SignalKind::kCancel, SignalKind::kTerminate}) {
    SCOPED_TRACE(SignalKindName(kind));
    const SignalOutcome out = SignalOk(actuator, Request(Identity(seen, true, true), kind));
    EXPECT_EQ(out.result, SignalResult::kRefused) << out.message;
    EXPECT_NE(out.message.find("superuser"), std::string::npos) << out.message;
    EXPECT_TRUE(Alive(seen.pid));
  }
  SignalRequest allowed = Request(Identity(seen, true, true), SignalKind::kTerminate);
  allowed.allow_superuser = true;
  EXPECT_EQ(SignalOk(actuator, allowed).result, SignalResult::kExited);
  EXPECT_FALSE(Alive(seen.pid));
}

TEST_F(ActuatorPgTest, LockwatchSessionsAndOtherBackendTypesAreRefused) {
  Actuator actuator(dsn_);
  ASSERT_TRUE(actuator.Connect().ok());
  Collector collector(dsn_);
  ASSERT_TRUE(collector.Connect().ok());
  core::Result<core::Snapshot> snap = collector.Poll();
  ASSERT_TRUE(snap.ok()) << snap.status().message();

  // The collector does not list its own backend; the actuator's session and every other backend are there.
  std::vector<core::Session> targets;
  for (const core::Session& s : snap.value().sessions) {
    if (s.application_name == "lockwatch-actuator" || s.backend_type == "checkpointer" ||
        s.backend_type == "background writer" || s.backend_type == "walwriter") {
      targets.push_back(s);
    }
  }
  ASSERT_GE(targets.size(), 2u);
  bool saw_actuator = false;
  for (const core::Session& s : targets) {
    SCOPED_TRACE(s.backend_type + " " + s.application_name);
    saw_actuator = saw_actuator || s.application_name == "lockwatch-actuator";
    for (bool allow : {false, true}) {
      SignalRequest request = Request(Identity(s, false, false), SignalKind::kTerminate);
      request.allow_superuser = allow;
      request.allow_autovacuum = allow;
      const SignalOutcome out = SignalOk(actuator, request);
      EXPECT_EQ(out.result, SignalResult::kRefused) << out.message;
      EXPECT_TRUE(Alive(s.pid));
    }
  }
  EXPECT_TRUE(saw_actuator);
  EXPECT_TRUE(actuator.connected());

  // Another lockwatch process's session (the collector, application_name "lockwatch") is never a victim.
  const int32_t collector_pid = snap.value().own_pid;
  const std::optional<std::string> start = admin_->ExecScalar(
      "SELECT (extract(epoch FROM backend_start) * 1000000)::int8 FROM pg_stat_activity WHERE pid = " +
      std::to_string(collector_pid));
  ASSERT_TRUE(start.has_value());
  core::VictimIdentity v;
  v.pid = collector_pid;
  v.backend_start = std::stoll(*start);
  SignalRequest request = Request(v, SignalKind::kTerminate);
  request.allow_superuser = true;
  const SignalOutcome out = SignalOk(actuator, request);
  EXPECT_EQ(out.result, SignalResult::kRefused) << out.message;
  EXPECT_NE(out.message.find("lockwatch"), std::string::npos) << out.message;
  EXPECT_TRUE(collector.Poll().ok());
}

// Least privilege: pg_read_all_stats (via pg_monitor) to check the identity, pg_signal_backend to signal.
// Each missing grant is "permission denied" (never "stale"), and nothing is signalled.
TEST_F(ActuatorPgTest, ActorRoleNeedsPgMonitorAndPgSignalBackend) {
  auto victim = Victim();
  victim->Exec("BEGIN; SELECT 1");
  WaitForState(victim->pid(), "idle in transaction");
  const core::Session seen = Observe(victim->pid());

  struct Step {
    const char* grants;  // granted to the actor before the step
    SignalResult want;
    const char* message_has;
  };
  const std::vector<Step> steps = {
      {"", SignalResult::kPermissionDenied, "pg_read_all_stats"},
      {"pg_monitor", SignalResult::kPermissionDenied, "42501"},
      {"pg_signal_backend", SignalResult::kExited, ""},
  };
  Actuator actuator(AsRole(dsn_, kActorRole));
  for (const Step& step : steps) {
    SCOPED_TRACE(std::string("after granting '") + step.grants + "'");
    if (*step.grants != '\0') {
      admin_->Exec(std::string("GRANT ") + step.grants + " TO " + kActorRole);
      actuator.Disconnect();  // role membership is read at connect (cached per session)
    }
    for (SignalKind kind : {SignalKind::kCancel, SignalKind::kTerminate}) {
      if (step.want == SignalResult::kExited && kind == SignalKind::kCancel) continue;
      SCOPED_TRACE(SignalKindName(kind));
      const SignalOutcome out = SignalOk(actuator, Request(Identity(seen, true, false), kind));
      EXPECT_EQ(out.result, step.want) << out.message;
      EXPECT_NE(out.message.find(step.message_has), std::string::npos) << out.message;
      EXPECT_EQ(Alive(seen.pid), step.want != SignalResult::kExited);
    }
    EXPECT_TRUE(actuator.connected());  // a denial is an answer, not a broken session
  }
  admin_->Exec(std::string("REVOKE pg_monitor, pg_signal_backend FROM ") + kActorRole);
}

TEST_F(ActuatorPgTest, DisconnectsWhenAskedAndReconnectsOnTheNextSignal) {
  Actuator actuator(dsn_);
  ASSERT_TRUE(actuator.Connect().ok());
  EXPECT_GE(actuator.server_version_num(), 150000);
  const std::string count_sql =
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lockwatch-actuator'";
  EXPECT_EQ(admin_->ExecScalar(count_sql), std::optional<std::string>("1"));
  actuator.Disconnect();
  EXPECT_FALSE(actuator.connected());
  lockwatch::testing::WaitUntilTrue(*admin_, "SELECT (" + count_sql + ") = 0", "actuator session gone",
                                    kWait);

  core::VictimIdentity v;
  v.pid = admin_->pid();
  v.backend_start = 0;  // 1970: never matches
  const SignalOutcome out = SignalOk(actuator, Request(v, SignalKind::kCancel));
  EXPECT_EQ(out.result, SignalResult::kStale) << out.message;
  EXPECT_TRUE(actuator.connected());
}

// lock_timeout: a catalog locked by DDL makes the statement fail fast instead of queueing behind it.
TEST_F(ActuatorPgTest, NeverQueuesBehindALockedCatalog) {
  Actuator actuator(dsn_);
  ASSERT_TRUE(actuator.Connect().ok());
  auto locker = std::make_unique<PgSession>(dsn_, "actuator-test-locker");
  locker->Exec("BEGIN; LOCK TABLE pg_catalog.pg_authid IN ACCESS EXCLUSIVE MODE");
  core::VictimIdentity v;
  v.pid = admin_->pid();
  v.backend_start = 0;
  const auto start = std::chrono::steady_clock::now();
  core::Result<SignalOutcome> r = actuator.Signal(Request(v, SignalKind::kCancel));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  locker->Exec("ROLLBACK");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value().result, SignalResult::kError) << r.value().message;
  EXPECT_NE(r.value().message.find("55P03"), std::string::npos) << r.value().message;
  EXPECT_LT(seconds, 2.0);
  // The session survives a lock timeout and works once the catalog is free.
  EXPECT_EQ(SignalOk(actuator, Request(v, SignalKind::kCancel)).result, SignalResult::kStale);
}

}  // namespace
}  // namespace lockwatch::pg
