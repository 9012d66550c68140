#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/status.h"
#include "agent/forensics/query_text.h"

namespace lockwatch::hooks {

// Hook configuration as plain structs with the documented defaults (agent/docs/hooks.md). The config
// layer fills them from YAML and calls ValidateHooksConfig; messages name the offending field and the
// caller adds file:line:column.

enum class HookKind { kExec, kWebhook };

// "exec", "webhook".
const char* HookKindName(HookKind kind);
std::optional<HookKind> ParseHookKind(std::string_view name);

// What a webhook posts: the full event document, or {"text": "<summary>"} for Slack, Mattermost,
// Rocket.Chat and other "incoming webhook" chat endpoints.
enum class WebhookFormat { kJson, kChat };

// "json", "chat".
const char* WebhookFormatName(WebhookFormat format);
std::optional<WebhookFormat> ParseWebhookFormat(std::string_view name);

struct ExecHookConfig {
  // The program and its arguments, run without a shell. argv[0] must be an absolute path: no PATH
  // lookup, so what runs does not depend on the agent's environment.
  std::vector<std::string> argv;
  // Extra environment variables. The child does NOT inherit the agent's environment (it may hold
  // PGPASSWORD); it gets PATH, these, and the LOCKWATCH_* variables. Names starting with LOCKWATCH_ are
  // reserved.
  std::map<std::string, std::string> env;
  // After the timeout: SIGTERM to the hook's process group, then SIGKILL after this grace.
  std::chrono::milliseconds kill_grace{2000};
};

struct WebhookConfig {
  std::string url;  // http:// or https://; TLS peer and host verification are always on
  // Extra request headers (name -> value). Content-Type is always application/json.
  std::map<std::string, std::string> headers;
  // Headers whose value is the content of a file (trimmed), read at each delivery so a rotated token is
  // picked up, e.g. {"Authorization": "/etc/lockwatch/webhook-token"} with "Bearer abc..." inside.
  // Values read from files are never logged.
  std::map<std::string, std::string> header_files;
  std::string ca_file;  // PEM bundle to verify the server with instead of the system store ("" = system)
  int retries = 3;      // extra attempts after connection errors, timeouts, 429 and 5xx (never after 4xx)
  std::chrono::milliseconds initial_backoff{1000};  // doubled after each attempt, capped at kMaxBackoff
  WebhookFormat format = WebhookFormat::kJson;
};

inline constexpr std::chrono::milliseconds kMaxBackoff{60000};

struct HookConfig {
  std::string name;  // [a-z0-9_-]{1,64}: used as the {hook} metric label and in logs
  HookKind kind = HookKind::kExec;
  // Event names ("incident.opened", ...; see EventKindName) this hook receives; empty = all.
  std::vector<std::string> events;
  std::chrono::milliseconds timeout{10000};  // per attempt: the whole exec run or one HTTP request
  ExecHookConfig exec;                       // kind == kExec
  WebhookConfig webhook;                     // kind == kWebhook
};

struct HooksConfig {
  std::vector<HookConfig> hooks;
  // Events waiting per hook; when a hook's queue is full new events for it are dropped and counted.
  size_t queue_capacity = 1000;
  // What incident payloads keep of query text (the default keeps statement shapes, never literals).
  forensics::QueryTextMode query_text = forensics::QueryTextMode::kNormalize;
  // incident.updated is sent at most once per this interval per incident (opened and resolved always).
  std::chrono::milliseconds incident_update_min_interval{60000};
};

// Checks one hook. Messages read like "hooks[].exec.argv[0] must be an absolute path, got \"notify\"".
core::Status ValidateHookConfig(const HookConfig& hook);

// Checks every hook, unique names and the global settings.
core::Status ValidateHooksConfig(const HooksConfig& config);

// True when `hook` wants events named `event_name` (its filter is empty or lists the name).
bool HookWants(const HookConfig& hook, std::string_view event_name);

}  // namespace lockwatch::hooks
