// Soak test: the real agent (`lockwatch run`) for LOCKWATCH_SOAK_SECONDS (default 90) against a PostgreSQL
// 15 cluster of its own, under continuous session churn and repeated lock pile-ups, with faults scheduled
// in proportion to the duration: server restarts, a stopped server (outage), pg_terminate_backend on the
// agent's own session, a paused server (SIGSTOP on every backend), a full dump disk (a tiny tmpfs in the
// agent's private mount namespace), and hooks that hang (an exec hook that ignores SIGTERM, a webhook to a
// listener that never answers). It checks that the agent survives and exits cleanly, that its memory and
// descriptors stay flat, that every incident is dumped or counted as a dump error, and that /metrics
// answers every second throughout with lockwatch_up telling the truth.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "agent/forensics/dump_reader.h"

#include "tests/e2e/e2e_harness.h"
#include "tests/soak/soak_support.h"

namespace lockwatch::soak {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The agent's settings that the checks depend on.
constexpr milliseconds kInterval{500};
constexpr seconds kRecorderDuration{20};  // short, so the recorder reaches its steady size in the warm-up
constexpr seconds kResolveAfter{2};
constexpr const char* kTmpfsSize = "1m";
// Warm-up: the recorder fills (kRecorderDuration) and every code path ran once (a pile-up, a dump, both
// hooks) before the reference figures for memory and descriptors are taken.
constexpr seconds kWarmUp{25};
// Reserved at the end for the last incident to resolve, the hooks to drain and the shutdown.
constexpr seconds kTail{12};
constexpr seconds kPauseLength{9};
constexpr seconds kOutageLength{5};
// A fault slot every ~11 s on average: the whole cycle of five faults fits in a 90 s run.
constexpr double kSlotSeconds = 11;
// Resident memory may grow at most this much between the first and the last third of the run after the
// warm-up (allocator noise and a larger pile-up in the recorder; a leak per poll or per reconnect over
// hundreds of them exceeds it).
constexpr long kRssGrowthLimitKib = 8L * 1024;
// Descriptors at the final quiet point may exceed the warm-up quiet point by at most this (an HTTP
// connection being closed, a log file reopened); a descriptor leaked per reconnect or per dump exceeds it.
constexpr int kFdSlack = 4;

// The labels of the soak target's series.
std::map<std::string, std::string> OnTarget() { return {{"target", "soak"}}; }
const char* const kHooks[] = {"stuck_exec", "stuck_webhook"};

// The unshare(1) flags that give a process a private mount namespace in which it may mount a tmpfs: -m as
// root, else -Urm (inside a user namespace); tried on `probe_dir`. nullopt when neither works.
std::optional<std::vector<std::string>> UnshareFlags(const std::string& probe_dir) {
  std::filesystem::create_directories(probe_dir);
  std::vector<std::vector<std::string>> candidates;
  if (geteuid() == 0) candidates.push_back({"-m", "--propagation", "private"});
  candidates.push_back({"-Urm", "--propagation", "private"});
  for (const std::vector<std::string>& flags : candidates) {
    std::string command = "/usr/bin/unshare";
    for (const std::string& f : flags) command += " " + f;
    command += " /bin/sh -c 'mount -t tmpfs -o size=64k lockwatch-probe " + probe_dir + "' >/dev/null 2>&1";
    if (std::system(command.c_str()) == 0) return flags;
  }
  return std::nullopt;
}

int SoakSeconds() {
  const char* env = std::getenv("LOCKWATCH_SOAK_SECONDS");
  if (env == nullptr || *env == '\0') return 90;
  return std::max(60, std::atoi(env));
}

// Every /metrics request of the test, from any thread: each must answer 200 within HttpGet's 3 s timeout.
class ScrapeLog {
 public:
  struct Entry {
    double t = 0;  // seconds since the agent started, when the request was sent
    long code = 0;
    double ms = 0;
    std::optional<double> up;
    std::optional<double> polls;
  };

  void SetUrl(std::string url, Clock::time_point origin) {
    url_ = std::move(url);
    origin_ = origin;
  }
  double Now() const { return std::chrono::duration<double>(Clock::now() - origin_).count(); }

  Exposition Fetch() {
    std::string body;
    const double t = Now();
    const Clock::time_point start = Clock::now();
    const long code = e2e::HttpGet(url_, &body);
    Entry e;
    e.t = t;
    e.code = code;
    e.ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    Exposition m = code == 200 ? Exposition(body) : Exposition();
    e.up = m.Get("lockwatch_up", OnTarget());
    e.polls = m.Get("lockwatch_polls_total", OnTarget());
    std::lock_guard<std::mutex> lock(mu_);
    entries_.push_back(e);
    return m;
  }
  std::vector<Entry> Entries() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_;
  }

 private:
  std::string url_;
  Clock::time_point origin_;
  mutable std::mutex mu_;
  std::vector<Entry> entries_;
};

