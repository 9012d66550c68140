#pragma once

// Building blocks of the soak test: a libpq session whose every wait has a deadline, /proc readings of the
// agent and of the PostgreSQL server, a paused server, a full disk, a webhook receiver that never answers,
// and a parsed Prometheus exposition. Everything stays on this machine (loopback, Unix sockets).

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>

namespace lockwatch::soak {

using Clock = std::chrono::steady_clock;

// A libpq session that never blocks past a deadline: connecting is bounded by the conninfo's
// connect_timeout (set it), results by the deadline given to Wait/Exec. After a missed deadline the
// session is broken (the statement may still be running on the server) and is closed on destruction.
class PgConn {
 public:
  explicit PgConn(const std::string& dsn);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  bool ok() const;
  std::string error() const;
  // Sends a statement without waiting for it (it may queue for a lock).
  bool Send(const std::string& sql);
  // Collects every result of the last Send(); true when all succeeded before `deadline`. `first_value`
  // receives the first column of the first row, if any.
  bool Wait(Clock::time_point deadline, std::string* first_value = nullptr);
  // Send + Wait: the first column of the first row ("" for none); nullopt on error or timeout.
  std::optional<std::string> Exec(const std::string& sql,
                                  std::chrono::milliseconds limit = std::chrono::milliseconds(10000));

 private:
  PGconn* conn_ = nullptr;
  bool broken_ = false;
  std::string error_;
};

// Runs `body(stop)` on a thread until `stop` is set; the destructor sets it and joins, so the thread never
// outlives the test even when an assertion returns early. `body` must return soon after `stop` is set.
class BackgroundLoop {
 public:
  explicit BackgroundLoop(std::function<void(const std::atomic<bool>& stop)> body);
  ~BackgroundLoop();
  BackgroundLoop(const BackgroundLoop&) = delete;
  BackgroundLoop& operator=(const BackgroundLoop&) = delete;
  void Stop();

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Sleeps until `until` or until `stop` is set, whichever comes first; returns !stop.
bool SleepUnless(const std::atomic<bool>& stop, Clock::time_point until);

// Polls `pred` every `period` until it holds or `limit` passes; returns its last value.
bool Until(const std::function<bool()>& pred, std::chrono::milliseconds limit,
           std::chrono::milliseconds period = std::chrono::milliseconds(200));

// --- /proc -------------------------------------------------------------------------------------------

// VmRSS of `pid` in KiB; nullopt when the process is gone.
std::optional<long> ResidentKib(int pid);
// Number of entries in /proc/<pid>/fd; -1 when unreadable.
int OpenFds(int pid);
// Pids whose parent is `ppid`.
std::vector<int> ChildrenOf(int ppid);
// Pids of processes whose command line (arguments joined by spaces) equals `cmdline`.
std::vector<int> ProcessesWithCmdline(const std::string& cmdline);
// Single-letter state from /proc/<pid>/stat ('R', 'S', 'T', 'Z', ...); 0 when gone.
char ProcessState(int pid);

// --- the PostgreSQL server ---------------------------------------------------------------------------

// The first line of <data_dir>/postmaster.pid, when that process is alive; 0 otherwise.
int PostmasterPid(const std::string& data_dir);

// pg_ctl as the cluster's owner (`postgres` when we are root). `args` follow `pg_ctl -D <data_dir>`.
// Returns the exit status.
int PgCtl(const std::string& data_dir, const std::string& args);

// SIGSTOPs every child of the postmaster (not the postmaster itself) at construction and at each Sweep()
// (new backends forked since are stopped too); the destructor SIGCONTs every process it stopped and every
// current child, so a failing test never leaves a frozen server behind.
class ServerPause {
 public:
  explicit ServerPause(int postmaster_pid);
  ~ServerPause();
  ServerPause(const ServerPause&) = delete;
  ServerPause& operator=(const ServerPause&) = delete;
  void Sweep();
  size_t stopped() const { return stopped_.size(); }

 private:
  int postmaster_pid_;
  std::set<int> stopped_;
};

// --- a full disk -------------------------------------------------------------------------------------

// Writes `path` until the file system reports ENOSPC, with smaller and smaller writes so that not a byte
// is left. Returns the bytes written, or -1 when the file cannot be created.
long long FillUntilFull(const std::string& path);
// Bytes available to unprivileged users on the file system holding `path`; -1 on error.
long long AvailableBytes(const std::string& path);

// --- a webhook receiver that never answers -----------------------------------------------------------

// Listens on 127.0.0.1:<port()>, accepts every connection and never reads or answers: a webhook to it
// hangs until the sender's own timeout. Stops and closes everything on destruction.
class SilentListener {
 public:
  SilentListener();
  ~SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// --- metrics ------------------------------------------------------------------------------------------

// A Prometheus text exposition parsed into series -> value; labels may be given in any order.
class Exposition {
 public:
  Exposition() = default;
  explicit Exposition(const std::string& text);
  bool empty() const { return values_.empty(); }
  std::optional<double> Get(const std::string& name, const std::map<std::string, std::string>& labels) const;
  // Get() or `fallback`.
  double Or(const std::string& name, const std::map<std::string, std::string>& labels, double fallback) const;

 private:
  static std::string Key(const std::string& name, const std::map<std::string, std::string>& labels);
  std::map<std::string, double> values_;
};

}  // namespace lockwatch::soak
