// End-to-end tests of `lockwatch run`: the real binary against a real PostgreSQL 15 and a real Prometheus.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/e2e/e2e_harness.h"

namespace lockwatch::e2e {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kReaders = 28;  // + the holder and the ALTER TABLE: a pile-up of 30 sessions

int CountLockwatchBackends(const std::string& dsn) {
  PgSession s(dsn);
  if (!s.ok()) return -1;
  std::optional<std::string> n =
      s.Exec("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lockwatch'");
  return n ? std::stoi(*n) : -1;
}

int OpenFds(int pid) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// A pile-up on one table: an idle-in-transaction row holder, an ALTER TABLE queued behind it and kReaders
// SELECTs queued behind the ALTER. Released (holder rolls back) on Clear() or destruction.
class PileUp {
 public:
  explicit PileUp(const std::string& dsn) : dsn_(dsn), table_("lw_e2e_pile_" + std::to_string(getpid())) {
    PgSession setup(dsn);
    EXPECT_TRUE(setup.ok()) << setup.error();
    setup.Exec("DROP TABLE IF EXISTS " + table_);
    setup.Exec("CREATE TABLE " + table_ + " (id int PRIMARY KEY, v int)");
    setup.Exec("INSERT INTO " + table_ + " SELECT g, 0 FROM generate_series(1, 10) g");
    holder_ = std::make_unique<PgSession>(dsn);
    holder_->Exec("BEGIN");
    holder_->Exec("UPDATE " + table_ + " SET v = v + 1 WHERE id = 1");
    alter_ = std::make_unique<PgSession>(dsn);
    alter_->Send("ALTER TABLE " + table_ + " ADD COLUMN extra int");
    EXPECT_TRUE(Eventually([&] { return Waiting() == 1; }, milliseconds(10000)));
    for (int i = 0; i < kReaders; ++i) {
      readers_.push_back(std::make_unique<PgSession>(dsn));
      readers_.back()->Send("SELECT count(*) FROM " + table_);
    }
    EXPECT_TRUE(Eventually([&] { return Waiting() == 1 + kReaders; }, milliseconds(20000)));
  }
  ~PileUp() { Clear(); }

  int Waiting() const {
    PgSession s(dsn_);
    std::optional<std::string> n =
        s.Exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%" +
               table_ + "%'");
    return n ? std::stoi(*n) : -1;
  }

  void Clear() {
    if (!holder_) return;
    holder_->Exec("ROLLBACK");
    EXPECT_TRUE(alter_->Finish());
    for (auto& r : readers_) EXPECT_TRUE(r->Finish());
    readers_.clear();
    alter_.reset();
    holder_.reset();
    PgSession s(dsn_);
    s.Exec("DROP TABLE IF EXISTS " + table_);
  }

 private:
  std::string dsn_;
  std::string table_;
  std::unique_ptr<PgSession> holder_;
  std::unique_ptr<PgSession> alter_;
  std::vector<std::unique_ptr<PgSession>> readers_;
};

double Avg(const std::string& metrics, const std::string& base) {
  const std::optional<double> sum = SeriesValue(metrics, base + "_sum{target=\"default\"}");
  const std::optional<double> count = SeriesValue(metrics, base + "_count{target=\"default\"}");
  return sum && count && *count > 0 ? *sum / *count : -1;
}

