#include "agent/console/top_model.h"

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/analysis.h"
#include "agent/core/arrivals.h"
#include "agent/core/explain.h"

#include "tests/testing/snapshot_builder.h"

namespace lockwatch::console {
namespace {

using core::NodeRef;
using testing::Sec;
using testing::SnapshotBuilder;
using Code = Key::Code;

constexpr uint32_t kDb = 5;
constexpr uint32_t kTable = 16384;
constexpr core::TimestampUs kNow = Sec(1795614300);

// S4: 101 idle in transaction read t; 102 ALTER queued; 103 and 104 read t behind the ALTER.
core::Snapshot PileUp() {
  core::Snapshot s = SnapshotBuilder()
                         .Now(kNow)
                         .OwnPid(1)
                         .RelationName(kDb, kTable, "public.t")
                         .Session(101)
                         .State("idle in transaction")
                         .StateChange(kNow - Sec(725))
                         .Query("select count(*) from t")
                         .Session(102)
                         .Query("alter table t add column x int")
                         .Session(103)
                         .Query("select count(*) from t")
                         .Session(104)
                         .Query("select count(*) from t")
                         .Lock(101)
                         .Relation(kDb, kTable)
                         .Mode("AccessShareLock")
                         .Granted()
                         .Lock(102)
                         .Relation(kDb, kTable)
                         .Mode("AccessExclusiveLock")
                         .Waiting(kNow - Sec(30))
                         .Lock(103)
                         .Relation(kDb, kTable)
                         .Mode("AccessShareLock")
                         .Waiting(kNow - Sec(20))
                         .Lock(104)
                         .Relation(kDb, kTable)
                         .Mode("AccessShareLock")
                         .Waiting(kNow - Sec(10))
                         .Build();
  for (core::Session& x : s.sessions) {
    x.usename = x.pid == 104 ? "postgres" : "alice";
    x.application_name = x.pid == 101 ? "billing" : (x.pid == 102 ? "migrate" : "web");
    x.client_addr = "10.0.0." + std::to_string(x.pid - 100);
    x.datname = "appdb";
    x.backend_start = kNow - Sec(3600);
    x.superuser = x.pid == 104;
  }
  s.sessions[0].xact_start = kNow - Sec(900);
  return s;
}

// Owns what a TopFrame points to.
struct Fixture {
  core::Snapshot snapshot = PileUp();
  core::Report report = core::Analyze(snapshot);
  std::vector<core::Explanation> explanations = core::Explain(snapshot, report);
  core::ArrivalStats arrivals;

  Fixture() {
    core::ArrivalTracker tracker;
    tracker.Observe(snapshot);
    arrivals = tracker.Stats();
  }

  TopFrame Frame() const {
    TopFrame f;
    f.snapshot = &snapshot;
    f.report = &report;
    f.explanations = &explanations;
    f.arrivals = &arrivals;
    f.target = "host=db1 dbname=appdb";
    return f;
  }
};

int Columns(const std::string& line) {
  int n = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\x1b') {
      while (i < line.size() && line[i] != 'm') ++i;
      continue;
    }
    if ((static_cast<unsigned char>(line[i]) & 0xC0U) != 0x80U) ++n;
  }
  return n;
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

int IndexOf(const std::vector<std::string>& lines, const std::string& prefix) {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind(prefix, 0) == 0) return static_cast<int>(i);
  }
  return -1;
}

std::vector<int32_t> RowPids(const std::vector<TopRow>& rows) {
  std::vector<int32_t> out;
  out.reserve(rows.size());
  for (const TopRow& r : rows) out.push_back(r.node.pid);
  return out;
}

void Press(TopState& state, const TopFrame& frame, const std::string& keys) {
  for (const Key& k : DecodeKeys(keys)) HandleKey(state, k, frame, 10);
}

struct DecodeCase {
  const char* name;
  std::string bytes;
  std::vector<Key> keys;
};

