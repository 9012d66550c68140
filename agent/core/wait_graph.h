#pragma once

// Internal to the core: the wait-for graph built from one snapshot, before analysis. Not a stable API;
// Analyze() in analysis.h is the public entry point.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/core/analysis.h"
#include "agent/core/lock_mode.h"
#include "agent/core/snapshot.h"

namespace lockwatch::core::internal {

// Snapshot::relation_names indexed by (database, relation). Holds pointers into the snapshot, which must
// outlive the index.
class RelationNameIndex {
 public:
  explicit RelationNameIndex(const Snapshot& snapshot);

  // The "schema.name" of a relation, or nullptr when unknown or when either oid is NULL.
  const std::string* Find(std::optional<uint32_t> database, std::optional<uint32_t> relation) const;

 private:
  std::unordered_map<uint64_t, const std::string*> names_;
};

// DescribeTarget() with a prebuilt name index (O(1) per call instead of a scan of relation_names).
LockTarget DescribeTargetIndexed(const LockRow& row, const Snapshot& snapshot,
                                 const RelationNameIndex& names);

// An edge between node indices of WaitGraph::nodes. `key_row` is the index in Snapshot::locks of a row of
// the lock the edge is about.
struct GraphEdge {
  uint32_t waiter = 0;
  uint32_t blocker = 0;
  EdgeKind kind = EdgeKind::kHard;
  bool certain = true;
  size_t key_row = 0;
  LockMode waiter_mode = LockMode::kNone;
  LockMask blocker_held = 0;
  LockMode blocker_wanted = LockMode::kNone;
  std::optional<TimestampUs> waiter_since;
};

// A node waiting on a heavyweight lock (one per node; for a lock group, the leader's own wait if it waits,
// else the member with the lowest pid).
struct NodeWait {
  uint32_t node = 0;
  size_t row = 0;                    // the granted=false row in Snapshot::locks
  std::optional<TimestampUs> since;  // waitstart, else the waiting session's state_change
};

struct WaitGraph {
  std::vector<NodeRef> nodes;                // lock-group leaders and prepared transactions
  std::vector<const Session*> node_session;  // the leader's pg_stat_activity row, or nullptr
  std::vector<bool> node_holds_advisory;     // holds a granted advisory lock (any group member)
  std::vector<GraphEdge> edges;              // deduplicated per (waiter, blocker); unordered
  std::vector<NodeWait> waits;               // unordered
  std::vector<int32_t> unknown_pids;         // sorted, distinct
};

// Builds the graph with pg_blocking_pids() semantics (postgres-locks.md, section 10). Output-sensitive:
// O(rows + edges) expected time, never quadratic in the waiters of a lock that do not conflict.
WaitGraph BuildWaitGraph(const Snapshot& snapshot);

}  // namespace lockwatch::core::internal
