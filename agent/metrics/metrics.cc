#include "agent/metrics/metrics.h"

#include <algorithm>
#include <array>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

// Design: the state is plain per-target aggregates owned here, and Render() builds the metric families from a
// copy of it at scrape time through a prometheus::Collectable, serialised by prometheus::TextSerializer.
// prometheus-cpp's Registry/Family objects were not used for the series themselves because staleness and the
// capped label sets make whole groups of series appear and disappear between polls: with families that means
// Add()/Remove() bookkeeping for every label combination ever seen, and a Remove() that races a scrape; with
// a scrape-time Collectable the output is a pure function of (state, now) and nothing can be left behind.

namespace lockwatch::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// Every stage RecordPollError accepts; each starts at 0 so that rate() sees the first failure.
constexpr std::array<std::string_view, 6> kStages = {"connect", "query",      "decode",
                                                     "timeout", "permission", "other"};

// pg_stat_activity.state values (PostgreSQL 10..17), plus "unknown" for NULL (background processes) and
// "other" for anything a future server might add. All are exported, 0 included, so panels never gap.
constexpr std::array<std::string_view, 8> kStates = {"active",
                                                     "idle",
                                                     "idle in transaction",
                                                     "idle in transaction (aborted)",
                                                     "fastpath function call",
                                                     "disabled",
                                                     "unknown",
                                                     "other"};

// pg_locks.locktype values; anything else is folded into "other".
constexpr std::array<std::string_view, 12> kLockTypes = {
    "relation",   "extend",    "frozenid", "page",     "tuple",    "transactionid",
    "virtualxid", "spectoken", "object",   "userlock", "advisory", "applytransaction"};

constexpr std::array<core::RootClass, 5> kRootClasses = {
    core::RootClass::kIdleInTransaction, core::RootClass::kActive, core::RootClass::kIdleAdvisory,
    core::RootClass::kPrepared, core::RootClass::kOther};

// A poll is a handful of catalog reads: from 1 ms on a quiet local server to seconds when it struggles.
constexpr std::array<double, 13> kPollDurationBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                         0.25,  0.5,    1,     2.5,  5,     10};
// Waits are seen at poll resolution (seconds), and the ones that matter last minutes.
constexpr std::array<double, 13> kLockWaitBuckets = {0.5, 1,   2.5, 5,    10,   30,  60,
                                                     120, 300, 600, 1800, 3600, 7200};

constexpr double kMicrosPerSecond = 1e6;
constexpr std::string_view kOther = "other";
constexpr std::string_view kUnknown = "unknown";

template <size_t N>
bool Contains(const std::array<std::string_view, N>& set, std::string_view value) {
  return std::find(set.begin(), set.end(), value) != set.end();
}

class Histogram {
 public:
  template <size_t N>
  explicit Histogram(const std::array<double, N>& bounds)
      : bounds_(bounds.begin(), bounds.end()), counts_(N + 1, 0) {}

  void Observe(double value) {
    size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
    ++counts_[i];
    sum_ += value;
    ++count_;
  }

  ClientMetric::Histogram ToClient() const {
    ClientMetric::Histogram out;
    out.sample_count = count_;
    out.sample_sum = sum_;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      cumulative += counts_[i];
      double bound = i < bounds_.size() ? bounds_[i] : std::numeric_limits<double>::infinity();
      out.bucket.push_back({cumulative, bound});
    }
    return out;
  }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); the last one is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// What the last successful poll said about contention. Every map is bounded by the label caps.
struct Contention {
  std::map<std::string, double> sessions_by_state;
  std::map<std::pair<std::string, std::string>, double> lock_waiting;  // (datname, locktype)
  std::map<std::string, double> blocked_by_datname;
  std::array<double, kRootClasses.size()> roots_by_class{};
  double root_max_blocked_sessions = 0;
  double chain_max_depth = 0;
  double lock_wait_max_seconds = 0;
  double root_max_idle_in_transaction_seconds = 0;
  double deadlock_cycles = 0;
  std::map<std::pair<std::string, std::string>, double> wait_events;  // (wait_event_type, wait_event)
};

