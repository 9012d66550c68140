#include "agent/hooks/payloads.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/hooks/hook_config.h"

namespace lockwatch::hooks {
namespace {

using nlohmann::json;

constexpr core::TimestampUs kSec = 1000000;
constexpr core::TimestampUs kT0 = 1795614300LL * kSec;  // 2026-11-25T13:45:00Z

const char* kSecretQuery = "UPDATE accounts SET note = 'hunter2-secret' WHERE id = 424242";

core::IncidentEvent SampleIncident(core::IncidentEventKind kind) {
  core::IncidentEvent e;
  e.kind = kind;
  core::Incident& in = e.incident;
  in.id = "main-20261125T134500Z";
  in.target = "main";
  in.started_at = kT0;
  in.last_over_at = kT0 + 90 * kSec;
  if (kind == core::IncidentEventKind::kResolved) in.ended_at = kT0 + 125 * kSec;
  in.trigger = "lock wait 7.2 s > 5 s";
  in.peak_blocked_sessions = 12;
  in.peak_depth = 4;
  in.peak_wait_seconds = 31.5;
  in.peak_roots = 1;
  in.observations = 9;
  core::IncidentRoot root;
  root.pid = 4242;
  root.usename = "app";
  root.application_name = "billing";
  root.client_addr = "10.0.0.7";
  root.state = "idle in transaction";
  root.xact_start = kT0 - 60 * kSec;
  root.classification = core::RootClass::kIdleInTransaction;
  root.query = kSecretQuery;
  root.first_seen_at = kT0;
  root.peak_blocked_sessions = 12;
  in.roots.push_back(root);
  return e;
}

core::PlannedAction SampleAction() {
  core::PlannedAction a;
  a.target = "main";
  a.rule = "idle_blockers";
  a.action = core::ActionKind::kTerminate;
  a.victim.pid = 4242;
  a.victim.backend_start = kT0 - 3600 * kSec;
  a.victim.xact_start = kT0 - 60 * kSec;
  a.role = "root";
  a.blocked_direct = 3;
  a.blocked_total = 12;
  a.reason = "idle in transaction for 60 s > 30 s and blocking 12 sessions";
  a.decided_at = kT0;
  return a;
}

TEST(EventKindTest, NamesRoundTrip) {
  const std::vector<std::pair<EventKind, std::string>> cases = {
      {EventKind::kIncidentOpened, "incident.opened"},     {EventKind::kIncidentUpdated, "incident.updated"},
      {EventKind::kIncidentResolved, "incident.resolved"}, {EventKind::kActionPlanned, "action.planned"},
      {EventKind::kActionExecuted, "action.executed"},     {EventKind::kActionFailed, "action.failed"},
  };
  for (const auto& [kind, name] : cases) {
    EXPECT_EQ(EventKindName(kind), name);
    ASSERT_TRUE(ParseEventKind(name).has_value()) << name;
    EXPECT_EQ(*ParseEventKind(name), kind);
  }
  EXPECT_FALSE(ParseEventKind("incident").has_value());
  EXPECT_FALSE(ParseEventKind("Incident.Opened").has_value());
}

TEST(IncidentEventTest, EnvelopeAndIncidentObjectFollowTheSchema) {
  const core::IncidentEvent in = SampleIncident(core::IncidentEventKind::kOpened);
  const Event e = MakeIncidentEvent(in, kT0 + kSec, forensics::QueryTextMode::kNormalize);
  EXPECT_EQ(e.kind, EventKind::kIncidentOpened);
  EXPECT_EQ(e.target, "main");
  EXPECT_EQ(e.incident_id, "main-20261125T134500Z");
  const json& p = e.payload;
  EXPECT_EQ(p.at("schema_version"), 1);
  EXPECT_EQ(p.at("event"), "incident.opened");
  EXPECT_EQ(p.at("target"), "main");
  EXPECT_EQ(p.at("at"), "2026-11-25T13:45:01.000000Z");
  EXPECT_EQ(p.at("query_text"), "normalize");
  EXPECT_EQ(p.at("summary"), e.summary);
  EXPECT_FALSE(p.contains("action"));
  const json& inc = p.at("incident");
  EXPECT_EQ(inc.at("id"), "main-20261125T134500Z");
  EXPECT_EQ(inc.at("started_at"), "2026-11-25T13:45:00.000000Z");
  EXPECT_TRUE(inc.at("ended_at").is_null());
  EXPECT_EQ(inc.at("trigger"), "lock wait 7.2 s > 5 s");
  EXPECT_EQ(inc.at("peak_blocked_sessions"), 12);
  EXPECT_EQ(inc.at("peak_depth"), 4);
  EXPECT_EQ(inc.at("observations"), 9);
  ASSERT_EQ(inc.at("roots").size(), 1U);
  const json& root = inc.at("roots")[0];
  EXPECT_EQ(root.at("pid"), 4242);
  EXPECT_EQ(root.at("classification"), "idle_in_transaction");
  EXPECT_EQ(root.at("usename"), "app");
}

// Two findings as core::Explain returns them: a server-wide one first, then the one about root 4242.
std::vector<core::Explanation> SampleExplanations() {
  core::Explanation server;
  server.kind = core::ExplanationKind::kRelationExtensionWaits;
  server.pids = {7001, 7002, 7003};
  server.situation = "3 sessions wait to extend relation public.events.";
  server.remedy = "Batch the inserts.";
  core::Explanation root;
  root.kind = core::ExplanationKind::kIdleInTransactionHolder;
  root.root = core::NodeRef{4242, ""};
  root.situation = "pid 4242 is idle in transaction for 1m00s and blocks 12 sessions.";
  root.remedy = "SELECT pg_terminate_backend(4242);";
  return {server, root};
}

TEST(IncidentEventTest, ExplanationsTravelWithTheEventAndLeadTheSummary) {
  const std::vector<core::Explanation> findings = SampleExplanations();
  for (core::IncidentEventKind kind : {core::IncidentEventKind::kOpened, core::IncidentEventKind::kUpdated}) {
    const Event e =
        MakeIncidentEvent(SampleIncident(kind), kT0, forensics::QueryTextMode::kNormalize, findings);
    const json& list = e.payload.at("explanations");
    ASSERT_EQ(list.size(), 2U);
    EXPECT_EQ(list[0].at("kind"), "relation_extension_waits");
    EXPECT_EQ(list[1].at("kind"), "idle_in_transaction_holder");
    EXPECT_EQ(list[1].at("root_pid"), 4242);
    EXPECT_TRUE(list[0].at("root_pid").is_null());
    EXPECT_EQ(list[1].at("remedy"), "SELECT pg_terminate_backend(4242);");
    // The summary leads with the finding about the incident's root, not the first one in the list.
    EXPECT_NE(e.summary.find("pid 4242 is idle in transaction for 1m00s and blocks 12 sessions. Remedy: "
                             "SELECT pg_terminate_backend(4242);"),
              std::string::npos)
        << e.summary;
    EXPECT_EQ(e.summary.find("extend relation"), std::string::npos) << e.summary;
    EXPECT_EQ(e.payload.at("summary"), e.summary);
  }
}

TEST(IncidentEventTest, WithoutAFindingAboutTheRootTheSummaryTakesTheFirstFinding) {
  std::vector<core::Explanation> findings = SampleExplanations();
  findings.pop_back();
  const Event e = MakeIncidentEvent(SampleIncident(core::IncidentEventKind::kOpened), kT0,
                                    forensics::QueryTextMode::kNormalize, findings);
  EXPECT_NE(e.summary.find("3 sessions wait to extend relation public.events. Remedy: Batch the inserts."),
            std::string::npos)
      << e.summary;
}

TEST(IncidentEventTest, ResolvedEventsAndEventsWithoutFindingsKeepThePlainSummary) {
  const Event plain = MakeIncidentEvent(SampleIncident(core::IncidentEventKind::kResolved), kT0,
                                        forensics::QueryTextMode::kNormalize);
  const Event resolved = MakeIncidentEvent(SampleIncident(core::IncidentEventKind::kResolved), kT0,
                                           forensics::QueryTextMode::kNormalize, SampleExplanations());
  EXPECT_EQ(resolved.summary, plain.summary);
  EXPECT_EQ(resolved.summary.find("Remedy"), std::string::npos);
  EXPECT_EQ(resolved.payload.at("explanations").size(), 2U);
  EXPECT_TRUE(plain.payload.at("explanations").is_array());
  EXPECT_TRUE(plain.payload.at("explanations").empty());
}

TEST(IncidentEventTest, SummaryNamesTheIncidentAndItsPeaks) {
  const std::vector<std::pair<core::IncidentEventKind, std::string>> cases = {
      {core::IncidentEventKind::kOpened, "opened: lock wait 7.2 s > 5 s"},
      {core::IncidentEventKind::kUpdated, "worsened"},
      {core::IncidentEventKind::kResolved, "resolved after 2m 5s"},
  };
  for (const auto& [kind, phrase] : cases) {
    const Event e = MakeIncidentEvent(SampleIncident(kind), kT0, forensics::QueryTextMode::kKeep);
    EXPECT_NE(e.summary.find("[main] lock incident main-20261125T134500Z"), std::string::npos) << e.summary;
    EXPECT_NE(e.summary.find(phrase), std::string::npos) << e.summary;
    EXPECT_NE(e.summary.find("12 sessions blocked"), std::string::npos) << e.summary;
    EXPECT_NE(e.summary.find("root pid 4242 (idle_in_transaction)"), std::string::npos) << e.summary;
    // Even with query text kept, the one-line summary (sent to chat rooms) carries no query or user.
    EXPECT_EQ(e.summary.find("hunter2"), std::string::npos);
    EXPECT_EQ(e.summary.find("app"), std::string::npos);
  }
}

TEST(IncidentEventTest, QueryTextModesControlWhatThePayloadKeeps) {
  struct Case {
    forensics::QueryTextMode mode;
    bool literal_present;
    bool text_present;
  };
  const std::vector<Case> cases = {
      {forensics::QueryTextMode::kKeep, true, true},
      {forensics::QueryTextMode::kNormalize, false, true},
      {forensics::QueryTextMode::kDrop, false, false},
  };
  for (const Case& c : cases) {
    const Event e = MakeIncidentEvent(SampleIncident(core::IncidentEventKind::kOpened), kT0, c.mode);
    const std::string text = Serialize(e.payload);
    SCOPED_TRACE(forensics::QueryTextModeName(c.mode));
    EXPECT_EQ(text.find("hunter2-secret") != std::string::npos, c.literal_present) << text;
    EXPECT_EQ(text.find("424242") != std::string::npos, c.literal_present) << text;
    EXPECT_EQ(text.find("UPDATE accounts") != std::string::npos, c.text_present) << text;
    const json& root = e.payload.at("incident").at("roots")[0];
    EXPECT_FALSE(root.at("query_fingerprint").get<std::string>().empty());
  }
}

TEST(IncidentEventTest, DefaultHooksModeIsNormalize) {
  EXPECT_EQ(HooksConfig{}.query_text, forensics::QueryTextMode::kNormalize);
}

TEST(ActionEventTest, PlannedCarriesTheDecisionAndNoResult) {
  const Event e = MakeActionEvent(EventKind::kActionPlanned, SampleAction(), true, std::nullopt, kT0);
  EXPECT_EQ(e.pid, 4242);
  EXPECT_EQ(e.action, "terminate");
  ASSERT_TRUE(e.dry_run.has_value());
  EXPECT_TRUE(*e.dry_run);
  const json& p = e.payload;
  EXPECT_EQ(p.at("schema_version"), 1);
  EXPECT_EQ(p.at("event"), "action.planned");
  EXPECT_EQ(p.at("target"), "main");
  EXPECT_FALSE(p.contains("incident"));
  const json& a = p.at("action");
  EXPECT_EQ(a.at("rule"), "idle_blockers");
  EXPECT_EQ(a.at("action"), "terminate");
  EXPECT_EQ(a.at("dry_run"), true);
  EXPECT_EQ(a.at("victim").at("pid"), 4242);
  EXPECT_EQ(a.at("victim").at("backend_start"), "2026-11-25T12:45:00.000000Z");
  EXPECT_EQ(a.at("victim").at("xact_start"), "2026-11-25T13:44:00.000000Z");
  EXPECT_TRUE(a.at("victim").at("state_change").is_null());
  EXPECT_EQ(a.at("role"), "root");
  EXPECT_EQ(a.at("blocked_direct"), 3);
  EXPECT_EQ(a.at("blocked_total"), 12);
  EXPECT_EQ(a.at("decided_at"), "2026-11-25T13:45:00.000000Z");
  EXPECT_TRUE(a.at("result").is_null());
  EXPECT_TRUE(a.at("exited").is_null());
  EXPECT_EQ(e.summary,
            "[main] dry run: planned terminate pid 4242 (root blocking 12 sessions) by rule idle_blockers");
}

TEST(ActionEventTest, ExecutedAndFailedCarryTheOutcome) {
  const Event done = MakeActionEvent(EventKind::kActionExecuted, SampleAction(), false,
                                     ActionOutcome{"signalled", "backend exited", true}, kT0);
  EXPECT_EQ(done.payload.at("event"), "action.executed");
  EXPECT_EQ(done.payload.at("action").at("result"), "signalled");
  EXPECT_EQ(done.payload.at("action").at("exited"), true);
  EXPECT_EQ(
      done.summary,
      "[main] executed terminate pid 4242 (root blocking 12 sessions) by rule idle_blockers: signalled");

  const Event failed = MakeActionEvent(
      EventKind::kActionFailed, SampleAction(), false,
      ActionOutcome{"permission_denied", "must be a member of pg_signal_backend", std::nullopt}, kT0);
  EXPECT_EQ(failed.payload.at("action").at("result"), "permission_denied");
  EXPECT_EQ(failed.payload.at("action").at("message"), "must be a member of pg_signal_backend");
  EXPECT_TRUE(failed.payload.at("action").at("exited").is_null());
  EXPECT_NE(failed.summary.find("failed to terminate pid 4242"), std::string::npos) << failed.summary;
  EXPECT_NE(failed.summary.find("permission_denied (must be a member"), std::string::npos) << failed.summary;
}

TEST(ActionEventTest, ManualActionHasNullRule) {
  core::PlannedAction a = SampleAction();
  a.rule.clear();
  const Event e = MakeActionEvent(EventKind::kActionPlanned, a, false, std::nullopt, kT0);
  EXPECT_TRUE(e.payload.at("action").at("rule").is_null());
  EXPECT_EQ(e.summary.find("by rule"), std::string::npos);
}

TEST(ChatPayloadTest, IsTheSummaryAsText) {
  const Event e = MakeIncidentEvent(SampleIncident(core::IncidentEventKind::kOpened), kT0,
                                    forensics::QueryTextMode::kKeep);
  const json chat = ChatPayload(e);
  EXPECT_EQ(chat, json({{"text", e.summary}}));
}

TEST(EventEnvironmentTest, SetsOnlyTheRelevantVariables) {
  const Event inc = MakeIncidentEvent(SampleIncident(core::IncidentEventKind::kOpened), kT0,
                                      forensics::QueryTextMode::kNormalize);
  const auto env = EventEnvironment(inc);
  EXPECT_EQ(env.at("LOCKWATCH_EVENT"), "incident.opened");
  EXPECT_EQ(env.at("LOCKWATCH_TARGET"), "main");
  EXPECT_EQ(env.at("LOCKWATCH_AT"), "2026-11-25T13:45:00.000000Z");
  EXPECT_EQ(env.at("LOCKWATCH_INCIDENT_ID"), "main-20261125T134500Z");
  EXPECT_EQ(env.count("LOCKWATCH_PID"), 0U);
  EXPECT_EQ(env.count("LOCKWATCH_DRY_RUN"), 0U);

  const Event act = MakeActionEvent(EventKind::kActionPlanned, SampleAction(), false, std::nullopt, kT0);
  const auto env2 = EventEnvironment(act);
  EXPECT_EQ(env2.at("LOCKWATCH_PID"), "4242");
  EXPECT_EQ(env2.at("LOCKWATCH_ACTION"), "terminate");
  EXPECT_EQ(env2.at("LOCKWATCH_DRY_RUN"), "false");
  EXPECT_EQ(env2.count("LOCKWATCH_INCIDENT_ID"), 0U);
}

TEST(SerializeTest, InvalidUtf8InQueryTextDoesNotThrow) {
  core::IncidentEvent in = SampleIncident(core::IncidentEventKind::kOpened);
  in.incident.roots[0].query = std::string("SELECT \xff\xfe broken");
  const Event e = MakeIncidentEvent(in, kT0, forensics::QueryTextMode::kKeep);
  std::string text;
  EXPECT_NO_THROW(text = Serialize(e.payload));
  EXPECT_NE(text.find("broken"), std::string::npos);
  EXPECT_TRUE(json::accept(text));
}

Event Ev(EventKind kind, const std::string& id, core::TimestampUs at) {
  Event e;
  e.kind = kind;
  e.incident_id = id;
  e.at = at;
  return e;
}

TEST(IncidentUpdateLimiterTest, Table) {
  struct Step {
    EventKind kind;
    std::string id;
    core::TimestampUs at;
    bool allowed;
  };
  const std::vector<Step> steps = {
      {EventKind::kIncidentOpened, "a", 0, true},
      {EventKind::kIncidentUpdated, "a", 10 * kSec, false},  // too soon after opened
      {EventKind::kIncidentUpdated, "a", 59 * kSec, false},  // still within the interval
      {EventKind::kIncidentUpdated, "a", 60 * kSec, true},   // interval reached (inclusive)
      {EventKind::kIncidentUpdated, "a", 61 * kSec, false},  // clock restarts at the last delivered one
      {EventKind::kIncidentOpened, "b", 61 * kSec, true},    // incidents are limited independently
      {EventKind::kIncidentUpdated, "b", 62 * kSec, false},
      {EventKind::kIncidentUpdated, "a", 120 * kSec, true},
      {EventKind::kActionPlanned, "", 120 * kSec, true},      // not rate limited
      {EventKind::kIncidentResolved, "a", 121 * kSec, true},  // resolved always passes
      {EventKind::kIncidentResolved, "a", 121 * kSec, true},
      {EventKind::kIncidentUpdated, "c", 130 * kSec, true},  // never seen opened: passes, starts the clock
      {EventKind::kIncidentUpdated, "c", 131 * kSec, false},
  };
  IncidentUpdateLimiter limiter(60 * kSec);
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    EXPECT_EQ(limiter.Allow(Ev(s.kind, s.id, s.at)), s.allowed) << "step " << i;
  }
}

TEST(IncidentUpdateLimiterTest, ZeroIntervalPassesEverything) {
  IncidentUpdateLimiter limiter(0);
  EXPECT_TRUE(limiter.Allow(Ev(EventKind::kIncidentOpened, "a", 5)));
  EXPECT_TRUE(limiter.Allow(Ev(EventKind::kIncidentUpdated, "a", 5)));
  EXPECT_TRUE(limiter.Allow(Ev(EventKind::kIncidentUpdated, "a", 5)));
}

}  // namespace
}  // namespace lockwatch::hooks
