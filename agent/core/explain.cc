#include "agent/core/explain.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/lock_mode.h"

namespace lockwatch::core {
namespace {

// Client-provided names end up in terminals and hook payloads: no control characters, one line.
std::string Clean(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7F ? ' ' : c);
  }
  return out;
}

// A SQL string literal: quotes doubled, so a remedy can be pasted as it is.
std::string Literal(std::string_view s) {
  std::string out = "'";
  for (char c : Clean(s)) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  return out + "'";
}

std::string Pid(int32_t pid) { return "pid " + std::to_string(pid); }

std::string Plural(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

double SecondsSince(const std::optional<TimestampUs>& since, TimestampUs now) {
  if (!since || *since >= now) return since ? 0.0 : -1.0;
  return static_cast<double>(now - *since) / 1e6;
}

// The first words of a statement, upper-cased, without its text: "ALTER TABLE", "CREATE INDEX CONCURRENTLY",
// "LOCK TABLE", "VACUUM". Comments and whitespace before it are skipped. The words are SQL keywords, never
// identifiers or literals, so nothing sensitive leaks into explanations.
std::string StatementVerb(std::string_view query) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < query.size() && words.size() < 3) {
    const char c = query[i];
    if (c == '-' && i + 1 < query.size() && query[i + 1] == '-') {
      while (i < query.size() && query[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && i + 1 < query.size() && query[i + 1] == '*') {
      const size_t end = query.find("*/", i + 2);
      i = end == std::string_view::npos ? query.size() : end + 2;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) != 0) {
      std::string word;
      while (i < query.size() && std::isalpha(static_cast<unsigned char>(query[i])) != 0) {
        word.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(query[i]))));
        ++i;
      }
      words.push_back(std::move(word));
      continue;
    }
    if (!words.empty() && c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    ++i;
  }
  if (words.empty()) return "a statement";
  static const std::set<std::string> kTwoWords = {"ALTER", "CREATE", "DROP", "LOCK", "REFRESH", "COMMENT"};
  std::string verb = words[0];
  if (kTwoWords.count(words[0]) != 0 && words.size() > 1) {
    verb += " " + words[1];
    if (words[1] == "UNIQUE" && words.size() > 2) verb += " " + words[2];
  }
  return verb;
}

bool ContainsWordCi(std::string_view text, std::string_view word) {
  std::string lower;
  lower.reserve(text.size());
  for (char c : text) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return lower.find(word) != std::string::npos;
}

// Modes only DDL and explicit LOCK TABLE request on a relation: a request for one of them conflicts with the
// plain readers and writers that then queue behind it.
bool IsStrongRelationMode(LockMode mode) {
  return mode == LockMode::kShare || mode == LockMode::kShareRowExclusive || mode == LockMode::kExclusive ||
         mode == LockMode::kAccessExclusive;
}

std::string SettingValue(const Snapshot& snapshot, std::string_view name) {
  for (const Setting& s : snapshot.settings) {
    if (s.name == name) return s.value;
  }
  return "";
}

class Explainer {
 public:
  Explainer(const Snapshot& snapshot, const Report& report, const ExplainOptions& options)
      : snapshot_(snapshot), report_(report), options_(options), now_(snapshot.captured_at_us) {
    for (const Session& s : snapshot_.sessions) sessions_.emplace(s.pid, &s);
    for (const PreparedXact& p : snapshot_.prepared) prepared_.emplace(p.gid, &p);
    for (const Edge& e : report_.edges) {
      in_edges_[e.blocker].push_back(&e);
      first_out_edge_.emplace(e.waiter, &e);
    }
  }

  std::vector<Explanation> Run() {
    for (const Root& root : report_.roots) {
      if (auto f = WaiterSide(root)) out_.push_back(std::move(*f));
      out_.push_back(Nature(root));
    }
    for (const Cycle& cycle : report_.cycles) {
      if (cycle.has_hard_edge) out_.push_back(Deadlock(cycle));
    }
    if (auto f = ExtensionWaits()) out_.push_back(std::move(*f));
    if (auto f = LockManager()) out_.push_back(std::move(*f));
    return std::move(out_);
  }