// Everything Render() needs for one target: small and bounded, copied under the mutex at each scrape.
struct TargetExport {
  double interval_s = 0;
  bool connected = false;
  uint64_t polls = 0;
  std::map<std::string, uint64_t> errors_by_stage;
  uint64_t locks_read_polls = 0;
  uint64_t bytes_received_total = 0;
  Histogram poll_duration{kPollDurationBuckets};
  Histogram lock_wait_duration{kLockWaitBuckets};
  // Set by the first successful poll.
  std::optional<double> last_success_s;
  int server_version_num = 0;
  double last_server_seconds = 0;
  double last_bytes_received = 0;
  std::optional<Contention> contention;
  // Incidents and dumps (exported from AddTarget on, all zero until something happens).
  bool incident_active = false;
  uint64_t incidents_total = 0;
  double recorder_entries = 0;
  double recorder_bytes = 0;
  uint64_t dumps_written = 0;
  uint64_t dump_bytes_written = 0;
  uint64_t dump_errors = 0;
  uint64_t dump_records_dropped = 0;
  // Remediation decisions; keys are bounded (actions x modes, a fixed set of reason codes).
  std::map<std::pair<std::string, std::string>, uint64_t> remediation_actions;   // (action, mode)
  std::map<std::pair<std::string, std::string>, uint64_t> remediation_failures;  // (action, reason)
  std::map<std::string, uint64_t> remediation_skipped;                           // reason
  std::optional<core::ArrivalStats> arrivals;  // bounded: 2 windows x (top 5 + other) x 2 breakdowns

  bool Fresh(double now_s) const {
    return last_success_s.has_value() && now_s - *last_success_s <= 3 * interval_s;
  }
};

// Identity of one wait: the same backend (pid and backend_start, so a reused pid is a new backend), on the
// same lock target, since the same moment.
struct WaitKey {
  int32_t pid = 0;
  int64_t backend_start_us = 0;
  std::string target;
  int64_t since_us = 0;

  friend bool operator<(const WaitKey& a, const WaitKey& b) {
    return std::tie(a.pid, a.backend_start_us, a.target, a.since_us) <
           std::tie(b.pid, b.backend_start_us, b.target, b.since_us);
  }
};

struct TargetState {
  TargetExport exported;
  std::map<WaitKey, double> waits;  // waits of the last successful poll -> wait seconds then
};

std::string ServerVersion(int num) {
  // 150018 -> "15.18"; before 10 the scheme was major.minor.patch: 90624 -> "9.6.24".
  if (num >= 100000) return std::to_string(num / 10000) + "." + std::to_string(num % 10000);
  return std::to_string(num / 10000) + "." + std::to_string(num / 100 % 100) + "." +
         std::to_string(num % 100);
}

std::string StateLabel(const std::string& state) {
  if (state.empty()) return std::string(kUnknown);
  if (Contains(kStates, state)) return state;
  return std::string(kOther);
}

std::string LockTypeLabel(const std::string& locktype) {
  return Contains(kLockTypes, locktype) ? locktype : std::string(kOther);
}

// Keeps the `cap - 1` keys with the largest counts (ties by key) and folds the others into `other`, so at
// most `cap` distinct keys remain. Deterministic, so the same poll always yields the same series.
template <typename Key>
std::set<Key> TopKeys(const std::map<Key, double>& counts, size_t cap) {
  std::vector<std::pair<double, Key>> ranked;
  ranked.reserve(counts.size());
  for (const auto& [key, count] : counts) ranked.emplace_back(count, key);
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::set<Key> keep;
  size_t limit = counts.size() <= cap ? counts.size() : cap - 1;
  for (size_t i = 0; i < limit; ++i) keep.insert(ranked[i].second);
  return keep;
}

