#include "agent/forensics/report_html.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "agent/core/flight_recorder.h"
#include "agent/core/tree_render.h"
#include "agent/forensics/timeline_render.h"

namespace lockwatch::forensics {
namespace {

// Colours of the chart. The total's area colour is also what the browser test looks for in a screenshot.
constexpr const char* kTotalFill = "#ffd7a8";
constexpr const char* kRootColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                        "#8c564b", "#e377c2", "#17becf", "#7f7f7f"};
constexpr size_t kMaxChartRoots = sizeof kRootColours / sizeof kRootColours[0];

constexpr double kChartWidth = 1000;
constexpr double kChartHeight = 320;
constexpr double kLeft = 56;
constexpr double kRight = 16;
constexpr double kTop = 16;
constexpr double kBottom = 40;

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string Esc(std::string_view s) { return HtmlEscape(s); }

// Escaped and made single-line (for table cells and attributes).
std::string EscLine(std::string_view s) { return HtmlEscape(OneLine(s)); }

// A round axis maximum >= v (1, 2, 5 x 10^n).
double NiceCeil(double v) {
  if (v <= 1) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= v) return m * p;
  }
  return 10 * p;
}

class HtmlWriter {
 public:
  HtmlWriter(const Timeline& t, const std::string& file, const ReportHtmlOptions& options)
      : t_(t), file_(file), options_(options) {}

  std::string Render() {
    Head();
    Summary();
    Chart();
    Events();
    Roots();
    Surge();
    Tree();
    Sessions();
    Foot();
    return out_.str();
  }

 private:
  std::string Title() const {
    if (t_.reason == "manual")
      return "lockwatch capture " + t_.target + " " + FormatDateTime(t_.points.front().at);
    if (t_.incident) return "lockwatch incident " + t_.incident->id;
    return "lockwatch dump " + t_.target;
  }

  void Head() {
    out_
        << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        << "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
           "'unsafe-inline'; "
           "img-src data:; script-src 'nonce-"
        << Esc(options_.nonce) << "'\">\n"
        << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        << "<title>" << EscLine(Title()) << "</title>\n<style>\n"
        << "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#1b1b1b;"
           "background:#fff;max-width:1280px}\n"
        << "h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.6em 0 .5em;border-bottom:1px "
           "solid "
           "#ddd;padding-bottom:.2em}\n"
        << "table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 6px;"
           "text-align:left;vertical-align:top}th{background:#f4f4f4}\n"
        << "td.num{text-align:right}tr.root td{background:#fdecea}tr.waiting td{background:#fff8e5}\n"
        << "pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:.8em}\n"
        << "code{font-size:.9em;word-break:break-all}.warn{color:#a40000;font-weight:bold}\n"
        << ".legend span{display:inline-block;margin-right:14px;font-size:.85em}"
           ".legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}\n"
        << "dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0}dt{font-weight:bold}"
           "dd{margin:0}\n"
        << "</style>\n</head>\n<body data-rendered=\"no\">\n";
    out_ << "<h1>" << EscLine(Title()) << "</h1>\n";
  }

  void Summary() {
    for (const std::string& w : t_.warnings) out_ << "<p class=\"warn\">Warning: " << EscLine(w) << "</p>\n";
    out_ << "<section id=\"summary\"><dl>\n";
    Dt("File", file_);
    Dt("Target", t_.target);
    if (t_.incident) {
      const TimelineIncident& in = *t_.incident;
      Dt("Trigger", in.trigger);
      Dt("Started", FormatDateTime(in.started_at));
      Dt("Ended",
         in.ended_at ? FormatDateTime(*in.ended_at) : std::string("not resolved when the dump ends"));
      Dt("Peak", std::to_string(in.peak_blocked_sessions) + " blocked sessions, chain depth " +
                     std::to_string(in.peak_depth) + ", longest wait " + Num(in.peak_wait_seconds) + " s, " +
                     std::to_string(in.peak_roots) + " root(s) at once");
    } else {
      Dt("Captured", FormatDateTime(t_.points.front().at));
    }
    if (t_.first_wait_began) {
      Dt("First wait began", FormatDateTime(*t_.first_wait_began) + ": pid " +
                                 std::to_string(t_.first_waiter.pid) + " waiting for " +
                                 t_.first_wait_target);
    }
    Dt("Polls recorded", std::to_string(t_.points.size()));
    Dt("Dump", "schema " + std::to_string(t_.schema_version) + ", lockwatch " + t_.lockwatch_version +
                   ", query text " + t_.query_text + (t_.complete ? "" : ", INCOMPLETE"));
    out_ << "</dl></section>\n";
  }