TEST(AgentE2eTest, PileUpIsSeenByPrometheusAndClears) {
  const std::string dsn = TestDsn();
  ASSERT_FALSE(dsn.empty());
  TempDir dir;
  Agent agent(dir.path(), {"--dsn", dsn, "--listen", "127.0.0.1:0", "--interval", "1s"});
  ASSERT_NE(agent.port(), 0) << agent.Log();
  Prometheus prometheus(dir.path(), agent.port());
  ASSERT_TRUE(prometheus.ready()) << prometheus.Log();

  ASSERT_TRUE(
      Eventually([&] { return prometheus.Query("lockwatch_up{target=\"default\"}") == 1.0; }, seconds(30)))
      << agent.Log() << prometheus.Log();
  // Steady state cost, as the agent measures itself.
  ASSERT_TRUE(Eventually([&] { return agent.Series("lockwatch_polls_total{target=\"default\"}") >= 3.0; },
                         seconds(10)));
  const std::string idle_metrics = agent.Metrics();
  const double steady_poll = Avg(idle_metrics, "lockwatch_poll_duration_seconds");
  const double steady_rss = SeriesValue(idle_metrics, "process_resident_memory_bytes").value_or(-1);

  {
    PileUp pile(dsn);
    const double expected_blocked = 1 + kReaders;
    EXPECT_TRUE(Eventually(
        [&] {
          return prometheus.Query("sum(lockwatch_blocked_sessions{target=\"default\"})") ==
                     expected_blocked &&
                 prometheus.Query(
                     "lockwatch_root_blockers{target=\"default\",classification=\"idle_in_transaction\"}") ==
                     1.0;
        },
        seconds(30)))
        << "blocked=" << prometheus.Query("sum(lockwatch_blocked_sessions{target=\"default\"})").value_or(-1)
        << "\n"
        << agent.Metrics();

    // Self-safety: one lockwatch connection whatever the pile-up.
    EXPECT_EQ(CountLockwatchBackends(dsn), 1);

    // promtool lints a real scrape taken during the pile-up.
    const std::string scrape = agent.Metrics();
    ASSERT_FALSE(scrape.empty());
    WriteFile(dir.File("scrape.txt"), scrape);
    FILE* p = popen(("/usr/bin/promtool check metrics < " + dir.File("scrape.txt") + " 2>&1").c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string promtool_out;
    char buf[512];
    size_t n = 0;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) promtool_out.append(buf, n);
    EXPECT_EQ(pclose(p), 0) << promtool_out;

    // Let a few polls run during the pile-up, then measure them alone (histogram deltas).
    const std::string pile_start = agent.Metrics();
    std::this_thread::sleep_for(seconds(3));
    const std::string pile_metrics = agent.Metrics();
    const auto series = [](const std::string& m, const std::string& s) {
      return SeriesValue(m, s).value_or(0);
    };
    const std::string sum = "lockwatch_poll_duration_seconds_sum{target=\"default\"}";
    const std::string count = "lockwatch_poll_duration_seconds_count{target=\"default\"}";
    const double pile_polls = series(pile_metrics, count) - series(pile_start, count);
    const double pile_poll =
        pile_polls > 0 ? (series(pile_metrics, sum) - series(pile_start, sum)) / pile_polls : -1;
    const double pile_server = series(pile_metrics, "lockwatch_last_poll_server_seconds{target=\"default\"}");
    const double pile_bytes = series(pile_metrics, "lockwatch_last_poll_received_bytes{target=\"default\"}");
    const double pile_rss = series(pile_metrics, "process_resident_memory_bytes");
    EXPECT_GE(pile_polls, 2);
    std::printf(
        "[ MEASURED ] steady: poll avg %.4f s, rss %.1f MiB; pile-up of %d sessions: poll avg %.4f s over "
        "%.0f "
        "polls, last poll server time %.4f s, %.0f bytes received, rss %.1f MiB\n",
        steady_poll, steady_rss / 1048576.0, kReaders + 2, pile_poll, pile_polls, pile_server, pile_bytes,
        pile_rss / 1048576.0);
    RecordProperty("steady_poll_avg_seconds", std::to_string(steady_poll));
    RecordProperty("pileup_rss_bytes", std::to_string(pile_rss));
    EXPECT_GT(pile_rss, 0);
  }

  EXPECT_TRUE(Eventually(
      [&] {
        return prometheus.Query("sum(lockwatch_blocked_sessions{target=\"default\"}) or vector(0)") == 0.0 &&
               prometheus.Query(
                   "lockwatch_root_blockers{target=\"default\",classification=\"idle_in_transaction\"}") ==
                   0.0 &&
               prometheus.Query("lockwatch_up{target=\"default\"}") == 1.0;
      },
      seconds(30)))
      << agent.Metrics();
  EXPECT_TRUE(agent.process().Alive());
}

