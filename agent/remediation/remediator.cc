#include "agent/remediation/remediator.h"

#include <set>

#include <sys/stat.h>

namespace lockwatch::remediation {
namespace {

// Codes of the remediator's own checks and outcomes (the gate's and the policy's are in core).
constexpr const char* kSkipStale = "stale";
constexpr const char* kSkipShutdown = "shutdown";

class ActuatorSender : public SignalSender {
 public:
  ActuatorSender(std::string dsn, pg::SessionOptions options)
      : actuator_(std::move(dsn), std::move(options)) {}
  core::Result<pg::SignalOutcome> Signal(const pg::SignalRequest& request) override {
    return actuator_.Signal(request);
  }
  bool connected() const override { return actuator_.connected(); }
  void Disconnect() override { actuator_.Disconnect(); }

 private:
  pg::Actuator actuator_;
};

core::TimestampUs WallClockUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsIdleInTransaction(const std::string& state) {
  return state == "idle in transaction" || state == "idle in transaction (aborted)";
}

bool SameSession(const core::PlannedAction& a, const core::PlannedAction& b) {
  return a.victim.pid == b.victim.pid && a.victim.backend_start == b.victim.backend_start;
}

std::pair<int32_t, core::TimestampUs> KeyOf(const core::PlannedAction& p) {
  return {p.victim.pid, p.victim.backend_start.value_or(0)};
}

AuditEntry EntryFor(const core::PlannedAction& p, const std::string& target, bool dry_run,
                    core::TimestampUs at) {
  AuditEntry e;
  e.at = at;
  e.target = target;
  e.rule = p.rule;
  e.plan = core::ActionKindName(p.action);
  e.action = e.plan;
  e.dry_run = dry_run;
  e.pid = p.victim.pid;
  e.backend_start = p.victim.backend_start;
  e.role = p.role;
  e.blocked_direct = p.blocked_direct;
  e.blocked_total = p.blocked_total;
  e.reason = p.reason;
  return e;
}

}  // namespace

std::unique_ptr<SignalSender> MakeActuatorSender(std::string dsn, pg::SessionOptions options) {
  return std::make_unique<ActuatorSender>(std::move(dsn), std::move(options));
}

Remediator::Remediator(RemediatorOptions options, std::unique_ptr<SignalSender> sender,
                       std::shared_ptr<AuditLog> audit_log, std::shared_ptr<RemediationObserver> observer)
    : options_(std::move(options)),
      sender_(std::move(sender)),
      audit_log_(std::move(audit_log)),
      observer_(std::move(observer)),
      gate_(options_.gate) {
  worker_ = std::thread([this] { Run(); });
}

Remediator::~Remediator() { Stop(); }

bool Remediator::KillSwitchPresent() const {
  if (options_.kill_switch_file.empty()) return false;
  struct stat st {};
  return ::stat(options_.kill_switch_file.c_str(), &st) == 0;
}

void Remediator::Emit(AuditEntry entry, core::TimestampUs now) {
  // Skips (and report-only matches) repeat at every poll while a condition lasts; the audit log keeps the
  // first of a run per period so it stays readable, observers still see every evaluation.
  if (entry.decision == "skipped" || entry.action == "log") {
    const auto key = std::make_tuple(entry.pid, entry.backend_start.value_or(0), entry.rule,
                                     entry.decision + ":" + entry.reason);
    const auto period = static_cast<core::TimestampUs>(options_.audit_repeat_seconds * 1e6);
    auto it = last_skip_.find(key);
    if (it != last_skip_.end() && now - it->second < period) {
      entry.repeat = true;
    } else {
      last_skip_[key] = now;
    }
  }
  if (!entry.repeat) {
    std::lock_guard<std::mutex> lock(mu_);
    if (entry.decision == "planned" || (entry.decision == "executed" && entry.action == "log")) {
      ++stats_.actions[{entry.action, entry.mode()}];
    } else if (entry.decision == "failed") {
      ++stats_.failures[{entry.action, entry.reason}];
    } else if (entry.decision == "skipped") {
      ++stats_.skipped[entry.reason];
    }
  }
  if (!entry.repeat && audit_log_ != nullptr) audit_log_->Write(entry);
  if (observer_ != nullptr) observer_->OnDecision(entry);
}

void Remediator::CollectResults(core::TimestampUs now) {
  std::vector<Done> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done.swap(done_);
  }
  for (Done& d : done) {
    gate_.Record(d.id, d.outcome, now);
    const core::TimestampUs at = d.entry.at;
    Emit(std::move(d.entry), at);
  }
}