// A lock pile-up: a root holding a row lock (UPDATE) or a table lock (LOCK TABLE ... ACCESS EXCLUSIVE) in
// an open transaction, and `waiters` sessions queued behind it. Destruction disconnects everyone (the
// server rolls the root back), so a failing test leaves nothing queued.
class PileUp {
 public:
  PileUp(const std::string& dsn, int waiters, bool table_lock) {
    root_ = std::make_unique<PgConn>(dsn + " application_name=soak-root");
    ok_ = root_->Exec("BEGIN").has_value() &&
          root_
              ->Exec(table_lock ? "LOCK TABLE soak_items IN ACCESS EXCLUSIVE MODE"
                                : "UPDATE soak_items SET v = v + 1 WHERE id = 1")
              .has_value();
    if (!ok_) {
      error_ = "root: " + root_->error();
      return;
    }
    const std::string statement =
        table_lock ? "SELECT count(*) FROM soak_items" : "UPDATE soak_items SET v = v + 1 WHERE id = 1";
    for (int i = 0; i < waiters && ok_; ++i) {
      waiters_.push_back(std::make_unique<PgConn>(dsn + " application_name=soak-waiter"));
      if (!waiters_.back()->Send(statement)) {
        ok_ = false;
        error_ = "waiter: " + waiters_.back()->error();
      }
    }
    if (!ok_) return;
    PgConn monitor(dsn + " application_name=soak-admin");
    ok_ = Until(
        [&] {
          return monitor
                     .Exec(
                         "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                         "application_name = 'soak-waiter'")
                     .value_or("") == std::to_string(waiters);
        },
        milliseconds(15000));
    if (!ok_) error_ = "the waiters did not all queue within 15 s: " + monitor.error();
  }

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

  // The root commits; every waiter must then finish within 15 s.
  bool Release() {
    if (!root_->Exec("COMMIT").has_value()) {
      error_ = "commit: " + root_->error();
      return false;
    }
    const Clock::time_point deadline = Clock::now() + seconds(15);
    for (auto& w : waiters_) {
      if (!w->Wait(deadline)) {
        error_ = "waiter: " + w->error();
        return false;
      }
    }
    return true;
  }

 private:
  bool ok_ = false;
  std::string error_;
  std::unique_ptr<PgConn> root_;
  std::vector<std::unique_ptr<PgConn>> waiters_;
};

struct FaultRecord {
  std::string kind;
  double start = 0;
  double end = 0;
  double recovered_after = 0;  // seconds from the end of the fault to lockwatch_up 1 again
};

class SoakRun {
 public:
  SoakRun() : rng_(static_cast<unsigned>(getpid())) {}
  SoakRun(const SoakRun&) = delete;
  SoakRun& operator=(const SoakRun&) = delete;
  // Stops the threads and kills the agent before anything else goes; then kills any hook process the
  // agent left behind (a failing run may end in the middle of a delivery).
  ~SoakRun() {
    scraper_.reset();
    churn_.reset();
    agent_.reset();
    if (!sleep_cmdline_.empty()) {
      for (int pid : ProcessesWithCmdline(sleep_cmdline_)) kill(pid, SIGKILL);
    }
  }

