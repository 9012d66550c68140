#include "agent/config/config.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "agent/pg/dsn.h"

namespace lockwatch::config {
namespace {

using std::chrono::milliseconds;

// Parse failures travel as this exception inside this file only; LoadAgentConfig turns it into a Status.
// It keeps the validation code linear (one check per line) without threading a Status through every helper.
struct ConfigError {
  std::string message;
};

class Reader {
 public:
  explicit Reader(std::string file_name) : file_(std::move(file_name)) {}

  [[noreturn]] void Fail(const YAML::Mark& mark, const std::string& what) const {
    std::ostringstream out;
    out << file_ << ":" << (mark.line >= 0 ? mark.line + 1 : 1) << ":"
        << (mark.column >= 0 ? mark.column + 1 : 1) << ": " << what;
    throw ConfigError{out.str()};
  }

  // A node's position; null values (`key:` with nothing after) carry no position, so use the key's.
  static YAML::Mark MarkOf(const YAML::Node& node, const YAML::Mark& fallback) {
    YAML::Mark mark = node.Mark();
    if (mark.line < 0 || node.IsNull()) return fallback;
    return mark;
  }

  // Visits the entries of a map, rejecting non-string keys, duplicate keys and keys not in `known`.
  void ForEachEntry(
      const YAML::Node& map, const YAML::Mark& where, const std::string& what,
      const std::set<std::string>& known,
      const std::function<void(const std::string&, const YAML::Node&, const YAML::Mark&)>& fn) const {
    if (map.IsNull()) return;
    if (!map.IsMap()) Fail(MarkOf(map, where), "expected " + what + " to be a mapping of keys to values");
    std::set<std::string> seen;
    for (const auto& entry : map) {
      const YAML::Node key_node = entry.first;
      const YAML::Node value = entry.second;
      if (!key_node.IsScalar()) Fail(key_node.Mark(), "expected a key name in " + what);
      const std::string& key = key_node.Scalar();
      if (known.count(key) == 0) {
        std::string message = "unknown key \"";
        message.append(key).append("\" in ").append(what).append(" (expected one of: ");
        bool first = true;
        for (const std::string& k : known) {
          message.append(first ? "" : ", ").append(k);
          first = false;
        }
        Fail(key_node.Mark(), message.append(")"));
      }
      if (!seen.insert(key).second) {
        std::string message = "duplicate key \"";
        Fail(key_node.Mark(), message.append(key).append("\" in ").append(what));
      }
      fn(key, value, key_node.Mark());
    }
  }

  std::string String(const YAML::Node& node, const YAML::Mark& key_mark, const std::string& key) const {
    if (!node.IsScalar()) Fail(MarkOf(node, key_mark), "expected a string for \"" + key + "\"");
    return node.Scalar();
  }

  int Integer(const YAML::Node& node, const YAML::Mark& key_mark, const std::string& key, int min,
              int max) const {
    const std::string expected = "expected an integer from " + std::to_string(min) + " to " +
                                 std::to_string(max) + " for \"" + key + "\"";
    if (!node.IsScalar()) Fail(MarkOf(node, key_mark), expected);
    const std::string& text = node.Scalar();
    if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) {
      Fail(node.Mark(), expected + ", got \"" + text + "\"");
    }
    const int value = std::stoi(text);
    if (value < min || value > max) Fail(node.Mark(), expected + ", got " + text);
    return value;
  }

  bool Bool(const YAML::Node& node, const YAML::Mark& key_mark, const std::string& key) const {
    if (node.IsScalar()) {
      const std::string& text = node.Scalar();
      if (text == "true") return true;
      if (text == "false") return false;
    }
    Fail(MarkOf(node, key_mark), "expected true or false for \"" + key + "\"");
  }

  uint64_t ByteSize(const YAML::Node& node, const YAML::Mark& key_mark, const std::string& key) const {
    if (!node.IsScalar()) Fail(MarkOf(node, key_mark), "expected a size like 64MiB for \"" + key + "\"");
    core::Result<uint64_t> size = ParseByteSize(node.Scalar());
    if (!size.ok()) Fail(node.Mark(), size.status().message());
    return size.value();
  }

