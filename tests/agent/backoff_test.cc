#include "agent/agent/backoff.h"

#include <random>

#include <gtest/gtest.h>

namespace lockwatch::agent {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, LowestJitterIsHalfTheDoublingBase) {
  Backoff b(milliseconds(100), milliseconds(1000), [] { return 0.0; });
  const int64_t expected[] = {50, 100, 200, 400, 500, 500, 500};
  for (int64_t e : expected) EXPECT_EQ(b.Next().count(), e);
}

TEST(BackoffTest, HighestJitterReachesButNeverExceedsTheCap) {
  Backoff b(milliseconds(100), milliseconds(1000), [] { return 0.999999; });
  const int64_t expected[] = {99, 199, 399, 799, 999, 999};
  for (int64_t e : expected) EXPECT_EQ(b.Next().count(), e);
}

TEST(BackoffTest, SeededJitterStaysWithinHalfToFullBase) {
  std::mt19937 engine(42);
  Backoff b(milliseconds(250), milliseconds(30000),
            [&] { return std::uniform_real_distribution<double>(0, 1)(engine); });
  int64_t base = 250;
  for (int i = 0; i < 40; ++i) {
    const int64_t d = b.Next().count();
    EXPECT_GE(d, base / 2) << "attempt " << i;
    EXPECT_LE(d, base) << "attempt " << i;
    base = std::min<int64_t>(base * 2, 30000);
  }
}

TEST(BackoffTest, JitterSpreadsDelaysOfTheSameAttempt) {
  std::mt19937 engine(7);
  auto uniform = [&] { return std::uniform_real_distribution<double>(0, 1)(engine); };
  int64_t lo = 1 << 30;
  int64_t hi = 0;
  for (int i = 0; i < 50; ++i) {
    Backoff b(milliseconds(1000), milliseconds(30000), uniform);
    const int64_t d = b.Next().count();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_GT(hi - lo, 200);  // 50 draws from [500, 1000]
}

TEST(BackoffTest, ResetAfterSuccessStartsOverFromInitial) {
  Backoff b(milliseconds(100), milliseconds(10000), [] { return 0.0; });
  for (int i = 0; i < 6; ++i) b.Next();
  EXPECT_EQ(b.attempt(), 6);
  b.Reset();
  EXPECT_EQ(b.attempt(), 0);
  EXPECT_EQ(b.Next().count(), 50);
  EXPECT_EQ(b.Next().count(), 100);
}

TEST(BackoffTest, ManyAttemptsNeverOverflow) {
  Backoff b(milliseconds(1), milliseconds(30000), [] { return 0.5; });
  for (int i = 0; i < 10000; ++i) b.Next();
  EXPECT_EQ(b.Next().count(), 22500);
}

TEST(BackoffTest, CapBelowInitialIsRaisedToInitial) {
  Backoff b(milliseconds(800), milliseconds(100), [] { return 0.999999; });
  EXPECT_EQ(b.Next().count(), 799);
}

}  // namespace
}  // namespace lockwatch::agent
