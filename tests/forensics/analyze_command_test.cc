#include "agent/forensics/analyze_command.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "agent/core/analysis.h"
#include "agent/forensics/dump_command.h"
#include "agent/forensics/dump_reader.h"
#include "agent/forensics/incident_timeline.h"
#include "agent/forensics/report_command.h"
#include "agent/forensics/report_html.h"
#include "agent/forensics/timeline_render.h"

#include "tests/forensics/dump_test_util.h"
#include "tests/forensics/incident_scenarios.h"

#ifndef LOCKWATCH_FORENSICS_FIXTURES
#error "LOCKWATCH_FORENSICS_FIXTURES must name tests/forensics/fixtures"
#endif

namespace lockwatch::forensics {
namespace {

using test::kT0;
using test::PollSpec;
using test::RootSpec;
using test::RootState;
using testing::Sec;

struct Cli {
  std::ostringstream out;
  std::ostringstream err;
  app::CliContext context;
  Cli() {
    context.out = &out;
    context.err = &err;
  }
  // Parses `args` as the lockwatch command line with analyze and report registered.
  int Run(std::vector<std::string> args) {
    CLI::App app("lockwatch");
    AddAnalyzeCommand(app, context);
    AddReportCommand(app, context);
    std::reverse(args.begin(), args.end());  // CLI11 takes them last-first
    try {
      app.parse(args);
    } catch (const CLI::ParseError& e) {
      return app.exit(e, out, err);
    }
    return context.exit_code;
  }
};

std::vector<PollSpec> SurgePolls() {
  std::vector<PollSpec> polls = test::PileUpPolls(RootState::kCommitted);
  for (PollSpec& p : polls) {
    if (p.at == kT0 + Sec(10)) p.surge = 150;
    if (p.at == kT0 + Sec(15)) p.surge = 300;
  }
  return polls;
}

int Columns(const std::string& line) {
  int n = 0;
  for (char c : line) n += (static_cast<unsigned char>(c) & 0xC0U) == 0x80U ? 0 : 1;
  return n;
}

TEST(AnalyzeCommandTest, TextTellsTheStoryWithinOneHundredColumns) {
  test::TempDir dir;
  const std::string path = dir.File("incident.dump.gz");
  test::WriteIncidentDump(path, {RootSpec{}}, SurgePolls());
  Cli cli;
  ASSERT_EQ(cli.Run({"analyze", path}), 0) << cli.err.str();
  const std::string text = cli.out.str();
  EXPECT_EQ(cli.err.str(), "");
  for (const char* want : {
           "Incident db1_app-20261125T140005Z: 12 blocked sessions >= 10",
           "Started 2026-11-25 14:00:05 UTC, ended 14:00:20 UTC, lasted 15 s",
           "Peak 320 blocked sessions, chain depth 1",
           "First wait began 2026-11-25 14:00:00 UTC: pid 200 waiting for ShareLock on transaction 731",
           "  pid 100 (app_user, billing-api, 10.20.30.40) | idle in transaction | idle_in_transaction",
           "    first seen 14:00:00, transaction open 5m00s; peak 320 blocked at 14:00:15",
           "    query: update accounts set balance = $1 where id = $2",
           "    ended by 14:00:20: transaction ended, session still connected (320 waiters released)",
           "  14:00:05  incident opened: 12 blocked sessions >= 10",
           "CONNECTION SURGE: sessions 10 at 13:59:50 -> 330 at 14:00:15 (+320)",
           "  +300 sessions from application mobile-api (10.1.2.0/24) (3 -> 303) between 13:59:50 and "
           "14:00:15",
           "  by application: mobile-api +300, billing-api +20",
           "  300 of the sessions at 14:00:15 connected after 13:59:50",
           "BLOCKING TREE AT THE PEAK (14:00:15 UTC)",
           "<- peak",
       }) {
    EXPECT_NE(text.find(want), std::string::npos) << "missing: " << want << "\n" << text;
  }
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) EXPECT_LE(Columns(line), 100) << line;
}

TEST(AnalyzeCommandTest, JsonIsADocumentMachinesCanUse) {
  test::TempDir dir;
  const std::string path = dir.File("incident.dump.gz");
  test::WriteIncidentDump(path, {RootSpec{}}, SurgePolls());
  Cli cli;
  ASSERT_EQ(cli.Run({"analyze", "--json", path}), 0) << cli.err.str();
  const nlohmann::json doc = nlohmann::json::parse(cli.out.str());
  EXPECT_EQ(doc["analyze_schema_version"], kAnalyzeSchemaVersion);
  EXPECT_EQ(doc["file"], path);
  EXPECT_EQ(doc["dump"]["schema_version"], 1);
  EXPECT_EQ(doc["dump"]["complete"], true);
  EXPECT_EQ(doc["incident"]["trigger"], "12 blocked sessions >= 10");
  EXPECT_EQ(doc["incident"]["peak_blocked_sessions"], 320);
  EXPECT_EQ(doc["incident"]["duration_seconds"], 15.0);
  EXPECT_EQ(doc["first_wait_began"], "2026-11-25T14:00:00.000000Z");
  ASSERT_EQ(doc["roots"].size(), 1U);
  const nlohmann::json& root = doc["roots"][0];
  EXPECT_EQ(root["pid"], 100);
  EXPECT_EQ(root["usename"], "app_user");
  EXPECT_EQ(root["application_name"], "billing-api");
  EXPECT_EQ(root["client_network"], "10.20.30.0/24");
  EXPECT_EQ(root["xact_age_seconds_at_first_seen"], 300.0);
  EXPECT_EQ(root["end"]["cause"], "committed_or_rolled_back");
  EXPECT_EQ(root["end"]["at"], "2026-11-25T14:00:20.000000Z");
  EXPECT_EQ(doc["series"].size(), 11U);  // 3 before + 6 during + 2 after
  EXPECT_EQ(doc["series"][0]["phase"], "before");
  EXPECT_EQ(doc["peak"]["at"], "2026-11-25T14:00:15.000000Z");
  EXPECT_EQ(doc["peak"]["tree"]["summary"]["blocked_sessions"], 320);
  EXPECT_EQ(doc["surge"]["detected"], true);
  EXPECT_EQ(doc["surge"]["by_application_and_network"][0], (nlohmann::json{{"application_name", "mobile-api"},
                                                                           {"client_network", "10.1.2.0/24"},
                                                                           {"before", 3},
                                                                           {"after", 303},
                                                                           {"added", 300}}));
  EXPECT_EQ(doc["events"].size(), 6U);
}

TEST(AnalyzeCommandTest, ManualDumpShowsRootsTreeAndSessions) {
  test::TempDir dir;
  const std::string path = dir.File("manual.dump.gz");
  const core::Snapshot s = test::PileUp(kT0, 3, 4);
  ASSERT_TRUE(WriteManualDump(s, core::Analyze(s), "db1_app", path, QueryTextMode::kNormalize).ok());
  Cli cli;
  ASSERT_EQ(cli.Run({"analyze", path}), 0) << cli.err.str();
  const std::string text = cli.out.str();
  for (const char* want :
       {"Manual capture (lockwatch dump) at 2026-11-25 14:00:00 UTC", "ROOT BLOCKERS",
        "  pid 100 (app_user, billing-api, 10.20.30.100) | idle in transaction",
        "    still blocking at the last recorded poll (14:00:00)", "BLOCKING TREE (14:00:00 UTC)",
        "SESSIONS AT 14:00:00: 8 sessions, 3 waiting on a lock", "  by application: billing-api 8"}) {
    EXPECT_NE(text.find(want), std::string::npos) << "missing: " << want << "\n" << text;
  }
  EXPECT_EQ(text.find("CONNECTION SURGE"), std::string::npos);
}

TEST(AnalyzeCommandTest, PartialDumpIsAnalysedWithAWarning) {
  test::TempDir dir;
  const std::string path = dir.File("incident.dump.gz");
  test::ScenarioOptions options;
  options.close = false;
  test::WriteIncidentDump(path, {RootSpec{}}, test::PileUpPolls(RootState::kCommitted), options);
  Cli cli;
  ASSERT_EQ(cli.Run({"analyze", path + ".partial"}), 0) << cli.err.str();
  EXPECT_NE(cli.out.str().find("WARNING: truncated: no end record\n"), std::string::npos) << cli.out.str();
  EXPECT_NE(cli.out.str().find("pid 100"), std::string::npos);
}

// Inputs that are not usable dumps: one line on stderr naming the file, exit 1, nothing on stdout.
TEST(AnalyzeCommandTest, RefusesWhatIsNotAUsableDump) {
  test::TempDir dir;
  const std::string good = dir.File("good.dump.gz");
  test::WriteIncidentDump(good, {RootSpec{}}, test::PileUpPolls(RootState::kCommitted));
  const std::string bytes = test::ReadBytes(good);
  std::string flipped = bytes;
  flipped[bytes.size() / 2] = static_cast<char>(flipped[bytes.size() / 2] ^ 0x55);
  const struct {
    const char* name;
    std::string contents;
    const char* message;
  } cases[] = {
      {"empty", "", "empty file: not a lockwatch dump"},
      {"garbage", "this is not a dump\n", "not a gzip file: not a lockwatch dump"},
      {"not a dump", test::Gzip("{\"hello\":1}\n"), "line 1: not a lockwatch dump header"},
      {"header cut", bytes.substr(0, 12), "no header line"},
      {"corrupt", flipped, ""},
      {"newer", test::Gzip("{\"format\":\"lockwatch-dump\",\"schema_version\":2}\n"),
       "dump schema_version 2 is newer than this lockwatch reads (1); use a newer lockwatch"},
      {"no snapshot",
       test::Gzip("{\"format\":\"lockwatch-dump\",\"schema_version\":1}\n{\"type\":\"end\"}\n"),
       "the dump holds no readable snapshot record"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir.File(std::string(c.name) + ".dump.gz");
    {
      std::ofstream f(path, std::ios::binary);
      f << c.contents;
    }
    for (const char* command : {"analyze", "report"}) {
      Cli cli;
      const std::string html = dir.File("out.html");
      std::vector<std::string> args{command, path};
      if (std::string(command) == "report") args.insert(args.end(), {"-o", html});
      EXPECT_EQ(cli.Run(args), 1);
      EXPECT_EQ(cli.out.str(), "");
      const std::string err = cli.err.str();
      EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
      EXPECT_EQ(err.rfind(std::string("lockwatch ") + command + ": ", 0), 0U) << err;
      EXPECT_NE(err.find(path), std::string::npos) << err;
      EXPECT_NE(err.find(c.message), std::string::npos) << err;
      EXPECT_FALSE(test::Exists(html));
    }
  }
  Cli missing;
  EXPECT_EQ(missing.Run({"analyze", dir.File("nope.dump.gz")}), 1);
  EXPECT_EQ(missing.err.str(), "lockwatch analyze: cannot open " + dir.File("nope.dump.gz") + "\n");
}

// Every prefix and many corruptions of a real dump: never a crash, and either a timeline or an error.
TEST(AnalyzeCommandTest, SurvivesTruncationAndCorruption) {
  test::TempDir dir;
  const std::string path = dir.File("incident.dump.gz");
  test::ScenarioOptions options;
  options.extra_records = {{6, nlohmann::json{{"type", "action"}, {"at", "2026-11-25T14:00:18Z"}}}};
  test::WriteIncidentDump(path, {RootSpec{}}, test::PileUpPolls(RootState::kGone), options);
  const std::string bytes = test::ReadBytes(path);
  std::mt19937 random(42);  // fixed: the test is deterministic
  std::vector<std::string> inputs;
  for (size_t n = 0; n <= bytes.size(); n += std::max<size_t>(1, bytes.size() / 300))
    inputs.push_back(bytes.substr(0, n));
  for (int i = 0; i < 300; ++i) {
    std::string b = bytes;
    for (int k = 0; k < 1 + i % 4; ++k) b[random() % b.size()] = static_cast<char>(random() & 0xFF);
    inputs.push_back(std::move(b));
  }
  int analysed = 0;
  for (const std::string& input : inputs) {
    core::Result<Dump> dump = ReadDumpFromBytes(input);
    if (!dump.ok()) continue;
    core::Result<Timeline> t = BuildTimeline(dump.value());
    if (!t.ok()) continue;
    ++analysed;
    EXPECT_FALSE(RenderTimelineText(t.value(), "x").empty());
    EXPECT_FALSE(
        TimelineJson(t.value(), "x").dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).empty());
    EXPECT_FALSE(RenderReportHtml(t.value(), "x").empty());
  }
  EXPECT_GT(analysed, 10);  // the prefixes past the first flush points analyse
}

TEST(ReportCommandTest, WritesSelfContainedPageWithMode0600) {
  test::TempDir dir;
  const std::string path = dir.File("incident.dump.gz");
  test::WriteIncidentDump(path, {RootSpec{}}, SurgePolls());
  const std::string html = dir.File("report.html");
  {
    std::ofstream old(html);
    old << "old report";
  }
  Cli cli;
  ASSERT_EQ(cli.Run({"report", path, "-o", html}), 0) << cli.err.str();
  EXPECT_EQ(cli.out.str(), html + "\n");
  struct stat st {};
  ASSERT_EQ(::stat(html.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  const std::string page = test::ReadBytes(html);
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0U);
  for (const char* want : {"<svg id=\"timeline-chart\"", "class=\"series total\"", "class=\"series root\"",
                           "id=\"tree\"", "id=\"sessions\"", "mobile-api", "default-src 'none'",
                           "update accounts set balance = $1 where id = $2"}) {
    EXPECT_NE(page.find(want), std::string::npos) << want;
  }
  // Self-contained: nothing to fetch.
  for (const char* banned : {"http://", "https://", "src=\"", "href=\"", "@import", "url("}) {
    std::string without_ns = page;
    const std::string ns = "xmlns=\"http://www.w3.org/2000/svg\"";
    without_ns.erase(without_ns.find(ns), ns.size());
    EXPECT_EQ(without_ns.find(banned), std::string::npos) << banned;
  }
  // No temporary file left behind.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    files += entry.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 2);
}

TEST(ReportCommandTest, HostileStringsAreEscaped) {
  const std::string hostile = "</script><img src=x onerror=alert(1)>\"'&";
  RootSpec root;
  root.application_name = hostile;
  root.query = "select '" + hostile + "'";
  std::vector<PollSpec> polls = test::PileUpPolls(RootState::kCommitted);
  test::TempDir dir;
  const std::string path = dir.File("incident.dump.gz");
  test::ScenarioOptions options;
  options.query_text = QueryTextMode::kKeep;
  test::WriteIncidentDump(path, {root}, polls, options);
  const core::Result<Timeline> t = ReadTimeline(path);
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_EQ(t.value().roots[0].application_name, hostile);
  const std::string page = RenderReportHtml(t.value(), "<b>file</b>");
  EXPECT_EQ(page.find("<img"), std::string::npos);
  EXPECT_EQ(page.find("<b>"), std::string::npos);
  // Exactly one script element: the page's own.
  size_t scripts = 0;
  for (size_t at = page.find("<script"); at != std::string::npos; at = page.find("<script", at + 1))
    ++scripts;
  EXPECT_EQ(scripts, 1U);
  EXPECT_NE(page.find("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"),
            std::string::npos);
  EXPECT_EQ(HtmlEscape("a<b>&\"'\x1b\n"), "a&lt;b&gt;&amp;&quot;&#39;?\n");
  // And the terminal is safe too: no escape sequences from the dump reach it.
  RootSpec terminal_root;
  terminal_root.application_name = "evil\x1b]0;pwned\x07\nnext line";
  const std::string path2 = dir.File("incident2.dump.gz");
  test::WriteIncidentDump(path2, {terminal_root}, polls, options);
  const core::Result<Timeline> t2 = ReadTimeline(path2);
  ASSERT_TRUE(t2.ok());
  const std::string text = RenderTimelineText(t2.value(), path2);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_NE(text.find("evil?]0;pwned? next line"), std::string::npos) << text;
}

// The committed v1 dump must always read: a later schema change that breaks it fails here.
TEST(DumpCompatibilityTest, VersionOneFixtureStillReads) {
  const std::string path = std::string(LOCKWATCH_FORENSICS_FIXTURES) + "/v1-incident.dump.gz";
  const core::Result<Timeline> t = ReadTimeline(path);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t.value().schema_version, 1);
  EXPECT_TRUE(t.value().complete);
  EXPECT_EQ(t.value().target, "db1_app");
  ASSERT_TRUE(t.value().incident.has_value());
  EXPECT_EQ(t.value().incident->id, "db1_app-20261125T140005Z");
  ASSERT_EQ(t.value().roots.size(), 1U);
  EXPECT_EQ(t.value().roots[0].node.pid, 100);
  EXPECT_EQ(t.value().roots[0].end, RootEnd::kTerminatedByLockwatch);
  ASSERT_TRUE(t.value().surge.has_value());
  EXPECT_TRUE(t.value().surge->detected);
  EXPECT_EQ(t.value().surge->by_pair.contributors[0].application_name, "mobile-api");
  EXPECT_EQ(t.value().points[*t.value().peak].blocked_sessions, 320);
  EXPECT_EQ(t.value().actions.size(), 1U);
}

}  // namespace
}  // namespace lockwatch::forensics