Contention Aggregate(const core::Snapshot& snapshot, const core::Report& report) {
  Contention c;
  std::unordered_map<int32_t, const core::Session*> by_pid;
  for (const auto& session : snapshot.sessions) by_pid.emplace(session.pid, &session);
  auto datname_of = [&by_pid](int32_t pid) {
    auto it = by_pid.find(pid);
    if (it == by_pid.end() || it->second->datname.empty()) return std::string(kUnknown);
    return it->second->datname;
  };

  for (auto state : kStates) c.sessions_by_state[std::string(state)] = 0;
  std::map<std::pair<std::string, std::string>, double> wait_events;
  for (const auto& session : snapshot.sessions) {
    // lockwatch's own backend is busy reading the views: it is not part of the workload being observed.
    if (session.pid == snapshot.own_pid) continue;
    c.sessions_by_state[StateLabel(session.state)] += 1;
    if (session.state != "active") continue;
    if (session.wait_event_type.empty()) {
      wait_events[{"CPU", "CPU"}] += 1;
    } else {
      wait_events[{session.wait_event_type,
                   session.wait_event.empty() ? std::string(kUnknown) : session.wait_event}] += 1;
    }
  }
  auto keep_events = TopKeys(wait_events, kMaxWaitEventSeriesPerTarget);
  for (const auto& [key, count] : wait_events) {
    c.wait_events[keep_events.count(key) != 0 ? key
                                              : std::make_pair(std::string(kOther), std::string(kOther))] +=
        count;
  }

  // Raw per-datname figures first, then the cap applied to both series alike.
  std::map<std::pair<std::string, std::string>, double> waiting;
  std::map<std::string, double> blocked;
  std::map<std::string, double> datname_weight;
  for (const auto& waiter : report.waiters) {
    std::string datname = datname_of(waiter.node.pid);
    waiting[{datname, LockTypeLabel(waiter.target.locktype)}] += 1;
    datname_weight[datname] += 1;
  }
  std::set<core::NodeRef> blocked_nodes;
  for (const auto& edge : report.edges) blocked_nodes.insert(edge.waiter);
  for (const auto& node : blocked_nodes) {
    std::string datname = datname_of(node.pid);
    blocked[datname] += 1;
    datname_weight[datname] += 1;
  }
  auto keep_datnames = TopKeys(datname_weight, kMaxDatnamesPerTarget);
  auto fold = [&keep_datnames](const std::string& datname) {
    return keep_datnames.count(datname) != 0 ? datname : std::string(kOther);
  };
  for (const auto& [key, count] : waiting) c.lock_waiting[{fold(key.first), key.second}] += count;
  for (const auto& [datname, count] : blocked) c.blocked_by_datname[fold(datname)] += count;

  for (const auto& root : report.roots) {
    for (size_t i = 0; i < kRootClasses.size(); ++i) {
      if (kRootClasses[i] == root.classification) c.roots_by_class[i] += 1;
    }
    c.root_max_blocked_sessions =
        std::max(c.root_max_blocked_sessions, static_cast<double>(root.blocked_sessions));
    if (root.classification != core::RootClass::kIdleInTransaction || root.node.is_prepared()) continue;
    auto it = by_pid.find(root.node.pid);
    if (it == by_pid.end() || !it->second->state_change) continue;
    double idle_s =
        static_cast<double>(snapshot.captured_at_us - *it->second->state_change) / kMicrosPerSecond;
    c.root_max_idle_in_transaction_seconds = std::max(c.root_max_idle_in_transaction_seconds, idle_s);
  }
  c.chain_max_depth = report.max_depth;
  c.lock_wait_max_seconds = report.max_wait_seconds;
  c.deadlock_cycles = static_cast<double>(std::count_if(
      report.cycles.begin(), report.cycles.end(), [](const core::Cycle& cy) { return cy.has_hard_edge; }));
  return c;
}

std::map<WaitKey, double> CurrentWaits(const core::Snapshot& snapshot, const core::Report& report) {
  std::unordered_map<int32_t, int64_t> backend_start;
  for (const auto& session : snapshot.sessions) {
    if (session.backend_start) backend_start.emplace(session.pid, *session.backend_start);
  }
  std::map<WaitKey, double> waits;
  for (const auto& waiter : report.waiters) {
    if (waits.size() >= kMaxTrackedWaitsPerTarget) break;
    auto it = backend_start.find(waiter.node.pid);
    WaitKey key{waiter.node.pid, it == backend_start.end() ? 0 : it->second, waiter.target.text,
                waiter.since.value_or(std::numeric_limits<int64_t>::min())};
    waits.emplace(std::move(key), waiter.wait_seconds);
  }
  return waits;
}

// Helpers to build families.
MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void AddGauge(MetricFamily& f, Labels labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

void AddCounter(MetricFamily& f, Labels labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  f.metric.push_back(std::move(m));
}

void AddHistogram(MetricFamily& f, Labels labels, const Histogram& h) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram = h.ToClient();
  f.metric.push_back(std::move(m));
}