 private:
  const Session* FindSession(int32_t pid) const {
    auto it = sessions_.find(pid);
    return it == sessions_.end() ? nullptr : it->second;
  }

  // "pid 101 (alice, app billing, client 10.0.0.5)".
  std::string Who(int32_t pid) const {
    const Session* s = FindSession(pid);
    if (s == nullptr) return Pid(pid);
    std::string who = Pid(pid) + " (" + (s->usename.empty() ? "unknown user" : Clean(s->usename));
    if (!s->application_name.empty()) who += ", app " + Clean(s->application_name);
    who += ", client " + (s->client_addr.empty() ? std::string("local") : Clean(s->client_addr)) + ")";
    return who;
  }

  // Distinct nodes waiting on `node` directly or transitively.
  std::set<NodeRef> Behind(const NodeRef& node) const {
    std::set<NodeRef> seen;
    std::deque<NodeRef> todo{node};
    while (!todo.empty()) {
      const NodeRef n = todo.front();
      todo.pop_front();
      auto it = in_edges_.find(n);
      if (it == in_edges_.end()) continue;
      for (const Edge* e : it->second) {
        if (e->waiter != node && seen.insert(e->waiter).second) todo.push_back(e->waiter);
      }
    }
    return seen;
  }

  const std::vector<const Edge*>& DirectEdges(const NodeRef& node) const {
    static const std::vector<const Edge*> kNone;
    auto it = in_edges_.find(node);
    return it == in_edges_.end() ? kNone : it->second;
  }

  // Findings about what waits on the root: a DDL that turns one holder into a pile-up, or a CREATE INDEX
  // CONCURRENTLY waiting for old transactions. Both are fixed on the waiter's side first.
  std::optional<Explanation> WaiterSide(const Root& root) const {
    if (auto f = Amplifier(root)) return f;
    return SnapshotWait(root);
  }

  // The DDL with the most sessions queued behind it, anywhere in the root's tree. The readers queued behind
  // it wait only because PostgreSQL serves a lock queue in order: they are compatible with the holder.
  std::optional<Explanation> Amplifier(const Root& root) const {
    const Edge* best = nullptr;
    size_t best_behind = 0;
    std::set<NodeRef> tree = Behind(root.node);
    for (const NodeRef& node : tree) {
      if (node.is_prepared()) continue;
      bool has_soft_waiter = false;
      for (const Edge* e : DirectEdges(node)) has_soft_waiter = has_soft_waiter || e->kind == EdgeKind::kSoft;
      if (!has_soft_waiter) continue;
      // The edge through which the DDL itself waits (its request is the same on every edge it has).
      auto own_it = first_out_edge_.find(node);
      const Edge* own = own_it == first_out_edge_.end() ? nullptr : own_it->second;
      if (own == nullptr || own->target.locktype != "relation" || !IsStrongRelationMode(own->waiter_mode)) {
        continue;
      }
      const size_t behind = Behind(node).size();
      if (best == nullptr || behind > best_behind) {
        best = own;
        best_behind = behind;
      }
    }
    if (best == nullptr) return std::nullopt;
    const int32_t ddl = best->waiter.pid;
    const Session* s = FindSession(ddl);
    const std::string verb = s == nullptr ? "a DDL" : StatementVerb(s->query);
    std::string relation = best->target.relation ? Clean(*best->target.relation) : Clean(best->target.text);
    Explanation f;
    f.kind = ExplanationKind::kDdlAmplifier;
    f.root = root.node;
    f.pids = {ddl};
    f.situation = verb + " by " + Who(ddl) + " waits for " + std::string(LockModeName(best->waiter_mode)) +
                  " on " + relation + " behind " + RootName(root.node) + ", and " +
                  Plural(best_behind, "session queues", "sessions queue") +
                  " behind the DDL though compatible with the holder";
    f.remedy = "cancel the DDL: SELECT pg_cancel_backend(" + std::to_string(ddl) +
               "); retry it with SET lock_timeout = '" + Clean(options_.ddl_lock_timeout) +
               "' (and retries) so it gives up instead of stalling the queue";
    return f;
  }