TEST(AgentE2eTest, SurvivesPostgresRestartWithoutLeakingConnections) {
  OwnCluster cluster;
  ASSERT_TRUE(cluster.started());
  TempDir dir;
  // Trust authentication ignores the password from password_file; it must still never be logged.
  WriteFile(dir.File("secret"), "s3cretpw\n");
  WriteFile(dir.File("lockwatch.yaml"),
            "interval: 500ms\nmax_backoff: 2s\ntargets:\n  - name: restarted\n    dsn: '" + cluster.dsn() +
                "'\n    password_file: " + dir.File("secret") + "\n");
  Agent agent(dir.path(), {"--config", dir.File("lockwatch.yaml"), "--listen", "127.0.0.1:0"});
  ASSERT_NE(agent.port(), 0) << agent.Log();
  const std::string up = "lockwatch_up{target=\"restarted\"}";
  ASSERT_TRUE(Eventually([&] { return agent.Series(up) == 1.0; }, seconds(20))) << agent.Log();

  const int fds_before = OpenFds(agent.process().pid());

  ASSERT_TRUE(cluster.Stop());
  EXPECT_TRUE(Eventually([&] { return agent.Series(up) == 0.0; }, seconds(20))) << agent.Log();
  // Several failed reconnects, none of which may leave a socket behind.
  EXPECT_TRUE(Eventually([&] { return agent.Log().find("attempt=3 ") != std::string::npos; }, seconds(15)))
      << agent.Log();
  EXPECT_TRUE(agent.process().Alive());
  ASSERT_TRUE(cluster.Start());
  EXPECT_TRUE(Eventually([&] { return agent.Series(up) == 1.0; }, seconds(30))) << agent.Log();
  EXPECT_TRUE(agent.process().Alive());
  std::this_thread::sleep_for(seconds(2));
  EXPECT_EQ(CountLockwatchBackends(cluster.dsn()), 1);
  // Same descriptors as before the outage (one database socket; HTTP sockets may come and go by one or two).
  const int fds_after = OpenFds(agent.process().pid());
  EXPECT_LE(fds_after, fds_before + 2) << "before " << fds_before << ", after " << fds_after;
  const std::string log = agent.Log();
  EXPECT_NE(log.find("connection to target lost"), std::string::npos) << log;
  EXPECT_NE(log.find("retry_in_ms="), std::string::npos) << log;
  EXPECT_EQ(log.find("s3cretpw"), std::string::npos) << log;

  agent.process().Signal(SIGTERM);
  EXPECT_EQ(agent.process().WaitExit(seconds(2)), 0);
}

TEST(AgentE2eTest, UnreachableServerKeepsServingAndRetriesWithBackoff) {
  TempDir dir;
  const int dead_port = FreePort();
  Agent agent(dir.path(), {"--dsn", "host=127.0.0.1 port=" + std::to_string(dead_port) + " dbname=x",
                           "--listen", "127.0.0.1:0"});
  ASSERT_NE(agent.port(), 0) << agent.Log();
  std::string body;
  EXPECT_TRUE(
      Eventually([&] { return agent.Series("lockwatch_up{target=\"default\"}") == 0.0; }, seconds(10)));
  EXPECT_TRUE(Eventually([&] { return HttpGet(agent.Url("/readyz"), &body) == 200; }, seconds(10)));
  std::this_thread::sleep_for(seconds(3));
  EXPECT_EQ(HttpGet(agent.Url("/healthz"), &body), 200);
  EXPECT_TRUE(agent.process().Alive());
  EXPECT_EQ(agent.Series("lockwatch_up{target=\"default\"}"), 0.0);
  const std::string log = agent.Log();
  // Several attempts, each with its (growing) backoff delay.
  EXPECT_NE(log.find("attempt=1 "), std::string::npos) << log;
  EXPECT_NE(log.find("attempt=3 "), std::string::npos) << log;
  EXPECT_NE(log.find("retry_in_ms="), std::string::npos) << log;
  agent.process().Signal(SIGINT);
  EXPECT_EQ(agent.process().WaitExit(seconds(2)), 0);
}

