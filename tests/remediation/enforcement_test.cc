#include "agent/core/enforcement.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lockwatch::core {
namespace {

constexpr TimestampUs kT0 = 1'700'000'000'000'000;

TimestampUs At(double seconds) { return kT0 + static_cast<TimestampUs>(seconds * 1e6); }

PlannedAction Plan(int32_t pid, const std::string& rule = "r", ActionKind action = ActionKind::kTerminate,
                   double grace_seconds = 0) {
  PlannedAction p;
  p.target = "main";
  p.rule = rule;
  p.action = action;
  p.victim.pid = pid;
  p.victim.backend_start = kT0 - 1'000'000 * static_cast<TimestampUs>(pid);
  p.grace_seconds = grace_seconds;
  p.role = "root";
  return p;
}

// Options with every brake out of the way; each test turns on the one it is about.
EnforcementOptions Loose(bool enforce = false) {
  EnforcementOptions o;
  o.enforce = enforce;
  o.settle_after_action_seconds = 0;
  o.global_max_per_minute = 1000;
  o.rule_max_per_minute = 1000;
  o.session_cooldown_seconds = 0;
  o.breaker_failures = 3;
  o.breaker_open_seconds = 300;
  return o;
}

// The pid acted on, or 0; and "pid:reason" for each skip.
struct Summary {
  int32_t acted = 0;
  std::vector<std::string> skips;
};

Summary Summarize(const GateDecision& d) {
  Summary s;
  if (d.act.has_value()) s.acted = d.act->plan.victim.pid;
  for (const GateSkip& k : d.skipped) s.skips.push_back(std::to_string(k.plan.victim.pid) + ":" + k.reason);
  return s;
}

TEST(EnforcementGateTest, DefaultsMatchTheDocumentedSafeValues) {
  const EnforcementOptions o;
  EXPECT_FALSE(o.enforce);
  EXPECT_EQ(o.settle_after_action_seconds, 5);
  EXPECT_EQ(o.global_max_per_minute, 6);
  EXPECT_EQ(o.rule_max_per_minute, 3);
  EXPECT_EQ(o.session_cooldown_seconds, 60);
  EXPECT_EQ(o.breaker_failures, 3);
  EXPECT_EQ(o.breaker_open_seconds, 300);
}

TEST(EnforcementGateTest, OneVictimAtATimeTheFirstCandidateWins) {
  EnforcementGate gate(Loose());
  const Summary s = Summarize(gate.Decide({Plan(10), Plan(11), Plan(12)}, At(0), false));
  EXPECT_EQ(s.acted, 10);
  EXPECT_EQ(s.skips, (std::vector<std::string>{"11:one_at_a_time", "12:one_at_a_time"}));
}

TEST(EnforcementGateTest, CandidatesWithoutSignalAreReportedAndNeverLimited) {
  EnforcementGate gate(Loose());
  const GateDecision d =
      gate.Decide({Plan(10, "r", ActionKind::kLog), Plan(11)}, At(0), /*kill_switch=*/true);
  ASSERT_EQ(d.logged.size(), 1U);
  EXPECT_EQ(d.logged[0].victim.pid, 10);
  EXPECT_FALSE(d.act.has_value());
  EXPECT_EQ(Summarize(d).skips, (std::vector<std::string>{"11:kill_switch"}));
}

TEST(EnforcementGateTest, DryRunActionIsDoneAtOnceAndMarkedDryRun) {
  EnforcementGate gate(Loose(/*enforce=*/false));
  const GateDecision d = gate.Decide({Plan(10)}, At(0), false);
  ASSERT_TRUE(d.act.has_value());
  EXPECT_TRUE(d.act->dry_run);
  EXPECT_EQ(d.act->signal, ActionKind::kTerminate);
  EXPECT_FALSE(gate.in_flight());
}

TEST(EnforcementGateTest, EnforcedActionBlocksTheTargetUntilItsResultIsRecorded) {
  EnforcementGate gate(Loose(/*enforce=*/true));
  const GateDecision d = gate.Decide({Plan(10)}, At(0), false);
  ASSERT_TRUE(d.act.has_value());
  EXPECT_FALSE(d.act->dry_run);
  EXPECT_TRUE(gate.in_flight());
  EXPECT_EQ(Summarize(gate.Decide({Plan(11)}, At(1), false)).skips,
            (std::vector<std::string>{"11:one_at_a_time"}));
  gate.Record(d.act->id, GateOutcome::kSucceeded, At(2));
  EXPECT_FALSE(gate.in_flight());
  // The snapshot the result was collected with is not a re-read; the next one is.
  EXPECT_EQ(Summarize(gate.Decide({Plan(11)}, At(2), false)).skips,
            (std::vector<std::string>{"11:settling"}));
  EXPECT_EQ(Summarize(gate.Decide({Plan(11)}, At(3), false)).acted, 11);
}

TEST(EnforcementGateTest, RecordOfAnUnknownIdIsIgnored) {
  EnforcementGate gate(Loose(/*enforce=*/true));
  const GateDecision d = gate.Decide({Plan(10)}, At(0), false);
  ASSERT_TRUE(d.act.has_value());
  gate.Record(d.act->id + 100, GateOutcome::kFailed, At(1));
  EXPECT_TRUE(gate.in_flight());
  EXPECT_EQ(gate.consecutive_failures(), 0);
}

// One scenario per row: decisions at successive times, each with fresh candidates, and what happens.
struct Step {
  double at;
  std::vector<PlannedAction> candidates;
  bool kill_switch;
  Summary expected;
};

struct GateCase {
  const char* name;
  EnforcementOptions options;
  std::vector<Step> steps;
};

EnforcementOptions With(EnforcementOptions o, void (*tweak)(EnforcementOptions*)) {
  tweak(&o);
  return o;
}

class EnforcementGateTableTest : public ::testing::TestWithParam<GateCase> {};

TEST_P(EnforcementGateTableTest, StepsDecideAsExpected) {
  const GateCase& c = GetParam();
  EnforcementGate gate(c.options);
  for (size_t i = 0; i < c.steps.size(); ++i) {
    const Step& step = c.steps[i];
    GateDecision d = gate.Decide(step.candidates, At(step.at), step.kill_switch);
    // Enforced actions succeed at once in these scenarios.
    if (d.act.has_value() && !d.act->dry_run) gate.Record(d.act->id, GateOutcome::kSucceeded, At(step.at));
    const Summary s = Summarize(d);
    EXPECT_EQ(s.acted, step.expected.acted) << c.name << " step " << i << " at " << step.at;
    EXPECT_EQ(s.skips, step.expected.skips) << c.name << " step " << i << " at " << step.at;
  }
}

std::vector<GateCase> GateCases() {
  return {
      {"settle_after_action",
       With(Loose(), [](EnforcementOptions* o) { o->settle_after_action_seconds = 5; }),
       {{0, {Plan(10)}, false, {10, {}}},
        {1, {Plan(11)}, false, {0, {"11:settling"}}},
        {4.9, {Plan(11)}, false, {0, {"11:settling"}}},
        {5, {Plan(11)}, false, {11, {}}}}},
      {"global_rate_limit_sliding_minute",
       With(Loose(), [](EnforcementOptions* o) { o->global_max_per_minute = 2; }),
       {{0, {Plan(10, "a")}, false, {10, {}}},
        {1, {Plan(11, "b")}, false, {11, {}}},
        {2, {Plan(12, "c"), Plan(13, "d")}, false, {0, {"12:rate_limited_global", "13:rate_limited_global"}}},
        {59.9, {Plan(12, "c")}, false, {0, {"12:rate_limited_global"}}},
        {60, {Plan(12, "c")}, false, {12, {}}},
        {60.5, {Plan(13, "d")}, false, {0, {"13:rate_limited_global"}}},
        {61, {Plan(13, "d")}, false, {13, {}}}}},
      {"per_rule_limit_lets_another_rule_through",
       With(Loose(), [](EnforcementOptions* o) { o->rule_max_per_minute = 1; }),
       {{0, {Plan(10, "a"), Plan(11, "b")}, false, {10, {"11:one_at_a_time"}}},
        {1, {Plan(12, "a"), Plan(11, "b")}, false, {11, {"12:rate_limited_rule"}}},
        {2, {Plan(12, "a"), Plan(13, "b")}, false, {0, {"12:rate_limited_rule", "13:rate_limited_rule"}}},
        {60, {Plan(12, "a")}, false, {12, {}}}}},
      {"per_rule_override",
       With(Loose(),
            [](EnforcementOptions* o) {
              o->rule_max_per_minute = 1;
              o->rule_max_per_minute_overrides["busy"] = 2;
            }),
       {{0, {Plan(10, "busy")}, false, {10, {}}},
        {1, {Plan(11, "busy")}, false, {11, {}}},
        {2, {Plan(12, "busy")}, false, {0, {"12:rate_limited_rule"}}}}},
      {"session_cooldown",
       With(Loose(), [](EnforcementOptions* o) { o->session_cooldown_seconds = 60; }),
       {{0, {Plan(10)}, false, {10, {}}},
        {10, {Plan(10), Plan(11)}, false, {11, {"10:cooldown"}}},
        {59, {Plan(10)}, false, {0, {"10:cooldown"}}},
        {60, {Plan(10)}, false, {10, {}}}}},
      {"kill_switch_pauses_and_consumes_nothing",
       With(Loose(), [](EnforcementOptions* o) { o->global_max_per_minute = 1; }),
       {{0, {Plan(10), Plan(11)}, true, {0, {"10:kill_switch", "11:kill_switch"}}},
        {1, {Plan(10)}, false, {10, {}}},
        {2, {Plan(11)}, true, {0, {"11:kill_switch"}}}}},
      {"enforced_success_counts_like_dry_run",
       With(Loose(/*enforce=*/true),
            [](EnforcementOptions* o) {
              o->global_max_per_minute = 2;
              o->settle_after_action_seconds = 5;
            }),
       {{0, {Plan(10), Plan(11)}, false, {10, {"11:one_at_a_time"}}},
        {3, {Plan(11)}, false, {0, {"11:settling"}}},
        {5, {Plan(11)}, false, {11, {}}},
        {10, {Plan(12)}, false, {0, {"12:rate_limited_global"}}}}},
      {"dry_run_same_scenario",
       With(Loose(/*enforce=*/false),
            [](EnforcementOptions* o) {
              o->global_max_per_minute = 2;
              o->settle_after_action_seconds = 5;
            }),
       {{0, {Plan(10), Plan(11)}, false, {10, {"11:one_at_a_time"}}},
        {3, {Plan(11)}, false, {0, {"11:settling"}}},
        {5, {Plan(11)}, false, {11, {}}},
        {10, {Plan(12)}, false, {0, {"12:rate_limited_global"}}}}},
      {"cancel_then_terminate_escalates_after_grace_when_still_blocking",
       Loose(),
       {{0, {Plan(10, "r", ActionKind::kCancelThenTerminate, 10)}, false, {10, {}}},
        {5,
         {Plan(10, "r", ActionKind::kCancelThenTerminate, 10), Plan(11)},
         false,
         {0, {"10:grace", "11:one_at_a_time"}}},
        {10,
         {Plan(10, "r", ActionKind::kCancelThenTerminate, 10), Plan(11)},
         false,
         {10, {"11:one_at_a_time"}}},
        {11, {Plan(11)}, false, {11, {}}}}},
      {"cancel_then_terminate_dropped_when_cancel_was_enough",
       Loose(),
       {{0, {Plan(10, "r", ActionKind::kCancelThenTerminate, 10)}, false, {10, {}}},
        {3, {Plan(11)}, false, {11, {"10:no_longer_blocking"}}}}},
  };
}

INSTANTIATE_TEST_SUITE_P(Scenarios, EnforcementGateTableTest, ::testing::ValuesIn(GateCases()),
                         [](const ::testing::TestParamInfo<GateCase>& param_info) {
                           return param_info.param.name;
                         });

TEST(EnforcementGateTest, CancelThenTerminateSendsCancelFirstThenTerminateAsEscalation) {
  EnforcementGate gate(Loose(/*enforce=*/true));
  const PlannedAction p = Plan(10, "r", ActionKind::kCancelThenTerminate, 2);
  GateDecision first = gate.Decide({p}, At(0), false);
  ASSERT_TRUE(first.act.has_value());
  EXPECT_EQ(first.act->signal, ActionKind::kCancel);
  EXPECT_FALSE(first.act->escalation);
  gate.Record(first.act->id, GateOutcome::kSucceeded, At(1));
  EXPECT_TRUE(gate.escalation_pending());
  EXPECT_FALSE(gate.Decide({p}, At(2), false).act.has_value());  // grace runs until 3
  GateDecision second = gate.Decide({p}, At(3), false);
  ASSERT_TRUE(second.act.has_value());
  EXPECT_EQ(second.act->signal, ActionKind::kTerminate);
  EXPECT_TRUE(second.act->escalation);
  EXPECT_FALSE(gate.escalation_pending());
}

TEST(EnforcementGateTest, FailedCancelDoesNotEscalate) {
  EnforcementGate gate(Loose(/*enforce=*/true));
  const PlannedAction p = Plan(10, "r", ActionKind::kCancelThenTerminate, 0);
  GateDecision first = gate.Decide({p}, At(0), false);
  ASSERT_TRUE(first.act.has_value());
  gate.Record(first.act->id, GateOutcome::kFailed, At(1));
  EXPECT_FALSE(gate.escalation_pending());
}

TEST(EnforcementGateTest, CircuitBreakerOpensHalfOpensAndCloses) {
  EnforcementOptions o = Loose(/*enforce=*/true);
  o.breaker_failures = 3;
  o.breaker_open_seconds = 100;
  EnforcementGate gate(o);
  int32_t pid = 10;
  auto act_and_record = [&](double at, GateOutcome outcome) {
    GateDecision d = gate.Decide({Plan(pid++)}, At(at), false);
    if (!d.act.has_value()) return false;
    gate.Record(d.act->id, outcome, At(at));
    return true;
  };
  ASSERT_TRUE(act_and_record(0, GateOutcome::kFailed));
  ASSERT_TRUE(act_and_record(1, GateOutcome::kFailed));
  EXPECT_EQ(gate.breaker_state(At(1)), BreakerState::kClosed);
  ASSERT_TRUE(act_and_record(2, GateOutcome::kPermissionDenied));
  EXPECT_EQ(gate.breaker_state(At(2)), BreakerState::kOpen);
  EXPECT_EQ(Summarize(gate.Decide({Plan(50)}, At(50), false)).skips,
            (std::vector<std::string>{"50:circuit_open"}));
  // Half-open after 100 s: one trial; its failure opens the breaker again at once.
  EXPECT_EQ(gate.breaker_state(At(102)), BreakerState::kHalfOpen);
  ASSERT_TRUE(act_and_record(102, GateOutcome::kFailed));
  EXPECT_EQ(gate.breaker_state(At(103)), BreakerState::kOpen);
  // The next trial succeeds: closed, failure count reset.
  ASSERT_TRUE(act_and_record(203, GateOutcome::kSucceeded));
  EXPECT_EQ(gate.breaker_state(At(204)), BreakerState::kClosed);
  EXPECT_EQ(gate.consecutive_failures(), 0);
}

TEST(EnforcementGateTest, SuccessResetsTheFailureStreak) {
  EnforcementGate gate(Loose(/*enforce=*/true));
  int32_t pid = 10;
  for (GateOutcome outcome : {GateOutcome::kFailed, GateOutcome::kFailed, GateOutcome::kSucceeded,
                              GateOutcome::kFailed, GateOutcome::kFailed}) {
    GateDecision d = gate.Decide({Plan(pid)}, At(pid), false);
    ASSERT_TRUE(d.act.has_value()) << pid;
    gate.Record(d.act->id, outcome, At(pid));
    ++pid;
  }
  EXPECT_EQ(gate.breaker_state(At(pid)), BreakerState::kClosed);
  EXPECT_EQ(gate.consecutive_failures(), 2);
}

TEST(EnforcementGateTest, PermissionDeniedSessionIsNotRetriedAfterCooldown) {
  EnforcementOptions o = Loose(/*enforce=*/true);
  o.session_cooldown_seconds = 10;
  EnforcementGate gate(o);
  GateDecision d = gate.Decide({Plan(10)}, At(0), false);
  ASSERT_TRUE(d.act.has_value());
  gate.Record(d.act->id, GateOutcome::kPermissionDenied, At(0));
  for (double at : {1.0, 30.0, 600.0}) {
    const auto other = static_cast<int32_t>(1000 + at);
    GateDecision again = gate.Decide({Plan(10), Plan(other)}, At(at), false);
    const Summary s = Summarize(again);
    ASSERT_FALSE(s.skips.empty()) << at;
    EXPECT_EQ(s.skips[0], "10:permission_denied_before") << at;
    EXPECT_EQ(s.acted, other) << at;  // other sessions are still acted on
    ASSERT_TRUE(again.act.has_value());
    gate.Record(again.act->id, GateOutcome::kSucceeded, At(at));
  }
  // After the retry period a single new attempt is allowed, not a loop.
  EXPECT_EQ(Summarize(gate.Decide({Plan(10)}, At(3601), false)).acted, 10);
}

TEST(EnforcementGateTest, StaleResultNeedsOnlyAReread) {
  EnforcementOptions o = Loose(/*enforce=*/true);
  o.settle_after_action_seconds = 30;
  EnforcementGate gate(o);
  GateDecision d = gate.Decide({Plan(10)}, At(0), false);
  ASSERT_TRUE(d.act.has_value());
  gate.Record(d.act->id, GateOutcome::kStale, At(1));
  EXPECT_EQ(gate.consecutive_failures(), 0);
  EXPECT_EQ(Summarize(gate.Decide({Plan(11)}, At(1), false)).skips,
            (std::vector<std::string>{"11:settling"}));
  EXPECT_EQ(Summarize(gate.Decide({Plan(11)}, At(2), false)).acted, 11);
}

TEST(EnforcementGateTest, ManyCandidatesOnlyTheAllowedNumberActed) {
  EnforcementOptions o;  // the defaults: 6 per minute, 3 per rule, 5 s settle
  EnforcementGate gate(o);
  int acted = 0;
  for (int second = 0; second < 60; ++second) {
    std::vector<PlannedAction> candidates;
    for (int32_t pid = 100; pid < 140; ++pid) candidates.push_back(Plan(pid, pid % 2 == 0 ? "a" : "b"));
    if (gate.Decide(candidates, At(second), false).act.has_value()) ++acted;
  }
  EXPECT_EQ(acted, 6);
}

}  // namespace
}  // namespace lockwatch::core
