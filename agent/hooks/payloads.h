#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/action.h"
#include "agent/core/explain.h"
#include "agent/core/incident.h"
#include "agent/core/snapshot.h"
#include "agent/forensics/query_text.h"

namespace lockwatch::hooks {

// The hook payload schema, documented field by field in agent/docs/hooks.md. Within one schema version
// fields are only ever added.
inline constexpr int kHookSchemaVersion = 1;

enum class EventKind : uint8_t {
  kIncidentOpened,
  kIncidentUpdated,
  kIncidentResolved,
  kActionPlanned,
  kActionExecuted,
  kActionFailed,
};

// "incident.opened", "incident.updated", "incident.resolved", "action.planned", "action.executed",
// "action.failed".
const char* EventKindName(EventKind kind);
std::optional<EventKind> ParseEventKind(std::string_view name);

// One event to deliver. `payload` is the complete JSON document; the other fields are the key facts,
// duplicated so exec hooks can get them as environment variables without parsing JSON.
struct Event {
  EventKind kind = EventKind::kIncidentOpened;
  std::string target;
  core::TimestampUs at = 0;
  std::string incident_id;      // incident events
  int32_t pid = 0;              // action events: the victim's pid
  std::string action;           // action events: "log", "cancel", "terminate", "cancel_then_terminate"
  std::optional<bool> dry_run;  // action events
  std::string summary;          // one human sentence (also payload["summary"])
  nlohmann::json payload;
};

// An incident event. The "incident" object is forensics::IncidentRecord's, so dumps and hooks agree;
// query text is processed by `mode` (normalised unless configured otherwise). `explanations` are the
// findings of the poll the event comes from (core::Explain): they go to the payload's "explanations" array
// (json::ExplanationJson each) and, for an opened or updated incident, the first finding about the first
// root (else the first finding) is appended to the summary. Explanation texts never carry query text.
Event MakeIncidentEvent(const core::IncidentEvent& event, core::TimestampUs at, forensics::QueryTextMode mode,
                        const std::vector<core::Explanation>& explanations = {});

// What happened to an action (executed or failed events). For planned events pass std::nullopt.
struct ActionOutcome {
  // The actuator's result word (pg::SignalResultName): "signalled", "exited", "still_running", "stale",
  // "refused", "permission_denied", "error"; or the enforcement layer's reason for not acting.
  std::string result;
  std::string message;         // human-readable detail (already free of secrets)
  std::optional<bool> exited;  // whether the backend was seen to exit, when known
};

// An action event: `kind` must be one of kActionPlanned, kActionExecuted, kActionFailed. `dry_run` tells
// whether the agent only reports actions (then "executed" means "would have executed").
Event MakeActionEvent(EventKind kind, const core::PlannedAction& action, bool dry_run,
                      const std::optional<ActionOutcome>& outcome, core::TimestampUs at);

// The JSON text of a document as sent: compact, invalid UTF-8 (possible in query text) replaced by U+FFFD
// rather than failing.
std::string Serialize(const nlohmann::json& document);

// The document a chat-format webhook posts: {"text": event.summary}.
nlohmann::json ChatPayload(const Event& event);

// The environment variables an exec hook gets for `event` (besides PATH and configured ones):
// LOCKWATCH_EVENT, LOCKWATCH_TARGET, LOCKWATCH_AT, and when relevant LOCKWATCH_INCIDENT_ID,
// LOCKWATCH_PID, LOCKWATCH_ACTION, LOCKWATCH_DRY_RUN ("true"/"false").
std::map<std::string, std::string> EventEnvironment(const Event& event);

// Limits incident.updated to one per `min_interval_us` per incident; opened and resolved always pass,
// action events are not its business and always pass. Pure: time comes from Event::at. Keeps one entry
// per open incident (removed on resolve), so memory is bounded by the number of targets. Not thread-safe.
class IncidentUpdateLimiter {
 public:
  explicit IncidentUpdateLimiter(core::TimestampUs min_interval_us) : min_interval_us_(min_interval_us) {}

  // True when `event` should be delivered; records it when so.
  bool Allow(const Event& event);

 private:
  core::TimestampUs min_interval_us_;
  std::map<std::string, core::TimestampUs> last_sent_;  // incident id -> `at` of the last delivered event
};

}  // namespace lockwatch::hooks
