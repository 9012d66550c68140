#include "agent/hooks/hook_config.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "agent/hooks/payloads.h"

namespace lockwatch::hooks {
namespace {

using core::Status;

constexpr std::chrono::milliseconds kMaxTimeout{10 * 60 * 1000};
constexpr int kMaxRetries = 10;

// Concatenates without the temporaries of a chain of operator+.
template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::string out;
  (out += ... += parts);
  return out;
}

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool ValidEnvName(const std::string& name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// RFC 9110 token characters.
bool ValidHeaderName(const std::string& name) {
  if (name.empty()) return false;
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           kSpecials.find(c) != std::string_view::npos;
  });
}

bool HasControl(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

bool StartsWith(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool EqualsIgnoreCase(const std::string& a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

Status ValidateExec(const std::string& where, const ExecHookConfig& exec) {
  if (exec.argv.empty()) return Status::InvalidArgument(where + ".exec.argv must list the program to run");
  if (exec.argv[0].empty() || exec.argv[0][0] != '/') {
    return Status::InvalidArgument(where + ".exec.argv[0] must be an absolute path (no PATH lookup), got " +
                                   Quoted(exec.argv[0]));
  }
  for (size_t i = 0; i < exec.argv.size(); ++i) {
    if (exec.argv[i].find('\0') != std::string::npos)
      return Status::InvalidArgument(where + ".exec.argv[" + std::to_string(i) + "] contains a NUL byte");
  }
  for (const auto& [name, value] : exec.env) {
    if (!ValidEnvName(name))
      return Status::InvalidArgument(Cat(where, ".exec.env: invalid variable name ", Quoted(name)));
    if (StartsWith(name, "LOCKWATCH_"))
      return Status::InvalidArgument(
          Cat(where, ".exec.env: ", name, " is reserved (LOCKWATCH_* is set by lockwatch)"));
    if (value.find('\0') != std::string::npos)
      return Status::InvalidArgument(Cat(where, ".exec.env.", name, " contains a NUL byte"));
  }
  if (exec.kill_grace.count() <= 0 || exec.kill_grace > std::chrono::milliseconds(60000))
    return Status::InvalidArgument(where + ".exec.kill_grace must be between 1ms and 60s");
  return Status::Ok();
}

Status ValidateWebhook(const std::string& where, const WebhookConfig& w) {
  const bool https = StartsWith(w.url, "https://");
  if (!https && !StartsWith(w.url, "http://")) {
    // The URL itself is not echoed: chat webhook URLs carry their secret in the path.
    return Status::InvalidArgument(where + ".webhook.url must start with http:// or https://");
  }
  if (std::any_of(w.url.begin(), w.url.end(), [](char c) { return c <= ' ' || c == 0x7f; }))
    return Status::InvalidArgument(where + ".webhook.url must not contain spaces or control characters");
  const size_t host_start = w.url.find("://") + 3;
  if (host_start >= w.url.size() || w.url[host_start] == '/')
    return Status::InvalidArgument(where + ".webhook.url has no host");
  for (const auto& [name, value] : w.headers) {
    if (!ValidHeaderName(name))
      return Status::InvalidArgument(Cat(where, ".webhook.headers: invalid header name ", Quoted(name)));
    if (EqualsIgnoreCase(name, "Content-Type") || EqualsIgnoreCase(name, "Content-Length"))
      return Status::InvalidArgument(Cat(where, ".webhook.headers: ", name, " is set by lockwatch"));
    if (HasControl(value))
      return Status::InvalidArgument(Cat(where, ".webhook.headers.", name, " contains a line break or NUL"));
  }
  for (const auto& [name, path] : w.header_files) {
    if (!ValidHeaderName(name))
      return Status::InvalidArgument(Cat(where, ".webhook.header_files: invalid header name ", Quoted(name)));
    if (EqualsIgnoreCase(name, "Content-Type") || EqualsIgnoreCase(name, "Content-Length"))
      return Status::InvalidArgument(Cat(where, ".webhook.header_files: ", name, " is set by lockwatch"));
    if (w.headers.count(name) != 0)
      return Status::InvalidArgument(where + ".webhook: header " + Quoted(name) +
                                     " is in both headers and header_files");
    if (path.empty() || path[0] != '/')
      return Status::InvalidArgument(Cat(where, ".webhook.header_files.", name, " must be an absolute path"));
  }
  if (!w.ca_file.empty() && !https)
    return Status::InvalidArgument(where + ".webhook.ca_file is only meaningful with an https:// url");
  if (!w.ca_file.empty() && w.ca_file[0] != '/')
    return Status::InvalidArgument(where + ".webhook.ca_file must be an absolute path");
  if (w.retries < 0 || w.retries > kMaxRetries)
    return Status::InvalidArgument(where + ".webhook.retries must be between 0 and " +
                                   std::to_string(kMaxRetries));
  if (w.initial_backoff.count() <= 0 || w.initial_backoff > kMaxBackoff)
    return Status::InvalidArgument(where + ".webhook.initial_backoff must be between 1ms and 60s");
  return Status::Ok();
}

}  // namespace

const char* HookKindName(HookKind kind) { return kind == HookKind::kExec ? "exec" : "webhook"; }

std::optional<HookKind> ParseHookKind(std::string_view name) {
  if (name == "exec") return HookKind::kExec;
  if (name == "webhook") return HookKind::kWebhook;
  return std::nullopt;
}

const char* WebhookFormatName(WebhookFormat format) {
  return format == WebhookFormat::kJson ? "json" : "chat";
}

std::optional<WebhookFormat> ParseWebhookFormat(std::string_view name) {
  if (name == "json") return WebhookFormat::kJson;
  if (name == "chat") return WebhookFormat::kChat;
  return std::nullopt;
}

Status ValidateHookConfig(const HookConfig& hook) {
  if (!ValidName(hook.name)) {
    return Status::InvalidArgument("hooks[].name must be 1-64 characters of a-z, 0-9, _ and -, got " +
                                   Quoted(hook.name));
  }
  const std::string where = "hooks[" + hook.name + "]";
  for (const std::string& e : hook.events) {
    if (!ParseEventKind(e)) {
      return Status::InvalidArgument(where + ".events: unknown event " + Quoted(e) +
                                     " (expected incident.opened, incident.updated, incident.resolved, "
                                     "action.planned, action.executed or action.failed)");
    }
  }
  if (hook.timeout.count() <= 0 || hook.timeout > kMaxTimeout)
    return Status::InvalidArgument(where + ".timeout must be between 1ms and 10m");
  return hook.kind == HookKind::kExec ? ValidateExec(where, hook.exec) : ValidateWebhook(where, hook.webhook);
}

Status ValidateHooksConfig(const HooksConfig& config) {
  std::set<std::string> names;
  for (const HookConfig& hook : config.hooks) {
    if (Status s = ValidateHookConfig(hook); !s.ok()) return s;
    if (!names.insert(hook.name).second)
      return Status::InvalidArgument("hooks: duplicate hook name " + Quoted(hook.name));
  }
  if (config.queue_capacity == 0 || config.queue_capacity > 1000000)
    return Status::InvalidArgument("hooks queue_capacity must be between 1 and 1000000");
  if (config.incident_update_min_interval.count() < 0)
    return Status::InvalidArgument("hooks incident_update_min_interval must not be negative");
  return Status::Ok();
}

bool HookWants(const HookConfig& hook, std::string_view event_name) {
  return hook.events.empty() ||
         std::find(hook.events.begin(), hook.events.end(), event_name) != hook.events.end();
}

}  // namespace lockwatch::hooks
