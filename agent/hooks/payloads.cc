#include "agent/hooks/payloads.h"

#include <cstdio>
#include <utility>

#include "agent/forensics/dump_records.h"
#include "agent/json/iso_time.h"
#include "agent/json/tree_document.h"

namespace lockwatch::hooks {
namespace {

using nlohmann::json;

constexpr std::pair<EventKind, const char*> kEventNames[] = {
    {EventKind::kIncidentOpened, "incident.opened"},     {EventKind::kIncidentUpdated, "incident.updated"},
    {EventKind::kIncidentResolved, "incident.resolved"}, {EventKind::kActionPlanned, "action.planned"},
    {EventKind::kActionExecuted, "action.executed"},     {EventKind::kActionFailed, "action.failed"},
};

EventKind IncidentKind(core::IncidentEventKind kind) {
  switch (kind) {
    case core::IncidentEventKind::kOpened:
      return EventKind::kIncidentOpened;
    case core::IncidentEventKind::kUpdated:
      return EventKind::kIncidentUpdated;
    case core::IncidentEventKind::kResolved:
      return EventKind::kIncidentResolved;
  }
  return EventKind::kIncidentUpdated;
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", s);
  return buf;
}

// "2m 5s", "1h 3m", "12s": how long an incident lasted, for the resolved summary.
std::string Duration(core::TimestampUs us) {
  const int64_t total = us / 1000000;
  char buf[48];
  if (total >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lldh %lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>(total % 3600 / 60));
  } else if (total >= 60) {
    std::snprintf(buf, sizeof(buf), "%lldm %llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(total));
  }
  return buf;
}

// The summary never carries query text, user or application names: it goes to chat rooms whose audience is
// wider than the agent's, whatever the query text mode.
std::string IncidentSummary(const core::IncidentEvent& event) {
  const core::Incident& in = event.incident;
  const std::string peaks = std::to_string(in.peak_blocked_sessions) + " sessions blocked, chain depth " +
                            std::to_string(in.peak_depth) + ", longest wait " + Seconds(in.peak_wait_seconds);
  std::string roots;
  if (!in.roots.empty()) {
    const core::IncidentRoot& r = in.roots.front();
    roots = r.pid != 0 ? "; root pid " + std::to_string(r.pid) : "; root prepared transaction";
    roots += std::string(" (") + core::RootClassName(r.classification) + ")";
    if (in.roots.size() > 1) roots += " and " + std::to_string(in.roots.size() - 1) + " more";
  }
  std::string head = "[" + in.target + "] lock incident " + in.id;
  switch (event.kind) {
    case core::IncidentEventKind::kOpened:
      return head + " opened: " + in.trigger + "; " + peaks + roots;
    case core::IncidentEventKind::kUpdated:
      return head + " worsened: peak " + peaks + roots;
    case core::IncidentEventKind::kResolved:
      return head + " resolved after " + Duration(in.ended_at.value_or(in.last_over_at) - in.started_at) +
             ": peak " + peaks + roots;
  }
  return head;
}

// The finding a one-line summary leads with: the first one about the incident's first root (the root with
// the largest impact), else the first server-wide finding, else none.
const core::Explanation* LeadingExplanation(const core::Incident& incident,
                                            const std::vector<core::Explanation>& explanations) {
  if (explanations.empty()) return nullptr;
  if (!incident.roots.empty()) {
    const core::IncidentRoot& r = incident.roots.front();
    for (const core::Explanation& e : explanations) {
      if (e.root && e.root->pid == r.pid && e.root->gid == r.gid) return &e;
    }
  }
  return &explanations.front();
}

std::string ActionSummary(EventKind kind, const core::PlannedAction& a, bool dry_run,
                          const std::optional<ActionOutcome>& outcome) {
  std::string what = std::string(core::ActionKindName(a.action)) + " pid " + std::to_string(a.victim.pid);
  if (!a.role.empty()) what += " (" + a.role + " blocking " + std::to_string(a.blocked_total) + " sessions)";
  if (!a.rule.empty()) what += " by rule " + a.rule;
  std::string head = "[" + a.target + "] ";
  if (dry_run) head += "dry run: ";
  switch (kind) {
    case EventKind::kActionPlanned:
      return head + "planned " + what;
    case EventKind::kActionExecuted:
      return head + "executed " + what + (outcome && !outcome->result.empty() ? ": " + outcome->result : "");
    case EventKind::kActionFailed: {
      std::string s = head + "failed to " + what;
      if (outcome && !outcome->result.empty()) s += ": " + outcome->result;
      if (outcome && !outcome->message.empty()) s += " (" + outcome->message + ")";
      return s;
    }
    default:
      return head + what;
  }
}

json Envelope(EventKind kind, const std::string& target, core::TimestampUs at, const std::string& summary) {
  return json{
      {"schema_version", kHookSchemaVersion},     {"event", EventKindName(kind)}, {"target", target},
      {"at", lockwatch::json::FormatIso8601(at)}, {"summary", summary},
  };
}

}  // namespace

const char* EventKindName(EventKind kind) {
  for (const auto& [k, name] : kEventNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

std::optional<EventKind> ParseEventKind(std::string_view name) {
  for (const auto& [k, n] : kEventNames) {
    if (name == n) return k;
  }
  return std::nullopt;
}

Event MakeIncidentEvent(const core::IncidentEvent& event, core::TimestampUs at, forensics::QueryTextMode mode,
                        const std::vector<core::Explanation>& explanations) {
  Event out;
  out.kind = IncidentKind(event.kind);
  out.target = event.incident.target;
  out.at = at;
  out.incident_id = event.incident.id;
  out.summary = IncidentSummary(event);
  if (event.kind != core::IncidentEventKind::kResolved) {
    if (const core::Explanation* lead = LeadingExplanation(event.incident, explanations)) {
      out.summary += ". " + lead->situation + " Remedy: " + lead->remedy;
    }
  }
  out.payload = Envelope(out.kind, out.target, at, out.summary);
  // The same object a dump's incident record carries.
  json record = forensics::IncidentRecord(event, at, mode);
  out.payload["incident"] = std::move(record["incident"]);
  out.payload["query_text"] = forensics::QueryTextModeName(mode);
  json findings = json::array();
  for (const core::Explanation& e : explanations) findings.push_back(lockwatch::json::ExplanationJson(e));
  out.payload["explanations"] = std::move(findings);
  return out;
}

Event MakeActionEvent(EventKind kind, const core::PlannedAction& action, bool dry_run,
                      const std::optional<ActionOutcome>& outcome, core::TimestampUs at) {
  Event out;
  out.kind = kind;
  out.target = action.target;
  out.at = at;
  out.pid = action.victim.pid;
  out.action = core::ActionKindName(action.action);
  out.dry_run = dry_run;
  out.summary = ActionSummary(kind, action, dry_run, outcome);
  out.payload = Envelope(kind, out.target, at, out.summary);
  json a{
      {"rule", action.rule.empty() ? json(nullptr) : json(action.rule)},
      {"action", out.action},
      {"dry_run", dry_run},
      {"victim",
       json{
           {"pid", action.victim.pid},
           {"backend_start", lockwatch::json::IsoOrNull(action.victim.backend_start)},
           {"xact_start", lockwatch::json::IsoOrNull(action.victim.xact_start)},
           {"state_change", lockwatch::json::IsoOrNull(action.victim.state_change)},
       }},
      {"grace_seconds", action.grace_seconds},
      {"role", action.role},
      {"blocked_direct", action.blocked_direct},
      {"blocked_total", action.blocked_total},
      {"reason", action.reason},
      {"decided_at", lockwatch::json::FormatIso8601(action.decided_at)},
      {"result", nullptr},
      {"message", nullptr},
      {"exited", nullptr},
  };
  if (outcome) {
    a["result"] = outcome->result;
    a["message"] = outcome->message;
    a["exited"] = lockwatch::json::ValueOrNull(outcome->exited);
  }
  out.payload["action"] = std::move(a);
  return out;
}

std::string Serialize(const json& document) {
  return document.dump(-1, ' ', false, json::error_handler_t::replace);
}

json ChatPayload(const Event& event) { return json{{"text", event.summary}}; }

std::map<std::string, std::string> EventEnvironment(const Event& event) {
  std::map<std::string, std::string> env{
      {"LOCKWATCH_EVENT", EventKindName(event.kind)},
      {"LOCKWATCH_TARGET", event.target},
      {"LOCKWATCH_AT", lockwatch::json::FormatIso8601(event.at)},
  };
  if (!event.incident_id.empty()) env["LOCKWATCH_INCIDENT_ID"] = event.incident_id;
  if (event.pid != 0) env["LOCKWATCH_PID"] = std::to_string(event.pid);
  if (!event.action.empty()) env["LOCKWATCH_ACTION"] = event.action;
  if (event.dry_run) env["LOCKWATCH_DRY_RUN"] = *event.dry_run ? "true" : "false";
  return env;
}

bool IncidentUpdateLimiter::Allow(const Event& event) {
  switch (event.kind) {
    case EventKind::kIncidentOpened:
      last_sent_[event.incident_id] = event.at;
      return true;
    case EventKind::kIncidentResolved:
      last_sent_.erase(event.incident_id);
      return true;
    case EventKind::kIncidentUpdated: {
      auto it = last_sent_.find(event.incident_id);
      // An update for an incident never seen opened (e.g. the opened event was filtered out upstream) is
      // delivered and starts the clock.
      if (it == last_sent_.end()) {
        last_sent_.emplace(event.incident_id, event.at);
        return true;
      }
      if (event.at - it->second < min_interval_us_) return false;
      it->second = event.at;
      return true;
    }
    default:
      return true;
  }
}

}  // namespace lockwatch::hooks