  // A wait on a virtualxid lock is a wait for a whole transaction to end: CREATE INDEX CONCURRENTLY, REINDEX
  // CONCURRENTLY and DETACH PARTITION CONCURRENTLY wait so for every transaction with an older snapshot,
  // whichever tables it touched.
  std::optional<Explanation> SnapshotWait(const Root& root) const {
    std::vector<int32_t> waiters;
    std::string verb;
    for (const Edge* e : DirectEdges(root.node)) {
      if (e->target.locktype != "virtualxid") continue;
      waiters.push_back(e->waiter.pid);
      if (verb.empty()) {
        const Session* s = FindSession(e->waiter.pid);
        verb = s == nullptr ? "a concurrent index build" : StatementVerb(s->query);
        if (s != nullptr && ContainsWordCi(s->query, "concurrently") &&
            verb.find("CONCURRENTLY") == std::string::npos) {
          verb += " CONCURRENTLY";
        }
      }
    }
    if (waiters.empty()) return std::nullopt;
    std::sort(waiters.begin(), waiters.end());
    Explanation f;
    f.kind = ExplanationKind::kCicWaitingForSnapshots;
    f.root = root.node;
    f.pids = waiters;
    std::string age;
    if (!root.node.is_prepared()) {
      if (const Session* s = FindSession(root.node.pid)) {
        const double open = SecondsSince(s->xact_start, now_);
        if (open >= 0) age = " (open " + CompactDuration(open) + ")";
      }
    }
    f.situation = verb + " by " + Pid(waiters.front()) + " waits for the transaction of " +
                  RootName(root.node) + age +
                  " to end: a concurrent index build waits for every transaction with an older snapshot, "
                  "whatever it touched";
    f.remedy = "end that transaction (commit it, or SELECT pg_terminate_backend(" +
               std::to_string(root.node.pid) + ")); cancelling the build leaves an INVALID index to drop";
    return f;
  }

  std::string RootName(const NodeRef& node) const {
    if (node.is_prepared()) return "prepared transaction " + Literal(node.gid);
    return Pid(node.pid);
  }

