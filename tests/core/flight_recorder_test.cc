#include "agent/core/flight_recorder.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/snapshot_builder.h"

namespace lockwatch::core {
namespace {

using testing::Sec;
using testing::SnapshotBuilder;

// 101 holds a row lock, 102 waits for it; `idle` more sessions do nothing. Every session has query text.
Snapshot PileUp(TimestampUs now, int idle) {
  SnapshotBuilder b;
  b.Now(now)
      .Session(101)
      .State("idle in transaction")
      .Query("update t set v = 1 where id = 7")
      .Session(102)
      .State("active")
      .Query("update t set v = 2 where id = 7");
  for (int i = 0; i < idle; ++i)
    b.Session(1000 + i).State(i % 2 == 0 ? "idle" : "active").Query("select secret()");
  b.Lock(101)
      .TransactionId(731)
      .Mode("ExclusiveLock")
      .Granted()
      .Lock(102)
      .TransactionId(731)
      .Mode("ShareLock")
      .Waiting(now - Sec(3))
      .Lock(102)
      .Relation(1, 16384)
      .Mode("RowExclusiveLock")
      .Granted()
      .Lock(1000)
      .Relation(1, 16385)
      .Mode("AccessShareLock")
      .Granted();
  Snapshot s = b.Build();
  for (size_t i = 2; i < s.sessions.size(); ++i) {
    s.sessions[i].application_name = "web";
    s.sessions[i].client_addr = i % 3 == 0 ? "10.1.2." + std::to_string(i) : "10.1.3." + std::to_string(i);
  }
  return s;
}

TEST(FlightRecorderTest, CompactsUninvolvedSessionsToCounts) {
  const Snapshot s = PileUp(Sec(100), 6);
  const RecordedEntry e = CompactEntry(s, Analyze(s));
  ASSERT_EQ(e.sessions.size(), 2U);
  EXPECT_EQ(e.sessions[0].pid, 101);
  EXPECT_EQ(e.sessions[1].pid, 102);
  EXPECT_EQ(e.sessions[0].query, "update t set v = 1 where id = 7");
  EXPECT_EQ(e.uninvolved_sessions, 6);
  int total = 0;
  for (const SessionGroup& g : e.uninvolved) {
    total += g.count;
    EXPECT_EQ(g.application_name, "web");
    EXPECT_TRUE(g.client_network == "10.1.2.0/24" || g.client_network == "10.1.3.0/24") << g.client_network;
  }
  EXPECT_EQ(total, 6);
  // No query text of an uninvolved session survives anywhere in the entry.
  for (const Session& kept : e.sessions) EXPECT_NE(kept.query, "select secret()");
}

TEST(FlightRecorderTest, KeepsOnlyLockRowsOfContendedTargets) {
  const Snapshot s = PileUp(Sec(100), 2);
  const RecordedEntry e = CompactEntry(s, Analyze(s));
  ASSERT_EQ(e.locks.size(), 2U);
  for (const LockRow& r : e.locks) EXPECT_EQ(r.locktype, "transactionid");
  EXPECT_EQ(e.report.blocked_sessions, 1);
  ASSERT_EQ(e.report.edges.size(), 1U);
  // Re-analysing the compact snapshot finds the same graph.
  const Report again = Analyze(ToSnapshot(e));
  EXPECT_EQ(again.blocked_sessions, 1);
  ASSERT_EQ(again.edges.size(), 1U);
  EXPECT_EQ(again.edges[0].blocker.pid, 101);
}

TEST(FlightRecorderTest, ParallelWorkersOfInvolvedLeaderAreKept) {
  Snapshot s = PileUp(Sec(100), 0);
  s.sessions.push_back(s.sessions[0]);
  s.sessions.back().pid = 555;
  s.sessions.back().leader_pid = 102;
  const RecordedEntry e = CompactEntry(s, Analyze(s));
  EXPECT_EQ(e.sessions.size(), 3U);
  EXPECT_EQ(e.uninvolved_sessions, 0);
}

TEST(FlightRecorderTest, EvictsEntriesOlderThanMaxAge) {
  FlightRecorderOptions o;
  o.max_age_us = Sec(60);
  FlightRecorder recorder(o);
  for (int t = 0; t <= 120; ++t) {
    const Snapshot s = PileUp(Sec(t), 3);
    recorder.Record(s, Analyze(s));
  }
  ASSERT_EQ(recorder.size(), 61U);
  EXPECT_EQ(recorder.entries().front().captured_at_us, Sec(60));
  EXPECT_EQ(recorder.entries().back().captured_at_us, Sec(120));
}

TEST(FlightRecorderTest, EnforcesByteCapOldestFirst) {
  const Snapshot probe = PileUp(Sec(0), 3);
  const size_t one = CompactEntry(probe, Analyze(probe)).estimated_bytes;
  FlightRecorderOptions o;
  o.max_bytes = one * 5 + one / 2;
  FlightRecorder recorder(o);
  size_t sum = 0;
  for (int t = 0; t < 20; ++t) {
    const Snapshot s = PileUp(Sec(t), 3);
    recorder.Record(s, Analyze(s));
    EXPECT_LE(recorder.bytes(), o.max_bytes);
  }
  ASSERT_EQ(recorder.size(), 5U);
  EXPECT_EQ(recorder.entries().front().captured_at_us, Sec(15));
  for (const RecordedEntry& e : recorder.entries()) sum += e.estimated_bytes;
  EXPECT_EQ(recorder.bytes(), sum);
}

TEST(FlightRecorderTest, EntryLargerThanCapIsNotKept) {
  FlightRecorderOptions o;
  o.max_bytes = 16;
  FlightRecorder recorder(o);
  const Snapshot s = PileUp(Sec(0), 3);
  recorder.Record(s, Analyze(s));
  EXPECT_EQ(recorder.size(), 0U);
  EXPECT_EQ(recorder.bytes(), 0U);
}

TEST(FlightRecorderTest, EstimateGrowsWithKeptQueryText) {
  Snapshot a = PileUp(Sec(0), 0);
  Snapshot b = a;
  b.sessions[0].query += std::string(1000, 'x');
  Snapshot c = a;
  c.sessions.push_back(a.sessions[0]);
  c.sessions.back().pid = 9999;  // uninvolved
  c.sessions.back().query = std::string(1000, 'x');
  const size_t base = CompactEntry(a, Analyze(a)).estimated_bytes;
  EXPECT_EQ(CompactEntry(b, Analyze(b)).estimated_bytes, base + 1000);
  EXPECT_LT(CompactEntry(c, Analyze(c)).estimated_bytes, base + 1000);  // reduced to a count
}

struct NetworkCase {
  const char* in;
  const char* want;
};

TEST(ClientNetworkTest, GroupsByPrefix) {
  const NetworkCase cases[] = {
      {"192.168.7.42", "192.168.7.0/24"},
      {"10.0.0.1/32", "10.0.0.0/24"},
      {"::1", "0:0:0:0::/64"},
      {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
      {"2001:DB8::7", "2001:db8:0:0::/64"},
      {"fe80::1%eth0", "fe80:0:0:0::/64"},
      {"::ffff:10.9.8.7", "10.9.8.0/24"},
      {"", ""},
      {"not-an-address", "not-an-address"},
      {"1.2.3", "1.2.3"},
      {"1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8:9"},
  };
  for (const NetworkCase& c : cases) EXPECT_EQ(ClientNetwork(c.in), c.want) << c.in;
}

}  // namespace
}  // namespace lockwatch::core
