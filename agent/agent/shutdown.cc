#include "agent/agent/shutdown.h"

#include <cerrno>
#include <ctime>

#include <pthread.h>

namespace lockwatch::agent {

void StopToken::RequestStop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
}

bool StopToken::stop_requested() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopped_;
}

bool StopToken::WaitUntil(std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_until(lock, deadline, [this] { return stopped_; });
  return stopped_;
}

namespace {

sigset_t AgentSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

SignalWaiter::SignalWaiter() {
  const sigset_t set = AgentSignals();
  pthread_sigmask(SIG_BLOCK, &set, &old_mask_);
}

SignalWaiter::~SignalWaiter() {
  // A signal that arrived after the last Wait() is still pending, and unblocking it would apply its default
  // action: a second SIGTERM would kill the process on its way out, with status 143 instead of its own.
  // That is common, not exotic: `timeout` signals the process and then its whole process group, systemd
  // may signal the process and its control group. Pending signals are consumed before the mask is restored.
  const sigset_t set = AgentSignals();
  timespec zero{};
  while (sigtimedwait(&set, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

std::optional<SignalWaiter::Event> SignalWaiter::Wait(std::chrono::milliseconds timeout) {
  const sigset_t set = AgentSignals();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(left.count() / 1000000000);
    ts.tv_nsec = static_cast<long>(left.count() % 1000000000);
    const int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGHUP) return Event::kReload;
    if (sig == SIGTERM || sig == SIGINT) return Event::kStop;
    if (sig < 0 && errno == EAGAIN) return std::nullopt;
    // EINTR (another signal) or an unexpected number: wait for the rest of the timeout.
  }
}

}  // namespace lockwatch::agent