  Explanation Nature(const Root& root) const {
    Explanation f;
    f.root = root.node;
    const std::string blocks =
        "blocks " + Plural(static_cast<size_t>(root.blocked_sessions), "session", "sessions");
    if (root.node.is_prepared()) return Prepared(root, blocks);
    const int32_t pid = root.node.pid;
    const std::string terminate = "SELECT pg_terminate_backend(" + std::to_string(pid) + ")";
    const std::string cancel = "SELECT pg_cancel_backend(" + std::to_string(pid) + ")";
    const Session* s = FindSession(pid);
    if (s == nullptr) {
      f.kind = ExplanationKind::kUnclassifiedHolder;
      f.situation = Pid(pid) +
                    " holds locks others wait for but is not in pg_stat_activity (it ended, or "
                    "lockwatch's role cannot see it): " +
                    blocks;
      f.remedy = "poll again; if it persists grant pg_monitor to lockwatch's role to see the session";
      return f;
    }
    const auto& direct = DirectEdges(root.node);
    const bool all_extend = !direct.empty() && std::all_of(direct.begin(), direct.end(), [](const Edge* e) {
      return e->target.locktype == "extend";
    });
    const bool advisory = std::any_of(direct.begin(), direct.end(),
                                      [](const Edge* e) { return e->target.locktype == "advisory"; });
    const double in_state = SecondsSince(s->state_change, now_);
    const double xact = SecondsSince(s->xact_start, now_);
    if (s->backend_type == "autovacuum worker") {
      const bool wraparound = ContainsWordCi(s->query, "to prevent wraparound");
      f.kind = ExplanationKind::kAutovacuumBlocking;
      f.situation = "autovacuum " + Pid(pid) + (wraparound ? " (to prevent wraparound)" : "") + " " + blocks +
                    (wraparound ? ": an anti-wraparound vacuum is not cancelled automatically"
                                : ": PostgreSQL cancels it once a waiter reaches deadlock_timeout, unless it "
                                  "keeps being restarted");
      f.remedy = wraparound ? "let it finish (cancelling only postpones it); make the waiting DDL retry with "
                              "lock_timeout"
                            : cancel +
                                  " if it does not yield; tune autovacuum for the table so it runs "
                                  "earlier and shorter";
      return f;
    }
    if (all_extend) {
      f.kind = ExplanationKind::kRelationExtensionWaits;
      for (const Edge* e : direct) f.pids.push_back(e->waiter.pid);
      std::sort(f.pids.begin(), f.pids.end());
      f.pids.erase(std::unique(f.pids.begin(), f.pids.end()), f.pids.end());
      f.situation = Plural(f.pids.size(), "session waits", "sessions wait") + " for " + Pid(pid) +
                    " to finish extending " + Clean(direct.front()->target.relation.value_or("a relation")) +
                    ": concurrent inserts into one table";
      f.remedy =
          "batch inserts (COPY, multi-row INSERT) or spread them over partitions; PostgreSQL 16+ "
          "extends relations many pages at a time";
      return f;
    }
    switch (root.classification) {
      case RootClass::kIdleInTransaction: {
        const bool aborted = s->state == "idle in transaction (aborted)";
        f.kind = ExplanationKind::kIdleInTransactionHolder;
        f.situation = Who(pid) + " is idle in " + (aborted ? "a failed transaction" : "transaction") +
                      (in_state >= 0 ? " for " + CompactDuration(in_state) : "") +
                      (xact >= 0 ? " (transaction open " + CompactDuration(xact) + ")" : "") +
                      " and keeps its locks until it ends: an application that did not " +
                      (aborted ? "roll back" : "commit") + "; " + blocks;
        f.remedy = terminate +
                   " rolls it back; fix the code path that leaves the transaction open and set "
                   "idle_in_transaction_session_timeout";
        return f;
      }
      case RootClass::kIdleAdvisory:
        return AdvisoryHolder(root, *s, blocks, terminate, in_state);
      case RootClass::kActive: {
        if (advisory && xact < 0) return AdvisoryHolder(root, *s, blocks, terminate, in_state);
        const double running = SecondsSince(s->query_start, now_);
        f.kind = ExplanationKind::kLongRunningStatement;
        f.situation =
            StatementVerb(s->query) + " by " + Who(pid) + " has been running" +
            (running >= 0 ? " for " + CompactDuration(running) : "") +
            (xact >= 0 && xact > running + 1 ? " (transaction open " + CompactDuration(xact) + ")" : "") +
            " and holds the lock until its transaction ends; " + blocks;
        f.remedy = cancel +
                   " cancels the statement (its transaction rolls back); bound such statements "
                   "with statement_timeout";
        return f;
      }
      case RootClass::kPrepared:
      case RootClass::kOther:
        break;
    }
    if (advisory) return AdvisoryHolder(root, *s, blocks, terminate, in_state);
    f.kind = ExplanationKind::kUnclassifiedHolder;
    const std::string what = !s->state.empty()          ? Clean(s->state)
                             : !s->backend_type.empty() ? Clean(s->backend_type)
                                                        : std::string("no state");
    f.situation = Who(pid) + " (" + what + ") holds locks others wait for; " + blocks;
    f.remedy = "inspect it: SELECT * FROM pg_stat_activity WHERE pid = " + std::to_string(pid) +
               "; end it with " + terminate + " if it is safe";
    return f;
  }