  milliseconds Duration(const YAML::Node& node, const YAML::Mark& key_mark, const std::string& key) const {
    if (!node.IsScalar()) {
      Fail(MarkOf(node, key_mark), "expected a duration like 500ms, 2s or 1m for \"" + key + "\"");
    }
    core::Result<milliseconds> d = ParseDuration(node.Scalar());
    if (!d.ok()) Fail(node.Mark(), d.status().message());
    return d.value();
  }

 private:
  std::string file_;
};

bool IsValidTargetName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

void EnsureDefaultTarget(AgentConfig* config) {
  if (config->targets.empty()) config->targets.push_back(TargetConfig{"default", "", ""});
}

void ParseIncidents(const Reader& r, const YAML::Node& value, const YAML::Mark& key_mark,
                    IncidentConfig* out) {
  r.ForEachEntry(value, key_mark, "\"incidents\"",
                 {"max_wait", "blocked_sessions", "max_depth", "resolve_after"},
                 [&](const std::string& k, const YAML::Node& v, const YAML::Mark& km) {
                   if (k == "max_wait") {
                     out->max_wait = r.Duration(v, km, k);
                   } else if (k == "resolve_after") {
                     out->resolve_after = r.Duration(v, km, k);
                   } else if (k == "blocked_sessions") {
                     out->blocked_sessions = r.Integer(v, km, k, 1, 1000000);
                   } else {
                     out->max_depth = r.Integer(v, km, k, 1, 1000);
                   }
                 });
}

void ParseRecorder(const Reader& r, const YAML::Node& value, const YAML::Mark& key_mark,
                   RecorderConfig* out) {
  r.ForEachEntry(value, key_mark, "\"recorder\"", {"duration", "max_bytes"},
                 [&](const std::string& k, const YAML::Node& v, const YAML::Mark& km) {
                   if (k == "duration") {
                     out->duration = r.Duration(v, km, k);
                   } else {
                     out->max_bytes = r.ByteSize(v, km, k);
                   }
                 });
}

void ParseDumps(const Reader& r, const YAML::Node& value, const YAML::Mark& key_mark, DumpConfig* out) {
  r.ForEachEntry(
      value, key_mark, "\"dumps\"", {"enabled", "dir", "query_text", "flush_interval", "retention"},
      [&](const std::string& k, const YAML::Node& v, const YAML::Mark& km) {
        if (k == "enabled") {
          out->enabled = r.Bool(v, km, k);
        } else if (k == "dir") {
          out->dir = r.String(v, km, k);
          if (out->dir.empty()) r.Fail(Reader::MarkOf(v, km), "expected a directory path for \"dir\"");
        } else if (k == "query_text") {
          out->query_text = r.String(v, km, k);
          if (out->query_text != "keep" && out->query_text != "normalize" && out->query_text != "drop") {
            r.Fail(v.Mark(), "expected query_text keep, normalize or drop, got \"" + out->query_text + "\"");
          }
        } else if (k == "flush_interval") {
          out->flush_interval = r.Duration(v, km, k);
        } else {
          r.ForEachEntry(v, km, "\"retention\"", {"max_count", "max_age", "max_total_size"},
                         [&](const std::string& rk, const YAML::Node& rv, const YAML::Mark& rkm) {
                           if (rk == "max_count") {
                             out->max_count = static_cast<size_t>(r.Integer(rv, rkm, rk, 0, 1000000));
                           } else if (rk == "max_age") {
                             out->max_age = r.Duration(rv, rkm, rk);
                           } else {
                             out->max_total_bytes = r.ByteSize(rv, rkm, rk);
                           }
                         });
        }
      });
}

std::vector<std::string> StringList(const Reader& r, const YAML::Node& v, const YAML::Mark& km,
                                    const std::string& k) {
  if (!v.IsSequence()) r.Fail(Reader::MarkOf(v, km), "expected a list of strings for \"" + k + "\"");
  std::vector<std::string> out;
  for (const YAML::Node& item : v) out.push_back(r.String(item, item.Mark(), k));
  return out;
}

std::map<std::string, std::string> StringMap(const Reader& r, const YAML::Node& v, const YAML::Mark& km,
                                             const std::string& k) {
  if (!v.IsMap()) r.Fail(Reader::MarkOf(v, km), "expected a mapping of names to strings for \"" + k + "\"");
  std::map<std::string, std::string> out;
  for (const auto& entry : v) {
    const std::string name = r.String(entry.first, entry.first.Mark(), k);
    if (!out.emplace(name, r.String(entry.second, entry.first.Mark(), name)).second) {
      std::string message = "duplicate key \"";
      r.Fail(entry.first.Mark(), message.append(name).append("\" in \"").append(k).append("\""));
    }
  }
  return out;
}

void ParseHooks(const Reader& r, const YAML::Node& value, const YAML::Mark& key_mark,
                hooks::HooksConfig* out) {
  if (value.IsNull()) return;
  if (!value.IsSequence())
    r.Fail(Reader::MarkOf(value, key_mark), "expected \"hooks\" to be a list of hooks");
  static const std::set<std::string> kCommon = {"name", "type", "events", "timeout"};
  static const std::set<std::string> kExec = {"argv", "env", "kill_grace"};
  static const std::set<std::string> kWebhook = {"url",     "format",  "headers",        "header_files",
                                                 "ca_file", "retries", "initial_backoff"};
  for (const YAML::Node& item : value) {
    if (!item.IsMap()) r.Fail(item.Mark(), "expected a hook: a mapping with name, type and its settings");
    // The type decides which keys are allowed, so read it first.
    const YAML::Node type_node = item["type"];
    if (!type_node) r.Fail(item.Mark(), "expected a \"type\" (exec or webhook) in every hook");
    const std::string type = r.String(type_node, item.Mark(), "type");
    const std::optional<hooks::HookKind> kind = hooks::ParseHookKind(type);
    if (!kind) r.Fail(type_node.Mark(), "expected hook type exec or webhook, got \"" + type + "\"");
    std::set<std::string> known = kCommon;
    const std::set<std::string>& extra = *kind == hooks::HookKind::kExec ? kExec : kWebhook;
    known.insert(extra.begin(), extra.end());
    hooks::HookConfig hook;
    hook.kind = *kind;
    bool has_name = false;
    r.ForEachEntry(item, item.Mark(), std::string("a ") + type + " hook", known,
                   [&](const std::string& k, const YAML::Node& v, const YAML::Mark& km) {
                     if (k == "name") {
                       hook.name = r.String(v, km, k);
                       has_name = true;
                     } else if (k == "type") {
                       // read above
                     } else if (k == "events") {
                       hook.events = StringList(r, v, km, k);
                     } else if (k == "timeout") {
                       hook.timeout = r.Duration(v, km, k);
                     } else if (k == "argv") {
                       hook.exec.argv = StringList(r, v, km, k);
                     } else if (k == "env") {
                       hook.exec.env = StringMap(r, v, km, k);
                     } else if (k == "kill_grace") {
                       hook.exec.kill_grace = r.Duration(v, km, k);
                     } else if (k == "url") {
                       hook.webhook.url = r.String(v, km, k);
                     } else if (k == "format") {
                       const std::string f = r.String(v, km, k);
                       const std::optional<hooks::WebhookFormat> format = hooks::ParseWebhookFormat(f);
                       if (!format) r.Fail(v.Mark(), "expected format json or chat, got \"" + f + "\"");
                       hook.webhook.format = *format;
                     } else if (k == "headers") {
                       hook.webhook.headers = StringMap(r, v, km, k);
                     } else if (k == "header_files") {
                       hook.webhook.header_files = StringMap(r, v, km, k);
                     } else if (k == "ca_file") {
                       hook.webhook.ca_file = r.String(v, km, k);
                     } else if (k == "retries") {
                       hook.webhook.retries = r.Integer(v, km, k, 0, 100);
                     } else {
                       hook.webhook.initial_backoff = r.Duration(v, km, k);
                     }
                   });
    if (!has_name) r.Fail(item.Mark(), "expected a \"name\" in every hook");
    core::Status valid = hooks::ValidateHookConfig(hook);
    if (!valid.ok()) r.Fail(item.Mark(), valid.message());
    for (const hooks::HookConfig& other : out->hooks) {
      if (other.name == hook.name) r.Fail(item.Mark(), "duplicate hook name \"" + hook.name + "\"");
    }
    out->hooks.push_back(std::move(hook));
  }
}

void ParseHookDelivery(const Reader& r, const YAML::Node& value, const YAML::Mark& key_mark,
                       hooks::HooksConfig* out) {
  r.ForEachEntry(
      value, key_mark, "\"hook_delivery\"", {"queue_capacity", "query_text", "incident_update_min_interval"},
      [&](const std::string& k, const YAML::Node& v, const YAML::Mark& km) {
        if (k == "queue_capacity") {
          out->queue_capacity = static_cast<size_t>(r.Integer(v, km, k, 1, 1000000));
        } else if (k == "query_text") {
          const std::string mode = r.String(v, km, k);
          const std::optional<forensics::QueryTextMode> parsed = forensics::ParseQueryTextMode(mode);
          if (!parsed) {
            r.Fail(v.Mark(), "expected query_text keep, normalize or drop, got \"" + mode + "\"");
          }
          out->query_text = *parsed;
        } else {
          out->incident_update_min_interval = r.Duration(v, km, k);
        }
      });
}

void ParseProtect(const Reader& r, const YAML::Node& value, const YAML::Mark& key_mark,
                  core::Protection* out) {
  r.ForEachEntry(
      value, key_mark, "\"protect\"", {"users", "applications", "databases", "clients"},
      [&](const std::string& k, const YAML::Node& v, const YAML::Mark& km) {
        if (!v.IsSequence()) r.Fail(Reader::MarkOf(v, km), "expected a list of strings for \"" + k + "\"");
        for (const YAML::Node& item : v) {
          const std::string text = r.String(item, item.Mark(), k);
          if (k == "clients") {
            core::ClientMatcher m;
            m.text = text;
            if (text == "local") {
              m.local = true;
            } else if (std::optional<core::Cidr> cidr = core::ParseCidr(text)) {
              m.range = *cidr;
            } else {
              r.Fail(item.Mark(),
                     "expected an address range like 10.0.0.0/8, 192.0.2.7, 2001:db8::/32 or the word "
                     "local, got \"" +
                         text + "\"");
            }
            out->clients.push_back(std::move(m));
          } else {
            if (text.empty()) r.Fail(item.Mark(), "expected a name (\"*\" matches any characters)");
            std::vector<core::NamePattern>& list =
                k == "users" ? out->users : (k == "applications" ? out->applications : out->databases);
            list.push_back(core::NamePattern{text});
          }
        }
      });
}

void ParseRemediation(const Reader& r, const YAML::Node& value, const YAML::Mark& key_mark,
                      RemediationConfig* out) {
  r.ForEachEntry(value, key_mark, "\"remediation\"",
                 {"rules_file", "enforce", "audit_log", "audit_sync", "kill_switch_file", "protect",
                  "settle_after_action", "global_max_per_minute", "rule_max_per_minute", "session_cooldown",
                  "breaker_failures", "breaker_open_for", "terminate_wait", "idle_disconnect"},
                 [&](const std::string& k, const YAML::Node& v, const YAML::Mark& km) {
                   if (k == "rules_file") {
                     out->rules_file = r.String(v, km, k);
                   } else if (k == "enforce") {
                     out->enforce = r.Bool(v, km, k);
                   } else if (k == "audit_log") {
                     out->audit_log = r.String(v, km, k);
                     if (out->audit_log.empty())
                       r.Fail(Reader::MarkOf(v, km), "expected a file path for \"audit_log\"");
                   } else if (k == "audit_sync") {
                     out->audit_sync = r.Bool(v, km, k);
                   } else if (k == "kill_switch_file") {
                     out->kill_switch_file = r.String(v, km, k);
                   } else if (k == "protect") {
                     ParseProtect(r, v, km, &out->protect);
                   } else if (k == "settle_after_action") {
                     out->settle_after_action = r.Duration(v, km, k);
                   } else if (k == "global_max_per_minute") {
                     out->global_max_per_minute = r.Integer(v, km, k, 0, 10000);
                   } else if (k == "rule_max_per_minute") {
                     out->rule_max_per_minute = r.Integer(v, km, k, 0, 10000);
                   } else if (k == "session_cooldown") {
                     out->session_cooldown = r.Duration(v, km, k);
                   } else if (k == "breaker_failures") {
                     out->breaker_failures = r.Integer(v, km, k, 1, 1000);
                   } else if (k == "breaker_open_for") {
                     out->breaker_open_for = r.Duration(v, km, k);
                   } else if (k == "terminate_wait") {
                     out->terminate_wait = r.Duration(v, km, k);
                   } else {
                     out->idle_disconnect = r.Duration(v, km, k);
                   }
                 });
}

AgentConfig Parse(const std::string& text, const std::string& file_name) {
  const Reader r(file_name);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    r.Fail(e.mark, "invalid YAML: " + e.msg);
  }
  AgentConfig config;
  const YAML::Mark top{};  // 0:0 -> reported as 1:1
  r.ForEachEntry(
      root, top, "the top level",
      {"listen", "interval", "web_config_file", "log", "targets", "session", "max_backoff", "incidents",
       "recorder", "dumps", "hooks", "hook_delivery", "remediation"},
      [&](const std::string& key, const YAML::Node& value, const YAML::Mark& key_mark) {
        if (key == "listen") {
          config.listen = r.String(value, key_mark, key);
          core::Status s = ValidateListen(config.listen);
          if (!s.ok()) r.Fail(Reader::MarkOf(value, key_mark), s.message());
        } else if (key == "interval") {
          config.interval = r.Duration(value, key_mark, key);
          if (config.interval < milliseconds(100)) {
            r.Fail(value.Mark(), "expected an interval of at least 100ms, got \"" + value.Scalar() + "\"");
          }
        } else if (key == "max_backoff") {
          config.max_backoff = r.Duration(value, key_mark, key);
        } else if (key == "web_config_file") {
          config.web_config_file = r.String(value, key_mark, key);
        } else if (key == "log") {
          r.ForEachEntry(
              value, key_mark, "\"log\"", {"level", "format"},
              [&](const std::string& k, const YAML::Node& v, const YAML::Mark& km) {
                std::string s = r.String(v, km, k);
                if (k == "level") {
                  if (!IsValidLogLevel(s)) {
                    r.Fail(v.Mark(),
                           "expected a log level (trace, debug, info, warn, error, critical, off), got \"" +
                               s + "\"");
                  }
                  config.log.level = s;
                } else {
                  if (!IsValidLogFormat(s))
                    r.Fail(v.Mark(), "expected log format text or json, got \"" + s + "\"");
                  config.log.format = s;
                }
              });
        } else if (key == "session") {
          r.ForEachEntry(value, key_mark, "\"session\"",
                         {"statement_timeout", "lock_timeout", "connect_timeout"},
                         [&](const std::string& k, const YAML::Node& v, const YAML::Mark& km) {
                           const milliseconds d = r.Duration(v, km, k);
                           if (k == "statement_timeout") {
                             config.session.statement_timeout = d;
                           } else if (k == "lock_timeout") {
                             config.session.lock_timeout = d;
                           } else {
                             config.session.connect_timeout = d;
                           }
                         });
        } else if (key == "incidents") {
          ParseIncidents(r, value, key_mark, &config.incidents);
        } else if (key == "recorder") {
          ParseRecorder(r, value, key_mark, &config.recorder);
        } else if (key == "dumps") {
          ParseDumps(r, value, key_mark, &config.dumps);
        } else if (key == "hooks") {
          ParseHooks(r, value, key_mark, &config.hooks);
        } else if (key == "hook_delivery") {
          ParseHookDelivery(r, value, key_mark, &config.hooks);
        } else if (key == "remediation") {
          ParseRemediation(r, value, key_mark, &config.remediation);
        } else if (key == "targets") {
          if (value.IsNull()) return;
          if (!value.IsSequence()) {
            r.Fail(Reader::MarkOf(value, key_mark),
                   "expected \"targets\" to be a list of {name, dsn, password_file}");
          }
          std::map<std::string, YAML::Mark> names;
          for (const YAML::Node& item : value) {
            TargetConfig target;
            bool has_name = false;
            YAML::Mark name_mark = item.Mark();
            r.ForEachEntry(
                item, item.Mark(), "a target", {"name", "dsn", "password_file"},
                [&](const std::string& k, const YAML::Node& v, const YAML::Mark& km) {
                  std::string s = r.String(v, km, k);
                  if (k == "name") {
                    if (!IsValidTargetName(s)) {
                      r.Fail(Reader::MarkOf(v, km),
                             "expected a target name of 1 to 64 letters, digits, '_', '-' or '.', got \"" +
                                 s + "\"");
                    }
                    target.name = s;
                    has_name = true;
                    name_mark = v.Mark();
                  } else if (k == "dsn") {
                    core::Result<pg::ConnParams> parsed = pg::ParseDsn(s);
                    if (!parsed.ok()) {
                      r.Fail(Reader::MarkOf(v, km), "invalid dsn: " + parsed.status().message());
                    }
                    target.dsn = s;
                  } else {
                    if (s.empty())
                      r.Fail(Reader::MarkOf(v, km), "expected a file path for \"password_file\"");
                    target.password_file = s;
                  }
                });
            if (!item.IsMap()) continue;  // null list item: ForEachEntry accepted it as empty
            if (!has_name) r.Fail(item.Mark(), "expected a \"name\" in every target");
            auto [it, inserted] = names.emplace(target.name, name_mark);
            if (!inserted) {
              r.Fail(name_mark, "duplicate target name \"" + target.name + "\" (first defined at line " +
                                    std::to_string(it->second.line + 1) + ")");
            }
            config.targets.push_back(std::move(target));
          }
        }
      });
  EnsureDefaultTarget(&config);
  return config;
}

}  // namespace

