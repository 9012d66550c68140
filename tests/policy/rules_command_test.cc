#include "agent/policy/rules_command.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/core/analysis.h"
#include "agent/forensics/dump_records.h"
#include "agent/forensics/dump_writer.h"

#include "tests/testing/snapshot_builder.h"
#include "tests/testing/temp_dir.h"

namespace lockwatch::policy {
namespace {

using testing::Sec;
using testing::SnapshotBuilder;

struct Cli {
  std::ostringstream out;
  std::ostringstream err;
  app::CliContext context;
  Cli() {
    context.out = &out;
    context.err = &err;
  }
  int Run(std::vector<std::string> args) {
    CLI::App app("lockwatch");
    AddRulesCommand(app, context);
    std::reverse(args.begin(), args.end());  // CLI11 takes them last-first
    try {
      app.parse(args);
    } catch (const CLI::ParseError& e) {
      return app.exit(e, out, err);
    }
    return context.exit_code;
  }
};

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Pid 101 idle in transaction since 500s holds transaction 731; 102..104 wait for it. Captured at `now`.
// The superuser status is left unknown, as DecodeSnapshot returns it.
core::Snapshot IdleRoot(core::TimestampUs now) {
  SnapshotBuilder b;
  b.Now(now);
  b.Session(101)
      .State("idle in transaction")
      .StateChange(Sec(500))
      .Query("UPDATE accounts SET n = 1 WHERE id = 5");
  b.Lock(101).TransactionId(731).Mode("ExclusiveLock").Granted();
  for (int32_t pid = 102; pid <= 104; ++pid) {
    b.Session(pid).State("active").Query("UPDATE accounts SET n = 2 WHERE id = 5");
    b.Lock(pid).TransactionId(731).Mode("ShareLock").Waiting(Sec(600));
  }
  core::Snapshot s = b.Build();
  for (core::Session& x : s.sessions) {
    x.usename = "app";
    x.application_name = x.pid == 101 ? "worker" : "checkout";
    x.client_addr = "10.0.0." + std::to_string(x.pid - 100);
    x.datname = "shop";
    x.backend_start = Sec(x.pid);
    x.xact_start = Sec(450);
  }
  return s;
}

// Writes a dump of `snapshots`; `superuser` (when set) is added to every session of every record, as a
// collector that reads pg_roles.rolsuper records it.
std::string WriteDump(const testing::TempDir& dir, const std::string& name,
                      const std::vector<core::Snapshot>& snapshots,
                      std::optional<bool> superuser = std::nullopt) {
  forensics::DumpHeader header;
  header.target = "main";
  header.created_at_us = snapshots.front().captured_at_us;
  std::string path = dir.File(name);
  auto writer = forensics::DumpWriter::Create(path, header);
  EXPECT_TRUE(writer.ok()) << writer.status().message();
  for (const core::Snapshot& s : snapshots) {
    nlohmann::json record =
        forensics::SnapshotRecord("during", s, core::Analyze(s), forensics::QueryTextMode::kNormalize);
    if (superuser) {
      for (nlohmann::json& session : record["snapshot"]["sessions"]) session["superuser"] = *superuser;
    }
    EXPECT_TRUE(writer.value()->WriteRecord(record).ok());
  }
  EXPECT_TRUE(writer.value()->Close(snapshots.back().captured_at_us).ok());
  return path;
}

constexpr const char* kIdleRule =
    "rules:\n"
    "  - name: idle-tx-root\n"
    "    description: test\n"
    "    match:\n"
    "      role: root\n"
    "      state: idle in transaction\n"
    "      min_idle_in_transaction: 505s\n"
    "      min_blocked_total: 3\n"
    "    action: terminate\n";

TEST(RulesCheckCommandTest, EveryShippedExamplePasses) {
  const std::filesystem::path dir = std::filesystem::path(LOCKWATCH_SOURCE_DIR) / "rules" / "remediation";
  std::vector<std::string> args = {"rules", "check"};
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".yaml") args.push_back(entry.path().string());
  }
  ASSERT_GE(args.size(), 6u);
  Cli cli;
  EXPECT_EQ(cli.Run(args), app::kExitOk) << cli.err.str();
  EXPECT_EQ(Count(cli.out.str(), ": ok: "), args.size() - 2) << cli.out.str();
  EXPECT_EQ(cli.err.str(), "");
}

TEST(RulesCheckCommandTest, InvalidFileFailsWithPositionedErrors) {
  testing::TempDir dir;
  const std::string good = dir.File("good.yaml");
  const std::string bad = dir.File("bad.yaml");
  WriteFile(good, kIdleRule);
  WriteFile(bad, "rules:\n  - name: x\n    match: {role: root, colour: red}\n    action: log\n");
  Cli cli;
  EXPECT_EQ(cli.Run({"rules", "check", good, bad}), app::kExitError);
  EXPECT_EQ(cli.out.str(), good + ": ok: 1 rule\n");
  EXPECT_EQ(cli.err.str().rfind(bad + ":3:25: unknown key \"colour\" in \"match\"", 0), 0u) << cli.err.str();
}

