#pragma once

// Helpers for the end-to-end tests: run the lockwatch binary, Prometheus and throwaway PostgreSQL clusters,
// talk HTTP and SQL. Everything stays on loopback / Unix sockets and every wait has a deadline.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <libpq-fe.h>

#include "tests/testing/temp_dir.h"

namespace lockwatch::e2e {

using Clock = std::chrono::steady_clock;

// A child process with stdout and stderr captured in one log file. The destructor kills and reaps it.
class Process {
 public:
  Process(const std::string& binary, const std::vector<std::string>& args, const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }
  bool Alive();
  void Signal(int sig) const;
  // The exit status (WEXITSTATUS, or 128 + signal) once exited before `timeout`.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);
  std::string Log() const;

 private:
  int pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
};

using TempDir = lockwatch::testing::TempDir;

void WriteFile(const std::string& path, const std::string& text);
std::string ReadFile(const std::string& path);

// Polls `pred` every 50 ms until it holds or `limit` passes; returns its last value.
bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit);

// The path of the lockwatch binary: $LOCKWATCH_BIN, else the build's.
std::string LockwatchBinary();
// $LOCKWATCH_TEST_DSN; fails the test (ADD_FAILURE) when unset.
std::string TestDsn();

// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
int FreePort();

// HTTP GET with a 3 s timeout. Returns the status code (0 when the request failed) and fills `body`.
long HttpGet(const std::string& url, std::string* body);

// The value of one series in a Prometheus text exposition, e.g. `lockwatch_up{target="default"}`.
std::optional<double> SeriesValue(const std::string& exposition, const std::string& series);

// The agent: `lockwatch run` with `args`, listening on 127.0.0.1:0; port() is read from its log.
class Agent {
 public:
  Agent(const std::string& dir, std::vector<std::string> args);
  Process& process() { return *process_; }
  int port() const { return port_; }
  std::string Url(const std::string& path) const;
  std::string Metrics() const;
  std::optional<double> Series(const std::string& series) const { return SeriesValue(Metrics(), series); }
  std::string Log() const { return process_->Log(); }

 private:
  std::unique_ptr<Process> process_;
  int port_ = 0;
};

// A Prometheus server scraping `agent_port` every second, with its own storage in `dir`.
class Prometheus {
 public:
  Prometheus(const std::string& dir, int agent_port);
  bool ready() const { return ready_; }
  // The value of an instant query returning one sample; nullopt for an empty result or an error.
  std::optional<double> Query(const std::string& promql) const;
  std::string Log() const { return process_->Log(); }

 private:
  int port_ = 0;
  bool ready_ = false;
  std::unique_ptr<Process> process_;
};

// A throwaway PostgreSQL 15 cluster from tests/pg_cluster.sh, removed on destruction.
class OwnCluster {
 public:
  OwnCluster();
  ~OwnCluster();
  bool started() const { return !dir_.empty(); }
  const std::string& dsn() const { return dsn_; }
  bool Stop();
  bool Start();

 private:
  std::string dir_;
  std::string dsn_;
};

// Minimal libpq session for setting up lock pile-ups.
class PgSession {
 public:
  explicit PgSession(const std::string& dsn);
  ~PgSession();
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;
  bool ok() const;
  std::string error() const;
  // Runs a statement synchronously; returns the first column of the first row (or "" / error text).
  std::optional<std::string> Exec(const std::string& sql);
  // Sends a statement without waiting (it may block on a lock).
  bool Send(const std::string& sql);
  // Waits for the result of Send(); true when it succeeded.
  bool Finish();

 private:
  PGconn* conn_ = nullptr;
};

}  // namespace lockwatch::e2e
