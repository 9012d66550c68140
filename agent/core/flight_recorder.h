#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"

namespace lockwatch::core {

// Limits of a FlightRecorder. Both are enforced on every Record().
struct FlightRecorderOptions {
  TimestampUs max_age_us = 5LL * 60 * 1000000;  // keep entries captured within this of the newest one
  size_t max_bytes = size_t{64} * 1024 * 1024;  // cap on the sum of RecordedEntry::estimated_bytes
};

// Sessions not involved in any wait, reduced to a count per (state, application, client network).
struct SessionGroup {
  std::string state;
  std::string application_name;
  std::string client_network;  // "10.1.2.0/24", "2001:db8:1:2::/64", "" for local sockets
  int count = 0;
};

// One recorded poll. Involved sessions (waiting, blocking, in an edge, or in the lock group of one) are
// kept whole, with every lock row on a contended target (a target some row waits for); everything else
// is reduced to `uninvolved`. The report is kept whole (it only describes involved sessions).
struct RecordedEntry {
  TimestampUs captured_at_us = 0;
  int server_version_num = 0;
  std::string current_database;
  std::vector<Session> sessions;       // involved only, in snapshot order
  std::vector<LockRow> locks;          // rows on contended targets
  std::vector<PreparedXact> prepared;  // all (there are few)
  std::vector<RelationName> relation_names;
  std::vector<SessionGroup> uninvolved;  // sorted by (state, application, network)
  int uninvolved_sessions = 0;           // sum of uninvolved[].count
  Report report;
  size_t estimated_bytes = 0;  // EstimateBytes(*this), computed once at Record()
};

// The network a client address belongs to for grouping: IPv4 /24, IPv6 /64 (IPv4-mapped IPv6 as IPv4).
// Returns the input unchanged when it is not an address (and "" for "").
std::string ClientNetwork(std::string_view client_addr);

// Compacts one analysed snapshot into an entry (estimated_bytes filled).
RecordedEntry CompactEntry(const Snapshot& snapshot, const Report& report);

// An estimate of the heap and inline bytes an entry holds: struct sizes plus string lengths. It is an
// estimate (allocator overhead and small-string buffers are not modelled) but it grows linearly with
// what is kept, which is what the cap needs.
size_t EstimateBytes(const RecordedEntry& entry);

// The entry as a snapshot (involved sessions and contended locks only), e.g. to encode or re-analyse it.
Snapshot ToSnapshot(const RecordedEntry& entry);

// A bounded in-memory history of recent polls of one target. Pure; not thread-safe.
class FlightRecorder {
 public:
  explicit FlightRecorder(FlightRecorderOptions options = {});

  // Adds a poll (time is the snapshot's captured_at_us), then evicts entries older than max_age_us before
  // the newest one and, oldest first, entries until the total is within max_bytes. An entry larger than
  // max_bytes by itself is not kept.
  void Record(const Snapshot& snapshot, const Report& report);

  // Oldest first.
  const std::deque<RecordedEntry>& entries() const { return entries_; }
  size_t bytes() const { return bytes_; }
  size_t size() const { return entries_.size(); }
  const FlightRecorderOptions& options() const { return options_; }
  void Clear();

 private:
  void Add(RecordedEntry entry);

  FlightRecorderOptions options_;
  std::deque<RecordedEntry> entries_;
  size_t bytes_ = 0;
};

}  // namespace lockwatch::core