struct BadConfigCase {
  const char* yaml;
  const char* position;
  const char* fragment;
};

TEST(AgentE2eTest, BadConfigFileExitsNonZeroNamingLineAndColumn) {
  const BadConfigCase cases[] = {
      {"listen: ':9817'\ninterval: fast\n",
       ":2:11: ", "expected a duration like 500ms, 2s or 1m, got \"fast\""},
      {"targets:\n  - name: a\n    dsn: 'host=/tmp password=s3cretpw bogus=1'\n", ":3:10: ", "invalid dsn"},
      {"targets:\n  - name: a\n  - name: a\n", ":3:11: ", "duplicate target name"},
      {"session:\n  lock_timout: 1s\n", ":2:3: ", "unknown key \"lock_timout\""},
  };
  for (const BadConfigCase& c : cases) {
    TempDir dir;
    const std::string path = dir.File("bad.yaml");
    WriteFile(path, c.yaml);
    Process p(LockwatchBinary(), {"run", "--config", path, "--listen", "127.0.0.1:0"}, dir.File("out.log"));
    const std::optional<int> code = p.WaitExit(seconds(10));
    ASSERT_TRUE(code.has_value()) << c.yaml;
    EXPECT_NE(*code, 0) << c.yaml;
    const std::string out = p.Log();
    EXPECT_NE(out.find(path + c.position), std::string::npos) << out;
    EXPECT_NE(out.find(c.fragment), std::string::npos) << out;
    EXPECT_EQ(out.find("s3cretpw"), std::string::npos) << out;
  }
}