  // Starts the cluster, its tables, the webhook listener and the agent in its private mount namespace.
  void Start() {
    ASSERT_TRUE(cluster_.started()) << "cannot start a PostgreSQL 15 cluster with tests/pg_cluster.sh";
    dsn_ = cluster_.dsn() + " connect_timeout=3";
    std::smatch host;
    std::regex_search(cluster_.dsn(), host, std::regex("host=([^ ]+)"));
    ASSERT_FALSE(host.empty()) << cluster_.dsn();
    data_dir_ = host[1].str() + "/data";
    ASSERT_NE(PostmasterPid(data_dir_), 0) << "no postmaster.pid in " << data_dir_;
    {
      PgConn admin(dsn_ + " application_name=soak-admin");
      ASSERT_TRUE(admin.ok()) << admin.error();
      ASSERT_TRUE(admin.Exec("CREATE TABLE soak_items (id int PRIMARY KEY, v int NOT NULL)").has_value());
      ASSERT_TRUE(
          admin.Exec("INSERT INTO soak_items SELECT g, 0 FROM generate_series(1, 1000) g").has_value());
      ASSERT_TRUE(admin.Exec("CREATE TABLE soak_churn (id int)").has_value());
    }
    ASSERT_NE(listener_.port(), 0) << "cannot listen on 127.0.0.1";
    ASSERT_TRUE(std::filesystem::exists("/usr/bin/unshare")) << "the soak test needs /usr/bin/unshare";

    dumps_ = dir_.File("dumps");
    harvested_dir_ = dir_.File("harvested");
    std::filesystem::create_directories(dumps_);
    std::filesystem::create_directories(harvested_dir_);
    // A hanging exec hook: ignores SIGTERM, so only the SIGKILL after kill_grace ends it. The sleep's
    // argument is unique to this run, so leftovers can be found by command line.
    sleep_cmdline_ = "/bin/sleep " + std::to_string(30000 + getpid() % 20000);
    const std::string config =
        "listen: 127.0.0.1:0\n"
        "interval: " +
        std::to_string(kInterval.count()) +
        "ms\n"
        "max_backoff: 2s\n"
        "session:\n  connect_timeout: 2s\n"
        "incidents:\n  blocked_sessions: 10\n  resolve_after: " +
        std::to_string(kResolveAfter.count()) + "s\n" +
        "recorder:\n  duration: " + std::to_string(kRecorderDuration.count()) + "s\n" +
        "dumps:\n  dir: " + dumps_ +
        "\n  flush_interval: 1s\n"
        "  retention:\n    max_count: 1000000\n    max_age: 366d\n    max_total_size: 1GiB\n"
        "hook_delivery:\n  queue_capacity: 2\n"
        "hooks:\n"
        "  - name: stuck_exec\n"
        "    type: exec\n"
        "    events: [incident.opened, incident.resolved]\n"
        "    timeout: 1s\n"
        "    kill_grace: 300ms\n"
        "    argv: [/bin/sh, -c, \"trap '' TERM; exec " +
        sleep_cmdline_ +
        "\"]\n"
        "  - name: stuck_webhook\n"
        "    type: webhook\n"
        "    events: [incident.opened, incident.resolved]\n"
        "    timeout: 1s\n"
        "    retries: 1\n"
        "    initial_backoff: 200ms\n"
        "    url: http://127.0.0.1:" +
        std::to_string(listener_.port()) +
        "/hook\n"
        "targets:\n"
        "  - name: soak\n"
        "    dsn: '" +
        cluster_.dsn() + "'\n";
    e2e::WriteFile(dir_.File("lockwatch.yaml"), config);

    // The dump directory is a tiny tmpfs that only the agent sees: unshare gives it a private mount
    // namespace (as root; otherwise inside a user namespace), mounts the tmpfs over dumps_ and execs the
    // agent, so its pid is the agent's and the test reaches the tmpfs through /proc/<pid>/root.
    const std::optional<std::vector<std::string>> unshare = UnshareFlags(dir_.File("probe"));
    ASSERT_TRUE(unshare.has_value())
        << "cannot mount a private tmpfs for the agent's dump directory: the soak test needs root "
           "(unshare -m) or unprivileged user namespaces (unshare -Urm); both failed";
    std::vector<std::string> args = *unshare;
    for (const std::string& a : {std::string("/bin/sh"), std::string("-c"),
                                 "mount -t tmpfs -o size=" + std::string(kTmpfsSize) +
                                     ",mode=0700 lockwatch-soak \"$1\" || exit 97; shift; exec \"$@\"",
                                 std::string("sh"), dumps_, e2e::LockwatchBinary(), std::string("run"),
                                 std::string("--config"), dir_.File("lockwatch.yaml")}) {
      args.push_back(a);
    }
    origin_ = Clock::now();
    agent_ = std::make_unique<e2e::Process>("/usr/bin/unshare", args, dir_.File("agent.log"));
    const std::regex port_re("serving metrics.*port\"?[=:]([0-9]+)");
    int port = 0;
    Until(
        [&] {
          std::smatch m;
          const std::string text = agent_->Log();
          if (std::regex_search(text, m, port_re)) port = std::stoi(m[1]);
          return port != 0 || !agent_->Alive();
        },
        milliseconds(15000), milliseconds(50));
    if (!agent_->Alive()) {
      const std::optional<int> rc = agent_->WaitExit(milliseconds(100));
      FAIL() << "the agent did not start (exit status " << rc.value_or(-1)
             << "). The soak test runs it in a private mount namespace with a " << kTmpfsSize
             << " tmpfs as its dump directory: that needs root (unshare -m) or unprivileged user "
                "namespaces (unshare -Urm). Log:\n"
             << agent_->Log();
    }
    ASSERT_NE(port, 0) << "the agent logged no metrics port within 15 s:\n" << agent_->Log();
    pid_ = agent_->pid();
    agent_dumps_ = "/proc/" + std::to_string(pid_) + "/root" + dumps_;
    struct statfs fs {};
    ASSERT_EQ(statfs(agent_dumps_.c_str(), &fs), 0) << agent_dumps_;
    ASSERT_EQ(fs.f_type, TMPFS_MAGIC) << "the agent's dump directory is not the private tmpfs";
    ASSERT_LE(AvailableBytes(agent_dumps_), 1024 * 1024)
        << "the agent's dump directory is not the tiny tmpfs";
    scrapes_.SetUrl("http://127.0.0.1:" + std::to_string(port) + "/metrics", origin_);

    // Scrapes /metrics every second (and samples the agent's resident memory every two) until the end.
    scraper_ = std::make_unique<BackgroundLoop>([this](const std::atomic<bool>& stop) {
      Clock::time_point next = Clock::now();
      for (int i = 0; !stop.load(); ++i) {
        scrapes_.Fetch();
        if (i % 2 == 0) {
          const std::optional<long> rss = ResidentKib(pid_);
          std::lock_guard<std::mutex> lock(rss_mu_);
          if (rss) rss_.emplace_back(scrapes_.Now(), *rss);
        }
        next += seconds(1);
        if (next < Clock::now()) next = Clock::now();
        SleepUnless(stop, next);
      }
    });
    // Churn: a new session every 100 ms, each runs a query and stays idle (every fifth idle in a
    // transaction) until twelve newer ones exist, then disconnects. Failures (server down or paused) are
    // counted, not fatal.
    churn_ = std::make_unique<BackgroundLoop>([this](const std::atomic<bool>& stop) {
      std::deque<std::unique_ptr<PgConn>> open;
      Clock::time_point next = Clock::now();
      for (int i = 0; !stop.load(); ++i) {
        auto c = std::make_unique<PgConn>(dsn_ + " application_name=soak-churn-" + std::to_string(i % 7));
        const bool in_tx = i % 5 == 0;
        const bool ok =
            c->ok() && (in_tx ? c->Exec("BEGIN; SELECT count(*) FROM soak_churn", milliseconds(3000))
                              : c->Exec("SELECT 1", milliseconds(3000)))
                           .has_value();
        if (ok) {
          churn_ok_.fetch_add(1);
          open.push_back(std::move(c));
        } else {
          churn_failed_.fetch_add(1);
        }
        if (open.size() > 12) open.pop_front();
        next += milliseconds(100);
        if (next < Clock::now()) next = Clock::now();
        SleepUnless(stop, next);
      }
    });
  }

