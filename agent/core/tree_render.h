#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/core/analysis.h"
#include "agent/core/explain.h"
#include "agent/core/snapshot.h"

namespace lockwatch::core {

struct TreeRenderOptions {
  int width = 120;     // terminal width; each line (query included) is shortened to fit
  bool color = false;  // ANSI colours (only when writing to a terminal)
  // Under each root, and under each deadlock cycle, a "why:" line (the situation) and a "fix:" line (the
  // usual remedy) from Explain(); server-wide findings before the summary.
  bool explain = true;
};

// Renders the blocking forest as indented text: roots (most blocked sessions first), each waiter under the
// blocker it waits for, cycles as cycles, "No lock waits" when there are none. Pure: "now" is the
// snapshot's captured_at_us. Explanations are Explain(snapshot, report) unless given.
std::string RenderTree(const Snapshot& snapshot, const Report& report, const TreeRenderOptions& options);
std::string RenderTree(const Snapshot& snapshot, const Report& report,
                       const std::vector<Explanation>& explanations, const TreeRenderOptions& options);

// "2026-11-25T13:45:00.123456Z": ISO-8601 UTC with microseconds, as used in the tree header and in JSON.
std::string FormatTimestampUtc(TimestampUs us);

// Counts of sessions per pg_stat_activity.state, lockwatch's own session and sessions without a state
// (background processes) left out.
std::map<std::string, int> SessionsByState(const Snapshot& snapshot);

}  // namespace lockwatch::core
