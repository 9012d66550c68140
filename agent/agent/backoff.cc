#include "agent/agent/backoff.h"

#include <algorithm>
#include <memory>
#include <random>
#include <utility>

namespace lockwatch::agent {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                 std::function<double()> uniform)
    : initial_(std::max(initial, std::chrono::milliseconds(1))),
      max_(std::max(max, initial_)),
      uniform_(std::move(uniform)) {}

std::chrono::milliseconds Backoff::Next() {
  // Doubling stops once the cap is reached, so the shift never overflows however long the outage lasts.
  int64_t base = initial_.count();
  for (int i = 0; i < attempt_ && base < max_.count(); ++i) base *= 2;
  base = std::min(base, static_cast<int64_t>(max_.count()));
  ++attempt_;
  double u = uniform_ ? uniform_() : 0.5;
  u = std::clamp(u, 0.0, 1.0);
  const double half = static_cast<double>(base) / 2.0;
  const auto delay = static_cast<int64_t>(half + u * half);
  return std::chrono::milliseconds(std::clamp<int64_t>(delay, 1, max_.count()));
}

std::function<double()> MakeRandomSource() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine]() { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

}  // namespace lockwatch::agent