bool SameKeys(const std::vector<Key>& a, const std::vector<Key>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].code != b[i].code || a[i].ch != b[i].ch) return false;
  }
  return true;
}

class DecodeKeysTest : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(DecodeKeysTest, Decodes) { EXPECT_TRUE(SameKeys(DecodeKeys(GetParam().bytes), GetParam().keys)); }

INSTANTIATE_TEST_SUITE_P(
    Sequences, DecodeKeysTest,
    ::testing::Values(
        DecodeCase{"Arrows",
                   "\x1b[A\x1b[B\x1b[C\x1b[D",
                   {Key::Of(Code::kUp), Key::Of(Code::kDown), Key::Of(Code::kRight), Key::Of(Code::kLeft)}},
        DecodeCase{"ApplicationModeArrows", "\x1bOA\x1bOB", {Key::Of(Code::kUp), Key::Of(Code::kDown)}},
        DecodeCase{"PagesHomeEnd",
                   "\x1b[5~\x1b[6~\x1b[1~\x1b[4~\x1b[H\x1b[F",
                   {Key::Of(Code::kPageUp), Key::Of(Code::kPageDown), Key::Of(Code::kHome),
                    Key::Of(Code::kEnd), Key::Of(Code::kHome), Key::Of(Code::kEnd)}},
        DecodeCase{"EnterBackspaceEscape",
                   "\r\n\x7f\x1b",
                   {Key::Of(Code::kEnter), Key::Of(Code::kEnter), Key::Of(Code::kBackspace),
                    Key::Of(Code::kEscape)}},
        DecodeCase{
            "CharsAroundASequence", "j\x1b[Bk", {Key::Char('j'), Key::Of(Code::kDown), Key::Char('k')}},
        DecodeCase{"UnknownSequenceIsDropped", "\x1b[99zq", {Key::Char('q')}},
        DecodeCase{"EscapeThenLetterIsEscapeAndLetter", "\x1bq", {Key::Of(Code::kEscape), Key::Char('q')}}),
    [](const ::testing::TestParamInfo<DecodeCase>& param) { return std::string(param.param.name); });

TEST(TopRowsTest, RootsStartCollapsedAndExpandLevelByLevel) {
  Fixture f;
  const TopFrame frame = f.Frame();
  TopState state;
  EXPECT_EQ(RowPids(BuildRows(frame, state)), std::vector<int32_t>({101}));
  state.expanded.insert(NodeRef{101, ""});
  EXPECT_EQ(RowPids(BuildRows(frame, state)), std::vector<int32_t>({101, 102}));
  state.expanded.insert(NodeRef{102, ""});
  const std::vector<TopRow> rows = BuildRows(frame, state);
  EXPECT_EQ(RowPids(rows), std::vector<int32_t>({101, 102, 103, 104}));  // longest waiter first
  EXPECT_TRUE(rows[0].is_root);
  EXPECT_EQ(rows[2].depth, 2);
  EXPECT_FALSE(rows[2].expandable);
}

TEST(TopRenderTest, EightyByTwentyFourShowsHeaderRootExplanationAndStatusLine) {
  Fixture f;
  const TopFrame frame = f.Frame();
  TopState state;
  for (bool color : {false, true}) {
    const std::vector<std::string> lines = RenderTop(frame, state, 80, 24, color);
    ASSERT_EQ(lines.size(), 24u);
    for (const std::string& l : lines) EXPECT_LE(Columns(l), 80) << l;
  }
  const std::vector<std::string> lines = RenderTop(frame, state, 200, 24, false);
  EXPECT_EQ(lines[0], "lockwatch top | 2026-11-25T13:45:00.000000Z | every 1s | host=db1 dbname=appdb");
  EXPECT_EQ(lines[1], "sessions: 3 active, 1 idle in transaction | waiting 3 | longest wait 30s");
  EXPECT_EQ(lines[2].rfind("connections: 0 in 10s (0.0/s) 0 in 60s (0.0/s)", 0), 0u) << lines[2];
  EXPECT_EQ(
      lines[3].rfind(">[+] 101 idle in transaction 12m05s blocks 3 | alice billing 10.0.0.1 | select", 0), 0u)
      << Joined(lines);
  EXPECT_EQ(lines[4].rfind(">    why: ddl_amplifier: ALTER TABLE by pid 102", 0), 0u) << Joined(lines);
  EXPECT_EQ(lines[5].rfind(">    fix: cancel the DDL: SELECT pg_cancel_backend(102)", 0), 0u)
      << Joined(lines);
  EXPECT_EQ(lines[23].rfind("q quit", 0), 0u) << lines[23];
}