  void Run() {
    const int total = SoakSeconds();
    // Warm-up: one pile-up, then quiet until the recorder holds kRecorderDuration of polls.
    ASSERT_TRUE(Until([&] { return Metrics().Or("lockwatch_up", OnTarget(), 0) == 1; }, milliseconds(15000)))
        << agent_->Log();
    RunPileUp(nullptr);
    SleepUntil(static_cast<double>(kWarmUp.count()));
    ASSERT_TRUE(AgentAlive());
    ASSERT_TRUE(WaitQuiet(true)) << "no quiet point after the warm-up: " << QuietState() << "\n" << LogTail();
    warm_fds_ = QuietFds();
    warm_end_ = scrapes_.Now();

    // Fault slots, spread evenly over the rest of the run; the five kinds in turn, at least one cycle.
    const double span = total - static_cast<double>(kWarmUp.count() + kTail.count());
    const int slots = std::max(5, static_cast<int>(span / kSlotSeconds));
    for (int i = 0; i < slots; ++i) {
      SleepUntil(warm_end_ + i * span / slots);
      ASSERT_TRUE(AgentAlive());
      switch (i % 5) {
        case 0:
          Restart();
          RunPileUp(nullptr);
          break;
        case 1:
          RunPileUp([this] { KillAgentSession(); });
          break;
        case 2:
          Pause();
          break;
        case 3:
          Outage();
          break;
        default:
          DiskFull();
          break;
      }
      Harvest();
      if (::testing::Test::HasFatalFailure()) return;
    }
    faults_end_ = scrapes_.Now();
    ASSERT_TRUE(AgentAlive());
    ASSERT_TRUE(WaitQuiet(true)) << "no quiet point at the end: " << QuietState() << "\n" << LogTail();
    final_fds_ = QuietFds();
    const std::vector<int> leftovers = ProcessesWithCmdline(sleep_cmdline_);
    EXPECT_TRUE(leftovers.empty()) << leftovers.size() << " hook processes (" << sleep_cmdline_
                                   << ") outlived their delivery";
    for (int child : ChildrenOf(pid_)) {
      ADD_FAILURE() << "the agent has a child process at a quiet point: pid " << child << " state "
                    << ProcessState(child);
    }
    Harvest();
    final_ = Metrics();
    ASSERT_FALSE(final_.empty()) << "the last scrape failed";
    scraper_->Stop();
    churn_->Stop();

    const Clock::time_point term = Clock::now();
    agent_->Signal(SIGTERM);
    const std::optional<int> rc = agent_->WaitExit(milliseconds(5000));
    shutdown_ms_ = std::chrono::duration<double, std::milli>(Clock::now() - term).count();
    duration_s_ = std::chrono::duration<double>(Clock::now() - origin_).count();
    ASSERT_TRUE(rc.has_value()) << "the agent did not exit within 5 s of SIGTERM:\n" << LogTail();
    EXPECT_EQ(*rc, 0) << "exit status after SIGTERM\n" << LogTail();
  }

