#include "agent/agent/shutdown.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

namespace lockwatch::agent {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

TEST(StopTokenTest, WaitEndsAsSoonAsStopIsRequested) {
  StopToken token;
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(50));
    token.RequestStop();
  });
  const Clock::time_point start = Clock::now();
  EXPECT_TRUE(token.WaitFor(std::chrono::seconds(30)));
  const auto elapsed = Clock::now() - start;
  stopper.join();
  EXPECT_GE(elapsed, milliseconds(40));
  EXPECT_LT(elapsed, milliseconds(1000));  // not the 30 s timeout
}

TEST(StopTokenTest, WaitWithoutStopLastsTheTimeoutAndNoLonger) {
  StopToken token;
  const Clock::time_point start = Clock::now();
  EXPECT_FALSE(token.WaitFor(milliseconds(60)));
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, milliseconds(60));
  EXPECT_LT(elapsed, milliseconds(500));
  EXPECT_FALSE(token.stop_requested());
}

TEST(StopTokenTest, StopBeforeWaitReturnsImmediately) {
  StopToken token;
  token.RequestStop();
  const Clock::time_point start = Clock::now();
  EXPECT_TRUE(token.WaitFor(std::chrono::seconds(30)));
  EXPECT_TRUE(token.WaitUntil(Clock::now() + std::chrono::hours(1)));
  EXPECT_LT(Clock::now() - start, milliseconds(100));
}

TEST(StopTokenTest, OneStopWakesEveryWaiter) {
  StopToken token;
  std::atomic<int> woken{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&] {
      if (token.WaitFor(std::chrono::seconds(30))) woken.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(milliseconds(20));
  const Clock::time_point start = Clock::now();
  token.RequestStop();
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(woken.load(), 4);
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
}

struct SignalCase {
  int signal;
  SignalWaiter::Event event;
};

TEST(SignalWaiterTest, MapsSignalsToEvents) {
  const SignalCase cases[] = {
      {SIGTERM, SignalWaiter::Event::kStop},
      {SIGINT, SignalWaiter::Event::kStop},
      {SIGHUP, SignalWaiter::Event::kReload},
  };
  SignalWaiter waiter;
  for (const SignalCase& c : cases) {
    // Thread-directed, so it stays pending on this thread (where it is blocked) until taken by Wait().
    ASSERT_EQ(pthread_kill(pthread_self(), c.signal), 0);
    const Clock::time_point start = Clock::now();
    std::optional<SignalWaiter::Event> event = waiter.Wait(std::chrono::seconds(10));
    ASSERT_TRUE(event.has_value()) << c.signal;
    EXPECT_EQ(*event, c.event) << c.signal;
    EXPECT_LT(Clock::now() - start, milliseconds(500));
  }
}

// `timeout` (and a DBA pressing Ctrl-C twice) delivers the stop signal twice: the agent takes one in Wait(),
// the other is still pending when the waiter goes away. The process must survive that and exit with its own
// status, not die of the second signal when the mask is restored. Run in a child process: failing would kill
// it.
TEST(SignalWaiterDeathTest, ASecondPendingStopSignalDoesNotKillTheProcessOnItsWayOut) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        {
          SignalWaiter waiter;
          kill(getpid(), SIGTERM);
          if (waiter.Wait(std::chrono::seconds(5)) != SignalWaiter::Event::kStop) std::_Exit(3);
          kill(getpid(), SIGTERM);  // pending: blocked, and nobody waits for it any more
          kill(getpid(), SIGINT);
        }
        std::_Exit(7);
      },
      ::testing::ExitedWithCode(7), "");
}

TEST(SignalWaiterTest, TimesOutWithoutASignal) {
  SignalWaiter waiter;
  const Clock::time_point start = Clock::now();
  EXPECT_FALSE(waiter.Wait(milliseconds(50)).has_value());
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, milliseconds(50));
  EXPECT_LT(elapsed, milliseconds(500));
}

TEST(SignalWaiterTest, RestoresTheSignalMaskWhenDestroyed) {
  sigset_t before;
  pthread_sigmask(SIG_BLOCK, nullptr, &before);
  ASSERT_EQ(sigismember(&before, SIGHUP), 0);
  {
    SignalWaiter waiter;
    sigset_t during;
    pthread_sigmask(SIG_BLOCK, nullptr, &during);
    EXPECT_EQ(sigismember(&during, SIGHUP), 1);
    EXPECT_EQ(sigismember(&during, SIGTERM), 1);
  }
  sigset_t after;
  pthread_sigmask(SIG_BLOCK, nullptr, &after);
  EXPECT_EQ(sigismember(&after, SIGHUP), 0);
}

}  // namespace
}  // namespace lockwatch::agent