TEST(TopRenderTest, BlockedCountShowsChangeSinceLastRefresh) {
  Fixture f;
  TopFrame frame = f.Frame();
  frame.has_previous = true;
  frame.previous_blocked[NodeRef{101, ""}] = 1;
  EXPECT_NE(Joined(RenderTop(frame, TopState{}, 200, 24, false)).find("blocks 3 (+2)"), std::string::npos);
  frame.previous_blocked[NodeRef{101, ""}] = 3;
  EXPECT_NE(Joined(RenderTop(frame, TopState{}, 200, 24, false)).find("blocks 3 (=)"), std::string::npos);
  frame.previous_blocked.clear();
  EXPECT_NE(Joined(RenderTop(frame, TopState{}, 200, 24, false)).find("blocks 3 (new)"), std::string::npos);
}

// The fixture's sessions arrive between an empty snapshot and one a second later; then the same sessions
// are seen again `quiet_s` seconds later (no snapshot when 0).
core::ArrivalStats FixtureArrivals(const core::Snapshot& snapshot, int quiet_s) {
  core::ArrivalTracker tracker;
  core::Snapshot before = snapshot;
  before.sessions.clear();
  tracker.Observe(before);
  core::Snapshot after = snapshot;
  after.captured_at_us += Sec(1);
  tracker.Observe(after);
  if (quiet_s > 0) {
    after.captured_at_us += Sec(quiet_s);
    tracker.Observe(after);
  }
  return tracker.Stats();
}

TEST(TopRenderTest, ArrivalsAppearInTheHeader) {
  Fixture f;
  f.arrivals = FixtureArrivals(f.snapshot, 0);
  const std::vector<std::string> lines = RenderTop(f.Frame(), TopState{}, 200, 24, false);
  EXPECT_EQ(lines[2],
            "connections: 4 in 10s (0.4/s) 4 in 60s (0.1/s) | by app: web 2, billing 1, migrate 1 | by net: "
            "10.0.0.0/24 4");
}

TEST(TopRenderTest, ArrivalGroupsComeFromTheLongerWindowWhenTheLastTenSecondsWereQuiet) {
  Fixture f;
  f.arrivals = FixtureArrivals(f.snapshot, 20);  // no new arrival in the last 10 s
  const std::vector<std::string> lines = RenderTop(f.Frame(), TopState{}, 200, 24, false);
  EXPECT_EQ(lines[2],
            "connections: 0 in 10s (0.0/s) 4 in 60s (0.1/s) | by app (60s): web 2, billing 1, migrate 1 | by "
            "net (60s): 10.0.0.0/24 4");
}

TEST(TopRenderTest, PlainFramesHaveNoMarkersNoStatusLineAndEveryFix) {
  Fixture f;
  TopState state;
  state.expanded = {NodeRef{101, ""}, NodeRef{102, ""}};
  const std::vector<std::string> lines = RenderTop(f.Frame(), state, 120, 0, false);
  ASSERT_EQ(lines.size(), 3u + 3u + 3u);  // header, root + why + fix, three waiters
  EXPECT_EQ(lines[3].rfind("[-] 101 idle in transaction", 0), 0u) << Joined(lines);
  EXPECT_EQ(lines[5].rfind("    fix: ", 0), 0u) << Joined(lines);
  EXPECT_EQ(lines[6].rfind("  [-] 102 waits 30s AccessExclusiveLock on relation public.t (hard) blocks 2", 0),
            0u)
      << Joined(lines);
  EXPECT_EQ(lines[7].rfind("    `-  103 waits 20s AccessShareLock on relation public.t (soft)", 0), 0u)
      << Joined(lines);
  EXPECT_EQ(Joined(lines).find('\x1b'), std::string::npos);
}