  // The checks on the whole run; prints the figures first.
  void Check() {
    const double incidents = final_.Or("lockwatch_incidents_total", OnTarget(), -1);
    const double written = final_.Or("lockwatch_dumps_written_total", OnTarget(), -1);
    const double errors = final_.Or("lockwatch_dump_errors_total", OnTarget(), -1);
    const double polls = final_.Or("lockwatch_polls_total", OnTarget(), -1);
    std::map<std::string, std::map<std::string, double>> hooks;
    for (const char* h : kHooks) {
      for (const char* m : {"runs", "failures", "drops"}) {
        hooks[h][m] = final_.Or(std::string("lockwatch_hook_") + m + "_total", {{"hook", h}}, -1);
      }
    }
    // Resident memory after the warm-up, split by time into thirds.
    std::vector<std::pair<double, long>> rss;
    {
      std::lock_guard<std::mutex> lock(rss_mu_);
      for (const auto& s : rss_) {
        if (s.first >= warm_end_ && s.first <= faults_end_) rss.push_back(s);
      }
    }
    long rss_min = 0;
    long rss_max = 0;
    long first_max = 0;
    long last_max = 0;
    const double third = (faults_end_ - warm_end_) / 3;
    for (const auto& [t, kib] : rss) {
      rss_min = rss_min == 0 ? kib : std::min(rss_min, kib);
      rss_max = std::max(rss_max, kib);
      if (t < warm_end_ + third) first_max = std::max(first_max, kib);
      if (t >= faults_end_ - third) last_max = std::max(last_max, kib);
    }
    const std::vector<ScrapeLog::Entry> scrapes = scrapes_.Entries();
    size_t scrapes_ok = 0;
    double longest_ms = 0;
    for (const ScrapeLog::Entry& e : scrapes) {
      if (e.code == 200) ++scrapes_ok;
      longest_ms = std::max(longest_ms, e.ms);
    }
    std::map<std::string, int> fault_counts;
    double slowest_recovery = 0;
    for (const FaultRecord& f : faults_) {
      ++fault_counts[f.kind];
      slowest_recovery = std::max(slowest_recovery, f.recovered_after);
    }
    std::printf(
        "soak summary: duration %.0f s, polls %.0f, incidents %.0f (pile-ups %d, %d during a full disk), "
        "dumps %.0f written / %d harvested, dump errors %.0f, hooks stuck_exec runs %.0f failures %.0f "
        "drops %.0f, stuck_webhook runs %.0f failures %.0f drops %.0f (listener accepted %d), RSS KiB min "
        "%ld max %ld first-third max %ld last-third max %ld (growth %ld, limit %ld, %zu samples), fds "
        "warm-up %d final %d (slack %d), scrapes ok %zu/%zu, longest scrape %.1f ms, faults: restart %d "
        "kill %d pause %d outage %d disk-full %d, slowest recovery %.1f s, churn sessions %d ok / %d "
        "failed, shutdown %.0f ms\n",
        duration_s_, polls, incidents, pileups_, full_disk_incidents_, written, harvested_, errors,
        hooks["stuck_exec"]["runs"], hooks["stuck_exec"]["failures"], hooks["stuck_exec"]["drops"],
        hooks["stuck_webhook"]["runs"], hooks["stuck_webhook"]["failures"], hooks["stuck_webhook"]["drops"],
        listener_.accepted(), rss_min, rss_max, first_max, last_max, last_max - first_max, kRssGrowthLimitKib,
        rss.size(), warm_fds_, final_fds_, kFdSlack, scrapes_ok, scrapes.size(), longest_ms,
        fault_counts["restart"], fault_counts["kill"], fault_counts["pause"], fault_counts["outage"],
        fault_counts["disk-full"], slowest_recovery, churn_ok_.load(), churn_failed_.load(), shutdown_ms_);
    std::string recoveries;
    for (const FaultRecord& f : faults_) {
      char item[96];
      std::snprintf(item, sizeof(item), "%s%s at %.0f s: %.1f s", recoveries.empty() ? "" : ", ",
                    f.kind.c_str(), f.start, f.recovered_after);
      recoveries += item;
    }
    std::printf(
        "soak recoveries (fault end to lockwatch_up 1): %s; scrapes that saw lockwatch_up 0 while the "
        "server was down: outage %d, pause %d\n",
        recoveries.c_str(), down_scrapes_["outage"], down_scrapes_["pause"]);
    std::fflush(stdout);

    // Memory: flat after the warm-up.
    ASSERT_GE(rss.size(), 6u) << "too few memory samples";
    EXPECT_LE(last_max - first_max, kRssGrowthLimitKib)
        << "resident memory grew from " << first_max << " KiB (first third) to " << last_max
        << " KiB (last third)";
    // Descriptors: the final quiet point holds no more than the warm-up one.
    EXPECT_GT(warm_fds_, 0);
    EXPECT_LE(final_fds_, warm_fds_ + kFdSlack) << "descriptor leak: " << warm_fds_ << " -> " << final_fds_;

    // Every incident is dumped, except those opened while the dump disk was full:
    //   I = lockwatch_incidents_total, W = lockwatch_dumps_written_total, E = lockwatch_dump_errors_total
    //   at the final quiet point (no incident open, every dump closed); F = incidents opened between filling
    //   the tmpfs and removing the filler (each full-disk phase starts and ends with no incident open);
    //   H = complete, readable dump files taken out of the tmpfs, each with one opened and one resolved
    //   record and a distinct incident id. Then W + E = I, E = F >= 1 and H = W; and each pile-up opened
    //   exactly one incident (checked as it ran), so I = the number of pile-ups.
    EXPECT_EQ(written + errors, incidents);
    EXPECT_EQ(errors, full_disk_incidents_);
    EXPECT_GE(full_disk_incidents_, 1);
    EXPECT_EQ(harvested_, static_cast<int>(written));
    EXPECT_EQ(harvested_ids_.size(), static_cast<size_t>(harvested_));
    EXPECT_EQ(incidents, pileups_);

    // Hooks: every delivery hung until its timeout (so failed), none delayed polling, and every incident
    // produced exactly its two events (opened, resolved) for each hook, delivered or dropped.
    for (const char* h : kHooks) {
      EXPECT_GE(hooks[h]["runs"], 1) << h;
      EXPECT_EQ(hooks[h]["failures"], hooks[h]["runs"]) << h << ": a delivery to a hanging hook succeeded";
      EXPECT_EQ(hooks[h]["runs"] + hooks[h]["drops"], 2 * incidents) << h;
    }
    EXPECT_GE(listener_.accepted(), 1);

    // Metrics: every scrape answered, at least one per second of the run (give or take the last ones).
    EXPECT_EQ(scrapes_ok, scrapes.size());
    EXPECT_LT(longest_ms, 3000);
    EXPECT_GE(static_cast<double>(scrapes.size()), 0.8 * faults_end_);
    // Polls went on: at least half of the intervals of the run produced one (the server is down or paused
    // for a fraction of it).
    EXPECT_GE(polls, 0.5 * duration_s_ / (static_cast<double>(kInterval.count()) / 1000));
  }

