#include "agent/core/tree_render.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/explain.h"
#include "agent/core/lock_mode.h"

namespace lockwatch::core {
namespace {

// ANSI SGR sequences. Kept few and conventional so the output stays readable on dark and light themes.
constexpr const char* kBold = "\x1b[1m";
constexpr const char* kRed = "\x1b[1;31m";
constexpr const char* kYellow = "\x1b[33m";
constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kMagenta = "\x1b[1;35m";
constexpr const char* kDim = "\x1b[2m";
constexpr const char* kReset = "\x1b[0m";

constexpr int kMinWidth = 20;
constexpr const char* kEllipsis = "...";
constexpr const char* kSeparator = " | ";

// Columns are counted in code points: box-drawing is ASCII and queries are mostly ASCII; counting bytes would
// cut multi-byte UTF-8 characters in half and over-count their width.
bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U; }

int DisplayWidth(std::string_view s) {
  int n = 0;
  for (char c : s) {
    if (!IsContinuationByte(c)) ++n;
  }
  return n;
}

// The longest prefix of `s` that is at most `columns` code points wide, cut on a code point boundary.
std::string_view PrefixColumns(std::string_view s, int columns) {
  int seen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsContinuationByte(s[i])) {
      if (seen == columns) return s.substr(0, i);
      ++seen;
    }
  }
  return s;
}