void Remediator::Evaluate(const core::Snapshot& snapshot, const core::Report& report,
                          const std::vector<core::PolicyDecision>& decisions) {
  const core::TimestampUs now = snapshot.captured_at_us;
  const bool dry_run = !options_.gate.enforce;
  CollectResults(now);
  const bool kill_switch = KillSwitchPresent();

  // Forget repeat marks older than the period.
  const auto period = static_cast<core::TimestampUs>(options_.audit_repeat_seconds * 1e6);
  for (auto it = last_skip_.begin(); it != last_skip_.end();) {
    it = now - it->second >= period ? last_skip_.erase(it) : std::next(it);
  }

  std::map<int32_t, const core::Session*> sessions;
  for (const core::Session& s : snapshot.sessions) sessions[s.pid] = &s;
  std::set<int32_t> blockers;
  for (const core::Edge& e : report.edges) blockers.insert(e.blocker.pid);
  std::set<int32_t> waiting;
  for (const core::Waiter& w : report.waiters) waiting.insert(w.node.pid);

  // Names for the entries of this evaluation (and of a pending escalation, which may outlive its session).
  std::map<std::pair<int32_t, core::TimestampUs>, std::pair<std::string, std::string>> names = names_;
  auto fill_names = [&names](AuditEntry* e) {
    auto it = names.find({e->pid, e->backend_start.value_or(0)});
    if (it != names.end()) std::tie(e->usename, e->application_name) = it->second;
  };

  const core::PlannedAction* escalation = gate_.escalation_plan();
  std::vector<core::PlannedAction> candidates;
  for (const core::PolicyDecision& d : decisions) {
    core::PlannedAction p = d.planned;
    p.target = options_.target;
    names[KeyOf(p)] = {d.user, d.application};
    const bool escalating = escalation != nullptr && SameSession(*escalation, p);
    // After the cancel of a cancel_then_terminate, a session left idle in its (aborted) transaction still
    // holds its locks; the policy skips it because a cancel would be useless, but the pending terminate
    // step is exactly what it needs.
    const bool revive = escalating && d.skip == core::kSkipCancelIdleInTransaction;
    if (d.skipped() && !revive) {
      AuditEntry e = EntryFor(p, options_.target, dry_run, now);
      e.decision = "skipped";
      e.action = core::ActionKindName(
          p.action == core::ActionKind::kCancelThenTerminate ? core::ActionKind::kCancel : p.action);
      e.usename = d.user;
      e.application_name = d.application;
      e.reason = d.skip;
      e.message = d.skip_detail;
      Emit(std::move(e), now);
      continue;
    }

    // Defence in depth: the policy engine already excludes these; a manual or replayed decision may not.
    std::string reason;
    std::string message;
    auto it = sessions.find(p.victim.pid);
    const core::Session* s = it == sessions.end() ? nullptr : it->second;
    if (p.victim.pid == 0) {
      reason = core::kSkipPreparedTransaction;
      message = "a prepared transaction has no backend to signal";
    } else if (p.victim.pid == snapshot.own_pid) {
      reason = core::kSkipOwnSession;
      message = "lockwatch's own session";
    } else if (s == nullptr || !s->backend_start || !p.victim.backend_start ||
               *s->backend_start != *p.victim.backend_start) {
      reason = core::kSkipUnknownIdentity;
      message = "the session is not in the snapshot with this pid and backend_start";
    } else if (waiting.count(p.victim.pid) != 0 && blockers.count(p.victim.pid) == 0) {
      reason = core::kSkipOnlyWaits;
      message = "the session only waits and blocks nobody";
    } else if (!escalating &&
               (p.action == core::ActionKind::kCancel ||
                p.action == core::ActionKind::kCancelThenTerminate) &&
               IsIdleInTransaction(s->state)) {
      reason = core::kSkipCancelIdleInTransaction;
      message = "a cancel does nothing to a session idle in transaction; only terminate ends it";
    }
    if (!reason.empty()) {
      AuditEntry e = EntryFor(p, options_.target, dry_run, now);
      e.decision = "skipped";
      e.usename = d.user;
      e.application_name = d.application;
      e.reason = reason;
      e.message = message;
      Emit(std::move(e), now);
      continue;
    }
    candidates.push_back(std::move(p));
  }

  core::GateDecision decision = gate_.Decide(candidates, now, kill_switch);

  for (const core::PlannedAction& p : decision.logged) {
    AuditEntry e = EntryFor(p, options_.target, dry_run, now);
    fill_names(&e);
    e.decision = "executed";
    e.result = "logged";
    Emit(std::move(e), now);
  }
  for (const core::GateSkip& k : decision.skipped) {
    AuditEntry e = EntryFor(k.plan, options_.target, dry_run, now);
    fill_names(&e);
    e.decision = "skipped";
    e.action = core::ActionKindName(k.signal);
    e.escalation =
        k.plan.action == core::ActionKind::kCancelThenTerminate && k.signal == core::ActionKind::kTerminate;
    e.reason = k.reason;
    e.message = k.message;
    Emit(std::move(e), now);
  }
  if (decision.act.has_value()) {
    const core::GatedAction& a = *decision.act;
    AuditEntry e = EntryFor(a.plan, options_.target, a.dry_run, now);
    fill_names(&e);
    e.decision = "planned";
    e.action = core::ActionKindName(a.signal);
    e.escalation = a.escalation;
    if (a.plan.action == core::ActionKind::kCancelThenTerminate) names_[KeyOf(a.plan)] = names[KeyOf(a.plan)];
    Emit(e, now);
    if (a.dry_run) {
      e.decision = "executed";
      e.result = "dry_run";
      e.message = "dry run: not signalled";
      Emit(std::move(e), now);
    } else {
      const core::Session* s = sessions.count(a.plan.victim.pid) != 0 ? sessions[a.plan.victim.pid] : nullptr;
      Job job;
      job.id = a.id;
      job.request.victim = a.plan.victim;
      job.request.kind =
          a.signal == core::ActionKind::kTerminate ? pg::SignalKind::kTerminate : pg::SignalKind::kCancel;
      job.request.terminate_wait = options_.terminate_wait;
      // The policy acted on this session, so its exclusions (superusers and sessions of unknown status
      // unless the rule includes superusers, autovacuum unless the rule names it) have been applied; the
      // actuator re-checks the live row. Without the session row (never here) nothing is allowed.
      job.request.allow_superuser = s != nullptr && s->superuser.value_or(true);
      job.request.allow_autovacuum = s != nullptr && s->backend_type == "autovacuum worker";
      job.entry = std::move(e);
      std::lock_guard<std::mutex> lock(mu_);
      job_ = std::move(job);
      cv_.notify_all();
    }
  }
  if (!gate_.escalation_pending()) names_.clear();

  std::lock_guard<std::mutex> lock(mu_);
  stats_.kill_switch = kill_switch;
  stats_.breaker = core::BreakerStateName(gate_.breaker_state(now));
}

