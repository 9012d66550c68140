#include "agent/core/enforcement.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace lockwatch::core {
namespace {

constexpr TimestampUs kMinuteUs = 60'000'000;

TimestampUs SecondsToUs(double seconds) {
  if (!(seconds > 0)) return 0;
  return static_cast<TimestampUs>(std::llround(seconds * 1e6));
}

std::string SecondsText(TimestampUs us) {
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << static_cast<double>(us) / 1e6 << " s";
  return out.str();
}

// The signal a fresh action starts with: a cancel_then_terminate always begins with the cancel.
ActionKind FirstSignal(const PlannedAction& plan) {
  return plan.action == ActionKind::kCancelThenTerminate ? ActionKind::kCancel : plan.action;
}

void DropOlderThan(std::deque<TimestampUs>* times, TimestampUs cutoff) {
  while (!times->empty() && times->front() <= cutoff) times->pop_front();
}

}  // namespace

const char* BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

EnforcementGate::SessionKey EnforcementGate::KeyOf(const PlannedAction& plan) {
  return SessionKey{plan.victim.pid, plan.victim.backend_start.value_or(0)};
}

int EnforcementGate::RuleLimit(const std::string& rule) const {
  auto it = options_.rule_max_per_minute_overrides.find(rule);
  return it != options_.rule_max_per_minute_overrides.end() ? it->second : options_.rule_max_per_minute;
}

BreakerState EnforcementGate::breaker_state(TimestampUs now) const {
  if (!breaker_tripped_) return BreakerState::kClosed;
  return now < breaker_open_until_ ? BreakerState::kOpen : BreakerState::kHalfOpen;
}

void EnforcementGate::Prune(TimestampUs now) {
  // A sliding minute: an action issued at t stops counting at t + 60 s.
  const TimestampUs cutoff = now - kMinuteUs;
  DropOlderThan(&global_times_, cutoff);
  for (auto it = rule_times_.begin(); it != rule_times_.end();) {
    DropOlderThan(&it->second, cutoff);
    it = it->second.empty() ? rule_times_.erase(it) : std::next(it);
  }
  for (auto* table : {&cooldown_until_, &denied_until_}) {
    for (auto it = table->begin(); it != table->end();) {
      it = it->second <= now ? table->erase(it) : std::next(it);
    }
  }
}

std::string EnforcementGate::RateBrake(const PlannedAction& plan, TimestampUs now,
                                       std::string* message) const {
  (void)now;
  const int global_count = static_cast<int>(global_times_.size());
  if (global_count >= options_.global_max_per_minute) {
    *message = std::to_string(global_count) + " actions on this target in the last minute (limit " +
               std::to_string(options_.global_max_per_minute) + ")";
    return kSkipRateLimitedGlobal;
  }
  auto it = rule_times_.find(plan.rule);
  const int rule_count = it == rule_times_.end() ? 0 : static_cast<int>(it->second.size());
  const int rule_limit = RuleLimit(plan.rule);
  if (rule_count >= rule_limit) {
    *message = std::to_string(rule_count) + " actions of rule '" + plan.rule +
               "' in the last minute (limit " + std::to_string(rule_limit) + ")";
    return kSkipRateLimitedRule;
  }
  return "";
}

std::string EnforcementGate::CandidateBrake(const PlannedAction& plan, TimestampUs now,
                                            std::string* message) const {
  const SessionKey key = KeyOf(plan);
  if (auto it = denied_until_.find(key); it != denied_until_.end() && now < it->second) {
    *message = "the server refused a signal to this session with permission denied; not retried for " +
               SecondsText(it->second - now);
    return kSkipPermissionDeniedBefore;
  }
  if (auto it = cooldown_until_.find(key); it != cooldown_until_.end() && now < it->second) {
    *message = "this session was acted on recently; cooldown ends in " + SecondsText(it->second - now);
    return kSkipCooldown;
  }
  return RateBrake(plan, now, message);
}

GatedAction EnforcementGate::Issue(const PlannedAction& plan, ActionKind signal, bool escalation,
                                   TimestampUs now) {
  global_times_.push_back(now);
  rule_times_[plan.rule].push_back(now);
  cooldown_until_[KeyOf(plan)] = now + SecondsToUs(options_.session_cooldown_seconds);

  GatedAction action;
  action.id = next_id_++;
  action.plan = plan;
  action.signal = signal;
  action.escalation = escalation;
  action.dry_run = !options_.enforce;
  in_flight_ = Issued{action.id, plan, signal, escalation};
  // A dry-run action is done the moment it is decided: recording it here makes every later brake
  // (settle, re-read, escalation, rate limits) behave exactly as after a successful real signal.
  if (action.dry_run) Record(action.id, GateOutcome::kSucceeded, now);
  return action;
}