// Every text shown comes from the server and much of it from clients (application_name, query): control
// characters are replaced so nothing can move the cursor or change colours of the operator's terminal, and
// whitespace runs (newlines included) collapse to one space so every session stays on one line.
std::string SingleLine(std::string_view s) {
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

struct Segment {
  std::string text;
  const char* color = nullptr;
};

// A line is a list of segments; it is shortened from the end to fit the width, and colour codes are added
// after measuring so they never count as columns.
class Line {
 public:
  Line& Add(std::string text, const char* color = nullptr) {
    segments_.push_back({std::move(text), color});
    return *this;
  }
  // Adds a field preceded by the field separator (unless it is the first field after the tree prefix).
  Line& Field(std::string text, const char* color = nullptr) {
    if (text.empty()) return *this;
    if (has_field_) segments_.push_back({kSeparator, nullptr});
    has_field_ = true;
    return Add(std::move(text), color);
  }

  std::string Render(int width, bool color) const {
    int total = 0;
    for (const Segment& s : segments_) total += DisplayWidth(s.text);
    const bool cut = total > width;
    const int ellipsis = DisplayWidth(kEllipsis);
    int budget = cut ? std::max(0, width - ellipsis) : total;
    std::string out;
    for (const Segment& s : segments_) {
      if (budget <= 0) break;
      std::string_view text = PrefixColumns(s.text, budget);
      budget -= DisplayWidth(text);
      if (text.empty()) continue;
      const bool colored = color && s.color != nullptr;
      if (colored) out += s.color;
      out.append(text);
      if (colored) out += kReset;
    }
    if (cut) out.append(PrefixColumns(kEllipsis, std::min(width, ellipsis)));
    // A cut can leave a separator's trailing space before the ellipsis; harmless, and keeps the width exact.
    out.push_back('\n');
    return out;
  }

 private:
  std::vector<Segment> segments_;
  bool has_field_ = false;
};

int64_t WholeSeconds(double seconds) { return seconds <= 0 ? 0 : static_cast<int64_t>(std::floor(seconds)); }

int64_t SecondsSince(const std::optional<TimestampUs>& since, TimestampUs now) {
  if (!since) return -1;
  const int64_t delta = now - *since;
  return delta <= 0 ? 0 : delta / 1000000;
}

std::string Seconds(int64_t s) { return std::to_string(s) + "s"; }

std::string ServerVersion(int num) {
  if (num <= 0) return "unknown";
  if (num >= 100000) return std::to_string(num / 10000) + "." + std::to_string(num % 10000);
  return std::to_string(num / 10000) + "." + std::to_string((num / 100) % 100) + "." +
         std::to_string(num % 100);
}

std::string Plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string NodeName(const NodeRef& node) {
  if (!node.is_prepared()) return std::to_string(node.pid);
  return "prepared transaction '" + SingleLine(node.gid) + "'";
}

// Indexes over a snapshot and its report, and the text of each line.
class TreeRenderer {
 public:
  TreeRenderer(const Snapshot& snapshot, const Report& report, const std::vector<Explanation>& explanations,
               const TreeRenderOptions& options)
      : snapshot_(snapshot),
        report_(report),
        explanations_(explanations),
        width_(std::max(options.width, kMinWidth)),
        color_(options.color),
        explain_(options.explain) {
    for (const Session& s : snapshot_.sessions) sessions_.emplace(s.pid, &s);
    for (const PreparedXact& p : snapshot_.prepared) prepared_.emplace(p.gid, &p);
    for (const Waiter& w : report_.waiters) waiters_.emplace(w.node, &w);
    for (const Edge& e : report_.edges) {
      out_edges_[e.waiter].push_back(&e);
      in_edges_[e.blocker].push_back(&e);
    }
    // Longest-waiting first under each blocker: the head of a queue is what the operator reads first.
    for (auto& [blocker, edges] : in_edges_) {
      std::stable_sort(edges.begin(), edges.end(), [](const Edge* a, const Edge* b) {
        if (a->waiter_since.has_value() != b->waiter_since.has_value()) return a->waiter_since.has_value();
        if (a->waiter_since && *a->waiter_since != *b->waiter_since)
          return *a->waiter_since < *b->waiter_since;
        return a->waiter < b->waiter;
      });
    }
  }

  std::string Render() {
    Emit(Line().Field(Header(), kBold));
    if (report_.edges.empty() && report_.waiters.empty()) {
      Emit(Line().Field("No lock waits", kGreen));
      Emit(Line().Field(SessionsByStateText()));
      ServerWideFindings();
      return out_;
    }
    // Roots first, in the report's order (most blocked sessions first); each waiter is placed under the
    // first blocker through which it is reached and referenced elsewhere.
    for (const Root& root : report_.roots) {
      placed_.insert(root.node);
      // Most important first: a narrow terminal cuts from the right.
      Line line;
      IdFields(line, root.node);
      line.Field(RootText(root), kRed);
      line.Field(HeldText(root.node));
      WhoFields(line, root.node);
      Query(line, root.node);
      Emit(line);
      if (explain_) {
        const std::vector<const Explanation*> found = ExplanationsFor(explanations_, root.node);
        // The first finding is the most actionable one (a DDL amplifying the pile-up comes before the
        // holder's own nature); the JSON document carries them all.
        if (!found.empty()) WhyFix(*found.front(), "  ");
      }
      Children(root.node, "");
    }
    for (const Cycle& cycle : report_.cycles) RenderCycle(cycle);
    RenderLeftovers();
    ServerWideFindings();
    Emit(Line().Field(SummaryText()));
    if (!report_.unknown_pids.empty()) {
      std::string pids;
      for (int32_t pid : report_.unknown_pids) pids += (pids.empty() ? "" : ", ") + std::to_string(pid);
      Emit(Line().Field(
          "note: pids holding or waiting for locks but not in pg_stat_activity (ended during the "
          "read): " +
          pids));
    }
    return out_;
  }

 private:
  void Emit(const Line& line) { out_ += line.Render(width_, color_); }

  void WhyFix(const Explanation& f, const std::string& indent) {
    Emit(Line()
             .Add(indent + "why: ", kBold)
             .Add(std::string(ExplanationKindName(f.kind)) + ": " + SingleLine(f.situation)));
    Emit(Line().Add(indent + "fix: ", kBold).Add(SingleLine(f.remedy), kGreen));
  }

  // Findings about the whole server that no root or cycle carries (extension waits, lock-manager contention).
  void ServerWideFindings() {
    if (!explain_) return;
    for (const Explanation& f : explanations_) {
      if (f.root || f.kind == ExplanationKind::kDeadlockForming) continue;
      WhyFix(f, "");
    }
  }

  std::string Header() const {
    int sessions = 0;
    for (const auto& [state, count] : SessionsByState(snapshot_)) sessions += count;
    return "PostgreSQL " + ServerVersion(snapshot_.server_version_num) + ", captured_at " +
           FormatTimestampUtc(snapshot_.captured_at_us) + ", " + Plural(sessions, "session", "sessions") +
           ", " + std::to_string(report_.waiters.size()) + " waiting";
  }

  std::string SessionsByStateText() const {
    std::string text = "sessions by state:";
    const auto by_state = SessionsByState(snapshot_);
    if (by_state.empty()) return text + " no client sessions";
    bool first = true;
    for (const auto& [state, count] : by_state) {
      text += (first ? " " : ", ") + std::to_string(count) + " " + SingleLine(state);
      first = false;
    }
    return text;
  }

  std::string SummaryText() const {
    return Plural(report_.blocked_sessions, "session", "sessions") + " blocked, max depth " +
           std::to_string(report_.max_depth) + ", longest wait " +
           Seconds(WholeSeconds(report_.max_wait_seconds));
  }

  const Session* FindSession(const NodeRef& node) const {
    if (node.is_prepared()) return nullptr;
    auto it = sessions_.find(node.pid);
    return it == sessions_.end() ? nullptr : it->second;
  }

  // pid (or gid), what it is doing and for how long.
  void IdFields(Line& line, const NodeRef& node) const {
    const TimestampUs now = snapshot_.captured_at_us;
    line.Field(NodeName(node), kBold);
    if (node.is_prepared()) {
      auto it = prepared_.find(node.gid);
      if (it == prepared_.end()) {
        line.Field("(not in pg_prepared_xacts)");
        return;
      }
      const int64_t age = SecondsSince(it->second->prepared, now);
      line.Field(age >= 0 ? "prepared " + Seconds(age) + " ago" : "prepared at unknown time");
      return;
    }
    auto waiter = waiters_.find(node);
    const Session* session = FindSession(node);
    if (waiter != waiters_.end()) {
      line.Field("waiting " + Seconds(WholeSeconds(waiter->second->wait_seconds)), kYellow);
    } else if (session == nullptr) {
      line.Field("(not in pg_stat_activity)");
    } else {
      line.Field(StateText(*session));
    }
  }

  // Who it is: user, application and client (owner and database for a prepared transaction).
  void WhoFields(Line& line, const NodeRef& node) const {
    if (node.is_prepared()) {
      auto it = prepared_.find(node.gid);
      if (it == prepared_.end()) return;
      line.Field("owner=" + SingleLine(it->second->owner) + " database=" + SingleLine(it->second->database));
      return;
    }
    const Session* session = FindSession(node);
    if (session == nullptr) return;
    std::string who = "user=" + SingleLine(session->usename);
    if (!session->application_name.empty()) who += " app=" + SingleLine(session->application_name);
    who +=
        " client=" + (session->client_addr.empty() ? std::string("local") : SingleLine(session->client_addr));
    if (session->backend_type != "client backend" && !session->backend_type.empty()) {
      who += " (" + SingleLine(session->backend_type) + ")";
    }
    line.Field(who);
  }

  std::string StateText(const Session& s) const {
    const TimestampUs now = snapshot_.captured_at_us;
    if (s.state == "active") {
      const int64_t running = SecondsSince(s.query_start, now);
      return running >= 0 ? "running " + Seconds(running) : "running";
    }
    std::string state = s.state.empty() ? (s.backend_type.empty() ? "no state" : SingleLine(s.backend_type))
                                        : SingleLine(s.state);
    const int64_t since = SecondsSince(s.state_change, now);
    return since >= 0 ? state + " " + Seconds(since) : state;
  }

  static std::string RootText(const Root& root) {
    return std::string("ROOT ") + RootClassName(root.classification) + ": blocks " +
           Plural(root.blocked_sessions, "session", "sessions") + " (" + std::to_string(root.direct_blocked) +
           " direct), depth " + std::to_string(root.depth) + ", longest wait " +
           Seconds(WholeSeconds(root.max_wait_seconds));
  }

  // The locks a blocker holds that its direct waiters conflict with, one entry per target.
  std::string HeldText(const NodeRef& node) const {
    auto it = in_edges_.find(node);
    if (it == in_edges_.end()) return "";
    std::vector<std::string> targets;
    std::set<std::string> seen;
    for (const Edge* e : it->second) {
      if (e->blocker_held == 0) continue;
      std::string text = MaskNames(e->blocker_held) + " on " + SingleLine(e->target.text);
      if (seen.insert(text).second) targets.push_back(std::move(text));
    }
    if (targets.empty()) return "";
    std::string out = "holds " + targets.front();
    if (targets.size() > 1) out += " (+" + std::to_string(targets.size() - 1) + " more)";
    return out;
  }

  // The waiter side of one edge: the lock wanted, and how the blocker is in the way.
  void EdgeFields(Line& line, const Edge& edge) const {
    line.Field("wants " + std::string(LockModeName(edge.waiter_mode)) + " on " +
               SingleLine(edge.target.text));
    const std::string blocker = NodeName(edge.blocker);
    if (edge.kind == EdgeKind::kHard) {
      std::string text = "hard: " + blocker + " holds " + MaskNames(edge.blocker_held);
      line.Field(text, kRed);
    } else {
      std::string text = "soft: queued behind " + blocker;
      if (edge.blocker_wanted != LockMode::kNone) {
        text += " (wants " + std::string(LockModeName(edge.blocker_wanted)) + ")";
      }
      if (!edge.certain) text += " (order uncertain)";
      line.Field(text, kYellow);
    }
    const auto out = out_edges_.find(edge.waiter);
    if (out == out_edges_.end()) return;
    std::string others;
    for (const Edge* other : out->second) {
      if (other->blocker == edge.blocker) continue;
      others += (others.empty() ? "" : ", ") + NodeName(other->blocker) +
                (other->kind == EdgeKind::kHard ? " (hard)" : " (soft)");
    }
    if (!others.empty()) line.Field("also blocked by " + others);
  }

  void Query(Line& line, const NodeRef& node) const {
    const Session* s = FindSession(node);
    if (s == nullptr) return;
    line.Field(SingleLine(s->query), kDim);
  }

  // A waiter line under `prefix` reached through `edge`.
  void WaiterLine(const Edge& edge, const std::string& prefix, bool last) {
    Line line;
    line.Add(prefix + (last ? "`- " : "+- "));
    IdFields(line, edge.waiter);
    EdgeFields(line, edge);
    WhoFields(line, edge.waiter);
    Query(line, edge.waiter);
    Emit(line);
  }

  // Direct waiters of `blocker`, each with its own subtree unless it was already placed (then a reference).
  void Children(const NodeRef& blocker, const std::string& prefix, const std::set<NodeRef>* skip = nullptr) {
    auto it = in_edges_.find(blocker);
    if (it == in_edges_.end()) return;
    std::vector<const Edge*> edges;
    for (const Edge* e : it->second) {
      if (skip == nullptr || skip->count(e->waiter) == 0) edges.push_back(e);
    }
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = *edges[i];
      const bool last = i + 1 == edges.size();
      if (placed_.count(e.waiter) != 0) {
        Line line;
        line.Add(prefix + (last ? "`- " : "+- "));
        line.Field(NodeName(e.waiter), kBold);
        line.Field(std::string("also waits for this ") + (e.kind == EdgeKind::kHard ? "(hard)" : "(soft)") +
                   ", shown above");
        Emit(line);
        continue;
      }
      placed_.insert(e.waiter);
      WaiterLine(e, prefix, last);
      Children(e.waiter, prefix + (last ? "   " : "|  "), skip);
    }
  }

  const Edge* FindEdge(const NodeRef& waiter, const NodeRef& blocker) const {
    auto it = out_edges_.find(waiter);
    if (it == out_edges_.end()) return nullptr;
    for (const Edge* e : it->second) {
      if (e->blocker == blocker) return e;
    }
    return nullptr;
  }

  // One simple cycle through the smallest member, following edges inside the component. Components are
  // small (a handful of sessions), and the search is bounded by the component size.
  std::vector<int32_t> CyclePath(const Cycle& cycle) const {
    const std::set<int32_t> members(cycle.pids.begin(), cycle.pids.end());
    if (members.empty()) return {};
    const int32_t start = *members.begin();
    std::vector<int32_t> path{start};
    std::set<int32_t> on_path{start};
    std::vector<int32_t> best;
    FindCycle(start, members, path, on_path, best);
    return best;
  }

  void FindCycle(int32_t start, const std::set<int32_t>& members, std::vector<int32_t>& path,
                 std::set<int32_t>& on_path, std::vector<int32_t>& best) const {
    if (best.size() == members.size() + 1) return;  // visits every member: cannot do better
    auto it = out_edges_.find(NodeRef{path.back(), ""});
    if (it == out_edges_.end()) return;
    for (const Edge* e : it->second) {
      const int32_t next = e->blocker.pid;
      if (e->blocker.is_prepared() || members.count(next) == 0) continue;
      if (next == start) {
        if (path.size() + 1 > best.size()) {
          best = path;
          best.push_back(start);
        }
        continue;
      }
      if (on_path.count(next) != 0) continue;
      path.push_back(next);
      on_path.insert(next);
      FindCycle(start, members, path, on_path, best);
      on_path.erase(next);
      path.pop_back();
    }
  }

  void RenderCycle(const Cycle& cycle) {
    std::vector<int32_t> path = CyclePath(cycle);
    if (path.empty()) {  // edges inconsistent with the cycle list; show the members at least
      path.assign(cycle.pids.begin(), cycle.pids.end());
    }
    std::string chain;
    for (int32_t pid : path) chain += (chain.empty() ? "" : " -> ") + std::to_string(pid);
    std::set<NodeRef> members;
    for (int32_t pid : cycle.pids) members.insert(NodeRef{pid, ""});
    std::string extra;
    for (int32_t pid : cycle.pids) {
      if (std::find(path.begin(), path.end(), pid) == path.end()) {
        extra += (extra.empty() ? "" : ", ") + std::to_string(pid);
      }
    }
    Line header;
    if (cycle.has_hard_edge) {
      header.Field("deadlock cycle: " + chain, kMagenta);
      header.Field("hard: the deadlock detector will cancel one of them after deadlock_timeout");
    } else {
      header.Field("possible cycle (soft edges only, may be an artifact of queue order): " + chain, kYellow);
    }
    if (!extra.empty()) header.Field("also in the cycle: " + extra);
    Emit(header);
    if (explain_) {
      for (const Explanation& f : explanations_) {
        if (f.kind == ExplanationKind::kDeadlockForming && f.pids == cycle.pids) WhyFix(f, "  ");
      }
    }
    // Each member once, with the edge to the next member on the path, then waiters hanging off it.
    std::vector<NodeRef> order;
    for (size_t i = 0; i + 1 < path.size() || (i < path.size() && path.size() == 1); ++i) {
      order.push_back(NodeRef{path[i], ""});
    }
    for (int32_t pid : cycle.pids) {
      if (std::find(path.begin(), path.end(), pid) == path.end()) order.push_back(NodeRef{pid, ""});
    }
    for (size_t i = 0; i < order.size(); ++i) {
      const NodeRef& node = order[i];
      const bool last = i + 1 == order.size();
      placed_.insert(node);
      const NodeRef next = i + 1 < path.size() ? NodeRef{path[i + 1], ""} : NodeRef{};
      const Edge* edge = FindEdge(node, next);
      if (edge == nullptr) {
        auto out = out_edges_.find(node);
        if (out != out_edges_.end() && !out->second.empty()) edge = out->second.front();
      }
      if (edge != nullptr) {
        WaiterLine(*edge, "", last);
      } else {
        Line line;
        line.Add(last ? "`- " : "+- ");
        IdFields(line, node);
        WhoFields(line, node);
        Query(line, node);
        Emit(line);
      }
      Children(node, last ? "   " : "|  ", &members);
    }
  }

  // Waiters not reached from a root or a cycle: behind a node that is itself unplaced, or with no visible
  // blocker at all (the lock was released between the reads, or its holder is invisible to this role).
  void RenderLeftovers() {
    bool header = false;
    for (const auto& [waiter, edges] : out_edges_) {
      if (placed_.count(waiter) != 0 || edges.empty()) continue;
      if (!header) {
        Emit(Line().Field("other waits:"));
        header = true;
      }
      placed_.insert(waiter);
      WaiterLine(*edges.front(), "", false);
      Children(waiter, "|  ");
    }
    header = false;
    for (const Waiter& w : report_.waiters) {
      if (placed_.count(w.node) != 0) continue;
      if (!header) {
        Emit(Line().Field("waiting with no visible blocker (released during the read, or not visible):"));
        header = true;
      }
      placed_.insert(w.node);
      Line line;
      line.Add("+- ");
      IdFields(line, w.node);
      line.Field("wants " + std::string(LockModeName(w.mode)) + " on " + SingleLine(w.target.text));
      WhoFields(line, w.node);
      Query(line, w.node);
      Emit(line);
    }
  }

  const Snapshot& snapshot_;
  const Report& report_;
  const std::vector<Explanation>& explanations_;
  const int width_;
  const bool color_;
  const bool explain_;
  std::map<int32_t, const Session*> sessions_;
  std::map<std::string, const PreparedXact*> prepared_;
  std::map<NodeRef, const Waiter*> waiters_;
  std::map<NodeRef, std::vector<const Edge*>> out_edges_;
  std::map<NodeRef, std::vector<const Edge*>> in_edges_;
  std::set<NodeRef> placed_;
  std::string out_;
};

