#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/snapshot.h"

namespace lockwatch::core {

// Limits of an ArrivalTracker.
struct ArrivalOptions {
  // Sliding windows over which arrivals are counted, shortest first (default: the last 10 s and 60 s).
  std::vector<TimestampUs> windows_us = {10LL * 1000000, 60LL * 1000000};
  // Groups reported per breakdown; the rest is summed into `other`. Keeps metric cardinality bounded.
  size_t top_n = 5;
  // At most this many arrivals are remembered (the oldest are dropped first), bounding memory in a storm.
  size_t max_remembered = 200000;
};

// One group of a breakdown: an application name ("(none)" when empty) or a client network as
// ClientNetwork() makes it ("local" for Unix sockets).
struct ArrivalGroup {
  std::string key;
  int count = 0;
};

// The largest groups, most arrivals first (ties by key), and the sum of all other groups.
struct ArrivalBreakdown {
  std::vector<ArrivalGroup> top;
  int other = 0;
};

struct ArrivalWindow {
  TimestampUs window_us = 0;
  int arrivals = 0;
  double per_second = 0;  // arrivals / window length
  ArrivalBreakdown by_application;
  ArrivalBreakdown by_network;
};

struct ArrivalStats {
  TimestampUs at = 0;                  // captured_at of the last snapshot observed
  int new_sessions = 0;                // sessions that appeared since the previous snapshot
  double interval_seconds = 0;         // time between the last two snapshots (0 after the first)
  uint64_t total = 0;                  // every arrival counted since the tracker started (a counter)
  std::vector<ArrivalWindow> windows;  // one per ArrivalOptions::windows_us, same order
};

// Tracks the arrival of new client sessions on one target over consecutive snapshots. A session is
// identified by (pid, backend_start), so a recycled pid is a new session. Only client backends count
// (lockwatch's own session, parallel workers and background processes do not).
//
// The first snapshot is a baseline: its sessions count as arrivals only when their backend_start lies
// within the longest window before it, so a view started during a surge shows it at once. Sessions that
// connect and disconnect between two polls are not seen. Arrival time is backend_start (clamped into
// the polling interval), so windows are exact for the sessions that are seen.
//
// Pure (no clock: time is the snapshots' captured_at). Not thread-safe.
class ArrivalTracker {
 public:
  explicit ArrivalTracker(ArrivalOptions options = {});

  // Feeds the next snapshot of the target; captured_at must not go backwards (an older snapshot is
  // ignored and returns 0). Returns the number of new sessions.
  int Observe(const Snapshot& snapshot);

  // Statistics as of the last observed snapshot.
  ArrivalStats Stats() const;

 private:
  struct Arrival {
    TimestampUs at = 0;
    std::string application;
    std::string network;
  };

  ArrivalOptions options_;
  bool started_ = false;
  TimestampUs last_at_ = 0;
  double interval_seconds_ = 0;
  int last_new_ = 0;
  uint64_t total_ = 0;
  std::set<std::pair<int32_t, TimestampUs>> previous_;
  std::deque<Arrival> recent_;  // ordered by observation; pruned to the longest window
};

}  // namespace lockwatch::core
