#include "agent/core/analysis.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/core/wait_graph.h"

namespace lockwatch::core {
namespace {

constexpr uint32_t kUnvisited = std::numeric_limits<uint32_t>::max();

// Adjacency in compressed form: the neighbours of node v are targets[begin[v] .. begin[v+1]), and the
// matching edge indices are in edge_ids.
struct Adjacency {
  std::vector<uint32_t> begin;
  std::vector<uint32_t> targets;
  std::vector<uint32_t> edge_ids;
};

Adjacency BuildAdjacency(size_t node_count, const std::vector<internal::GraphEdge>& edges, bool reverse) {
  Adjacency adj;
  adj.begin.assign(node_count + 1, 0);
  for (const auto& e : edges) ++adj.begin[(reverse ? e.blocker : e.waiter) + 1];
  for (size_t v = 1; v <= node_count; ++v) adj.begin[v] += adj.begin[v - 1];
  adj.targets.resize(edges.size());
  adj.edge_ids.resize(edges.size());
  std::vector<uint32_t> fill(adj.begin.begin(), adj.begin.end() - 1);
  for (uint32_t i = 0; i < edges.size(); ++i) {
    const auto& e = edges[i];
    const uint32_t from = reverse ? e.blocker : e.waiter;
    const uint32_t slot = fill[from]++;
    adj.targets[slot] = reverse ? e.waiter : e.blocker;
    adj.edge_ids[slot] = i;
  }
  return adj;
}

// Iterative Tarjan (no recursion, so a long chain of waiters cannot overflow the stack). Components are
// numbered in completion order, which is a reverse topological order: if v -> u crosses components,
// comp[u] < comp[v].
std::vector<uint32_t> StronglyConnectedComponents(const Adjacency& out, size_t node_count,
                                                  uint32_t* component_count) {
  std::vector<uint32_t> index(node_count, kUnvisited);
  std::vector<uint32_t> low(node_count, 0);
  std::vector<uint32_t> comp(node_count, kUnvisited);
  std::vector<bool> on_stack(node_count, false);
  std::vector<uint32_t> stack;
  std::vector<std::pair<uint32_t, uint32_t>> call;  // (node, next adjacency slot)
  uint32_t next_index = 0;
  uint32_t next_comp = 0;
  for (uint32_t start = 0; start < node_count; ++start) {
    if (index[start] != kUnvisited) continue;
    call.emplace_back(start, out.begin[start]);
    index[start] = low[start] = next_index++;
    stack.push_back(start);
    on_stack[start] = true;
    while (!call.empty()) {
      auto& [v, slot] = call.back();
      if (slot < out.begin[v + 1]) {
        const uint32_t u = out.targets[slot++];
        if (index[u] == kUnvisited) {
          index[u] = low[u] = next_index++;
          stack.push_back(u);
          on_stack[u] = true;
          call.emplace_back(u, out.begin[u]);
        } else if (on_stack[u]) {
          low[v] = std::min(low[v], index[u]);
        }
        continue;
      }
      const uint32_t done = v;
      call.pop_back();
      if (!call.empty()) {
        const uint32_t parent = call.back().first;
        low[parent] = std::min(low[parent], low[done]);
      }
      if (low[done] == index[done]) {
        uint32_t w = 0;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[w] = false;
          comp[w] = next_comp;
        } while (w != done);
        ++next_comp;
      }
    }
  }
  *component_count = next_comp;
  return comp;
}

double Seconds(TimestampUs now, const std::optional<TimestampUs>& since) {
  if (!since) return 0;
  const TimestampUs delta = now - *since;
  return delta > 0 ? static_cast<double>(delta) / 1e6 : 0.0;
}

RootClass Classify(const internal::WaitGraph& g, uint32_t node) {
  if (g.nodes[node].is_prepared()) return RootClass::kPrepared;
  const Session* s = g.node_session[node];
  if (s == nullptr) return RootClass::kOther;
  if (s->state == "idle in transaction" || s->state == "idle in transaction (aborted)") {
    return RootClass::kIdleInTransaction;
  }
  if (s->state == "active") return RootClass::kActive;
  if (s->state == "idle" && g.node_holds_advisory[node]) return RootClass::kIdleAdvisory;
  return RootClass::kOther;
}

}  // namespace

