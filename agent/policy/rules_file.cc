#include "agent/policy/rules_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "agent/config/config.h"
#include "agent/core/lock_mode.h"

namespace lockwatch::policy {
namespace {

// Parse failures travel as this exception inside this file only (as in agent/config): the validation code
// stays one check per line. ParseRules turns it into a Status.
struct RulesError {
  std::string message;
};

constexpr double kDefaultGraceSeconds = 30;

const std::set<std::string>& KnownStates() {
  static const std::set<std::string> kStates = {
      "active",  "idle", "idle in transaction", "idle in transaction (aborted)", "fastpath function call",
      "disabled"};
  return kStates;
}

const std::set<std::string>& KnownLockTypes() {
  static const std::set<std::string> kTypes = {"relation", "extend",        "frozenid",   "page",
                                               "tuple",    "transactionid", "virtualxid", "spectoken",
                                               "object",   "userlock",      "advisory",   "applytransaction"};
  return kTypes;
}

// Concatenates without a temporary per `+` (several messages are built inside loops).
std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

std::string JoinSet(const std::set<std::string>& values) {
  std::string out;
  for (const std::string& v : values) out.append(out.empty() ? "" : ", ").append(v);
  return out;
}

class Reader {
 public:
  explicit Reader(std::string file_name) : file_(std::move(file_name)) {}

  [[noreturn]] void Fail(const YAML::Mark& mark, const std::string& what) const {
    std::ostringstream out;
    out << file_ << ":" << (mark.line >= 0 ? mark.line + 1 : 1) << ":"
        << (mark.column >= 0 ? mark.column + 1 : 1) << ": " << what;
    throw RulesError{out.str()};
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
      const std::vector<std::string>& known,
      const std::function<void(const std::string&, const YAML::Node&, const YAML::Mark&)>& fn) const {
    if (!map.IsMap()) Fail(MarkOf(map, where), "expected " + what + " to be a mapping of keys to values");
    std::set<std::string> seen;
    for (const auto& entry : map) {
      const YAML::Node key_node = entry.first;
      const YAML::Node value = entry.second;
      if (!key_node.IsScalar()) Fail(key_node.Mark(), "expected a key name in " + what);
      const std::string& key = key_node.Scalar();
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string message = Cat({"unknown key \"", key, "\" in ", what, " (expected one of: "});
        for (size_t i = 0; i < known.size(); ++i) message.append(i == 0 ? "" : ", ").append(known[i]);
        Fail(key_node.Mark(), message + ")");
      }
      if (!seen.insert(key).second) Fail(key_node.Mark(), Cat({"duplicate key \"", key, "\" in ", what}));
      fn(key, value, key_node.Mark());
    }
  }

  std::string String(const YAML::Node& node, const YAML::Mark& key_mark, const std::string& key) const {
    if (!node.IsScalar()) Fail(MarkOf(node, key_mark), "expected a string for \"" + key + "\"");
    return node.Scalar();
  }

  // A scalar or a list of scalars; never empty.
  std::vector<std::pair<std::string, YAML::Mark>> Strings(const YAML::Node& node, const YAML::Mark& key_mark,
                                                          const std::string& key,
                                                          const std::string& what) const {
    std::vector<std::pair<std::string, YAML::Mark>> out;
    if (node.IsScalar()) {
      out.emplace_back(node.Scalar(), node.Mark());
    } else if (node.IsSequence()) {
      for (const YAML::Node& item : node) {
        if (!item.IsScalar())
          Fail(MarkOf(item, node.Mark()), Cat({"expected ", what, " in the list \"", key, "\""}));
        out.emplace_back(item.Scalar(), item.Mark());
      }
    }
    if (out.empty())
      Fail(MarkOf(node, key_mark), "expected " + what + " or a list of them for \"" + key + "\"");
    return out;
  }

  double Seconds(const YAML::Node& node, const YAML::Mark& key_mark, const std::string& key) const {
    if (!node.IsScalar()) {
      Fail(MarkOf(node, key_mark), "expected a duration like 500ms, 30s, 5m or 1h for \"" + key + "\"");
    }
    core::Result<std::chrono::milliseconds> d = config::ParseDuration(node.Scalar());
    if (!d.ok()) Fail(node.Mark(), d.status().message() + " for \"" + key + "\"");
    return static_cast<double>(d.value().count()) / 1000.0;
  }

