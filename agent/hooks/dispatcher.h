#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/hooks/delivery.h"
#include "agent/hooks/hook_config.h"
#include "agent/hooks/payloads.h"

namespace lockwatch::hooks {

// Counters of one hook, for lockwatch_hook_runs_total{hook} and friends.
struct HookStats {
  std::string name;
  uint64_t runs = 0;      // deliveries finished (after retries), successful or not
  uint64_t failures = 0;  // deliveries that failed in the end
  uint64_t drops = 0;     // events not delivered: queue full, or still queued at Stop
  size_t queued = 0;      // events waiting now
};

// Builds the runner of one hook. The default builds an ExecHook or a Webhook; tests pass fakes.
using RunnerFactory = std::function<std::unique_ptr<HookRunner>(const HookConfig&, const HookLogger&)>;
std::unique_ptr<HookRunner> DefaultRunner(const HookConfig& config, const HookLogger& logger);

// Delivers events to every configured hook that wants them, asynchronously. Each hook has its own bounded
// queue and its own delivery thread, so a hook that hangs until its timeout delays only its own later
// events, never another hook's and never the caller. Delivery is at most once: an event that failed after
// its retries, or was dropped, is not delivered later.
//
// Thread-safe. Submit never blocks on delivery (it takes a mutex held only for queue operations).
class HookDispatcher {
 public:
  // `config` must have passed ValidateHooksConfig. Starts one thread per hook.
  explicit HookDispatcher(HooksConfig config, HookLogger logger = DefaultHookLogger(),
                          const RunnerFactory& factory = DefaultRunner);
  ~HookDispatcher();  // Stop(0 ms)
  HookDispatcher(const HookDispatcher&) = delete;
  HookDispatcher& operator=(const HookDispatcher&) = delete;

  // Queues `event` for each hook whose filter wants it. incident.updated events are first passed through an
  // IncidentUpdateLimiter (incident_update_min_interval, by Event::at). A hook whose queue is full drops the
  // event and counts it. Returns the number of hooks it was queued for. After Stop, does nothing.
  int Submit(const Event& event);

  // Stops accepting events, lets the threads deliver what is queued for up to `drain`, then interrupts the
  // deliveries in progress (killing exec hooks, aborting HTTP transfers and backoffs), counts what is still
  // queued as dropped and joins. Returns within about drain + the largest exec kill_grace + 1 s.
  // Idempotent.
  void Stop(std::chrono::milliseconds drain = std::chrono::milliseconds(0));

  // A snapshot of every hook's counters, in configuration order.
  std::vector<HookStats> Stats() const;
  // incident.updated events held back by the rate limit.
  uint64_t updates_suppressed() const;

 private:
  struct Hook {
    HookConfig config;
    std::unique_ptr<HookRunner> runner;
    std::deque<Event> queue;
    bool busy = false;  // a delivery is in progress
    HookStats stats;
    std::thread thread;
  };

  void Run(Hook* hook);

  HooksConfig config_;
  HookLogger logger_;
  Interrupt interrupt_;
  std::mutex stop_mu_;  // serialises Stop calls
  mutable std::mutex mu_;
  std::condition_variable wake_;  // a queue got an event, or stopping
  std::condition_variable idle_;  // a hook finished a delivery (for Stop's drain)
  bool stopping_ = false;
  bool stopped_ = false;
  IncidentUpdateLimiter limiter_;
  uint64_t updates_suppressed_ = 0;
  std::vector<std::unique_ptr<Hook>> hooks_;
};

}  // namespace lockwatch::hooks
