#include "agent/metrics/metrics.h"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/metrics/exposition.h"

namespace lockwatch::metrics {
namespace {

using core::NodeRef;
using core::RootClass;
using testing::Exposition;
using testing::ParseExposition;

constexpr int64_t kT0Us = 1'700'000'000'000'000;  // server now() of the fixtures
constexpr double kNow = 1'700'000'000.0;          // agent wall clock of the first poll
constexpr std::chrono::milliseconds kInterval{10'000};

int64_t SecondsBefore(double s) { return kT0Us - static_cast<int64_t>(s * 1e6); }

core::Session MakeSession(int32_t pid, std::string state, std::string datname,
                          std::string wait_event_type = "", std::string wait_event = "") {
  core::Session s;
  s.pid = pid;
  s.state = std::move(state);
  s.datname = std::move(datname);
  s.wait_event_type = std::move(wait_event_type);
  s.wait_event = std::move(wait_event);
  s.backend_start = SecondsBefore(1000);
  s.state_change = SecondsBefore(5);
  s.usename = "alice_secret_user";
  s.application_name = "billing_app_name";
  s.client_addr = "10.1.2.3";
  s.query = "UPDATE accounts SET balance = 42 WHERE id = 7";
  return s;
}

core::Waiter MakeWaiter(int32_t pid, std::string locktype, std::string text, double wait_s) {
  core::Waiter w;
  w.node = NodeRef{pid, ""};
  w.since = SecondsBefore(wait_s);
  w.wait_seconds = wait_s;
  w.target.locktype = std::move(locktype);
  w.target.text = std::move(text);
  return w;
}

core::Edge MakeEdge(int32_t waiter, int32_t blocker) {
  core::Edge e;
  e.waiter = NodeRef{waiter, ""};
  e.blocker = NodeRef{blocker, ""};
  return e;
}

// A chain: 102 -> 101 -> 100 (idle in transaction for 120 s) in database "shop", plus unrelated sessions,
// lockwatch's own backend (99) and two cycles of which one has a hard edge.
struct Fixture {
  core::Snapshot snapshot;
  core::Report report;
};

Fixture ChainFixture() {
  Fixture f;
  f.snapshot.server_version_num = 150018;
  f.snapshot.captured_at_us = kT0Us;
  f.snapshot.own_pid = 99;
  f.snapshot.locks_read = true;
  auto& ss = f.snapshot.sessions;
  ss.push_back(MakeSession(99, "active", "shop"));
  ss.push_back(MakeSession(100, "idle in transaction", "shop", "Client", "ClientRead"));
  ss.back().state_change = SecondsBefore(120);
  ss.push_back(MakeSession(101, "active", "shop", "Lock", "relation"));
  ss.push_back(MakeSession(102, "active", "shop", "Lock", "transactionid"));
  ss.push_back(MakeSession(103, "active", "billing"));
  ss.push_back(MakeSession(104, "idle", "billing", "Client", "ClientRead"));
  ss.push_back(MakeSession(105, "", "", "Activity", "AutoVacuumMain"));
  ss.push_back(MakeSession(106, "active", "billing", "LWLock", "WALWrite"));

  auto& r = f.report;
  r.edges = {MakeEdge(101, 100), MakeEdge(102, 101)};
  r.edges[1].kind = core::EdgeKind::kHard;
  core::Root root;
  root.node = NodeRef{100, ""};
  root.blocked_sessions = 2;
  root.direct_blocked = 1;
  root.depth = 2;
  root.max_wait_seconds = 30;
  root.classification = RootClass::kIdleInTransaction;
  r.roots = {root};
  r.waiters = {MakeWaiter(101, "relation", "relation public.accounts", 30),
               MakeWaiter(102, "transactionid", "transaction 1234", 10)};
  r.blocked_sessions = 2;
  r.max_depth = 2;
  r.max_wait_seconds = 30;
  r.cycles = {core::Cycle{{201, 202}, true}, core::Cycle{{301, 302}, false}};
  return f;
}

PollCost Cost(double client_s = 0.004) {
  PollCost c;
  c.client_seconds = client_s;
  c.server_seconds = 0.002;
  c.bytes_received = 2048;
  c.locks_read = true;
  return c;
}

ProcessStats FakeProcess() {
  ProcessStats p;
  p.cpu_seconds = 1.5;
  p.resident_memory_bytes = 8 << 20;
  p.virtual_memory_bytes = 64 << 20;
  p.start_time_seconds = kNow - 3600;
  p.open_fds = 12;
  p.max_fds = 1024;
  return p;
}

std::unique_ptr<AgentMetrics> NewMetrics() {
  auto m = std::make_unique<AgentMetrics>(BuildInfo{"0.1.0", "abc123"}, [] { return FakeProcess(); });
  m->AddTarget("db1", kInterval);
  return m;
}

Exposition RenderParsed(const AgentMetrics& m, double now_s) { return ParseExposition(m.Render(now_s)); }

struct SeriesCase {
  std::string key;
  double value;
};

TEST(AgentMetricsTest, RendersEverySeriesOfAChainFixture) {
  auto m = NewMetrics();
  Fixture f = ChainFixture();
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  Exposition e = RenderParsed(*m, kNow + 1);

  const std::vector<SeriesCase> cases = {
      {R"(lockwatch_build_info{version="0.1.0",revision="abc123"})", 1},
      {R"(lockwatch_up{target="db1"})", 1},
      {R"(lockwatch_postgres_info{target="db1",server_version="15.18"})", 1},
      {R"(lockwatch_polls_total{target="db1"})", 1},
      {R"(lockwatch_poll_errors_total{target="db1",stage="connect"})", 0},
      {R"(lockwatch_poll_errors_total{target="db1",stage="permission"})", 0},
      {R"(lockwatch_last_poll_success_timestamp_seconds{target="db1"})", kNow},
      {R"(lockwatch_last_poll_server_seconds{target="db1"})", 0.002},
      {R"(lockwatch_last_poll_received_bytes{target="db1"})", 2048},
      {R"(lockwatch_poll_received_bytes_total{target="db1"})", 2048},
      {R"(lockwatch_pg_locks_read_total{target="db1"})", 1},
      {R"(lockwatch_poll_duration_seconds_count{target="db1"})", 1},
      {R"(lockwatch_poll_duration_seconds_sum{target="db1"})", 0.004},
      // 99 is lockwatch's own backend: not counted.
      {R"(lockwatch_sessions{target="db1",state="active"})", 4},
      {R"(lockwatch_sessions{target="db1",state="idle"})", 1},
      {R"(lockwatch_sessions{target="db1",state="idle in transaction"})", 1},
      {R"m(lockwatch_sessions{target="db1",state="idle in transaction (aborted)"})m", 0},
      {R"(lockwatch_sessions{target="db1",state="fastpath function call"})", 0},
      {R"(lockwatch_sessions{target="db1",state="disabled"})", 0},
      {R"(lockwatch_sessions{target="db1",state="unknown"})", 1},
      {R"(lockwatch_sessions{target="db1",state="other"})", 0},
      {R"(lockwatch_lock_waiting_sessions{target="db1",datname="shop",locktype="relation"})", 1},
      {R"(lockwatch_lock_waiting_sessions{target="db1",datname="shop",locktype="transactionid"})", 1},
      {R"(lockwatch_blocked_sessions{target="db1",datname="shop"})", 2},
      {R"(lockwatch_root_blockers{target="db1",classification="idle_in_transaction"})", 1},
      {R"(lockwatch_root_blockers{target="db1",classification="active"})", 0},
      {R"(lockwatch_root_blockers{target="db1",classification="idle_advisory"})", 0},
      {R"(lockwatch_root_blockers{target="db1",classification="prepared"})", 0},
      {R"(lockwatch_root_blockers{target="db1",classification="other"})", 0},
      {R"(lockwatch_root_blocker_max_blocked_sessions{target="db1"})", 2},
      {R"(lockwatch_blocking_chain_max_depth{target="db1"})", 2},
      {R"(lockwatch_lock_wait_max_seconds{target="db1"})", 30},
      {R"(lockwatch_root_blocker_max_idle_in_transaction_seconds{target="db1"})", 120},
      {R"(lockwatch_deadlock_cycles{target="db1"})", 1},
      {R"(lockwatch_wait_event_sessions{target="db1",wait_event_type="Lock",wait_event="relation"})", 1},
      {R"(lockwatch_wait_event_sessions{target="db1",wait_event_type="Lock",wait_event="transactionid"})", 1},
      {R"(lockwatch_wait_event_sessions{target="db1",wait_event_type="CPU",wait_event="CPU"})", 1},
      {R"(lockwatch_wait_event_sessions{target="db1",wait_event_type="LWLock",wait_event="WALWrite"})", 1},
      {R"(lockwatch_lock_wait_duration_seconds_count{target="db1"})", 0},
      {R"(process_cpu_seconds_total)", 1.5},
      {R"(process_resident_memory_bytes)", 8 << 20},
      {R"(process_virtual_memory_bytes)", 64 << 20},
      {R"(process_start_time_seconds)", kNow - 3600},
      {R"(process_open_fds)", 12},
      {R"(process_max_fds)", 1024},
  };
  for (const auto& c : cases) {
    EXPECT_DOUBLE_EQ(e.Value(c.key), c.value) << c.key;
  }
  // Only active sessions are sampled by wait event: idle ones waiting on ClientRead are not.
  EXPECT_EQ(e.SumWithPrefix(R"(lockwatch_wait_event_sessions{target="db1",)"), 4);
  EXPECT_FALSE(e.Has(
      R"(lockwatch_wait_event_sessions{target="db1",wait_event_type="Client",wait_event="ClientRead"})"));
  EXPECT_EQ(e.WithPrefix(R"(lockwatch_root_blockers{target="db1",)").size(), 5U);
}

TEST(AgentMetricsTest, FamiliesHaveTheRightTypes) {
  auto m = NewMetrics();
  Fixture f = ChainFixture();
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  Exposition e = RenderParsed(*m, kNow);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"lockwatch_up", "gauge"},
      {"lockwatch_build_info", "gauge"},
      {"lockwatch_polls_total", "counter"},
      {"lockwatch_poll_errors_total", "counter"},
      {"lockwatch_pg_locks_read_total", "counter"},
      {"lockwatch_poll_received_bytes_total", "counter"},
      {"lockwatch_poll_duration_seconds", "histogram"},
      {"lockwatch_lock_wait_duration_seconds", "histogram"},
      {"lockwatch_sessions", "gauge"},
      {"lockwatch_deadlock_cycles", "gauge"},
      {"process_cpu_seconds_total", "counter"},
      {"process_open_fds", "gauge"},
  };
  for (const auto& [name, type] : cases) EXPECT_EQ(e.types[name], type) << name;
  for (const auto& [name, type] : e.types) {
    EXPECT_EQ(type == "counter", name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
    EXPECT_TRUE(name.rfind("lockwatch_", 0) == 0 || name.rfind("process_", 0) == 0) << name;
  }
}

TEST(AgentMetricsTest, NoLabelCarriesSessionIdentityOrQueryText) {
  auto m = NewMetrics();
  Fixture f = ChainFixture();
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  std::string text = m->Render(kNow);
  Exposition e = ParseExposition(text);
  ASSERT_FALSE(e.label_names.empty());
  for (const char* forbidden :
       {"pid", "query", "user", "usename", "application", "application_name", "client_addr"}) {
    EXPECT_EQ(e.label_names.count(forbidden), 0U) << forbidden;
  }
  for (const char* value :
       {"alice_secret_user", "billing_app_name", "UPDATE accounts", "10.1.2.3", "101", "102"}) {
    for (const auto& label_value : e.label_values)
      EXPECT_EQ(label_value.find(value), std::string::npos) << value;
  }
  EXPECT_EQ(text.find("alice_secret_user"), std::string::npos);
  EXPECT_EQ(text.find("UPDATE accounts"), std::string::npos);
}

TEST(AgentMetricsTest, BeforeAnyPollOnlyUpCountersAndHistogramsAreExported) {
  auto m = NewMetrics();
  Exposition e = RenderParsed(*m, kNow);
  EXPECT_EQ(e.Value(R"(lockwatch_up{target="db1"})"), 0);
  EXPECT_EQ(e.Value(R"(lockwatch_polls_total{target="db1"})"), 0);
  for (const char* stage : {"connect", "query", "decode", "timeout", "permission", "other"}) {
    EXPECT_EQ(e.Value(std::string(R"(lockwatch_poll_errors_total{target="db1",stage=")") + stage + "\"}"), 0)
        << stage;
  }
  EXPECT_EQ(e.Value(R"(lockwatch_poll_duration_seconds_count{target="db1"})"), 0);
  EXPECT_EQ(e.Value(R"(lockwatch_lock_wait_duration_seconds_count{target="db1"})"), 0);
  for (const char* absent :
       {"lockwatch_sessions{", "lockwatch_root_blockers{", "lockwatch_postgres_info{",
        "lockwatch_last_poll_success_timestamp_seconds{", "lockwatch_deadlock_cycles{"}) {
    EXPECT_TRUE(e.WithPrefix(absent).empty()) << absent;
  }
}

struct StalenessCase {
  const char* name;
  double render_after_s;  // seconds after the poll
  bool fresh;
};

TEST(AgentMetricsTest, ContentionSeriesVanishAfterThreeIntervalsWithoutSuccess) {
  const std::vector<StalenessCase> cases = {
      {"just polled", 0, true},
      {"two intervals", 20, true},
      {"exactly three intervals", 30, true},
      {"just over three intervals", 30.5, false},
      {"an hour", 3600, false},
  };
  const std::vector<std::string> contention = {
      R"(lockwatch_sessions{target="db1",state="active"})",
      R"(lockwatch_lock_waiting_sessions{target="db1",datname="shop",locktype="relation"})",
      R"(lockwatch_blocked_sessions{target="db1",datname="shop"})",
      R"(lockwatch_root_blockers{target="db1",classification="other"})",
      R"(lockwatch_root_blocker_max_blocked_sessions{target="db1"})",
      R"(lockwatch_root_blocker_max_idle_in_transaction_seconds{target="db1"})",
      R"(lockwatch_blocking_chain_max_depth{target="db1"})",
      R"(lockwatch_lock_wait_max_seconds{target="db1"})",
      R"(lockwatch_deadlock_cycles{target="db1"})",
      R"(lockwatch_wait_event_sessions{target="db1",wait_event_type="CPU",wait_event="CPU"})",
  };
  const std::vector<std::string> kept = {
      R"(lockwatch_polls_total{target="db1"})",
      R"(lockwatch_poll_errors_total{target="db1",stage="query"})",
      R"(lockwatch_poll_duration_seconds_count{target="db1"})",
      R"(lockwatch_lock_wait_duration_seconds_count{target="db1"})",
      R"(lockwatch_last_poll_success_timestamp_seconds{target="db1"})",
      R"(lockwatch_postgres_info{target="db1",server_version="15.18"})",
  };
  for (const auto& c : cases) {
    auto m = NewMetrics();
    Fixture f = ChainFixture();
    m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
    // Failed polls after the success do not refresh anything.
    m->RecordPollError("db1", "query", kNow + 10);
    m->RecordPollError("db1", "query", kNow + 20);
    Exposition e = RenderParsed(*m, kNow + c.render_after_s);
    EXPECT_EQ(e.Value(R"(lockwatch_up{target="db1"})"), c.fresh ? 1 : 0) << c.name;
    for (const auto& key : contention) EXPECT_EQ(e.Has(key), c.fresh) << c.name << ": " << key;
    for (const auto& key : kept) EXPECT_TRUE(e.Has(key)) << c.name << ": " << key;
    EXPECT_EQ(e.Value(R"(lockwatch_last_poll_success_timestamp_seconds{target="db1"})"), kNow) << c.name;
  }
}

TEST(AgentMetricsTest, ContentionSeriesComeBackAfterANewSuccessfulPoll) {
  auto m = NewMetrics();
  Fixture f = ChainFixture();
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  ASSERT_FALSE(RenderParsed(*m, kNow + 100).Has(R"(lockwatch_deadlock_cycles{target="db1"})"));
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow + 110);
  Exposition e = RenderParsed(*m, kNow + 111);
  EXPECT_EQ(e.Value(R"(lockwatch_up{target="db1"})"), 1);
  EXPECT_EQ(e.Value(R"(lockwatch_deadlock_cycles{target="db1"})"), 1);
  EXPECT_EQ(e.Value(R"(lockwatch_last_poll_success_timestamp_seconds{target="db1"})"), kNow + 110);
}

TEST(AgentMetricsTest, UpFollowsTheConnectionState) {
  struct Case {
    const char* name;
    std::function<void(AgentMetrics&)> after_poll;
    double up;
  };
  const std::vector<Case> cases = {
      {"connected", [](AgentMetrics&) {}, 1},
      {"SetUp(false)", [](AgentMetrics& m) { m.SetUp("db1", false); }, 0},
      {"SetUp(false) then SetUp(true)",
       [](AgentMetrics& m) {
         m.SetUp("db1", false);
         m.SetUp("db1", true);
       },
       1},
      {"connect failure", [](AgentMetrics& m) { m.RecordPollError("db1", "connect", kNow + 1); }, 0},
      {"query failure keeps the connection",
       [](AgentMetrics& m) { m.RecordPollError("db1", "query", kNow + 1); }, 1},
  };
  for (const auto& c : cases) {
    auto m = NewMetrics();
    Fixture f = ChainFixture();
    m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
    c.after_poll(*m);
    EXPECT_EQ(RenderParsed(*m, kNow + 2).Value(R"(lockwatch_up{target="db1"})"), c.up) << c.name;
  }
}

// Waits are identified by (pid, backend_start, lock target, since); one that disappears has ended.
TEST(AgentMetricsTest, LockWaitDurationObservesWaitsThatEnded) {
  struct Case {
    const char* name;
    std::function<void(Fixture&)> second_poll;  // edits fixture 1 into fixture 2
    uint64_t ended;
    double sum;
  };
  auto drop_101 = [](Fixture& f) {
    f.report.waiters.erase(f.report.waiters.begin());
    f.report.waiters[0].wait_seconds = 20;  // 102 still waits, 10 s later
  };
  const std::vector<Case> cases = {
      {"both still waiting",
       [](Fixture& f) {
         for (auto& w : f.report.waiters) w.wait_seconds += 10;
       },
       0, 0},
      {"101 got its lock", drop_101, 1, 30},
      {"nobody waits any more", [](Fixture& f) { f.report.waiters.clear(); }, 2, 40},
      {"pid 101 reused by a new backend that waits too",
       [](Fixture& f) {
         f.snapshot.sessions[2].backend_start = SecondsBefore(1);
         f.report.waiters[0].wait_seconds = 1;
         f.report.waiters[0].since = SecondsBefore(1);
       },
       1, 30},
      {"101 now waits on another lock",
       [](Fixture& f) {
         f.report.waiters[0].target.text = "relation public.orders";
         f.report.waiters[0].since = SecondsBefore(2);
       },
       1, 30},
  };
  for (const auto& c : cases) {
    auto m = NewMetrics();
    Fixture f = ChainFixture();
    m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
    c.second_poll(f);
    m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow + 10);
    Exposition e = RenderParsed(*m, kNow + 10);
    EXPECT_EQ(e.Value(R"(lockwatch_lock_wait_duration_seconds_count{target="db1"})"), c.ended) << c.name;
    EXPECT_DOUBLE_EQ(e.Value(R"(lockwatch_lock_wait_duration_seconds_sum{target="db1"})"), c.sum) << c.name;
  }
}

