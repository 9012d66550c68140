#include "agent/agent/target_poller.h"

#include <utility>

#include "agent/agent/log.h"

namespace lockwatch::agent {
namespace {

using Clock = std::chrono::steady_clock;

double WallNowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The `stage` label of lockwatch_poll_errors_total for an error status.
std::string StageOf(const core::Status& status) {
  switch (status.code()) {
    case core::Status::Code::kTimeout:
      return "timeout";
    case core::Status::Code::kPermissionDenied:
      return "permission";
    case core::Status::Code::kCorrupt:
      return "decode";
    case core::Status::Code::kUnavailable:
      return "connect";
    default:
      return "query";
  }
}

}  // namespace

Clock::time_point NextTick(Clock::time_point origin, std::chrono::milliseconds interval,
                           Clock::time_point now) {
  if (interval.count() <= 0) return now;
  if (now < origin) return origin;
  const auto step = std::chrono::duration_cast<Clock::duration>(interval);
  const auto elapsed_ticks = (now - origin) / step;  // whole ticks already begun
  return origin + (elapsed_ticks + 1) * step;
}

bool ErrorLogLimiter::ShouldLog(Clock::time_point now, int* suppressed) {
  if (!in_streak_ || now - last_ >= period_) {
    *suppressed = suppressed_;
    suppressed_ = 0;
    in_streak_ = true;
    last_ = now;
    return true;
  }
  ++suppressed_;
  *suppressed = suppressed_;
  return false;
}

TargetPoller::TargetPoller(PollerOptions options, PollSourceFactory factory, std::shared_ptr<PollSink> sink,
                           std::function<double()> random)
    : options_(std::move(options)),
      factory_(std::move(factory)),
      sink_(std::move(sink)),
      backoff_(options_.initial_backoff, options_.max_backoff, std::move(random)) {}

TargetPoller::~TargetPoller() {
  stop_.RequestStop();
  if (thread_.joinable()) thread_.join();
}

void TargetPoller::Start() {
  thread_ = std::thread([this] {
    Run();
    done_.RequestStop();
  });
}

bool TargetPoller::JoinUntil(Clock::time_point deadline) {
  if (!thread_.joinable()) return true;
  if (!done_.WaitUntil(deadline)) return false;
  thread_.join();
  return true;
}

void TargetPoller::Run() {
  const Clock::time_point origin = Clock::now();
  while (!stop_.stop_requested()) {
    core::Result<std::unique_ptr<PollSource>> made = factory_();
    std::unique_ptr<PollSource> source;
    core::Status status;
    if (made.ok()) {
      source = std::move(made).value();
      status = source->Connect();
    } else {
      status = made.status();
    }
    if (stop_.stop_requested()) return;
    if (!status.ok()) {
      source.reset();  // never keep a half-open connection around
      attempted_.store(true);
      sink_->OnUp(false);
      sink_->OnPollError(status.code() == core::Status::Code::kPermissionDenied ? "permission" : "connect",
                         WallNowSeconds());
      const std::chrono::milliseconds delay = backoff_.Next();
      Log(backoff_.attempt() == 1 ? spdlog::level::warn : spdlog::level::info,
          "cannot connect to target; retrying",
          {{"target", options_.name},
           {"dsn", options_.redacted_dsn},
           {"error", status.message()},
           {"attempt", backoff_.attempt()},
           {"retry_in_ms", static_cast<int64_t>(delay.count())}});
      stop_.WaitFor(delay);
      continue;
    }
    Log(spdlog::level::info, "connected to target",
        {{"target", options_.name}, {"dsn", options_.redacted_dsn}});
    sink_->OnUp(true);

    // Polls until the connection is lost or a stop is requested.
    ErrorLogLimiter limiter(options_.error_log_period);
    bool failing = false;
    Clock::time_point next = Clock::now();  // first poll right after connecting
    while (!stop_.WaitUntil(next)) {
      pg::PollStats stats;
      core::Result<core::Snapshot> snapshot = source->Poll(&stats);
      const double now_s = WallNowSeconds();
      if (stop_.stop_requested()) return;  // a stopped target's late result is dropped
      attempted_.store(true);
      polls_.fetch_add(1);
      if (snapshot.ok()) {
        const core::Report report = core::Analyze(snapshot.value());
        sink_->OnPoll(snapshot.value(), report, stats, now_s);
        backoff_.Reset();
        if (failing) {
          Log(spdlog::level::info, "polls succeed again", {{"target", options_.name}});
          failing = false;
        }
        limiter.Reset();
      } else {
        sink_->OnPollError(StageOf(snapshot.status()), now_s);
        if (snapshot.status().code() == core::Status::Code::kUnavailable || !source->connected()) {
          sink_->OnUp(false);
          Log(spdlog::level::warn, "connection to target lost; reconnecting",
              {{"target", options_.name},
               {"dsn", options_.redacted_dsn},
               {"error", snapshot.status().message()}});
          break;
        }
        failing = true;
        int suppressed = 0;
        if (limiter.ShouldLog(Clock::now(), &suppressed)) {
          Log(spdlog::level::warn, "poll failed",
              {{"target", options_.name},
               {"stage", StageOf(snapshot.status())},
               {"error", snapshot.status().message()},
               {"suppressed", suppressed}});
        }
      }
      next = NextTick(origin, options_.interval, Clock::now());
    }
    if (stop_.stop_requested()) return;
    // Lost: close the connection, then wait a (short, growing) backoff before reconnecting so a server that
    // accepts and immediately drops connections is not hammered.
    source.reset();
    stop_.WaitFor(backoff_.Next());
  }
}

}  // namespace lockwatch::agent
