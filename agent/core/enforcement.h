#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/action.h"
#include "agent/core/snapshot.h"

namespace lockwatch::core {

// The enforcement gate: pt-kill-grade brakes between the rules engine's decisions and the signal. Pure: the
// caller passes time in (the captured_at of the snapshot being evaluated, so one clock throughout).
//
// Per target, per snapshot the gate receives the candidate actions the rules engine produced (already
// filtered by its safety exclusions: protected users, superusers, own session, pure waiters) and lets at most
// ONE signal through. Everything else is skipped with a stable reason code. Dry run goes through exactly the
// same brakes (a dry-run action counts as done), so the audit of a dry run shows what enforcement would do.

// Stable skip reason codes (audit lines, metrics label `reason`).
inline constexpr const char* kSkipKillSwitch = "kill_switch";
inline constexpr const char* kSkipCircuitOpen = "circuit_open";
inline constexpr const char* kSkipOneAtATime = "one_at_a_time";  // another action of the target in progress
inline constexpr const char* kSkipSettling = "settling";         // waiting after an action, or for a re-read
inline constexpr const char* kSkipGrace = "grace";  // cancel sent; terminate only after grace_seconds
inline constexpr const char* kSkipPermissionDeniedBefore = "permission_denied_before";
inline constexpr const char* kSkipCooldown = "cooldown";
inline constexpr const char* kSkipRateLimitedGlobal = "rate_limited_global";
inline constexpr const char* kSkipRateLimitedRule = "rate_limited_rule";
inline constexpr const char* kSkipNoLongerBlocking = "no_longer_blocking";  // escalation not needed

struct EnforcementOptions {
  // Signals are sent only when true (enforcement enabled in the config AND by the command-line flag).
  // False is dry run: everything else behaves the same.
  bool enforce = false;
  // After an action's result is known, no new victim on the target until this has passed AND a snapshot
  // captured after the result was recorded is being evaluated (the re-read).
  double settle_after_action_seconds = 5;
  // Actions per sliding minute, all rules of the target together. 0 stops every action.
  int global_max_per_minute = 6;
  // Actions per sliding minute per rule, unless `rule_max_per_minute_overrides` names the rule.
  int rule_max_per_minute = 3;
  std::map<std::string, int> rule_max_per_minute_overrides;
  // No second action on the same session (pid, backend_start) within this period. The terminate step of a
  // cancel_then_terminate is part of the same action and exempt.
  double session_cooldown_seconds = 60;
  // Consecutive failures that open the circuit breaker, and how long it stays open. After that one trial
  // action is let through (half-open): success closes the breaker, failure opens it again.
  int breaker_failures = 3;
  double breaker_open_seconds = 300;
  // A session whose signal was refused with "permission denied" is not tried again for this long.
  double permission_denied_retry_seconds = 3600;
};

// What the caller learned about an action the gate let through.
enum class GateOutcome : uint8_t {
  kSucceeded,         // the signal reached the backend (or the dry run counted it as done)
  kStale,             // nothing sent: the session no longer matched the analysed identity
  kFailed,            // refused, error, or still running after terminate: counts towards the breaker
  kPermissionDenied,  // the server refused the signal: counts towards the breaker, session not retried
};

enum class BreakerState : uint8_t { kClosed, kOpen, kHalfOpen };
// "closed", "open", "half_open".
const char* BreakerStateName(BreakerState state);

// An action let through: `signal` is what to send now (kLog never comes out of the gate as an action:
// report-only candidates are returned in `logged`).
struct GatedAction {
  uint64_t id = 0;                       // pass to Record() with the result
  PlannedAction plan;                    // as the rules decided (action may be kCancelThenTerminate)
  ActionKind signal = ActionKind::kLog;  // kCancel or kTerminate
  bool escalation = false;               // the terminate step of a cancel_then_terminate
  bool dry_run = true;                   // when true the gate has already recorded it as succeeded
};

struct GateSkip {
  PlannedAction plan;
  ActionKind signal = ActionKind::kLog;  // the signal that would have been sent
  std::string reason;                    // one of the kSkip* codes
  std::string message;                   // detail in words
};

struct GateDecision {
  std::optional<GatedAction> act;     // at most one signal per target and evaluation
  std::vector<PlannedAction> logged;  // kLog candidates: report only, never limited
  // Every other candidate, in input order; a dropped escalation's terminate step and a waiting escalation's
  // victim come first.
  std::vector<GateSkip> skipped;
};

// Per-target gate state. Not thread-safe (one target's evaluations are sequential). Copyable for tests.
class EnforcementGate {
 public:
  explicit EnforcementGate(EnforcementOptions options) : options_(std::move(options)) {}