  Explanation AdvisoryHolder(const Root& root, const Session& s, const std::string& blocks,
                             const std::string& terminate, double in_state) const {
    Explanation f;
    f.kind = ExplanationKind::kAdvisoryLockHolder;
    f.root = root.node;
    std::string key;
    for (const Edge* e : DirectEdges(root.node)) {
      if (e->target.locktype == "advisory") {
        key = Clean(e->target.text);
        break;
      }
    }
    const bool idle = s.state == "idle";
    f.situation = Who(root.node.pid) + (idle ? " is idle" : " is " + Clean(s.state)) +
                  (idle && in_state >= 0 ? " for " + CompactDuration(in_state) : "") +
                  " holding a session-level advisory lock" + (key.empty() ? "" : " (" + key + ")") +
                  ", kept until it is unlocked or the session ends; " + blocks;
    f.remedy = "the application must call pg_advisory_unlock for it; " + terminate + " releases it";
    return f;
  }

  Explanation Prepared(const Root& root, const std::string& blocks) const {
    Explanation f;
    f.kind = ExplanationKind::kOrphanedPreparedXact;
    f.root = root.node;
    auto it = prepared_.find(root.node.gid);
    const std::string gid = Literal(root.node.gid);
    if (it == prepared_.end()) {
      f.situation = "prepared transaction " + gid +
                    " holds locks but is no longer in pg_prepared_xacts (it "
                    "ended during the read); " +
                    blocks;
      f.remedy = "poll again";
      return f;
    }
    const PreparedXact& p = *it->second;
    const double age = SecondsSince(p.prepared, now_);
    f.situation =
        "prepared transaction " + gid + (age >= 0 ? " prepared " + CompactDuration(age) + " ago" : "") +
        " by " + Clean(p.owner) + " in database " + Clean(p.database) +
        " holds its locks with no session attached: its transaction manager never finished it; " + blocks;
    f.remedy = "after checking with the transaction manager, in database " + Clean(p.database) +
               ": ROLLBACK PREPARED " + gid + " (or COMMIT PREPARED " + gid + "); it cannot be cancelled";
    return f;
  }

  Explanation Deadlock(const Cycle& cycle) const {
    Explanation f;
    f.kind = ExplanationKind::kDeadlockForming;
    f.pids = cycle.pids;
    std::string members;
    for (size_t i = 0; i < cycle.pids.size(); ++i) {
      members +=
          (i == 0 ? "" : (i + 1 == cycle.pids.size() ? " and " : ", ")) + std::to_string(cycle.pids[i]);
    }
    double longest = 0;
    for (const Waiter& w : report_.waiters) {
      if (!w.node.is_prepared() && std::binary_search(cycle.pids.begin(), cycle.pids.end(), w.node.pid)) {
        longest = std::max(longest, w.wait_seconds);
      }
    }
    const std::string timeout = SettingValue(snapshot_, "deadlock_timeout");
    f.situation = "sessions " + members + " wait for each other (a deadlock; longest wait " +
                  CompactDuration(longest) + "): PostgreSQL cancels one of them once deadlock_timeout" +
                  (timeout.empty() ? "" : " (" + Clean(timeout) + " by default)") +
                  " passes in the session that closed the cycle";
    f.remedy = "cancel one now: SELECT pg_cancel_backend(" + std::to_string(cycle.pids.front()) +
               "); make the application take its locks in one order";
    return f;
  }

  std::optional<Explanation> ExtensionWaits() const {
    std::set<int32_t> covered;
    for (const Explanation& f : out_) {
      if (f.kind == ExplanationKind::kRelationExtensionWaits) covered.insert(f.pids.begin(), f.pids.end());
    }
    std::vector<int32_t> pids;
    for (const Session& s : snapshot_.sessions) {
      if (s.pid == snapshot_.own_pid || s.wait_event_type != "Lock" || s.wait_event != "extend") continue;
      if (covered.count(s.pid) == 0) pids.push_back(s.pid);
    }
    if (pids.empty() || static_cast<int>(pids.size() + covered.size()) < options_.min_extension_waiters) {
      return std::nullopt;
    }
    std::set<std::string> relations;
    for (const Waiter& w : report_.waiters) {
      if (w.target.locktype == "extend" && w.target.relation) relations.insert(Clean(*w.target.relation));
    }
    std::sort(pids.begin(), pids.end());
    Explanation f;
    f.kind = ExplanationKind::kRelationExtensionWaits;
    f.pids = pids;
    std::string names;
    for (const std::string& r : relations) names += (names.empty() ? "" : ", ") + r;
    f.situation = Plural(pids.size() + covered.size(), "session waits", "sessions wait") + " on Lock:extend" +
                  (names.empty() ? "" : " (" + names + ")") +
                  ": many concurrent inserts extending the same relation one page at a time";
    f.remedy =
        "batch inserts (COPY, multi-row INSERT) or spread them over partitions; PostgreSQL 16+ "
        "extends relations many pages at a time";
    return f;
  }