TEST(AgentMetricsTest, LockWaitDurationBucketsPlaceAnEndedWait) {
  auto m = NewMetrics();
  Fixture f = ChainFixture();
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  f.report.waiters.erase(f.report.waiters.begin());  // 101 (30 s) ended
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow + 10);
  Exposition e = RenderParsed(*m, kNow + 10);
  const std::vector<SeriesCase> cases = {
      {R"(lockwatch_lock_wait_duration_seconds_bucket{target="db1",le="10"})", 0},
      {R"(lockwatch_lock_wait_duration_seconds_bucket{target="db1",le="30"})", 1},
      {R"(lockwatch_lock_wait_duration_seconds_bucket{target="db1",le="60"})", 1},
      {R"(lockwatch_lock_wait_duration_seconds_bucket{target="db1",le="+Inf"})", 1},
  };
  for (const auto& c : cases) EXPECT_EQ(e.Value(c.key), c.value) << c.key;
}

TEST(AgentMetricsTest, PollDurationHistogramIsCumulative) {
  auto m = NewMetrics();
  Fixture f = ChainFixture();
  double t = kNow;
  for (double d : {0.0005, 0.003, 0.2, 20.0}) m->RecordPoll("db1", f.snapshot, f.report, Cost(d), t += 1);
  Exposition e = RenderParsed(*m, t);
  const std::vector<SeriesCase> cases = {
      {R"(lockwatch_poll_duration_seconds_bucket{target="db1",le="0.001"})", 1},
      {R"(lockwatch_poll_duration_seconds_bucket{target="db1",le="0.0025"})", 1},
      {R"(lockwatch_poll_duration_seconds_bucket{target="db1",le="0.005"})", 2},
      {R"(lockwatch_poll_duration_seconds_bucket{target="db1",le="0.1"})", 2},
      {R"(lockwatch_poll_duration_seconds_bucket{target="db1",le="0.25"})", 3},
      {R"(lockwatch_poll_duration_seconds_bucket{target="db1",le="10"})", 3},
      {R"(lockwatch_poll_duration_seconds_bucket{target="db1",le="+Inf"})", 4},
      {R"(lockwatch_poll_duration_seconds_count{target="db1"})", 4},
  };
  for (const auto& c : cases) EXPECT_EQ(e.Value(c.key), c.value) << c.key;
  EXPECT_DOUBLE_EQ(e.Value(R"(lockwatch_poll_duration_seconds_sum{target="db1"})"), 20.2035);
  EXPECT_EQ(e.WithPrefix(R"(lockwatch_poll_duration_seconds_bucket{target="db1",)").size(), 14U);
}