  int Count(const YAML::Node& node, const YAML::Mark& key_mark, const std::string& key) const {
    const std::string expected = "expected a whole number of at least 1 for \"" + key + "\"";
    if (!node.IsScalar()) Fail(MarkOf(node, key_mark), expected);
    const std::string& text = node.Scalar();
    if (text.empty() || text.size() > 6) Fail(node.Mark(), Cat({expected, ", got \"", text, "\""}));
    int value = 0;
    for (char c : text) {
      if (c < '0' || c > '9') Fail(node.Mark(), Cat({expected, ", got \"", text, "\""}));
      value = value * 10 + (c - '0');
    }
    if (value < 1) Fail(node.Mark(), Cat({expected, ", got \"", text, "\""}));
    return value;
  }

  bool Bool(const YAML::Node& node, const YAML::Mark& key_mark, const std::string& key) const {
    const std::string expected = "expected true or false for \"" + key + "\"";
    if (!node.IsScalar()) Fail(MarkOf(node, key_mark), expected);
    const std::string& text = node.Scalar();
    if (text == "true") return true;
    if (text == "false") return false;
    Fail(node.Mark(), Cat({expected, ", got \"", text, "\""}));
  }

 private:
  std::string file_;
};

std::optional<core::LockMode> ParseModeName(const std::string& text) {
  std::optional<core::LockMode> mode = core::ParseLockMode(text);
  if (!mode) mode = core::ParseLockMode(text + "Lock");
  if (mode == core::LockMode::kSIRead || mode == core::LockMode::kNone) return std::nullopt;
  return mode;
}

std::vector<core::NamePattern> Patterns(const Reader& r, const YAML::Node& v, const YAML::Mark& km,
                                        const std::string& key, const std::string& what) {
  std::vector<core::NamePattern> out;
  for (const auto& [text, mark] : r.Strings(v, km, key, what)) {
    if (text.empty()) r.Fail(mark, Cat({"expected ", what, " for \"", key, "\", got an empty string"}));
    out.push_back(core::NamePattern{text});
  }
  return out;
}

const std::vector<std::string>& MatchKeys() {
  static const std::vector<std::string> kKeys = {"role",
                                                 "state",
                                                 "min_idle_in_transaction",
                                                 "min_running",
                                                 "min_waiting",
                                                 "min_transaction_age",
                                                 "min_blocked_direct",
                                                 "min_blocked_total",
                                                 "min_chain_depth",
                                                 "lock_type",
                                                 "lock_mode",
                                                 "relation",
                                                 "database",
                                                 "user",
                                                 "application",
                                                 "client",
                                                 "backend_type",
                                                 "query",
                                                 "blocks_application",
                                                 "blocks_user",
                                                 "include_superusers"};
  return kKeys;
}

core::RuleConditions ParseMatch(const Reader& r, const YAML::Node& node, const YAML::Mark& key_mark) {
  core::RuleConditions m;
  bool has_role = false;
  r.ForEachEntry(
      node, key_mark, "\"match\"", MatchKeys(),
      [&](const std::string& key, const YAML::Node& v, const YAML::Mark& km) {
        if (key == "role") {
          const std::string text = r.String(v, km, key);
          const std::optional<core::PolicyRole> role = core::ParsePolicyRole(text);
          if (!role) {
            r.Fail(Reader::MarkOf(v, km),
                   "expected a role (root, amplifier, blocker or any), got \"" + text + "\"");
          }
          m.role = *role;
          has_role = true;
        } else if (key == "state") {
          for (const auto& [text, mark] : r.Strings(v, km, key, "a session state")) {
            if (KnownStates().count(text) == 0) {
              r.Fail(mark, "expected a pg_stat_activity state (" + JoinSet(KnownStates()) + "), got \"" +
                               text + "\"");
            }
            m.states.push_back(text);
          }
        } else if (key == "min_idle_in_transaction") {
          m.min_idle_in_transaction = r.Seconds(v, km, key);
        } else if (key == "min_running") {
          m.min_running = r.Seconds(v, km, key);
        } else if (key == "min_waiting") {
          m.min_waiting = r.Seconds(v, km, key);
        } else if (key == "min_transaction_age") {
          m.min_transaction_age = r.Seconds(v, km, key);
        } else if (key == "min_blocked_direct") {
          m.min_blocked_direct = r.Count(v, km, key);
        } else if (key == "min_blocked_total") {
          m.min_blocked_total = r.Count(v, km, key);
        } else if (key == "min_chain_depth") {
          m.min_chain_depth = r.Count(v, km, key);
        } else if (key == "lock_type") {
          for (const auto& [text, mark] : r.Strings(v, km, key, "a lock type")) {
            if (KnownLockTypes().count(text) == 0) {
              r.Fail(mark, "expected a pg_locks lock type (" + JoinSet(KnownLockTypes()) + "), got \"" +
                               text + "\"");
            }
            m.lock_types.push_back(text);
          }
        } else if (key == "lock_mode") {
          for (const auto& [text, mark] : r.Strings(v, km, key, "a lock mode")) {
            const std::optional<core::LockMode> mode = ParseModeName(text);
            if (!mode) {
              r.Fail(mark,
                     "expected a lock mode (AccessShareLock, RowShareLock, RowExclusiveLock, "
                     "ShareUpdateExclusiveLock, ShareLock, ShareRowExclusiveLock, ExclusiveLock, "
                     "AccessExclusiveLock; the \"Lock\" suffix may be omitted), got \"" +
                         text + "\"");
            }
            m.lock_modes.push_back(*mode);
          }
        } else if (key == "relation") {
          m.relations = Patterns(r, v, km, key, "a relation name like public.accounts");
        } else if (key == "database") {
          m.databases = Patterns(r, v, km, key, "a database name");
        } else if (key == "user") {
          m.users = Patterns(r, v, km, key, "a user name");
        } else if (key == "application") {
          m.applications = Patterns(r, v, km, key, "an application name");
        } else if (key == "blocks_application") {
          m.blocks_applications = Patterns(r, v, km, key, "an application name");
        } else if (key == "blocks_user") {
          m.blocks_users = Patterns(r, v, km, key, "a user name");
        } else if (key == "client") {
          for (const auto& [text, mark] : r.Strings(v, km, key, "an address range or local")) {
            core::Result<core::ClientMatcher> c = ParseClientMatcher(text);
            if (!c.ok()) r.Fail(mark, c.status().message());
            m.clients.push_back(c.value());
          }
        } else if (key == "backend_type") {
          for (const auto& [text, mark] : r.Strings(v, km, key, "a backend type")) {
            if (text.empty()) r.Fail(mark, "expected a backend type like \"client backend\"");
            m.backend_types.push_back(text);
          }
        } else if (key == "query") {
          const std::string text = r.String(v, km, key);
          const YAML::Mark mark = Reader::MarkOf(v, km);
          if (text.empty() || text.size() > kMaxQueryPatternLength) {
            r.Fail(mark, "expected a regular expression of 1 to " + std::to_string(kMaxQueryPatternLength) +
                             " characters for \"query\"");
          }
          try {
            m.query = core::QueryPattern{
                text, std::regex(text, std::regex::ECMAScript | std::regex::icase | std::regex::optimize)};
          } catch (const std::regex_error& e) {
            r.Fail(mark, "expected a regular expression (ECMAScript syntax) for \"query\": " +
                             std::string(e.what()));
          }
        } else if (key == "include_superusers") {
          m.include_superusers = r.Bool(v, km, key);
        }
      });
  if (!has_role)
    r.Fail(Reader::MarkOf(node, key_mark),
           "expected \"role\" in \"match\" (root, amplifier, blocker or any)");
  return m;
}

bool IsValidRuleName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::optional<core::ActionKind> ParseAction(const std::string& text) {
  for (core::ActionKind k : {core::ActionKind::kLog, core::ActionKind::kCancel, core::ActionKind::kTerminate,
                             core::ActionKind::kCancelThenTerminate}) {
    if (text == core::ActionKindName(k)) return k;
  }
  return std::nullopt;
}

core::Rule ParseRule(const Reader& r, const YAML::Node& item, const YAML::Mark& list_mark) {
  core::Rule rule;
  const YAML::Mark item_mark = Reader::MarkOf(item, list_mark);
  rule.line = item_mark.line + 1;
  bool has_name = false;
  bool has_match = false;
  bool has_action = false;
  std::optional<YAML::Mark> grace_mark;
  YAML::Mark action_mark = item_mark;
  r.ForEachEntry(item, item_mark, "a rule", {"name", "description", "match", "action", "grace"},
                 [&](const std::string& key, const YAML::Node& v, const YAML::Mark& km) {
                   if (key == "name") {
                     rule.name = r.String(v, km, key);
                     if (!IsValidRuleName(rule.name)) {
                       r.Fail(Reader::MarkOf(v, km),
                              "expected a rule name of 1 to 64 letters, digits, '_', '-' or '.', got \"" +
                                  rule.name + "\"");
                     }
                     has_name = true;
                   } else if (key == "description") {
                     rule.description = r.String(v, km, key);
                   } else if (key == "match") {
                     rule.match = ParseMatch(r, v, km);
                     has_match = true;
                   } else if (key == "action") {
                     const std::string text = r.String(v, km, key);
                     const std::optional<core::ActionKind> action = ParseAction(text);
                     action_mark = Reader::MarkOf(v, km);
                     if (!action) {
                       r.Fail(action_mark,
                              "expected an action (log, cancel, terminate or cancel_then_terminate), got \"" +
                                  text + "\"");
                     }
                     rule.action = *action;
                     has_action = true;
                   } else if (key == "grace") {
                     rule.grace_seconds = r.Seconds(v, km, key);
                     grace_mark = km;
                   }
                 });
  if (!has_name) r.Fail(item_mark, "expected a \"name\" in every rule");
  if (!has_match) r.Fail(item_mark, "expected a \"match\" in rule \"" + rule.name + "\"");
  if (!has_action) {
    r.Fail(item_mark, "expected an \"action\" (log, cancel, terminate or cancel_then_terminate) in rule \"" +
                          rule.name + "\"");
  }
  if (rule.action == core::ActionKind::kCancelThenTerminate) {
    if (!grace_mark) rule.grace_seconds = kDefaultGraceSeconds;
  } else if (grace_mark) {
    r.Fail(*grace_mark, "\"grace\" applies only to action cancel_then_terminate");
  }
  if ((rule.action == core::ActionKind::kCancel || rule.action == core::ActionKind::kCancelThenTerminate) &&
      rule.match.OnlyIdleInTransaction()) {
    r.Fail(action_mark, std::string("expected action terminate or log: rule \"") + rule.name +
                            "\" only matches idle-in-transaction sessions, and cancel does nothing to them "
                            "(only terminate ends their transaction)");
  }
  return rule;
}

core::Policy Parse(const std::string& text, const std::string& file_name, std::vector<std::string>* errors) {
  const Reader r(file_name);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    r.Fail(e.mark, "invalid YAML: " + e.msg);
  }
  core::Policy policy;
  policy.source = file_name;
  const YAML::Mark top{};  // 0:0 -> reported as 1:1
  if (root.IsNull()) r.Fail(top, "expected a \"rules\" list at the top level (the file is empty)");
  bool has_rules = false;
  std::map<std::string, int> names;
  r.ForEachEntry(
      root, top, "the top level", {"version", "rules"},
      [&](const std::string& key, const YAML::Node& value, const YAML::Mark& key_mark) {
        if (key == "version") {
          if (!value.IsScalar() || value.Scalar() != "1") {
            r.Fail(Reader::MarkOf(value, key_mark), "expected version 1");
          }
          return;
        }
        has_rules = true;
        if (value.IsNull()) return;  // `rules:` with nothing: an empty policy
        if (!value.IsSequence()) {
          r.Fail(Reader::MarkOf(value, key_mark),
                 "expected \"rules\" to be a list of rules (- name: ..., match: ..., action: ...)");
        }
        for (const YAML::Node& item : value) {
          try {
            core::Rule rule = ParseRule(r, item, value.Mark());
            auto [it, inserted] = names.emplace(rule.name, rule.line);
            if (!inserted) {
              YAML::Mark name_mark = item["name"].Mark();
              r.Fail(name_mark, "duplicate rule name \"" + rule.name + "\" (first defined at line " +
                                    std::to_string(it->second) + ")");
            }
            policy.rules.push_back(std::move(rule));
          } catch (const RulesError& e) {
            // Keep going: every rule's first error is reported in one run of `rules check`.
            errors->push_back(e.message);
          }
        }
      });
  if (!has_rules) r.Fail(top, "expected a \"rules\" list at the top level");
  return policy;
}

}  // namespace

