#include "agent/console/top_model.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/lock_mode.h"
#include "agent/core/tree_render.h"

namespace lockwatch::console {
namespace {

using core::NodeRef;

constexpr const char* kBold = "\x1b[1m";
constexpr const char* kReverse = "\x1b[7m";
constexpr const char* kRed = "\x1b[31m";
constexpr const char* kYellow = "\x1b[33m";
constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kReset = "\x1b[0m";

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U; }

// Server and client text shown on the operator's terminal: control characters neutralised, whitespace runs
// collapsed, so nothing can move the cursor and every item stays on its line.
std::string Clean(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = !out.empty();
      continue;
    }
    if (space) {
      out.push_back(' ');
      space = false;
    }
    out.push_back(u < 0x20 || u == 0x7F ? '?' : c);
  }
  return out;
}

// At most `width` code points of `s`, cut on a code point boundary.
std::string Fit(const std::string& s, int width) {
  if (width <= 0) return "";
  int seen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsContinuationByte(s[i])) {
      if (seen == width) return s.substr(0, i);
      ++seen;
    }
  }
  return s;
}

// `s` cut into lines of at most `width` code points, at spaces where possible (the space is dropped).
std::vector<std::string> Wrap(const std::string& s, int width) {
  std::vector<std::string> out;
  std::string rest = s;
  while (!rest.empty()) {
    std::string part = Fit(rest, width);
    if (part.size() < rest.size()) {
      // The byte after `part` starts the next code point; a space there or inside `part` is a break.
      const size_t space = rest[part.size()] == ' ' ? part.size() : part.rfind(' ');
      if (space != std::string::npos && space > 0) {
        out.push_back(rest.substr(0, space));
        rest = rest.substr(space + 1);
        continue;
      }
    }
    out.push_back(part);
    rest = rest.substr(part.size());
  }
  if (out.empty()) out.emplace_back();
  return out;
}

std::string Paint(const std::string& text, const char* color, bool enabled) {
  if (!enabled || color == nullptr || text.empty()) return text;
  return std::string(color) + text + kReset;
}

double Since(const std::optional<core::TimestampUs>& at, core::TimestampUs now) {
  if (!at) return -1;
  return *at >= now ? 0.0 : static_cast<double>(now - *at) / 1e6;
}

// Indexes over one frame.
class FrameIndex {
 public:
  explicit FrameIndex(const TopFrame& frame) : frame_(frame) {
    for (const core::Session& s : frame.snapshot->sessions) sessions_.emplace(s.pid, &s);
    for (const core::PreparedXact& p : frame.snapshot->prepared) prepared_.emplace(p.gid, &p);
    for (const core::Waiter& w : frame.report->waiters) waiters_.emplace(w.node, &w);
    for (const core::Edge& e : frame.report->edges) {
      in_edges_[e.blocker].push_back(&e);
      out_edges_[e.waiter].push_back(&e);
    }
    for (auto& [node, edges] : in_edges_) {
      std::stable_sort(edges.begin(), edges.end(), [](const core::Edge* a, const core::Edge* b) {
        const auto as = a->waiter_since.value_or(INT64_MAX);
        const auto bs = b->waiter_since.value_or(INT64_MAX);
        return as != bs ? as < bs : a->waiter < b->waiter;
      });
    }
    for (const core::Root& r : frame.report->roots) roots_.emplace(r.node, &r);
  }

  const core::Session* Session(const NodeRef& n) const {
    if (n.is_prepared()) return nullptr;
    auto it = sessions_.find(n.pid);
    return it == sessions_.end() ? nullptr : it->second;
  }
  const core::PreparedXact* Prepared(const NodeRef& n) const {
    auto it = prepared_.find(n.gid);
    return n.is_prepared() && it != prepared_.end() ? it->second : nullptr;
  }
  const core::Waiter* Waiter(const NodeRef& n) const {
    auto it = waiters_.find(n);
    return it == waiters_.end() ? nullptr : it->second;
  }
  const core::Root* Root(const NodeRef& n) const {
    auto it = roots_.find(n);
    return it == roots_.end() ? nullptr : it->second;
  }
  const std::vector<const core::Edge*>& In(const NodeRef& n) const {
    static const std::vector<const core::Edge*> kNone;
    auto it = in_edges_.find(n);
    return it == in_edges_.end() ? kNone : it->second;
  }
  const core::Edge* FirstOut(const NodeRef& n) const {
    auto it = out_edges_.find(n);
    return it == out_edges_.end() || it->second.empty() ? nullptr : it->second.front();
  }

