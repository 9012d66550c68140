#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "agent/core/snapshot.h"
#include "agent/core/status.h"

namespace lockwatch::pg {

// Settings of lockwatch's own session. Applied at connect; they keep the monitor from ever waiting in a
// lock queue or holding a connection it does not need.
struct SessionOptions {
  std::string application_name = "lockwatch";
  std::chrono::milliseconds statement_timeout{2000};
  std::chrono::milliseconds lock_timeout{100};
  std::chrono::seconds connect_timeout{5};
  int keepalives_idle_s = 10;
  int keepalives_interval_s = 5;
  int keepalives_count = 3;
};

// Cost of one poll, measured by the collector.
struct PollStats {
  double client_seconds = 0;    // wall time of the poll, round trips included
  double server_seconds = 0;    // statement execution time reported by the server (clock_timestamp delta)
  uint64_t bytes_received = 0;  // approximate size of the result text
  int round_trips = 0;
  bool locks_read = false;
  // Outcome of the best-effort relation names statement (OK when it was not needed or succeeded). A
  // failure leaves relations as oids; the poll itself still succeeds.
  core::Status relation_names_status;
};

// One pinned connection to one PostgreSQL server, and the poll that reads a Snapshot from it.
// Not thread-safe: one collector per target, used by one thread. Non-copyable; owns the connection.
class Collector {
 public:
  // `dsn` is a libpq conninfo string or URI; empty means libpq's PG* environment variables.
  explicit Collector(std::string dsn, SessionOptions options = {});
  ~Collector();
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // Opens the connection (if not open) and applies the session settings. Errors: kInvalidArgument for a bad
  // DSN (message names the bad part, never the password), kUnavailable when the server cannot be reached,
  // kPermissionDenied on authentication failure.
  core::Status Connect();
  bool connected() const;
  void Disconnect();

  // Reads one snapshot: pg_stat_activity, pg_locks (only when some backend waits on a heavyweight lock),
  // pg_prepared_xacts, server version, now(), own pid, relevant settings, names of locked relations
  // (best effort: a blocked catalog leaves the relation as an oid). Reconnects are the caller's job: on
  // kUnavailable the connection is dropped and Connect() must be called again.
  core::Result<core::Snapshot> Poll(PollStats* stats = nullptr);

  // The server_version_num of the connected server (0 when not connected).
  int server_version_num() const;
  // The DSN with the password removed, for logs.
  const std::string& redacted_dsn() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lockwatch::pg
