#include "agent/agent/target_poller.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace lockwatch::agent {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

TEST(NextTickTest, NextBoundaryStrictlyAfterNow) {
  const Clock::time_point origin{};
  const struct {
    int64_t now_ms;
    int64_t next_ms;
  } cases[] = {{0, 100}, {1, 100}, {99, 100}, {100, 200}, {250, 300}, {1001, 1100}};
  for (const auto& c : cases) {
    const Clock::time_point next = NextTick(origin, milliseconds(100), origin + milliseconds(c.now_ms));
    EXPECT_EQ(std::chrono::duration_cast<milliseconds>(next - origin).count(), c.next_ms) << c.now_ms;
  }
}

TEST(ErrorLogLimiterTest, FirstErrorLoggedThenOncePerPeriodWithCount) {
  ErrorLogLimiter limiter(milliseconds(1000));
  const Clock::time_point t0{};
  int suppressed = -1;
  EXPECT_TRUE(limiter.ShouldLog(t0, &suppressed));
  EXPECT_EQ(suppressed, 0);
  EXPECT_FALSE(limiter.ShouldLog(t0 + milliseconds(100), &suppressed));
  EXPECT_FALSE(limiter.ShouldLog(t0 + milliseconds(200), &suppressed));
  EXPECT_TRUE(limiter.ShouldLog(t0 + milliseconds(1000), &suppressed));
  EXPECT_EQ(suppressed, 2);
  limiter.Reset();
  EXPECT_TRUE(limiter.ShouldLog(t0 + milliseconds(1001), &suppressed));
  EXPECT_EQ(suppressed, 0);
}

// What the poller reported, in order.
class RecordingSink : public PollSink {
 public:
  void OnPoll(const core::Snapshot&, const core::Report&, const pg::PollStats&, double) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back("poll");
  }
  void OnPollError(const std::string& stage, double) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back("error:" + stage);
  }
  void OnUp(bool up) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(up ? "up" : "down");
  }
  std::vector<std::string> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  size_t Count(const std::string& e) const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<size_t>(std::count(events_.begin(), events_.end(), e));
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> events_;
};

// A scripted server: connect results and poll results are consumed in order; when a script runs out,
// connects succeed and polls return an empty snapshot. Polls may be slowed down or blocked.
struct FakeServer {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<core::Status> connect_results;
  std::deque<core::Status> poll_results;
  milliseconds poll_duration{0};
  bool block_polls = false;
  std::vector<Clock::time_point> poll_starts;
  int connects = 0;
  int open_connections = 0;
};

class FakeSource : public PollSource {
 public:
  explicit FakeSource(FakeServer* server) : server_(server) {}
  ~FakeSource() override {
    if (connected_) {
      std::lock_guard<std::mutex> lock(server_->mu);
      --server_->open_connections;
    }
  }
  core::Status Connect() override {
    std::lock_guard<std::mutex> lock(server_->mu);
    ++server_->connects;
    core::Status s;
    if (!server_->connect_results.empty()) {
      s = server_->connect_results.front();
      server_->connect_results.pop_front();
    }
    connected_ = s.ok();
    if (connected_) ++server_->open_connections;
    return s;
  }
  bool connected() const override { return connected_; }
  core::Result<core::Snapshot> Poll(pg::PollStats*) override {
    core::Status s;
    milliseconds duration;
    {
      std::unique_lock<std::mutex> lock(server_->mu);
      server_->poll_starts.push_back(Clock::now());
      server_->cv.wait(lock, [this] { return !server_->block_polls; });
      duration = server_->poll_duration;
      if (!server_->poll_results.empty()) {
        s = server_->poll_results.front();
        server_->poll_results.pop_front();
      }
    }
    if (duration.count() > 0) std::this_thread::sleep_for(duration);  // the fake server's work
    if (s.code() == core::Status::Code::kUnavailable) {
      std::lock_guard<std::mutex> lock(server_->mu);
      --server_->open_connections;
      connected_ = false;
    }
    if (!s.ok()) return s;
    return core::Snapshot{};
  }

 private:
  FakeServer* server_;
  bool connected_ = false;
};

PollSourceFactory FactoryFor(FakeServer* server) {
  return [server]() -> core::Result<std::unique_ptr<PollSource>> {
    return std::unique_ptr<PollSource>(std::make_unique<FakeSource>(server));
  };
}

