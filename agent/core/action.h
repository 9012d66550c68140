#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/core/snapshot.h"

namespace lockwatch::core {

// Remediation decisions as data. The policy engine (rules) produces them from an analysed snapshot; the
// enforcement layer (rate limits, kill switch, audit) and the actuator (the race-free signalling statement)
// consume them. `lockwatch top` builds one by hand for the selected session.

// What to do to a session.
enum class ActionKind : uint8_t {
  kLog,                 // report only
  kCancel,              // pg_cancel_backend
  kTerminate,           // pg_terminate_backend
  kCancelThenTerminate  // cancel, then terminate after `grace_seconds` if the session still blocks
};

// "log", "cancel", "terminate", "cancel_then_terminate".
const char* ActionKindName(ActionKind kind);

// The session exactly as the analysed snapshot saw it. The actuator signals only when every set field
// still matches the live pg_stat_activity row, so a pid reused by a new backend, or a session that has
// since committed and started another transaction, is never signalled ("stale").
struct VictimIdentity {
  int32_t pid = 0;
  std::optional<TimestampUs> backend_start;  // always compared (a pid is reused only with a new start)
  // Compared when set: rules about idle-in-transaction sessions set them, so a session that committed
  // and opened a new transaction after the poll is left alone.
  std::optional<TimestampUs> xact_start;
  std::optional<TimestampUs> state_change;
};

// One decision about one session.
struct PlannedAction {
  std::string target;  // the monitored target's name
  std::string rule;    // the rule that matched ("" for a manual action from `lockwatch top`)
  ActionKind action = ActionKind::kLog;
  VictimIdentity victim;
  double grace_seconds = 0;  // kCancelThenTerminate: time between cancel and terminate
  // Facts the decision was based on, for the audit line and hooks.
  std::string role;            // "root", "amplifier", "blocker"
  int blocked_direct = 0;      // sessions waiting directly on the victim
  int blocked_total = 0;       // sessions waiting on it directly or transitively
  std::string reason;          // the rule's conditions as they matched, in words
  TimestampUs decided_at = 0;  // captured_at of the snapshot it was decided on
};

}  // namespace lockwatch::core
