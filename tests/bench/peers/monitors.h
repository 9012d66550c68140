#pragma once

// The monitors compared by the peers benchmark, behind one interface: lockwatch's real poll (pg::Collector
// plus core::Analyze), plain SQL monitors (the floor, pg_blocking_pids(), a wiki-style self-join,
// pg_activity's blocking query read from the installed package) and a postgres_exporter scrape.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lockwatch::bench {

// What one poll cost on the client side. Server time is measured separately (pg_stat_statements).
struct PollCost {
  bool ok = false;
  std::string error;
  double client_ms = 0;       // wall time of the poll (statements, transfer, decoding, analysis)
  uint64_t bytes = 0;         // result size on the wire (DataRow framing plus values), or HTTP body size
  double self_server_ms = 0;  // lockwatch only: the statement's own clock_timestamp() measurement
  int64_t blocked = -1;       // lockwatch only: blocked sessions found by the analysis
};

class Monitor {
 public:
  virtual ~Monitor() = default;
  virtual std::string Connect() = 0;  // empty on success, else the error
  virtual PollCost Poll() = 0;
};

struct MonitorOptions {
  std::string dsn;  // libpq conninfo of the monitoring role
  int statement_timeout_ms = 30000;
  std::string pg_activity_sql;   // path of pg_activity's get_blocking_post_090600.sql
  std::string exporter_address;  // host:port of postgres_exporter
};

// Method names, in report order.
const std::vector<std::string>& MethodNames();
// A short description of what each method does, for the report.
std::string MethodDescription(const std::string& method);

// Creates the monitor for `method`; null with *error set when the method is unknown or its inputs are
// missing (e.g. pg_activity's SQL file).
std::unique_ptr<Monitor> MakeMonitor(const std::string& method, const MonitorOptions& options,
                                     std::string* error);

}  // namespace lockwatch::bench
