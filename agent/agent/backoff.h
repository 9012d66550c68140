#pragma once

#include <chrono>
#include <functional>

namespace lockwatch::agent {

// Capped exponential backoff with jitter for reconnect attempts. Pure: the random source is injected.
// Delay n (n = 0, 1, ...) is drawn uniformly from [b/2, b] with b = min(max, initial * 2^n), so it never
// exceeds `max`, never collapses to zero, and agents restarted together spread their retries.
// Not thread-safe (one per target).
class Backoff {
 public:
  // `uniform` returns values in [0, 1).
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, std::function<double()> uniform);

  // The delay before the next attempt; each call doubles the base until it reaches the cap.
  std::chrono::milliseconds Next();
  // After a success: the next delay starts again from `initial`.
  void Reset() { attempt_ = 0; }
  // Number of Next() calls since the last Reset().
  int attempt() const { return attempt_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::function<double()> uniform_;
  int attempt_ = 0;
};

// A jitter source for production: a Mersenne twister seeded from std::random_device.
std::function<double()> MakeRandomSource();

}  // namespace lockwatch::agent
