#include "agent/remediation/audit_log.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "tests/testing/temp_dir.h"

namespace lockwatch::remediation {
namespace {

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

AuditEntry Entry(const std::string& decision, int32_t pid) {
  AuditEntry e;
  e.at = 1'764'078'300'123'456;  // 2025-11-25T13:45:00.123456Z
  e.target = "main";
  e.rule = "idle-root";
  e.decision = decision;
  e.action = "terminate";
  e.plan = "terminate";
  e.dry_run = false;
  e.pid = pid;
  e.backend_start = 1'764'078'000'000'000;
  e.usename = "app";
  e.application_name = "billing";
  e.role = "root";
  e.blocked_direct = 3;
  e.blocked_total = 20;
  e.reason = "idle in transaction for 45s";
  return e;
}

TEST(AuditRecordTest, HasEveryDocumentedField) {
  const nlohmann::json j = AuditRecord(Entry("planned", 42));
  EXPECT_EQ(j.at("type"), "action");
  EXPECT_EQ(j.at("at"), "2025-11-25T13:45:00.123456Z");
  EXPECT_EQ(j.at("target"), "main");
  EXPECT_EQ(j.at("rule"), "idle-root");
  EXPECT_EQ(j.at("decision"), "planned");
  EXPECT_EQ(j.at("action"), "terminate");
  EXPECT_EQ(j.at("plan"), "terminate");
  EXPECT_EQ(j.at("escalation"), false);
  EXPECT_EQ(j.at("mode"), "enforce");
  EXPECT_EQ(j.at("pid"), 42);
  EXPECT_EQ(j.at("backend_start"), "2025-11-25T13:40:00.000000Z");
  EXPECT_EQ(j.at("usename"), "app");
  EXPECT_EQ(j.at("application_name"), "billing");
  EXPECT_EQ(j.at("role"), "root");
  EXPECT_EQ(j.at("blocked_direct"), 3);
  EXPECT_EQ(j.at("blocked_total"), 20);
  EXPECT_EQ(j.at("reason"), "idle in transaction for 45s");
  EXPECT_EQ(j.at("result"), "");
  EXPECT_EQ(j.at("message"), "");
  EXPECT_EQ(j.size(), 19U);
}

TEST(AuditRecordTest, DryRunModeAndUnknownBackendStart) {
  AuditEntry e = Entry("executed", 7);
  e.dry_run = true;
  e.backend_start.reset();
  const nlohmann::json j = AuditRecord(e);
  EXPECT_EQ(j.at("mode"), "dry_run");
  EXPECT_TRUE(j.at("backend_start").is_null());
}

TEST(AuditLogTest, WritesOneJsonObjectPerLineWithMode0600) {
  testing::TempDir dir("lw-audit");
  const std::string path = dir.File("audit.jsonl");
  AuditLog log(AuditLogOptions{path, /*sync_each_line=*/true});
  ASSERT_TRUE(log.Open().ok());
  EXPECT_TRUE(log.Write(Entry("planned", 1)));
  EXPECT_TRUE(log.Write(Entry("executed", 1)));
  EXPECT_EQ(log.lines(), 2U);
  EXPECT_EQ(log.errors(), 0U);

  const std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(nlohmann::json::parse(lines[0]).at("decision"), "planned");
  EXPECT_EQ(nlohmann::json::parse(lines[1]).at("decision"), "executed");

  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
}

TEST(AuditLogTest, AppendsToAnExistingFileAndAfterReopen) {
  testing::TempDir dir("lw-audit");
  const std::string path = dir.File("audit.jsonl");
  {
    std::ofstream out(path);
    out << "{\"type\":\"earlier\"}\n";
  }
  {
    AuditLog log(AuditLogOptions{path, false});
    EXPECT_TRUE(log.Write(Entry("planned", 1)));
    log.Reopen();
    EXPECT_TRUE(log.Write(Entry("executed", 1)));
  }
  AuditLog second(AuditLogOptions{path, false});
  EXPECT_TRUE(second.Write(Entry("skipped", 2)));
  const std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 4U);
  EXPECT_EQ(lines[0], "{\"type\":\"earlier\"}");
  EXPECT_EQ(nlohmann::json::parse(lines[3]).at("pid"), 2);
}

TEST(AuditLogTest, UnwritablePathCountsErrorsAndRecoversWhenPossible) {
  testing::TempDir dir("lw-audit");
  const std::string path = dir.File("missing-dir/audit.jsonl");
  AuditLog log(AuditLogOptions{path, false});
  EXPECT_FALSE(log.Open().ok());
  EXPECT_FALSE(log.Write(Entry("planned", 1)));
  EXPECT_FALSE(log.Write(Entry("planned", 2)));
  EXPECT_EQ(log.errors(), 2U);
  EXPECT_EQ(log.lines(), 0U);
  // The open is retried at the next write: once the directory exists, lines are written.
  ASSERT_EQ(::mkdir(dir.File("missing-dir").c_str(), 0700), 0);
  EXPECT_TRUE(log.Write(Entry("planned", 3)));
  EXPECT_EQ(ReadLines(path).size(), 1U);
}

TEST(AuditLogTest, EmptyPathDisablesTheLog) {
  AuditLog log(AuditLogOptions{"", false});
  EXPECT_TRUE(log.Open().ok());
  EXPECT_TRUE(log.Write(Entry("planned", 1)));
  EXPECT_EQ(log.errors(), 0U);
}

TEST(AuditLogTest, InvalidUtf8InTextIsReplacedNotThrown) {
  testing::TempDir dir("lw-audit");
  const std::string path = dir.File("audit.jsonl");
  AuditLog log(AuditLogOptions{path, false});
  AuditEntry e = Entry("skipped", 1);
  e.application_name = std::string("bad\xff\xfe");
  EXPECT_TRUE(log.Write(e));
  const std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_TRUE(nlohmann::json::accept(lines[0]));
  EXPECT_EQ(nlohmann::json::parse(lines[0]).at("decision"), "skipped");
}

}  // namespace
}  // namespace lockwatch::remediation
