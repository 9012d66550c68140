// lockwatch against its peers on a real PostgreSQL 15 (driven by tests/bench/peers/run.sh).
//
//   lockwatch_peers_bench run [options]      builds the pile-ups, measures, writes peers.md and plot data
//   lockwatch_peers_bench measure [options]  one poll of one method in a fresh process (used by `run`)
//
// Each measured poll runs in a process of its own, so its CPU time and peak resident memory are the
// monitor's alone (the load generator's thousands of connections live in the parent). Server time is
// the executor time pg_stat_statements records for the monitoring role (planning excluded), the same
// instrument for every method. Methods alternate within each round; the order rotates between rounds.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <libpq-fe.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tests/bench/peers/load.h"
#include "tests/bench/peers/monitors.h"

namespace lockwatch::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kMonitorRole = "lw_monitor";
constexpr const char* kExporterRole = "lw_exporter";

// ---------------------------------------------------------------------------------------------------------
// Small helpers

std::map<std::string, std::string> ParseFlags(int argc, char** argv, int first) {
  std::map<std::string, std::string> flags;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) continue;
    arg.erase(0, 2);
    const size_t eq = arg.find('=');
    if (eq == std::string::npos) {
      flags[arg] = "1";
    } else {
      flags[arg.substr(0, eq)] = arg.substr(eq + 1);
    }
  }
  return flags;
}

std::string Flag(const std::map<std::string, std::string>& flags, const std::string& name,
                 const std::string& fallback = "") {
  const auto it = flags.find(name);
  return it == flags.end() ? fallback : it->second;
}

