#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/core/snapshot.h"
#include "agent/core/status.h"

namespace lockwatch::remediation {

// One remediation decision as it is audited: a line of the audit log, an "action" record of the incident
// dump, a hook payload and a metric increment all come from the same entry.
struct AuditEntry {
  core::TimestampUs at = 0;  // when it was decided (the snapshot's capture time) or when the result came
  std::string target;
  std::string rule;         // "" for a manual action
  std::string decision;     // "planned", "executed", "skipped" or "failed"
  std::string action;       // the signal planned or sent at this step: "log", "cancel" or "terminate"
  std::string plan;         // the rule's action: "log", "cancel", "terminate" or "cancel_then_terminate"
  bool escalation = false;  // the terminate step of a cancel_then_terminate
  bool dry_run = true;
  int32_t pid = 0;
  std::optional<core::TimestampUs> backend_start;
  std::string usename;
  std::string application_name;
  std::string role;  // "root", "amplifier", "blocker"
  int blocked_direct = 0;
  int blocked_total = 0;
  // planned/executed: the rule's conditions as they matched; skipped: a stable reason code (kill_switch,
  // cooldown, protected_user, stale, ...); failed: the failure code (permission_denied, refused, error, ...).
  std::string reason;
  // executed/failed/stale: the actuator's result name ("signalled", "exited", ...), "dry_run" for a dry-run
  // execution, "logged" for a report-only rule; "" otherwise.
  std::string result;
  std::string message;  // detail in words (the skip explained, the server's message); never a password
  // True when the same skip of the same session and rule was audited within the repeat period: observers
  // still see it (metrics of evaluations), the audit log leaves it out and Stats() does not count it.
  bool repeat = false;

  std::string mode() const { return dry_run ? "dry_run" : "enforce"; }
};

// The JSON object of an entry: {"type":"action","at","target","rule","decision","action","plan",
// "escalation","mode","pid","backend_start","usename","application_name","role","blocked_direct",
// "blocked_total","reason","result","message"}. Times are RFC 3339 UTC with microseconds; backend_start is
// null when unknown.
nlohmann::json AuditRecord(const AuditEntry& entry);

struct AuditLogOptions {
  std::string path;             // "" disables the log (writes succeed and do nothing)
  bool sync_each_line = false;  // fdatasync after every line
};

// An append-only JSON-lines file: one object per line, each line written with a single write(2) on a file
// opened O_APPEND (so lines from several processes or targets never interleave), created with mode 0600.
// Errors never throw or stop the agent: they are counted, and the first one of a streak is logged. A failed
// open is retried at the next write. Thread-safe: targets share one log.
class AuditLog {
 public:
  explicit AuditLog(AuditLogOptions options);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Opens the file now (otherwise it is opened at the first write), so a bad path shows at startup.
  core::Status Open();
  // Closes the file; the next write opens it again (log rotation: call after the file was moved away).
  void Reopen();

  // Appends one line. False when it could not be written (counted in errors()).
  bool Write(const nlohmann::json& record);
  bool Write(const AuditEntry& entry) { return Write(AuditRecord(entry)); }

  uint64_t lines() const;
  uint64_t errors() const;
  const std::string& path() const { return options_.path; }

 private:
  core::Status OpenLocked();
  void NoteError(const std::string& what);

  AuditLogOptions options_;
  mutable std::mutex mu_;
  int fd_ = -1;
  uint64_t lines_ = 0;
  uint64_t errors_ = 0;
  bool in_error_streak_ = false;
};

}  // namespace lockwatch::remediation