 private:
  Exposition Metrics() { return scrapes_.Fetch(); }

  bool AgentAlive() {
    if (agent_->Alive()) return true;
    ADD_FAILURE() << "the agent died:\n" << LogTail();
    return false;
  }

  std::string LogTail() const {
    const std::string log = agent_->Log();
    return log.size() > 6000 ? "...\n" + log.substr(log.size() - 6000) : log;
  }

  void SleepUntil(double t) {
    while (scrapes_.Now() < t) std::this_thread::sleep_for(milliseconds(100));
  }

  bool HooksDrained(const Exposition& m) {
    const double incidents = m.Or("lockwatch_incidents_total", OnTarget(), -1);
    for (const char* h : kHooks) {
      if (m.Or("lockwatch_hook_runs_total", {{"hook", h}}, -1) +
              m.Or("lockwatch_hook_drops_total", {{"hook", h}}, -1) !=
          2 * incidents) {
        return false;
      }
    }
    return ChildrenOf(pid_).empty();
  }

  // No incident open and every incident's dump finished (written or failed); with `hooks`, also every
  // hook event delivered or dropped and no hook process running.
  bool WaitQuiet(bool hooks) {
    return Until(
        [&] {
          const Exposition m = Metrics();
          if (m.empty() || m.Or("lockwatch_incident_active", OnTarget(), -1) != 0) return false;
          if (m.Or("lockwatch_dumps_written_total", OnTarget(), 0) +
                  m.Or("lockwatch_dump_errors_total", OnTarget(), 0) !=
              m.Or("lockwatch_incidents_total", OnTarget(), -1)) {
            return false;
          }
          return !hooks || HooksDrained(m);
        },
        milliseconds(40000), milliseconds(250));
  }

  // What WaitQuiet looks at, for failure messages.
  std::string QuietState() {
    const Exposition m = Metrics();
    std::string out = "incident_active " + std::to_string(m.Or("lockwatch_incident_active", OnTarget(), -1)) +
                      ", incidents " + std::to_string(m.Or("lockwatch_incidents_total", OnTarget(), -1)) +
                      ", dumps written " +
                      std::to_string(m.Or("lockwatch_dumps_written_total", OnTarget(), -1)) +
                      ", dump errors " + std::to_string(m.Or("lockwatch_dump_errors_total", OnTarget(), -1));
    for (const char* h : kHooks) {
      out += std::string(", ") + h + " runs " +
             std::to_string(m.Or("lockwatch_hook_runs_total", {{"hook", h}}, -1)) + " drops " +
             std::to_string(m.Or("lockwatch_hook_drops_total", {{"hook", h}}, -1));
    }
    return out + ", agent children " + std::to_string(ChildrenOf(pid_).size());
  }

  // Open descriptors at a quiet point: the least of ten readings 100 ms apart, so a scrape's connection
  // being closed does not count.
  int QuietFds() {
    int least = -1;
    for (int i = 0; i < 10; ++i) {
      const int n = OpenFds(pid_);
      if (n >= 0) least = least < 0 ? n : std::min(least, n);
      std::this_thread::sleep_for(milliseconds(100));
    }
    return least;
  }

  // Waits until lockwatch_up is 1 and then for three more polls; records how long recovery took.
  void Recover(FaultRecord* f) {
    double polls = 0;
    const bool up = Until(
        [&] {
          const Exposition m = Metrics();
          polls = m.Or("lockwatch_polls_total", OnTarget(), 0);
          return m.Or("lockwatch_up", OnTarget(), 0) == 1;
        },
        milliseconds(30000));
    f->recovered_after = scrapes_.Now() - f->end;
    EXPECT_TRUE(up) << f->kind << ": lockwatch_up did not return to 1 within 30 s\n" << LogTail();
    EXPECT_TRUE(Until([&] { return Metrics().Or("lockwatch_polls_total", OnTarget(), 0) >= polls + 3; },
                      milliseconds(10000)))
        << f->kind << ": the poll counter stopped after the fault";
    faults_.push_back(*f);
  }

  // Every scrape sent between `from` and `to` (seconds since the start) saw lockwatch_up 0; there was one.
  void ExpectDownBetween(const std::string& what, double from, double to) {
    int seen = 0;
    for (const ScrapeLog::Entry& e : scrapes_.Entries()) {
      if (e.t < from || e.t > to) continue;
      ++seen;
      EXPECT_EQ(e.up, std::optional<double>(0))
          << what << ": lockwatch_up at " << e.t << " s (server down " << from << " s to " << to << " s)";
    }
    EXPECT_GE(seen, 1) << what << ": no scrape between " << from << " s and " << to << " s";
    down_scrapes_[what] += seen;
  }

  double PollErrors(const Exposition& m) {
    double sum = 0;
    for (const char* stage : {"connect", "query", "decode", "timeout", "permission", "other"}) {
      sum += m.Or("lockwatch_poll_errors_total", {{"target", "soak"}, {"stage", stage}}, 0);
    }
    return sum;
  }

