#include "agent/hooks/dispatcher.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/hooks/http_listener.h"

namespace lockwatch::hooks {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr core::TimestampUs kSec = 1000000;

// What a fake hook does with each event, controlled by the test.
struct FakeHookState {
  std::mutex mu;
  std::condition_variable cv;
  bool gate_open = true;  // deliveries wait while false (bounded by the interrupt and 10 s)
  bool succeed = true;
  int entered = 0;  // deliveries started
  std::vector<std::string> events;

  void SetGate(bool open) {
    {
      std::lock_guard<std::mutex> lock(mu);
      gate_open = open;
    }
    cv.notify_all();
  }
  bool WaitEntered(int n, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return entered >= n; });
  }
  int entered_count() {
    std::lock_guard<std::mutex> lock(mu);
    return entered;
  }
};

class FakeRunner : public HookRunner {
 public:
  explicit FakeRunner(std::shared_ptr<FakeHookState> state) : state_(std::move(state)) {}
  DeliveryResult Deliver(const Event& event, const Interrupt& interrupt) override {
    std::unique_lock<std::mutex> lock(state_->mu);
    ++state_->entered;
    state_->events.push_back(EventKindName(event.kind));
    state_->cv.notify_all();
    const auto until = Clock::now() + milliseconds(10000);
    while (!state_->gate_open && !interrupt.triggered() && Clock::now() < until)
      state_->cv.wait_for(lock, milliseconds(10));
    DeliveryResult r;
    r.ok = state_->succeed && !interrupt.triggered();
    r.attempts = 1;
    return r;
  }

 private:
  std::shared_ptr<FakeHookState> state_;
};

struct Fakes {
  std::map<std::string, std::shared_ptr<FakeHookState>> states;
  std::shared_ptr<FakeHookState> Add(const std::string& name) {
    auto s = std::make_shared<FakeHookState>();
    states[name] = s;
    return s;
  }
  RunnerFactory Factory() {
    return [this](const HookConfig& c, const HookLogger& /*logger*/) -> std::unique_ptr<HookRunner> {
      return std::make_unique<FakeRunner>(states.at(c.name));
    };
  }
};

HookConfig Named(const std::string& name, std::vector<std::string> events = {}) {
  HookConfig c;
  c.name = name;
  c.kind = HookKind::kExec;
  c.exec.argv = {"/bin/true"};
  c.events = std::move(events);
  return c;
}

Event Ev(EventKind kind, core::TimestampUs at = 0, const std::string& incident = "main-1") {
  Event e;
  e.kind = kind;
  e.target = "main";
  e.at = at;
  e.incident_id = incident;
  e.payload = {{"event", EventKindName(kind)}};
  return e;
}

HookStats StatsOf(const HookDispatcher& d, const std::string& name) {
  for (const HookStats& s : d.Stats()) {
    if (s.name == name) return s;
  }
  return HookStats{};
}

bool WaitFor(const std::function<bool()>& done, milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return done();
}

TEST(HookDispatcherTest, SubmitNeverBlocksWhileAHookIsBusyAndCountsDropsWhenItsQueueIsFull) {
  Fakes fakes;
  auto slow = fakes.Add("slow");
  slow->SetGate(false);
  HooksConfig config;
  config.queue_capacity = 3;
  config.hooks = {Named("slow")};
  HookDispatcher dispatcher(config, nullptr, fakes.Factory());

  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kActionPlanned)), 1);
  ASSERT_TRUE(slow->WaitEntered(1, milliseconds(2000)));  // the hook is now stuck on the gate
  int queued = 0;
  const auto start = Clock::now();
  for (int i = 0; i < 10; ++i) queued += dispatcher.Submit(Ev(EventKind::kActionPlanned));
  const auto took = Clock::now() - start;
  // Reaching this line at all shows Submit did not wait for the stuck delivery.
  EXPECT_LT(took, milliseconds(500));
  EXPECT_EQ(queued, 3);
  HookStats s = StatsOf(dispatcher, "slow");
  EXPECT_EQ(s.queued, 3U);
  EXPECT_EQ(s.drops, 7U);
  EXPECT_EQ(s.runs, 0U);

  slow->SetGate(true);
  ASSERT_TRUE(WaitFor([&] { return StatsOf(dispatcher, "slow").runs == 4; }, milliseconds(2000)));
  s = StatsOf(dispatcher, "slow");
  EXPECT_EQ(s.failures, 0U);
  EXPECT_EQ(s.queued, 0U);
  EXPECT_EQ(s.drops, 7U);
}