  bool Matches(const NodeRef& n, const TopFilter& f) const {
    if (f.empty()) return true;
    const core::Session* s = Session(n);
    const core::PreparedXact* p = Prepared(n);
    const std::string db = s != nullptr ? s->datname : (p != nullptr ? p->database : "");
    const std::string user = s != nullptr ? s->usename : (p != nullptr ? p->owner : "");
    const std::string app = s != nullptr ? s->application_name : "";
    return (f.database.empty() || db.find(f.database) != std::string::npos) &&
           (f.user.empty() || user.find(f.user) != std::string::npos) &&
           (f.application.empty() || app.find(f.application) != std::string::npos);
  }

  // The root or any session in its tree matches the filter.
  bool TreeMatches(const NodeRef& root, const TopFilter& f) const {
    if (f.empty() || Matches(root, f)) return true;
    std::set<NodeRef> seen{root};
    std::vector<NodeRef> todo{root};
    while (!todo.empty()) {
      const NodeRef n = todo.back();
      todo.pop_back();
      for (const core::Edge* e : In(n)) {
        if (!seen.insert(e->waiter).second) continue;
        if (Matches(e->waiter, f)) return true;
        todo.push_back(e->waiter);
      }
    }
    return false;
  }

  const TopFrame& frame() const { return frame_; }

 private:
  const TopFrame& frame_;
  std::map<int32_t, const core::Session*> sessions_;
  std::map<std::string, const core::PreparedXact*> prepared_;
  std::map<NodeRef, const core::Waiter*> waiters_;
  std::map<NodeRef, const core::Root*> roots_;
  std::map<NodeRef, std::vector<const core::Edge*>> in_edges_;
  std::map<NodeRef, std::vector<const core::Edge*>> out_edges_;
};

void AddChildren(const FrameIndex& index, const TopState& state, const NodeRef& node, int depth,
                 std::set<NodeRef>& placed, std::vector<TopRow>& rows) {
  for (const core::Edge* e : index.In(node)) {
    if (!placed.insert(e->waiter).second) continue;
    TopRow row;
    row.node = e->waiter;
    row.depth = depth;
    row.expandable = !index.In(e->waiter).empty();
    row.expanded = row.expandable && state.expanded.count(e->waiter) != 0;
    rows.push_back(row);
    if (row.expanded) AddChildren(index, state, e->waiter, depth + 1, placed, rows);
  }
}

std::vector<TopRow> Rows(const FrameIndex& index, const TopState& state) {
  const TopFrame& frame = index.frame();
  std::vector<NodeRef> roots;
  for (const core::Root& r : frame.report->roots) roots.push_back(r.node);
  for (const core::Cycle& c : frame.report->cycles) {
    if (!c.pids.empty()) roots.push_back(NodeRef{c.pids.front(), ""});
  }
  std::vector<TopRow> rows;
  std::set<NodeRef> placed;
  for (const NodeRef& root : roots) {
    if (!index.TreeMatches(root, state.filter) || !placed.insert(root).second) continue;
    TopRow row;
    row.node = root;
    row.is_root = true;
    row.expandable = !index.In(root).empty();
    row.expanded = row.expandable && state.expanded.count(root) != 0;
    rows.push_back(row);
    if (row.expanded) AddChildren(index, state, root, 1, placed, rows);
  }
  return rows;
}

std::string NodeName(const NodeRef& n) {
  return n.is_prepared() ? "prepared '" + Clean(n.gid) + "'" : std::to_string(n.pid);
}

std::string Who(const core::Session& s) {
  std::string who = Clean(s.usename);
  if (!s.application_name.empty()) who += " " + Clean(s.application_name);
  who += " " + (s.client_addr.empty() ? std::string("local") : Clean(s.client_addr));
  return who;
}

// What a session is doing and for how long: "idle in transaction 12m05s", "running 3s".
std::string Activity(const core::Session& s, core::TimestampUs now) {
  if (s.state == "active") {
    const double running = Since(s.query_start, now);
    return running >= 0 ? "running " + core::CompactDuration(running) : "running";
  }
  const std::string state = s.state.empty() ? Clean(s.backend_type) : Clean(s.state);
  const double since = Since(s.state_change, now);
  return since >= 0 ? state + " " + core::CompactDuration(since) : state;
}