TEST(AgentMetricsTest, CountersOnlyGrow) {
  auto m = NewMetrics();
  Fixture f = ChainFixture();
  struct Step {
    const char* stage;  // nullptr: a successful poll
    double polls;
    double query_errors;
    double other_errors;
  };
  const std::vector<Step> steps = {
      {nullptr, 1, 0, 0}, {"query", 2, 1, 0},         {"query", 3, 2, 0},
      {nullptr, 4, 2, 0}, {"no-such-stage", 5, 2, 1}, {"connect", 6, 2, 1},
  };
  double t = kNow;
  double previous_polls = 0;
  for (const auto& s : steps) {
    t += 10;
    if (s.stage == nullptr) {
      m->RecordPoll("db1", f.snapshot, f.report, Cost(), t);
    } else {
      m->RecordPollError("db1", s.stage, t);
    }
    Exposition e = RenderParsed(*m, t);
    double polls = e.Value(R"(lockwatch_polls_total{target="db1"})");
    EXPECT_EQ(polls, s.polls);
    EXPECT_GE(polls, previous_polls);
    previous_polls = polls;
    EXPECT_EQ(e.Value(R"(lockwatch_poll_errors_total{target="db1",stage="query"})"), s.query_errors);
    EXPECT_EQ(e.Value(R"(lockwatch_poll_errors_total{target="db1",stage="other"})"), s.other_errors);
    EXPECT_TRUE(e.WithPrefix(R"(lockwatch_poll_errors_total{target="db1",stage="no-such-stage")").empty());
  }
}