TEST(TopRenderTest, SelectionScrollsIntoViewOnASmallScreen) {
  Fixture f;
  const TopFrame frame = f.Frame();
  TopState state;
  state.expanded = {NodeRef{101, ""}, NodeRef{102, ""}};
  state.selected = NodeRef{104, ""};
  const std::vector<std::string> lines =
      RenderTop(frame, state, 120, 6, false);  // 3 header + 2 rows + status
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[4].rfind(">    `-  104 waits", 0), 0u) << Joined(lines);
}

TEST(TopRenderTest, ControlCharactersFromClientsAreNeutralised) {
  Fixture f;
  f.snapshot.sessions[0].application_name = "bill\x1b[2Jing";
  f.snapshot.sessions[0].query = "select\n1";
  const std::string text = Joined(RenderTop(f.Frame(), TopState{}, 200, 24, false));
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_NE(text.find("bill?[2Jing"), std::string::npos) << text;
  EXPECT_NE(text.find("select 1"), std::string::npos) << text;
}

TEST(TopKeysTest, MoveExpandCollapse) {
  Fixture f;
  const TopFrame frame = f.Frame();
  TopState state;
  Press(state, frame, "\r");  // expand the root
  EXPECT_EQ(state.expanded.count(NodeRef{101, ""}), 1u);
  Press(state, frame, "j\x1b[C");  // down to 102, expand it
  ASSERT_TRUE(state.selected.has_value());
  EXPECT_EQ(state.selected->pid, 102);
  EXPECT_EQ(RowPids(BuildRows(frame, state)), std::vector<int32_t>({101, 102, 103, 104}));
  Press(state, frame, "\x1b[F");  // End
  EXPECT_EQ(state.selected->pid, 104);
  Press(state, frame, "jjj");  // stays on the last row
  EXPECT_EQ(state.selected->pid, 104);
  Press(state, frame, "kk\x1b[D");  // up to 102, collapse it
  EXPECT_EQ(state.selected->pid, 102);
  EXPECT_EQ(RowPids(BuildRows(frame, state)), std::vector<int32_t>({101, 102}));
  Press(state, frame, "\x1b[H ");  // Home, space toggles the root closed
  EXPECT_EQ(RowPids(BuildRows(frame, state)), std::vector<int32_t>({101}));
}

TEST(TopKeysTest, FilterByApplicationUserAndDatabase) {
  Fixture f;
  const TopFrame frame = f.Frame();
  TopState state;
  Press(state, frame, "azzz");
  EXPECT_EQ(state.mode, TopMode::kFilter);
  EXPECT_NE(Joined(RenderTop(frame, state, 200, 24, false)).find("filter application: zzz_"),
            std::string::npos);
  Press(state, frame, "\r");
  EXPECT_EQ(state.filter.application, "zzz");
  EXPECT_TRUE(BuildRows(frame, state).empty());
  EXPECT_NE(Joined(RenderTop(frame, state, 200, 24, false)).find("No blocking tree matches the filter"),
            std::string::npos);
  Press(state, frame, "x");
  EXPECT_TRUE(state.filter.empty());
  // A tree matches when any of its sessions does: 104 is postgres's, in 101's tree.
  Press(state, frame, "upostgres\r");
  EXPECT_EQ(RowPids(BuildRows(frame, state)), std::vector<int32_t>({101}));
  Press(state, frame,
        "x"
        "dother\r");
  EXPECT_TRUE(BuildRows(frame, state).empty());
  // The field starts with the current value; backspace past its start is harmless.
  Press(state, frame,
        "x"
        "dapp\x7f\x7f\x7f\x7f"
        "appdb\r");
  EXPECT_EQ(state.filter.database, "appdb");
  EXPECT_EQ(RowPids(BuildRows(frame, state)), std::vector<int32_t>({101}));
  Press(state, frame, "dnew\x1b");  // escape abandons the edit
  EXPECT_EQ(state.filter.database, "appdb");
  EXPECT_EQ(state.mode, TopMode::kList);
}

