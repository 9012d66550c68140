#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"

namespace lockwatch::core {

// When contention becomes an incident. An incident opens on the first observation that crosses any threshold
// and resolves once every observation has stayed below all of them for `resolve_after_us` (hysteresis: a
// pile-up that flaps within that time stays one incident). Defaults are the documented config defaults.
struct IncidentThresholds {
  double max_wait_seconds = 5.0;            // opens when some lock wait is LONGER than this
  int blocked_sessions = 10;                // opens when at least this many sessions are blocked
  int max_depth = 3;                        // opens when a chain is DEEPER than this
  TimestampUs resolve_after_us = 30000000;  // quiet time before an incident resolves
};

// A root blocker as it was when the incident first saw it (pid 0 and gid set for a prepared transaction).
// Session fields are empty/absent when the root had no pg_stat_activity row.
struct IncidentRoot {
  int32_t pid = 0;
  std::string gid;
  std::string usename;
  std::string application_name;
  std::string client_addr;
  std::string state;
  std::optional<TimestampUs> query_start;
  std::optional<TimestampUs> xact_start;
  RootClass classification = RootClass::kOther;
  std::string query;  // as read; writers apply their privacy mode
  TimestampUs first_seen_at = 0;
  int peak_blocked_sessions = 0;  // most sessions it blocked at once
};

struct Incident {
  std::string id;  // "<target>-<yyyymmddThhmmssZ of started_at>"
  std::string target;
  TimestampUs started_at = 0;           // first observation over a threshold
  std::optional<TimestampUs> ended_at;  // first quiet observation after the last one over (set on resolve)
  TimestampUs last_over_at = 0;         // last observation over a threshold
  std::string trigger;                  // why it opened, e.g. "lock wait 7.2 s > 5 s"
  int peak_blocked_sessions = 0;
  int peak_depth = 0;
  double peak_wait_seconds = 0;
  int peak_roots = 0;
  int observations = 0;             // observations between open and resolve, quiet ones included
  std::vector<IncidentRoot> roots;  // every root seen while open, in order of first appearance
};

enum class IncidentEventKind : uint8_t { kOpened, kUpdated, kResolved };

// "opened", "updated", "resolved".
const char* IncidentEventKindName(IncidentEventKind kind);

struct IncidentEvent {
  IncidentEventKind kind = IncidentEventKind::kOpened;
  Incident incident;  // the state after this observation
};

// True when a report crosses any threshold; `why` (optional) receives the reason in words.
bool OverThresholds(const Report& report, const IncidentThresholds& thresholds, std::string* why = nullptr);

// "20261125T134500Z": the compact UTC form used in incident ids and dump file names.
std::string CompactUtc(TimestampUs us);

// Follows one target's reports over time and turns them into incident events. Pure: time is passed in.
// Not thread-safe; one tracker per target.
class IncidentTracker {
 public:
  explicit IncidentTracker(std::string target, IncidentThresholds thresholds = {});

  // Feeds one analysed snapshot observed at `now` (normally snapshot.captured_at_us). Returns, in order:
  // kOpened when an incident starts; kUpdated when an open incident reaches a new peak or a new root;
  // kResolved when it has been quiet for resolve_after_us. An observation may resolve one incident and
  // nothing else (a new one opens at the next observation over a threshold).
  std::vector<IncidentEvent> Observe(const Report& report, const Snapshot& snapshot, TimestampUs now);

  // The open incident, if any.
  const std::optional<Incident>& current() const { return current_; }
  const IncidentThresholds& thresholds() const { return thresholds_; }

 private:
  std::string target_;
  IncidentThresholds thresholds_;
  std::optional<Incident> current_;
  std::optional<TimestampUs> quiet_since_;
};

}  // namespace lockwatch::core