std::string Delta(const TopFrame& frame, const NodeRef& node, int blocked) {
  if (!frame.has_previous) return "";
  auto it = frame.previous_blocked.find(node);
  if (it == frame.previous_blocked.end()) return " (new)";
  const int d = blocked - it->second;
  if (d == 0) return " (=)";
  return d > 0 ? " (+" + std::to_string(d) + ")" : " (" + std::to_string(d) + ")";
}

const core::Explanation* FirstExplanation(const TopFrame& frame, const NodeRef& root) {
  if (frame.explanations == nullptr) return nullptr;
  for (const core::Explanation& f : *frame.explanations) {
    if (f.root && *f.root == root) return &f;
    if (!f.root && f.kind == core::ExplanationKind::kDeadlockForming && !root.is_prepared() &&
        std::binary_search(f.pids.begin(), f.pids.end(), root.pid)) {
      return &f;
    }
  }
  return nullptr;
}

std::string RootLine(const FrameIndex& index, const TopRow& row) {
  const TopFrame& frame = index.frame();
  const core::TimestampUs now = frame.snapshot->captured_at_us;
  const core::Root* root = index.Root(row.node);
  std::string text =
      std::string(row.expandable ? (row.expanded ? "[-] " : "[+] ") : "    ") + NodeName(row.node);
  if (root == nullptr) {
    text += " deadlock cycle";
  } else if (root->classification != core::RootClass::kIdleInTransaction &&
             root->classification != core::RootClass::kActive) {
    // Idle in transaction and active are plain from the activity that follows.
    text += " " + std::string(core::RootClassName(root->classification));
  }
  if (const core::Session* s = index.Session(row.node)) {
    text += " " + Activity(*s, now);
  } else if (const core::PreparedXact* p = index.Prepared(row.node)) {
    const double age = Since(p->prepared, now);
    if (age >= 0) text += " " + core::CompactDuration(age);
  }
  if (root != nullptr) {
    text +=
        " blocks " + std::to_string(root->blocked_sessions) + Delta(frame, row.node, root->blocked_sessions);
  }
  if (const core::Session* s = index.Session(row.node)) {
    text += " | " + Who(*s) + " | " + Clean(s->query);
  } else if (const core::PreparedXact* p = index.Prepared(row.node)) {
    text += " | " + Clean(p->owner) + " " + Clean(p->database);
  }
  return text;
}

std::string WaiterLine(const FrameIndex& index, const TopRow& row) {
  std::string text = std::string(static_cast<size_t>(row.depth) * 2, ' ') +
                     (row.expandable ? (row.expanded ? "[-] " : "[+] ") : "`-  ") + NodeName(row.node);
  if (const core::Waiter* w = index.Waiter(row.node))
    text += " waits " + core::CompactDuration(w->wait_seconds);
  if (const core::Edge* e = index.FirstOut(row.node)) {
    text += " " + std::string(core::LockModeName(e->waiter_mode)) + " on " + Clean(e->target.text) +
            (e->kind == core::EdgeKind::kHard ? " (hard)" : " (soft)");
  }
  const int behind = static_cast<int>(index.In(row.node).size());
  if (behind > 0) text += " blocks " + std::to_string(behind);
  if (const core::Session* s = index.Session(row.node)) text += " | " + Who(*s) + " | " + Clean(s->query);
  return text;
}

std::string HeaderSessions(const TopFrame& frame) {
  std::string text = "sessions:";
  int total = 0;
  for (const auto& [state, count] : core::SessionsByState(*frame.snapshot)) {
    text += (total == 0 ? " " : ", ") + std::to_string(count) + " " + Clean(state);
    total += count;
  }
  if (total == 0) text += " none";
  text += " | waiting " + std::to_string(frame.report->waiters.size()) + " | longest wait " +
          core::CompactDuration(frame.report->max_wait_seconds);
  return text;
}

std::string Groups(const core::ArrivalBreakdown& b) {
  std::string text;
  for (const core::ArrivalGroup& g : b.top) {
    text += (text.empty() ? "" : ", ") + Clean(g.key) + " " + std::to_string(g.count);
  }
  if (b.other > 0) text += (text.empty() ? "" : ", ") + std::string("other ") + std::to_string(b.other);
  return text.empty() ? "-" : text;
}

