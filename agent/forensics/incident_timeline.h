#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"
#include "agent/core/status.h"
#include "agent/core/surge.h"
#include "agent/forensics/dump_reader.h"

namespace lockwatch::forensics {

// An incident reconstructed from a dump file: what `lockwatch analyze` prints and `lockwatch report`
// draws. Documented (with its JSON form) in agent/docs/analyze.md.

// One snapshot record (one poll) of the dump.
struct TimelinePoint {
  core::TimestampUs at = 0;
  std::string phase;  // "before", "during", "after", "manual" (or what a later writer wrote)
  bool compact = false;
  int sessions = 0;  // every session with a state (compact records: kept plus counted)
  int waiting = 0;
  int blocked_sessions = 0;
  int roots = 0;
  int max_depth = 0;
  double max_wait_seconds = 0;
  // Sessions blocked behind each root of Timeline::roots (same index) at this poll; 0 when not a root.
  std::vector<int> root_blocked;
};

// Why a root blocker stopped blocking, judged from the first poll after the last one that showed it.
enum class RootEnd : uint8_t {
  kStillBlocking,          // the last recorded poll still shows it blocking
  kCommitted,              // same backend, its transaction ended (COMMIT or ROLLBACK)
  kTerminated,             // its backend is gone (terminated, crashed or disconnected)
  kTerminatedByLockwatch,  // its backend is gone after a lockwatch action (not a dry run) against it
  kWaitersGaveUp,          // same transaction, but the sessions that waited no longer do
  kNowWaiting,             // it waits behind another session itself (no longer a root)
  kUnknown,                // stopped blocking; the next record does not show enough to say why
};

// "still_blocking", "committed_or_rolled_back", "terminated_or_disconnected", "terminated_by_lockwatch",
// "waiters_gave_up", "now_waiting", "unknown".
const char* RootEndName(RootEnd end);

struct TimelineRoot {
  core::NodeRef node;  // pid, or pid 0 and gid for a prepared transaction
  std::string usename;
  std::string application_name;
  std::string client_addr;
  std::string state;  // at first sight
  std::string query;  // as stored in the dump (kept, normalised, or "" when dropped)
  std::string query_fingerprint;
  std::optional<core::TimestampUs> backend_start;
  std::optional<core::TimestampUs> xact_start;
  std::optional<core::TimestampUs> query_start;
  core::RootClass classification = core::RootClass::kOther;
  core::TimestampUs first_seen_at = 0;
  core::TimestampUs last_seen_at = 0;
  int peak_blocked_sessions = 0;
  core::TimestampUs peak_at = 0;
  RootEnd end = RootEnd::kStillBlocking;
  std::optional<core::TimestampUs> ended_at;  // the first poll that no longer showed it blocking
  std::string end_detail;                     // the cause in words, e.g. "transaction ended; 12 released"
};

// A remediation audit record ({"type":"action", ...}).
struct TimelineAction {
  core::TimestampUs at = 0;
  std::string rule;
  std::string action;  // "log", "cancel", "terminate", ...
  int32_t pid = 0;
  std::string result;
  // The audit record's "decision": "planned", "executed", "failed" or "skipped" (empty in records that do
  // not say; read as executed).
  std::string decision;
  bool dry_run = false;
  std::optional<core::TimestampUs> backend_start;  // the victim's, when the record has it
};

// The dump's view of the incident (its last incident record).
struct TimelineIncident {
  std::string id;
  std::string trigger;
  core::TimestampUs started_at = 0;
  std::optional<core::TimestampUs> ended_at;
  core::TimestampUs last_over_at = 0;
  core::TimestampUs opened_at = 0;               // `at` of the "opened" record (started_at if absent)
  std::optional<core::TimestampUs> resolved_at;  // `at` of the "resolved" record
  int peak_blocked_sessions = 0;
  int peak_depth = 0;
  double peak_wait_seconds = 0;
  int peak_roots = 0;
  int observations = 0;
};

// Where sessions came from between the first poll and the poll with the most sessions.
struct TimelineSurge {
  bool detected = false;  // the increase passed core::SurgeThresholds (defaults)
  core::Surge by_pair;    // per (application, client network)
  core::Surge by_application;
  core::Surge by_network;
  // Sessions at the later poll whose backend_start is after the first poll; -1 when that poll is compact.
  int new_backends = -1;
};

// One line of the story, in time order.
struct TimelineEvent {
  core::TimestampUs at = 0;
  // "first_wait", "root", "incident_opened", "peak", "action", "root_end", "incident_resolved"
  std::string kind;
  std::string text;
};

struct Timeline {
  // From the header.
  int schema_version = 0;
  std::string target;
  std::string reason;  // "incident" or "manual"
  std::string incident_id;
  std::string lockwatch_version;
  std::string query_text;  // "keep", "normalize", "drop"
  core::TimestampUs created_at = 0;
  int server_version_num = 0;
  bool complete = false;
  std::vector<std::string> warnings;  // the reader's, then the timeline's (records it could not use)

  std::optional<TimelineIncident> incident;
  std::optional<core::TimestampUs> first_wait_began;  // earliest waitstart (or proxy) among all waiters
  core::NodeRef first_waiter;
  std::string first_wait_target;  // "ShareLock on transaction 731"

  std::vector<TimelinePoint> points;  // in file (time) order
  std::vector<TimelineRoot> roots;    // in order of first appearance
  std::optional<size_t> peak;         // index of the poll with the most blocked sessions (earliest of ties)
  core::Snapshot peak_snapshot;       // that poll, decoded, and its analysis
  core::Report peak_report;
  bool peak_compact = false;
  std::optional<TimelineSurge> surge;  // set when there are at least two polls
  std::vector<TimelineAction> actions;
  std::vector<TimelineEvent> events;
};

// Builds the timeline of a dump read by ReadDump. The reading is dispatched on dump.schema_version
// (every version ever written stays readable); an unknown version is kInvalidArgument. Snapshot records
// are decoded and re-analysed with core::Analyze (compact records keep every involved session, so the
// graph is the same). A record that cannot be decoded is skipped with a warning; a dump without a single
// usable snapshot record is kCorrupt. Never throws.
core::Result<Timeline> BuildTimeline(const Dump& dump);

// ReadDump + BuildTimeline; every error message starts with `path`.
core::Result<Timeline> ReadTimeline(const std::string& path);

// "45 s", "3m05s", "2h04m", "3d02h": short durations for people. Negative values are shown as 0 s.
std::string FormatDuration(double seconds);

// "13:45:07" (UTC time of day).
std::string FormatClock(core::TimestampUs us);

// "2026-11-25 13:45:07 UTC".
std::string FormatDateTime(core::TimestampUs us);

// One line of the story of a root: "pid 100 (app_user, billing-api, 10.20.30.100)"; "prepared
// transaction 'gid'" for pid 0. Strings are as stored (callers escape for their medium).
std::string RootName(const TimelineRoot& root);

}  // namespace lockwatch::forensics
