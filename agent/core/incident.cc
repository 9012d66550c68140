#include "agent/core/incident.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace lockwatch::core {
namespace {

// Days since 1970-01-01 to a proleptic Gregorian civil date (the usual era-based conversion).
void CivilFromDays(int64_t days, int64_t* year, unsigned* month, unsigned* day) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *day = doy - (153 * mp + 2) / 5 + 1;
  *month = mp < 10 ? mp + 3 : mp - 9;
  *year = static_cast<int64_t>(yoe) + era * 400 + (*month <= 2 ? 1 : 0);
}

std::string FormatSeconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", s);
  return buf;
}

const Session* FindSession(const Snapshot& snapshot, int32_t pid) {
  for (const Session& s : snapshot.sessions) {
    if (s.pid == pid) return &s;
  }
  return nullptr;
}

IncidentRoot MakeRoot(const Root& root, const Snapshot& snapshot, TimestampUs now) {
  IncidentRoot out;
  out.pid = root.node.pid;
  out.gid = root.node.gid;
  out.classification = root.classification;
  out.first_seen_at = now;
  out.peak_blocked_sessions = root.blocked_sessions;
  if (const Session* s = root.node.is_prepared() ? nullptr : FindSession(snapshot, root.node.pid)) {
    out.usename = s->usename;
    out.application_name = s->application_name;
    out.client_addr = s->client_addr;
    out.state = s->state;
    out.query_start = s->query_start;
    out.xact_start = s->xact_start;
    out.query = s->query;
  } else if (root.node.is_prepared()) {
    for (const PreparedXact& p : snapshot.prepared) {
      if (p.gid == root.node.gid) {
        out.usename = p.owner;
        out.xact_start = p.prepared;
        break;
      }
    }
  }
  return out;
}

// Folds one observation's figures into the incident; true when a peak or the root set changed.
bool Accumulate(Incident& incident, const Report& report, const Snapshot& snapshot, TimestampUs now) {
  bool changed = false;
  const auto raise = [&changed](auto& peak, auto value) {
    if (value > peak) {
      peak = value;
      changed = true;
    }
  };
  raise(incident.peak_blocked_sessions, report.blocked_sessions);
  raise(incident.peak_depth, report.max_depth);
  raise(incident.peak_wait_seconds, report.max_wait_seconds);
  raise(incident.peak_roots, static_cast<int>(report.roots.size()));
  for (const Root& root : report.roots) {
    auto it = std::find_if(incident.roots.begin(), incident.roots.end(), [&root](const IncidentRoot& r) {
      return r.pid == root.node.pid && r.gid == root.node.gid;
    });
    if (it == incident.roots.end()) {
      incident.roots.push_back(MakeRoot(root, snapshot, now));
      changed = true;
    } else if (root.blocked_sessions > it->peak_blocked_sessions) {
      // A root's own peak is detail, not news: it does not make an update event by itself.
      it->peak_blocked_sessions = root.blocked_sessions;
    }
  }
  return changed;
}

}  // namespace

const char* IncidentEventKindName(IncidentEventKind kind) {
  switch (kind) {
    case IncidentEventKind::kOpened:
      return "opened";
    case IncidentEventKind::kUpdated:
      return "updated";
    case IncidentEventKind::kResolved:
      return "resolved";
  }
  return "unknown";
}

bool OverThresholds(const Report& report, const IncidentThresholds& thresholds, std::string* why) {
  std::string reason;
  if (report.max_wait_seconds > thresholds.max_wait_seconds) {
    reason = "lock wait " + FormatSeconds(report.max_wait_seconds) + " s > " +
             FormatSeconds(thresholds.max_wait_seconds) + " s";
  } else if (report.blocked_sessions >= thresholds.blocked_sessions) {
    reason = std::to_string(report.blocked_sessions) +
             " blocked sessions >= " + std::to_string(thresholds.blocked_sessions);
  } else if (report.max_depth > thresholds.max_depth) {
    reason = "chain depth " + std::to_string(report.max_depth) + " > " + std::to_string(thresholds.max_depth);
  } else {
    return false;
  }
  if (why != nullptr) *why = std::move(reason);
  return true;
}

std::string CompactUtc(TimestampUs us) {
  // Floor division so that instants before 1970 still format (never seen in practice, but never wrong).
  int64_t seconds = us / 1000000;
  if (us % 1000000 < 0) --seconds;
  int64_t days = seconds / 86400;
  int64_t rem = seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  CivilFromDays(days, &year, &month, &day);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04lld%02u%02uT%02lld%02lld%02lldZ", static_cast<long long>(year), month,
                day, static_cast<long long>(rem / 3600), static_cast<long long>(rem / 60 % 60),
                static_cast<long long>(rem % 60));
  return buf;
}

IncidentTracker::IncidentTracker(std::string target, IncidentThresholds thresholds)
    : target_(std::move(target)), thresholds_(thresholds) {}

std::vector<IncidentEvent> IncidentTracker::Observe(const Report& report, const Snapshot& snapshot,
                                                    TimestampUs now) {
  std::vector<IncidentEvent> events;
  std::string why;
  const bool over = OverThresholds(report, thresholds_, &why);

  if (!current_) {
    if (!over) return events;
    Incident incident;
    incident.target = target_;
    incident.id = target_ + "-" + CompactUtc(now);
    incident.started_at = now;
    incident.last_over_at = now;
    incident.trigger = std::move(why);
    incident.observations = 1;
    Accumulate(incident, report, snapshot, now);
    current_ = std::move(incident);
    quiet_since_.reset();
    events.push_back(IncidentEvent{IncidentEventKind::kOpened, *current_});
    return events;
  }

  Incident& incident = *current_;
  ++incident.observations;
  // Figures below the thresholds still count towards the peaks: the incident is the whole episode.
  const bool changed = Accumulate(incident, report, snapshot, now);
  if (over) {
    incident.last_over_at = now;
    quiet_since_.reset();
  } else if (!quiet_since_) {
    quiet_since_ = now;
  }

  if (quiet_since_ && now - *quiet_since_ >= thresholds_.resolve_after_us) {
    incident.ended_at = *quiet_since_;
    events.push_back(IncidentEvent{IncidentEventKind::kResolved, std::move(incident)});
    current_.reset();
    quiet_since_.reset();
    return events;
  }
  if (changed) events.push_back(IncidentEvent{IncidentEventKind::kUpdated, incident});
  return events;
}

}  // namespace lockwatch::core
