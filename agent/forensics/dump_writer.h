#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/core/analysis.h"
#include "agent/core/flight_recorder.h"
#include "agent/core/incident.h"
#include "agent/core/snapshot.h"
#include "agent/core/status.h"
#include "agent/forensics/dump_file.h"
#include "agent/forensics/dump_records.h"
#include "agent/forensics/query_text.h"

namespace lockwatch::forensics {

struct DumpWriterOptions {
  // Records are compressed, flushed (Z_SYNC_FLUSH) and fdatasync()ed at most this long after being written,
  // so a crash loses at most this much. 0 flushes after every record.
  std::chrono::milliseconds flush_interval{2000};
  QueryTextMode query_text = QueryTextMode::kNormalize;
  int compression_level = 6;
  // Monotonic clock for the flush interval (microseconds); steady_clock when empty. Tests pass a fake.
  std::function<int64_t()> monotonic_us;
  // Filesystem seam; the real one when null. Must outlive the writer.
  DumpFileSystem* fs = nullptr;
};

// Writes one dump file progressively: "<path>.partial" is created exclusively (mode 0600) and holds every
// record up to the last flush point; Close() writes the end trailer, fsyncs, renames it to `path`
// atomically and fsyncs the directory, so `path` exists only when complete. A writer destroyed without
// Close() leaves the .partial file (readable up to its last flush, as after a crash).
//
// Every error (ENOSPC, EIO, ...) is returned as a Status and makes the writer failed: later calls return the
// same error; the .partial file keeps what was synced before. Not thread-safe.
class DumpWriter {
 public:
  // Creates "<path>.partial" and writes the header line (flushed and synced at once, so even an
  // immediately killed writer leaves a recognisable file). `header.query_text` is set from the options.
  static core::Result<std::unique_ptr<DumpWriter>> Create(const std::string& path, DumpHeader header,
                                                          DumpWriterOptions options = {});
  ~DumpWriter();
  DumpWriter(const DumpWriter&) = delete;
  DumpWriter& operator=(const DumpWriter&) = delete;

  // phase: "before", "during", "after" or "manual".
  core::Status WriteSnapshot(const std::string& phase, const core::Snapshot& snapshot,
                             const core::Report& report);
  // A flight-recorder entry as a compact "before" snapshot record.
  core::Status WriteRecorded(const core::RecordedEntry& entry);
  core::Status WriteIncident(const core::IncidentEvent& event, core::TimestampUs at);
  // Any record (one JSON value; written as one line).
  core::Status WriteRecord(const nlohmann::json& record);

  // Forces a flush point now (Z_SYNC_FLUSH + fdatasync).
  core::Status Flush();
  // Writes {"type":"end"}, finishes the gzip stream, fsyncs, renames to the final path, fsyncs the directory.
  core::Status Close(core::TimestampUs at);

  const std::string& path() const { return path_; }
  std::string partial_path() const { return path_ + ".partial"; }
  int records() const { return records_; }
  uint64_t compressed_bytes() const { return compressed_bytes_; }
  uint64_t uncompressed_bytes() const { return uncompressed_bytes_; }

 private:
  struct Deflater;
  DumpWriter(std::string path, DumpWriterOptions options, std::unique_ptr<WritableFile> file);
  core::Status WriteLine(const nlohmann::json& record, bool count);
  core::Status Deflate(const char* data, size_t size, int flush_mode);
  core::Status Fail(core::Status status);
  int64_t NowUs() const;

  std::string path_;
  DumpWriterOptions options_;
  std::unique_ptr<WritableFile> file_;
  std::unique_ptr<Deflater> deflater_;
  core::Status failed_;
  bool closed_ = false;
  bool dirty_ = false;
  int64_t last_flush_us_ = 0;
  int records_ = 0;
  uint64_t compressed_bytes_ = 0;
  uint64_t uncompressed_bytes_ = 0;
};

}  // namespace lockwatch::forensics
