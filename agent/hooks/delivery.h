#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/common.h>

#include "agent/hooks/payloads.h"

namespace lockwatch::hooks {

// The seam between the dispatcher and the two kinds of hooks, plus the small pieces both share.

// Structured log output. Hooks do not depend on the agent's logging setup: the composition root passes a
// function that forwards to it. Field values are already redacted (never a header value or a URL path).
using LogFields = std::vector<std::pair<std::string, std::string>>;
using HookLogger = std::function<void(spdlog::level::level_enum, const std::string& msg, const LogFields&)>;

// Logs through spdlog's default logger as "msg key=value key=\"quoted value\"".
HookLogger DefaultHookLogger();

// A one-way "stop now" flag that sleeping and waiting deliveries notice promptly. Thread-safe.
class Interrupt {
 public:
  Interrupt() = default;
  Interrupt(const Interrupt&) = delete;
  Interrupt& operator=(const Interrupt&) = delete;

  void Trigger();
  bool triggered() const;
  // Sleeps for `d` unless triggered first; returns false when triggered.
  bool SleepFor(std::chrono::milliseconds d) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool triggered_ = false;
};

// Blocks SIGPIPE in the calling thread for its lifetime, so writing to a hook's closed stdin or a reset
// socket is an EPIPE error rather than the end of the process; a SIGPIPE raised meanwhile is discarded.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock();
  ~ScopedSigpipeBlock();
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  bool was_blocked_ = false;
  bool was_pending_ = false;
};

struct DeliveryResult {
  bool ok = false;
  int attempts = 0;    // webhook: HTTP attempts made; exec: 1 (0 when it could not start)
  std::string detail;  // why it failed, or a short success note ("HTTP 200", "exit 0"); no secrets
};

// Delivers one event to one hook. Implementations are called from one thread at a time (the hook's own
// delivery thread) and must return within the hook's timeout (times attempts and backoff for webhooks)
// or promptly once `interrupt` is triggered.
class HookRunner {
 public:
  virtual ~HookRunner() = default;
  virtual DeliveryResult Deliver(const Event& event, const Interrupt& interrupt) = 0;
};

}  // namespace lockwatch::hooks
