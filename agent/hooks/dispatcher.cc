#include "agent/hooks/dispatcher.h"

#include <utility>

#include "agent/hooks/exec_hook.h"
#include "agent/hooks/webhook.h"

namespace lockwatch::hooks {

std::unique_ptr<HookRunner> DefaultRunner(const HookConfig& config, const HookLogger& logger) {
  if (config.kind == HookKind::kExec) return std::make_unique<ExecHook>(config, logger);
  return std::make_unique<Webhook>(config, logger);
}

HookDispatcher::HookDispatcher(HooksConfig config, HookLogger logger, const RunnerFactory& factory)
    : config_(std::move(config)),
      logger_(std::move(logger)),
      limiter_(std::chrono::duration_cast<std::chrono::microseconds>(config_.incident_update_min_interval)
                   .count()) {
  hooks_.reserve(config_.hooks.size());
  for (const HookConfig& c : config_.hooks) {
    auto hook = std::make_unique<Hook>();
    hook->config = c;
    hook->runner = factory(c, logger_);
    hook->stats.name = c.name;
    hooks_.push_back(std::move(hook));
  }
  // Threads start once every hook exists, so Run never sees a half-built vector.
  for (auto& hook : hooks_) hook->thread = std::thread(&HookDispatcher::Run, this, hook.get());
}

HookDispatcher::~HookDispatcher() { Stop(); }

int HookDispatcher::Submit(const Event& event) {
  const char* name = EventKindName(event.kind);
  int queued = 0;
  std::vector<std::string> dropped_for;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return 0;
    if (!limiter_.Allow(event)) {
      ++updates_suppressed_;
      return 0;
    }
    for (auto& hook : hooks_) {
      if (!HookWants(hook->config, name)) continue;
      if (hook->queue.size() >= config_.queue_capacity) {
        ++hook->stats.drops;
        dropped_for.push_back(hook->config.name);
        continue;
      }
      hook->queue.push_back(event);
      ++queued;
    }
  }
  if (queued > 0) wake_.notify_all();
  // Logged outside the lock; a full queue means the hook is far behind, which the operator must hear of.
  if (logger_) {
    for (const std::string& hook_name : dropped_for) {
      logger_(spdlog::level::warn, "hook queue full, event dropped",
              {{"hook", hook_name}, {"event", name}, {"target", event.target}});
    }
  }
  return queued;
}

void HookDispatcher::Run(Hook* hook) {
  // Writes to a hook's closed stdin or a reset socket must not kill the process.
  const ScopedSigpipeBlock no_sigpipe;
  while (true) {
    Event event;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return !hook->queue.empty() || stopping_; });
      if (hook->queue.empty() || interrupt_.triggered()) return;  // stopping, and nothing (more) to deliver
      event = std::move(hook->queue.front());
      hook->queue.pop_front();
      hook->busy = true;
    }
    const DeliveryResult r = hook->runner->Deliver(event, interrupt_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      hook->busy = false;
      ++hook->stats.runs;
      if (!r.ok) ++hook->stats.failures;
    }
    idle_.notify_all();
  }
}

void HookDispatcher::Stop(std::chrono::milliseconds drain) {
  const std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopped_) return;
    stopping_ = true;
    wake_.notify_all();
    idle_.wait_for(lock, drain, [this] {
      for (const auto& hook : hooks_) {
        if (hook->busy || !hook->queue.empty()) return false;
      }
      return true;
    });
  }
  interrupt_.Trigger();
  wake_.notify_all();
  for (auto& hook : hooks_) {
    if (hook->thread.joinable()) hook->thread.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& hook : hooks_) {
    hook->stats.drops += hook->queue.size();
    hook->queue.clear();
  }
  stopped_ = true;
}

std::vector<HookStats> HookDispatcher::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HookStats> out;
  out.reserve(hooks_.size());
  for (const auto& hook : hooks_) {
    HookStats s = hook->stats;
    s.queued = hook->queue.size();
    out.push_back(std::move(s));
  }
  return out;
}

uint64_t HookDispatcher::updates_suppressed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return updates_suppressed_;
}

}  // namespace lockwatch::hooks