std::string HeaderArrivals(const TopFrame& frame) {
  if (frame.arrivals == nullptr || frame.arrivals->windows.empty()) return "connections: -";
  const core::ArrivalStats& a = *frame.arrivals;
  std::string text = "connections:";
  for (const core::ArrivalWindow& w : a.windows) {
    char buf[96];
    std::snprintf(buf, sizeof buf, " %d in %llds (%.1f/s)", w.arrivals,
                  static_cast<long long>(w.window_us / 1000000), w.per_second);
    text += buf;
  }
  // The groups of the shortest window with arrivals: a surge that paused for ten seconds still shows who it
  // came from, with the window named when it is not the shortest.
  const core::ArrivalWindow* shown = &a.windows.front();
  for (const core::ArrivalWindow& w : a.windows) {
    if (w.arrivals > 0) {
      shown = &w;
      break;
    }
  }
  const std::string label =
      shown == &a.windows.front() ? "" : " (" + std::to_string(shown->window_us / 1000000) + "s)";
  text += " | by app" + label + ": " + Groups(shown->by_application) + " | by net" + label + ": " +
          Groups(shown->by_network);
  return text;
}

std::string FilterText(const TopFilter& f) {
  std::string text;
  if (!f.database.empty()) text += " db~" + Clean(f.database);
  if (!f.user.empty()) text += " user~" + Clean(f.user);
  if (!f.application.empty()) text += " app~" + Clean(f.application);
  return text;
}

std::vector<std::string> DetailLines(const FrameIndex& index, const NodeRef& node, int width) {
  const TopFrame& frame = index.frame();
  const core::TimestampUs now = frame.snapshot->captured_at_us;
  std::vector<std::string> out;
  auto add_wrapped = [&](const std::string& text) {
    for (std::string& l : Wrap(text, width)) out.push_back(std::move(l));
  };
  if (const core::PreparedXact* p = index.Prepared(node)) {
    add_wrapped("prepared transaction '" + Clean(p->gid) + "' | owner " + Clean(p->owner) + " | database " +
                Clean(p->database) + " | xid " + std::to_string(p->transaction));
    if (p->prepared) add_wrapped("prepared at " + core::FormatTimestampUtc(*p->prepared));
  } else if (const core::Session* s = index.Session(node)) {
    add_wrapped("pid " + std::to_string(s->pid) + " | user " + Clean(s->usename) + " | app " +
                Clean(s->application_name) + " | client " +
                (s->client_addr.empty() ? std::string("local") : Clean(s->client_addr)) + " | db " +
                Clean(s->datname) + " | " + Clean(s->backend_type));
    std::string state = "state: " + Activity(*s, now);
    if (s->xact_start) state += " | transaction open " + core::CompactDuration(Since(s->xact_start, now));
    if (!s->wait_event_type.empty())
      state += " | wait " + Clean(s->wait_event_type) + ":" + Clean(s->wait_event);
    add_wrapped(state);
    if (s->backend_start) add_wrapped("backend_start " + core::FormatTimestampUtc(*s->backend_start));
    add_wrapped("query: " + Clean(s->query));
  } else {
    add_wrapped(NodeName(node) + " is not in pg_stat_activity");
  }
  out.emplace_back("locks:");
  int locks = 0;
  for (const core::LockRow& row : frame.snapshot->locks) {
    const bool mine = node.is_prepared() ? !row.pid.has_value() : row.pid == node.pid;
    if (!mine) continue;
    const core::LockTarget target = core::DescribeTarget(row, *frame.snapshot);
    add_wrapped(std::string("  ") + (row.granted ? "holds " : "WAITS ") +
                std::string(core::LockModeName(row.mode)) + " on " + Clean(target.text));
    ++locks;
  }
  if (locks == 0) out.emplace_back("  (none on contended targets)");
  if (frame.explanations != nullptr) {
    for (const core::Explanation& f : *frame.explanations) {
      const bool about = (f.root && *f.root == node) ||
                         (!node.is_prepared() && std::binary_search(f.pids.begin(), f.pids.end(), node.pid));
      if (!about) continue;
      add_wrapped("why: " + std::string(core::ExplanationKindName(f.kind)) + ": " + Clean(f.situation));
      add_wrapped("fix: " + Clean(f.remedy));
    }
  }
  return out;
}

