#include "agent/forensics/timeline_render.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "agent/core/flight_recorder.h"
#include "agent/core/tree_render.h"
#include "agent/json/iso_time.h"
#include "agent/json/tree_document.h"

namespace lockwatch::forensics {
namespace {

using nlohmann::json;

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U; }

int Columns(std::string_view s) {
  int n = 0;
  for (char c : s) n += IsContinuationByte(c) ? 0 : 1;
  return n;
}

// At most `width` columns, cut on a code point boundary, "..." marking a cut.
std::string Fit(const std::string& s, int width) {
  if (Columns(s) <= width) return s;
  const int keep = std::max(0, width - 3);
  int seen = 0;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    if (!IsContinuationByte(s[i])) {
      if (seen == keep) break;
      ++seen;
    }
  }
  return s.substr(0, i) + std::string("...").substr(0, static_cast<size_t>(std::min(3, width)));
}

std::string Seconds1(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", s);
  return buf;
}

std::string Signed(int n) { return (n >= 0 ? "+" : "") + std::to_string(n); }

std::string ServerVersion(int num) {
  if (num <= 0) return "unknown";
  if (num >= 100000) return std::to_string(num / 10000) + "." + std::to_string(num % 10000);
  return std::to_string(num / 10000) + "." + std::to_string(num / 100 % 100) + "." +
         std::to_string(num % 100);
}

// The roots most worth a column: most blocked at their peak first.
std::vector<size_t> TopRoots(const Timeline& t, size_t n) {
  std::vector<size_t> order(t.roots.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return t.roots[a].peak_blocked_sessions > t.roots[b].peak_blocked_sessions;
  });
  if (order.size() > n) order.resize(n);
  return order;
}

std::string ContributorText(const core::SurgeContributor& c) {
  std::string text = Signed(c.added()) + " sessions from ";
  if (!c.application_name.empty() || c.client_network.empty()) {
    text +=
        "application " + (c.application_name.empty() ? std::string("(none)") : OneLine(c.application_name));
    if (!c.client_network.empty()) text += " (" + OneLine(c.client_network) + ")";
  } else {
    text += "client network " + OneLine(c.client_network);
  }
  return text + " (" + std::to_string(c.before) + " -> " + std::to_string(c.after) + ")";
}

class TextWriter {
 public:
  TextWriter(const Timeline& t, const std::string& file, const TimelineTextOptions& options)
      : t_(t), file_(file), width_(std::max(40, options.width)), options_(options) {}

  std::string Render() {
    Header();
    Roots();
    Events();
    Series();
    Surge();
    Tree();
    Sessions();
    return out_.str();
  }