// Howard Hinnant's days-to-civil algorithm (public domain description), for proleptic Gregorian dates.
void CivilFromDays(int64_t days, int64_t* year, int* month, int* day) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *year = yoe + era * 400 + (*month <= 2 ? 1 : 0);
}

}  // namespace

std::string FormatTimestampUtc(TimestampUs us) {
  // Floor division so instants before 1970 keep a non-negative sub-second part.
  int64_t seconds = us / 1000000;
  int64_t micros = us % 1000000;
  if (micros < 0) {
    micros += 1000000;
    seconds -= 1;
  }
  int64_t days = seconds / 86400;
  int64_t rest = seconds % 86400;
  if (rest < 0) {
    rest += 86400;
    days -= 1;
  }
  int64_t year = 0;
  int month = 0;
  int day = 0;
  CivilFromDays(days, &year, &month, &day);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04lld-%02d-%02dT%02d:%02d:%02d.%06lldZ", static_cast<long long>(year),
                month, day, static_cast<int>(rest / 3600), static_cast<int>((rest / 60) % 60),
                static_cast<int>(rest % 60), static_cast<long long>(micros));
  return buf;
}

std::map<std::string, int> SessionsByState(const Snapshot& snapshot) {
  std::map<std::string, int> counts;
  for (const Session& s : snapshot.sessions) {
    if (s.pid == snapshot.own_pid || s.state.empty()) continue;
    ++counts[s.state];
  }
  return counts;
}

std::string RenderTree(const Snapshot& snapshot, const Report& report, const TreeRenderOptions& options) {
  const std::vector<Explanation> explanations =
      options.explain ? Explain(snapshot, report) : std::vector<Explanation>{};
  return TreeRenderer(snapshot, report, explanations, options).Render();
}

std::string RenderTree(const Snapshot& snapshot, const Report& report,
                       const std::vector<Explanation>& explanations, const TreeRenderOptions& options) {
  return TreeRenderer(snapshot, report, explanations, options).Render();
}

}  // namespace lockwatch::core