// The scrape-time view: a copy of the state and the scrape's `now`. Collect() is a pure function of them.
class ScrapeCollectable : public prometheus::Collectable {
 public:
  ScrapeCollectable(const BuildInfo& build, std::map<std::string, TargetExport> targets,
                    std::optional<ProcessStats> process, double now_s)
      : build_(build), targets_(std::move(targets)), process_(process), now_s_(now_s) {}

  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    auto emit = [&out](MetricFamily f) {
      if (!f.metric.empty()) out.push_back(std::move(f));
    };

    auto build_info =
        Family("lockwatch_build_info", "lockwatch build metadata; always 1.", MetricType::Gauge);
    AddGauge(build_info, {{"version", build_.version}, {"revision", build_.revision}}, 1);
    emit(std::move(build_info));

    auto up = Family("lockwatch_up",
                     "1 when the target is connected and its last successful poll is at most three poll "
                     "intervals old (its contention figures are current), else 0.",
                     MetricType::Gauge);
    auto info = Family("lockwatch_postgres_info", "PostgreSQL server version of the target; always 1.",
                       MetricType::Gauge);
    auto polls =
        Family("lockwatch_polls_total", "Polls attempted (successful or failed).", MetricType::Counter);
    auto errors =
        Family("lockwatch_poll_errors_total", "Failed polls, by the stage that failed.", MetricType::Counter);
    auto duration = Family("lockwatch_poll_duration_seconds",
                           "Duration of successful polls as measured by lockwatch (round trips included).",
                           MetricType::Histogram);
    auto last_success = Family("lockwatch_last_poll_success_timestamp_seconds",
                               "Wall-clock time of the end of the last successful poll.", MetricType::Gauge);
    auto server_seconds = Family("lockwatch_last_poll_server_seconds",
                                 "Server-side execution time of the statements of the last successful poll.",
                                 MetricType::Gauge);
    auto last_bytes = Family("lockwatch_last_poll_received_bytes",
                             "Bytes of result rows received by the last successful poll.", MetricType::Gauge);
    auto bytes_total = Family("lockwatch_poll_received_bytes_total",
                              "Bytes of result rows received by successful polls.", MetricType::Counter);
    auto locks_read =
        Family("lockwatch_pg_locks_read_total",
               "Successful polls that read pg_locks (some backend waited on a heavyweight lock).",
               MetricType::Counter);
    auto lock_wait_duration = Family(
        "lockwatch_lock_wait_duration_seconds",
        "Heavyweight lock waits observed to end, by their last observed duration (resolution: one poll "
        "interval; waits shorter than an interval may never be seen).",
        MetricType::Histogram);
    auto sessions =
        Family("lockwatch_sessions", "Sessions in pg_stat_activity by state (lockwatch's own excluded).",
               MetricType::Gauge);
    auto waiting =
        Family("lockwatch_lock_waiting_sessions",
               "Sessions waiting on a heavyweight lock (a parallel group counts once), by database and "
               "lock type.",
               MetricType::Gauge);
    auto blocked =
        Family("lockwatch_blocked_sessions",
               "Waiting sessions blocked by at least one other session or prepared transaction, by "
               "database.",
               MetricType::Gauge);
    auto roots =
        Family("lockwatch_root_blockers",
               "Root blockers (block others, blocked by nobody), by classification.", MetricType::Gauge);
    auto root_max_blocked = Family(
        "lockwatch_root_blocker_max_blocked_sessions",
        "Largest number of sessions transitively blocked by a single root blocker.", MetricType::Gauge);
    auto depth =
        Family("lockwatch_blocking_chain_max_depth", "Longest blocking chain, in edges.", MetricType::Gauge);
    auto wait_max = Family("lockwatch_lock_wait_max_seconds", "Longest current heavyweight lock wait.",
                           MetricType::Gauge);
    auto idle_max = Family("lockwatch_root_blocker_max_idle_in_transaction_seconds",
                           "Longest time a root blocker has been idle in transaction (0 when none is).",
                           MetricType::Gauge);
    auto deadlocks =
        Family("lockwatch_deadlock_cycles",
               "Cycles of the wait-for graph with at least one hard edge (deadlocks the server has not "
               "resolved yet).",
               MetricType::Gauge);
    auto wait_events = Family("lockwatch_wait_event_sessions",
                              "Active sessions by wait event at the last poll; not waiting counts as CPU. "
                              "avg_over_time() of the sum gives average active sessions.",
                              MetricType::Gauge);