 private:
  void Line(const std::string& s) { out_ << Fit(s, width_) << "\n"; }
  // `first` then `text`, wrapped at spaces onto lines indented by `indent` columns; at most `max_lines`
  // lines, the last one shortened with "..." when the text goes on.
  void Wrapped(const std::string& first, const std::string& text, int indent, int max_lines = 4) {
    std::string line = first;
    int lines = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      const int room = width_ - Columns(line);
      std::string rest = text.substr(pos);
      if (Columns(rest) <= room || lines + 1 >= max_lines) {
        Line(line + rest);
        return;
      }
      // The last space that keeps the line within the width; a word longer than a line is cut.
      size_t cut = std::string::npos;
      int cols = 0;
      for (size_t i = 0; i < rest.size() && cols <= room; ++i) {
        if (rest[i] == ' ') cut = i;
        if (!IsContinuationByte(rest[i])) ++cols;
      }
      if (cut == std::string::npos || cut == 0) {
        Line(line + rest);
        return;
      }
      Line(line + rest.substr(0, cut));
      ++lines;
      pos += cut + 1;
      line = std::string(static_cast<size_t>(indent), ' ');
    }
    if (lines == 0 || line.find_first_not_of(' ') != std::string::npos) Line(line);
  }
  void Blank() { out_ << "\n"; }
  void Title(const std::string& s) {
    Blank();
    Line(s);
  }

  void Header() {
    const bool manual = t_.reason == "manual";
    Line("lockwatch analyze " + OneLine(file_));
    for (const std::string& w : t_.warnings) Line("WARNING: " + OneLine(w));
    if (!t_.complete)
      Line("WARNING: incomplete dump (writer stopped or still writing): the story may end early");
    std::string target = "target " + OneLine(t_.target) + ", PostgreSQL " +
                         ServerVersion(t_.server_version_num) + ", dump schema " +
                         std::to_string(t_.schema_version);
    if (!t_.lockwatch_version.empty()) target += ", written by lockwatch " + OneLine(t_.lockwatch_version);
    if (!t_.query_text.empty()) target += ", query text: " + OneLine(t_.query_text);
    if (manual) {
      Line("Manual capture (lockwatch dump) at " + FormatDateTime(t_.points.front().at));
      Line(target);
      return;
    }
    if (t_.incident) {
      const TimelineIncident& in = *t_.incident;
      Line("Incident " + OneLine(in.id) + ": " + OneLine(in.trigger));
      Line(target);
      const core::TimestampUs end = in.ended_at.value_or(
          std::max(in.last_over_at, t_.points.empty() ? in.started_at : t_.points.back().at));
      std::string lasted = "Started " + FormatDateTime(in.started_at) + ", ";
      lasted += in.ended_at ? "ended " + FormatClock(*in.ended_at) + " UTC, lasted "
                            : "not resolved when the dump ends, at least ";
      lasted += FormatDuration(static_cast<double>(end - in.started_at) / 1e6);
      Line(lasted);
      Line("Peak " + std::to_string(in.peak_blocked_sessions) + " blocked sessions, chain depth " +
           std::to_string(in.peak_depth) + ", longest wait " + Seconds1(in.peak_wait_seconds) + " s, " +
           std::to_string(in.peak_roots) + " root(s) at once, " + std::to_string(t_.roots.size()) +
           " root(s) in all");
    } else {
      Line("Dump of " + OneLine(t_.target) + " from " + FormatDateTime(t_.points.front().at) +
           " (no incident record)");
      Line(target);
    }
    if (t_.first_wait_began) {
      Line("First wait began " + FormatDateTime(*t_.first_wait_began) + ": pid " +
           std::to_string(t_.first_waiter.pid) + " waiting for " + OneLine(t_.first_wait_target));
    }
  }

  void Roots() {
    Title(t_.roots.empty() ? "ROOT BLOCKERS: none in this dump" : "ROOT BLOCKERS");
    for (const TimelineRoot& r : t_.roots) {
      Line("  " + OneLine(RootName(r)) + " | " + (r.state.empty() ? "no state" : OneLine(r.state)) + " | " +
           core::RootClassName(r.classification));
      std::string facts = "    first seen " + FormatClock(r.first_seen_at);
      if (r.xact_start && *r.xact_start <= r.first_seen_at) {
        facts += ", transaction open " +
                 FormatDuration(static_cast<double>(r.first_seen_at - *r.xact_start) / 1e6);
      }
      facts += "; peak " + std::to_string(r.peak_blocked_sessions) + " blocked at " + FormatClock(r.peak_at);
      Line(facts);
      if (!r.query.empty()) {
        Wrapped("    query: ", OneLine(r.query), 11, 3);
      } else if (!r.query_fingerprint.empty()) {
        Line("    query: (text not kept), fingerprint " + OneLine(r.query_fingerprint));
      }
      if (r.end == RootEnd::kStillBlocking) {
        Line("    still blocking at the last recorded poll (" + FormatClock(r.last_seen_at) + ")");
      } else {
        Wrapped("    ended by " + FormatClock(r.ended_at.value_or(r.last_seen_at)) + ": ",
                OneLine(r.end_detail), 6);
      }
    }
  }

  void Events() {
    if (t_.events.empty()) return;
    Title("TIMELINE (UTC)");
    for (const TimelineEvent& e : t_.events) Wrapped("  " + FormatClock(e.at) + "  ", OneLine(e.text), 14);
  }

  void Series() {
    if (t_.points.size() < 2) return;
    const std::vector<size_t> roots = TopRoots(t_, static_cast<size_t>(std::max(0, (width_ - 48) / 11)));
    Title("BLOCKED SESSIONS OVER TIME (UTC)");
    std::string head = "  time      phase     sessions  waiting  blocked";
    for (size_t r : roots) {
      char col[32];
      std::snprintf(
          col, sizeof col, "  %9s",
          Fit(t_.roots[r].node.is_prepared() ? "prepared" : "pid " + std::to_string(t_.roots[r].node.pid), 9)
              .c_str());
      head += col;
    }
    Line(head);
    std::set<size_t> rows;
    const size_t n = t_.points.size();
    const auto max_rows = static_cast<size_t>(std::max(3, options_.max_series_rows));
    if (n <= max_rows) {
      for (size_t i = 0; i < n; ++i) rows.insert(i);
    } else {
      rows.insert(0);
      rows.insert(n - 1);
      if (t_.peak) rows.insert(*t_.peak);
      for (size_t k = 1; rows.size() < max_rows && k < max_rows; ++k)
        rows.insert(k * (n - 1) / (max_rows - 1));
    }
    for (size_t i : rows) {
      const TimelinePoint& p = t_.points[i];
      char buf[128];
      std::snprintf(buf, sizeof buf, "  %-8s  %-8s  %8d  %7d  %7d", FormatClock(p.at).c_str(),
                    Fit(OneLine(p.phase), 8).c_str(), p.sessions, p.waiting, p.blocked_sessions);
      std::string row = buf;
      for (size_t r : roots) {
        std::snprintf(buf, sizeof buf, "  %9d", r < p.root_blocked.size() ? p.root_blocked[r] : 0);
        row += buf;
      }
      if (t_.peak && i == *t_.peak) row += "  <- peak";
      Line(row);
    }
    if (rows.size() < n)
      Line("  (" + std::to_string(rows.size()) + " of " + std::to_string(n) +
           " polls shown; --json has all)");
    if (roots.size() < t_.roots.size()) {
      Line("  (" + std::to_string(roots.size()) + " of " + std::to_string(t_.roots.size()) + " roots shown)");
    }
  }

  void Surge() {
    if (!t_.surge) return;
    const TimelineSurge& s = *t_.surge;
    const core::Surge& pair = s.by_pair;
    const std::string totals = std::to_string(pair.sessions_before) + " at " + FormatClock(pair.before_at) +
                               " -> " + std::to_string(pair.sessions_after) + " at " +
                               FormatClock(pair.after_at) + " (" +
                               Signed(pair.sessions_after - pair.sessions_before) + ")";
    if (!s.detected) {
      Title("CONNECTION SURGE: none (sessions " + totals + ")");
      return;
    }
    Title("CONNECTION SURGE: sessions " + totals);
    for (const core::SurgeContributor& c : pair.contributors) {
      Wrapped("  ",
              ContributorText(c) + " between " + FormatClock(pair.before_at) + " and " +
                  FormatClock(pair.after_at),
              4);
    }
    std::string apps;
    for (const core::SurgeContributor& c : s.by_application.contributors) {
      apps += (apps.empty() ? "" : ", ") +
              (c.application_name.empty() ? "(none)" : OneLine(c.application_name)) + " " + Signed(c.added());
    }
    if (!apps.empty()) Line("  by application: " + apps);
    std::string nets;
    for (const core::SurgeContributor& c : s.by_network.contributors) {
      nets += (nets.empty() ? "" : ", ") + (c.client_network.empty() ? "local" : OneLine(c.client_network)) +
              " " + Signed(c.added());
    }
    if (!nets.empty()) Line("  by client network: " + nets);
    if (s.new_backends >= 0) {
      Line("  " + std::to_string(s.new_backends) + " of the sessions at " + FormatClock(pair.after_at) +
           " connected after " + FormatClock(pair.before_at));
    }
  }

  void Tree() {
    if (!t_.peak) return;
    const TimelinePoint& p = t_.points[*t_.peak];
    Title(std::string(t_.reason == "manual" ? "BLOCKING TREE" : "BLOCKING TREE AT THE PEAK") + " (" +
          FormatClock(p.at) + " UTC" + (t_.peak_compact ? ", involved sessions only" : "") + ")");
    core::TreeRenderOptions tree_options;
    tree_options.width = width_ - 2;
    const std::string tree = core::RenderTree(t_.peak_snapshot, t_.peak_report, tree_options);
    std::istringstream lines(tree);
    std::string line;
    int shown = 0;
    int total = 0;
    while (std::getline(lines, line)) {
      ++total;
      if (shown < options_.max_tree_lines) {
        Line("  " + line);
        ++shown;
      }
    }
    if (shown < total) {
      Line("  ... " + std::to_string(total - shown) + " more lines (lockwatch report shows the whole tree)");
    }
  }

  void Sessions() {
    if (!t_.peak) return;
    const core::Snapshot& s = t_.peak_snapshot;
    std::map<std::string, int> by_app;
    for (const core::Session& session : s.sessions) {
      if (session.state.empty()) continue;
      ++by_app[session.application_name.empty() ? "(none)" : OneLine(session.application_name)];
    }
    std::vector<std::pair<std::string, int>> apps(by_app.begin(), by_app.end());
    std::stable_sort(apps.begin(), apps.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    std::string text;
    size_t shown = 0;
    for (const auto& [app, count] : apps) {
      if (shown++ == 6) {
        text += ", ...";
        break;
      }
      text += (text.empty() ? "" : ", ") + app + " " + std::to_string(count);
    }
    const TimelinePoint& p = t_.points[*t_.peak];
    Title("SESSIONS AT " + FormatClock(p.at) + ": " + std::to_string(p.sessions) + " sessions, " +
          std::to_string(p.waiting) + " waiting on a lock");
    if (!text.empty())
      Line(std::string(t_.peak_compact ? "  involved, by application: " : "  by application: ") + text);
  }

  const Timeline& t_;
  const std::string& file_;
  int width_;
  TimelineTextOptions options_;
  std::ostringstream out_;
};