const std::vector<std::string>& HelpLines() {
  static const std::vector<std::string> kHelp = {
      "keys:",
      "  up/down, j/k, PgUp/PgDn, Home/End   move the selection",
      "  enter, space, right / left          expand / collapse the selected tree",
      "  i                                   details: full query, locks, explanation",
      "  d / u / a                           filter by database / user / application (empty clears)",
      "  x                                   clear every filter",
      "  c / t                               cancel / terminate the selected session (asks first)",
      "  w                                   write a dump of the current snapshot now",
      "  q                                   quit (in a sub-view: back)",
  };
  return kHelp;
}

int FindRow(const std::vector<TopRow>& rows, const std::optional<NodeRef>& selected) {
  if (!selected) return rows.empty() ? -1 : 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].node == *selected) return static_cast<int>(i);
  }
  return rows.empty() ? -1 : 0;
}

std::string Footer(const TopState& state) {
  switch (state.mode) {
    case TopMode::kConfirm:
      return state.confirm_text;
    case TopMode::kFilter: {
      const char* field = state.filter_field == 'd'   ? "database"
                          : state.filter_field == 'u' ? "user"
                                                      : "application";
      return std::string("filter ") + field + ": " + Clean(state.input) + "_  (enter: apply, esc: cancel)";
    }
    case TopMode::kDetail:
    case TopMode::kHelp:
      return state.message.empty() ? "esc/q: back" : state.message;
    case TopMode::kList:
      break;
  }
  if (!state.message.empty()) return state.message;
  return "q quit  j/k move  enter expand  i details  d/u/a filter  c cancel  t terminate  w dump  ? help";
}

}  // namespace

std::vector<Key> DecodeKeys(std::string_view bytes) {
  std::vector<Key> keys;
  size_t i = 0;
  while (i < bytes.size()) {
    const char c = bytes[i];
    if (c == '\x1b') {
      if (i + 1 >= bytes.size()) {
        keys.push_back(Key::Of(Key::Code::kEscape));
        ++i;
        continue;
      }
      const char kind = bytes[i + 1];
      if (kind != '[' && kind != 'O') {
        keys.push_back(Key::Of(Key::Code::kEscape));
        ++i;
        continue;
      }
      // CSI / SS3: parameters then a final byte in 0x40..0x7E.
      size_t j = i + 2;
      while (j < bytes.size() && (bytes[j] < 0x40 || bytes[j] > 0x7E)) ++j;
      if (j >= bytes.size()) break;  // incomplete: dropped
      const std::string_view params = bytes.substr(i + 2, j - i - 2);
      switch (bytes[j]) {
        case 'A':
          keys.push_back(Key::Of(Key::Code::kUp));
          break;
        case 'B':
          keys.push_back(Key::Of(Key::Code::kDown));
          break;
        case 'C':
          keys.push_back(Key::Of(Key::Code::kRight));
          break;
        case 'D':
          keys.push_back(Key::Of(Key::Code::kLeft));
          break;
        case 'H':
          keys.push_back(Key::Of(Key::Code::kHome));
          break;
        case 'F':
          keys.push_back(Key::Of(Key::Code::kEnd));
          break;
        case '~':
          if (params == "5") keys.push_back(Key::Of(Key::Code::kPageUp));
          if (params == "6") keys.push_back(Key::Of(Key::Code::kPageDown));
          if (params == "1" || params == "7") keys.push_back(Key::Of(Key::Code::kHome));
          if (params == "4" || params == "8") keys.push_back(Key::Of(Key::Code::kEnd));
          break;
        default:
          break;
      }
      i = j + 1;
      continue;
    }
    if (c == '\r' || c == '\n') {
      keys.push_back(Key::Of(Key::Code::kEnter));
    } else if (c == 0x7F || c == 0x08) {
      keys.push_back(Key::Of(Key::Code::kBackspace));
    } else {
      keys.push_back(Key::Char(c));
    }
    ++i;
  }
  return keys;
}

std::vector<TopRow> BuildRows(const TopFrame& frame, const TopState& state) {
  return Rows(FrameIndex(frame), state);
}

