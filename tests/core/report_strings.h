#pragma once

// Compact text forms of report parts, so that fixture expectations read like the scenario tables of
// postgres-locks.md: "102->101 hard", "104->103 soft?" (? = uncertain order), "0:gx1" for a prepared node.

#include <string>
#include <vector>

#include "agent/core/analysis.h"

namespace lockwatch::core {

inline std::string NodeString(const NodeRef& n) {
  return n.is_prepared() ? "0:" + n.gid : std::to_string(n.pid);
}

inline std::vector<std::string> EdgeStrings(const Report& r) {
  std::vector<std::string> out;
  for (const Edge& e : r.edges) {
    out.push_back(NodeString(e.waiter) + "->" + NodeString(e.blocker) +
                  (e.kind == EdgeKind::kHard ? " hard" : " soft") + (e.certain ? "" : "?"));
  }
  return out;
}

// "<node> <class> blocked=<n> direct=<n> depth=<n>"
inline std::vector<std::string> RootStrings(const Report& r) {
  std::vector<std::string> out;
  for (const Root& root : r.roots) {
    out.push_back(NodeString(root.node) + " " + RootClassName(root.classification) +
                  " blocked=" + std::to_string(root.blocked_sessions) +
                  " direct=" + std::to_string(root.direct_blocked) + " depth=" + std::to_string(root.depth));
  }
  return out;
}

// "101,102 hard" / "101,102 soft"
inline std::vector<std::string> CycleStrings(const Report& r) {
  std::vector<std::string> out;
  for (const Cycle& c : r.cycles) {
    std::string s;
    for (int32_t pid : c.pids) s += (s.empty() ? "" : ",") + std::to_string(pid);
    out.push_back(s + (c.has_hard_edge ? " hard" : " soft"));
  }
  return out;
}

inline std::vector<std::string> WaiterStrings(const Report& r) {
  std::vector<std::string> out;
  for (const Waiter& w : r.waiters) out.push_back(NodeString(w.node));
  return out;
}

}  // namespace lockwatch::core