  std::optional<Explanation> LockManager() const {
    std::vector<int32_t> pids;
    for (const Session& s : snapshot_.sessions) {
      if (s.pid == snapshot_.own_pid || s.wait_event_type != "LWLock") continue;
      // "LockManager" since PostgreSQL 13, "lock_manager" before.
      if (s.wait_event == "LockManager" || s.wait_event == "lock_manager") pids.push_back(s.pid);
    }
    if (pids.empty() || static_cast<int>(pids.size()) < options_.min_lock_manager_waiters)
      return std::nullopt;
    std::sort(pids.begin(), pids.end());
    Explanation f;
    f.kind = ExplanationKind::kLockManagerContention;
    f.pids = pids;
    f.situation = Plural(pids.size(), "session waits", "sessions wait") +
                  " on LWLock:LockManager: the shared lock table is contended, usually because each "
                  "transaction locks more than 16 relations (partitions, indexes) and runs out of fast-path "
                  "slots";
    f.remedy =
        "lock fewer relations per transaction (partition pruning, fewer indexes), lower concurrency "
        "with a pooler; PostgreSQL 18 sizes fast-path slots from max_locks_per_transaction";
    return f;
  }

  const Snapshot& snapshot_;
  const Report& report_;
  const ExplainOptions& options_;
  const TimestampUs now_;
  std::map<int32_t, const Session*> sessions_;
  std::map<std::string, const PreparedXact*> prepared_;
  std::map<NodeRef, std::vector<const Edge*>> in_edges_;
  std::map<NodeRef, const Edge*> first_out_edge_;
  std::vector<Explanation> out_;
};

}  // namespace

const char* ExplanationKindName(ExplanationKind kind) {
  switch (kind) {
    case ExplanationKind::kIdleInTransactionHolder:
      return "idle_in_transaction_holder";
    case ExplanationKind::kDdlAmplifier:
      return "ddl_amplifier";
    case ExplanationKind::kLongRunningStatement:
      return "long_running_statement";
    case ExplanationKind::kOrphanedPreparedXact:
      return "orphaned_prepared_xact";
    case ExplanationKind::kAdvisoryLockHolder:
      return "advisory_lock_holder";
    case ExplanationKind::kCicWaitingForSnapshots:
      return "cic_waiting_for_snapshots";
    case ExplanationKind::kAutovacuumBlocking:
      return "autovacuum_blocking";
    case ExplanationKind::kDeadlockForming:
      return "deadlock_forming";
    case ExplanationKind::kRelationExtensionWaits:
      return "relation_extension_waits";
    case ExplanationKind::kLockManagerContention:
      return "lock_manager_contention";
    case ExplanationKind::kUnclassifiedHolder:
      return "unclassified_holder";
  }
  return "unclassified_holder";
}

std::vector<Explanation> Explain(const Snapshot& snapshot, const Report& report,
                                 const ExplainOptions& options) {
  return Explainer(snapshot, report, options).Run();
}

std::vector<const Explanation*> ExplanationsFor(const std::vector<Explanation>& explanations,
                                                const NodeRef& root) {
  std::vector<const Explanation*> out;
  for (const Explanation& f : explanations) {
    if (f.root && *f.root == root) out.push_back(&f);
  }
  return out;
}

std::string CompactDuration(double seconds) {
  const auto s = seconds <= 0 ? int64_t{0} : static_cast<int64_t>(std::floor(seconds));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>((s / 60) % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>((s / 3600) % 24));
  }
  return buf;
}

}  // namespace lockwatch::core