TEST(HookDispatcherTest, AHangingHookDoesNotDelayAnotherHook) {
  Fakes fakes;
  auto slow = fakes.Add("slow");
  auto fast = fakes.Add("fast");
  slow->SetGate(false);
  HooksConfig config;
  config.hooks = {Named("slow"), Named("fast")};
  HookDispatcher dispatcher(config, nullptr, fakes.Factory());
  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kIncidentOpened)), 2);
  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kIncidentResolved)), 2);
  ASSERT_TRUE(WaitFor([&] { return StatsOf(dispatcher, "fast").runs == 2; }, milliseconds(2000)));
  EXPECT_EQ(StatsOf(dispatcher, "slow").runs, 0U);
  EXPECT_EQ(slow->entered_count(), 1);
  slow->SetGate(true);
}

TEST(HookDispatcherTest, EventFiltersRouteEvents) {
  Fakes fakes;
  auto incidents = fakes.Add("incidents");
  auto everything = fakes.Add("everything");
  HooksConfig config;
  config.hooks = {Named("incidents", {"incident.opened", "incident.resolved"}), Named("everything")};
  HookDispatcher dispatcher(config, nullptr, fakes.Factory());
  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kActionPlanned)), 1);
  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kIncidentOpened)), 2);
  ASSERT_TRUE(WaitFor([&] { return StatsOf(dispatcher, "everything").runs == 2; }, milliseconds(2000)));
  ASSERT_TRUE(WaitFor([&] { return StatsOf(dispatcher, "incidents").runs == 1; }, milliseconds(2000)));
  dispatcher.Stop();
  EXPECT_EQ(incidents->events, std::vector<std::string>{"incident.opened"});
  EXPECT_EQ(everything->events, (std::vector<std::string>{"action.planned", "incident.opened"}));
}

TEST(HookDispatcherTest, IncidentUpdatesAreRateLimitedPerIncident) {
  Fakes fakes;
  auto hook = fakes.Add("h");
  HooksConfig config;
  config.incident_update_min_interval = milliseconds(60000);
  config.hooks = {Named("h")};
  HookDispatcher dispatcher(config, nullptr, fakes.Factory());
  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kIncidentOpened, 0)), 1);
  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kIncidentUpdated, 5 * kSec)), 0);
  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kIncidentUpdated, 30 * kSec)), 0);
  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kIncidentUpdated, 61 * kSec)), 1);
  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kIncidentResolved, 62 * kSec)), 1);
  EXPECT_EQ(dispatcher.updates_suppressed(), 2U);
  dispatcher.Stop(milliseconds(2000));
  EXPECT_EQ(hook->events,
            (std::vector<std::string>{"incident.opened", "incident.updated", "incident.resolved"}));
}

TEST(HookDispatcherTest, FailedDeliveriesAreCounted) {
  Fakes fakes;
  auto hook = fakes.Add("h");
  hook->succeed = false;
  HooksConfig config;
  config.hooks = {Named("h")};
  HookDispatcher dispatcher(config, nullptr, fakes.Factory());
  dispatcher.Submit(Ev(EventKind::kActionFailed));
  dispatcher.Submit(Ev(EventKind::kActionFailed));
  ASSERT_TRUE(WaitFor([&] { return StatsOf(dispatcher, "h").runs == 2; }, milliseconds(2000)));
  EXPECT_EQ(StatsOf(dispatcher, "h").failures, 2U);
}

