#include "agent/json/tree_document.h"

#include <string>

#include "agent/core/lock_mode.h"
#include "agent/core/tree_render.h"
#include "agent/json/iso_time.h"

namespace lockwatch::json {
namespace {

using nlohmann::json;

// Mode names of a mask, weakest first, as an array (MaskNames joins them with "+", awkward for consumers).
json ModeArray(core::LockMask mask) {
  json out = json::array();
  for (int m = static_cast<int>(core::LockMode::kAccessShare); m <= static_cast<int>(core::LockMode::kSIRead);
       ++m) {
    const auto mode = static_cast<core::LockMode>(m);
    if ((mask & core::Bit(mode)) != 0) out.push_back(std::string(core::LockModeName(mode)));
  }
  return out;
}

// A prepared transaction is pid 0 as pg_blocking_pids() reports it; the gid names it.
json GidOrNull(const core::NodeRef& node) {
  if (!node.is_prepared()) return nullptr;
  return node.gid;
}

void AddTarget(json& out, const core::LockTarget& target) {
  out["locktype"] = target.locktype;
  out["target"] = target.text;
  out["relation"] = ValueOrNull(target.relation);
  out["database_oid"] = ValueOrNull(target.database);
}

json SessionJson(const core::Session& s) {
  return json{
      {"pid", s.pid},
      {"leader_pid", ValueOrNull(s.leader_pid)},
      {"usename", s.usename},
      {"application_name", s.application_name},
      {"client_addr", s.client_addr},
      {"datname", s.datname},
      {"backend_type", s.backend_type},
      {"state", s.state},
      {"wait_event_type", s.wait_event_type},
      {"wait_event", s.wait_event},
      {"backend_start", IsoOrNull(s.backend_start)},
      {"xact_start", IsoOrNull(s.xact_start)},
      {"query_start", IsoOrNull(s.query_start)},
      {"state_change", IsoOrNull(s.state_change)},
      {"backend_xid", ValueOrNull(s.backend_xid)},
      {"backend_xmin", ValueOrNull(s.backend_xmin)},
      {"query", s.query},
  };
}

json PreparedJson(const core::PreparedXact& p) {
  return json{
      {"transaction", p.transaction}, {"gid", p.gid}, {"prepared", IsoOrNull(p.prepared)}, {"owner", p.owner},
      {"database", p.database},
  };
}

json EdgeJson(const core::Edge& e) {
  json out{
      {"waiter_pid", e.waiter.pid},
      {"blocker_pid", e.blocker.pid},
      {"blocker_gid", GidOrNull(e.blocker)},
      {"kind", e.kind == core::EdgeKind::kHard ? "hard" : "soft"},
      {"certain", e.certain},
  };
  AddTarget(out, e.target);
  out["waiter_mode"] = ModeOrNull(e.waiter_mode);
  out["blocker_held_modes"] = ModeArray(e.blocker_held);
  out["blocker_wanted_mode"] = ModeOrNull(e.blocker_wanted);
  out["waiter_since"] = IsoOrNull(e.waiter_since);
  return out;
}

json RootJson(const core::Root& r) {
  return json{
      {"pid", r.node.pid},
      {"gid", GidOrNull(r.node)},
      {"blocked_sessions", r.blocked_sessions},
      {"direct_blocked", r.direct_blocked},
      {"depth", r.depth},
      {"max_wait_seconds", r.max_wait_seconds},
      {"classification", core::RootClassName(r.classification)},
  };
}

json WaiterJson(const core::Waiter& w) {
  json out{
      {"pid", w.node.pid},           {"gid", GidOrNull(w.node)},       {"mode", ModeOrNull(w.mode)},
      {"since", IsoOrNull(w.since)}, {"wait_seconds", w.wait_seconds},
  };
  AddTarget(out, w.target);
  return out;
}

}  // namespace

json ExplanationJson(const core::Explanation& e) {
  json root_pid = nullptr;
  json root_gid = nullptr;
  if (e.root) {
    root_pid = e.root->pid;
    root_gid = GidOrNull(*e.root);
  }
  return json{
      {"kind", core::ExplanationKindName(e.kind)},
      {"root_pid", std::move(root_pid)},
      {"root_gid", std::move(root_gid)},
      {"pids", e.pids},
      {"situation", e.situation},
      {"remedy", e.remedy},
  };
}

json TreeDocument(const core::Snapshot& snapshot, const core::Report& report,
                  const std::vector<core::Explanation>& explanations) {
  json doc = TreeDocument(snapshot, report);
  json found = json::array();
  for (const core::Explanation& e : explanations) found.push_back(ExplanationJson(e));
  doc["explanations"] = std::move(found);
  return doc;
}

json TreeDocument(const core::Snapshot& snapshot, const core::Report& report) {
  json doc;
  doc["schema_version"] = kTreeSchemaVersion;
  doc["captured_at"] = FormatIso8601(snapshot.captured_at_us);
  doc["server_version_num"] = snapshot.server_version_num;
  doc["own_pid"] = snapshot.own_pid;
  doc["current_database"] = snapshot.current_database;
  doc["locks_read"] = snapshot.locks_read;

  json settings = json::object();
  for (const core::Setting& s : snapshot.settings) settings[s.name] = s.value;
  doc["settings"] = std::move(settings);

  json sessions = json::array();
  for (const core::Session& s : snapshot.sessions) sessions.push_back(SessionJson(s));
  doc["sessions"] = std::move(sessions);

  json prepared = json::array();
  for (const core::PreparedXact& p : snapshot.prepared) prepared.push_back(PreparedJson(p));
  doc["prepared_xacts"] = std::move(prepared);

  json edges = json::array();
  for (const core::Edge& e : report.edges) edges.push_back(EdgeJson(e));
  doc["edges"] = std::move(edges);

  json roots = json::array();
  for (const core::Root& r : report.roots) roots.push_back(RootJson(r));
  doc["roots"] = std::move(roots);

  json cycles = json::array();
  for (const core::Cycle& c : report.cycles)
    cycles.push_back(json{{"pids", c.pids}, {"has_hard_edge", c.has_hard_edge}});
  doc["cycles"] = std::move(cycles);

  json waiters = json::array();
  for (const core::Waiter& w : report.waiters) waiters.push_back(WaiterJson(w));
  doc["waiters"] = std::move(waiters);

  json by_state = json::object();
  int sessions_total = 0;
  for (const auto& [state, count] : core::SessionsByState(snapshot)) {
    by_state[state] = count;
    sessions_total += count;
  }
  doc["summary"] = json{
      {"sessions", sessions_total},
      {"waiting", static_cast<int>(report.waiters.size())},
      {"blocked_sessions", report.blocked_sessions},
      {"max_depth", report.max_depth},
      {"max_wait_seconds", report.max_wait_seconds},
      {"sessions_by_state", std::move(by_state)},
  };
  doc["unknown_pids"] = report.unknown_pids;
  return doc;
}

}  // namespace lockwatch::json
