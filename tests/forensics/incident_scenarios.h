#pragma once

// Incident dumps for the timeline, analyze and report tests: a scenario is a list of polls; WriteIncidentDump
// runs them through the real IncidentTracker and FlightRecorder and writes what the agent writes (compact
// "before" records, "opened", "during" snapshots, "updated", "resolved", two "after" snapshots, end).

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/analysis.h"
#include "agent/core/flight_recorder.h"
#include "agent/core/incident.h"
#include "agent/core/snapshot.h"
#include "agent/forensics/dump_writer.h"

#include "tests/testing/snapshot_builder.h"

namespace lockwatch::forensics::test {

using testing::Sec;

// 2026-11-25T14:00:00Z.
inline constexpr core::TimestampUs kT0 = Sec(1795615200);

enum class RootState : uint8_t { kInTransaction, kCommitted, kGone };

struct RootSpec {
  int32_t pid = 100;
  uint32_t xid = 731;
  std::string usename = "app_user";
  std::string application_name = "billing-api";
  std::string client_addr = "10.20.30.40";
  std::string query = "update accounts set balance = 0 where id = 42";
  core::TimestampUs xact_start = kT0 - Sec(300);
  core::TimestampUs backend_start = kT0 - Sec(3600);
};

// One poll. Waiters of root r are pids 200 + 100 * r + i and wait on the root's xid since kT0 + i/2 seconds.
struct PollSpec {
  core::TimestampUs at = kT0;
  std::vector<RootState> roots;  // per RootSpec
  std::vector<int> waiters;      // per RootSpec: sessions waiting
  // Sessions that waited at an earlier poll and are now idle (released, or gave up): per RootSpec.
  std::vector<int> idle_waiters;
  int surge = 0;        // new "mobile-api" sessions from 10.1.2.x queued behind root 0
  int mobile_idle = 3;  // long-lived idle "mobile-api" sessions from 10.1.2.x
  int other_idle = 5;   // idle "billing-api" sessions from 10.20.30.x
};

inline core::Snapshot BuildPoll(const std::vector<RootSpec>& roots, const PollSpec& poll) {
  testing::SnapshotBuilder b;
  b.Now(poll.at).OwnPid(1).Session(1).State("active").Query("select lockwatch");
  for (size_t r = 0; r < roots.size(); ++r) {
    const RootState state = r < poll.roots.size() ? poll.roots[r] : RootState::kInTransaction;
    if (state == RootState::kGone) continue;
    b.Session(roots[r].pid)
        .State(state == RootState::kInTransaction ? "idle in transaction" : "idle")
        .Query(roots[r].query);
  }
  for (size_t r = 0; r < roots.size(); ++r) {
    const int waiting = r < poll.waiters.size() ? poll.waiters[r] : 0;
    const int idle = r < poll.idle_waiters.size() ? poll.idle_waiters[r] : 0;
    for (int i = 0; i < waiting + idle; ++i) {
      b.Session(200 + 100 * static_cast<int32_t>(r) + i)
          .State(i < waiting ? "active" : "idle")
          .Query("update accounts set balance = balance + 1 where id = 42");
    }
  }
  for (int i = 0; i < poll.surge; ++i)
    b.Session(7000 + i).State("active").Query("select * from feed where id = 7");
  for (int i = 0; i < poll.mobile_idle; ++i) b.Session(6000 + i).State("idle").Query("select 1");
  for (int i = 0; i < poll.other_idle; ++i) b.Session(5000 + i).State("idle").Query("select 1");
  // Locks.
  for (size_t r = 0; r < roots.size(); ++r) {
    const RootState state = r < poll.roots.size() ? poll.roots[r] : RootState::kInTransaction;
    if (state != RootState::kInTransaction) continue;
    b.Lock(roots[r].pid).TransactionId(roots[r].xid).Mode("ExclusiveLock").Granted();
    const int waiting = r < poll.waiters.size() ? poll.waiters[r] : 0;
    for (int i = 0; i < waiting; ++i) {
      b.Lock(200 + 100 * static_cast<int32_t>(r) + i)
          .TransactionId(roots[r].xid)
          .Mode("ShareLock")
          .Waiting(kT0 + Sec(i / 2));
    }
    if (r == 0) {
      for (int i = 0; i < poll.surge; ++i) {
        b.Lock(7000 + i).TransactionId(roots[r].xid).Mode("ShareLock").Waiting(poll.at - Sec(1));
      }
    }
  }
  core::Snapshot s = b.Build();
  s.current_database = "app";
  s.settings.push_back(core::Setting{"lock_timeout", "0"});
  for (core::Session& session : s.sessions) {
    session.datname = "app";
    session.usename = "app_user";
    session.backend_start = kT0 - Sec(3600);
    session.query_start = poll.at - Sec(20);
    session.state_change = poll.at - Sec(20);
    if (session.state != "idle") session.xact_start = poll.at - Sec(20);
    if (session.pid >= 7000) {
      session.application_name = "mobile-api";
      session.client_addr = "10.1.2." + std::to_string(session.pid % 250);
      session.backend_start = poll.at - Sec(2);
    } else if (session.pid >= 6000) {
      session.application_name = "mobile-api";
      session.client_addr = "10.1.2." + std::to_string(session.pid % 250);
    } else if (session.pid >= 200) {
      session.application_name = "billing-api";
      session.client_addr = "10.20.30." + std::to_string(session.pid % 250);
    }
    for (const RootSpec& root : roots) {
      if (session.pid != root.pid) continue;
      session.usename = root.usename;
      session.application_name = root.application_name;
      session.client_addr = root.client_addr;
      session.backend_start = root.backend_start;
      session.xact_start =
          session.state == "idle" ? std::nullopt : std::optional<core::TimestampUs>(root.xact_start);
    }
  }
  return s;
}

struct ScenarioOptions {
  QueryTextMode query_text = QueryTextMode::kNormalize;
  // Records written as they are (e.g. {"type":"action",...}) just before the poll with this index.
  std::vector<std::pair<size_t, nlohmann::json>> extra_records;
  bool close = true;  // false: the writer is destroyed without Close() (a .partial file is left)
};

// Writes the scenario to `path` (the final name; `path`.partial when not closed). Throws on writer errors.
inline void WriteIncidentDump(const std::string& path, const std::vector<RootSpec>& roots,
                              const std::vector<PollSpec>& polls, const ScenarioOptions& options = {}) {
  core::IncidentThresholds thresholds;
  thresholds.resolve_after_us = Sec(10);
  core::IncidentTracker tracker("db1_app", thresholds);
  core::FlightRecorder recorder;
  std::unique_ptr<DumpWriter> writer;
  const auto check = [](const core::Status& st) {
    if (!st.ok()) throw std::runtime_error(st.message());
  };
  int after = 0;
  bool resolved = false;
  for (size_t i = 0; i < polls.size(); ++i) {
    const core::Snapshot s = BuildPoll(roots, polls[i]);
    const core::Report report = core::Analyze(s);
    if (writer) {
      for (const auto& [index, record] : options.extra_records) {
        if (index == i) check(writer->WriteRecord(record));
      }
    }
    if (resolved) {
      if (after++ < 2) check(writer->WriteSnapshot("after", s, report));
      continue;
    }
    const std::vector<core::IncidentEvent> events = tracker.Observe(report, s, s.captured_at_us);
    for (const core::IncidentEvent& e : events) {
      if (e.kind == core::IncidentEventKind::kOpened) {
        DumpHeader header;
        header.target = "db1_app";
        header.incident_id = e.incident.id;
        header.created_at_us = s.captured_at_us;
        header.server_version_num = s.server_version_num;
        header.settings = s.settings;
        header.lockwatch_version = "0.1.0";
        DumpWriterOptions writer_options;
        writer_options.query_text = options.query_text;
        writer_options.flush_interval = std::chrono::milliseconds(0);
        core::Result<std::unique_ptr<DumpWriter>> created = DumpWriter::Create(path, header, writer_options);
        if (!created.ok()) throw std::runtime_error(created.status().message());
        writer = std::move(created).value();
        for (const core::RecordedEntry& entry : recorder.entries()) check(writer->WriteRecorded(entry));
        check(writer->WriteIncident(e, s.captured_at_us));
      }
    }
    if (!writer) {
      recorder.Record(s, report);
      continue;
    }
    check(writer->WriteSnapshot("during", s, report));
    for (const core::IncidentEvent& e : events) {
      if (e.kind == core::IncidentEventKind::kOpened) continue;
      check(writer->WriteIncident(e, s.captured_at_us));
      if (e.kind == core::IncidentEventKind::kResolved) resolved = true;
    }
  }
  if (!writer) throw std::runtime_error("the scenario never opened an incident");
  if (options.close) {
    check(writer->Close(polls.back().at + Sec(1)));
  } else {
    check(writer->Flush());
  }
}

// A pile-up behind one idle-in-transaction root: 2, 12, 20 waiters, then the root does `end` at kT0+20 s
// (kCommitted, kGone) or, with `waiters_give_up`, its waiters stop waiting while it stays in its transaction.
inline std::vector<PollSpec> PileUpPolls(RootState end, bool waiters_give_up = false) {
  std::vector<PollSpec> polls;
  const auto poll = [](int t, RootState state, int waiting, int idle) {
    PollSpec p;
    p.at = kT0 + Sec(t);
    p.roots = {state};
    p.waiters = {waiting};
    p.idle_waiters = {idle};
    return p;
  };
  polls.push_back(poll(-10, RootState::kInTransaction, 0, 0));
  polls.push_back(poll(-5, RootState::kInTransaction, 0, 0));
  polls.push_back(poll(0, RootState::kInTransaction, 2, 0));
  polls.push_back(poll(5, RootState::kInTransaction, 12, 0));
  polls.push_back(poll(10, RootState::kInTransaction, 16, 0));
  polls.push_back(poll(15, RootState::kInTransaction, 20, 0));
  const RootState after = waiters_give_up ? RootState::kInTransaction : end;
  for (int t = 20; t <= 45; t += 5) polls.push_back(poll(t, after, 0, 20));
  return polls;
}

}  // namespace lockwatch::forensics::test