core::Result<AgentConfig> ParseAgentConfig(const std::string& text, const std::string& file_name) {
  try {
    return Parse(text, file_name);
  } catch (const ConfigError& e) {
    return core::Status::InvalidArgument(e.message);
  } catch (const YAML::Exception& e) {
    // Anything yaml-cpp raises outside parsing (should not happen after the type checks above).
    std::ostringstream out;
    out << file_name << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": " << e.msg;
    return core::Status::InvalidArgument(out.str());
  }
}

core::Result<AgentConfig> LoadAgentConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return core::Status::InvalidArgument(path + ": cannot read config file: " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return core::Status::InvalidArgument(path + ": cannot read config file");
  return ParseAgentConfig(text.str(), path);
}

core::Status ApplyOverrides(const ConfigOverrides& overrides, AgentConfig* config) {
  if (overrides.dsn) {
    core::Result<pg::ConnParams> parsed = pg::ParseDsn(*overrides.dsn);
    if (!parsed.ok()) return core::Status::InvalidArgument("--dsn: " + parsed.status().message());
    config->targets.clear();
    config->targets.push_back(TargetConfig{"default", *overrides.dsn, ""});
  }
  if (overrides.listen) {
    core::Status s = ValidateListen(*overrides.listen);
    if (!s.ok()) return core::Status::InvalidArgument("--listen: " + s.message());
    config->listen = *overrides.listen;
  }
  if (overrides.interval) {
    core::Result<milliseconds> d = ParseDuration(*overrides.interval);
    if (!d.ok()) return core::Status::InvalidArgument("--interval: " + d.status().message());
    if (d.value() < milliseconds(100)) {
      return core::Status::InvalidArgument("--interval: expected at least 100ms, got \"" +
                                           *overrides.interval + "\"");
    }
    config->interval = d.value();
  }
  if (overrides.web_config_file) config->web_config_file = *overrides.web_config_file;
  // Signals need both: `remediation.enforce: true` in the file and --enforce on the command line.
  config->remediation.enforce = config->remediation.enforce && overrides.enforce;
  if (overrides.dump_dir) {
    if (overrides.dump_dir->empty())
      return core::Status::InvalidArgument("--dump-dir: expected a directory path");
    config->dumps.dir = *overrides.dump_dir;
  }
  if (overrides.log_level) {
    if (!IsValidLogLevel(*overrides.log_level)) {
      return core::Status::InvalidArgument(
          "--log-level: expected trace, debug, info, warn, error, critical or off, got \"" +
          *overrides.log_level + "\"");
    }
    config->log.level = *overrides.log_level;
  }
  if (overrides.log_format) {
    if (!IsValidLogFormat(*overrides.log_format)) {
      return core::Status::InvalidArgument("--log-format: expected text or json, got \"" +
                                           *overrides.log_format + "\"");
    }
    config->log.format = *overrides.log_format;
  }
  EnsureDefaultTarget(config);
  return core::Status::Ok();
}

