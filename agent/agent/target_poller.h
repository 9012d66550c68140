#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "agent/agent/backoff.h"
#include "agent/agent/shutdown.h"
#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"
#include "agent/core/status.h"
#include "agent/pg/collector.h"

namespace lockwatch::agent {

// A target's connection and poll, as the poller sees it. The production source wraps pg::Collector; tests
// use fakes. Used by one thread at a time.
class PollSource {
 public:
  virtual ~PollSource() = default;
  virtual core::Status Connect() = 0;
  virtual bool connected() const = 0;
  virtual core::Result<core::Snapshot> Poll(pg::PollStats* stats) = 0;
};

// Makes a fresh, unconnected source for every connect attempt (so a rotated password file is re-read).
// An error (e.g. an unreadable password file) counts as a failed connect attempt.
using PollSourceFactory = std::function<core::Result<std::unique_ptr<PollSource>>()>;

// Where poll outcomes go (the agent's metrics). Called from the poller's thread; must be thread-safe.
class PollSink {
 public:
  virtual ~PollSink() = default;
  virtual void OnPoll(const core::Snapshot& snapshot, const core::Report& report, const pg::PollStats& stats,
                      double now_s) = 0;
  // `stage`: "connect", "query", "decode", "timeout" or "permission".
  virtual void OnPollError(const std::string& stage, double now_s) = 0;
  virtual void OnUp(bool up) = 0;
};

struct PollerOptions {
  std::string name;          // target name, for logs
  std::string redacted_dsn;  // for logs (password already removed)
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  // Poll errors of one kind are logged once, then at most once per this period (with a count).
  std::chrono::milliseconds error_log_period{60000};
};

// The start of the first tick strictly after `now` on the grid origin + k * interval. A poll that overruns
// its tick is not stacked: the next one starts on the next boundary after it finished.
std::chrono::steady_clock::time_point NextTick(std::chrono::steady_clock::time_point origin,
                                               std::chrono::milliseconds interval,
                                               std::chrono::steady_clock::time_point now);

// Rate limit for repeated error lines: the first error of a streak is logged, then one line per period
// carrying the number of errors suppressed since. Pure (time passed in).
class ErrorLogLimiter {
 public:
  explicit ErrorLogLimiter(std::chrono::milliseconds period) : period_(period) {}
  // Whether to log this error; `*suppressed` receives the number of errors not logged since the last line.
  bool ShouldLog(std::chrono::steady_clock::time_point now, int* suppressed);
  // A success ends the streak: the next error is logged at once.
  void Reset() {
    in_streak_ = false;
    suppressed_ = 0;
  }

 private:
  std::chrono::milliseconds period_;
  bool in_streak_ = false;
  std::chrono::steady_clock::time_point last_{};
  int suppressed_ = 0;
};

// Polls one target on its own thread: connect (with backoff on failure), poll on the interval grid,
// analyse, hand the result to the sink, reconnect when the connection is lost; forever until stopped.
// Keeps only the snapshot and report of the poll in progress. Thread-safe API; non-copyable.
class TargetPoller {
 public:
  TargetPoller(PollerOptions options, PollSourceFactory factory, std::shared_ptr<PollSink> sink,
               std::function<double()> random);
  ~TargetPoller();  // stops and joins
  TargetPoller(const TargetPoller&) = delete;
  TargetPoller& operator=(const TargetPoller&) = delete;

  void Start();
  // Asks the thread to stop; returns immediately. A poll in progress finishes (bounded by the statement
  // timeout) and its result is discarded.
  void RequestStop() { stop_.RequestStop(); }
  // Waits for the thread until `deadline`; true when it has exited (and was joined).
  bool JoinUntil(std::chrono::steady_clock::time_point deadline);
  // True once the first poll attempt (connect or query, success or failure) has completed.
  bool attempted() const { return attempted_.load(); }
  uint64_t polls() const { return polls_.load(); }
  const PollerOptions& options() const { return options_; }

 private:
  void Run();

  PollerOptions options_;
  PollSourceFactory factory_;
  std::shared_ptr<PollSink> sink_;
  Backoff backoff_;
  StopToken stop_;
  StopToken done_;  // signalled by the thread as it exits
  std::atomic<bool> attempted_{false};
  std::atomic<uint64_t> polls_{0};
  std::thread thread_;
};

}  // namespace lockwatch::agent