  // Decides what to do with `candidates` (one target, one snapshot captured at `now`). `kill_switch` true
  // pauses enforcement: every candidate is skipped. Candidates are considered in the given order (the rules
  // engine orders them most important first); the first one that passes every brake is let through.
  GateDecision Decide(const std::vector<PlannedAction>& candidates, TimestampUs now, bool kill_switch);

  // Feeds back the result of action `id` (returned by Decide in enforce mode), known at `now` (the capture
  // time of the snapshot being evaluated when the result was collected). Unknown ids are ignored.
  void Record(uint64_t id, GateOutcome outcome, TimestampUs now);

  // The breaker's state as of `now` (an open breaker whose time ran out reports kHalfOpen).
  BreakerState breaker_state(TimestampUs now) const;
  int consecutive_failures() const { return consecutive_failures_; }
  // True while an action let through in enforce mode has no recorded result.
  bool in_flight() const { return in_flight_.has_value(); }
  // True while a cancel_then_terminate waits for its terminate step.
  bool escalation_pending() const { return escalation_.has_value(); }
  // The action whose terminate step is pending, or nullptr.
  const PlannedAction* escalation_plan() const { return escalation_ ? &escalation_->plan : nullptr; }
  const EnforcementOptions& options() const { return options_; }

 private:
  struct SessionKey {
    int32_t pid = 0;
    TimestampUs backend_start = 0;
    friend bool operator<(const SessionKey& a, const SessionKey& b) {
      return a.pid != b.pid ? a.pid < b.pid : a.backend_start < b.backend_start;
    }
  };
  struct Issued {
    uint64_t id = 0;
    PlannedAction plan;
    ActionKind signal = ActionKind::kLog;
    bool escalation = false;
  };
  struct Escalation {
    PlannedAction plan;
    TimestampUs cancelled_at = 0;  // when the cancel's result was recorded
    TimestampUs due = 0;
  };

  static SessionKey KeyOf(const PlannedAction& plan);
  int RuleLimit(const std::string& rule) const;
  void Prune(TimestampUs now);
  // The first brake `plan` hits as a fresh victim, or "" when it may be acted on.
  std::string CandidateBrake(const PlannedAction& plan, TimestampUs now, std::string* message) const;
  // The brakes every signal is subject to (rate limits), or "".
  std::string RateBrake(const PlannedAction& plan, TimestampUs now, std::string* message) const;
  GatedAction Issue(const PlannedAction& plan, ActionKind signal, bool escalation, TimestampUs now);

  EnforcementOptions options_;
  uint64_t next_id_ = 1;
  std::optional<Issued> in_flight_;
  std::optional<Escalation> escalation_;
  // Settle: no new victim before `settle_until_`, and only from a snapshot captured after `reread_after_`.
  TimestampUs settle_until_ = 0;
  std::optional<TimestampUs> reread_after_;
  std::deque<TimestampUs> global_times_;                       // issue times within the last minute
  std::map<std::string, std::deque<TimestampUs>> rule_times_;  // per rule
  std::map<SessionKey, TimestampUs> cooldown_until_;
  std::map<SessionKey, TimestampUs> denied_until_;
  int consecutive_failures_ = 0;
  TimestampUs breaker_open_until_ = 0;
  bool breaker_tripped_ = false;  // opened at least once and not closed since
};

}  // namespace lockwatch::core