Remediator::Done Remediator::Execute(const Job& job) {
  Done d;
  d.id = job.id;
  d.entry = job.entry;
  d.entry.message.clear();
  if (KillSwitchPresent()) {
    d.entry.at = WallClockUs();
    d.entry.decision = "skipped";
    d.entry.reason = core::kSkipKillSwitch;
    d.entry.message = "kill switch appeared before the signal was sent: not signalled";
    d.outcome = core::GateOutcome::kStale;
    return d;
  }
  core::Result<pg::SignalOutcome> r = sender_->Signal(job.request);
  d.entry.at = WallClockUs();
  if (!r.ok()) {
    d.entry.decision = "failed";
    d.entry.reason = r.status().code() == core::Status::Code::kUnavailable ? "unavailable" : "error";
    d.entry.result = "error";
    d.entry.message = r.status().message();
    d.outcome = core::GateOutcome::kFailed;
    sender_->Disconnect();
    return d;
  }
  const pg::SignalOutcome& o = r.value();
  d.entry.result = pg::SignalResultName(o.result);
  d.entry.message = o.message;
  switch (o.result) {
    case pg::SignalResult::kSignalled:
    case pg::SignalResult::kExited:
      d.entry.decision = "executed";
      d.outcome = core::GateOutcome::kSucceeded;
      break;
    case pg::SignalResult::kStale:
      d.entry.decision = "skipped";
      d.entry.reason = kSkipStale;
      if (d.entry.message.empty())
        d.entry.message = "the session no longer matches the analysed identity: not signalled";
      d.outcome = core::GateOutcome::kStale;
      break;
    case pg::SignalResult::kPermissionDenied:
      d.entry.decision = "failed";
      d.entry.reason = d.entry.result;
      d.outcome = core::GateOutcome::kPermissionDenied;
      break;
    case pg::SignalResult::kStillRunning:
    case pg::SignalResult::kRefused:
    case pg::SignalResult::kError:
      d.entry.decision = "failed";
      d.entry.reason = d.entry.result;
      d.outcome = core::GateOutcome::kFailed;
      break;
  }
  return d;
}

