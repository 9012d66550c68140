#include "agent/core/surge.h"

#include <algorithm>
#include <map>
#include <utility>

#include "agent/core/flight_recorder.h"

namespace lockwatch::core {
namespace {

using Key = std::pair<std::string, std::string>;

std::map<Key, int> ToMap(const std::vector<SessionCount>& counts) {
  std::map<Key, int> out;
  for (const SessionCount& c : counts) out[{c.application_name, c.client_network}] += c.count;
  return out;
}

int Total(const std::map<Key, int>& counts) {
  int total = 0;
  for (const auto& entry : counts) total += entry.second;
  return total;
}

}  // namespace

std::vector<SessionCount> MergeSessionCounts(const std::vector<SessionCount>& counts) {
  std::vector<SessionCount> out;
  for (const auto& [key, count] : ToMap(counts)) out.push_back(SessionCount{key.first, key.second, count});
  return out;
}

std::vector<SessionCount> CountSessions(const Snapshot& snapshot) {
  std::vector<SessionCount> counts;
  for (const Session& s : snapshot.sessions) {
    if (s.state.empty()) continue;
    counts.push_back(SessionCount{s.application_name, ClientNetwork(s.client_addr), 1});
  }
  return MergeSessionCounts(counts);
}

Surge CompareSessionCounts(const std::vector<SessionCount>& before, TimestampUs before_at,
                           const std::vector<SessionCount>& after, TimestampUs after_at,
                           const SurgeThresholds& thresholds, bool* is_surge) {
  const std::map<Key, int> b = ToMap(before);
  const std::map<Key, int> a = ToMap(after);
  Surge surge;
  surge.before_at = before_at;
  surge.after_at = after_at;
  surge.sessions_before = Total(b);
  surge.sessions_after = Total(a);
  for (const auto& [key, count] : a) {
    auto it = b.find(key);
    const int was = it == b.end() ? 0 : it->second;
    if (count > was) surge.contributors.push_back(SurgeContributor{key.first, key.second, was, count});
  }
  // std::map iteration already orders by (application, network); a stable sort keeps that for ties.
  std::stable_sort(
      surge.contributors.begin(), surge.contributors.end(),
      [](const SurgeContributor& x, const SurgeContributor& y) { return x.added() > y.added(); });
  if (thresholds.max_top >= 0 && surge.contributors.size() > static_cast<size_t>(thresholds.max_top)) {
    surge.contributors.resize(static_cast<size_t>(thresholds.max_top));
  }
  const int added = surge.sessions_after - surge.sessions_before;
  if (is_surge != nullptr) {
    *is_surge =
        added >= thresholds.min_added &&
        static_cast<double>(added) >= thresholds.min_ratio * static_cast<double>(surge.sessions_before);
  }
  return surge;
}

}  // namespace lockwatch::core