TEST(TopKeysTest, DetailsShowFullQueryLocksAndExplanation) {
  Fixture f;
  const TopFrame frame = f.Frame();
  TopState state;
  Press(state, frame, "i");
  EXPECT_EQ(state.mode, TopMode::kDetail);
  const std::vector<std::string> lines = RenderTop(frame, state, 200, 24, false);
  EXPECT_GE(IndexOf(lines, "query: select count(*) from t"), 0) << Joined(lines);
  EXPECT_GE(IndexOf(lines, "  holds AccessShareLock on relation public.t"), 0) << Joined(lines);
  EXPECT_GE(IndexOf(lines, "why: ddl_amplifier:"), 0) << Joined(lines);
  EXPECT_GE(IndexOf(lines, "why: idle_in_transaction_holder:"), 0) << Joined(lines);
  Press(state, frame, "q");
  EXPECT_EQ(state.mode, TopMode::kList);
}

TEST(TopKeysTest, QuitAndDumpAreEffects) {
  Fixture f;
  const TopFrame frame = f.Frame();
  TopState state;
  EXPECT_TRUE(HandleKey(state, Key::Char('w'), frame, 10).dump);
  EXPECT_TRUE(HandleKey(state, Key::Char('q'), frame, 10).quit);
  EXPECT_FALSE(HandleKey(state, Key::Char('z'), frame, 10).quit);
}

TEST(TopKeysTest, TerminateAsksFirstAndSpellsOutWhatRuns) {
  Fixture f;
  f.snapshot.sessions[0].superuser = false;
  const TopFrame frame = f.Frame();
  TopState state;
  HandleKey(state, Key::Char('t'), frame, 10);
  ASSERT_EQ(state.mode, TopMode::kConfirm);
  EXPECT_EQ(
      state.confirm_text,
      "pg_terminate_backend(101) on pid 101 (alice, app billing, idle in transaction 12m05s): ends the "
      "session, its transaction rolls back - only if backend_start is still 2026-11-25T12:45:00.000000Z, "
      "xact_start 2026-11-25T13:30:00.000000Z, state_change 2026-11-25T13:32:55.000000Z; y/N");
  // At 80 columns the question is wrapped, never cut.
  const std::vector<std::string> lines = RenderTop(frame, state, 80, 24, false);
  ASSERT_EQ(lines.size(), 24u);
  std::string bottom;
  for (size_t i = 20; i < lines.size(); ++i) bottom += lines[i] + " ";
  EXPECT_NE(bottom.find("state_change 2026-11-25T13:32:55.000000Z; y/N"), std::string::npos) << Joined(lines);
  EXPECT_NE(bottom.find("pg_terminate_backend(101) on pid 101"), std::string::npos) << Joined(lines);

  // Anything but y sends nothing.
  TopEffect effect = HandleKey(state, Key::Char('n'), frame, 10);
  EXPECT_FALSE(effect.signal.has_value());
  EXPECT_EQ(state.mode, TopMode::kList);
  EXPECT_EQ(state.message, "not sent");

  HandleKey(state, Key::Char('t'), frame, 10);
  effect = HandleKey(state, Key::Char('y'), frame, 10);
  ASSERT_TRUE(effect.signal.has_value());
  EXPECT_EQ(effect.signal->action, core::ActionKind::kTerminate);
  EXPECT_EQ(effect.signal->victim.pid, 101);
  EXPECT_EQ(effect.signal->victim.backend_start, kNow - Sec(3600));
  EXPECT_EQ(effect.signal->victim.xact_start, kNow - Sec(900));
  EXPECT_EQ(effect.signal->victim.state_change, kNow - Sec(725));

  HandleKey(state, Key::Char('c'), frame, 10);
  EXPECT_EQ(state.confirm_text.rfind("pg_cancel_backend(101) on pid 101", 0), 0u) << state.confirm_text;
  EXPECT_EQ(HandleKey(state, Key::Char('y'), frame, 10).signal->action, core::ActionKind::kCancel);
}