core::Result<milliseconds> ParseDuration(const std::string& text) {
  const auto bad = [&text]() {
    return core::Status::InvalidArgument("expected a duration like 500ms, 2s or 1m, got \"" + text + "\"");
  };
  if (text.empty()) return bad();
  double total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t number_start = i;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    if (i == number_start) return bad();
    const std::string number = text.substr(number_start, i - number_start);
    if (number.find('.') != number.rfind('.') || number == ".") return bad();
    const size_t unit_start = i;
    while (i < text.size() && text[i] >= 'a' && text[i] <= 'z') ++i;
    const std::string unit = text.substr(unit_start, i - unit_start);
    double scale = 0;
    if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60 * 1000;
    } else if (unit == "h") {
      scale = 3600 * 1000;
    } else if (unit == "d") {
      scale = 24 * 3600 * 1000;
    } else {
      return bad();
    }
    total_ms += std::stod(number) * scale;
  }
  if (!(total_ms >= 1) || total_ms > 366 * 24 * 3600 * 1000.0) {
    return core::Status::InvalidArgument("expected a duration between 1ms and 366d, got \"" + text + "\"");
  }
  return milliseconds(static_cast<int64_t>(std::llround(total_ms)));
}

core::Result<uint64_t> ParseByteSize(const std::string& text) {
  const auto bad = [&text]() {
    return core::Status::InvalidArgument("expected a size like 64MiB, 1GiB or 500MB, got \"" + text + "\"");
  };
  size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  const std::string number = text.substr(0, i);
  if (number.empty() || number == "." || number.find('.') != number.rfind('.')) return bad();
  const std::string unit = text.substr(i);
  static const std::map<std::string, double> kUnits = {
      {"", 1},     {"B", 1},        {"kB", 1e3},        {"KB", 1e3},           {"MB", 1e6},
      {"GB", 1e9}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
  };
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) return bad();
  const double bytes = std::stod(number) * it->second;
  if (!(bytes >= 1) || bytes > 1099511627776.0) {
    return core::Status::InvalidArgument("expected a size between 1 byte and 1TiB, got \"" + text + "\"");
  }
  return static_cast<uint64_t>(std::llround(bytes));
}

core::Status ValidateListen(const std::string& listen) {
  const auto bad = [&listen](const std::string& why) {
    return core::Status::InvalidArgument(
        "expected a listen address like :9817, 127.0.0.1:9817 or [::1]:9817 (" + why + "), got \"" + listen +
        "\"");
  };
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return bad("missing :port");
  const std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (port.empty() || port.size() > 5) return bad("bad port");
  for (char c : port) {
    if (c < '0' || c > '9') return bad("bad port");
  }
  if (std::stoi(port) > 65535) return bad("port above 65535");
  if (!host.empty() && host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return bad("unterminated IPv6 address");
  } else if (host.find(':') != std::string::npos) {
    return bad("IPv6 addresses need brackets");
  }
  for (char c : host) {
    if (c == ' ' || c == '/' || c == '\t') return bad("bad host");
  }
  return core::Status::Ok();
}

bool IsValidLogLevel(const std::string& level) {
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  return kLevels.count(level) > 0;
}

bool IsValidLogFormat(const std::string& format) { return format == "text" || format == "json"; }

}  // namespace lockwatch::config