TEST(RulesCheckCommandTest, NeedsAFile) {
  Cli cli;
  EXPECT_NE(cli.Run({"rules", "check"}), app::kExitOk);
}

TEST(RulesTestCommandTest, ReportsTheFirstTimeARuleMatchesEachSession) {
  testing::TempDir dir;
  WriteFile(dir.File("rules.yaml"), kIdleRule);
  // 500s idle at 1000s (no match), 505s at 1005s (match), 510s at 1010s (same session: not repeated).
  const std::string dump =
      WriteDump(dir, "a.dump.gz", {IdleRoot(Sec(1000)), IdleRoot(Sec(1005)), IdleRoot(Sec(1010))}, false);
  Cli cli;
  ASSERT_EQ(cli.Run({"rules", "test", "--rules", dir.File("rules.yaml"), dump}), app::kExitOk)
      << cli.err.str();
  const std::string out = cli.out.str();
  EXPECT_NE(out.find("dump " + dump +
                     ": target main, 3 snapshots from 1970-01-01T00:16:40.000000Z to "
                     "1970-01-01T00:16:50.000000Z"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("1970-01-01T00:16:45.000000Z  terminate  pid 101  rule idle-tx-root\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("root, blocks 3 (3 directly); user app; application \"worker\"; database shop; client "
                     "10.0.0.1; idle in transaction"),
            std::string::npos)
      << out;
  EXPECT_NE(
      out.find("why: root blocker, blocks 3 sessions (3 directly) (rule: at least 3 in all); state idle in "
               "transaction; idle in transaction for 8m25s (at least 8m25s)"),
      std::string::npos)
      << out;
  EXPECT_EQ(Count(out, "terminate  pid 101"), 1u) << out;
  EXPECT_NE(
      out.find("summary: 1 action would have been taken (terminate 1); 0 skipped; 3 snapshots replayed"),
      std::string::npos)
      << out;
  EXPECT_EQ(out.find("note:"), std::string::npos) << out;
}

TEST(RulesTestCommandTest, UnknownSuperuserStatusIsNeverAVictimUnlessAssumed) {
  testing::TempDir dir;
  WriteFile(dir.File("rules.yaml"), kIdleRule);
  const std::string dump = WriteDump(dir, "a.dump.gz", {IdleRoot(Sec(1005))});
  {
    Cli cli;
    ASSERT_EQ(cli.Run({"rules", "test", "--rules", dir.File("rules.yaml"), dump}), app::kExitOk);
    const std::string out = cli.out.str();
    EXPECT_NE(out.find("skip (superuser)  pid 101"), std::string::npos) << out;
    EXPECT_NE(out.find("not done: user app may be a superuser (unknown)"), std::string::npos) << out;
    EXPECT_NE(out.find("note: " + dump + ": the dump does not record which users are superusers"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("summary: 0 actions would have been taken; 1 skipped (superuser 1)"),
              std::string::npos)
        << out;
  }
  {
    Cli cli;
    ASSERT_EQ(cli.Run({"rules", "test", "--rules", dir.File("rules.yaml"), "--assume-non-superuser", dump}),
              app::kExitOk);
    EXPECT_NE(cli.out.str().find("terminate  pid 101"), std::string::npos) << cli.out.str();
  }
}

TEST(RulesTestCommandTest, ProtectionFlagsApply) {
  testing::TempDir dir;
  WriteFile(dir.File("rules.yaml"), kIdleRule);
  const std::string dump = WriteDump(dir, "a.dump.gz", {IdleRoot(Sec(1005))}, false);
  struct Case {
    std::vector<std::string> flags;
    std::string skip;
  };
  const Case cases[] = {
      {{"--protect-user", "ap*"}, "protected_user"},
      {{"--protect-application", "worker"}, "protected_application"},
      {{"--protect-database", "shop"}, "protected_database"},
      {{"--protect-client", "10.0.0.0/30"}, "protected_client"},
  };
  for (const Case& c : cases) {
    Cli cli;
    std::vector<std::string> args = {"rules", "test", "--rules", dir.File("rules.yaml")};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    args.push_back(dump);
    ASSERT_EQ(cli.Run(args), app::kExitOk) << cli.err.str();
    EXPECT_NE(cli.out.str().find("skip (" + c.skip + ")  pid 101"), std::string::npos) << cli.out.str();
  }
  Cli bad;
  EXPECT_EQ(bad.Run({"rules", "test", "--rules", dir.File("rules.yaml"), "--protect-client", "10/8", dump}),
            app::kExitError);
  EXPECT_NE(bad.err.str().find("--protect-client: expected an address range"), std::string::npos)
      << bad.err.str();
}

TEST(RulesTestCommandTest, JsonListsEveryDecisionWithItsFacts) {
  testing::TempDir dir;
  WriteFile(dir.File("rules.yaml"), std::string(kIdleRule) +
                                        "  - name: waiters\n"
                                        "    description: sessions that only wait are never victims\n"
                                        "    match: {role: any, application: checkout}\n"
                                        "    action: terminate\n");
  const std::string dump = WriteDump(dir, "a.dump.gz", {IdleRoot(Sec(1005)), IdleRoot(Sec(1010))}, false);
  Cli cli;
  ASSERT_EQ(cli.Run({"rules", "test", "--json", "--rules", dir.File("rules.yaml"), dump}), app::kExitOk)
      << cli.err.str();
  const nlohmann::json doc = nlohmann::json::parse(cli.out.str());
  EXPECT_EQ(doc["rules"], 2);
  ASSERT_EQ(doc["decisions"].size(), 4u) << doc.dump(2);
  const nlohmann::json& first = doc["decisions"][0];
  EXPECT_EQ(first["at"], "1970-01-01T00:16:45.000000Z");
  EXPECT_EQ(first["target"], "main");
  EXPECT_EQ(first["rule"], "idle-tx-root");
  EXPECT_EQ(first["action"], "terminate");
  EXPECT_EQ(first["skipped"], false);
  EXPECT_EQ(first["pid"], 101);
  EXPECT_EQ(first["backend_start"], "1970-01-01T00:01:41.000000Z");
  EXPECT_EQ(first["role"], "root");
  EXPECT_EQ(first["blocked_total"], 3);
  EXPECT_EQ(first["application_name"], "worker");
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(doc["decisions"][i]["skip"], "only_waits") << doc["decisions"][i].dump();
  }
  EXPECT_EQ(doc["summary"]["actions"], 1);
  EXPECT_EQ(doc["summary"]["skipped"], 3);
  EXPECT_EQ(doc["summary"]["by_skip"]["only_waits"], 3);
  EXPECT_EQ(doc["summary"]["snapshots"], 2);
  EXPECT_EQ(doc["dumps"][0]["snapshots"], 2);
}

TEST(RulesTestCommandTest, UnreadableDumpFailsButTheOthersAreReplayed) {
  testing::TempDir dir;
  WriteFile(dir.File("rules.yaml"), kIdleRule);
  WriteFile(dir.File("junk.dump.gz"), "not a dump");
  const std::string dump = WriteDump(dir, "a.dump.gz", {IdleRoot(Sec(1005))}, false);
  Cli cli;
  EXPECT_EQ(cli.Run({"rules", "test", "--rules", dir.File("rules.yaml"), dir.File("junk.dump.gz"), dump}),
            app::kExitError);
  EXPECT_NE(cli.err.str().find(dir.File("junk.dump.gz") + ": "), std::string::npos) << cli.err.str();
  EXPECT_NE(cli.out.str().find("terminate  pid 101"), std::string::npos) << cli.out.str();
}

TEST(RulesTestCommandTest, InvalidRulesFail) {
  testing::TempDir dir;
  WriteFile(dir.File("rules.yaml"), "rules:\n  - name: x\n");
  const std::string dump = WriteDump(dir, "a.dump.gz", {IdleRoot(Sec(1005))}, false);
  Cli cli;
  EXPECT_EQ(cli.Run({"rules", "test", "--rules", dir.File("rules.yaml"), dump}), app::kExitError);
  EXPECT_NE(cli.err.str().find(dir.File("rules.yaml") + ":2:5: expected a \"match\""), std::string::npos)
      << cli.err.str();
  EXPECT_EQ(cli.out.str(), "");
}

TEST(RulesTestCommandTest, QueryConditionsSeeNormalisedText) {
  testing::TempDir dir;
  WriteFile(dir.File("rules.yaml"),
            "rules:\n"
            "  - name: q\n"
            "    description: normalised constants\n"
            "    match: {role: root, query: 'set n = \\$1 where id = \\$[0-9]+$'}\n"
            "    action: log\n");
  core::Snapshot s = IdleRoot(Sec(1005));
  const std::string dump = WriteDump(dir, "a.dump.gz", {s}, false);
  Cli cli;
  ASSERT_EQ(cli.Run({"rules", "test", "--rules", dir.File("rules.yaml"), dump}), app::kExitOk)
      << cli.err.str();
  EXPECT_NE(cli.out.str().find("log  pid 101"), std::string::npos) << cli.out.str();
  // The raw text with its constants does not match a pattern written for the normalised form.
  WriteFile(dir.File("raw.yaml"),
            "rules:\n"
            "  - name: q\n"
            "    description: raw constants\n"
            "    match: {role: root, query: 'where id = 5'}\n"
            "    action: log\n");
  Cli raw;
  ASSERT_EQ(raw.Run({"rules", "test", "--rules", dir.File("raw.yaml"), dump}), app::kExitOk) << raw.err.str();
  EXPECT_EQ(raw.out.str().find("log  pid 101"), std::string::npos) << raw.out.str();
  EXPECT_EQ(MakeQueryNormalizer()("SELECT 1 FROM t WHERE id = 5"), "SELECT $1 FROM t WHERE id = $2");
}

}  // namespace
}  // namespace lockwatch::policy