PollerOptions FastOptions(milliseconds interval) {
  PollerOptions o;
  o.name = "t";
  o.interval = interval;
  o.initial_backoff = milliseconds(10);
  o.max_backoff = milliseconds(40);
  return o;
}

// Waits (bounded) until `done` holds.
template <typename Pred>
bool Eventually(Pred done, milliseconds limit = milliseconds(5000)) {
  const Clock::time_point deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return done();
}

TEST(TargetPollerTest, OverrunningPollsAreNotStacked) {
  FakeServer server;
  server.poll_duration = milliseconds(130);  // longer than the 50 ms interval
  auto sink = std::make_shared<RecordingSink>();
  TargetPoller poller(FastOptions(milliseconds(50)), FactoryFor(&server), sink, [] { return 0.5; });
  poller.Start();
  ASSERT_TRUE(Eventually([&] { return poller.polls() >= 5; }));
  poller.RequestStop();
  ASSERT_TRUE(poller.JoinUntil(Clock::now() + milliseconds(1000)));
  std::lock_guard<std::mutex> lock(server.mu);
  ASSERT_GE(server.poll_starts.size(), 5u);
  for (size_t i = 1; i < server.poll_starts.size(); ++i) {
    const auto gap = server.poll_starts[i] - server.poll_starts[i - 1];
    // Never a second poll while one runs; the next starts at the next 50 ms boundary after the 130 ms poll.
    EXPECT_GE(gap, milliseconds(130)) << i;
    EXPECT_LT(gap, milliseconds(130 + 50 + 60)) << i;  // + at most one tick + scheduling slack
  }
}

TEST(TargetPollerTest, PollsFollowTheIntervalGrid) {
  FakeServer server;
  auto sink = std::make_shared<RecordingSink>();
  TargetPoller poller(FastOptions(milliseconds(40)), FactoryFor(&server), sink, [] { return 0.5; });
  const Clock::time_point start = Clock::now();
  poller.Start();
  ASSERT_TRUE(Eventually([&] { return poller.polls() >= 10; }));
  const auto elapsed = Clock::now() - start;
  poller.RequestStop();
  ASSERT_TRUE(poller.JoinUntil(Clock::now() + milliseconds(1000)));
  // 10 polls on a 40 ms grid (the first right after connecting): about 360 ms, never faster.
  EXPECT_GE(elapsed, milliseconds(9 * 40 - 5));
  EXPECT_EQ(sink->Count("up"), 1u);
  EXPECT_EQ(sink->Count("down"), 0u);
}

TEST(TargetPollerTest, RetriesRefusedConnectsWithBackoffAndRecovers) {
  FakeServer server;
  server.connect_results = {core::Status::Unavailable("refused"), core::Status::Unavailable("refused"),
                            core::Status::Unavailable("refused")};
  auto sink = std::make_shared<RecordingSink>();
  TargetPoller poller(FastOptions(milliseconds(20)), FactoryFor(&server), sink, [] { return 0.5; });
  poller.Start();
  ASSERT_TRUE(Eventually([&] { return poller.attempted(); }));
  ASSERT_TRUE(Eventually([&] { return sink->Count("poll") >= 2; }));
  poller.RequestStop();
  ASSERT_TRUE(poller.JoinUntil(Clock::now() + milliseconds(1000)));
  const std::vector<std::string> events = sink->events();
  ASSERT_GE(events.size(), 8u);
  const std::vector<std::string> expected_prefix = {"down", "error:connect", "down", "error:connect",
                                                    "down", "error:connect", "up",   "poll"};
  EXPECT_EQ(std::vector<std::string>(events.begin(), events.begin() + 8), expected_prefix);
  std::lock_guard<std::mutex> lock(server.mu);
  EXPECT_EQ(server.connects, 4);
  EXPECT_EQ(server.open_connections, 0);  // closed at stop
}