TEST(AgentMetricsTest, DatnamesBeyondTheCapFoldIntoOther) {
  auto m = NewMetrics();
  Fixture f;
  f.snapshot.server_version_num = 160002;
  f.snapshot.captured_at_us = kT0Us;
  constexpr int kDatabases = 70;
  int32_t pid = 1000;
  double total = 0;
  for (int d = 0; d < kDatabases; ++d) {
    // Database d has 1 waiter, except the first three, which are the busiest and must keep their name.
    int waiters = d < 3 ? 5 : 1;
    for (int i = 0; i < waiters; ++i, ++pid) {
      f.snapshot.sessions.push_back(MakeSession(pid, "active", "db" + std::to_string(d), "Lock", "tuple"));
      f.report.waiters.push_back(MakeWaiter(pid, "tuple", "tuple", 1));
      f.report.edges.push_back(MakeEdge(pid, 1));
      total += 1;
    }
  }
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  Exposition e = RenderParsed(*m, kNow);
  auto waiting = e.WithPrefix(R"(lockwatch_lock_waiting_sessions{target="db1",)");
  auto blocked = e.WithPrefix(R"(lockwatch_blocked_sessions{target="db1",)");
  EXPECT_EQ(waiting.size(), kMaxDatnamesPerTarget);
  EXPECT_EQ(blocked.size(), kMaxDatnamesPerTarget);
  EXPECT_EQ(e.SumWithPrefix(R"(lockwatch_lock_waiting_sessions{target="db1",)"), total);
  EXPECT_EQ(e.SumWithPrefix(R"(lockwatch_blocked_sessions{target="db1",)"), total);
  // 70 databases, 49 keep their name: 21 single-waiter databases are folded.
  EXPECT_EQ(e.Value(R"(lockwatch_blocked_sessions{target="db1",datname="other"})"), kDatabases - 49);
  for (const char* busiest : {"db0", "db1", "db2"}) {
    EXPECT_EQ(e.Value(std::string(R"(lockwatch_blocked_sessions{target="db1",datname=")") + busiest + "\"}"),
              5)
        << busiest;
  }
  EXPECT_EQ(e.Value(R"(lockwatch_postgres_info{target="db1",server_version="16.2"})"), 1);
}