TEST(AgentE2eTest, SigtermExitsZeroWithinTwoSecondsWithJsonLogsAndNoPassword) {
  const std::string dsn = TestDsn();
  ASSERT_FALSE(dsn.empty());
  TempDir dir;
  // Trust authentication ignores the password; it must still never reach the logs.
  Agent agent(dir.path(),
              {"--dsn", dsn + " password=s3cretpw", "--listen", "127.0.0.1:0", "--log-format", "json"});
  ASSERT_NE(agent.port(), 0) << agent.Log();
  std::string body;
  ASSERT_TRUE(Eventually([&] { return HttpGet(agent.Url("/readyz"), &body) == 200; }, seconds(10)))
      << agent.Log();
  ASSERT_TRUE(
      Eventually([&] { return agent.Series("lockwatch_up{target=\"default\"}") == 1.0; }, seconds(10)));
  const Clock::time_point start = Clock::now();
  agent.process().Signal(SIGTERM);
  const std::optional<int> code = agent.process().WaitExit(milliseconds(2000));
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  EXPECT_EQ(code, 0) << agent.Log();
  const std::string log = agent.Log();
  EXPECT_EQ(log.find("s3cretpw"), std::string::npos) << log;
  std::istringstream lines(log);
  std::string line;
  int parsed = 0;
  while (std::getline(lines, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not a JSON line: " << line;
    EXPECT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg")) << line;
    ++parsed;
  }
  EXPECT_GE(parsed, 3);
  EXPECT_NE(log.find("\"msg\":\"stopped\""), std::string::npos) << log;
}

TEST(AgentE2eTest, SighupReloadsGoodConfigAndRejectsBadOne) {
  const std::string dsn = TestDsn();
  ASSERT_FALSE(dsn.empty());
  TempDir dir;
  const std::string path = dir.File("lockwatch.yaml");
  WriteFile(path, "listen: 127.0.0.1:0\ntargets:\n  - name: first\n    dsn: '" + dsn + "'\n");
  Agent agent(dir.path(), {"--config", path});
  ASSERT_NE(agent.port(), 0) << agent.Log();
  ASSERT_TRUE(Eventually([&] { return agent.Series("lockwatch_up{target=\"first\"}") == 1.0; }, seconds(10)))
      << agent.Log();

  // A bad file is rejected with its position and the old config keeps polling.
  WriteFile(path,
            "listen: 127.0.0.1:0\ntargets:\n  - name: first\n    dsn: '" + dsn + "'\n    colour: red\n");
  agent.process().Signal(SIGHUP);
  EXPECT_TRUE(Eventually([&] { return agent.Log().find("config reload rejected") != std::string::npos; },
                         seconds(5)));
  EXPECT_NE(agent.Log().find(path + ":5:5: unknown key"), std::string::npos) << agent.Log();
  const double before = agent.Series("lockwatch_polls_total{target=\"first\"}").value_or(-1);
  EXPECT_TRUE(Eventually(
      [&] { return agent.Series("lockwatch_polls_total{target=\"first\"}").value_or(-1) >= before + 2; },
      seconds(5)));
  EXPECT_TRUE(agent.process().Alive());

  // A good file adds a target and removes another.
  WriteFile(path, "listen: 127.0.0.1:0\ntargets:\n  - name: second\n    dsn: '" + dsn + "'\n");
  agent.process().Signal(SIGHUP);
  EXPECT_TRUE(Eventually([&] { return agent.Series("lockwatch_up{target=\"second\"}") == 1.0; }, seconds(10)))
      << agent.Log();
  EXPECT_TRUE(
      Eventually([&] { return !agent.Series("lockwatch_up{target=\"first\"}").has_value(); }, seconds(5)))
      << agent.Metrics();
  EXPECT_TRUE(Eventually([&] { return CountLockwatchBackends(dsn) == 1; }, seconds(5)));

  agent.process().Signal(SIGTERM);
  EXPECT_EQ(agent.process().WaitExit(seconds(2)), 0);
}

// A TCP server that completes handshakes (the kernel does, into the backlog) and never says a word: libpq
// waits for the startup reply until its connect_timeout.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 64);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(AgentE2eTest, UnresponsiveTargetDoesNotDelayTheOther) {
  const std::string dsn = TestDsn();
  ASSERT_FALSE(dsn.empty());
  SilentListener silent;
  TempDir dir;
  WriteFile(dir.File("lockwatch.yaml"),
            "listen: 127.0.0.1:0\ninterval: 1s\nsession:\n  connect_timeout: 10s\ntargets:\n"
            "  - name: good\n    dsn: '" +
                dsn + "'\n  - name: silent\n    dsn: 'host=127.0.0.1 port=" + std::to_string(silent.port()) +
                " dbname=x'\n");
  Agent agent(dir.path(), {"--config", dir.File("lockwatch.yaml")});
  ASSERT_NE(agent.port(), 0) << agent.Log();
  ASSERT_TRUE(Eventually([&] { return agent.Series("lockwatch_up{target=\"good\"}") == 1.0; }, seconds(10)))
      << agent.Log();
  const double p0 = agent.Series("lockwatch_polls_total{target=\"good\"}").value_or(-1);
  const Clock::time_point t0 = Clock::now();
  std::this_thread::sleep_for(seconds(5));
  const double p1 = agent.Series("lockwatch_polls_total{target=\"good\"}").value_or(-1);
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  // ~1 poll per second whatever the silent target does.
  EXPECT_GE(p1 - p0, elapsed - 1.5) << agent.Metrics();
  EXPECT_LE(p1 - p0, elapsed + 1.5) << agent.Metrics();
  EXPECT_NE(agent.Series("lockwatch_up{target=\"silent\"}"), 1.0);
  // The silent target is stuck in a connect; shutdown still completes in time.
  const Clock::time_point start = Clock::now();
  agent.process().Signal(SIGTERM);
  EXPECT_EQ(agent.process().WaitExit(milliseconds(2000)), 0) << agent.Log();
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
}

}  // namespace
}  // namespace lockwatch::e2e