double CpuMs(const rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

// A field of /proc/<pid>/status in kB (VmRSS, VmHWM), 0 when unavailable.
double ProcStatusKb(const std::string& pid, const std::string& field) {
  std::ifstream status("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1));
  }
  return 0;
}

// utime + stime of a process in ms, from /proc/<pid>/stat.
double ProcCpuMs(const std::string& pid) {
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream rest(text.substr(paren + 2));
  std::string field;
  double utime = 0;
  double stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string Scalar(PGconn* conn, const std::string& sql) {
  PGresult* res = PQexec(conn, sql.c_str());
  std::string value;
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0) value = PQgetvalue(res, 0, 0);
  PQclear(res);
  return value;
}

void ResetStatements(PGconn* admin) { PQclear(PQexec(admin, "SELECT pg_stat_statements_reset()")); }

double ServerMs(PGconn* admin, const std::string& role) {
  const std::string v = Scalar(admin,
                               "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements "
                               "WHERE userid = '" +
                                   role + "'::regrole");
  return v.empty() ? std::nan("") : std::stod(v);
}

// ---------------------------------------------------------------------------------------------------------
// One measured poll

struct Sample {
  bool ok = false;
  std::string error;
  double server_ms = 0;
  double client_ms = 0;
  double bytes = 0;
  double cpu_ms = 0;
  double rss_kb = 0;
  double self_server_ms = 0;
  double blocked = -1;
};

std::string Encode(const Sample& s) {
  std::ostringstream out;
  if (!s.ok) {
    std::string e = s.error;
    std::replace(e.begin(), e.end(), '\n', ' ');
    std::replace(e.begin(), e.end(), '\t', ' ');
    out << "err\t" << e;
    return out.str();
  }
  out << std::setprecision(10) << "ok\t" << s.server_ms << "\t" << s.client_ms << "\t" << s.bytes << "\t"
      << s.cpu_ms << "\t" << s.rss_kb << "\t" << s.self_server_ms << "\t" << s.blocked;
  return out.str();
}

Sample Decode(const std::string& line) {
  Sample s;
  std::istringstream in(line);
  std::string tag;
  std::getline(in, tag, '\t');
  if (tag != "ok") {
    std::getline(in, s.error);
    if (s.error.empty()) s.error = line.empty() ? "no output from the measuring process" : line;
    return s;
  }
  s.ok = true;
  in >> s.server_ms >> s.client_ms >> s.bytes >> s.cpu_ms >> s.rss_kb >> s.self_server_ms >> s.blocked;
  return s;
}

// `measure`: connect, optionally poll once unmeasured (a long-running monitor has its plan and catalog
// caches warm), reset pg_stat_statements, poll once measured.
int MeasureMain(const std::map<std::string, std::string>& flags) {
  MonitorOptions options;
  options.dsn = Flag(flags, "dsn");
  options.statement_timeout_ms = std::stoi(Flag(flags, "timeout-ms", "30000"));
  options.pg_activity_sql = Flag(flags, "pg-activity-sql");
  const std::string method = Flag(flags, "method");
  Sample s;
  std::string error;
  std::unique_ptr<Monitor> monitor = MakeMonitor(method, options, &error);
  PGconn* admin = PQconnectdb(Flag(flags, "admin-dsn").c_str());
  if (monitor == nullptr) {
    s.error = error;
  } else if (PQstatus(admin) != CONNECTION_OK) {
    s.error = std::string("admin connection: ") + PQerrorMessage(admin);
  } else if (error = monitor->Connect(); !error.empty()) {
    s.error = "connect: " + error;
  } else {
    if (Flag(flags, "warmup") == "1") monitor->Poll();
    ResetStatements(admin);
    rusage before{};
    rusage after{};
    getrusage(RUSAGE_SELF, &before);
    const PollCost cost = monitor->Poll();
    getrusage(RUSAGE_SELF, &after);
    s.ok = cost.ok;
    s.error = cost.error;
    s.client_ms = cost.client_ms;
    s.bytes = static_cast<double>(cost.bytes);
    s.cpu_ms = CpuMs(after) - CpuMs(before);
    s.self_server_ms = cost.self_server_ms;
    s.blocked = static_cast<double>(cost.blocked);
    s.server_ms = ServerMs(admin, kMonitorRole);
    s.rss_kb = ProcStatusKb("self", "VmHWM");
  }
  PQfinish(admin);
  std::cout << Encode(s) << std::endl;
  return 0;
}

// ---------------------------------------------------------------------------------------------------------
// The run

struct Scenario {
  std::string name;
  std::string series;  // steady | waiters | locks | roots | churn
  Shape shape;
};

struct ScenarioResult {
  Scenario scenario;
  int64_t lock_rows = 0;
  int64_t sessions = 0;
  int64_t churn_cycles = 0;
  double churn_seconds = 0;
  std::map<std::string, std::vector<Sample>> samples;
  std::map<std::string, std::string> skipped;  // method -> reason
};

struct PgbenchRun {
  std::string config;  // none | <method>@<interval>
  double tps = 0;
  int64_t polls = 0;
  int64_t poll_failures = 0;
  double mean_poll_ms = 0;
};

double Median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double MedianOf(const std::vector<Sample>& samples, double Sample::*field) {
  std::vector<double> v;
  for (const Sample& s : samples) {
    if (s.ok) v.push_back(s.*field);
  }
  return Median(v);
}

std::string Fixed(double v, int precision) {
  if (std::isnan(v)) return "n/a";
  std::ostringstream out;
  out << std::fixed << std::setprecision(precision) << v;
  return out.str();
}

// Milliseconds with a sensible number of digits.
std::string Ms(double v) {
  if (std::isnan(v)) return "n/a";
  return Fixed(v, v < 10 ? 2 : (v < 100 ? 1 : 0));
}

std::string Ratio(double a, double b) {
  if (std::isnan(a) || std::isnan(b) || b <= 0) return "n/a";
  const double r = a / b;
  return Fixed(r, r < 10 ? 2 : (r < 100 ? 1 : 0)) + "x";
}

std::string Thousands(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

class Runner {
 public:
  explicit Runner(std::map<std::string, std::string> flags) : flags_(std::move(flags)) {
    quick_ = Flag(flags_, "quick") == "1";
    reps_ = std::stoi(Flag(flags_, "reps", quick_ ? "3" : "5"));
    timeout_ms_ = std::stoi(Flag(flags_, "timeout-ms", quick_ ? "10000" : "30000"));
    const std::string base =
        "host=" + Flag(flags_, "host") + " port=" + Flag(flags_, "port") + " dbname=" + Flag(flags_, "db");
    admin_dsn_ = base + " user=postgres";
    monitor_dsn_ = base + " user=" + kMonitorRole;
    exporter_pid_ = Flag(flags_, "exporter-pid");
    out_dir_ = Flag(flags_, "out", ".");
    self_ = Flag(flags_, "self", "/proc/self/exe");
  }

  int Main() {
    admin_ = PQconnectdb(admin_dsn_.c_str());
    if (PQstatus(admin_) != CONNECTION_OK) {
      std::cerr << "peers: admin connection failed: " << PQerrorMessage(admin_);
      return 1;
    }
    load_avg_start_ = LoadAverage();
    const auto started = Clock::now();
    std::vector<Scenario> scenarios = Scenarios();
    for (const Scenario& sc : scenarios) {
      if (!RunScenario(sc)) return 1;
    }
    if (!RunPgbench()) return 1;
    wall_seconds_ = std::chrono::duration<double>(Clock::now() - started).count();
    load_avg_end_ = LoadAverage();
    WriteReport();
    PQfinish(admin_);
    return 0;
  }

 private:
  std::vector<Scenario> Scenarios() const {
    auto make = [](std::string name, std::string series, int waiters, int idle, int locks, int roots,
                   int churners) {
      Scenario s;
      s.name = std::move(name);
      s.series = std::move(series);
      s.shape.waiters = waiters;
      s.shape.idle = idle;
      s.shape.extra_locks = locks;
      s.shape.roots = roots;
      s.shape.churners = churners;
      return s;
    };
    if (quick_) {
      return {make("steady, 100 idle sessions", "steady", 0, 100, 10, 0, 0),
              make("N=10, L=10", "waiters", 10, 0, 10, 1, 0),
              make("N=100, L=10", "waiters", 100, 0, 10, 1, 0),
              make("N=100, L=100", "locks", 100, 0, 100, 1, 0),
              make("N=100, L=10, 5 roots", "roots", 100, 0, 10, 5, 0),
              make("N=100, L=10, churn", "churn", 100, 0, 10, 1, 20)};
    }
    return {make("steady, 100 idle sessions", "steady", 0, 100, 10, 0, 0),
            make("steady, 1000 idle sessions", "steady", 0, 1000, 10, 0, 0),
            make("N=10, L=10", "waiters", 10, 0, 10, 1, 0),
            make("N=100, L=10", "waiters", 100, 0, 10, 1, 0),
            make("N=1000, L=10", "waiters", 1000, 0, 10, 1, 0),
            make("N=2000, L=10", "waiters", 2000, 0, 10, 1, 0),
            make("N=1000, L=0", "locks", 1000, 0, 0, 1, 0),
            make("N=1000, L=100", "locks", 1000, 0, 100, 1, 0),
            make("N=1000, L=1000", "locks", 1000, 0, 1000, 1, 0),
            make("N=1000, L=10, 10 roots", "roots", 1000, 0, 10, 10, 0),
            make("N=1000, L=10, churn", "churn", 1000, 0, 10, 1, 100)};
  }

  static std::string LoadAverage() {
    std::ifstream in("/proc/loadavg");
    std::string a;
    std::string b;
    std::string c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
  }

  static std::string Quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) {
      if (c == '\'') {
        q += "'\\''";
      } else {
        q += c;
      }
    }
    return q + "'";
  }

  Sample MeasureInChild(const std::string& method, bool warmup) {
    const std::string cmd =
        Quote(self_) + " measure --method=" + method + " --dsn=" + Quote(monitor_dsn_) +
        " --admin-dsn=" + Quote(admin_dsn_) + " --timeout-ms=" + std::to_string(timeout_ms_) +
        " --warmup=" + (warmup ? "1" : "0") + " --pg-activity-sql=" + Quote(Flag(flags_, "pg-activity-sql"));
    FILE* pipe = popen(cmd.c_str(), "r");
    if (pipe == nullptr) {
      Sample s;
      s.error = "popen failed";
      return s;
    }
    std::string out;
    char buf[4096];
    while (fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
    pclose(pipe);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return Decode(out);
  }

  // The exporter is a daemon of its own: its CPU and memory are read from /proc around one scrape.
  Sample MeasureExporter() {
    MonitorOptions options;
    options.exporter_address = Flag(flags_, "exporter-address");
    std::string error;
    std::unique_ptr<Monitor> monitor = MakeMonitor("exporter", options, &error);
    Sample s;
    if (error = monitor->Connect(); !error.empty()) {
      s.error = error;
      return s;
    }
    ResetStatements(admin_);
    const double cpu_before = ProcCpuMs(exporter_pid_);
    const PollCost cost = monitor->Poll();
    s.cpu_ms = ProcCpuMs(exporter_pid_) - cpu_before;
    s.ok = cost.ok;
    s.error = cost.error;
    s.client_ms = cost.client_ms;
    s.bytes = static_cast<double>(cost.bytes);
    s.server_ms = ServerMs(admin_, kExporterRole);
    s.rss_kb = ProcStatusKb(exporter_pid_, "VmRSS");
    return s;
  }

  Sample Measure(const std::string& method, bool warmup) {
    if (method == "exporter") {
      if (warmup) MeasureExporter();
      return MeasureExporter();
    }
    return MeasureInChild(method, warmup);
  }

  static bool IsTimeout(const Sample& s) {
    return s.error.find("statement timeout") != std::string::npos ||
           s.error.find("57014") != std::string::npos;
  }

  std::vector<std::string> MethodsFor(const Scenario& sc) const {
    std::vector<std::string> methods;
    for (const std::string& m : MethodNames()) {
      if (sc.series == "steady" && m != "lockwatch" && m != "activity" && m != "floor") continue;
      methods.push_back(m);
    }
    return methods;
  }

  bool RunScenario(const Scenario& sc) {
    std::cerr << "peers: " << sc.name << ": building" << std::flush;
    const auto build_start = Clock::now();
    PileUp pile(admin_dsn_, admin_);
    const std::string error = pile.Build(sc.shape);
    if (!error.empty()) {
      std::cerr << "\npeers: " << sc.name << ": " << error << "\n";
      return false;
    }
    ScenarioResult result;
    result.scenario = sc;
    result.lock_rows = std::stoll(Scalar(admin_, "SELECT count(*) FROM pg_locks"));
    result.sessions = std::stoll(Scalar(admin_, "SELECT count(*) FROM pg_stat_activity"));
    std::cerr << " (" << std::fixed << std::setprecision(1)
              << std::chrono::duration<double>(Clock::now() - build_start).count() << " s, "
              << result.lock_rows << " lock rows); measuring" << std::flush;
    const std::vector<std::string> methods = MethodsFor(sc);
    for (const std::string& m : methods) {
      // A method that already timed out on a smaller pile-up is not run again on a larger one.
      for (const auto& [rows, waiters, reason] : timed_out_[m]) {
        if (rows <= result.lock_rows && waiters <= sc.shape.waiters) result.skipped[m] = reason;
      }
    }
    const int64_t churn_start = pile.churn_cycles();
    const auto measure_start = Clock::now();
    for (int round = 0; round < reps_; ++round) {
      for (size_t k = 0; k < methods.size(); ++k) {
        const std::string& m = methods[(k + static_cast<size_t>(round)) % methods.size()];
        if (result.skipped.count(m) != 0) continue;
        std::vector<Sample>& got = result.samples[m];
        // Slow peers: three samples are enough to show they are slow.
        if (!got.empty() && got.front().ok && got.front().client_ms > 8000 && got.size() >= 3) continue;
        const bool slow = m == "wiki_selfjoin" || m == "pg_activity";
        Sample s = Measure(m, !slow);
        if (!s.ok && IsTimeout(s)) {
          const std::string reason = "> " + std::to_string(timeout_ms_ / 1000) + " s (statement_timeout at " +
                                     Thousands(result.lock_rows) + " lock rows)";
          result.skipped[m] = reason;
          timed_out_[m].emplace_back(result.lock_rows, sc.shape.waiters, reason);
        }
        got.push_back(std::move(s));
        std::cerr << "." << std::flush;
      }
    }
    result.churn_cycles = pile.churn_cycles() - churn_start;
    result.churn_seconds = std::chrono::duration<double>(Clock::now() - measure_start).count();
    pile.Teardown();
    std::cerr << " done\n";
    results_.push_back(std::move(result));
    return true;
  }

  // A monitor polling at a fixed interval in a thread of this process while pgbench runs.
  void Poller(const std::string& method, double interval_s, std::atomic<bool>* stop, PgbenchRun* run) {
    MonitorOptions options;
    options.dsn = monitor_dsn_;
    options.statement_timeout_ms = timeout_ms_;
    options.pg_activity_sql = Flag(flags_, "pg-activity-sql");
    options.exporter_address = Flag(flags_, "exporter-address");
    std::string error;
    std::unique_ptr<Monitor> monitor = MakeMonitor(method, options, &error);
    if (monitor == nullptr || !monitor->Connect().empty()) {
      run->poll_failures = -1;
      return;
    }
    double total_ms = 0;
    auto next = Clock::now();
    while (!*stop) {
      const PollCost cost = monitor->Poll();
      ++run->polls;
      total_ms += cost.client_ms;
      if (!cost.ok) ++run->poll_failures;
      next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_s));
      const auto now = Clock::now();
      if (next < now) next = now;  // a poll longer than the interval: the next one starts at once
      while (!*stop && Clock::now() < next) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    run->mean_poll_ms = run->polls > 0 ? total_ms / static_cast<double>(run->polls) : 0;
  }

  double Pgbench() {
    const std::string cmd = Quote(Flag(flags_, "pgbench", "pgbench")) + " -n -c 4 -j 2 -T " +
                            std::to_string(pgbench_seconds_) + " -h " + Quote(Flag(flags_, "host")) + " -p " +
                            Flag(flags_, "port") + " -U postgres " + Quote(Flag(flags_, "pgbench-db")) +
                            " 2>&1";
    FILE* pipe = popen(cmd.c_str(), "r");
    if (pipe == nullptr) return std::nan("");
    double tps = std::nan("");
    char buf[4096];
    while (fgets(buf, sizeof buf, pipe) != nullptr) {
      const std::string line = buf;
      if (line.rfind("tps = ", 0) == 0) tps = std::stod(line.substr(6));
    }
    pclose(pipe);
    return tps;
  }

  bool RunPgbench() {
    pgbench_seconds_ = std::stoi(Flag(flags_, "pgbench-seconds", quick_ ? "5" : "10"));
    pgbench_reps_ = std::stoi(Flag(flags_, "pgbench-reps", quick_ ? "1" : "3"));
    Scenario sc;
    sc.name = quick_ ? "N=100, L=100" : "N=1000, L=100";
    sc.shape.waiters = quick_ ? 100 : 1000;
    sc.shape.extra_locks = 100;
    std::cerr << "peers: pgbench during a pile-up (" << sc.name << "): building" << std::flush;
    PileUp pile(admin_dsn_, admin_);
    if (const std::string error = pile.Build(sc.shape); !error.empty()) {
      std::cerr << "\npeers: pgbench pile-up: " << error << "\n";
      return false;
    }
    pgbench_scenario_ = sc.name;
    pgbench_rows_ = std::stoll(Scalar(admin_, "SELECT count(*) FROM pg_locks"));
    std::vector<std::pair<std::string, double>> configs = {{"none", 0}};
    const std::vector<std::string> monitors =
        quick_ ? std::vector<std::string>{"lockwatch", "floor"}
               : std::vector<std::string>{"lockwatch",     "floor",       "blocking_pids",
                                          "wiki_selfjoin", "pg_activity", "exporter"};
    for (double interval : {1.0, 0.2}) {
      if (quick_ && interval < 1) continue;
      for (const std::string& m : monitors) {
        // The self-join and pg_activity's query take about as long as either interval or longer: they run
        // (nearly) back to back at both, so 1 s is enough.
        if ((m == "wiki_selfjoin" || m == "pg_activity") && interval < 1) continue;
        configs.emplace_back(m, interval);
      }
    }
    std::cerr << "; " << configs.size() << " configurations x " << pgbench_reps_ << " x " << pgbench_seconds_
              << " s" << std::flush;
    for (int rep = 0; rep < pgbench_reps_; ++rep) {
      for (size_t k = 0; k < configs.size(); ++k) {
        const auto& [method, interval] = configs[(k + static_cast<size_t>(rep) * 5) % configs.size()];
        PgbenchRun run;
        run.config = method == "none" ? "none" : method + "@" + Fixed(interval, 1) + "s";
        std::atomic<bool> stop{false};
        std::thread poller;
        if (method != "none") {
          poller = std::thread([&, m = method, i = interval] { Poller(m, i, &stop, &run); });
        }
        run.tps = Pgbench();
        stop = true;
        if (poller.joinable()) poller.join();
        pgbench_runs_.push_back(run);
        std::cerr << "." << std::flush;
      }
    }
    pile.Teardown();
    std::cerr << " done\n";
    return true;
  }

  // ---- report

  const ScenarioResult* Find(const std::string& name) const {
    for (const ScenarioResult& r : results_) {
      if (r.scenario.name == name) return &r;
    }
    return nullptr;
  }

  static double Client(const ScenarioResult& r, const std::string& m) {
    const auto it = r.samples.find(m);
    return it == r.samples.end() ? std::nan("") : MedianOf(it->second, &Sample::client_ms);
  }
  static double Server(const ScenarioResult& r, const std::string& m) {
    const auto it = r.samples.find(m);
    return it == r.samples.end() ? std::nan("") : MedianOf(it->second, &Sample::server_ms);
  }
  static int Count(const ScenarioResult& r, const std::string& m) {
    const auto it = r.samples.find(m);
    if (it == r.samples.end()) return 0;
    return static_cast<int>(
        std::count_if(it->second.begin(), it->second.end(), [](const Sample& s) { return s.ok; }));
  }

  static std::string Cell(const ScenarioResult& r, const std::string& m, bool server,
                          const std::string& ref) {
    if (const auto it = r.skipped.find(m); it != r.skipped.end() && Count(r, m) == 0) return it->second;
    const double v = server ? Server(r, m) : Client(r, m);
    if (std::isnan(v)) {
      const auto it = r.samples.find(m);
      if (it != r.samples.end() && !it->second.empty() && !it->second.front().ok) {
        return "failed: " + it->second.front().error.substr(0, 60);
      }
      return "-";
    }
    std::string cell = Ms(v);
    if (m != ref) {
      const double base = server ? Server(r, ref) : Client(r, ref);
      cell += " (" + Ratio(v, base) + ")";
    }
    const int n = Count(r, m);
    if (n < 5) cell += " n=" + std::to_string(n);
    return cell;
  }

  void TimeTable(std::ostream& md, bool server) const {
    const std::vector<std::string> methods = {"floor",         "lockwatch",   "blocking_pids",
                                              "wiki_selfjoin", "pg_activity", "exporter"};
    md << "| pile-up | pg_locks rows | sessions |";
    for (const std::string& m : methods) md << " " << m << " |";
    md << "\n|---|---:|---:|";
    for (size_t i = 0; i < methods.size(); ++i) md << "---:|";
    md << "\n";
    for (const ScenarioResult& r : results_) {
      if (r.scenario.series == "steady") continue;
      md << "| " << r.scenario.name << " | " << Thousands(r.lock_rows) << " | " << r.sessions << " |";
      for (const std::string& m : methods) md << " " << Cell(r, m, server, "floor") << " |";
      md << "\n";
    }
  }

  void DetailTable(std::ostream& md, const ScenarioResult& r) const {
    md << "| method | server ms | client ms | bytes received | monitor CPU ms | monitor peak RSS MiB | n |\n"
       << "|---|---:|---:|---:|---:|---:|---:|\n";
    for (const std::string& m : MethodNames()) {
      const auto it = r.samples.find(m);
      if (it == r.samples.end() || Count(r, m) == 0) {
        if (const auto sk = r.skipped.find(m); sk != r.skipped.end()) {
          md << "| " << m << " | " << sk->second << " | | | | | 0 |\n";
        }
        continue;
      }
      const auto& s = it->second;
      md << "| " << m << " | " << Ms(MedianOf(s, &Sample::server_ms)) << " | "
         << Ms(MedianOf(s, &Sample::client_ms)) << " | "
         << Thousands(static_cast<int64_t>(MedianOf(s, &Sample::bytes))) << " | "
         << Ms(MedianOf(s, &Sample::cpu_ms)) << " | " << Fixed(MedianOf(s, &Sample::rss_kb) / 1024.0, 1)
         << " | " << Count(r, m) << " |\n";
    }
  }

  double PgbenchMedian(const std::string& config) const {
    std::vector<double> v;
    for (const PgbenchRun& run : pgbench_runs_) {
      if (run.config == config && !std::isnan(run.tps)) v.push_back(run.tps);
    }
    return Median(v);
  }

  std::pair<double, double> PgbenchRange(const std::string& config) const {
    double lo = std::nan("");
    double hi = std::nan("");
    for (const PgbenchRun& run : pgbench_runs_) {
      if (run.config != config || std::isnan(run.tps)) continue;
      lo = std::isnan(lo) ? run.tps : std::min(lo, run.tps);
      hi = std::isnan(hi) ? run.tps : std::max(hi, run.tps);
    }
    return {lo, hi};
  }

  void WritePlotData() const {
    const std::vector<std::string> methods = {"floor",         "lockwatch",   "blocking_pids",
                                              "wiki_selfjoin", "pg_activity", "exporter"};
    auto write = [&](const std::string& file, const std::string& series, bool by_rows) {
      std::ofstream out(out_dir_ + "/" + file);
      out << (by_rows ? "rows" : "waiters");
      for (const std::string& m : methods) out << " " << m;
      out << "\n";
      std::vector<const ScenarioResult*> points;
      for (const ScenarioResult& r : results_) {
        const bool in_series =
            r.scenario.series == series ||
            (series == "locks" && r.scenario.name == (quick_ ? "N=100, L=10" : "N=1000, L=10"));
        if (in_series) points.push_back(&r);
      }
      std::sort(points.begin(), points.end(),
                [](const ScenarioResult* a, const ScenarioResult* b) { return a->lock_rows < b->lock_rows; });
      for (const ScenarioResult* r : points) {
        out << (by_rows ? r->lock_rows : r->scenario.shape.waiters);
        for (const std::string& m : methods) {
          const double v = Client(*r, m);
          out << " " << (std::isnan(v) ? std::string("NaN") : Fixed(v, 3));
        }
        out << "\n";
      }
    };
    write("peers_waiters.dat", "waiters", false);
    write("peers_rows.dat", "locks", true);
  }

  void WriteReport() const {
    WritePlotData();
    std::ofstream md(out_dir_ + "/peers.md");
    const std::string version = Scalar(admin_, "SELECT version()");
    md << "# lockwatch against its peers: one poll, and the database's throughput\n\n"
       << "Produced by `bash tests/bench/peers/run.sh" << (quick_ ? " --quick" : "") << "` on "
       << Flag(flags_, "date") << " (" << Fixed(wall_seconds_ / 60.0, 1) << " min). Server: " << version
       << ", a throwaway cluster with " << Flag(flags_, "settings")
       << ". Machine: " << std::thread::hardware_concurrency() << " cores, load average " << load_avg_start_
       << " at the start and " << load_avg_end_ << " at the end.\n\n"
       << "**Read the ratios, not the absolute times.** Absolute times depend on the machine and on what "
          "else ran on it (see the load averages above); every figure in one table comes from the same run, "
          "methods alternate within each round (the order rotates between rounds), and each cell is the "
          "median of "
       << reps_ << " polls (fewer where marked `n=`).\n\n";
    md << "## Methods\n\n";
    for (const std::string& m : MethodNames()) md << "- **" << m << "**: " << MethodDescription(m) << "\n";
    md << "\nThe pile-up (the load generator in `tests/bench/peers/load.cc`, one process, one libpq "
          "connection "
          "per session): each root sits idle in transaction holding ACCESS SHARE on its table, the first "
          "waiter "
          "of each root queues ACCESS EXCLUSIVE (an `ALTER TABLE`'s lock) and every other waiter queues "
          "ACCESS "
          "SHARE behind it — one hard blocker and a queue of soft-blocked sessions. N is the number of "
          "waiting "
          "sessions, L the number of extra locks every session holds (session-level advisory locks: main "
          "lock "
          "table, one pg_locks row each). Churn: 10% extra waiters are cancelled and replaced continuously "
          "while "
          "the monitors poll.\n\n"
       << "Measures: **server ms** is the executor time pg_stat_statements records for the monitoring role "
          "during the poll (planning excluded; for the exporter, the sum over its statements); **client ms** "
          "is "
          "the wall time of the poll seen by the monitor, round trips included (lockwatch: the statement, "
          "decoding and `core::Analyze`; the SQL peers: libpq receiving the result, none of their own "
          "processing; the exporter: the HTTP scrape). Each lockwatch and SQL poll runs in a fresh process "
          "after one unmeasured warm-up poll on its connection (a long-running monitor's plan and catalog "
          "caches "
          "are warm; the two slowest peers skip the warm-up), so **CPU** and **peak RSS** are the monitor "
          "process's own (libpq and, for lockwatch, libpqxx included). For the exporter they are the "
          "daemon's "
          "CPU during the scrape and its resident memory after it.\n\n";

    md << "## One poll during a pile-up: client time, ms (ratio to the floor)\n\n";
    TimeTable(md, false);
    md << "\n## One poll during a pile-up: server time, ms (ratio to the floor)\n\n";
    TimeTable(md, true);
    md << "\n![client time per poll](peers.png)\n\n";

    const std::string headline = quick_ ? "N=100, L=100" : "N=1000, L=100";
    if (const ScenarioResult* r = Find(headline)) {
      md << "## Cost detail at " << headline << " (" << Thousands(r->lock_rows) << " pg_locks rows)\n\n";
      DetailTable(md, *r);
      const auto it = r->samples.find("lockwatch");
      if (it != r->samples.end()) {
        md << "\nlockwatch's own server-side measurement of its statement (clock_timestamp at the last row): "
           << Ms(MedianOf(it->second, &Sample::self_server_ms))
           << " ms; blocked sessions found by the analysis: "
           << Fixed(MedianOf(it->second, &Sample::blocked), 0) << ".\n\n";
      }
    }
    md << "## lockwatch's poll in every pile-up\n\n"
       << "| pile-up | pg_locks rows | server ms | client ms | bytes | CPU ms | peak RSS MiB | blocked found "
          "|\n"
       << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const ScenarioResult& r : results_) {
      const auto it = r.samples.find("lockwatch");
      if (it == r.samples.end()) continue;
      const auto& s = it->second;
      md << "| " << r.scenario.name << " | " << Thousands(r.lock_rows) << " | "
         << Ms(MedianOf(s, &Sample::server_ms)) << " | " << Ms(MedianOf(s, &Sample::client_ms)) << " | "
         << Thousands(static_cast<int64_t>(MedianOf(s, &Sample::bytes))) << " | "
         << Ms(MedianOf(s, &Sample::cpu_ms)) << " | " << Fixed(MedianOf(s, &Sample::rss_kb) / 1024.0, 1)
         << " | " << Fixed(MedianOf(s, &Sample::blocked), 0) << " |\n";
    }
    for (const ScenarioResult& r : results_) {
      if (r.scenario.series != "churn") continue;
      int failures = 0;
      for (const auto& [m, samples] : r.samples) {
        for (const Sample& s : samples) failures += s.ok ? 0 : 1;
      }
      md << "\nChurn (" << r.scenario.name << "): " << r.churn_cycles
         << " sessions cancelled and replaced in " << Fixed(r.churn_seconds, 0) << " s of measuring ("
         << Fixed(static_cast<double>(r.churn_cycles) / r.churn_seconds, 1)
         << " per second); failed polls of any method: " << failures << ".\n";
    }

    md << "\n## Steady state (no lock waits): client time, ms (ratio to the bare activity read)\n\n"
       << "| sessions | pg_locks rows | activity | lockwatch | floor | lockwatch server ms | activity server "
          "ms |\n"
       << "|---|---:|---:|---:|---:|---:|---:|\n";
    for (const ScenarioResult& r : results_) {
      if (r.scenario.series != "steady") continue;
      md << "| " << r.scenario.name << " | " << Thousands(r.lock_rows) << " | "
         << Cell(r, "activity", false, "activity") << " | " << Cell(r, "lockwatch", false, "activity")
         << " | " << Cell(r, "floor", false, "activity") << " | " << Cell(r, "lockwatch", true, "activity")
         << " | " << Cell(r, "activity", true, "activity") << " |\n";
    }

    md << "\n## Impact on the database: pgbench during a pile-up (" << pgbench_scenario_ << ", "
       << Thousands(pgbench_rows_) << " pg_locks rows)\n\n"
       << "`pgbench -n -c 4 -j 2 -T " << pgbench_seconds_
       << "` (TPC-B-like, scale 10, its own database) on the same "
       << "server while one monitor polls at a fixed interval (a poll longer than the interval is followed "
          "at once "
          "by the next). Configurations alternate, the order shifting between rounds; median of "
       << pgbench_reps_ << " runs.\n\n"
       << "| monitor | interval | tps (median) | min-max | change vs no monitor | polls | mean poll ms |\n"
       << "|---|---:|---:|---:|---:|---:|---:|\n";
    const double base = PgbenchMedian("none");
    std::vector<std::string> seen;
    for (const PgbenchRun& run : pgbench_runs_) {
      if (std::find(seen.begin(), seen.end(), run.config) != seen.end()) continue;
      seen.push_back(run.config);
    }
    std::sort(seen.begin(), seen.end(), [](const std::string& a, const std::string& b) {
      if (a == "none" || b == "none") return a == "none" && b != "none";
      return a < b;
    });
    for (const std::string& config : seen) {
      const double tps = PgbenchMedian(config);
      const auto [lo, hi] = PgbenchRange(config);
      int64_t polls = 0;
      double poll_ms = 0;
      int n = 0;
      for (const PgbenchRun& run : pgbench_runs_) {
        if (run.config != config) continue;
        polls += run.polls;
        poll_ms += run.mean_poll_ms;
        ++n;
      }
      const size_t at = config.find('@');
      md << "| " << config.substr(0, at) << " | " << (at == std::string::npos ? "-" : config.substr(at + 1))
         << " | " << Fixed(tps, 0) << " | " << Fixed(lo, 0) << "-" << Fixed(hi, 0) << " | "
         << (config == "none" ? std::string("-") : Fixed((tps / base - 1) * 100, 1) + "%") << " | "
         << (config == "none" ? std::string("-") : std::to_string(polls)) << " | "
         << (config == "none" ? std::string("-") : Ms(n > 0 ? poll_ms / n : std::nan(""))) << " |\n";
    }
    const auto [base_lo, base_hi] = PgbenchRange("none");
    md << "\nNoise: with no monitor, tps ranged over " << Fixed((base_hi - base_lo) / base * 100, 1)
       << "% of its median across the runs.\n";

    WriteTargets(md, base, base_lo, base_hi);
  }

  void WriteTargets(std::ostream& md, double base, double base_lo, double base_hi) const {
    md << "\n## Targets (ratios from this run)\n\n| target | measured | result |\n|---|---|---|\n";
    auto verdict = [](bool met) { return met ? std::string("met") : std::string("MISSED"); };
    for (const ScenarioResult& r : results_) {
      if (r.scenario.series != "steady") continue;
      const double ratio = Client(r, "lockwatch") / Client(r, "activity");
      const double server = Server(r, "lockwatch") / Server(r, "activity");
      md << "| steady state (" << r.scenario.name
         << "): poll within 1.5x of a bare pg_stat_activity read | client " << Fixed(ratio, 2) << "x, server "
         << Fixed(server, 2) << "x | " << verdict(ratio <= 1.5) << " |\n";
    }
    for (const ScenarioResult& r : results_) {
      if (r.scenario.series == "steady") continue;
      const double client = Client(r, "lockwatch") / Client(r, "floor");
      const double server = Server(r, "lockwatch") / Server(r, "floor");
      md << "| pile-up poll within 1.3x of the floor (" << r.scenario.name << ") | client "
         << Fixed(client, 2) << "x, server " << Fixed(server, 2) << "x | " << verdict(client <= 1.3)
         << " |\n";
    }
    const std::string headline = quick_ ? "N=100, L=100" : "N=1000, L=100";
    if (const ScenarioResult* r = Find(headline)) {
      const double lw = Client(*r, "lockwatch");
      const double pga = Client(*r, "pg_activity");
      const double wiki = Client(*r, "wiki_selfjoin");
      md << "| at least 10x cheaper than pg_activity's query (" << headline << ") | " << Ratio(pga, lw)
         << " | " << verdict(pga / lw >= 10) << " |\n"
         << "| at least 100x cheaper than the wiki-style self-join (" << headline << ") | "
         << (std::isnan(wiki) ? std::string("self-join did not finish") : Ratio(wiki, lw)) << " | "
         << verdict(std::isnan(wiki) || wiki / lw >= 100) << " |\n";
    }
    const double lw1 = PgbenchMedian("lockwatch@1.0s");
    const double loss = (1 - lw1 / base) * 100;
    // A loss is only measurable against the run-to-run spread with no monitor: when that spread is wide
    // (a shared machine), the target cannot be judged from this run.
    const double spread = (base_hi - base_lo) / base * 100;
    const std::string result = spread > 10      ? std::string("INCONCLUSIVE (no-monitor spread above 10%)")
                               : lw1 >= base_lo ? std::string("met")
                                                : std::string("MISSED");
    md << "| no measurable pgbench loss at a 1 s interval | " << Fixed(-loss, 1)
       << "% vs no monitor (no-monitor runs spread " << Fixed(spread, 1) << "%) | " << result << " |\n";
  }

  std::map<std::string, std::string> flags_;
  bool quick_ = false;
  int reps_ = 5;
  int timeout_ms_ = 30000;
  std::string admin_dsn_;
  std::string monitor_dsn_;
  std::string exporter_pid_;
  std::string out_dir_;
  std::string self_;
  PGconn* admin_ = nullptr;
  std::string load_avg_start_;
  std::string load_avg_end_;
  double wall_seconds_ = 0;
  std::vector<ScenarioResult> results_;
  std::map<std::string, std::vector<std::tuple<int64_t, int, std::string>>> timed_out_;
  int pgbench_seconds_ = 10;
  int pgbench_reps_ = 3;
  std::string pgbench_scenario_;
  int64_t pgbench_rows_ = 0;
  std::vector<PgbenchRun> pgbench_runs_;
};

}  // namespace
}  // namespace lockwatch::bench

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const auto flags = lockwatch::bench::ParseFlags(argc, argv, 2);
  if (mode == "measure") return lockwatch::bench::MeasureMain(flags);
  if (mode == "run") {
    lockwatch::bench::Runner runner(flags);
    return runner.Main();
  }
  std::cerr << "usage: " << argv[0] << " run|measure [--flag=value ...] (see tests/bench/peers/run.sh)\n";
  return 2;
}