TEST(AgentMetricsTest, WaitEventSeriesAreCapped) {
  auto m = NewMetrics();
  Fixture f;
  f.snapshot.captured_at_us = kT0Us;
  constexpr int kEvents = 260;
  for (int i = 0; i < kEvents; ++i) {
    f.snapshot.sessions.push_back(MakeSession(2000 + i, "active", "shop", "IO", "Event" + std::to_string(i)));
  }
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  Exposition e = RenderParsed(*m, kNow);
  const std::string prefix = R"(lockwatch_wait_event_sessions{target="db1",)";
  EXPECT_EQ(e.WithPrefix(prefix).size(), kMaxWaitEventSeriesPerTarget);
  EXPECT_EQ(e.SumWithPrefix(prefix), kEvents);
  EXPECT_EQ(
      e.Value(R"(lockwatch_wait_event_sessions{target="db1",wait_event_type="other",wait_event="other"})"),
      kEvents - (kMaxWaitEventSeriesPerTarget - 1));
}

TEST(AgentMetricsTest, UnknownLockTypesAndStatesAreFolded) {
  auto m = NewMetrics();
  Fixture f;
  f.snapshot.captured_at_us = kT0Us;
  f.snapshot.sessions.push_back(MakeSession(1, "some future state", "shop"));
  f.snapshot.sessions.push_back(MakeSession(2, "active", ""));
  f.report.waiters.push_back(MakeWaiter(1, "futurelock", "x", 1));
  f.report.waiters.push_back(MakeWaiter(2, "advisory", "y", 1));
  f.report.waiters.push_back(MakeWaiter(3, "relation", "z", 1));  // not in pg_stat_activity (race)
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  Exposition e = RenderParsed(*m, kNow);
  const std::vector<SeriesCase> cases = {
      {R"(lockwatch_sessions{target="db1",state="other"})", 1},
      {R"(lockwatch_lock_waiting_sessions{target="db1",datname="shop",locktype="other"})", 1},
      {R"(lockwatch_lock_waiting_sessions{target="db1",datname="unknown",locktype="advisory"})", 1},
      {R"(lockwatch_lock_waiting_sessions{target="db1",datname="unknown",locktype="relation"})", 1},
  };
  for (const auto& c : cases) EXPECT_EQ(e.Value(c.key), c.value) << c.key;
}

