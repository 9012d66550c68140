#include "agent/core/flight_recorder.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>
#include <utility>

namespace lockwatch::core {
namespace {

bool ParseIpv4(std::string_view text, unsigned octets[4]) {
  int index = 0;
  unsigned value = 0;
  int digits = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '.') {
      if (digits == 0 || value > 255 || index > 3) return false;
      octets[index++] = value;
      value = 0;
      digits = 0;
    } else if (text[i] >= '0' && text[i] <= '9' && digits < 3) {
      value = value * 10 + static_cast<unsigned>(text[i] - '0');
      ++digits;
    } else {
      return false;
    }
  }
  return index == 4;
}

bool ParseGroups(std::string_view text, std::vector<unsigned>* groups) {
  if (text.empty()) return true;
  size_t start = 0;
  while (true) {
    const size_t colon = text.find(':', start);
    const std::string_view part = text.substr(start, colon == std::string_view::npos ? colon : colon - start);
    if (part.empty() || part.size() > 4) return false;
    unsigned value = 0;
    for (char c : part) {
      unsigned digit = 0;
      if (c >= '0' && c <= '9') {
        digit = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<unsigned>(c - 'A' + 10);
      } else {
        return false;
      }
      value = value * 16 + digit;
    }
    groups->push_back(value);
    if (colon == std::string_view::npos) return true;
    start = colon + 1;
  }
}

bool ParseIpv6(std::string_view text, unsigned groups[8]) {
  std::vector<unsigned> head;
  std::vector<unsigned> tail;
  const size_t gap = text.find("::");
  if (gap == std::string_view::npos) {
    if (!ParseGroups(text, &head) || head.size() != 8) return false;
  } else {
    if (!ParseGroups(text.substr(0, gap), &head) || !ParseGroups(text.substr(gap + 2), &tail)) return false;
    if (head.size() + tail.size() > 7) return false;
  }
  std::fill(groups, groups + 8, 0U);
  std::copy(head.begin(), head.end(), groups);
  std::copy(tail.begin(), tail.end(), groups + (8 - tail.size()));
  return true;
}

// The identity columns of pg_locks, as one comparable value.
using TargetKey =
    std::tuple<std::string, std::optional<uint32_t>, std::optional<uint32_t>, std::optional<int32_t>,
               std::optional<int32_t>, std::optional<std::string>, std::optional<uint32_t>,
               std::optional<uint32_t>, std::optional<uint32_t>, std::optional<int32_t>>;

TargetKey KeyOf(const LockRow& r) {
  return TargetKey{r.locktype,   r.database,      r.relation, r.page,  r.tuple,
                   r.virtualxid, r.transactionid, r.classid,  r.objid, r.objsubid};
}

size_t OptStringBytes(const std::optional<std::string>& s) { return s ? s->size() : 0; }

size_t TargetBytes(const LockTarget& t) {
  return t.locktype.size() + t.text.size() + OptStringBytes(t.relation);
}

}  // namespace

std::string ClientNetwork(std::string_view client_addr) {
  std::string_view addr = client_addr;
  if (const size_t slash = addr.find('/'); slash != std::string_view::npos) addr = addr.substr(0, slash);
  if (const size_t zone = addr.find('%'); zone != std::string_view::npos) addr = addr.substr(0, zone);
  const bool has_colon = addr.find(':') != std::string_view::npos;
  const bool has_dot = addr.find('.') != std::string_view::npos;
  if (has_colon && has_dot) addr = addr.substr(addr.rfind(':') + 1);  // ::ffff:a.b.c.d
  unsigned octets[4];
  if (!has_colon || has_dot) {
    if (!ParseIpv4(addr, octets)) return std::string(client_addr);
    char buf[24];
    std::snprintf(buf, sizeof buf, "%u.%u.%u.0/24", octets[0], octets[1], octets[2]);
    return buf;
  }
  unsigned groups[8];
  if (!ParseIpv6(addr, groups)) return std::string(client_addr);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%x:%x:%x:%x::/64", groups[0], groups[1], groups[2], groups[3]);
  return buf;
}