    auto incident_active = Family("lockwatch_incident_active",
                                  "1 while an incident is open on the target (thresholds crossed, not yet "
                                  "quiet for resolve_after), else 0.",
                                  MetricType::Gauge);
    auto incidents_total = Family("lockwatch_incidents_total", "Incidents opened.", MetricType::Counter);
    auto recorder_entries =
        Family("lockwatch_recorder_entries",
               "Polls held by the flight recorder (the history a dump starts with).", MetricType::Gauge);
    auto recorder_bytes = Family(
        "lockwatch_recorder_bytes",
        "Estimated memory held by the flight recorder (bounded by recorder.max_bytes).", MetricType::Gauge);
    auto dumps_written = Family("lockwatch_dumps_written_total",
                                "Incident dumps completed and renamed into place.", MetricType::Counter);
    auto dump_bytes = Family("lockwatch_dump_written_bytes_total", "Compressed bytes of completed dumps.",
                             MetricType::Counter);
    auto dump_errors = Family("lockwatch_dump_errors_total",
                              "Dump write failures (full disk, permissions): the dump is abandoned, its "
                              ".partial file keeps what was synced; the agent goes on polling.",
                              MetricType::Counter);
    auto dump_dropped = Family("lockwatch_dump_records_dropped_total",
                               "Dump records dropped because the dump writer fell behind or had failed.",
                               MetricType::Counter);

    auto rem_actions =
        Family("lockwatch_remediation_actions_total",
               "Remediation actions decided (mode dry_run: would have been sent).", MetricType::Counter);
    auto rem_failures =
        Family("lockwatch_remediation_failures_total",
               "Remediation actions that failed, by reason (permission_denied, refused, error, ...).",
               MetricType::Counter);
    auto rem_skipped = Family("lockwatch_remediation_skipped_total",
                              "Sessions a rule matched that were not acted on, by reason (protected_user, "
                              "rate_limited_global, kill_switch, stale, ...).",
                              MetricType::Counter);

    auto arrivals_total = Family("lockwatch_session_arrivals_total",
                                 "New client sessions seen (pid and backend_start not in the previous poll).",
                                 MetricType::Counter);
    auto arrival_rate = Family("lockwatch_session_arrival_rate",
                               "New client sessions per second over the window.", MetricType::Gauge);
    auto arrivals_app =
        Family("lockwatch_session_arrivals_by_application",
               "New client sessions in the last minute by application_name (the 5 largest, the "
               "rest as \"other\").",
               MetricType::Gauge);
    auto arrivals_net =
        Family("lockwatch_session_arrivals_by_network",
               "New client sessions in the last minute by client network (IPv4 /24, IPv6 /64, "
               "\"local\"; the 5 largest, the rest as \"other\").",
               MetricType::Gauge);