TEST(AgentMetricsTest, ServerVersionLabelFollowsTheNumberingScheme) {
  const std::vector<std::pair<int, std::string>> cases = {
      {150018, "15.18"}, {170000, "17.0"}, {100023, "10.23"}, {90624, "9.6.24"}};
  for (const auto& [num, text] : cases) {
    auto m = NewMetrics();
    Fixture f = ChainFixture();
    f.snapshot.server_version_num = num;
    m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
    EXPECT_TRUE(
        RenderParsed(*m, kNow).Has(R"(lockwatch_postgres_info{target="db1",server_version=")" + text + "\"}"))
        << num;
  }
}

TEST(AgentMetricsTest, RootBlockerFiguresTakeTheMaximumOverRoots) {
  auto m = NewMetrics();
  Fixture f = ChainFixture();
  f.snapshot.sessions.push_back(MakeSession(110, "idle in transaction (aborted)", "shop"));
  f.snapshot.sessions.back().state_change = SecondsBefore(300);
  f.snapshot.sessions.push_back(MakeSession(111, "active", "shop"));
  f.snapshot.sessions.back().state_change = SecondsBefore(900);  // active: not idle in transaction
  auto add_root = [&f](NodeRef node, int blocked, RootClass cls) {
    core::Root r;
    r.node = std::move(node);
    r.blocked_sessions = blocked;
    r.classification = cls;
    f.report.roots.push_back(r);
  };
  add_root(NodeRef{110, ""}, 1, RootClass::kIdleInTransaction);
  add_root(NodeRef{111, ""}, 7, RootClass::kActive);
  add_root(NodeRef{0, "gid-1"}, 3, RootClass::kPrepared);
  add_root(NodeRef{0, "gid-2"}, 1, RootClass::kPrepared);
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  Exposition e = RenderParsed(*m, kNow);
  const std::vector<SeriesCase> cases = {
      {R"(lockwatch_root_blockers{target="db1",classification="idle_in_transaction"})", 2},
      {R"(lockwatch_root_blockers{target="db1",classification="active"})", 1},
      {R"(lockwatch_root_blockers{target="db1",classification="prepared"})", 2},
      {R"(lockwatch_root_blockers{target="db1",classification="idle_advisory"})", 0},
      {R"(lockwatch_root_blocker_max_blocked_sessions{target="db1"})", 7},
      {R"(lockwatch_root_blocker_max_idle_in_transaction_seconds{target="db1"})", 300},
  };
  for (const auto& c : cases) EXPECT_EQ(e.Value(c.key), c.value) << c.key;
}