core::Result<core::ClientMatcher> ParseClientMatcher(const std::string& text) {
  core::ClientMatcher m;
  m.text = text;
  if (text == "local") {
    m.local = true;
    return m;
  }
  std::optional<core::Cidr> cidr = core::ParseCidr(text);
  if (!cidr) {
    return core::Status::InvalidArgument(
        "expected an address range like 10.0.0.0/8, 192.0.2.7, 2001:db8::/32 or the word local, got \"" +
        text + "\"");
  }
  m.range = *cidr;
  return m;
}

core::Result<core::Policy> ParseRules(const std::string& text, const std::string& file_name) {
  std::vector<std::string> errors;
  try {
    core::Policy policy = Parse(text, file_name, &errors);
    if (errors.empty()) return policy;
  } catch (const RulesError& e) {
    errors.push_back(e.message);
  } catch (const YAML::Exception& e) {
    std::ostringstream out;
    out << file_name << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": " << e.msg;
    errors.push_back(out.str());
  }
  std::string message;
  for (const std::string& e : errors) message.append(message.empty() ? "" : "\n").append(e);
  return core::Status::InvalidArgument(message);
}

core::Result<core::Policy> LoadRules(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::Status::InvalidArgument(path + ": cannot read rules file: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return core::Status::InvalidArgument(path + ": cannot read rules file");
  return ParseRules(text.str(), path);
}

}  // namespace lockwatch::policy
