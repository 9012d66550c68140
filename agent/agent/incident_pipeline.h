#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent/dump_worker.h"
#include "agent/config/config.h"
#include "agent/core/analysis.h"
#include "agent/core/flight_recorder.h"
#include "agent/core/incident.h"
#include "agent/core/snapshot.h"
#include "agent/metrics/metrics.h"

namespace lockwatch::agent {

struct IncidentPipelineOptions {
  core::IncidentThresholds thresholds;
  core::FlightRecorderOptions recorder;
  bool dumps_enabled = true;
  DumpWorkerOptions dumps;
};

// The options of `config` (thresholds, recorder, dumps) for one target.
IncidentPipelineOptions PipelineOptionsFromConfig(const config::AgentConfig& config);

// One target's forensics on the poll thread: every successful poll goes into the flight recorder and the
// incident tracker; an incident opening starts a dump (the recorder's history first), every poll while it
// is open is appended, its resolution closes the dump. Dump writing happens on the DumpWorker's thread:
// OnPoll only copies. Not thread-safe (the poll thread calls it); metrics are thread-safe.
//
// Memory: the recorder (bounded by recorder.max_bytes), plus at most dumps.max_queued_records snapshots
// queued for the writer, plus one copy of the recorder's history while a dump starts.
class IncidentPipeline {
 public:
  IncidentPipeline(std::string target, IncidentPipelineOptions options,
                   std::shared_ptr<metrics::AgentMetrics> metrics);
  ~IncidentPipeline();
  IncidentPipeline(const IncidentPipeline&) = delete;
  IncidentPipeline& operator=(const IncidentPipeline&) = delete;

  // Returns the incident events of this poll (for hooks and the log).
  std::vector<core::IncidentEvent> OnPoll(const core::Snapshot& snapshot, const core::Report& report);

  // Appends a record (e.g. a remediation audit line) to the open dump, if any.
  void AddRecord(nlohmann::json record);

  const std::optional<core::Incident>& current() const { return tracker_.current(); }
  const core::FlightRecorder& recorder() const { return recorder_; }
  // Waits until the dump writer has handled everything queued (tests).
  void WaitForDumps();

 private:
  std::string target_;
  IncidentPipelineOptions options_;
  std::shared_ptr<metrics::AgentMetrics> metrics_;
  core::FlightRecorder recorder_;
  core::IncidentTracker tracker_;
  std::unique_ptr<DumpWorker> worker_;  // null when dumps are disabled
  bool dump_open_ = false;
};

}  // namespace lockwatch::agent