TEST(AgentMetricsTest, AnEmptyServerExportsZeros) {
  auto m = NewMetrics();
  Fixture f;
  f.snapshot.captured_at_us = kT0Us;
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  Exposition e = RenderParsed(*m, kNow);
  const std::vector<SeriesCase> cases = {
      {R"(lockwatch_root_blockers{target="db1",classification="idle_in_transaction"})", 0},
      {R"(lockwatch_root_blocker_max_blocked_sessions{target="db1"})", 0},
      {R"(lockwatch_root_blocker_max_idle_in_transaction_seconds{target="db1"})", 0},
      {R"(lockwatch_blocking_chain_max_depth{target="db1"})", 0},
      {R"(lockwatch_lock_wait_max_seconds{target="db1"})", 0},
      {R"(lockwatch_deadlock_cycles{target="db1"})", 0},
      {R"(lockwatch_sessions{target="db1",state="active"})", 0},
  };
  for (const auto& c : cases) EXPECT_EQ(e.Value(c.key), c.value) << c.key;
  EXPECT_TRUE(e.WithPrefix(R"(lockwatch_blocked_sessions{)").empty());
}

TEST(AgentMetricsTest, TargetsAreIndependentAndRemovable) {
  auto m = NewMetrics();
  m->AddTarget("db2", kInterval);
  m->AddTarget("db2", kInterval);  // idempotent
  Fixture f = ChainFixture();
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow);
  m->RecordPollError("db2", "connect", kNow);
  // Calls for targets never added (or removed) are ignored.
  m->RecordPoll("ghost", f.snapshot, f.report, Cost(), kNow);
  m->SetUp("ghost", true);
  Exposition e = RenderParsed(*m, kNow);
  EXPECT_EQ(e.Value(R"(lockwatch_up{target="db1"})"), 1);
  EXPECT_EQ(e.Value(R"(lockwatch_up{target="db2"})"), 0);
  EXPECT_EQ(e.Value(R"(lockwatch_poll_errors_total{target="db2",stage="connect"})"), 1);
  EXPECT_EQ(e.Value(R"(lockwatch_poll_errors_total{target="db1",stage="connect"})"), 0);
  EXPECT_TRUE(e.WithPrefix(R"(lockwatch_sessions{target="db2")").empty());
  EXPECT_FALSE(e.Has(R"(lockwatch_up{target="ghost"})"));

  m->RemoveTarget("db1");
  m->RecordPoll("db1", f.snapshot, f.report, Cost(), kNow + 1);
  e = RenderParsed(*m, kNow + 1);
  for (const auto& [key, value] : e.samples) EXPECT_EQ(key.find(R"(target="db1")"), std::string::npos) << key;
  EXPECT_TRUE(e.Has(R"(lockwatch_up{target="db2"})"));
}