RecordedEntry CompactEntry(const Snapshot& snapshot, const Report& report) {
  RecordedEntry entry;
  entry.captured_at_us = snapshot.captured_at_us;
  entry.server_version_num = snapshot.server_version_num;
  entry.current_database = snapshot.current_database;
  entry.prepared = snapshot.prepared;
  entry.relation_names = snapshot.relation_names;
  entry.report = report;

  // Involved: every pid the report names, every pid with a waiting lock row, and their lock-group members
  // (parallel workers of a blocked or blocking leader are part of the story).
  std::set<int32_t> involved;
  for (const Edge& e : report.edges) {
    involved.insert(e.waiter.pid);
    involved.insert(e.blocker.pid);
  }
  for (const Waiter& w : report.waiters) involved.insert(w.node.pid);
  for (const Root& r : report.roots) involved.insert(r.node.pid);
  std::set<TargetKey> contended;
  for (const LockRow& row : snapshot.locks) {
    if (row.granted) continue;
    contended.insert(KeyOf(row));
    if (row.pid) involved.insert(*row.pid);
  }
  involved.erase(0);

  std::map<std::tuple<std::string, std::string, std::string>, int> groups;
  for (const Session& s : snapshot.sessions) {
    const bool in = involved.count(s.pid) > 0 || (s.leader_pid && involved.count(*s.leader_pid) > 0);
    if (in) {
      entry.sessions.push_back(s);
    } else {
      ++groups[{s.state, s.application_name, ClientNetwork(s.client_addr)}];
      ++entry.uninvolved_sessions;
    }
  }
  for (auto& [key, count] : groups) {
    entry.uninvolved.push_back(SessionGroup{std::get<0>(key), std::get<1>(key), std::get<2>(key), count});
  }
  for (const LockRow& row : snapshot.locks) {
    if (contended.count(KeyOf(row)) > 0) entry.locks.push_back(row);
  }
  entry.estimated_bytes = EstimateBytes(entry);
  return entry;
}

size_t EstimateBytes(const RecordedEntry& e) {
  size_t n = sizeof(RecordedEntry) + e.current_database.size();
  for (const Session& s : e.sessions) {
    n += sizeof(Session) + s.usename.size() + s.application_name.size() + s.client_addr.size() +
         s.datname.size() + s.backend_type.size() + s.state.size() + s.wait_event_type.size() +
         s.wait_event.size() + s.query.size();
  }
  for (const LockRow& r : e.locks) {
    n += sizeof(LockRow) + r.locktype.size() + OptStringBytes(r.virtualxid) + r.virtualtransaction.size();
  }
  for (const PreparedXact& p : e.prepared) {
    n += sizeof(PreparedXact) + p.gid.size() + p.owner.size() + p.database.size();
  }
  for (const RelationName& r : e.relation_names) n += sizeof(RelationName) + r.name.size();
  for (const SessionGroup& g : e.uninvolved) {
    n += sizeof(SessionGroup) + g.state.size() + g.application_name.size() + g.client_network.size();
  }
  const Report& r = e.report;
  for (const Edge& edge : r.edges) {
    n += sizeof(Edge) + edge.waiter.gid.size() + edge.blocker.gid.size() + TargetBytes(edge.target);
  }
  for (const Root& root : r.roots) n += sizeof(Root) + root.node.gid.size();
  for (const Cycle& c : r.cycles) n += sizeof(Cycle) + c.pids.size() * sizeof(int32_t);
  for (const Waiter& w : r.waiters) n += sizeof(Waiter) + w.node.gid.size() + TargetBytes(w.target);
  n += r.unknown_pids.size() * sizeof(int32_t);
  return n;
}

Snapshot ToSnapshot(const RecordedEntry& entry) {
  Snapshot s;
  s.server_version_num = entry.server_version_num;
  s.captured_at_us = entry.captured_at_us;
  s.current_database = entry.current_database;
  s.locks_read = !entry.locks.empty();
  s.sessions = entry.sessions;
  s.locks = entry.locks;
  s.prepared = entry.prepared;
  s.relation_names = entry.relation_names;
  return s;
}

FlightRecorder::FlightRecorder(FlightRecorderOptions options) : options_(options) {}

void FlightRecorder::Record(const Snapshot& snapshot, const Report& report) {
  Add(CompactEntry(snapshot, report));
}

void FlightRecorder::Add(RecordedEntry entry) {
  const TimestampUs newest = entry.captured_at_us;
  if (entry.estimated_bytes <= options_.max_bytes) {
    bytes_ += entry.estimated_bytes;
    entries_.push_back(std::move(entry));
  }
  // Age is measured from the newest capture, not a clock: the recorder holds "the last N minutes of polls".
  while (!entries_.empty() &&
         (newest - entries_.front().captured_at_us > options_.max_age_us || bytes_ > options_.max_bytes)) {
    bytes_ -= entries_.front().estimated_bytes;
    entries_.pop_front();
  }
}

void FlightRecorder::Clear() {
  entries_.clear();
  bytes_ = 0;
}

}  // namespace lockwatch::core
