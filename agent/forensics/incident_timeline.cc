#include "agent/forensics/incident_timeline.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <set>
#include <utility>

#include "agent/core/flight_recorder.h"
#include "agent/core/lock_mode.h"
#include "agent/core/tree_render.h"
#include "agent/forensics/dump_records.h"
#include "agent/json/iso_time.h"

namespace lockwatch::forensics {
namespace {

using nlohmann::json;

// --- lenient field access: a dump is input from disk, so every field may be missing or of the wrong type.

std::string StrField(const json& o, const char* key) {
  if (!o.is_object()) return "";
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

int IntField(const json& o, const char* key) {
  if (!o.is_object()) return 0;
  auto it = o.find(key);
  if (it == o.end() || !it->is_number()) return 0;
  const double v = it->get<double>();
  if (!(v >= -2147483648.0 && v <= 2147483647.0)) return 0;  // also rejects NaN
  return static_cast<int>(v);
}

double DoubleField(const json& o, const char* key) {
  if (!o.is_object()) return 0;
  auto it = o.find(key);
  if (it == o.end() || !it->is_number()) return 0;
  const double v = it->get<double>();
  return std::isfinite(v) ? v : 0;
}

bool BoolField(const json& o, const char* key) {
  if (!o.is_object()) return false;
  auto it = o.find(key);
  return it != o.end() && it->is_boolean() && it->get<bool>();
}

std::optional<core::TimestampUs> TimeField(const json& o, const char* key) {
  const std::string text = StrField(o, key);
  if (text.empty()) return std::nullopt;
  return lockwatch::json::ParseIso8601(text);
}

std::string Plural(int n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

const core::Session* FindSession(const core::Snapshot& snapshot, int32_t pid) {
  for (const core::Session& s : snapshot.sessions) {
    if (s.pid == pid) return &s;
  }
  return nullptr;
}

// Every node that waits on `root`, directly or through others.
std::set<core::NodeRef> BlockedBehind(const core::Report& report, const core::NodeRef& root) {
  std::map<core::NodeRef, std::vector<core::NodeRef>> waiters_of;
  for (const core::Edge& e : report.edges) waiters_of[e.blocker].push_back(e.waiter);
  std::set<core::NodeRef> seen;
  std::vector<core::NodeRef> stack{root};
  while (!stack.empty()) {
    const core::NodeRef node = stack.back();
    stack.pop_back();
    auto it = waiters_of.find(node);
    if (it == waiters_of.end()) continue;
    for (const core::NodeRef& w : it->second) {
      if (w != root && seen.insert(w).second) stack.push_back(w);
    }
  }
  return seen;
}

std::string ActionVerb(const std::string& action) {
  if (action == "terminate") return "terminated";
  if (action == "cancel") return "cancelled";
  if (action == "cancel_then_terminate") return "cancelled (then terminate)";
  if (action == "log") return "logged";
  return action.empty() ? "acted on" : action;
}

bool ResultOk(const std::string& result) {
  // "signalled", "exited" and "still_running" are the actuator's words for a signal that reached the backend.
  return result.empty() || result == "ok" || result == "success" || result == "done" ||
         result == "signalled" || result == "exited" || result == "still_running";
}

// The agent audits a signal twice (the decision when it is taken, the outcome when it is collected): the
// story says which line is which, so one termination does not read as two.
std::string ActionText(const TimelineAction& a) {
  std::string text = a.rule.empty() ? std::string("manual action") : "rule " + a.rule;
  const std::string what =
      (a.action.empty() ? std::string("act on") : a.action) + " pid " + std::to_string(a.pid);
  if (a.decision == "planned") {
    text += " decided to " + what;
  } else if (a.decision == "skipped") {
    text += " did not " + what;
  } else if (a.decision == "failed") {
    text += " failed to " + what;
  } else {
    text += " " + ActionVerb(a.action) + " pid " + std::to_string(a.pid);
  }
  if (a.dry_run) text += " (dry run)";
  if (a.decision == "skipped" || a.decision == "failed" || !ResultOk(a.result)) {
    if (!a.result.empty()) text += ": " + a.result;
  }
  return text;
}

// Working state of one root while the records are read.
struct RootState {
  bool active = false;  // a root at the previous poll
  std::set<core::NodeRef> last_blocked;
};

class Builder {
 public:
  explicit Builder(const Dump& dump) : dump_(dump) {}

  core::Result<Timeline> Build() {
    ReadHeader();
    for (const DumpRecord& r : dump_.records) {
      if (r.type == "action") ReadAction(r);
    }
    for (const DumpRecord& r : dump_.records) {
      if (r.type == "snapshot") {
        ReadSnapshot(r);
      } else if (r.type == "incident") {
        ReadIncident(r);
      }
    }
    if (t_.points.empty()) {
      return core::Status::Corrupt("the dump holds no readable snapshot record" +
                                   (t_.warnings.empty() ? std::string() : " (" + t_.warnings.back() + ")"));
    }
    FinishSurge();
    BuildEvents();
    return std::move(t_);
  }

 private:
  void ReadHeader() {
    const json& h = dump_.header;
    t_.schema_version = dump_.schema_version;
    t_.target = StrField(h, "target");
    t_.reason = StrField(h, "reason");
    t_.incident_id = StrField(h, "incident_id");
    t_.lockwatch_version = StrField(h, "lockwatch_version");
    t_.query_text = StrField(h, "query_text");
    t_.created_at = TimeField(h, "created_at").value_or(0);
    t_.server_version_num = IntField(h, "server_version_num");
    t_.complete = dump_.complete;
    // The reader keeps record types it does not know with a warning; those this reader uses are no news.
    for (const std::string& w : dump_.warnings) {
      if (w.find("unknown record type \"action\"") == std::string::npos) t_.warnings.push_back(w);
    }
  }

  void Warn(const DumpRecord& r, const std::string& what) {
    t_.warnings.push_back("line " + std::to_string(r.line) + ": " + what);
  }

  void ReadAction(const DumpRecord& r) {
    const std::optional<core::TimestampUs> at = TimeField(r.record, "at");
    if (!at) {
      Warn(r, "action record without a valid \"at\" ignored");
      return;
    }
    TimelineAction a;
    a.at = *at;
    a.rule = StrField(r.record, "rule");
    a.action = StrField(r.record, "action");
    a.pid = IntField(r.record, "pid");
    a.result = StrField(r.record, "result");
    a.decision = StrField(r.record, "decision");
    // The agent's audit records say "mode": "dry_run" | "enforce"; older or hand-written ones "dry_run".
    a.dry_run = BoolField(r.record, "dry_run") || StrField(r.record, "mode") == "dry_run";
    a.backend_start = TimeField(r.record, "backend_start");
    t_.actions.push_back(std::move(a));
  }

  void ReadIncident(const DumpRecord& r) {
    const json& in = r.record.is_object() && r.record.contains("incident") ? r.record["incident"] : json();
    const std::optional<core::TimestampUs> at = TimeField(r.record, "at");
    const std::optional<core::TimestampUs> started = TimeField(in, "started_at");
    if (!in.is_object() || !started) {
      Warn(r, "incident record without an incident ignored");
      return;
    }
    const std::string event = StrField(r.record, "event");
    TimelineIncident inc = t_.incident.value_or(TimelineIncident{});
    const bool first = !t_.incident.has_value();
    inc.id = StrField(in, "id");
    inc.trigger = StrField(in, "trigger");
    inc.started_at = *started;
    inc.ended_at = TimeField(in, "ended_at");
    inc.last_over_at = TimeField(in, "last_over_at").value_or(*started);
    inc.peak_blocked_sessions = IntField(in, "peak_blocked_sessions");
    inc.peak_depth = IntField(in, "peak_depth");
    inc.peak_wait_seconds = DoubleField(in, "peak_wait_seconds");
    inc.peak_roots = IntField(in, "peak_roots");
    inc.observations = IntField(in, "observations");
    if (first) inc.opened_at = *started;
    if (event == "opened") inc.opened_at = at.value_or(*started);
    if (event == "resolved") inc.resolved_at = at.value_or(inc.ended_at.value_or(inc.last_over_at));
    t_.incident = std::move(inc);
  }

  // Sessions per (application, network) of a record: the kept sessions plus, for compact records, the
  // counted ones.
  static std::vector<core::SessionCount> Counts(const core::Snapshot& s, const json& record, bool compact) {
    std::vector<core::SessionCount> counts = core::CountSessions(s);
    if (compact) {
      // Counts come from disk: the total is capped so no sum downstream can overflow.
      constexpr int kMaxTotal = 100000000;
      int total = static_cast<int>(s.sessions.size());
      auto it = record.find("uninvolved_sessions");
      if (it != record.end() && it->is_array()) {
        for (const json& g : *it) {
          if (StrField(g, "state").empty()) continue;  // background processes, as CountSessions
          const int n = IntField(g, "count");
          if (n <= 0 || n > kMaxTotal - total) continue;
          total += n;
          counts.push_back(
              core::SessionCount{StrField(g, "application_name"), StrField(g, "client_network"), n});
        }
      }
    }
    return core::MergeSessionCounts(counts);
  }

  static int Sum(const std::vector<core::SessionCount>& counts) {
    int n = 0;
    for (const core::SessionCount& c : counts) n += c.count;
    return n;
  }

  // The stored fingerprint of session `pid` in the record (DecodeSnapshot does not carry it).
  static std::string Fingerprint(const json& record, int32_t pid) {
    const json& snap = record.contains("snapshot") ? record["snapshot"] : record;
    if (!snap.is_object() || !snap.contains("sessions") || !snap["sessions"].is_array()) return "";
    for (const json& s : snap["sessions"]) {
      if (s.is_object() && s.contains("pid") && s["pid"].is_number_integer() &&
          s["pid"].get<int64_t>() == pid) {
        return StrField(s, "query_fingerprint");
      }
    }
    return "";
  }

  size_t RootIndex(const core::Root& root, const core::Snapshot& s, const json& record,
                   core::TimestampUs at) {
    auto it = root_index_.find(root.node);
    if (it != root_index_.end()) return it->second;
    TimelineRoot r;
    r.node = root.node;
    r.classification = root.classification;
    r.first_seen_at = at;
    if (!root.node.is_prepared()) {
      if (const core::Session* session = FindSession(s, root.node.pid)) {
        r.usename = session->usename;
        r.application_name = session->application_name;
        r.client_addr = session->client_addr;
        r.state = session->state;
        r.query = session->query;
        r.backend_start = session->backend_start;
        r.xact_start = session->xact_start;
        r.query_start = session->query_start;
      }
      r.query_fingerprint = Fingerprint(record, root.node.pid);
    } else {
      for (const core::PreparedXact& p : s.prepared) {
        if (p.gid == root.node.gid) {
          r.usename = p.owner;
          r.xact_start = p.prepared;
          r.state = "prepared";
        }
      }
    }
    const size_t index = t_.roots.size();
    t_.roots.push_back(std::move(r));
    states_.emplace_back();
    root_index_[root.node] = index;
    for (TimelinePoint& p : t_.points) p.root_blocked.push_back(0);
    return index;
  }

  // Why root `i` (a root at the previous poll) is not one at `s`.
  void JudgeEnd(size_t i, const core::Snapshot& s, const core::Report& report, bool compact) {
    TimelineRoot& root = t_.roots[i];
    const RootState& state = states_[i];
    root.ended_at = s.captured_at_us;
    // Waiters released: those blocked at the last sighting that no longer wait at all.
    std::set<core::NodeRef> still_waiting;
    for (const core::Waiter& w : report.waiters) still_waiting.insert(w.node);
    int released = 0;
    int gone = 0;
    for (const core::NodeRef& w : state.last_blocked) {
      if (still_waiting.count(w) > 0) continue;
      ++released;
      if (!compact && !w.is_prepared() && FindSession(s, w.pid) == nullptr) ++gone;
    }
    const std::string released_text = Plural(released, "waiter", "waiters") + " released";

    if (root.node.is_prepared()) {
      const bool still_prepared = std::any_of(s.prepared.begin(), s.prepared.end(),
                                              [&](const auto& p) { return p.gid == root.node.gid; });
      if (still_prepared) {
        root.end = RootEnd::kWaitersGaveUp;
        root.end_detail = "still prepared; its waiters gave up (lock_timeout, statement_timeout or cancel)";
      } else {
        root.end = RootEnd::kCommitted;
        root.end_detail = "COMMIT PREPARED or ROLLBACK PREPARED; " + released_text;
      }
      return;
    }
    const int32_t pid = root.node.pid;
    const core::Session* session = FindSession(s, pid);
    const bool waits = still_waiting.count(root.node) > 0;
    if (waits) {
      root.end = RootEnd::kNowWaiting;
      root.end_detail = "now waits behind another session itself";
      return;
    }
    if (session == nullptr) {
      if (compact) {
        root.end = RootEnd::kUnknown;
        root.end_detail = "stopped blocking (the next recorded poll keeps only involved sessions)";
        return;
      }
      Terminated(root, s.captured_at_us, released_text);
      return;
    }
    if (session->backend_start && last_backend_start_[i] &&
        *session->backend_start != *last_backend_start_[i]) {
      Terminated(root, s.captured_at_us, released_text + "; pid reused by a new backend");
      return;
    }
    if (session->xact_start != last_xact_start_[i]) {
      root.end = RootEnd::kCommitted;
      root.end_detail = "transaction ended, session still connected (" + released_text + ")";
      if (const TimelineAction* a = LockwatchAction(root, s.captured_at_us)) {
        root.end_detail += " after " + ActionText(*a);
      }
      return;
    }
    if (released > 0) {
      root.end = RootEnd::kWaitersGaveUp;
      root.end_detail = "transaction still open; " + Plural(released, "waiter", "waiters") +
                        " gave up (lock_timeout, statement_timeout or cancel)";
      if (gone > 0) root.end_detail += ", " + std::to_string(gone) + " of them disconnected";
      return;
    }
    root.end = RootEnd::kUnknown;
    root.end_detail = "stopped blocking, transaction unchanged";
  }

  // The last lockwatch action (not a dry run) against the root since its first sighting. The agent audits
  // a signal's result when it collects it, which can be a poll or two after the root vanished, so a result
  // recorded after `until` still counts when it names the same backend (pid and backend_start); a record
  // without backend_start must fall before `until`.
  const TimelineAction* LockwatchAction(const TimelineRoot& root, core::TimestampUs until) const {
    const TimelineAction* found = nullptr;
    for (const TimelineAction& a : t_.actions) {
      const bool same_backend =
          a.backend_start && root.backend_start && *a.backend_start == *root.backend_start;
      // A decision is not a signal: only the outcome record (or a record that does not say) counts.
      const bool outcome = a.decision.empty() || a.decision == "executed" || a.decision == "failed";
      if (outcome && a.pid == root.node.pid && !a.dry_run && a.at >= root.first_seen_at &&
          (a.at <= until || same_backend) &&
          (a.action == "terminate" || a.action == "cancel" || a.action == "cancel_then_terminate")) {
        found = &a;
      }
    }
    return found;
  }

  void Terminated(TimelineRoot& root, core::TimestampUs until, const std::string& released_text) {
    if (const TimelineAction* a = LockwatchAction(root, until);
        a != nullptr && a->action != "cancel" && ResultOk(a->result)) {
      root.end = RootEnd::kTerminatedByLockwatch;
      root.end_detail = "terminated by lockwatch (" + ActionText(*a) + "); " + released_text;
      return;
    }
    root.end = RootEnd::kTerminated;
    root.end_detail = "backend gone (terminated, crashed or disconnected); " + released_text;
  }

  void ReadSnapshot(const DumpRecord& r) {
    const json& rec = r.record;
    auto snap_it = rec.find("snapshot");
    if (snap_it == rec.end()) {
      Warn(r, "snapshot record without \"snapshot\" ignored");
      return;
    }
    core::Result<core::Snapshot> decoded = DecodeSnapshot(*snap_it);
    if (!decoded.ok()) {
      Warn(r, decoded.status().message() + " (record ignored)");
      return;
    }
    const core::Snapshot& s = decoded.value();
    if (!t_.points.empty() && s.captured_at_us < t_.points.back().at) {
      Warn(r, "snapshot out of time order ignored");
      return;
    }
    const core::Report report = core::Analyze(s);
    const bool compact = BoolField(rec, "compact");

    TimelinePoint p;
    p.at = s.captured_at_us;
    p.phase = StrField(rec, "phase");
    p.compact = compact;
    std::vector<core::SessionCount> counts = Counts(s, rec, compact);
    p.sessions = Sum(counts);
    p.waiting = static_cast<int>(report.waiters.size());
    p.blocked_sessions = report.blocked_sessions;
    p.roots = static_cast<int>(report.roots.size());
    p.max_depth = report.max_depth;
    p.max_wait_seconds = report.max_wait_seconds;
    p.root_blocked.assign(t_.roots.size(), 0);

    // Earliest wait of the whole dump.
    for (const core::Waiter& w : report.waiters) {
      if (w.since && (!t_.first_wait_began || *w.since < *t_.first_wait_began)) {
        t_.first_wait_began = w.since;
        t_.first_waiter = w.node;
        t_.first_wait_target = std::string(core::LockModeName(w.mode)) + " on " + w.target.text;
      }
    }

    std::set<size_t> seen;
    for (const core::Root& root : report.roots) {
      const size_t i = RootIndex(root, s, rec, p.at);
      p.root_blocked.resize(t_.roots.size(), 0);
      p.root_blocked[i] = root.blocked_sessions;
      seen.insert(i);
      TimelineRoot& tr = t_.roots[i];
      tr.last_seen_at = p.at;
      tr.end = RootEnd::kStillBlocking;
      tr.ended_at.reset();
      tr.end_detail.clear();
      if (root.blocked_sessions > tr.peak_blocked_sessions) {
        tr.peak_blocked_sessions = root.blocked_sessions;
        tr.peak_at = p.at;
      }
      states_[i].active = true;
      states_[i].last_blocked = BlockedBehind(report, root.node);
      const core::Session* session = root.node.is_prepared() ? nullptr : FindSession(s, root.node.pid);
      last_xact_start_.resize(t_.roots.size());
      last_backend_start_.resize(t_.roots.size());
      last_xact_start_[i] = session != nullptr ? session->xact_start : std::nullopt;
      last_backend_start_[i] = session != nullptr ? session->backend_start : std::nullopt;
    }
    for (size_t i = 0; i < states_.size(); ++i) {
      if (states_[i].active && seen.count(i) == 0) {
        JudgeEnd(i, s, report, compact);
        states_[i].active = false;
      }
    }

    if (!t_.peak || p.blocked_sessions > t_.points[*t_.peak].blocked_sessions) {
      t_.peak = t_.points.size();
      t_.peak_snapshot = s;
      t_.peak_report = report;
      t_.peak_compact = compact;
    }
    if (!first_counts_) {
      first_counts_ = counts;
      first_at_ = p.at;
    }
    if (p.sessions > most_sessions_ || t_.points.empty()) {
      most_sessions_ = p.sessions;
      most_counts_ = std::move(counts);
      most_at_ = p.at;
      most_index_ = t_.points.size();
      new_backends_ = -1;
      if (!compact) {
        new_backends_ = 0;
        for (const core::Session& session : s.sessions) {
          if (!session.state.empty() && session.backend_start && *session.backend_start > first_at_) {
            ++new_backends_;
          }
        }
      }
    }
    t_.points.push_back(std::move(p));
  }

  static std::vector<core::SessionCount> Project(const std::vector<core::SessionCount>& counts, bool app,
                                                 bool network) {
    std::vector<core::SessionCount> out;
    out.reserve(counts.size());
    for (const core::SessionCount& c : counts) {
      out.push_back(
          core::SessionCount{app ? c.application_name : "", network ? c.client_network : "", c.count});
    }
    return core::MergeSessionCounts(out);
  }

  void FinishSurge() {
    if (t_.points.size() < 2 || !first_counts_ || most_index_ == 0) {
      if (t_.points.size() >= 2 && first_counts_) {
        // The first poll had the most sessions: no growth to explain, but say so.
        TimelineSurge none;
        bool ignored = false;
        none.by_pair =
            core::CompareSessionCounts(*first_counts_, first_at_, *first_counts_, first_at_, {}, &ignored);
        t_.surge = std::move(none);
      }
      return;
    }
    const core::SurgeThresholds thresholds;
    TimelineSurge surge;
    surge.by_pair = core::CompareSessionCounts(*first_counts_, first_at_, most_counts_, most_at_, thresholds,
                                               &surge.detected);
    bool ignored = false;
    surge.by_application =
        core::CompareSessionCounts(Project(*first_counts_, true, false), first_at_,
                                   Project(most_counts_, true, false), most_at_, thresholds, &ignored);
    surge.by_network =
        core::CompareSessionCounts(Project(*first_counts_, false, true), first_at_,
                                   Project(most_counts_, false, true), most_at_, thresholds, &ignored);
    surge.new_backends = new_backends_;
    t_.surge = std::move(surge);
  }

  void BuildEvents() {
    std::vector<TimelineEvent>& ev = t_.events;
    if (t_.first_wait_began) {
      ev.push_back({*t_.first_wait_began, "first_wait",
                    "first wait began: " + NodeText(t_.first_waiter) + " waits for " + t_.first_wait_target});
    }
    for (const TimelineRoot& r : t_.roots) {
      std::string text = RootName(r) + " starts blocking";
      std::string how = r.state;
      if (r.xact_start && *r.xact_start <= r.first_seen_at) {
        how += std::string(how.empty() ? "" : ", ") + "transaction open " +
               FormatDuration(static_cast<double>(r.first_seen_at - *r.xact_start) / 1e6);
      }
      if (!how.empty()) text += " (" + how + ")";
      ev.push_back({r.first_seen_at, "root", text});
    }
    if (t_.incident) {
      ev.push_back({t_.incident->opened_at, "incident_opened", "incident opened: " + t_.incident->trigger});
    }
    if (t_.peak && t_.points[*t_.peak].blocked_sessions > 0) {
      const TimelinePoint& p = t_.points[*t_.peak];
      char wait[32];
      std::snprintf(wait, sizeof wait, "%.1f", p.max_wait_seconds);
      ev.push_back({p.at, "peak",
                    "peak: " + Plural(p.blocked_sessions, "session", "sessions") + " blocked behind " +
                        Plural(p.roots, "root", "roots") + ", chain depth " + std::to_string(p.max_depth) +
                        ", longest wait " + wait + " s"});
    }
    for (const TimelineAction& a : t_.actions) ev.push_back({a.at, "action", ActionText(a)});
    for (const TimelineRoot& r : t_.roots) {
      if (r.end == RootEnd::kStillBlocking || !r.ended_at) continue;
      ev.push_back({*r.ended_at, "root_end", RootName(r) + ": " + r.end_detail});
    }
    if (t_.incident && t_.incident->resolved_at) {
      ev.push_back({*t_.incident->resolved_at, "incident_resolved", "incident resolved"});
    }
    std::stable_sort(ev.begin(), ev.end(),
                     [](const TimelineEvent& a, const TimelineEvent& b) { return a.at < b.at; });
  }

  std::string NodeText(const core::NodeRef& node) const {
    auto it = root_index_.find(node);
    if (it != root_index_.end()) return RootName(t_.roots[it->second]);
    if (node.is_prepared()) return "prepared transaction '" + node.gid + "'";
    return "pid " + std::to_string(node.pid);
  }

  const Dump& dump_;
  Timeline t_;
  std::map<core::NodeRef, size_t> root_index_;
  std::vector<RootState> states_;
  std::vector<std::optional<core::TimestampUs>> last_xact_start_;
  std::vector<std::optional<core::TimestampUs>> last_backend_start_;
  std::optional<std::vector<core::SessionCount>> first_counts_;
  core::TimestampUs first_at_ = 0;
  std::vector<core::SessionCount> most_counts_;
  core::TimestampUs most_at_ = 0;
  size_t most_index_ = 0;
  int most_sessions_ = -1;
  int new_backends_ = -1;
};

core::Result<Timeline> BuildTimelineV1(const Dump& dump) { return Builder(dump).Build(); }

}  // namespace

const char* RootEndName(RootEnd end) {
  switch (end) {
    case RootEnd::kStillBlocking:
      return "still_blocking";
    case RootEnd::kCommitted:
      return "committed_or_rolled_back";
    case RootEnd::kTerminated:
      return "terminated_or_disconnected";
    case RootEnd::kTerminatedByLockwatch:
      return "terminated_by_lockwatch";
    case RootEnd::kWaitersGaveUp:
      return "waiters_gave_up";
    case RootEnd::kNowWaiting:
      return "now_waiting";
    case RootEnd::kUnknown:
      return "unknown";
  }
  return "unknown";
}

core::Result<Timeline> BuildTimeline(const Dump& dump) {
  try {
    // One case per schema version ever written. A new version adds a case and keeps the old ones, so
    // dumps kept from earlier releases stay readable (tests/forensics/fixtures/ holds one per version).
    switch (dump.schema_version) {
      case 1:
        return BuildTimelineV1(dump);
      default:
        return core::Status::InvalidArgument("dump schema_version " + std::to_string(dump.schema_version) +
                                             " is not one this lockwatch reads (1)");
    }
  } catch (const std::exception& e) {
    // nlohmann and the standard library throw on what slipped past the checks; a dump is never worth a crash.
    return core::Status::Corrupt(std::string("cannot analyse the dump: ") + e.what());
  }
}

core::Result<Timeline> ReadTimeline(const std::string& path) {
  core::Result<Dump> dump = ReadDump(path);
  if (!dump.ok()) return dump.status();  // ReadDump names the path
  core::Result<Timeline> timeline = BuildTimeline(dump.value());
  if (!timeline.ok()) {
    return core::Status::Error(timeline.status().code(), path + ": " + timeline.status().message());
  }
  return timeline;
}

std::string FormatDuration(double seconds) {
  if (!(seconds > 0)) return "0 s";
  if (seconds < 60) {
    char buf[32];
    std::snprintf(buf, sizeof buf, seconds < 10 ? "%.1f s" : "%.0f s", seconds);
    return buf;
  }
  const auto s = static_cast<int64_t>(std::min(seconds, 1e15));
  char buf[64];
  if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buf;
}

std::string FormatClock(core::TimestampUs us) {
  // "2026-11-25T13:45:07.123456Z" -> "13:45:07".
  std::string iso = core::FormatTimestampUtc(us);
  const size_t t = iso.find('T');
  return t == std::string::npos ? iso : iso.substr(t + 1, 8);
}

std::string FormatDateTime(core::TimestampUs us) {
  std::string iso = core::FormatTimestampUtc(us);
  const size_t t = iso.find('T');
  if (t == std::string::npos) return iso;
  return iso.substr(0, t) + " " + iso.substr(t + 1, 8) + " UTC";
}

std::string RootName(const TimelineRoot& root) {
  if (root.node.is_prepared()) return "prepared transaction '" + root.node.gid + "'";
  std::string who;
  for (const std::string* part : {&root.usename, &root.application_name, &root.client_addr}) {
    if (part->empty()) continue;
    who += (who.empty() ? "" : ", ") + *part;
  }
  return "pid " + std::to_string(root.node.pid) + (who.empty() ? "" : " (" + who + ")");
}

}  // namespace lockwatch::forensics