    for (const auto& entry : targets_) {
      const std::string& name = entry.first;
      const TargetExport& t = entry.second;
      const Labels target{{"target", name}};
      auto with = [&name](std::initializer_list<ClientMetric::Label> extra) {
        Labels labels{{"target", name}};
        labels.insert(labels.end(), extra.begin(), extra.end());
        return labels;
      };
      const bool fresh = t.Fresh(now_s_);
      AddGauge(up, target, t.connected && fresh ? 1 : 0);
      AddCounter(polls, target, static_cast<double>(t.polls));
      for (const auto& [stage, count] : t.errors_by_stage) {
        AddCounter(errors, with({{"stage", stage}}), static_cast<double>(count));
      }
      AddHistogram(duration, target, t.poll_duration);
      AddHistogram(lock_wait_duration, target, t.lock_wait_duration);
      AddCounter(locks_read, target, static_cast<double>(t.locks_read_polls));
      AddCounter(bytes_total, target, static_cast<double>(t.bytes_received_total));
      AddGauge(incident_active, target, t.incident_active ? 1 : 0);
      AddCounter(incidents_total, target, static_cast<double>(t.incidents_total));
      AddGauge(recorder_entries, target, t.recorder_entries);
      AddGauge(recorder_bytes, target, t.recorder_bytes);
      AddCounter(dumps_written, target, static_cast<double>(t.dumps_written));
      AddCounter(dump_bytes, target, static_cast<double>(t.dump_bytes_written));
      AddCounter(dump_errors, target, static_cast<double>(t.dump_errors));
      AddCounter(dump_dropped, target, static_cast<double>(t.dump_records_dropped));
      for (const auto& [key, n] : t.remediation_actions) {
        AddCounter(rem_actions, with({{"action", key.first}, {"mode", key.second}}), static_cast<double>(n));
      }
      for (const auto& [key, n] : t.remediation_failures) {
        AddCounter(rem_failures, with({{"action", key.first}, {"reason", key.second}}),
                   static_cast<double>(n));
      }
      for (const auto& [reason, n] : t.remediation_skipped) {
        AddCounter(rem_skipped, with({{"reason", reason}}), static_cast<double>(n));
      }
      if (t.arrivals) {
        AddCounter(arrivals_total, target, static_cast<double>(t.arrivals->total));
        if (fresh) {
          for (const core::ArrivalWindow& w : t.arrivals->windows) {
            const std::string window = std::to_string(w.window_us / 1000000) + "s";
            AddGauge(arrival_rate, with({{"window", window}}), w.per_second);
            if (w.window_us != 60LL * 1000000) continue;
            for (const core::ArrivalGroup& g : w.by_application.top) {
              AddGauge(arrivals_app, with({{"application", g.key}}), g.count);
            }
            AddGauge(arrivals_app, with({{"application", std::string(kOther)}}), w.by_application.other);
            for (const core::ArrivalGroup& g : w.by_network.top) {
              AddGauge(arrivals_net, with({{"network", g.key}}), g.count);
            }
            AddGauge(arrivals_net, with({{"network", std::string(kOther)}}), w.by_network.other);
          }
        }
      }
      if (!t.last_success_s) continue;
      AddGauge(info, with({{"server_version", ServerVersion(t.server_version_num)}}), 1);
      AddGauge(last_success, target, *t.last_success_s);
      AddGauge(server_seconds, target, t.last_server_seconds);
      AddGauge(last_bytes, target, t.last_bytes_received);
      if (!fresh || !t.contention) continue;
      const Contention& c = *t.contention;
      for (const auto& [state, count] : c.sessions_by_state)
        AddGauge(sessions, with({{"state", state}}), count);
      for (const auto& [key, count] : c.lock_waiting) {
        AddGauge(waiting, with({{"datname", key.first}, {"locktype", key.second}}), count);
      }
      for (const auto& [datname, count] : c.blocked_by_datname) {
        AddGauge(blocked, with({{"datname", datname}}), count);
      }
      for (size_t i = 0; i < kRootClasses.size(); ++i) {
        AddGauge(roots, with({{"classification", core::RootClassName(kRootClasses[i])}}),
                 c.roots_by_class[i]);
      }
      AddGauge(root_max_blocked, target, c.root_max_blocked_sessions);
      AddGauge(depth, target, c.chain_max_depth);
      AddGauge(wait_max, target, c.lock_wait_max_seconds);
      AddGauge(idle_max, target, c.root_max_idle_in_transaction_seconds);
      AddGauge(deadlocks, target, c.deadlock_cycles);
      for (const auto& [key, count] : c.wait_events) {
        AddGauge(wait_events, with({{"wait_event_type", key.first}, {"wait_event", key.second}}), count);
      }
    }
    for (auto* f : {&up,
                    &info,
                    &polls,
                    &errors,
                    &duration,
                    &last_success,
                    &server_seconds,
                    &last_bytes,
                    &bytes_total,
                    &locks_read,
                    &lock_wait_duration,
                    &sessions,
                    &waiting,
                    &blocked,
                    &roots,
                    &root_max_blocked,
                    &depth,
                    &wait_max,
                    &idle_max,
                    &deadlocks,
                    &wait_events,
                    &incident_active,
                    &incidents_total,
                    &recorder_entries,
                    &recorder_bytes,
                    &dumps_written,
                    &dump_bytes,
                    &dump_errors,
                    &dump_dropped,
                    &rem_actions,
                    &rem_failures,
                    &rem_skipped,
                    &arrivals_total,
                    &arrival_rate,
                    &arrivals_app,
                    &arrivals_net}) {
      emit(std::move(*f));
    }
    if (process_) AppendProcess(*process_, out);
    return out;
  }

 private:
  static void AppendProcess(const ProcessStats& p, std::vector<MetricFamily>& out) {
    auto gauge = [&out](const char* name, const char* help, double value) {
      auto f = Family(name, help, MetricType::Gauge);
      AddGauge(f, {}, value);
      out.push_back(std::move(f));
    };
    auto cpu = Family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                      MetricType::Counter);
    AddCounter(cpu, {}, p.cpu_seconds);
    out.push_back(std::move(cpu));
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.", p.resident_memory_bytes);
    gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", p.virtual_memory_bytes);
    gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
          p.start_time_seconds);
    if (p.open_fds) gauge("process_open_fds", "Number of open file descriptors.", *p.open_fds);
    if (p.max_fds) gauge("process_max_fds", "Maximum number of open file descriptors.", *p.max_fds);
  }

  BuildInfo build_;
  std::map<std::string, TargetExport> targets_;
  std::optional<ProcessStats> process_;
  double now_s_;
};

}  // namespace

