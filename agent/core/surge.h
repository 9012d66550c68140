#pragma once

#include <string>
#include <vector>

#include "agent/core/snapshot.h"

namespace lockwatch::core {

// Sessions of one (application, client network) pair at one moment. `client_network` as ClientNetwork()
// makes it ("" for local sockets).
struct SessionCount {
  std::string application_name;
  std::string client_network;
  int count = 0;
};

// How much one (application, client network) pair grew between a baseline and a later moment.
struct SurgeContributor {
  std::string application_name;
  std::string client_network;
  int before = 0;
  int after = 0;
  int added() const { return after - before; }
};

// A connection surge: many sessions more at `after_at` than at `before_at`.
struct Surge {
  TimestampUs before_at = 0;
  TimestampUs after_at = 0;
  int sessions_before = 0;
  int sessions_after = 0;
  // Pairs that added sessions, most added first (ties by application, then network); at most `max_top`.
  std::vector<SurgeContributor> contributors;
};

// When an increase counts as a surge: at least `min_added` sessions more, and at least `min_ratio` times
// the baseline's total (so a quiet server growing from 2 to 30 sessions counts, a busy one gaining 30 of
// 2000 does not). Defaults are the documented ones of `lockwatch analyze`.
struct SurgeThresholds {
  int min_added = 20;
  double min_ratio = 0.25;
  int max_top = 5;
};

// Sums counts per (application, network); input order does not matter and duplicates are added up.
std::vector<SessionCount> MergeSessionCounts(const std::vector<SessionCount>& counts);

// Sessions per (application, client network) of a snapshot, excluding sessions without a state
// (background processes). lockwatch's own session counts: compact flight-recorder records cannot tell it
// apart, and every poll has it. Sorted by (application, network).
std::vector<SessionCount> CountSessions(const Snapshot& snapshot);

// Compares two moments. Returns the surge (contributors filled) when the total grew over the thresholds;
// `is_surge` (optional) receives whether it did. Contributors are filled in both cases so callers can show
// where growth came from. Pure.
Surge CompareSessionCounts(const std::vector<SessionCount>& before, TimestampUs before_at,
                           const std::vector<SessionCount>& after, TimestampUs after_at,
                           const SurgeThresholds& thresholds, bool* is_surge);

}  // namespace lockwatch::core
