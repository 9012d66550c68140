#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/analysis.h"
#include "agent/core/flight_recorder.h"
#include "agent/core/incident.h"
#include "agent/core/snapshot.h"
#include "agent/forensics/dump_file.h"
#include "agent/forensics/dump_records.h"
#include "agent/forensics/dump_writer.h"
#include "agent/forensics/query_text.h"
#include "agent/forensics/retention.h"

namespace lockwatch::agent {

struct DumpWorkerOptions {
  std::string dir;  // created with mode 0700 when missing
  forensics::QueryTextMode query_text = forensics::QueryTextMode::kNormalize;
  std::chrono::milliseconds flush_interval{2000};
  forensics::RetentionPolicy retention;
  // Snapshot and other records queued beyond this are dropped (and counted): a slow or failing disk never
  // makes the poll thread wait or the agent's memory grow. Control messages (begin, end) are never dropped.
  size_t max_queued_records = 300;
  // How long the destructor keeps writing queued records before it closes the dump with what it has.
  std::chrono::milliseconds drain_timeout{1000};
  forensics::DumpFileSystem* fs = nullptr;  // the real filesystem when null (tests inject failures)
};

// What happened to dumps, reported from the worker's thread (so must be thread-safe).
class DumpObserver {
 public:
  virtual ~DumpObserver() = default;
  // `busy_seconds`: time the worker spent writing this dump (compression, normalisation, syscalls).
  virtual void OnDumpWritten(const std::string& path, uint64_t compressed_bytes, int records,
                             double busy_seconds) = 0;
  // A write failed; the dump is abandoned (its .partial keeps what was synced) until the next BeginDump.
  virtual void OnDumpError(const std::string& path, const std::string& message) = 0;
  virtual void OnRecordsDropped(uint64_t records) = 0;
};

// Writes one target's incident dumps on its own thread, so that compression, query normalisation and disk
// latency (or a full disk) never delay a poll. The poll thread hands over copies; every call returns at
// once. At most one dump is open at a time: BeginDump while one is open closes it first.
class DumpWorker {
 public:
  DumpWorker(std::string target, DumpWorkerOptions options, std::shared_ptr<DumpObserver> observer);
  // Writes what is queued (up to drain_timeout), closes an open dump (complete, renamed into place) and
  // joins the thread.
  ~DumpWorker();
  DumpWorker(const DumpWorker&) = delete;
  DumpWorker& operator=(const DumpWorker&) = delete;

  // Starts a dump named "lockwatch-<target>-<yyyymmddThhmmssZ of header.created_at_us>.dump.gz" with the
  // recorded history before the incident (written as compact "before" records).
  void BeginDump(forensics::DumpHeader header, std::vector<core::RecordedEntry> before);
  void AddSnapshot(std::string phase, core::Snapshot snapshot, core::Report report);
  void AddIncident(core::IncidentEvent event, core::TimestampUs at);
  void AddRecord(nlohmann::json record);
  // Writes the end record and renames the dump into place, then applies retention to the directory.
  void EndDump(core::TimestampUs at);

  // Blocks until everything queued so far has been handled (tests and shutdown).
  void WaitIdle();

 private:
  struct Job;
  void Enqueue(std::unique_ptr<Job> job, bool droppable);
  void Run();
  void Handle(Job& job);
  void Abandon(const std::string& message);
  void FlushIfDue();
  void CloseOpenDump(core::TimestampUs at);

  std::string target_;
  DumpWorkerOptions options_;
  std::shared_ptr<DumpObserver> observer_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::unique_ptr<Job>> queue_;  // guarded by mu_
  size_t queued_records_ = 0;               // droppable jobs in queue_
  bool busy_ = false;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};

  // Worker thread only.
  std::unique_ptr<forensics::DumpWriter> writer_;
  bool failed_ = false;  // the current dump failed; its records are dropped until the next BeginDump
  bool retention_applied_ = false;
  std::chrono::steady_clock::time_point last_write_{};
  bool unflushed_ = false;
  double busy_seconds_ = 0;  // spent on the open dump

  std::thread thread_;
};

}  // namespace lockwatch::agent