  void Dt(const std::string& name, const std::string& value) {
    out_ << "<dt>" << Esc(name) << "</dt><dd>" << EscLine(value) << "</dd>\n";
  }

  std::vector<size_t> ChartRoots() const {
    std::vector<size_t> order(t_.roots.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return t_.roots[a].peak_blocked_sessions > t_.roots[b].peak_blocked_sessions;
    });
    if (order.size() > kMaxChartRoots) order.resize(kMaxChartRoots);
    return order;
  }

  void Chart() {
    const std::vector<TimelinePoint>& pts = t_.points;
    core::TimestampUs t0 = pts.front().at;
    core::TimestampUs t1 = pts.back().at;
    if (t1 <= t0) {  // one poll: give it some width
      t0 -= 30000000;
      t1 += 30000000;
    }
    int max_blocked = 0;
    for (const TimelinePoint& p : pts) max_blocked = std::max(max_blocked, p.blocked_sessions);
    const double y_max = NiceCeil(max_blocked);
    const double plot_w = kChartWidth - kLeft - kRight;
    const double plot_h = kChartHeight - kTop - kBottom;
    const auto x = [&](core::TimestampUs at) {
      return kLeft + plot_w * static_cast<double>(at - t0) / static_cast<double>(t1 - t0);
    };
    const auto y = [&](double v) { return kTop + plot_h * (1 - v / y_max); };
    // With one poll, draw it as a short plateau.
    std::vector<std::pair<core::TimestampUs, size_t>> xs;
    if (pts.size() == 1) {
      xs = {{pts[0].at - 5000000, 0}, {pts[0].at + 5000000, 0}};
    } else {
      for (size_t i = 0; i < pts.size(); ++i) xs.emplace_back(pts[i].at, i);
    }

    const std::vector<size_t> roots = ChartRoots();
    out_ << "<section id=\"chart\"><h2>Blocked sessions per root blocker</h2>\n";
    out_ << "<svg id=\"timeline-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kChartWidth
         << "\" height=\"" << kChartHeight << "\" viewBox=\"0 0 " << kChartWidth << " " << kChartHeight
         << "\" role=\"img\" aria-label=\"blocked sessions over time\" font-size=\"11\" "
            "font-family=\"sans-serif\">\n";
    // Phases other than "during" shaded, so "before" and "after" stand apart.
    for (size_t i = 0; i + 1 < xs.size(); ++i) {
      const std::string& phase = pts[xs[i].second].phase;
      if (phase != "before" && phase != "after") continue;
      out_ << "<rect x=\"" << Num(x(xs[i].first)) << "\" y=\"" << kTop << "\" width=\""
           << Num(x(xs[i + 1].first) - x(xs[i].first)) << "\" height=\"" << plot_h
           << "\" fill=\"#f0f0f0\"><title>" << Esc(phase) << "</title></rect>\n";
    }
    // Grid and y axis.
    for (int k = 0; k <= 4; ++k) {
      const double v = y_max * k / 4;
      out_ << "<line x1=\"" << kLeft << "\" x2=\"" << kChartWidth - kRight << "\" y1=\"" << Num(y(v))
           << "\" y2=\"" << Num(y(v)) << "\" stroke=\"#e2e2e2\"/>"
           << "<text x=\"" << kLeft - 6 << "\" y=\"" << Num(y(v) + 4) << "\" text-anchor=\"end\">"
           << (v == std::floor(v) ? std::to_string(static_cast<int64_t>(v)) : Num(v)) << "</text>\n";
    }
    // x axis: up to 6 labels.
    for (int k = 0; k <= 5; ++k) {
      const core::TimestampUs at = t0 + (t1 - t0) * k / 5;
      const char* anchor = k == 0 ? "start" : k == 5 ? "end" : "middle";
      out_ << "<text x=\"" << Num(x(at)) << "\" y=\"" << kChartHeight - kBottom + 16 << "\" text-anchor=\""
           << anchor << "\">" << FormatClock(at) << "</text>\n";
    }
    out_ << "<text x=\"" << kLeft + plot_w / 2 << "\" y=\"" << kChartHeight - 6
         << "\" text-anchor=\"middle\">time (UTC)</text>\n";
    // Total blocked as a filled area.
    out_ << "<polygon class=\"series total\" fill=\"" << kTotalFill << "\" points=\"";
    out_ << Num(x(xs.front().first)) << "," << Num(y(0));
    for (const auto& [at, i] : xs) out_ << " " << Num(x(at)) << "," << Num(y(pts[i].blocked_sessions));
    out_ << " " << Num(x(xs.back().first)) << "," << Num(y(0)) << "\"><title>all blocked sessions</title>"
         << "</polygon>\n";
    // One line per root.
    for (size_t c = 0; c < roots.size(); ++c) {
      const size_t r = roots[c];
      out_ << "<polyline class=\"series root\" fill=\"none\" stroke-width=\"2.5\" stroke=\""
           << kRootColours[c] << "\" points=\"";
      bool first = true;
      for (const auto& [at, i] : xs) {
        const int v = r < pts[i].root_blocked.size() ? pts[i].root_blocked[r] : 0;
        out_ << (first ? "" : " ") << Num(x(at)) << "," << Num(y(v));
        first = false;
      }
      out_ << "\"><title>" << EscLine(RootName(t_.roots[r])) << "</title></polyline>\n";
    }
    // Incident opened / resolved markers.
    if (t_.incident) {
      Marker(x, t_.incident->opened_at, t0, t1, "opened");
      if (t_.incident->resolved_at) Marker(x, *t_.incident->resolved_at, t0, t1, "resolved");
    }
    // Points, with their numbers as tooltips.
    for (const auto& [at, i] : xs) {
      const TimelinePoint& p = pts[i];
      out_ << "<circle cx=\"" << Num(x(at)) << "\" cy=\"" << Num(y(p.blocked_sessions))
           << "\" r=\"2.5\" fill=\"#b35900\"><title>" << FormatClock(p.at) << " " << Esc(p.phase) << ": "
           << p.blocked_sessions << " blocked, " << p.sessions << " sessions</title></circle>\n";
    }
    out_ << "<line x1=\"" << kLeft << "\" x2=\"" << kLeft << "\" y1=\"" << kTop << "\" y2=\"" << kTop + plot_h
         << "\" stroke=\"#444\"/><line x1=\"" << kLeft << "\" x2=\"" << kChartWidth - kRight << "\" y1=\""
         << kTop + plot_h << "\" y2=\"" << kTop + plot_h << "\" stroke=\"#444\"/>\n";
    out_ << "</svg>\n<div class=\"legend\"><span><i style=\"background:" << kTotalFill
         << "\"></i>all blocked sessions</span>";
    for (size_t c = 0; c < roots.size(); ++c) {
      out_ << "<span><i style=\"background:" << kRootColours[c] << "\"></i>"
           << EscLine(RootName(t_.roots[roots[c]])) << "</span>";
    }
    if (roots.size() < t_.roots.size()) {
      out_ << "<span>(" << t_.roots.size() - roots.size() << " smaller roots not drawn)</span>";
    }
    out_ << "<span>grey: before/after the incident</span></div>\n</section>\n";
  }

  template <typename X>
  void Marker(const X& x, core::TimestampUs at, core::TimestampUs t0, core::TimestampUs t1,
              const char* what) {
    if (at < t0 || at > t1) return;
    out_ << "<line x1=\"" << Num(x(at)) << "\" x2=\"" << Num(x(at)) << "\" y1=\"" << kTop << "\" y2=\""
         << kChartHeight - kBottom << "\" stroke=\"#555\" stroke-dasharray=\"4 3\"><title>incident " << what
         << " " << FormatClock(at) << "</title></line>\n";
  }

  void Events() {
    if (t_.events.empty()) return;
    out_ << "<section id=\"events\"><h2>Timeline (UTC)</h2>\n<table><tr><th>time</th><th>event</th></tr>\n";
    for (const TimelineEvent& e : t_.events) {
      out_ << "<tr><td>" << FormatClock(e.at) << "</td><td>" << EscLine(e.text) << "</td></tr>\n";
    }
    out_ << "</table></section>\n";
  }

  void Roots() {
    out_ << "<section id=\"roots\"><h2>Root blockers</h2>\n";
    if (t_.roots.empty()) {
      out_ << "<p>No root blocker in this dump.</p></section>\n";
      return;
    }
    out_ << "<table><tr><th>pid</th><th>user</th><th>application</th><th>client</th><th>state</th>"
            "<th>transaction age at first sight</th><th>first seen</th><th>peak blocked</th><th>end</th>"
            "<th>query</th></tr>\n";
    for (const TimelineRoot& r : t_.roots) {
      const std::string age = r.xact_start && *r.xact_start <= r.first_seen_at
                                  ? FormatDuration(static_cast<double>(r.first_seen_at - *r.xact_start) / 1e6)
                                  : "";
      const std::string end = r.end == RootEnd::kStillBlocking
                                  ? "still blocking at " + FormatClock(r.last_seen_at)
                                  : FormatClock(r.ended_at.value_or(r.last_seen_at)) + ": " + r.end_detail;
      out_ << "<tr class=\"root\"><td class=\"num\">"
           << (r.node.is_prepared() ? "prepared " + EscLine(r.node.gid) : std::to_string(r.node.pid))
           << "</td><td>" << EscLine(r.usename) << "</td><td>" << EscLine(r.application_name) << "</td><td>"
           << EscLine(r.client_addr) << "</td><td>" << EscLine(r.state) << "</td><td>" << age << "</td><td>"
           << FormatClock(r.first_seen_at) << "</td><td class=\"num\">" << r.peak_blocked_sessions << " at "
           << FormatClock(r.peak_at) << "</td><td>" << EscLine(end) << "</td><td><code>"
           << (r.query.empty() ? "fingerprint " + EscLine(r.query_fingerprint) : EscLine(r.query))
           << "</code></td></tr>\n";
    }
    out_ << "</table></section>\n";
  }

  void Surge() {
    if (!t_.surge) return;
    const TimelineSurge& s = *t_.surge;
    const core::Surge& p = s.by_pair;
    out_ << "<section id=\"surge\"><h2>Connection surge</h2>\n<p>" << (s.detected ? "Surge: " : "No surge: ")
         << "sessions " << p.sessions_before << " at " << FormatClock(p.before_at) << " &rarr; "
         << p.sessions_after << " at " << FormatClock(p.after_at);
    if (s.new_backends >= 0) out_ << "; " << s.new_backends << " connected in between";
    out_ << ".</p>\n";
    if (!p.contributors.empty()) {
      out_ << "<table><tr><th>application</th><th>client network</th><th>before</th><th>after</th>"
              "<th>added</th></tr>\n";
      for (const core::SurgeContributor& c : p.contributors) {
        out_ << "<tr><td>" << EscLine(c.application_name) << "</td><td>" << EscLine(c.client_network)
             << "</td><td class=\"num\">" << c.before << "</td><td class=\"num\">" << c.after
             << "</td><td class=\"num\">+" << c.added() << "</td></tr>\n";
      }
      out_ << "</table>\n";
    }
    out_ << "</section>\n";
  }

  void Tree() {
    if (!t_.peak) return;
    core::TreeRenderOptions options;
    options.width = 200;
    out_ << "<section id=\"tree\"><h2>Blocking tree at " << FormatClock(t_.points[*t_.peak].at) << " UTC"
         << (t_.reason == "manual" ? "" : " (the peak)") << "</h2>\n<pre>"
         << Esc(core::RenderTree(t_.peak_snapshot, t_.peak_report, options)) << "</pre></section>\n";
  }

  void Sessions() {
    if (!t_.peak) return;
    const core::Snapshot& s = t_.peak_snapshot;
    const core::Report& report = t_.peak_report;
    std::set<int32_t> roots;
    for (const core::Root& r : report.roots) roots.insert(r.node.pid);
    std::map<int32_t, double> waits;
    for (const core::Waiter& w : report.waiters) waits[w.node.pid] = w.wait_seconds;
    std::map<int32_t, std::vector<int32_t>> blockers;
    for (const core::Edge& e : report.edges) blockers[e.waiter.pid].push_back(e.blocker.pid);
    std::vector<const core::Session*> rows;
    for (const core::Session& session : s.sessions) rows.push_back(&session);
    const auto rank = [&](const core::Session* x) {
      return roots.count(x->pid) > 0 ? 0 : waits.count(x->pid) > 0 ? 1 : 2;
    };
    std::stable_sort(rows.begin(), rows.end(), [&](const core::Session* a, const core::Session* b) {
      if (rank(a) != rank(b)) return rank(a) < rank(b);
      if (rank(a) == 1) return waits[a->pid] > waits[b->pid];
      return false;
    });
    out_ << "<section id=\"sessions\"><h2>Sessions at " << FormatClock(s.captured_at_us) << " UTC ("
         << rows.size() << (t_.peak_compact ? " involved" : "") << ")</h2>\n"
         << "<table><tr><th>pid</th><th>user</th><th>application</th><th>client</th><th>state</th>"
            "<th>wait</th><th>blocked by</th><th>waiting</th><th>transaction age</th><th>query</th></tr>\n";
    int shown = 0;
    for (const core::Session* x : rows) {
      if (shown++ >= options_.max_session_rows) break;
      const int r = rank(x);
      std::string by;
      for (int32_t b : blockers[x->pid]) by += (by.empty() ? "" : ", ") + std::to_string(b);
      const std::string age =
          x->xact_start ? FormatDuration(static_cast<double>(s.captured_at_us - *x->xact_start) / 1e6) : "";
      out_ << "<tr"
           << (r == 0   ? " class=\"root\""
               : r == 1 ? " class=\"waiting\""
                        : "")
           << "><td class=\"num\">" << x->pid << "</td><td>" << EscLine(x->usename) << "</td><td>"
           << EscLine(x->application_name) << "</td><td>" << EscLine(x->client_addr) << "</td><td>"
           << EscLine(x->state) << "</td><td>"
           << EscLine(x->wait_event_type + (x->wait_event.empty() ? "" : ":" + x->wait_event)) << "</td><td>"
           << by << "</td><td class=\"num\">" << (r == 1 ? FormatDuration(waits[x->pid]) : "") << "</td><td>"
           << age << "</td><td><code>" << EscLine(x->query) << "</code></td></tr>\n";
    }
    out_ << "</table>\n";
    if (static_cast<int>(rows.size()) > options_.max_session_rows) {
      out_ << "<p>" << rows.size() - static_cast<size_t>(options_.max_session_rows)
           << " more sessions not shown (lockwatch analyze --json has them all).</p>\n";
    }
    out_ << "</section>\n";
  }

  void Foot() {
    // The only script: marks the page rendered once the chart is in the DOM, so a headless check can tell
    // a page whose script failed from one that worked.
    out_ << "<script nonce=\"" << Esc(options_.nonce) << "\">\n"
         << "(function () {\n"
         << "  var svg = document.getElementById('timeline-chart');\n"
         << "  var series = svg ? svg.querySelectorAll('.series').length : 0;\n"
         << "  document.body.setAttribute('data-series', String(series));\n"
         << "  document.body.setAttribute('data-rendered', series > 0 ? 'ok' : 'no-chart');\n"
         << "})();\n</script>\n</body>\n</html>\n";
  }

  const Timeline& t_;
  const std::string& file_;
  const ReportHtmlOptions& options_;
  std::ostringstream out_;
};

}  // namespace

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default: {
        const auto u = static_cast<unsigned char>(c);
        out.push_back((u < 0x20 && c != '\n' && c != '\t') || u == 0x7F ? '?' : c);
      }
    }
  }
  return out;
}

std::string RenderReportHtml(const Timeline& timeline, const std::string& file,
                             const ReportHtmlOptions& options) {
  if (timeline.points.empty()) {
    return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>lockwatch "
           "report</title></head>"
           "<body><p>No snapshot in " +
           HtmlEscape(file) + ".</p></body></html>\n";
  }
  return HtmlWriter(timeline, file, options).Render();
}

}  // namespace lockwatch::forensics