const char* RootClassName(RootClass c) {
  switch (c) {
    case RootClass::kIdleInTransaction:
      return "idle_in_transaction";
    case RootClass::kActive:
      return "active";
    case RootClass::kIdleAdvisory:
      return "idle_advisory";
    case RootClass::kPrepared:
      return "prepared";
    case RootClass::kOther:
      return "other";
  }
  return "other";
}

Report Analyze(const Snapshot& snapshot) {
  const internal::WaitGraph g = internal::BuildWaitGraph(snapshot);
  const internal::RelationNameIndex names(snapshot);
  const size_t n = g.nodes.size();
  const TimestampUs now = snapshot.captured_at_us;
  Report report;

  // Targets are described once per lock row used, not once per edge.
  std::unordered_map<size_t, LockTarget> described;
  auto target_of = [&](size_t row) -> const LockTarget& {
    auto it = described.find(row);
    if (it == described.end()) {
      it =
          described.emplace(row, internal::DescribeTargetIndexed(snapshot.locks[row], snapshot, names)).first;
    }
    return it->second;
  };

  std::vector<double> wait_seconds(n, 0.0);
  report.waiters.reserve(g.waits.size());
  for (const internal::NodeWait& w : g.waits) {
    Waiter out;
    out.node = g.nodes[w.node];
    out.mode = snapshot.locks[w.row].mode;
    out.since = w.since;
    out.wait_seconds = Seconds(now, w.since);
    out.target = target_of(w.row);
    wait_seconds[w.node] = out.wait_seconds;
    report.max_wait_seconds = std::max(report.max_wait_seconds, out.wait_seconds);
    report.waiters.push_back(std::move(out));
  }
  std::sort(report.waiters.begin(), report.waiters.end(),
            [](const Waiter& a, const Waiter& b) { return a.node < b.node; });

  report.edges.reserve(g.edges.size());
  for (const internal::GraphEdge& e : g.edges) {
    Edge out;
    out.waiter = g.nodes[e.waiter];
    out.blocker = g.nodes[e.blocker];
    out.kind = e.kind;
    out.certain = e.certain;
    out.target = target_of(e.key_row);
    out.waiter_mode = e.waiter_mode;
    out.blocker_held = e.blocker_held;
    out.blocker_wanted = e.blocker_wanted;
    out.waiter_since = e.waiter_since;
    report.edges.push_back(std::move(out));
  }
  std::sort(report.edges.begin(), report.edges.end(), [](const Edge& a, const Edge& b) {
    return a.waiter != b.waiter ? a.waiter < b.waiter : a.blocker < b.blocker;
  });

  const Adjacency out = BuildAdjacency(n, g.edges, /*reverse=*/false);
  const Adjacency in = BuildAdjacency(n, g.edges, /*reverse=*/true);
  for (uint32_t v = 0; v < n; ++v) {
    if (out.begin[v + 1] > out.begin[v]) ++report.blocked_sessions;
  }

  uint32_t component_count = 0;
  const std::vector<uint32_t> comp = StronglyConnectedComponents(out, n, &component_count);

  // Cycles: components of more than one node.
  std::vector<std::vector<uint32_t>> members(component_count);
  for (uint32_t v = 0; v < n; ++v) members[comp[v]].push_back(v);
  for (const auto& nodes : members) {
    if (nodes.size() < 2) continue;
    Cycle cycle;
    for (uint32_t v : nodes) {
      cycle.pids.push_back(g.nodes[v].pid);
      for (uint32_t s = out.begin[v]; s < out.begin[v + 1]; ++s) {
        if (comp[out.targets[s]] == comp[v] && g.edges[out.edge_ids[s]].kind == EdgeKind::kHard) {
          cycle.has_hard_edge = true;
        }
      }
    }
    std::sort(cycle.pids.begin(), cycle.pids.end());
    report.cycles.push_back(std::move(cycle));
  }
  std::sort(report.cycles.begin(), report.cycles.end(),
            [](const Cycle& a, const Cycle& b) { return a.pids < b.pids; });

  // Roots work on the condensation (one vertex per component), so a cycle feeding a root cannot loop.
  // Per root: walk the reverse condensation to find every component waiting on it, then the longest
  // chain by Kahn's order over that sub-DAG (a component is final once all its successors inside the set
  // are). Cost per root is the size of its sub-DAG: linear when roots do not share waiters.
  std::vector<int> comp_size(component_count, 0);
  std::vector<double> comp_wait(component_count, 0.0);
  std::vector<internal::GraphEdge> comp_edges;
  for (uint32_t v = 0; v < n; ++v) {
    ++comp_size[comp[v]];
    comp_wait[comp[v]] = std::max(comp_wait[comp[v]], wait_seconds[v]);
  }
  for (const internal::GraphEdge& e : g.edges) {
    if (comp[e.waiter] == comp[e.blocker]) continue;
    internal::GraphEdge ce;
    ce.waiter = comp[e.waiter];
    ce.blocker = comp[e.blocker];
    comp_edges.push_back(ce);
  }
  const Adjacency comp_out = BuildAdjacency(component_count, comp_edges, /*reverse=*/false);
  const Adjacency comp_in = BuildAdjacency(component_count, comp_edges, /*reverse=*/true);

  std::vector<uint32_t> comp_stamp(component_count, kUnvisited);
  std::vector<uint32_t> pending(component_count, 0);
  std::vector<int> longest(component_count, 0);
  std::vector<uint32_t> visited;
  std::vector<uint32_t> work;
  for (uint32_t r = 0; r < n; ++r) {
    const bool has_in = in.begin[r + 1] > in.begin[r];
    const bool has_out = out.begin[r + 1] > out.begin[r];
    if (!has_in || (has_out && !g.nodes[r].is_prepared())) continue;

    Root root;
    root.node = g.nodes[r];
    root.direct_blocked = static_cast<int>(in.begin[r + 1] - in.begin[r]);
    root.classification = Classify(g, r);

    const uint32_t cr = comp[r];
    visited.clear();
    work.clear();
    comp_stamp[cr] = r;
    work.push_back(cr);
    while (!work.empty()) {
      const uint32_t c = work.back();
      work.pop_back();
      for (uint32_t s = comp_in.begin[c]; s < comp_in.begin[c + 1]; ++s) {
        const uint32_t w = comp_in.targets[s];
        if (comp_stamp[w] == r) continue;
        comp_stamp[w] = r;
        visited.push_back(w);
        work.push_back(w);
      }
    }
    for (uint32_t c : visited) {
      root.blocked_sessions += comp_size[c];
      root.max_wait_seconds = std::max(root.max_wait_seconds, comp_wait[c]);
      longest[c] = 0;
      pending[c] = 0;
      for (uint32_t s = comp_out.begin[c]; s < comp_out.begin[c + 1]; ++s) {
        if (comp_stamp[comp_out.targets[s]] == r) ++pending[c];
      }
    }
    longest[cr] = 0;
    work.push_back(cr);
    while (!work.empty()) {
      const uint32_t c = work.back();
      work.pop_back();
      root.depth = std::max(root.depth, longest[c]);
      for (uint32_t s = comp_in.begin[c]; s < comp_in.begin[c + 1]; ++s) {
        const uint32_t w = comp_in.targets[s];
        if (comp_stamp[w] != r) continue;
        longest[w] = std::max(longest[w], longest[c] + 1);
        if (--pending[w] == 0) work.push_back(w);
      }
    }
    report.max_depth = std::max(report.max_depth, root.depth);
    report.roots.push_back(std::move(root));
  }
  std::sort(report.roots.begin(), report.roots.end(), [](const Root& a, const Root& b) {
    if (a.blocked_sessions != b.blocked_sessions) return a.blocked_sessions > b.blocked_sessions;
    return a.node < b.node;
  });

  report.unknown_pids = g.unknown_pids;
  return report;
}

}  // namespace lockwatch::core
