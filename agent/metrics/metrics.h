#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/analysis.h"
#include "agent/core/arrivals.h"
#include "agent/core/snapshot.h"
#include "agent/metrics/process_metrics.h"

namespace lockwatch::metrics {

// What one poll cost and read, as measured by the collector (mirrors pg::PollStats without depending on the
// adapter).
struct PollCost {
  double client_seconds = 0;
  double server_seconds = 0;
  uint64_t bytes_received = 0;
  bool locks_read = false;
};

struct BuildInfo {
  std::string version;
  std::string revision;
};

// Cardinality bounds (see agent/docs/metrics.md). Values beyond a cap are folded into "other".
// Distinct `datname` label values per target, "other" included.
inline constexpr size_t kMaxDatnamesPerTarget = 50;
// lockwatch_wait_event_sessions series per target, the ("other", "other") fold included.
inline constexpr size_t kMaxWaitEventSeriesPerTarget = 200;
// Waits remembered per target between two polls to detect waits that ended; waits beyond the cap are not
// tracked (their end is not observed). A poll cannot have more waiters than the server's max_connections
// plus prepared transactions, so the cap only guards memory against absurd input.
inline constexpr size_t kMaxTrackedWaitsPerTarget = 100000;

// Where Render() gets the process_* figures; the default reads /proc/self. Returning nullopt omits them.
using ProcessStatsSource = std::function<std::optional<ProcessStats>()>;

// One hook's delivery counters (agent/docs/hooks.md).
struct HookCounters {
  std::string hook;
  uint64_t runs = 0;
  uint64_t failures = 0;
  uint64_t drops = 0;
};

// The agent's Prometheus state: every series lockwatch exports. Poll threads record into it; the HTTP
// server renders it at scrape time. Rendering never queries a database and only holds an internal mutex
// while copying values, so a slow scrape cannot delay a poll. Thread-safe.
//
// Staleness: a target whose last successful poll is older than `stale_after` (three poll intervals) has its
// contention series removed from the output and `lockwatch_up` 0, so figures are never served as current
// when they are not.
//
// Memory is bounded whatever the number of sessions: per target only aggregates are kept, plus the waits
// of the previous successful poll (at most kMaxTrackedWaitsPerTarget) to observe waits that ended.
class AgentMetrics {
 public:
  explicit AgentMetrics(BuildInfo build);
  // As above, with the process_* figures taken from `process_stats` (tests pass a fake).
  AgentMetrics(BuildInfo build, ProcessStatsSource process_stats);
  ~AgentMetrics();
  AgentMetrics(const AgentMetrics&) = delete;
  AgentMetrics& operator=(const AgentMetrics&) = delete;

  // Declares a target (configured name) with its poll interval; idempotent (a second call updates the
  // interval). From then on `lockwatch_up` (0 until a successful poll), the counters (every error stage at 0)
  // and the histograms are exported, so rate() sees every increment; the contention and poll-cost gauges
  // appear with the first successful poll.
  void AddTarget(const std::string& target, std::chrono::milliseconds interval);
  // Forgets a target removed by a config reload.
  void RemoveTarget(const std::string& target);

  // Record* and SetUp calls for a target that was not added (or was removed) are ignored, so a poll that
  // finishes after a reload removed its target cannot resurrect it.

  // A successful poll. `now_s` is the wall clock (seconds since epoch) of the poll's end. Marks the target
  // connected. Waits present in the previous successful poll and absent from this one have ended: their
  // last observed duration goes to lockwatch_lock_wait_duration_seconds.
  void RecordPoll(const std::string& target, const core::Snapshot& snapshot, const core::Report& report,
                  const PollCost& cost, double now_s);
  // A failed poll; `stage` is one of "connect", "query", "decode", "timeout", "permission" (anything else
  // is counted as "other"). A "connect" failure marks the target not connected.
  void RecordPollError(const std::string& target, const std::string& stage, double now_s);
  // Connection state of a target (false while reconnecting).
  void SetUp(const std::string& target, bool up);

  // Incidents (agent/docs/agent.md): `active` is whether an incident is open after this poll; `opened`
  // counts a new one into lockwatch_incidents_total.
  void RecordIncidentState(const std::string& target, bool active, bool opened);
  // The flight recorder's size after a poll.
  void SetRecorder(const std::string& target, size_t entries, size_t bytes);
  // Dump outcomes: a dump closed and renamed into place (with its compressed size); a write error (disk
  // full, permissions; the dump is abandoned); records dropped because the writer fell behind.
  void RecordDumpWritten(const std::string& target, uint64_t bytes);
  void RecordDumpError(const std::string& target);
  void RecordDumpRecordsDropped(const std::string& target, uint64_t records);

  // One audited remediation decision (agent/docs/remediation.md): `decision` "planned" counts into
  // lockwatch_remediation_actions_total{action,mode}, "failed" into ..._failures_total{action,reason},
  // "skipped" into ..._skipped_total{reason}; "executed" is not counted (its plan was).
  void RecordRemediation(const std::string& target, const std::string& decision, const std::string& action,
                         const std::string& mode, const std::string& reason);

  // New client sessions of the target (core::ArrivalTracker after each successful poll): the surge that
  // feeds a pile-up, by application and client network over the last minute (top 5 plus "other").
  void RecordArrivals(const std::string& target, const core::ArrivalStats& stats);

  // Where the hook counters come from at scrape time (lockwatch_hook_*_total{hook}); must be thread-safe.
  void SetHookStatsSource(std::function<std::vector<HookCounters>()> source);

  // The Prometheus text exposition (format 0.0.4) of everything, as of `now_s` (wall clock, seconds since
  // epoch; decides staleness). Holds the mutex only to copy the per-target aggregates.
  std::string Render(double now_s) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lockwatch::metrics