void Remediator::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  auto last_used = std::chrono::steady_clock::now();
  auto has_work = [this] { return stop_ || job_.has_value(); };
  while (true) {
    if (stop_) {
      if (job_.has_value()) {
        // Queued but not started: the agent is stopping, so it is not sent.
        Done d;
        d.id = job_->id;
        d.entry = job_->entry;
        d.entry.at = WallClockUs();
        d.entry.decision = "skipped";
        d.entry.reason = kSkipShutdown;
        d.entry.message = "the agent stopped before the signal was sent";
        d.outcome = core::GateOutcome::kStale;
        done_.push_back(std::move(d));
        job_.reset();
      }
      break;
    }
    if (job_.has_value()) {
      Job job = std::move(*job_);
      job_.reset();
      running_job_ = true;
      lock.unlock();
      Done d = Execute(job);
      lock.lock();
      running_job_ = false;
      done_.push_back(std::move(d));
      last_used = std::chrono::steady_clock::now();
      cv_.notify_all();
      continue;
    }
    if (sender_->connected()) {
      // Hold the actuator's connection only while signals are likely to follow.
      if (cv_.wait_until(lock, last_used + options_.idle_disconnect, has_work)) continue;
      lock.unlock();
      sender_->Disconnect();
      lock.lock();
      continue;
    }
    cv_.wait(lock, has_work);
  }
  lock.unlock();
  sender_->Disconnect();
}

bool Remediator::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return !job_.has_value() && !running_job_; });
}

void Remediator::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
  std::vector<Done> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done.swap(done_);
  }
  for (Done& d : done) {
    const core::TimestampUs at = d.entry.at;
    Emit(std::move(d.entry), at);
  }
}

RemediationStats Remediator::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  RemediationStats s = stats_;
  s.busy = job_.has_value() || running_job_;
  return s;
}

}  // namespace lockwatch::remediation
