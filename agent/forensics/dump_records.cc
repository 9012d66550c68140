#include "agent/forensics/dump_records.h"

#include <exception>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>

#include "agent/core/lock_mode.h"
#include "agent/json/iso_time.h"
#include "agent/json/tree_document.h"

namespace lockwatch::forensics {
namespace {

using nlohmann::json;

using lockwatch::json::ModeOrNull;
using lockwatch::json::ValueOrNull;

const char* QueryMethodName(QueryTextMethod m) {
  switch (m) {
    case QueryTextMethod::kKept:
      return "kept";
    case QueryTextMethod::kParser:
      return "parser";
    case QueryTextMethod::kRedacted:
      return "redacted";
    case QueryTextMethod::kDropped:
      return "dropped";
  }
  return "unknown";
}

// Sets "query" (text or null), "query_fingerprint" and "query_text" (how the text was produced).
void PutQuery(json& object, const std::string& query, QueryTextMode mode) {
  const QueryText processed = ProcessQueryText(query, mode);
  object["query"] = processed.text ? json(*processed.text) : json(nullptr);
  object["query_fingerprint"] = processed.fingerprint;
  object["query_text"] = QueryMethodName(processed.method);
}

json LockJson(const core::LockRow& r) {
  return json{
      {"locktype", r.locktype},
      {"database", ValueOrNull(r.database)},
      {"relation", ValueOrNull(r.relation)},
      {"page", ValueOrNull(r.page)},
      {"tuple", ValueOrNull(r.tuple)},
      {"virtualxid", ValueOrNull(r.virtualxid)},
      {"transactionid", ValueOrNull(r.transactionid)},
      {"classid", ValueOrNull(r.classid)},
      {"objid", ValueOrNull(r.objid)},
      {"objsubid", ValueOrNull(r.objsubid)},
      {"virtualtransaction", r.virtualtransaction},
      {"pid", ValueOrNull(r.pid)},
      {"mode", ModeOrNull(r.mode)},
      {"granted", r.granted},
      {"fastpath", r.fastpath},
      {"waitstart", lockwatch::json::IsoOrNull(r.waitstart)},
  };
}

// The tree document's keys that describe the analysis rather than what was read.
const std::set<std::string>& ReportKeys() {
  static const std::set<std::string> kKeys{"edges", "roots", "cycles", "waiters", "summary", "unknown_pids"};
  return kKeys;
}

json MakeSnapshotRecord(std::string_view phase, const core::Snapshot& snapshot, const core::Report& report,
                        QueryTextMode mode) {
  json doc = lockwatch::json::TreeDocument(snapshot, report);
  json snap = json::object();
  json rep = json::object();
  for (auto& [key, value] : doc.items()) {
    if (key == "schema_version") continue;  // the header carries tree_schema_version
    (ReportKeys().count(key) > 0 ? rep : snap)[key] = std::move(value);
  }
  // Sessions are in snapshot order, so the i-th encoded session is snapshot.sessions[i].
  json& sessions = snap["sessions"];
  for (size_t i = 0; i < snapshot.sessions.size() && i < sessions.size(); ++i) {
    PutQuery(sessions[i], snapshot.sessions[i].query, mode);
    // Whether the role was a superuser, so replaying rules over a dump (`lockwatch rules test`) applies
    // the same never-a-victim exclusions as the live agent. null when unknown.
    const std::optional<bool>& superuser = snapshot.sessions[i].superuser;
    sessions[i]["superuser"] = superuser ? json(*superuser) : json(nullptr);
  }
  json locks = json::array();
  for (const core::LockRow& r : snapshot.locks) locks.push_back(LockJson(r));
  snap["locks"] = std::move(locks);
  json names = json::array();
  for (const core::RelationName& n : snapshot.relation_names) {
    names.push_back(json{{"database", n.database}, {"relation", n.relation}, {"name", n.name}});
  }
  snap["relation_names"] = std::move(names);
  return json{{"type", "snapshot"},
              {"phase", std::string(phase)},
              {"captured_at", lockwatch::json::FormatIso8601(snapshot.captured_at_us)},
              {"snapshot", std::move(snap)},
              {"report", std::move(rep)}};
}

// --- decoding. nlohmann throws on type mismatches; DecodeSnapshot turns that into kCorrupt.

template <typename T>
std::optional<T> Opt(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return std::nullopt;
  return it->get<T>();
}

std::string Str(const json& o, const char* key) { return Opt<std::string>(o, key).value_or(""); }

std::optional<core::TimestampUs> Time(const json& o, const char* key) {
  const std::optional<std::string> text = Opt<std::string>(o, key);
  if (!text) return std::nullopt;
  std::optional<core::TimestampUs> t = lockwatch::json::ParseIso8601(*text);
  if (!t) throw std::runtime_error(std::string("bad timestamp in \"") + key + "\"");
  return t;
}

const json& Array(const json& o, const char* key) {
  static const json kEmpty = json::array();
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return kEmpty;
  if (!it->is_array()) throw std::runtime_error(std::string("\"") + key + "\" is not an array");
  return *it;
}

}  // namespace

json HeaderJson(const DumpHeader& h) {
  json settings = json::object();
  for (const core::Setting& s : h.settings) settings[s.name] = s.value;
  return json{
      {"format", kDumpFormatName},
      {"schema_version", kDumpSchemaVersion},
      {"tree_schema_version", lockwatch::json::kTreeSchemaVersion},
      {"created_at", lockwatch::json::FormatIso8601(h.created_at_us)},
      {"reason", h.reason},
      {"incident_id", h.incident_id.empty() ? json(nullptr) : json(h.incident_id)},
      {"target", h.target},
      {"server_version_num", h.server_version_num},
      {"settings", std::move(settings)},
      {"lockwatch_version", h.lockwatch_version},
      {"query_text", QueryTextModeName(h.query_text)},
  };
}

json SnapshotRecord(std::string_view phase, const core::Snapshot& snapshot, const core::Report& report,
                    QueryTextMode mode) {
  return MakeSnapshotRecord(phase, snapshot, report, mode);
}

json RecordedEntryRecord(const core::RecordedEntry& entry, QueryTextMode mode) {
  json record = MakeSnapshotRecord("before", core::ToSnapshot(entry), entry.report, mode);
  record["compact"] = true;
  json groups = json::array();
  for (const core::SessionGroup& g : entry.uninvolved) {
    groups.push_back(json{{"state", g.state},
                          {"application_name", g.application_name},
                          {"client_network", g.client_network},
                          {"count", g.count}});
  }
  record["uninvolved_sessions"] = std::move(groups);
  // The summary of the kept sessions alone would undercount: add the uninvolved ones back.
  json& summary = record["report"]["summary"];
  summary["sessions"] = summary.value("sessions", 0) + entry.uninvolved_sessions;
  json& by_state = summary["sessions_by_state"];
  for (const core::SessionGroup& g : entry.uninvolved) {
    const std::string state = g.state.empty() ? "(none)" : g.state;
    by_state[state] = by_state.value(state, 0) + g.count;
  }
  return record;
}

json IncidentRecord(const core::IncidentEvent& event, core::TimestampUs at, QueryTextMode mode) {
  const core::Incident& in = event.incident;
  json roots = json::array();
  for (const core::IncidentRoot& r : in.roots) {
    json root{
        {"pid", r.pid},
        {"gid", r.gid.empty() ? json(nullptr) : json(r.gid)},
        {"usename", r.usename},
        {"application_name", r.application_name},
        {"client_addr", r.client_addr},
        {"state", r.state},
        {"query_start", lockwatch::json::IsoOrNull(r.query_start)},
        {"xact_start", lockwatch::json::IsoOrNull(r.xact_start)},
        {"classification", core::RootClassName(r.classification)},
        {"first_seen_at", lockwatch::json::FormatIso8601(r.first_seen_at)},
        {"peak_blocked_sessions", r.peak_blocked_sessions},
    };
    PutQuery(root, r.query, mode);
    roots.push_back(std::move(root));
  }
  return json{
      {"type", "incident"},
      {"event", core::IncidentEventKindName(event.kind)},
      {"at", lockwatch::json::FormatIso8601(at)},
      {"incident",
       json{
           {"id", in.id},
           {"target", in.target},
           {"started_at", lockwatch::json::FormatIso8601(in.started_at)},
           {"ended_at", lockwatch::json::IsoOrNull(in.ended_at)},
           {"last_over_at", lockwatch::json::FormatIso8601(in.last_over_at)},
           {"trigger", in.trigger},
           {"peak_blocked_sessions", in.peak_blocked_sessions},
           {"peak_depth", in.peak_depth},
           {"peak_wait_seconds", in.peak_wait_seconds},
           {"peak_roots", in.peak_roots},
           {"observations", in.observations},
           {"roots", std::move(roots)},
       }},
  };
}

json EndRecord(core::TimestampUs at, int records) {
  return json{{"type", "end"}, {"at", lockwatch::json::FormatIso8601(at)}, {"records", records}};
}

core::Result<core::Snapshot> DecodeSnapshot(const json& in) {
  try {
    if (!in.is_object()) return core::Status::Corrupt("snapshot is not an object");
    core::Snapshot s;
    s.server_version_num = Opt<int>(in, "server_version_num").value_or(0);
    const std::optional<core::TimestampUs> captured = Time(in, "captured_at");
    s.captured_at_us = captured.value_or(0);
    s.own_pid = Opt<int32_t>(in, "own_pid").value_or(0);
    s.current_database = Str(in, "current_database");
    s.locks_read = Opt<bool>(in, "locks_read").value_or(false);
    if (auto it = in.find("settings"); it != in.end() && it->is_object()) {
      for (auto& [name, value] : it->items())
        s.settings.push_back(core::Setting{name, value.get<std::string>()});
    }
    for (const json& j : Array(in, "sessions")) {
      core::Session x;
      x.pid = j.at("pid").get<int32_t>();
      x.leader_pid = Opt<int32_t>(j, "leader_pid");
      x.usename = Str(j, "usename");
      x.application_name = Str(j, "application_name");
      x.client_addr = Str(j, "client_addr");
      x.datname = Str(j, "datname");
      x.backend_type = Str(j, "backend_type");
      x.state = Str(j, "state");
      x.wait_event_type = Str(j, "wait_event_type");
      x.wait_event = Str(j, "wait_event");
      x.backend_start = Time(j, "backend_start");
      x.xact_start = Time(j, "xact_start");
      x.query_start = Time(j, "query_start");
      x.state_change = Time(j, "state_change");
      x.backend_xid = Opt<uint32_t>(j, "backend_xid");
      x.backend_xmin = Opt<uint32_t>(j, "backend_xmin");
      x.query = Str(j, "query");
      x.superuser = Opt<bool>(j, "superuser");
      s.sessions.push_back(std::move(x));
    }
    for (const json& j : Array(in, "locks")) {
      core::LockRow r;
      r.locktype = Str(j, "locktype");
      r.database = Opt<uint32_t>(j, "database");
      r.relation = Opt<uint32_t>(j, "relation");
      r.page = Opt<int32_t>(j, "page");
      r.tuple = Opt<int32_t>(j, "tuple");
      r.virtualxid = Opt<std::string>(j, "virtualxid");
      r.transactionid = Opt<uint32_t>(j, "transactionid");
      r.classid = Opt<uint32_t>(j, "classid");
      r.objid = Opt<uint32_t>(j, "objid");
      r.objsubid = Opt<int32_t>(j, "objsubid");
      r.virtualtransaction = Str(j, "virtualtransaction");
      r.pid = Opt<int32_t>(j, "pid");
      if (const std::optional<std::string> mode = Opt<std::string>(j, "mode")) {
        const std::optional<core::LockMode> parsed = core::ParseLockMode(*mode);
        if (!parsed) return core::Status::Corrupt("unknown lock mode \"" + *mode + "\"");
        r.mode = *parsed;
      }
      r.granted = Opt<bool>(j, "granted").value_or(false);
      r.fastpath = Opt<bool>(j, "fastpath").value_or(false);
      r.waitstart = Time(j, "waitstart");
      s.locks.push_back(std::move(r));
    }
    for (const json& j : Array(in, "prepared_xacts")) {
      core::PreparedXact p;
      p.transaction = Opt<uint32_t>(j, "transaction").value_or(0);
      p.gid = Str(j, "gid");
      p.prepared = Time(j, "prepared");
      p.owner = Str(j, "owner");
      p.database = Str(j, "database");
      s.prepared.push_back(std::move(p));
    }
    for (const json& j : Array(in, "relation_names")) {
      s.relation_names.push_back(core::RelationName{Opt<uint32_t>(j, "database").value_or(0),
                                                    Opt<uint32_t>(j, "relation").value_or(0),
                                                    Str(j, "name")});
    }
    return s;
  } catch (const std::exception& e) {
    return core::Status::Corrupt(std::string("snapshot: ") + e.what());
  }
}

}  // namespace lockwatch::forensics
