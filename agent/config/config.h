#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/policy.h"
#include "agent/core/status.h"
#include "agent/hooks/hook_config.h"

namespace lockwatch::config {

// The default listen address. 9187 belongs to postgres_exporter; lockwatch uses 9817 on all addresses.
inline constexpr const char* kDefaultListen = ":9817";

// One monitored server.
struct TargetConfig {
  std::string name;           // unique, used as the `target` label
  std::string dsn;            // libpq conninfo or URI; empty = libpq's PG* environment variables
  std::string password_file;  // optional; read at every connect, passed to libpq as `password`, never logged
};

// Settings of lockwatch's own session on every target.
struct SessionConfig {
  std::chrono::milliseconds statement_timeout{2000};
  std::chrono::milliseconds lock_timeout{100};
  std::chrono::milliseconds connect_timeout{5000};  // libpq has whole-second resolution: rounded up, min 1 s
};

struct LogConfig {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text or json
};

// When contention becomes an incident (see agent/docs/agent.md, "Incidents"). An incident opens when ANY
// threshold is crossed and resolves after `resolve_after` with all of them quiet.
struct IncidentConfig {
  std::chrono::milliseconds max_wait{5000};  // a lock wait longer than this
  int blocked_sessions = 10;                 // at least this many blocked sessions
  int max_depth = 3;                         // a chain deeper than this
  std::chrono::milliseconds resolve_after{30000};
};

// The in-memory flight recorder of each target.
struct RecorderConfig {
  std::chrono::milliseconds duration{5 * 60 * 1000};  // history kept before an incident
  uint64_t max_bytes = uint64_t{64} << 20;            // per target; the oldest entries are dropped beyond it
};

// Incident dumps (agent/docs/dump-format.md).
struct DumpConfig {
  bool enabled = true;
  std::string dir = "/var/lib/lockwatch/dumps";  // created (0700) when missing
  std::string query_text = "normalize";          // keep | normalize | drop
  std::chrono::milliseconds flush_interval{2000};
  // Retention, applied after every dump and at startup; 0 = no limit.
  size_t max_count = 100;
  std::chrono::milliseconds max_age{std::chrono::hours(24 * 30)};
  uint64_t max_total_bytes = uint64_t{1} << 30;
};

// Remediation under policy (agent/docs/remediation.md, agent/docs/rules.md). Off without a rules file; a
// dry run unless `enforce` is true here AND `lockwatch run --enforce` is given.
struct RemediationConfig {
  std::string rules_file;  // "" = no remediation
  bool enforce = false;
  std::string audit_log = "/var/lib/lockwatch/audit.log";  // JSON lines, mode 0600
  bool audit_sync = false;                                 // fdatasync after every line
  std::string kill_switch_file = "/etc/lockwatch/pause";   // while it exists, nothing is signalled
  core::Protection protect;  // never victims: users, applications, databases, clients ("local" or ranges)
  std::chrono::milliseconds settle_after_action{5000};
  int global_max_per_minute = 6;  // per target
  int rule_max_per_minute = 3;
  std::chrono::milliseconds session_cooldown{60000};
  int breaker_failures = 3;
  std::chrono::milliseconds breaker_open_for{300000};
  std::chrono::milliseconds terminate_wait{5000};
  std::chrono::milliseconds idle_disconnect{30000};
};

// The validated agent configuration (`lockwatch run`). Defaults are the documented ones
// (agent/docs/agent.md).
struct AgentConfig {
  std::string listen = kDefaultListen;  // "host:port", ":port" = all addresses, "[::1]:port"
  std::chrono::milliseconds interval{1000};
  std::string web_config_file;  // exporter-toolkit web config; empty = plain HTTP, no auth
  LogConfig log;
  std::vector<TargetConfig> targets;  // never empty after LoadAgentConfig/ApplyOverrides
  SessionConfig session;
  std::chrono::milliseconds max_backoff{30000};
  IncidentConfig incidents;
  RecorderConfig recorder;
  DumpConfig dumps;
  hooks::HooksConfig hooks;  // `hooks:` (the list) and `hook_delivery:` (agent/docs/hooks.md)
  RemediationConfig remediation;
};

// Command-line values that override the file (unset = keep the file's value).
struct ConfigOverrides {
  std::optional<std::string> dsn;  // replaces every configured target by one target named "default"
  std::optional<std::string> listen;
  std::optional<std::string> interval;  // a duration text, validated like the file's
  std::optional<std::string> web_config_file;
  std::optional<std::string> log_level;
  std::optional<std::string> log_format;
  std::optional<std::string> dump_dir;
  bool enforce = false;  // --enforce: signals are sent only when remediation.enforce is also true
};

// Reads and validates a YAML config file. Every error message starts with "file:line:column: " (1-based) and
// says what was expected. Unknown keys, duplicate keys and duplicate target names are errors. DSNs are
// validated with libpq (messages never contain the password). A file without targets gets one target named
// "default" with an empty DSN (libpq's PG* environment).
core::Result<AgentConfig> LoadAgentConfig(const std::string& path);

// As LoadAgentConfig, from text; `file_name` is used in messages only.
core::Result<AgentConfig> ParseAgentConfig(const std::string& text, const std::string& file_name);

// Applies command-line overrides to `config` and validates them (messages name the flag).
core::Status ApplyOverrides(const ConfigOverrides& overrides, AgentConfig* config);

// "500ms", "2s", "1m", "1h", "1d", "1m30s", "1.5s", up to 366d. Errors describe the expected form. Zero is
// rejected.
core::Result<std::chrono::milliseconds> ParseDuration(const std::string& text);

// "512KiB", "64MiB", "1GiB", "500MB", "1000000" (bytes). Binary (KiB, MiB, GiB) and decimal (kB, MB, GB)
// units; at least 1 byte, at most 1 TiB.
core::Result<uint64_t> ParseByteSize(const std::string& text);

// Checks a listen address: "host:port", ":port", "[v6]:port"; port 0..65535.
core::Status ValidateListen(const std::string& listen);

// Valid log levels and formats (for flag validation).
bool IsValidLogLevel(const std::string& level);
bool IsValidLogFormat(const std::string& format);

}  // namespace lockwatch::config
