#include "agent/policy/rules_command.h"

#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "agent/core/analysis.h"
#include "agent/forensics/dump_reader.h"
#include "agent/forensics/dump_records.h"
#include "agent/forensics/query_text.h"
#include "agent/json/iso_time.h"
#include "agent/policy/rules_file.h"

namespace lockwatch::policy {
namespace {

using nlohmann::json;

// One line of the replay timeline.
struct Entry {
  std::string dump;
  std::string target;
  core::TimestampUs at = 0;
  core::PolicyDecision decision;
};

// Sessions are identified across snapshots by pid and backend_start (a reused pid is another session);
// an entry is printed the first time a rule reaches a given outcome for a session.
using EntryKey = std::tuple<std::string, int32_t, std::string, core::TimestampUs, std::string>;

EntryKey KeyOf(const core::PolicyDecision& d) {
  return EntryKey{d.planned.rule, d.node.pid, d.node.gid, d.planned.victim.backend_start.value_or(0), d.skip};
}

std::string Who(const core::PolicyDecision& d) {
  if (d.node.is_prepared()) return "prepared transaction \"" + d.node.gid + "\"";
  return "pid " + std::to_string(d.node.pid);
}

std::string Outcome(const core::PolicyDecision& d) {
  if (d.skipped()) return "skip (" + d.skip + ")";
  return core::ActionKindName(d.planned.action);
}

json EntryJson(const Entry& e) {
  const core::PolicyDecision& d = e.decision;
  const core::PlannedAction& a = d.planned;
  return json{
      {"at", lockwatch::json::FormatIso8601(e.at)},
      {"dump", e.dump},
      {"target", e.target},
      {"rule", a.rule},
      {"action", core::ActionKindName(a.action)},
      {"skipped", d.skipped()},
      {"skip", d.skipped() ? json(d.skip) : json(nullptr)},
      {"skip_detail", d.skipped() ? json(d.skip_detail) : json(nullptr)},
      {"pid", a.victim.pid},
      {"gid", d.node.gid.empty() ? json(nullptr) : json(d.node.gid)},
      {"backend_start", lockwatch::json::IsoOrNull(a.victim.backend_start)},
      {"xact_start", lockwatch::json::IsoOrNull(a.victim.xact_start)},
      {"user", d.user},
      {"application_name", d.application},
      {"database", d.database},
      {"client_addr", d.client_addr},
      {"state", d.state},
      {"backend_type", d.backend_type},
      {"role", a.role},
      {"blocked_direct", a.blocked_direct},
      {"blocked_total", a.blocked_total},
      {"chain_depth", d.chain_depth},
      {"grace_seconds", a.grace_seconds},
      {"reason", a.reason},
  };
}

void PrintEntry(const Entry& e, std::ostream& out) {
  const core::PolicyDecision& d = e.decision;
  const core::PlannedAction& a = d.planned;
  out << lockwatch::json::FormatIso8601(e.at) << "  " << Outcome(d) << "  " << Who(d) << "  rule " << a.rule;
  if (!d.skipped() && a.action == core::ActionKind::kCancelThenTerminate) {
    out << " (terminate after " << core::FormatSeconds(a.grace_seconds) << " if still blocking)";
  }
  out << "\n    " << a.role << ", blocks " << a.blocked_total << " (" << a.blocked_direct << " directly)";
  if (!d.user.empty()) out << "; user " << d.user;
  if (!d.node.is_prepared()) out << "; application \"" << d.application << "\"";
  if (!d.database.empty()) out << "; database " << d.database;
  if (!d.node.is_prepared()) out << "; client " << (d.client_addr.empty() ? "local" : d.client_addr);
  if (!d.state.empty()) out << "; " << d.state;
  out << "\n    why: " << a.reason << "\n";
  if (d.skipped()) out << "    not done: " << d.skip_detail << "\n";
}

// The collector records pg_roles.rolsuper as "superuser"; DecodeSnapshot may predate the field, so it is
// read here from the record itself. Returns whether any session carried it.
bool ApplySuperuser(const json& snapshot_json, core::Snapshot* snapshot) {
  auto sessions = snapshot_json.find("sessions");
  if (sessions == snapshot_json.end() || !sessions->is_array()) return false;
  bool any = false;
  std::map<int32_t, bool> by_pid;
  for (const json& s : *sessions) {
    if (!s.is_object()) continue;
    auto pid = s.find("pid");
    auto su = s.find("superuser");
    if (pid == s.end() || !pid->is_number_integer() || su == s.end() || !su->is_boolean()) continue;
    by_pid[pid->get<int32_t>()] = su->get<bool>();
    any = true;
  }
  for (core::Session& s : snapshot->sessions) {
    auto it = by_pid.find(s.pid);
    if (it != by_pid.end() && !s.superuser) s.superuser = it->second;
  }
  return any;
}

}  // namespace

core::QueryNormalizer MakeQueryNormalizer() {
  return [](std::string_view text) {
    return forensics::ProcessQueryText(text, forensics::QueryTextMode::kNormalize).text.value_or("");
  };
}

int RunRulesCheck(const std::vector<std::string>& files, app::CliContext& context) {
  int status = app::kExitOk;
  for (const std::string& file : files) {
    core::Result<core::Policy> policy = LoadRules(file);
    if (!policy.ok()) {
      *context.err << policy.status().message() << "\n";
      status = app::kExitError;
      continue;
    }
    const size_t n = policy.value().rules.size();
    *context.out << file << ": ok: " << n << (n == 1 ? " rule" : " rules") << "\n";
  }
  return status;
}

int RunRulesTest(const RulesTestOptions& options, app::CliContext& context) {
  std::ostream& out = *context.out;
  std::ostream& err = *context.err;
  core::Result<core::Policy> loaded = LoadRules(options.rules_file);
  if (!loaded.ok()) {
    err << loaded.status().message() << "\n";
    return app::kExitError;
  }
  const core::Policy& policy = loaded.value();
  bool has_query_condition = false;
  for (const core::Rule& r : policy.rules)
    has_query_condition = has_query_condition || r.match.query.has_value();
  const core::QueryNormalizer normalizer = MakeQueryNormalizer();

  int status = app::kExitOk;
  std::vector<Entry> entries;
  std::set<EntryKey> seen;
  std::vector<std::string> notes;
  json dumps_json = json::array();
  int total_snapshots = 0;

  for (const std::string& path : options.dumps) {
    core::Result<forensics::Dump> dump = forensics::ReadDump(path);
    if (!dump.ok()) {
      err << path << ": " << dump.status().message() << "\n";
      status = app::kExitError;
      continue;
    }
    const forensics::Dump& d = dump.value();
    const std::string target = d.header.is_object() ? d.header.value("target", std::string()) : std::string();
    const std::string query_text =
        d.header.is_object() ? d.header.value("query_text", std::string()) : std::string();
    for (const std::string& w : d.warnings) notes.push_back(std::string(path).append(": ").append(w));
    if (has_query_condition && query_text == "drop") {
      notes.push_back(path +
                      ": the dump holds no query text (query_text: drop): query conditions never match");
    }
    int snapshots = 0;
    bool superuser_known = false;
    bool bad_record = false;
    core::TimestampUs first = 0;
    core::TimestampUs last = 0;
    for (const forensics::DumpRecord& record : d.records) {
      if (record.type != "snapshot") continue;
      auto snapshot_json = record.record.find("snapshot");
      if (snapshot_json == record.record.end()) {
        err << path << ":" << record.line << ": snapshot record without a \"snapshot\" object\n";
        bad_record = true;
        continue;
      }
      core::Result<core::Snapshot> decoded = forensics::DecodeSnapshot(*snapshot_json);
      if (!decoded.ok()) {
        err << path << ":" << record.line << ": " << decoded.status().message() << "\n";
        bad_record = true;
        continue;
      }
      core::Snapshot snapshot = std::move(decoded).value();
      if (snapshot.captured_at_us == 0 && record.record.contains("captured_at") &&
          record.record["captured_at"].is_string()) {
        snapshot.captured_at_us =
            lockwatch::json::ParseIso8601(record.record["captured_at"].get<std::string>()).value_or(0);
      }
      superuser_known = ApplySuperuser(*snapshot_json, &snapshot) || superuser_known;
      if (options.assume_non_superuser) {
        for (core::Session& s : snapshot.sessions) {
          if (!s.superuser) s.superuser = false;
        }
      }
      ++snapshots;
      if (first == 0 || snapshot.captured_at_us < first) first = snapshot.captured_at_us;
      last = std::max(last, snapshot.captured_at_us);
      const core::Report report = core::Analyze(snapshot);
      for (core::PolicyDecision& decision : core::Evaluate(policy, options.protection, snapshot, report,
                                                           snapshot.captured_at_us, normalizer)) {
        // The enforcer acts once per session; a later rule that matches the same session changes nothing.
        if (decision.skip == core::kSkipAlreadyDecided) continue;
        if (!seen.insert(KeyOf(decision)).second) continue;
        decision.planned.target = target;
        entries.push_back(Entry{path, target, snapshot.captured_at_us, std::move(decision)});
      }
    }
    if (bad_record) status = app::kExitError;
    if (!superuser_known && !options.assume_non_superuser && snapshots > 0) {
      notes.push_back(path +
                      ": the dump does not record which users are superusers; they count as superusers "
                      "(never victims) unless --assume-non-superuser is given");
    }
    total_snapshots += snapshots;
    dumps_json.push_back(
        json{{"path", path},
             {"target", target},
             {"snapshots", snapshots},
             {"first", snapshots > 0 ? json(lockwatch::json::FormatIso8601(first)) : json(nullptr)},
             {"last", snapshots > 0 ? json(lockwatch::json::FormatIso8601(last)) : json(nullptr)},
             {"warnings", d.warnings}});
    if (!options.json) {
      out << "dump " << path << ": target " << (target.empty() ? "(unknown)" : target) << ", " << snapshots
          << (snapshots == 1 ? " snapshot" : " snapshots");
      if (snapshots > 0)
        out << " from " << lockwatch::json::FormatIso8601(first) << " to "
            << lockwatch::json::FormatIso8601(last);
      out << "\n";
    }
  }

  std::map<std::string, int> by_action;
  std::map<std::string, int> by_skip;
  int actions = 0;
  int skips = 0;
  for (const Entry& e : entries) {
    if (e.decision.skipped()) {
      ++skips;
      ++by_skip[e.decision.skip];
    } else {
      ++actions;
      ++by_action[core::ActionKindName(e.decision.planned.action)];
    }
  }

  if (options.json) {
    json doc;
    doc["rules_file"] = options.rules_file;
    doc["rules"] = policy.rules.size();
    doc["dumps"] = std::move(dumps_json);
    json list = json::array();
    for (const Entry& e : entries) list.push_back(EntryJson(e));
    doc["decisions"] = std::move(list);
    doc["summary"] = json{{"snapshots", total_snapshots},
                          {"actions", actions},
                          {"by_action", by_action},
                          {"skipped", skips},
                          {"by_skip", by_skip}};
    doc["notes"] = notes;
    out << doc.dump(2) << "\n";
    return status;
  }

  out << "rules " << options.rules_file << ": " << policy.rules.size()
      << (policy.rules.size() == 1 ? " rule" : " rules") << " (dry run: nothing is signalled)\n";
  for (const std::string& n : notes) out << "note: " << n << "\n";
  out << "\n";
  for (const Entry& e : entries) PrintEntry(e, out);
  if (!entries.empty()) out << "\n";
  out << "summary: " << actions << (actions == 1 ? " action" : " actions") << " would have been taken";
  if (!by_action.empty()) {
    out << " (";
    bool first = true;
    for (const auto& [name, n] : by_action) {
      out << (first ? "" : ", ") << name << " " << n;
      first = false;
    }
    out << ")";
  }
  out << "; " << skips << " skipped";
  if (!by_skip.empty()) {
    out << " (";
    bool first = true;
    for (const auto& [name, n] : by_skip) {
      out << (first ? "" : ", ") << name << " " << n;
      first = false;
    }
    out << ")";
  }
  out << "; " << total_snapshots << (total_snapshots == 1 ? " snapshot" : " snapshots") << " replayed\n";
  return status;
}

void AddRulesCommand(CLI::App& app, app::CliContext& context) {
  CLI::App* rules =
      app.add_subcommand("rules", "Check remediation rules, or replay them over recorded dumps");
  rules->require_subcommand(1);

  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* check = rules->add_subcommand("check", "Validate rules files (errors name file:line:column)");
  check->add_option("FILE", *files, "Rules file(s)")->required();
  check->callback([files, &context]() { context.exit_code = RunRulesCheck(*files, context); });

  auto options = std::make_shared<RulesTestOptions>();
  auto users = std::make_shared<std::vector<std::string>>();
  auto applications = std::make_shared<std::vector<std::string>>();
  auto databases = std::make_shared<std::vector<std::string>>();
  auto clients = std::make_shared<std::vector<std::string>>();
  CLI::App* test = rules->add_subcommand(
      "test", "Replay rules over recorded dumps: what would have been done, when, to whom and why");
  test->add_option("--rules", options->rules_file, "Rules file")->required();
  test->add_option("DUMP", options->dumps, "Dump file(s) written by lockwatch")->required();
  test->add_flag("--json", options->json, "Print the decisions as JSON");
  test->add_flag("--assume-non-superuser", options->assume_non_superuser,
                 "Treat sessions whose superuser status the dump did not record as non-superusers");
  test->add_option("--protect-user", *users, "Never a victim: user name (may use *; repeatable)");
  test->add_option("--protect-application", *applications,
                   "Never a victim: application_name (may use *; repeatable)");
  test->add_option("--protect-database", *databases, "Never a victim: database (may use *; repeatable)");
  test->add_option("--protect-client", *clients, "Never a victim: client range (CIDR or local; repeatable)");
  test->callback([options, users, applications, databases, clients, &context]() {
    core::Protection& p = options->protection;
    for (const std::string& u : *users) p.users.push_back(core::NamePattern{u});
    for (const std::string& a : *applications) p.applications.push_back(core::NamePattern{a});
    for (const std::string& d : *databases) p.databases.push_back(core::NamePattern{d});
    for (const std::string& c : *clients) {
      core::Result<core::ClientMatcher> m = ParseClientMatcher(c);
      if (!m.ok()) {
        *context.err << "--protect-client: " << m.status().message() << "\n";
        context.exit_code = app::kExitError;
        return;
      }
      p.clients.push_back(m.value());
    }
    context.exit_code = RunRulesTest(*options, context);
  });
}

}  // namespace lockwatch::policy