std::vector<std::string> RenderTop(const TopFrame& frame, const TopState& state, int width, int height,
                                   bool color) {
  width = std::max(width, 20);
  const FrameIndex index(frame);
  std::vector<std::string> header;
  char every[32];
  std::snprintf(every, sizeof every, "%gs", frame.interval_seconds);
  header.push_back("lockwatch top | " + core::FormatTimestampUtc(frame.snapshot->captured_at_us) +
                   " | every " + every + FilterText(state.filter) + " | " + Clean(frame.target));
  header.push_back(HeaderSessions(frame));
  header.push_back(HeaderArrivals(frame));

  // Body lines, each tagged with the row it belongs to (-1: none), for scrolling and highlighting.
  std::vector<std::pair<std::string, int>> body;
  const std::vector<TopRow> rows = Rows(index, state);
  const int selected = FindRow(rows, state.selected);
  std::vector<const char*> colors;
  if (state.mode == TopMode::kDetail && selected >= 0) {
    for (std::string& l : DetailLines(index, rows[static_cast<size_t>(selected)].node, width)) {
      body.emplace_back(std::move(l), -1);
      colors.push_back(nullptr);
    }
  } else if (state.mode == TopMode::kHelp) {
    for (const std::string& l : HelpLines()) {
      body.emplace_back(l, -1);
      colors.push_back(nullptr);
    }
  } else if (rows.empty()) {
    body.emplace_back(frame.report->edges.empty() && frame.report->waiters.empty()
                          ? "No lock waits"
                          : (state.filter.empty() ? "No root blockers (waits without a visible blocker)"
                                                  : "No blocking tree matches the filter"),
                      -1);
    colors.push_back(kGreen);
  } else {
    for (size_t i = 0; i < rows.size(); ++i) {
      const TopRow& row = rows[i];
      const int tag = static_cast<int>(i);
      if (row.is_root) {
        body.emplace_back(RootLine(index, row), tag);
        colors.push_back(kRed);
        if (const core::Explanation* f = FirstExplanation(frame, row.node)) {
          body.emplace_back(
              "    why: " + std::string(core::ExplanationKindName(f->kind)) + ": " + Clean(f->situation),
              tag);
          colors.push_back(kYellow);
          if (tag == selected || height <= 0) {
            body.emplace_back("    fix: " + Clean(f->remedy), tag);
            colors.push_back(kGreen);
          }
        }
      } else {
        body.emplace_back(WaiterLine(index, row), tag);
        colors.push_back(nullptr);
      }
    }
  }
  // Server-wide findings (extension waits, lock-manager contention) after the forest.
  if (state.mode == TopMode::kList && frame.explanations != nullptr) {
    for (const core::Explanation& f : *frame.explanations) {
      if (f.root || f.kind == core::ExplanationKind::kDeadlockForming) continue;
      body.emplace_back("why: " + std::string(core::ExplanationKindName(f.kind)) + ": " + Clean(f.situation),
                        -1);
      colors.push_back(kYellow);
      body.emplace_back("fix: " + Clean(f.remedy), -1);
      colors.push_back(kGreen);
    }
  }

  std::vector<std::string> lines;
  auto emit = [&](const std::string& text, const char* c, bool reverse) {
    std::string fitted = Fit(text, width);
    if (reverse && color) {
      lines.push_back(std::string(kReverse) + fitted + kReset);
    } else {
      lines.push_back(Paint(fitted, c, color));
    }
  };
  for (const std::string& h : header) emit(h, kBold, false);
  const std::string footer = Footer(state);
  const bool plain = height <= 0;
  const int available =
      plain ? static_cast<int>(body.size()) : std::max(0, height - static_cast<int>(header.size()) - 1);
  // Scroll so the selected row's lines are visible, as little as possible.
  int first_selected = -1;
  int last_selected = -1;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i].second >= 0 && body[i].second == selected) {
      if (first_selected < 0) first_selected = static_cast<int>(i);
      last_selected = static_cast<int>(i);
    }
  }
  int first = 0;
  if (!plain && state.mode == TopMode::kList && last_selected >= available)
    first = last_selected - available + 1;
  for (int i = first; i < static_cast<int>(body.size()) && i < first + available; ++i) {
    const auto& [text, tag] = body[static_cast<size_t>(i)];
    // The selection marker is a '>' in the first column, so it survives without colour; the row's first line
    // is also shown in reverse video.
    const bool in_list = state.mode == TopMode::kList && tag >= 0 && !plain;
    const bool is_selected = in_list && tag == selected;
    emit((in_list ? (is_selected ? ">" : " ") : "") + text, colors[static_cast<size_t>(i)],
         is_selected && i == first_selected);
  }
  if (plain) return lines;  // no keys in plain-text frames: no status line
  // The status line; a confirmation is wrapped (never cut) so the operator reads all of what will run.
  std::vector<std::string> status =
      state.mode == TopMode::kConfirm ? Wrap(footer, width) : std::vector<std::string>{footer};
  const int status_lines = std::min(static_cast<int>(status.size()), std::max(1, height - 1));
  if (static_cast<int>(lines.size()) > height - status_lines)
    lines.resize(static_cast<size_t>(height - status_lines));
  while (static_cast<int>(lines.size()) < height - status_lines) lines.emplace_back();
  for (int i = 0; i < status_lines; ++i) {
    emit(status[static_cast<size_t>(i)], state.mode == TopMode::kConfirm ? kReverse : nullptr, false);
  }
  if (static_cast<int>(lines.size()) > height) lines.resize(static_cast<size_t>(height));
  return lines;
}

