#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/agent/shutdown.h"
#include "agent/agent/target_poller.h"
#include "agent/config/config.h"
#include "agent/core/policy.h"
#include "agent/hooks/dispatcher.h"
#include "agent/metrics/metrics.h"
#include "agent/remediation/audit_log.h"

namespace lockwatch::agent {

// How long shutdown waits for polls in progress before exiting anyway. The default statement_timeout is 2 s,
// so a poll stuck on an unresponsive server would otherwise hold the exit past the 2 s a supervisor allows.
inline constexpr std::chrono::milliseconds kShutdownGrace{1500};

// The long-running agent (`lockwatch run`): one TargetPoller per configured target recording into one
// AgentMetrics, served by one web::HttpServer; SIGHUP reloads the config file, SIGTERM/SIGINT stop.
// Memory: per target, the snapshot and report of the poll in progress plus the metric state of the latest
// poll; nothing accumulates across polls.
class Agent {
 public:
  // `config` is the validated startup config; `config_path` (may be empty) and `overrides` are re-applied on
  // every reload so flags keep winning over the file.
  Agent(config::AgentConfig config, std::string config_path, config::ConfigOverrides overrides,
        metrics::BuildInfo build);
  // Joins every poller that exited; pollers abandoned at shutdown (stuck in a poll) are leaked on purpose:
  // the process is about to exit and they may still use their (shared) state.
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Serves and polls until `signals` delivers a stop. Returns the process exit code: 0 after a requested
  // stop, 1 when the web config or the listen address is unusable at startup.
  int Run(SignalWaiter* signals);

  // Reloads the config file (what SIGHUP does). On error the running config stays and false is returned.
  bool Reload();

  // True when at least one poller did not finish within kShutdownGrace: the caller should flush the logs
  // and _Exit instead of running destructors.
  bool abandoned_pollers() const { return !abandoned_.empty(); }

  // Readiness: every configured target has completed at least one poll attempt (success or failure).
  bool Ready() const;

 private:
  struct Target;

  void StartTarget(const config::TargetConfig& target);
  void RetireTarget(const std::string& name);
  void ReapRetired();
  void StopAll();

  config::AgentConfig config_;
  std::string config_path_;
  config::ConfigOverrides overrides_;
  std::shared_ptr<metrics::AgentMetrics> metrics_;
  std::shared_ptr<hooks::HookDispatcher> hooks_;  // set by Run when hooks are configured
  std::shared_ptr<const core::Policy> policy_;    // set by Run when a rules file is configured
  std::shared_ptr<remediation::AuditLog> audit_log_;
  mutable std::mutex mu_;  // guards targets_ (read by the readiness handler on server threads)
  std::map<std::string, std::unique_ptr<Target>> targets_;
  std::vector<std::unique_ptr<Target>> retired_;    // stopping after a reload, joined when done
  std::vector<std::unique_ptr<Target>> abandoned_;  // still stuck at exit
};

// Production poll source over pg::Collector; the password file (if any) is read now and passed to libpq as
// the `password` keyword. Errors never contain the password.
core::Result<std::unique_ptr<PollSource>> MakeCollectorSource(const config::TargetConfig& target,
                                                              const config::SessionConfig& session);

// `dsn` with `password` set (any password in `dsn` replaced), as a keyword=value conninfo. Works for URIs
// too.
core::Result<std::string> DsnWithPassword(const std::string& dsn, const std::string& password);

}  // namespace lockwatch::agent