TEST(TargetPollerTest, LostConnectionIsReopenedWithoutLeaking) {
  FakeServer server;
  server.poll_results = {core::Status::Ok(), core::Status::Unavailable("server closed the connection")};
  auto sink = std::make_shared<RecordingSink>();
  TargetPoller poller(FastOptions(milliseconds(20)), FactoryFor(&server), sink, [] { return 0.5; });
  poller.Start();
  ASSERT_TRUE(Eventually([&] { return sink->Count("up") >= 2 && sink->Count("poll") >= 3; }));
  {
    std::lock_guard<std::mutex> lock(server.mu);
    EXPECT_EQ(server.open_connections, 1);
    EXPECT_EQ(server.connects, 2);
  }
  poller.RequestStop();
  ASSERT_TRUE(poller.JoinUntil(Clock::now() + milliseconds(1000)));
  EXPECT_EQ(sink->Count("down"), 1u);
  EXPECT_EQ(sink->Count("error:connect"), 1u);
}

TEST(TargetPollerTest, QueryErrorsKeepTheConnection) {
  FakeServer server;
  server.poll_results = {core::Status::Timeout("canceling statement due to statement timeout"),
                         core::Status::QueryFailed("42501"), core::Status::PermissionDenied("denied")};
  auto sink = std::make_shared<RecordingSink>();
  TargetPoller poller(FastOptions(milliseconds(20)), FactoryFor(&server), sink, [] { return 0.5; });
  poller.Start();
  ASSERT_TRUE(Eventually([&] { return sink->Count("poll") >= 1; }));
  poller.RequestStop();
  ASSERT_TRUE(poller.JoinUntil(Clock::now() + milliseconds(1000)));
  EXPECT_EQ(sink->Count("error:timeout"), 1u);
  EXPECT_EQ(sink->Count("error:query"), 1u);
  EXPECT_EQ(sink->Count("error:permission"), 1u);
  EXPECT_EQ(sink->Count("down"), 0u);
  std::lock_guard<std::mutex> lock(server.mu);
  EXPECT_EQ(server.connects, 1);
}

TEST(TargetPollerTest, StopWhileIdleIsImmediate) {
  FakeServer server;
  auto sink = std::make_shared<RecordingSink>();
  TargetPoller poller(FastOptions(milliseconds(60000)), FactoryFor(&server), sink, [] { return 0.5; });
  poller.Start();
  ASSERT_TRUE(Eventually([&] { return poller.polls() >= 1; }));
  const Clock::time_point start = Clock::now();
  poller.RequestStop();
  ASSERT_TRUE(poller.JoinUntil(Clock::now() + milliseconds(1000)));
  EXPECT_LT(Clock::now() - start, milliseconds(200));
}

TEST(TargetPollerTest, StuckPollBoundsTheJoinAndItsResultIsDropped) {
  FakeServer server;
  server.block_polls = true;
  auto sink = std::make_shared<RecordingSink>();
  TargetPoller poller(FastOptions(milliseconds(20)), FactoryFor(&server), sink, [] { return 0.5; });
  poller.Start();
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard<std::mutex> lock(server.mu);
    return !server.poll_starts.empty();
  }));
  poller.RequestStop();
  const Clock::time_point start = Clock::now();
  EXPECT_FALSE(poller.JoinUntil(Clock::now() + milliseconds(100)));
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, milliseconds(100));
  EXPECT_LT(waited, milliseconds(600));
  {
    std::lock_guard<std::mutex> lock(server.mu);
    server.block_polls = false;
  }
  server.cv.notify_all();
  ASSERT_TRUE(poller.JoinUntil(Clock::now() + milliseconds(1000)));
  EXPECT_EQ(sink->Count("poll"), 0u);  // finished after the stop: not recorded
  EXPECT_FALSE(poller.attempted());
}

TEST(TargetPollerTest, UnreadablePasswordFileCountsAsFailedAttempt) {
  auto sink = std::make_shared<RecordingSink>();
  std::atomic<int> calls{0};
  PollSourceFactory factory = [&calls]() -> core::Result<std::unique_ptr<PollSource>> {
    calls.fetch_add(1);
    return core::Status::PermissionDenied("cannot read password_file /nope: No such file or directory");
  };
  TargetPoller poller(FastOptions(milliseconds(20)), factory, sink, [] { return 0.5; });
  poller.Start();
  ASSERT_TRUE(Eventually([&] { return calls.load() >= 3; }));
  EXPECT_TRUE(poller.attempted());
  poller.RequestStop();
  ASSERT_TRUE(poller.JoinUntil(Clock::now() + milliseconds(1000)));
  EXPECT_GE(sink->Count("error:permission"), 3u);
  EXPECT_EQ(sink->Count("up"), 0u);
}

}  // namespace
}  // namespace lockwatch::agent
