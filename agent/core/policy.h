#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/action.h"
#include "agent/core/analysis.h"
#include "agent/core/lock_mode.h"
#include "agent/core/snapshot.h"

namespace lockwatch::core {

// The remediation policy: rules that pick sessions by their place in the wait-for graph and by
// conditions, and name what to do to them. Rules are loaded from YAML by agent/policy/rules_file.h and
// documented in agent/docs/rules.md; this file is the pure model and the evaluator.

// ---------------------------------------------------------------------------------------------------
// Address ranges

// An IPv4 or IPv6 address range ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7" = /32, "::1" = /128).
// IPv4 ranges also match IPv4-mapped IPv6 addresses ("::ffff:10.1.2.3").
struct Cidr {
  bool v6 = false;
  std::array<uint8_t, 16> address{};  // network address, host bits cleared; IPv4 uses the first 4 bytes
  int prefix_length = 0;              // 0..32 (IPv4) or 0..128 (IPv6)
};

// Parses a range. Host bits set below the prefix ("10.1.2.3/8") are accepted and cleared. nullopt on
// anything else.
std::optional<Cidr> ParseCidr(std::string_view text);

// Parses one address as pg_stat_activity.client_addr prints it (host(client_addr): no "/n"; a trailing
// "/n" is ignored). nullopt for "" (Unix socket) and for anything that is not an address.
std::optional<Cidr> ParseAddress(std::string_view text);

// True when `address` (pg_stat_activity.client_addr text) is inside `range`.
bool CidrContains(const Cidr& range, std::string_view address);

// A client condition: an address range, or `local` (Unix-socket connections, client_addr "").
struct ClientMatcher {
  bool local = false;  // matches client_addr ""; `range` unused
  Cidr range;
  std::string text;  // as written, for messages
};

bool ClientMatches(const ClientMatcher& matcher, std::string_view client_addr);

// ---------------------------------------------------------------------------------------------------
// Names with wildcards

// A name pattern: exact text, or with `*` matching any run of characters ("billing-*", "*-batch").
// Comparison is case-sensitive, as PostgreSQL role, database and application names are.
struct NamePattern {
  std::string text;
  bool Matches(std::string_view name) const;
  bool has_wildcard() const { return text.find('*') != std::string::npos; }
};

bool AnyMatches(const std::vector<NamePattern>& patterns, std::string_view name);

// ---------------------------------------------------------------------------------------------------
// Rules

// A session's place in the wait-for graph.
enum class PolicyRole : uint8_t {
  kRoot,       // a root blocker (Report::roots): blocks others, waits for nobody
  kAmplifier,  // waits for a lock itself AND others wait on it (e.g. ALTER TABLE queued behind a long
               // transaction, with readers queued behind the ALTER)
  kBlocker,    // any session some edge points at (roots, amplifiers and the middle of chains)
  kAny,        // any session that matches the conditions, blocking or not (sessions that only wait are
               // still never victims)
};

// "root", "amplifier", "blocker", "any".
const char* PolicyRoleName(PolicyRole role);
std::optional<PolicyRole> ParsePolicyRole(std::string_view name);

// A precompiled regular expression over the normalised query text (ECMAScript, case-insensitive,
// searched anywhere in the text: anchor with ^ / $ when needed).
struct QueryPattern {
  std::string text;  // as written
  std::regex regex;
};

// What a session must look like for a rule to match it. Every set condition must hold; list conditions
// hold when any element matches. Durations are seconds.
struct RuleConditions {
  PolicyRole role = PolicyRole::kBlocker;

  // pg_stat_activity.state: "active", "idle", "idle in transaction", "idle in transaction (aborted)",
  // "fastpath function call", "disabled".
  std::vector<std::string> states;

  // State held for at least this long (now - state_change), and the state is the one named:
  std::optional<double> min_idle_in_transaction;  // state "idle in transaction" or "(aborted)"
  std::optional<double> min_running;              // state "active", measured from query_start
  std::optional<double> min_waiting;              // waiting for a heavyweight lock (Report::waiters)
  std::optional<double> min_transaction_age;      // now - xact_start (prepared: now - prepared)

  // Graph facts (computed for every node, not only roots).
  std::optional<int> min_blocked_direct;  // sessions waiting directly on it
  std::optional<int> min_blocked_total;   // sessions waiting on it directly or transitively
  std::optional<int> min_chain_depth;     // longest chain of waits below it (1 = only direct waiters)

  // The locks by which the session holds others up: an edge whose blocker is the session must match all
  // set lock conditions together. Its modes are the modes the session holds on the target plus the mode
  // it is itself queued for there (a queued ALTER TABLE "has" AccessExclusiveLock for this purpose).
  std::vector<std::string> lock_types;  // pg_locks.locktype: "relation", "transactionid", "tuple", ...
  std::vector<LockMode> lock_modes;
  std::vector<NamePattern> relations;  // "public.accounts"; a pattern without '.' matches any schema

  std::vector<NamePattern> databases;
  std::vector<NamePattern> users;
  std::vector<NamePattern> applications;
  std::vector<ClientMatcher> clients;
  std::vector<std::string> backend_types;  // exact pg_stat_activity.backend_type
  std::optional<QueryPattern> query;       // on the normalised text

