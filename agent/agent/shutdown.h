#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

#include <signal.h>

namespace lockwatch::agent {

// A stop request that sleeping threads can be woken by: the agent's poll threads wait on it instead of
// sleeping, so a stop takes effect within microseconds rather than at the end of a sleep. Thread-safe.
class StopToken {
 public:
  StopToken() = default;
  StopToken(const StopToken&) = delete;
  StopToken& operator=(const StopToken&) = delete;

  void RequestStop();
  bool stop_requested() const;

  // Waits until `deadline` or a stop request, whichever comes first. Returns true when stopped.
  bool WaitUntil(std::chrono::steady_clock::time_point deadline) const;
  bool WaitFor(std::chrono::steady_clock::duration timeout) const {
    return WaitUntil(std::chrono::steady_clock::now() + timeout);
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stopped_ = false;
};

// The process signals the agent reacts to, delivered synchronously: the constructor blocks SIGTERM, SIGINT
// and SIGHUP in the calling thread (threads created afterwards inherit the mask), and Wait() takes them with
// sigtimedwait(). No handler runs, so nothing async-signal-unsafe can happen. Construct it in the main thread
// before any other thread starts; the destructor restores the previous mask.
class SignalWaiter {
 public:
  enum class Event { kStop, kReload };

  SignalWaiter();
  ~SignalWaiter();
  SignalWaiter(const SignalWaiter&) = delete;
  SignalWaiter& operator=(const SignalWaiter&) = delete;

  // Waits up to `timeout` for a signal. SIGTERM/SIGINT -> kStop, SIGHUP -> kReload; nullopt on timeout.
  std::optional<Event> Wait(std::chrono::milliseconds timeout);

 private:
  sigset_t old_mask_{};
};

}  // namespace lockwatch::agent