  // A pile-up of 10 to 30 waiters behind a row or table lock: it must open exactly one incident. `during`
  // runs while it is held.
  void RunPileUp(const std::function<void()>& during) {
    EXPECT_TRUE(Until([&] { return Metrics().Or("lockwatch_incident_active", OnTarget(), -1) == 0; },
                      milliseconds(20000)))
        << "the previous incident did not resolve";
    const double before = Metrics().Or("lockwatch_incidents_total", OnTarget(), -1);
    const int waiters = std::uniform_int_distribution<int>(10, 30)(rng_);
    PileUp pileup(dsn_, waiters, pileups_ % 2 == 1);
    ++pileups_;
    ASSERT_TRUE(pileup.ok()) << pileup.error();
    EXPECT_TRUE(Until(
        [&] {
          const Exposition m = Metrics();
          return m.Or("lockwatch_incident_active", OnTarget(), 0) == 1 &&
                 m.Or("lockwatch_incidents_total", OnTarget(), 0) == before + 1;
        },
        milliseconds(10000)))
        << "pile-up of " << waiters << " waiters: no (single) new incident\n"
        << LogTail();
    if (during) during();
    std::this_thread::sleep_for(milliseconds(1000));
    EXPECT_TRUE(pileup.Release()) << pileup.error();
  }

  void Restart() {
    FaultRecord f{"restart", scrapes_.Now()};
    const double errors = PollErrors(Metrics());
    const int old_pm = PostmasterPid(data_dir_);
    EXPECT_EQ(PgCtl(data_dir_, "-w -t 30 -m fast restart"), 0) << "pg_ctl restart failed";
    f.end = scrapes_.Now();
    EXPECT_NE(PostmasterPid(data_dir_), old_pm) << "the server did not restart";
    // The agent noticed: its connection broke, a poll or connect failed.
    EXPECT_TRUE(Until([&] { return PollErrors(Metrics()) > errors; }, milliseconds(10000)))
        << "no poll error counted across a restart";
    Recover(&f);
  }

  void Outage() {
    FaultRecord f{"outage", scrapes_.Now()};
    EXPECT_EQ(PgCtl(data_dir_, "-w -t 30 -m fast stop"), 0) << "pg_ctl stop failed";
    const double down = scrapes_.Now();
    SleepUntil(down + static_cast<double>(kOutageLength.count()));
    const double starting = scrapes_.Now();
    EXPECT_EQ(PgCtl(data_dir_, "-w -t 30 start"), 0) << "pg_ctl start failed";
    f.end = scrapes_.Now();
    // lockwatch_up is 0 at the latest three intervals after the server went away (plus a second of slack).
    ExpectDownBetween("outage", down + 3 * static_cast<double>(kInterval.count()) / 1000 + 1, starting);
    Recover(&f);
  }

  void KillAgentSession() {
    FaultRecord f{"kill", scrapes_.Now()};
    PgConn admin(dsn_ + " application_name=soak-admin");
    const std::string old_pids =
        admin
            .Exec(
                "SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity "
                "WHERE application_name = 'lockwatch'")
            .value_or("");
    EXPECT_FALSE(old_pids.empty()) << "no session with application_name 'lockwatch': " << admin.error();
    // OFFSET 0 keeps the filter in the subquery: in a flat WHERE the planner may call
    // pg_terminate_backend() on rows before checking application_name.
    const std::string killed =
        admin
            .Exec(
                "SELECT count(*) FROM (SELECT pid FROM pg_stat_activity WHERE "
                "application_name = 'lockwatch' OFFSET 0) s WHERE pg_terminate_backend(s.pid)")
            .value_or("");
    EXPECT_EQ(killed, "1") << "pg_terminate_backend on lockwatch's session: " << admin.error();
    f.end = scrapes_.Now();
    // The agent reconnects: a new session of its own appears.
    EXPECT_TRUE(Until(
        [&] {
          return admin
                     .Exec(
                         "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lockwatch' AND "
                         "pid NOT IN (" +
                         (old_pids.empty() ? std::string("0") : old_pids) + ")")
                     .value_or("") == "1";
        },
        milliseconds(15000)))
        << "the agent did not reconnect after its session was terminated\n"
        << LogTail();
    Recover(&f);
  }

  void Pause() {
    FaultRecord f{"pause", scrapes_.Now()};
    const int pm = PostmasterPid(data_dir_);
    EXPECT_NE(pm, 0);
    double paused = 0;
    {
      ServerPause pause(pm);
      paused = scrapes_.Now();
      EXPECT_GT(pause.stopped(), 0u) << "no PostgreSQL process to stop";
      // Backends forked during the pause (churn, the agent reconnecting) are stopped too.
      while (scrapes_.Now() < paused + static_cast<double>(kPauseLength.count())) {
        pause.Sweep();
        std::this_thread::sleep_for(milliseconds(100));
      }
      f.end = scrapes_.Now();
    }  // SIGCONT
    EXPECT_TRUE(AgentAlive());
    ExpectDownBetween("pause", paused + 3 * static_cast<double>(kInterval.count()) / 1000 + 1, f.end);
    Recover(&f);
  }

