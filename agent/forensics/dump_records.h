#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/analysis.h"
#include "agent/core/flight_recorder.h"
#include "agent/core/incident.h"
#include "agent/core/snapshot.h"
#include "agent/core/status.h"
#include "agent/forensics/query_text.h"

namespace lockwatch::forensics {

// The dump file format: gzip-compressed JSON lines, a header line, records, an end trailer. Documented in
// agent/docs/dump-format.md. Within one schema version fields and record types are only ever added;
// anything else bumps kDumpSchemaVersion, and readers refuse versions newer than they know.
inline constexpr int kDumpSchemaVersion = 1;
inline constexpr const char* kDumpFormatName = "lockwatch-dump";

struct DumpHeader {
  std::string target;               // the target's name (never a DSN with a password)
  std::string reason = "incident";  // "incident" or "manual"
  std::string incident_id;          // "" when not about an incident
  core::TimestampUs created_at_us = 0;
  int server_version_num = 0;
  std::vector<core::Setting> settings;
  std::string lockwatch_version;                         // e.g. "0.1.0"
  QueryTextMode query_text = QueryTextMode::kNormalize;  // recorded so readers know what "query" holds
};

// Line 1.
nlohmann::json HeaderJson(const DumpHeader& header);

// {"type":"snapshot","phase":...,"captured_at":...,"snapshot":{...},"report":{...}}: the encoding of
// `lockwatch tree --json` split into its snapshot and report parts, plus pg_locks rows and relation names,
// with query text processed by `mode`.
nlohmann::json SnapshotRecord(std::string_view phase, const core::Snapshot& snapshot,
                              const core::Report& report, QueryTextMode mode);

// A flight-recorder entry as a "before" snapshot record: "compact": true, involved sessions only, plus
// "uninvolved_sessions" counts; summary.sessions and sessions_by_state still count every session.
nlohmann::json RecordedEntryRecord(const core::RecordedEntry& entry, QueryTextMode mode);

// {"type":"incident","event":"opened"|"updated"|"resolved","at":...,"incident":{...}}.
nlohmann::json IncidentRecord(const core::IncidentEvent& event, core::TimestampUs at, QueryTextMode mode);

// {"type":"end","at":...,"records":N} where N counts the records between header and trailer.
nlohmann::json EndRecord(core::TimestampUs at, int records);

// Decodes the "snapshot" object of a snapshot record back into the model (sessions, locks, prepared
// transactions, relation names, settings). Query text comes back as stored (possibly normalised or "").
// Errors: kCorrupt naming the field.
core::Result<core::Snapshot> DecodeSnapshot(const nlohmann::json& snapshot);

}  // namespace lockwatch::forensics