TEST(HookDispatcherTest, StopDrainsQueuedEventsWithinTheDrainTime) {
  Fakes fakes;
  auto hook = fakes.Add("h");
  HooksConfig config;
  config.hooks = {Named("h")};
  HookDispatcher dispatcher(config, nullptr, fakes.Factory());
  for (int i = 0; i < 5; ++i) dispatcher.Submit(Ev(EventKind::kActionPlanned));
  dispatcher.Stop(milliseconds(2000));
  const HookStats s = StatsOf(dispatcher, "h");
  EXPECT_EQ(s.runs, 5U);
  EXPECT_EQ(s.drops, 0U);
}

TEST(HookDispatcherTest, StopInterruptsAHangingDeliveryAndDropsWhatIsQueued) {
  Fakes fakes;
  auto hook = fakes.Add("h");
  hook->SetGate(false);
  HooksConfig config;
  config.hooks = {Named("h")};
  HookDispatcher dispatcher(config, nullptr, fakes.Factory());
  for (int i = 0; i < 3; ++i) dispatcher.Submit(Ev(EventKind::kActionPlanned));
  ASSERT_TRUE(hook->WaitEntered(1, milliseconds(2000)));
  const auto start = Clock::now();
  dispatcher.Stop(milliseconds(100));
  EXPECT_LT(Clock::now() - start, milliseconds(1500));
  const HookStats s = StatsOf(dispatcher, "h");
  EXPECT_EQ(s.runs, 1U);
  EXPECT_EQ(s.failures, 1U);
  EXPECT_EQ(s.drops, 2U);
  EXPECT_EQ(s.queued, 0U);
  EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kActionPlanned)), 0);  // after Stop: ignored
  dispatcher.Stop();                                               // idempotent
}

// The real runners: an exec hook that hangs and a webhook, side by side. The poll loop's Submit calls stay
// instant, the webhook gets its payload at once, and the hanging hook is killed at its timeout.
TEST(HookDispatcherTest, AHangingExecHookIsTimedOutWithoutDelayingSubmitsOrOtherHooks) {
  testing::HttpListener listener;
  HooksConfig config;
  HookConfig hang;
  hang.name = "hang";
  hang.kind = HookKind::kExec;
  hang.timeout = milliseconds(2000);
  hang.exec.argv = {"/bin/sleep", "60"};
  hang.exec.kill_grace = milliseconds(500);
  HookConfig web;
  web.name = "web";
  web.kind = HookKind::kWebhook;
  web.timeout = milliseconds(2000);
  web.webhook.url = listener.Url("/events");
  web.webhook.retries = 0;
  config.hooks = {hang, web};
  ASSERT_TRUE(ValidateHooksConfig(config).ok());
  HookDispatcher dispatcher(config, nullptr);

  milliseconds slowest_submit{0};
  const auto start = Clock::now();
  for (int poll = 0; poll < 5; ++poll) {
    const auto before = Clock::now();
    EXPECT_EQ(dispatcher.Submit(Ev(EventKind::kActionPlanned, poll * kSec)), 2);
    slowest_submit =
        std::max(slowest_submit, std::chrono::duration_cast<milliseconds>(Clock::now() - before));
    std::this_thread::sleep_for(milliseconds(50));
  }
  // Generous bounds for a loaded machine; a Submit that waited for the hook would take its 2 s timeout.
  EXPECT_LT(slowest_submit, milliseconds(200));
  // Every webhook delivery arrives while the exec hook is still hanging on the first event.
  ASSERT_TRUE(listener.WaitForRequests(5, milliseconds(1500)));
  EXPECT_EQ(StatsOf(dispatcher, "hang").runs, 0U);
  EXPECT_LT(Clock::now() - start, milliseconds(2000));

  ASSERT_TRUE(WaitFor([&] { return StatsOf(dispatcher, "hang").runs >= 1; }, milliseconds(4000)));
  const HookStats s = StatsOf(dispatcher, "hang");
  EXPECT_EQ(s.failures, s.runs);
  EXPECT_EQ(StatsOf(dispatcher, "web").failures, 0U);
  const auto stop_start = Clock::now();
  dispatcher.Stop();
  EXPECT_LT(Clock::now() - stop_start, milliseconds(2500));
  EXPECT_GE(StatsOf(dispatcher, "hang").drops, 1U);  // the events still queued behind the hanging hook
}

}  // namespace
}  // namespace lockwatch::hooks