std::string RefusalReason(const TopState& state, const TopFrame& frame, const NodeRef& node) {
  const FrameIndex index(frame);
  if (node.is_prepared()) {
    const core::PreparedXact* p = index.Prepared(node);
    return "a prepared transaction has no process to signal: run ROLLBACK PREPARED '" + Clean(node.gid) +
           "' (or COMMIT PREPARED) in database " + (p != nullptr ? Clean(p->database) : std::string("?"));
  }
  if (node.pid == state.own_pid || node.pid == frame.snapshot->own_pid)
    return "that is lockwatch's own session";
  const core::Session* s = index.Session(node);
  if (s == nullptr) return "pid " + std::to_string(node.pid) + " is no longer in pg_stat_activity";
  if (s->application_name.rfind("lockwatch", 0) == 0) return "that is a lockwatch session";
  if (!state.allow_superuser && s->superuser.value_or(true)) {
    return "pid " + std::to_string(node.pid) +
           (s->superuser ? " is a superuser session" : "'s role could not be read (treated as superuser)") +
           ": start top with --allow-superuser to allow it";
  }
  if (!s->backend_type.empty() && s->backend_type != "client backend") {
    return "pid " + std::to_string(node.pid) + " is a " + Clean(s->backend_type) + ", not a client session";
  }
  if (!s->backend_start)
    return "pid " + std::to_string(node.pid) + " has no backend_start: it cannot be identified";
  return "";
}

SignalEffect PlanSignal(const TopFrame& frame, const NodeRef& node, core::ActionKind action) {
  const FrameIndex index(frame);
  SignalEffect effect;
  effect.action = action;
  effect.victim.pid = node.pid;
  const std::string fn =
      action == core::ActionKind::kTerminate ? "pg_terminate_backend" : "pg_cancel_backend";
  std::string text = fn + "(" + std::to_string(node.pid) + ") on pid " + std::to_string(node.pid);
  if (const core::Session* s = index.Session(node)) {
    effect.victim.backend_start = s->backend_start;
    effect.victim.xact_start = s->xact_start;
    effect.victim.state_change = s->state_change;
    text += " (" + Clean(s->usename) +
            (s->application_name.empty() ? "" : ", app " + Clean(s->application_name)) + ", " +
            Activity(*s, frame.snapshot->captured_at_us) + ")";
    text += action == core::ActionKind::kTerminate ? ": ends the session, its transaction rolls back"
                                                   : ": stops its current statement";
    std::string only = " - only if backend_start is still " +
                       (s->backend_start ? core::FormatTimestampUtc(*s->backend_start) : std::string("?"));
    if (s->xact_start) only += ", xact_start " + core::FormatTimestampUtc(*s->xact_start);
    if (s->state_change) only += ", state_change " + core::FormatTimestampUtc(*s->state_change);
    text += only;
  }
  effect.description = text;
  return effect;
}