TEST(AgentMetricsTest, ProcessMetricsAreOmittedWhenUnavailable) {
  AgentMetrics m(BuildInfo{"v", "r"}, [] { return std::optional<ProcessStats>(); });
  Exposition e = RenderParsed(m, kNow);
  EXPECT_EQ(e.Value(R"(lockwatch_build_info{version="v",revision="r"})"), 1);
  EXPECT_TRUE(e.WithPrefix("process_").empty());
}

TEST(AgentMetricsTest, DefaultConstructorReadsThisProcess) {
  AgentMetrics m(BuildInfo{"v", "r"});
  Exposition e = RenderParsed(m, kNow);
  EXPECT_GT(e.Value("process_resident_memory_bytes"), 0);
  EXPECT_GT(e.Value("process_open_fds"), 0);
}

TEST(AgentMetricsTest, RecordingAndRenderingConcurrentlyLosesNothing) {
  auto m = NewMetrics();
  m->AddTarget("db2", kInterval);
  Fixture f = ChainFixture();
  constexpr int kPolls = 300;
  std::vector<std::thread> threads;
  for (const char* target : {"db1", "db2"}) {
    threads.emplace_back([&m, &f, target] {
      for (int i = 0; i < kPolls; ++i) {
        if (i % 3 == 0) {
          m->RecordPollError(target, "timeout", kNow + i);
        } else {
          m->RecordPoll(target, f.snapshot, f.report, Cost(), kNow + i);
        }
      }
    });
  }
  threads.emplace_back([&m] {
    double previous = 0;
    for (int i = 0; i < 100; ++i) {
      Exposition e = ParseExposition(m->Render(kNow + i));
      double polls = e.Value(R"(lockwatch_polls_total{target="db1"})");
      EXPECT_GE(polls, previous);  // a scrape never sees a counter go back
      previous = polls;
    }
  });
  for (auto& t : threads) t.join();
  Exposition e = RenderParsed(*m, kNow + kPolls);
  for (const char* target : {"db1", "db2"}) {
    std::string t = std::string("{target=\"") + target + "\"}";
    EXPECT_EQ(e.Value("lockwatch_polls_total" + t), kPolls);
    EXPECT_EQ(e.Value("lockwatch_poll_duration_seconds_count" + t), kPolls - kPolls / 3);
  }
}

}  // namespace
}  // namespace lockwatch::metrics