struct RefusalCase {
  const char* name;
  std::function<void(core::Snapshot&, TopState&)> setup;
  core::NodeRef node;
  std::string refusal;  // "" = allowed; otherwise a substring of the reason
};

class TopRefusalTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(TopRefusalTest, RefusesWhatMustNotBeSignalled) {
  Fixture f;
  TopState state;
  for (core::Session& s : f.snapshot.sessions) s.superuser = false;
  GetParam().setup(f.snapshot, state);
  const std::string reason = RefusalReason(state, f.Frame(), GetParam().node);
  if (GetParam().refusal.empty()) {
    EXPECT_EQ(reason, "");
  } else {
    EXPECT_NE(reason.find(GetParam().refusal), std::string::npos) << reason;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TopRefusalTest,
    ::testing::Values(
        RefusalCase{"ClientSessionIsAllowed", [](core::Snapshot&, TopState&) {}, {101, ""}, ""},
        RefusalCase{"Superuser",
                    [](core::Snapshot& s, TopState&) { s.sessions[0].superuser = true; },
                    {101, ""},
                    "is a superuser session: start top with --allow-superuser"},
        RefusalCase{"UnknownRoleCountsAsSuperuser",
                    [](core::Snapshot& s, TopState&) { s.sessions[0].superuser.reset(); },
                    {101, ""},
                    "treated as superuser"},
        RefusalCase{"SuperuserAllowedByFlag",
                    [](core::Snapshot& s, TopState& st) {
                      s.sessions[0].superuser = true;
                      st.allow_superuser = true;
                    },
                    {101, ""},
                    ""},
        RefusalCase{"OwnSession",
                    [](core::Snapshot&, TopState& st) { st.own_pid = 101; },
                    {101, ""},
                    "lockwatch's own session"},
        RefusalCase{"AnotherLockwatchSession",
                    [](core::Snapshot& s, TopState&) { s.sessions[0].application_name = "lockwatch-agent"; },
                    {101, ""},
                    "a lockwatch session"},
        RefusalCase{"AutovacuumWorker",
                    [](core::Snapshot& s, TopState&) { s.sessions[0].backend_type = "autovacuum worker"; },
                    {101, ""},
                    "is a autovacuum worker, not a client session"},
        RefusalCase{
            "GoneSession", [](core::Snapshot&, TopState&) {}, {999, ""}, "no longer in pg_stat_activity"},
        RefusalCase{
            "PreparedTransaction", [](core::Snapshot&, TopState&) {}, {0, "gx1"}, "ROLLBACK PREPARED 'gx1'"}),
    [](const ::testing::TestParamInfo<RefusalCase>& param) { return std::string(param.param.name); });

TEST(TopKeysTest, RefusalIsShownAndNothingIsAsked) {
  Fixture f;
  const TopFrame frame = f.Frame();
  TopState state;
  Press(state, frame, "\rj\r\x1b[F");  // expand 101, down to 102, expand it, End: 104 (a superuser)
  ASSERT_EQ(state.selected->pid, 104);
  const TopEffect effect = HandleKey(state, Key::Char('t'), frame, 10);
  EXPECT_FALSE(effect.signal.has_value());
  EXPECT_EQ(state.mode, TopMode::kList);
  EXPECT_EQ(state.message.rfind("refused: pid 104 is a superuser session", 0), 0u) << state.message;
}

}  // namespace
}  // namespace lockwatch::console
