#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "agent/core/analysis.h"
#include "agent/core/enforcement.h"
#include "agent/core/policy.h"
#include "agent/core/snapshot.h"
#include "agent/core/status.h"
#include "agent/pg/actuator.h"
#include "agent/pg/collector.h"
#include "agent/remediation/audit_log.h"

namespace lockwatch::remediation {

// Where signals go: pg::Actuator in production, fakes in tests. Used by the remediator's worker thread
// only.
class SignalSender {
 public:
  virtual ~SignalSender() = default;
  // As pg::Actuator::Signal (connects on demand).
  virtual core::Result<pg::SignalOutcome> Signal(const pg::SignalRequest& request) = 0;
  virtual bool connected() const = 0;
  virtual void Disconnect() = 0;
};

// A SignalSender over a pg::Actuator with its own connection to `dsn`.
std::unique_ptr<SignalSender> MakeActuatorSender(std::string dsn, pg::SessionOptions options = {});

// Receives every decision of a remediator, on the thread that calls Remediator::Evaluate (or Stop): route
// them to metrics, the incident dump and hooks. Entries with `repeat` set are repeated skips the audit
// log leaves out; count only the others to match Stats().
class RemediationObserver {
 public:
  virtual ~RemediationObserver() = default;
  virtual void OnDecision(const AuditEntry& entry) = 0;
};

struct RemediatorOptions {
  std::string target;             // the target's name, in every entry
  core::EnforcementOptions gate;  // brakes; gate.enforce false = dry run
  std::string kill_switch_file;   // "" = none; while this path exists enforcement is paused
  // Terminate: how long the actuator waits for the backend to exit.
  std::chrono::milliseconds terminate_wait{5000};
  // The actuator's connection is closed after this long without a signal to send.
  std::chrono::milliseconds idle_disconnect{30000};
  // An identical skip (same session, rule and reason) is written to the audit log at most once per this
  // many seconds (seen by observers every time, flagged `repeat`).
  double audit_repeat_seconds = 60;
};

// Counters of audited decisions (repeats excluded), for metrics.
struct RemediationStats {
  std::map<std::pair<std::string, std::string>, uint64_t>
      actions;  // (action, mode): planned signals and logs
  std::map<std::pair<std::string, std::string>, uint64_t> failures;  // (action, reason)
  std::map<std::string, uint64_t> skipped;                           // reason
  bool kill_switch = false;                                          // as of the last evaluation
  std::string breaker = "closed";                                    // closed, open, half_open
  bool busy = false;                                                 // a signal is queued or being sent
};

// Remediation of one target: policy decisions -> safety checks -> enforcement gate -> signal -> audit.
//
// Evaluate() runs on the target's poll thread and never waits for the database: the chosen signal is
// handed to the remediator's own worker thread (a queue of one: one victim at a time), which sends it
// through the SignalSender, connecting only when there is something to send and disconnecting after
// `idle_disconnect`. The result is collected, audited and fed back to the gate at the next Evaluate().
// In dry run nothing is queued: the action is audited as executed with result "dry_run".
//
// Safety checks here complement the policy engine's (defence in depth): a decision is never acted on when
// its session is missing from the snapshot or has another backend_start, is lockwatch's own session, only
// waits (blocks nobody), or would merely be cancelled while idle in transaction. The kill-switch file is
// checked at every evaluation and again just before a signal is sent. `decisions` must come from
// core::Evaluate: its superuser and autovacuum exclusions are trusted (an acting decision about such a
// session means the rule opted in, and the actuator is told so); hand-made decisions must apply them too.
//
// Thread-safe: Evaluate and Stop from one thread (the poll thread); Stats and WaitIdle from any.
class Remediator {
 public:
  Remediator(RemediatorOptions options, std::unique_ptr<SignalSender> sender,
             std::shared_ptr<AuditLog> audit_log, std::shared_ptr<RemediationObserver> observer);
  ~Remediator();  // Stop()
  Remediator(const Remediator&) = delete;
  Remediator& operator=(const Remediator&) = delete;

  // One poll's worth of decisions (core::Evaluate's result for this snapshot and report).
  void Evaluate(const core::Snapshot& snapshot, const core::Report& report,
                const std::vector<core::PolicyDecision>& decisions);

  // Waits until no signal is queued or being sent, up to `timeout`. True when idle.
  bool WaitIdle(std::chrono::milliseconds timeout);

  // Stops the worker (a signal being sent finishes first: bounded by the actuator's statement timeout),
  // audits results not yet collected, and closes the actuator's connection. Idempotent.
  void Stop();

  RemediationStats Stats() const;
  const RemediatorOptions& options() const { return options_; }

 private:
  struct Job {
    uint64_t id = 0;
    pg::SignalRequest request;
    AuditEntry entry;  // the "planned" entry, the base of the result's entry
  };
  struct Done {
    uint64_t id = 0;
    core::GateOutcome outcome = core::GateOutcome::kFailed;
    AuditEntry entry;  // the result, ready to emit
  };

  void Run();
  Done Execute(const Job& job);
  bool KillSwitchPresent() const;
  void Emit(AuditEntry entry, core::TimestampUs now);
  void CollectResults(core::TimestampUs now);

  RemediatorOptions options_;
  std::unique_ptr<SignalSender> sender_;
  std::shared_ptr<AuditLog> audit_log_;
  std::shared_ptr<RemediationObserver> observer_;
  core::EnforcementGate gate_;  // poll thread only
  // Identity facts of the session a pending escalation is about, for its entries.
  std::map<std::pair<int32_t, core::TimestampUs>, std::pair<std::string, std::string>> names_;
  // Last time each (pid, backend_start, rule, reason) skip was written to the audit log.
  std::map<std::tuple<int32_t, core::TimestampUs, std::string, std::string>, core::TimestampUs> last_skip_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Job> job_;  // queue of one
  bool running_job_ = false;
  std::vector<Done> done_;
  bool stop_ = false;
  RemediationStats stats_;
  std::thread worker_;
};

}  // namespace lockwatch::remediation