struct AgentMetrics::Impl {
  BuildInfo build;
  ProcessStatsSource process_stats;
  std::mutex hooks_mu;
  std::function<std::vector<HookCounters>()> hook_stats;  // guarded by hooks_mu
  mutable std::mutex mu;
  std::map<std::string, TargetState> targets;  // guarded by mu
};

AgentMetrics::AgentMetrics(BuildInfo build) : AgentMetrics(std::move(build), ReadProcessStats) {}

AgentMetrics::AgentMetrics(BuildInfo build, ProcessStatsSource process_stats)
    : impl_(std::make_unique<Impl>()) {
  impl_->build = std::move(build);
  impl_->process_stats = std::move(process_stats);
}

AgentMetrics::~AgentMetrics() = default;

void AgentMetrics::AddTarget(const std::string& target, std::chrono::milliseconds interval) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto [it, inserted] = impl_->targets.try_emplace(target);
  TargetExport& t = it->second.exported;
  t.interval_s = std::chrono::duration<double>(interval).count();
  if (inserted) {
    for (auto stage : kStages) t.errors_by_stage[std::string(stage)] = 0;
  }
}

void AgentMetrics::RemoveTarget(const std::string& target) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->targets.erase(target);
}

void AgentMetrics::RecordPoll(const std::string& target, const core::Snapshot& snapshot,
                              const core::Report& report, const PollCost& cost, double now_s) {
  // The expensive part (walking sessions and waiters) runs before taking the mutex.
  Contention contention = Aggregate(snapshot, report);
  std::map<WaitKey, double> waits = CurrentWaits(snapshot, report);

  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->targets.find(target);
  if (it == impl_->targets.end()) return;
  TargetState& state = it->second;
  TargetExport& t = state.exported;
  t.connected = true;
  ++t.polls;
  if (cost.locks_read) ++t.locks_read_polls;
  t.bytes_received_total += cost.bytes_received;
  t.poll_duration.Observe(cost.client_seconds);
  t.last_success_s = now_s;
  t.server_version_num = snapshot.server_version_num;
  t.last_server_seconds = cost.server_seconds;
  t.last_bytes_received = static_cast<double>(cost.bytes_received);
  t.contention = std::move(contention);
  // A wait seen last time and not now has ended somewhere between the two polls; its last observed duration
  // is a lower bound of the real one, short by at most one poll interval (plus any failed polls between).
  for (const auto& [key, seconds] : state.waits) {
    if (waits.count(key) == 0) t.lock_wait_duration.Observe(seconds);
  }
  state.waits = std::move(waits);
}

void AgentMetrics::RecordPollError(const std::string& target, const std::string& stage, double /*now_s*/) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->targets.find(target);
  if (it == impl_->targets.end()) return;
  TargetExport& t = it->second.exported;
  ++t.polls;
  ++t.errors_by_stage[Contains(kStages, stage) ? stage : std::string(kOther)];
  if (stage == "connect") t.connected = false;
}

void AgentMetrics::SetUp(const std::string& target, bool up) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->targets.find(target);
  if (it != impl_->targets.end()) it->second.exported.connected = up;
}