void EnforcementGate::Record(uint64_t id, GateOutcome outcome, TimestampUs now) {
  if (!in_flight_.has_value() || in_flight_->id != id) return;
  const Issued issued = std::move(*in_flight_);
  in_flight_.reset();

  // Whatever happened, the next victim is chosen only from a snapshot read after this result: the one that
  // led to the action is out of date.
  reread_after_ = now;
  if (outcome == GateOutcome::kStale) return;  // nothing was sent: no settle, no breaker change

  settle_until_ = now + SecondsToUs(options_.settle_after_action_seconds);
  if (outcome == GateOutcome::kSucceeded) {
    consecutive_failures_ = 0;
    breaker_tripped_ = false;
    if (issued.plan.action == ActionKind::kCancelThenTerminate && issued.signal == ActionKind::kCancel) {
      escalation_ = Escalation{issued.plan, now, now + SecondsToUs(issued.plan.grace_seconds)};
    }
    return;
  }

  if (outcome == GateOutcome::kPermissionDenied) {
    denied_until_[KeyOf(issued.plan)] = now + SecondsToUs(options_.permission_denied_retry_seconds);
  }
  ++consecutive_failures_;
  // A failed trial (half-open) opens the breaker again at once.
  const bool half_open = breaker_state(now) == BreakerState::kHalfOpen;
  if (half_open || consecutive_failures_ >= options_.breaker_failures) {
    breaker_tripped_ = true;
    breaker_open_until_ = now + SecondsToUs(options_.breaker_open_seconds);
  }
}

GateDecision EnforcementGate::Decide(const std::vector<PlannedAction>& candidates, TimestampUs now,
                                     bool kill_switch) {
  Prune(now);
  GateDecision decision;
  std::vector<const PlannedAction*> signals;
  for (const PlannedAction& c : candidates) {
    if (c.action == ActionKind::kLog) {
      decision.logged.push_back(c);
    } else {
      signals.push_back(&c);
    }
  }
  auto skip = [&decision](const PlannedAction& plan, ActionKind signal, const std::string& reason,
                          std::string message) {
    decision.skipped.push_back(GateSkip{plan, signal, reason, std::move(message)});
  };
  auto skip_rest = [&](const std::string& reason, const std::string& message,
                       const PlannedAction* except = nullptr) {
    for (const PlannedAction* c : signals) {
      if (c != except) skip(*c, FirstSignal(*c), reason, message);
    }
  };

  if (kill_switch) {
    skip_rest(kSkipKillSwitch, "kill switch present: enforcement paused");
    return decision;
  }
  if (breaker_state(now) == BreakerState::kOpen) {
    skip_rest(kSkipCircuitOpen, "circuit breaker open after " + std::to_string(consecutive_failures_) +
                                    " consecutive failures; trial in " +
                                    SecondsText(breaker_open_until_ - now));
    return decision;
  }
  if (in_flight_.has_value()) {
    skip_rest(kSkipOneAtATime, "an action on this target is in progress");
    return decision;
  }

  if (escalation_.has_value()) {
    const SessionKey key = KeyOf(escalation_->plan);
    const PlannedAction* again = nullptr;
    for (const PlannedAction* c : signals) {
      const SessionKey k = KeyOf(*c);
      if (k.pid == key.pid && k.backend_start == key.backend_start) {
        again = c;
        break;
      }
    }
    if (again == nullptr) {
      // The cancel was enough (or the session is gone): the terminate step is dropped.
      skip(escalation_->plan, ActionKind::kTerminate, kSkipNoLongerBlocking,
           "the session no longer matches after the cancel; terminate not needed");
      escalation_.reset();
    } else {
      // Terminate only from a snapshot read after the cancel, once the grace period has passed.
      if (now < escalation_->due || now <= escalation_->cancelled_at) {
        skip(*again, ActionKind::kTerminate, kSkipGrace,
             "cancel sent; terminate in " + SecondsText(std::max<TimestampUs>(escalation_->due - now, 0)) +
                 " if the session still blocks");
        skip_rest(kSkipOneAtATime, "a cancel_then_terminate on this target awaits its terminate step", again);
        return decision;
      }
      std::string message;
      const std::string brake = RateBrake(*again, now, &message);
      if (!brake.empty()) {
        skip(*again, ActionKind::kTerminate, brake, message);
        skip_rest(kSkipOneAtATime, "a cancel_then_terminate on this target awaits its terminate step", again);
        return decision;
      }
      escalation_.reset();
      decision.act = Issue(*again, ActionKind::kTerminate, /*escalation=*/true, now);
      skip_rest(kSkipOneAtATime, "one victim at a time: another action on this target was chosen", again);
      return decision;
    }
  }

  if (now < settle_until_ || (reread_after_.has_value() && now <= *reread_after_)) {
    skip_rest(kSkipSettling, now < settle_until_ ? "waiting " + SecondsText(settle_until_ - now) +
                                                       " after the last action before choosing again"
                                                 : "waiting for a snapshot read after the last action");
    return decision;
  }

  for (const PlannedAction* c : signals) {
    if (decision.act.has_value()) {
      skip(*c, FirstSignal(*c), kSkipOneAtATime,
           "one victim at a time: another action on this target was chosen");
      continue;
    }
    std::string message;
    const std::string brake = CandidateBrake(*c, now, &message);
    if (!brake.empty()) {
      skip(*c, FirstSignal(*c), brake, message);
      continue;
    }
    decision.act = Issue(*c, FirstSignal(*c), /*escalation=*/false, now);
  }
  return decision;
}

}  // namespace lockwatch::core
