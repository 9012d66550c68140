#include "agent/core/arrivals.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/flight_recorder.h"

namespace lockwatch::core {
namespace {

// Parallel workers and background processes are not connections; old fixtures leave backend_type empty.
bool IsClient(const Session& s, int32_t own_pid) {
  return s.pid != own_pid && (s.backend_type == "client backend" || s.backend_type.empty());
}

ArrivalBreakdown Breakdown(const std::map<std::string, int>& counts, size_t top_n) {
  std::vector<ArrivalGroup> groups;
  groups.reserve(counts.size());
  for (const auto& [key, count] : counts) groups.push_back(ArrivalGroup{key, count});
  std::sort(groups.begin(), groups.end(), [](const ArrivalGroup& a, const ArrivalGroup& b) {
    return a.count != b.count ? a.count > b.count : a.key < b.key;
  });
  ArrivalBreakdown out;
  for (size_t i = 0; i < groups.size(); ++i) {
    if (i < top_n) {
      out.top.push_back(std::move(groups[i]));
    } else {
      out.other += groups[i].count;
    }
  }
  return out;
}

}  // namespace

ArrivalTracker::ArrivalTracker(ArrivalOptions options) : options_(std::move(options)) {}

int ArrivalTracker::Observe(const Snapshot& snapshot) {
  const TimestampUs now = snapshot.captured_at_us;
  if (started_ && now < last_at_) return 0;
  TimestampUs longest = 0;
  for (TimestampUs w : options_.windows_us) longest = std::max(longest, w);

  std::set<std::pair<int32_t, TimestampUs>> current;
  int added = 0;
  for (const Session& s : snapshot.sessions) {
    if (!IsClient(s, snapshot.own_pid)) continue;
    // Without backend_start (never NULL for client backends in practice) the pid alone identifies it.
    const TimestampUs start = s.backend_start.value_or(0);
    const auto id = std::make_pair(s.pid, start);
    current.insert(id);
    if (previous_.count(id) != 0) continue;
    TimestampUs at = now;
    if (!started_) {
      // Baseline: only sessions that started within the longest window are arrivals.
      if (!s.backend_start || *s.backend_start < now - longest || *s.backend_start > now) continue;
      at = *s.backend_start;
    } else if (s.backend_start) {
      at = std::clamp(*s.backend_start, last_at_, now);
    }
    recent_.push_back(Arrival{at, s.application_name.empty() ? "(none)" : s.application_name,
                              s.client_addr.empty() ? "local" : ClientNetwork(s.client_addr)});
    ++added;
  }
  interval_seconds_ = started_ ? static_cast<double>(now - last_at_) / 1e6 : 0.0;
  previous_ = std::move(current);
  started_ = true;
  last_at_ = now;
  last_new_ = added;
  total_ += static_cast<uint64_t>(added);
  while (!recent_.empty() &&
         (recent_.size() > options_.max_remembered || recent_.front().at < now - longest)) {
    recent_.pop_front();
  }
  return added;
}

ArrivalStats ArrivalTracker::Stats() const {
  ArrivalStats stats;
  stats.at = last_at_;
  stats.new_sessions = last_new_;
  stats.interval_seconds = interval_seconds_;
  stats.total = total_;
  for (TimestampUs window : options_.windows_us) {
    ArrivalWindow w;
    w.window_us = window;
    std::map<std::string, int> by_app;
    std::map<std::string, int> by_net;
    for (const Arrival& a : recent_) {
      // Arrivals are clamped into polling intervals, so `at` is never after last_at_.
      if (a.at < last_at_ - window) continue;
      ++w.arrivals;
      ++by_app[a.application];
      ++by_net[a.network];
    }
    w.per_second = window > 0 ? static_cast<double>(w.arrivals) * 1e6 / static_cast<double>(window) : 0.0;
    w.by_application = Breakdown(by_app, options_.top_n);
    w.by_network = Breakdown(by_net, options_.top_n);
    stats.windows.push_back(std::move(w));
  }
  return stats;
}

}  // namespace lockwatch::core
