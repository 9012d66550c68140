#include "agent/remediation/audit_log.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/json/iso_time.h"

namespace lockwatch::remediation {

nlohmann::json AuditRecord(const AuditEntry& entry) {
  nlohmann::json j;
  j["type"] = "action";
  j["at"] = json::FormatIso8601(entry.at);
  j["target"] = entry.target;
  j["rule"] = entry.rule;
  j["decision"] = entry.decision;
  j["action"] = entry.action;
  j["plan"] = entry.plan;
  j["escalation"] = entry.escalation;
  j["mode"] = entry.mode();
  j["pid"] = entry.pid;
  j["backend_start"] = json::IsoOrNull(entry.backend_start);
  j["usename"] = entry.usename;
  j["application_name"] = entry.application_name;
  j["role"] = entry.role;
  j["blocked_direct"] = entry.blocked_direct;
  j["blocked_total"] = entry.blocked_total;
  j["reason"] = entry.reason;
  j["result"] = entry.result;
  j["message"] = entry.message;
  return j;
}

AuditLog::AuditLog(AuditLogOptions options) : options_(std::move(options)) {}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

core::Status AuditLog::Open() {
  std::lock_guard<std::mutex> lock(mu_);
  return OpenLocked();
}

void AuditLog::Reopen() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

core::Status AuditLog::OpenLocked() {
  if (fd_ >= 0 || options_.path.empty()) return core::Status::Ok();
  // 0600: audit lines name users, applications and rules; only the agent's user reads them.
  const int fd = ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return core::Status::Unavailable("cannot open audit log " + options_.path + ": " + std::strerror(errno));
  }
  fd_ = fd;
  return core::Status::Ok();
}

void AuditLog::NoteError(const std::string& what) {
  ++errors_;
  // One line per streak of errors: a full disk must not flood the log with one line per decision.
  if (!in_error_streak_)
    spdlog::warn("audit log: {} (further errors are counted until a write succeeds)", what);
  in_error_streak_ = true;
}

bool AuditLog::Write(const nlohmann::json& record) {
  std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line.push_back('\n');
  std::lock_guard<std::mutex> lock(mu_);
  if (options_.path.empty()) return true;
  if (core::Status s = OpenLocked(); !s.ok()) {
    NoteError(s.message());
    return false;
  }
  // One write(2) per line: with O_APPEND the line lands whole at the end of the file. A short write (disk
  // full) leaves a partial line, which readers skip as unparsable; it is counted, not retried.
  ssize_t n = 0;
  do {
    n = ::write(fd_, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0 || static_cast<size_t>(n) != line.size()) {
    NoteError(n < 0 ? std::string("write to ") + options_.path + " failed: " + std::strerror(errno)
                    : "short write to " + options_.path);
    return false;
  }
  if (options_.sync_each_line && ::fdatasync(fd_) != 0) {
    NoteError(std::string("fdatasync of ") + options_.path + " failed: " + std::strerror(errno));
    return false;
  }
  ++lines_;
  in_error_streak_ = false;
  return true;
}

uint64_t AuditLog::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

uint64_t AuditLog::errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return errors_;
}

}  // namespace lockwatch::remediation
