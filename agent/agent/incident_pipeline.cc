#include "agent/agent/incident_pipeline.h"

#include <utility>

#include "agent/agent/log.h"

namespace lockwatch::agent {
namespace {

// Observes dumps for the metrics and the log; called on the dump worker's thread.
class DumpReporter : public DumpObserver {
 public:
  DumpReporter(std::string target, std::shared_ptr<metrics::AgentMetrics> metrics)
      : target_(std::move(target)), metrics_(std::move(metrics)) {}

  void OnDumpWritten(const std::string& path, uint64_t compressed_bytes, int records,
                     double busy_seconds) override {
    metrics_->RecordDumpWritten(target_, compressed_bytes);
    Log(spdlog::level::info, "incident dump written",
        {{"target", target_},
         {"path", path},
         {"bytes", static_cast<int64_t>(compressed_bytes)},
         {"records", records},
         {"write_seconds", busy_seconds}});
  }
  void OnDumpError(const std::string& path, const std::string& message) override {
    metrics_->RecordDumpError(target_);
    Log(spdlog::level::err, "cannot write incident dump; polling goes on",
        {{"target", target_}, {"path", path}, {"error", message}});
  }
  void OnRecordsDropped(uint64_t records) override { metrics_->RecordDumpRecordsDropped(target_, records); }

 private:
  std::string target_;
  std::shared_ptr<metrics::AgentMetrics> metrics_;
};

forensics::QueryTextMode QueryMode(const std::string& name) {
  return forensics::ParseQueryTextMode(name).value_or(forensics::QueryTextMode::kNormalize);
}

std::string RootText(const core::Incident& incident) {
  if (incident.roots.empty()) return "";
  const core::IncidentRoot& r = incident.roots.front();
  if (r.pid == 0) return "prepared transaction '" + r.gid + "'";
  return "pid " + std::to_string(r.pid) + " (" + r.usename + ", " + r.application_name + ", " + r.state + ")";
}

}  // namespace

IncidentPipelineOptions PipelineOptionsFromConfig(const config::AgentConfig& config) {
  IncidentPipelineOptions o;
  o.thresholds.max_wait_seconds = std::chrono::duration<double>(config.incidents.max_wait).count();
  o.thresholds.blocked_sessions = config.incidents.blocked_sessions;
  o.thresholds.max_depth = config.incidents.max_depth;
  o.thresholds.resolve_after_us =
      std::chrono::duration_cast<std::chrono::microseconds>(config.incidents.resolve_after).count();
  o.recorder.max_age_us =
      std::chrono::duration_cast<std::chrono::microseconds>(config.recorder.duration).count();
  o.recorder.max_bytes = static_cast<size_t>(config.recorder.max_bytes);
  o.dumps_enabled = config.dumps.enabled;
  o.dumps.dir = config.dumps.dir;
  o.dumps.query_text = QueryMode(config.dumps.query_text);
  o.dumps.flush_interval = config.dumps.flush_interval;
  o.dumps.retention.max_count = config.dumps.max_count;
  o.dumps.retention.max_age_us =
      std::chrono::duration_cast<std::chrono::microseconds>(config.dumps.max_age).count();
  o.dumps.retention.max_total_bytes = config.dumps.max_total_bytes;
  return o;
}

IncidentPipeline::IncidentPipeline(std::string target, IncidentPipelineOptions options,
                                   std::shared_ptr<metrics::AgentMetrics> metrics)
    : target_(std::move(target)),
      options_(std::move(options)),
      metrics_(std::move(metrics)),
      recorder_(options_.recorder),
      tracker_(target_, options_.thresholds) {
  if (options_.dumps_enabled) {
    worker_ = std::make_unique<DumpWorker>(target_, options_.dumps,
                                           std::make_shared<DumpReporter>(target_, metrics_));
  }
}

IncidentPipeline::~IncidentPipeline() = default;

std::vector<core::IncidentEvent> IncidentPipeline::OnPoll(const core::Snapshot& snapshot,
                                                          const core::Report& report) {
  const core::TimestampUs now = snapshot.captured_at_us;
  std::vector<core::IncidentEvent> events = tracker_.Observe(report, snapshot, now);
  bool opened = false;
  bool resolved = false;
  for (const core::IncidentEvent& event : events) {
    const core::Incident& in = event.incident;
    if (event.kind == core::IncidentEventKind::kOpened) {
      opened = true;
      Log(spdlog::level::warn, "incident opened",
          {{"target", target_},
           {"incident", in.id},
           {"trigger", in.trigger},
           {"blocked_sessions", in.peak_blocked_sessions},
           {"root", RootText(in)}});
      if (worker_) {
        forensics::DumpHeader header;
        header.target = target_;
        header.reason = "incident";
        header.incident_id = in.id;
        header.created_at_us = in.started_at;
        header.server_version_num = snapshot.server_version_num;
        header.settings = snapshot.settings;
        header.lockwatch_version = LOCKWATCH_VERSION;
        header.query_text = options_.dumps.query_text;
        std::vector<core::RecordedEntry> before(recorder_.entries().begin(), recorder_.entries().end());
        worker_->BeginDump(std::move(header), std::move(before));
        dump_open_ = true;
      }
    } else if (event.kind == core::IncidentEventKind::kResolved) {
      resolved = true;
      const double seconds = in.ended_at ? static_cast<double>(*in.ended_at - in.started_at) / 1e6 : 0;
      Log(spdlog::level::info, "incident resolved",
          {{"target", target_},
           {"incident", in.id},
           {"duration_s", seconds},
           {"peak_blocked_sessions", in.peak_blocked_sessions},
           {"roots", static_cast<int64_t>(in.roots.size())}});
    }
    if (worker_ && dump_open_) worker_->AddIncident(event, now);
  }
  if (worker_ && dump_open_) {
    // The poll that resolves the incident shows what ended it: written as "after".
    worker_->AddSnapshot(resolved ? "after" : "during", snapshot, report);
    if (resolved) {
      worker_->EndDump(now);
      dump_open_ = false;
    }
  }
  // Recorded after the dump took its history: the current poll is in the dump as "during", not "before".
  recorder_.Record(snapshot, report);
  metrics_->RecordIncidentState(target_, tracker_.current().has_value(), opened);
  metrics_->SetRecorder(target_, recorder_.size(), recorder_.bytes());
  return events;
}

void IncidentPipeline::AddRecord(nlohmann::json record) {
  if (worker_ && dump_open_) worker_->AddRecord(std::move(record));
}

void IncidentPipeline::WaitForDumps() {
  if (worker_) worker_->WaitIdle();
}

}  // namespace lockwatch::agent