  // Conditions on who is held up: some session waiting on it (directly or transitively) matches.
  std::vector<NamePattern> blocks_applications;
  std::vector<NamePattern> blocks_users;

  // Opt-ins to victims that are otherwise excluded. Autovacuum workers are allowed only when
  // `backend_types` names "autovacuum worker".
  bool include_superusers = false;  // also sessions of superusers (and of roles whose status is unknown)

  // True when the rule only ever matches idle-in-transaction sessions (a state list of idle-in-transaction
  // states only, or min_idle_in_transaction set).
  bool OnlyIdleInTransaction() const;
};

struct Rule {
  std::string name;  // unique within a policy
  std::string description;
  RuleConditions match;
  ActionKind action = ActionKind::kLog;
  double grace_seconds = 0;  // kCancelThenTerminate only
  int line = 0;              // 1-based line of the rule in its file (0 when built in code)
};

struct Policy {
  std::vector<Rule> rules;  // file order: for each session, the first rule that decides it wins
  std::string source;       // file name, for messages
};

// Sessions that are never victims, whatever the rules say. Filled from the agent configuration.
struct Protection {
  std::vector<NamePattern> users;
  std::vector<NamePattern> applications;
  std::vector<NamePattern> databases;
  std::vector<ClientMatcher> clients;
  // Application names of lockwatch's own sessions (other instances, the actuator's connection), treated
  // like the snapshot's own pid.
  std::vector<std::string> own_applications = {"lockwatch"};
};

// ---------------------------------------------------------------------------------------------------
// Evaluation

// Normalises a query text for `query` conditions (constants replaced). Injected because the normaliser
// (libpg_query) is an adapter; an empty function uses the text as is.
using QueryNormalizer = std::function<std::string(std::string_view)>;

// Machine reasons of skipped decisions (PolicyDecision::skip).
inline constexpr const char* kSkipOwnSession = "own_session";        // lockwatch's own session
inline constexpr const char* kSkipOnlyWaits = "only_waits";          // waits, blocks nobody: not the cause
inline constexpr const char* kSkipReplication = "replication";       // walsender, walreceiver, logical rep.
inline constexpr const char* kSkipAutovacuum = "autovacuum";         // and the rule does not name it
inline constexpr const char* kSkipSuperuser = "superuser";           // or unknown, and not included
inline constexpr const char* kSkipProtectedUser = "protected_user";  // from the configuration
inline constexpr const char* kSkipProtectedApplication = "protected_application";
inline constexpr const char* kSkipProtectedDatabase = "protected_database";
inline constexpr const char* kSkipProtectedClient = "protected_client";
inline constexpr const char* kSkipPreparedTransaction = "prepared_transaction";  // no backend to signal
inline constexpr const char* kSkipCancelIdleInTransaction =
    "cancel_idle_in_transaction";                                        // cancel is a no-op
inline constexpr const char* kSkipUnknownIdentity = "unknown_identity";  // no pg_stat_activity row or
                                                                         // no backend_start: unverifiable
inline constexpr const char* kSkipAlreadyDecided = "already_decided";    // an earlier rule acts on it

// One rule matched one session (or prepared transaction).
struct PolicyDecision {
  // Always filled: rule, action, victim (pid 0 for a prepared transaction), grace, role, counts, reason,
  // decided_at. `target` is left empty: the caller knows the target's name.
  PlannedAction planned;
  std::string skip;         // "" = act on it; otherwise one of the kSkip* reasons
  std::string skip_detail;  // the skip in words, e.g. "user postgres is a superuser"
  NodeRef node;             // the graph node (gid set for a prepared transaction)
  int chain_depth = 0;
  // The session as seen, for display ("" when unknown).
  std::string user;
  std::string application;
  std::string database;
  std::string client_addr;
  std::string state;
  std::string backend_type;

  bool skipped() const { return !skip.empty(); }
};

// Evaluates every rule against an analysed snapshot. `now` is the time durations are measured to
// (normally snapshot.captured_at_us); decided_at is snapshot.captured_at_us.
//
// Only sessions that match a rule's conditions produce a decision. Rules are applied in file order; the
// first rule whose decision acts on a session wins and later rules matching the same session produce an
// "already_decided" skip, so at most one acting decision exists per session. A skip because of a rule-
// dependent exclusion (superuser, autovacuum, cancel on idle in transaction) does not stop later rules.
// Result order: most impactful first (blocked_total descending), then rule order, then pid.
//
// Victim identity: pid and backend_start always; xact_start whenever known (a session whose transaction
// ended since the poll is no longer the cause); state_change when the session is idle in transaction.
std::vector<PolicyDecision> Evaluate(const Policy& policy, const Protection& protection,
                                     const Snapshot& snapshot, const Report& report, TimestampUs now,
                                     const QueryNormalizer& normalizer);

// The acting decisions only (skips dropped), in Evaluate's order.
std::vector<PlannedAction> ActingDecisions(const std::vector<PolicyDecision>& decisions);

// Seconds as a short duration text: "45s", "2m5s", "1h3m", "750ms".
std::string FormatSeconds(double seconds);

}  // namespace lockwatch::core
