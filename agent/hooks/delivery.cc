#include "agent/hooks/delivery.h"

#include <csignal>
#include <ctime>

#include <pthread.h>
#include <spdlog/spdlog.h>

namespace lockwatch::hooks {
namespace {

bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  for (char c : s) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || c == '\n' || c == '\t' || c == '\r') return true;
  }
  return false;
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
      case '\\':
        out += '\\';
        out += c;
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
  return out + "\"";
}

}  // namespace

HookLogger DefaultHookLogger() {
  return [](spdlog::level::level_enum level, const std::string& msg, const LogFields& fields) {
    std::string line = msg;
    for (const auto& [key, value] : fields)
      line += " " + key + "=" + (NeedsQuotes(value) ? Quote(value) : value);
    spdlog::log(level, "{}", line);
  };
}

ScopedSigpipeBlock::ScopedSigpipeBlock() {
  sigset_t pipe_set;
  sigset_t old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  was_blocked_ = sigismember(&old_set, SIGPIPE) == 1;
}

ScopedSigpipeBlock::~ScopedSigpipeBlock() {
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  if (!was_pending_) {
    // Consume the SIGPIPEs our own writes raised, so unblocking does not deliver them.
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
    }
  }
  if (!was_blocked_) pthread_sigmask(SIG_UNBLOCK, &pipe_set, nullptr);
}

void Interrupt::Trigger() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    triggered_ = true;
  }
  cv_.notify_all();
}

bool Interrupt::triggered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return triggered_;
}

bool Interrupt::SleepFor(std::chrono::milliseconds d) const {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return triggered_; });
}

}  // namespace lockwatch::hooks