namespace {

// Runs `fn` on a declared target's exported state under the mutex; ignored for unknown targets.
template <typename Fn>
void WithTarget(std::mutex& mu, std::map<std::string, TargetState>& targets, const std::string& target,
                Fn fn) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = targets.find(target);
  if (it != targets.end()) fn(it->second.exported);
}

}  // namespace

void AgentMetrics::RecordIncidentState(const std::string& target, bool active, bool opened) {
  WithTarget(impl_->mu, impl_->targets, target, [&](TargetExport& t) {
    t.incident_active = active;
    if (opened) ++t.incidents_total;
  });
}

void AgentMetrics::SetRecorder(const std::string& target, size_t entries, size_t bytes) {
  WithTarget(impl_->mu, impl_->targets, target, [&](TargetExport& t) {
    t.recorder_entries = static_cast<double>(entries);
    t.recorder_bytes = static_cast<double>(bytes);
  });
}

void AgentMetrics::RecordDumpWritten(const std::string& target, uint64_t bytes) {
  WithTarget(impl_->mu, impl_->targets, target, [&](TargetExport& t) {
    ++t.dumps_written;
    t.dump_bytes_written += bytes;
  });
}

void AgentMetrics::RecordDumpError(const std::string& target) {
  WithTarget(impl_->mu, impl_->targets, target, [](TargetExport& t) { ++t.dump_errors; });
}

void AgentMetrics::RecordDumpRecordsDropped(const std::string& target, uint64_t records) {
  WithTarget(impl_->mu, impl_->targets, target, [&](TargetExport& t) { t.dump_records_dropped += records; });
}

void AgentMetrics::RecordRemediation(const std::string& target, const std::string& decision,
                                     const std::string& action, const std::string& mode,
                                     const std::string& reason) {
  // Reasons are codes from a fixed set; anything else (a longer text) is folded so labels stay bounded.
  const bool code = !reason.empty() && reason.size() <= 40 &&
                    reason.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string::npos;
  const std::string label = code ? reason : std::string(kOther);
  WithTarget(impl_->mu, impl_->targets, target, [&](TargetExport& t) {
    if (decision == "planned") ++t.remediation_actions[{action, mode}];
    if (decision == "failed") ++t.remediation_failures[{action, label}];
    if (decision == "skipped") ++t.remediation_skipped[label];
  });
}

void AgentMetrics::RecordArrivals(const std::string& target, const core::ArrivalStats& stats) {
  WithTarget(impl_->mu, impl_->targets, target, [&](TargetExport& t) { t.arrivals = stats; });
}

void AgentMetrics::SetHookStatsSource(std::function<std::vector<HookCounters>()> source) {
  std::lock_guard<std::mutex> lock(impl_->hooks_mu);
  impl_->hook_stats = std::move(source);
}

std::string AgentMetrics::Render(double now_s) const {
  std::map<std::string, TargetExport> copy;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const auto& [name, state] : impl_->targets) copy.emplace(name, state.exported);
  }
  std::optional<ProcessStats> process = impl_->process_stats ? impl_->process_stats() : std::nullopt;
  ScrapeCollectable view(impl_->build, std::move(copy), process, now_s);
  std::vector<MetricFamily> families = view.Collect();
  std::function<std::vector<HookCounters>()> hook_stats;
  {
    std::lock_guard<std::mutex> lock(impl_->hooks_mu);
    hook_stats = impl_->hook_stats;
  }
  if (hook_stats) {
    auto runs = Family("lockwatch_hook_runs_total",
                       "Hook deliveries attempted (after retries: one per event).", MetricType::Counter);
    auto failures = Family("lockwatch_hook_failures_total",
                           "Hook deliveries that failed (non-zero exit, timeout, HTTP error after retries).",
                           MetricType::Counter);
    auto drops = Family("lockwatch_hook_drops_total",
                        "Hook events dropped because the hook's queue was full or the agent stopped.",
                        MetricType::Counter);
    for (const HookCounters& h : hook_stats()) {
      AddCounter(runs, {{"hook", h.hook}}, static_cast<double>(h.runs));
      AddCounter(failures, {{"hook", h.hook}}, static_cast<double>(h.failures));
      AddCounter(drops, {{"hook", h.hook}}, static_cast<double>(h.drops));
    }
    for (auto* f : {&runs, &failures, &drops}) {
      if (!f->metric.empty()) families.push_back(std::move(*f));
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace lockwatch::metrics