  // Fills the agent's dump tmpfs, runs a pile-up (its dump must fail and be counted), frees the space and
  // runs another (its dump must be written).
  void DiskFull() {
    FaultRecord f{"disk-full", scrapes_.Now()};
    ASSERT_TRUE(WaitQuiet(false)) << "no quiet point before filling the disk: " << QuietState();
    Harvest();
    Exposition m = Metrics();
    const double incidents = m.Or("lockwatch_incidents_total", OnTarget(), -1);
    const double written = m.Or("lockwatch_dumps_written_total", OnTarget(), -1);
    const double errors = m.Or("lockwatch_dump_errors_total", OnTarget(), -1);
    const std::string filler = agent_dumps_ + "/soak-filler";
    const long long filled = FillUntilFull(filler);
    EXPECT_GT(filled, 0) << "cannot write " << filler;
    EXPECT_EQ(AvailableBytes(agent_dumps_), 0) << "the dump tmpfs is not full";
    RunPileUp(nullptr);
    EXPECT_TRUE(WaitQuiet(false)) << "the incident on a full disk did not finish";
    m = Metrics();
    const double full_incidents = m.Or("lockwatch_incidents_total", OnTarget(), -1) - incidents;
    full_disk_incidents_ += static_cast<int>(full_incidents);
    EXPECT_EQ(full_incidents, 1);
    EXPECT_EQ(m.Or("lockwatch_dump_errors_total", OnTarget(), -1), errors + full_incidents)
        << "the dump on a full disk was not counted as an error\n"
        << LogTail();
    EXPECT_EQ(m.Or("lockwatch_dumps_written_total", OnTarget(), -1), written);
    EXPECT_TRUE(AgentAlive());
    std::error_code ec;
    std::filesystem::remove(filler, ec);
    EXPECT_FALSE(ec) << "cannot remove " << filler << ": " << ec.message();
    // Space again: the next incident is dumped.
    RunPileUp(nullptr);
    EXPECT_TRUE(WaitQuiet(false)) << "the incident after the full disk did not finish";
    m = Metrics();
    EXPECT_EQ(m.Or("lockwatch_dumps_written_total", OnTarget(), -1), written + 1)
        << "the first incident after the disk was freed was not dumped\n"
        << LogTail();
    EXPECT_EQ(m.Or("lockwatch_dump_errors_total", OnTarget(), -1), errors + full_incidents);
    f.end = scrapes_.Now();
    Recover(&f);
  }

  // Moves every finished dump out of the tmpfs (keeping it from filling up) and checks it is complete:
  // one incident, opened and resolved.
  void Harvest() {
    std::error_code ec;
    std::vector<std::filesystem::path> found;
    for (auto it = std::filesystem::directory_iterator(agent_dumps_, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.size() > 8 && name.compare(name.size() - 8, 8, ".dump.gz") == 0) found.push_back(it->path());
    }
    for (const std::filesystem::path& p : found) {
      const std::string copy = harvested_dir_ + "/" + p.filename().string();
      std::filesystem::copy_file(p, copy, std::filesystem::copy_options::overwrite_existing, ec);
      ASSERT_FALSE(ec) << "cannot copy " << p << ": " << ec.message();
      std::filesystem::remove(p, ec);
      core::Result<forensics::Dump> read = forensics::ReadDump(copy);
      ASSERT_TRUE(read.ok()) << copy << ": " << read.status().message();
      EXPECT_TRUE(read.value().complete) << copy;
      int opened = 0;
      int resolved = 0;
      std::string id;
      for (const forensics::DumpRecord& r : read.value().records) {
        if (r.type != "incident") continue;
        const std::string event = r.record.value("event", "");
        if (event == "opened") {
          ++opened;
          id = r.record["incident"].value("id", "");
        }
        if (event == "resolved") ++resolved;
      }
      EXPECT_EQ(opened, 1) << copy;
      EXPECT_EQ(resolved, 1) << copy;
      ++harvested_;
      harvested_ids_.insert(id);
    }
  }

  // Declaration order is destruction order reversed: threads stop first, then the agent is killed, then
  // the listener and the cluster go, and the directory last.
  e2e::TempDir dir_{"lockwatch-soak"};
  e2e::OwnCluster cluster_;
  SilentListener listener_;
  std::unique_ptr<e2e::Process> agent_;
  std::unique_ptr<BackgroundLoop> churn_;
  std::unique_ptr<BackgroundLoop> scraper_;

  std::mt19937 rng_;
  std::string dsn_;
  std::string data_dir_;
  std::string dumps_;
  std::string agent_dumps_;
  std::string harvested_dir_;
  std::string sleep_cmdline_;
  int pid_ = 0;
  Clock::time_point origin_;
  ScrapeLog scrapes_;
  std::mutex rss_mu_;
  std::vector<std::pair<double, long>> rss_;
  std::atomic<int> churn_ok_{0};
  std::atomic<int> churn_failed_{0};
  std::vector<FaultRecord> faults_;
  int pileups_ = 0;
  int full_disk_incidents_ = 0;
  int harvested_ = 0;
  std::set<std::string> harvested_ids_;
  int warm_fds_ = -1;
  int final_fds_ = -1;
  double warm_end_ = 0;
  double faults_end_ = 0;
  double duration_s_ = 0;
  double shutdown_ms_ = 0;
  Exposition final_;
  std::map<std::string, int> down_scrapes_;  // scrapes checked for lockwatch_up 0, by fault
};

TEST(AgentSoakTest, SurvivesChurnRestartsKillsPauseFullDiskAndHangingHooks) {
  SoakRun run;
  run.Start();
  if (::testing::Test::HasFatalFailure()) return;
  run.Run();
  if (::testing::Test::HasFatalFailure()) return;
  run.Check();
}

}  // namespace
}  // namespace lockwatch::soak