TopEffect HandleKey(TopState& state, const Key& key, const TopFrame& frame, int page) {
  TopEffect effect;
  using Code = Key::Code;
  switch (state.mode) {
    case TopMode::kConfirm:
      if (key.code == Code::kChar && (key.ch == 'y' || key.ch == 'Y') && state.pending) {
        effect.signal = state.pending;
        state.message =
            "sending " + state.pending->description.substr(0, state.pending->description.find(' '));
      } else {
        state.message = "not sent";
      }
      state.pending.reset();
      state.confirm_text.clear();
      state.mode = TopMode::kList;
      return effect;
    case TopMode::kFilter:
      if (key.code == Code::kEnter) {
        std::string& field = state.filter_field == 'd'   ? state.filter.database
                             : state.filter_field == 'u' ? state.filter.user
                                                         : state.filter.application;
        field = state.input;
        state.mode = TopMode::kList;
        state.message.clear();
      } else if (key.code == Code::kEscape) {
        state.mode = TopMode::kList;
      } else if (key.code == Code::kBackspace) {
        if (!state.input.empty()) state.input.pop_back();
      } else if (key.code == Code::kChar && static_cast<unsigned char>(key.ch) >= 0x20 && key.ch != 0x7F) {
        state.input.push_back(key.ch);
      }
      return effect;
    case TopMode::kDetail:
    case TopMode::kHelp:
      if (key.code == Code::kEscape || key.code == Code::kLeft || key.code == Code::kEnter ||
          (key.code == Code::kChar && (key.ch == 'q' || key.ch == 'i' || key.ch == '?'))) {
        state.mode = TopMode::kList;
        state.message.clear();
      }
      return effect;
    case TopMode::kList:
      break;
  }

  const std::vector<TopRow> rows = BuildRows(frame, state);
  int at = FindRow(rows, state.selected);
  auto select = [&](int index) {
    if (rows.empty()) return;
    index = std::clamp(index, 0, static_cast<int>(rows.size()) - 1);
    state.selected = rows[static_cast<size_t>(index)].node;
  };
  state.message.clear();
  if (key.code == Code::kDown || (key.code == Code::kChar && key.ch == 'j')) {
    select(at + 1);
  } else if (key.code == Code::kUp || (key.code == Code::kChar && key.ch == 'k')) {
    select(at - 1);
  } else if (key.code == Code::kPageDown) {
    select(at + std::max(page, 1));
  } else if (key.code == Code::kPageUp) {
    select(at - std::max(page, 1));
  } else if (key.code == Code::kHome) {
    select(0);
  } else if (key.code == Code::kEnd) {
    select(static_cast<int>(rows.size()) - 1);
  } else if (key.code == Code::kEnter || key.code == Code::kRight ||
             (key.code == Code::kChar && key.ch == ' ')) {
    if (at >= 0 && rows[static_cast<size_t>(at)].expandable) {
      const NodeRef& n = rows[static_cast<size_t>(at)].node;
      select(at);
      if (key.code == Code::kRight || state.expanded.count(n) == 0) {
        state.expanded.insert(n);
      } else {
        state.expanded.erase(n);
      }
    }
  } else if (key.code == Code::kLeft) {
    if (at >= 0) {
      select(at);
      state.expanded.erase(rows[static_cast<size_t>(at)].node);
    }
  } else if (key.code == Code::kChar) {
    switch (key.ch) {
      case 'q':
        effect.quit = true;
        break;
      case 'i':
        if (at >= 0) {
          select(at);
          state.mode = TopMode::kDetail;
        }
        break;
      case '?':
        state.mode = TopMode::kHelp;
        break;
      case 'd':
      case 'u':
      case 'a':
        state.mode = TopMode::kFilter;
        state.filter_field = key.ch;
        state.input = key.ch == 'd'   ? state.filter.database
                      : key.ch == 'u' ? state.filter.user
                                      : state.filter.application;
        break;
      case 'x':
        state.filter = TopFilter{};
        break;
      case 'w':
        effect.dump = true;
        break;
      case 'c':
      case 't': {
        if (at < 0) {
          state.message = "nothing selected";
          break;
        }
        const NodeRef node = rows[static_cast<size_t>(at)].node;
        select(at);
        const std::string refusal = RefusalReason(state, frame, node);
        if (!refusal.empty()) {
          state.message = "refused: " + refusal;
          break;
        }
        state.pending =
            PlanSignal(frame, node, key.ch == 't' ? core::ActionKind::kTerminate : core::ActionKind::kCancel);
        state.confirm_text = state.pending->description + "; y/N";
        state.mode = TopMode::kConfirm;
        break;
      }
      default:
        break;
    }
  }
  return effect;
}

}  // namespace lockwatch::console
