#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"

namespace lockwatch::core {

// What kind of situation a finding describes. The names (ExplanationKindName) are stable identifiers used in
// JSON, hook payloads and documentation (agent/docs/explanations.md).
enum class ExplanationKind : uint8_t {
  kIdleInTransactionHolder,  // root idle in a transaction: an application that did not commit
  kDdlAmplifier,             // a DDL queued behind the root, with sessions queued behind the DDL
  kLongRunningStatement,     // root running a statement that holds the lock
  kOrphanedPreparedXact,     // root is a prepared transaction nobody finished
  kAdvisoryLockHolder,       // root idle outside a transaction, holding session-level advisory locks
  kCicWaitingForSnapshots,   // CREATE INDEX CONCURRENTLY (or similar) waits for older transactions to end
  kAutovacuumBlocking,       // root is an autovacuum worker
  kDeadlockForming,          // a cycle with a hard edge, visible before deadlock_timeout resolves it
  kRelationExtensionWaits,   // sessions wait to extend a relation (locktype extend)
  kLockManagerContention,    // sessions wait on the LWLock LockManager (lock table partitions)
  kUnclassifiedHolder,       // a root none of the above fits (background process, unknown pid, ...)
};

// "idle_in_transaction_holder", "ddl_amplifier", "long_running_statement", "orphaned_prepared_xact",
// "advisory_lock_holder", "cic_waiting_for_snapshots", "autovacuum_blocking", "deadlock_forming",
// "relation_extension_waits", "lock_manager_contention", "unclassified_holder".
const char* ExplanationKindName(ExplanationKind kind);

// One finding: what is going on, in one line, and the usual remedy, in one line (with concrete SQL where it
// helps). Texts are single-line, free of control characters, and never contain query text (queries can
// hold secrets and are shown elsewhere); they name sessions by pid.
struct Explanation {
  ExplanationKind kind = ExplanationKind::kUnclassifiedHolder;
  // The root blocker the finding belongs to; nullopt for findings about the whole server (cycles, extension
  // waits, lock-manager contention).
  std::optional<NodeRef> root;
  // Sessions the finding is about besides the root (the queued DDL, cycle members, the waiting sessions),
  // sorted ascending, deduplicated.
  std::vector<int32_t> pids;
  std::string situation;
  std::string remedy;
};

struct ExplainOptions {
  // Minimum number of sessions waiting on Lock:extend, resp. LWLock:LockManager, in one snapshot for the
  // server-wide findings. One such wait is normal; many at once is the problem.
  int min_extension_waiters = 3;
  int min_lock_manager_waiters = 5;
  // Example lock_timeout suggested for retrying a DDL.
  std::string ddl_lock_timeout = "2s";
};

// Explains every root of `report` (in report order; a root may get two findings: the DDL that amplifies
// its pile-up first, then the root's own nature) and adds the server-wide findings (deadlocks forming, in
// cycle order; relation extension waits; lock-manager contention). Pure; "now" is snapshot.captured_at_us.
// `report` must be Analyze(snapshot).
std::vector<Explanation> Explain(const Snapshot& snapshot, const Report& report,
                                 const ExplainOptions& options = {});

// The findings about `root`, in the order Explain returns them (empty when none).
std::vector<const Explanation*> ExplanationsFor(const std::vector<Explanation>& explanations,
                                                const NodeRef& root);

// "45s", "12m05s", "3h07m", "2d04h": a compact duration for explanation texts and terminal views.
std::string CompactDuration(double seconds);

}  // namespace lockwatch::core