json TimeOrNull(const std::optional<core::TimestampUs>& t) { return lockwatch::json::IsoOrNull(t); }

json SurgeJson(const core::Surge& s) {
  json contributors = json::array();
  for (const core::SurgeContributor& c : s.contributors) {
    contributors.push_back(json{{"application_name", c.application_name},
                                {"client_network", c.client_network},
                                {"before", c.before},
                                {"after", c.after},
                                {"added", c.added()}});
  }
  return contributors;
}

}  // namespace

std::string OneLine(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending_space = false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) {
      out.push_back(' ');
      pending_space = false;
    }
    out.push_back(u < 0x20 || u == 0x7F ? '?' : c);
  }
  return out;
}

std::string RenderTimelineText(const Timeline& timeline, const std::string& file,
                               const TimelineTextOptions& options) {
  if (timeline.points.empty()) return "lockwatch analyze " + OneLine(file) + ": no snapshot in the dump\n";
  return TextWriter(timeline, file, options).Render();
}

json TimelineJson(const Timeline& t, const std::string& file) {
  json doc;
  doc["analyze_schema_version"] = kAnalyzeSchemaVersion;
  doc["file"] = file;
  doc["dump"] = json{
      {"schema_version", t.schema_version},
      {"target", t.target},
      {"reason", t.reason},
      {"incident_id", t.incident_id.empty() ? json(nullptr) : json(t.incident_id)},
      {"created_at", lockwatch::json::FormatIso8601(t.created_at)},
      {"server_version_num", t.server_version_num},
      {"lockwatch_version", t.lockwatch_version},
      {"query_text", t.query_text},
      {"complete", t.complete},
  };
  doc["warnings"] = t.warnings;
  if (t.incident) {
    const TimelineIncident& in = *t.incident;
    const core::TimestampUs end = in.ended_at.value_or(
        std::max(in.last_over_at, t.points.empty() ? in.started_at : t.points.back().at));
    doc["incident"] = json{
        {"id", in.id},
        {"trigger", in.trigger},
        {"started_at", lockwatch::json::FormatIso8601(in.started_at)},
        {"ended_at", TimeOrNull(in.ended_at)},
        {"resolved", in.resolved_at.has_value()},
        {"duration_seconds", static_cast<double>(end - in.started_at) / 1e6},
        {"peak_blocked_sessions", in.peak_blocked_sessions},
        {"peak_depth", in.peak_depth},
        {"peak_wait_seconds", in.peak_wait_seconds},
        {"peak_roots", in.peak_roots},
        {"observations", in.observations},
    };
  } else {
    doc["incident"] = nullptr;
  }
  doc["first_wait_began"] = TimeOrNull(t.first_wait_began);
  doc["first_waiter_pid"] = t.first_wait_began ? json(t.first_waiter.pid) : json(nullptr);
  doc["first_wait_target"] = t.first_wait_began ? json(t.first_wait_target) : json(nullptr);

  json roots = json::array();
  for (const TimelineRoot& r : t.roots) {
    json xact_age = nullptr;
    if (r.xact_start) xact_age = static_cast<double>(r.first_seen_at - *r.xact_start) / 1e6;
    roots.push_back(json{
        {"pid", r.node.pid},
        {"gid", r.node.is_prepared() ? json(r.node.gid) : json(nullptr)},
        {"usename", r.usename},
        {"application_name", r.application_name},
        {"client_addr", r.client_addr},
        {"client_network", core::ClientNetwork(r.client_addr)},
        {"state", r.state},
        {"classification", core::RootClassName(r.classification)},
        {"backend_start", TimeOrNull(r.backend_start)},
        {"xact_start", TimeOrNull(r.xact_start)},
        {"query_start", TimeOrNull(r.query_start)},
        {"xact_age_seconds_at_first_seen", xact_age},
        {"query", r.query},
        {"query_fingerprint", r.query_fingerprint},
        {"first_seen_at", lockwatch::json::FormatIso8601(r.first_seen_at)},
        {"last_seen_at", lockwatch::json::FormatIso8601(r.last_seen_at)},
        {"peak_blocked_sessions", r.peak_blocked_sessions},
        {"peak_at", lockwatch::json::FormatIso8601(r.peak_at)},
        {"end",
         json{{"cause", RootEndName(r.end)}, {"at", TimeOrNull(r.ended_at)}, {"detail", r.end_detail}}},
    });
  }
  doc["roots"] = std::move(roots);

  json series = json::array();
  for (const TimelinePoint& p : t.points) {
    std::vector<int> by_root = p.root_blocked;
    by_root.resize(t.roots.size(), 0);
    series.push_back(json{
        {"at", lockwatch::json::FormatIso8601(p.at)},
        {"phase", p.phase},
        {"compact", p.compact},
        {"sessions", p.sessions},
        {"waiting", p.waiting},
        {"blocked_sessions", p.blocked_sessions},
        {"roots", p.roots},
        {"max_depth", p.max_depth},
        {"max_wait_seconds", p.max_wait_seconds},
        {"blocked_by_root", by_root},
    });
  }
  doc["series"] = std::move(series);

  if (t.peak) {
    const TimelinePoint& p = t.points[*t.peak];
    json tree = lockwatch::json::TreeDocument(t.peak_snapshot, t.peak_report);
    tree.erase("schema_version");
    doc["peak"] = json{{"at", lockwatch::json::FormatIso8601(p.at)},
                       {"index", *t.peak},
                       {"blocked_sessions", p.blocked_sessions},
                       {"compact", t.peak_compact},
                       {"tree", std::move(tree)}};
  } else {
    doc["peak"] = nullptr;
  }

  if (t.surge) {
    const TimelineSurge& s = *t.surge;
    doc["surge"] = json{
        {"detected", s.detected},
        {"before_at", lockwatch::json::FormatIso8601(s.by_pair.before_at)},
        {"after_at", lockwatch::json::FormatIso8601(s.by_pair.after_at)},
        {"sessions_before", s.by_pair.sessions_before},
        {"sessions_after", s.by_pair.sessions_after},
        {"added", s.by_pair.sessions_after - s.by_pair.sessions_before},
        {"new_backends", s.new_backends >= 0 ? json(s.new_backends) : json(nullptr)},
        {"by_application_and_network", SurgeJson(s.by_pair)},
        {"by_application", SurgeJson(s.by_application)},
        {"by_network", SurgeJson(s.by_network)},
    };
  } else {
    doc["surge"] = nullptr;
  }

  json actions = json::array();
  for (const TimelineAction& a : t.actions) {
    actions.push_back(json{{"at", lockwatch::json::FormatIso8601(a.at)},
                           {"rule", a.rule},
                           {"action", a.action},
                           {"pid", a.pid},
                           {"result", a.result},
                           {"decision", a.decision.empty() ? json(nullptr) : json(a.decision)},
                           {"dry_run", a.dry_run}});
  }
  doc["actions"] = std::move(actions);

  json events = json::array();
  for (const TimelineEvent& e : t.events) {
    events.push_back(json{{"at", lockwatch::json::FormatIso8601(e.at)}, {"kind", e.kind}, {"text", e.text}});
  }
  doc["events"] = std::move(events);
  return doc;
}

}  // namespace lockwatch::forensics
