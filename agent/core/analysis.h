#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/lock_mode.h"
#include "agent/core/snapshot.h"

namespace lockwatch::core {

// A node of the wait-for graph: a lock-group leader (pid > 0) or a prepared transaction (pid 0, gid set,
// as pg_blocking_pids reports it). `gid` is empty for pids; for a prepared transaction whose gid could not be
// matched (a race with pg_prepared_xacts) it is "?<virtualtransaction>".
struct NodeRef {
  int32_t pid = 0;
  std::string gid;

  bool is_prepared() const { return pid == 0; }
  friend bool operator==(const NodeRef& a, const NodeRef& b) { return a.pid == b.pid && a.gid == b.gid; }
  friend bool operator!=(const NodeRef& a, const NodeRef& b) { return !(a == b); }
  friend bool operator<(const NodeRef& a, const NodeRef& b) {
    return a.pid != b.pid ? a.pid < b.pid : a.gid < b.gid;
  }
};

enum class EdgeKind : uint8_t {
  kHard,  // the blocker holds a conflicting mode
  kSoft,  // the blocker waits ahead in the queue for a conflicting mode
};

// The lock an edge is about, in words and in parts.
struct LockTarget {
  std::string locktype;                 // pg_locks.locktype
  std::string text;                     // "relation public.accounts", "row (0,7) of public.accounts", ...
  std::optional<std::string> relation;  // relation name (or "oid 16384") when the lock has one
  std::optional<uint32_t> database;     // database oid of the target when it has one
};

// waiter -> blocker, deduplicated per (waiter, blocker) at leader level. When a pair is related by several
// locks or kinds, the hard one wins; `certain` is false only for soft edges whose queue order could not be
// known (tied or NULL waitstart, or server below 14).
struct Edge {
  NodeRef waiter;
  NodeRef blocker;
  EdgeKind kind = EdgeKind::kHard;
  bool certain = true;
  LockTarget target;
  LockMode waiter_mode = LockMode::kNone;     // the mode the waiter requests
  LockMask blocker_held = 0;                  // modes the blocker holds on the target
  LockMode blocker_wanted = LockMode::kNone;  // the mode the blocker itself waits for on the target, if any
  std::optional<TimestampUs> waiter_since;    // waitstart of the waiter's request, when known
};

enum class RootClass : uint8_t {
  kIdleInTransaction,  // "idle in transaction" or "(aborted)": an application that did not commit
  kActive,             // running a statement
  kIdleAdvisory,       // idle session holding session-level advisory locks
  kPrepared,           // a prepared transaction (two-phase commit)
  kOther,              // anything else (unknown pid, background process, ...)
};

// "idle_in_transaction", "active", "idle_advisory", "prepared", "other": stable names used in metrics/JSON.
const char* RootClassName(RootClass c);

// A root blocker: blocks others, is blocked by nobody (or is a prepared transaction).
struct Root {
  NodeRef node;
  int blocked_sessions = 0;     // distinct nodes that transitively wait on this root
  int direct_blocked = 0;       // distinct nodes with an edge to this root
  int depth = 0;                // longest chain of edges down to a waiter (1 = only direct waiters)
  double max_wait_seconds = 0;  // longest wait (now - waitstart/state_change) among its tree
  RootClass classification = RootClass::kOther;
};

// A cycle of the wait-for graph (a strongly connected component of more than one node). `has_hard_edge` is
// false for soft-only cycles, which can be artifacts of approximate queue order and are not deadlocks.
struct Cycle {
  std::vector<int32_t> pids;  // sorted ascending
  bool has_hard_edge = false;
};

// Per-waiting-node facts, in leader terms.
struct Waiter {
  NodeRef node;
  LockMode mode = LockMode::kNone;
  std::optional<TimestampUs> since;  // waitstart (PG14+) or the session's state_change as a proxy
  double wait_seconds = 0;
  LockTarget target;
};

struct Report {
  std::vector<Edge> edges;      // sorted by (waiter, blocker)
  std::vector<Root> roots;      // the root that blocks the most first; ties by pid
  std::vector<Cycle> cycles;    // sorted by first pid
  std::vector<Waiter> waiters;  // every node waiting on a heavyweight lock, sorted by node
  int blocked_sessions = 0;     // distinct waiting nodes that have at least one edge
  int max_depth = 0;
  double max_wait_seconds = 0;
  // Sessions (pids) referenced by lock rows but absent from pg_stat_activity (snapshot race), sorted.
  std::vector<int32_t> unknown_pids;
};

// Builds the wait-for graph of a snapshot with pg_blocking_pids() semantics (see
// ../shared/reference/postgres-locks.md, section 10) and analyses it. Pure; O(rows + edges).
Report Analyze(const Snapshot& snapshot);

// Describes a lock target in words using the snapshot's relation names, e.g. "row (0,7) of public.t".
LockTarget DescribeTarget(const LockRow& row, const Snapshot& snapshot);

}  // namespace lockwatch::core
