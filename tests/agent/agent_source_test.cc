#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "agent/agent/agent.h"
#include "agent/agent/log.h"

namespace lockwatch::agent {
namespace {

TEST(DsnWithPasswordTest, SetsOrReplacesThePasswordKeyword) {
  const struct {
    const char* dsn;
    const char* must_contain;
  } cases[] = {
      {"host=/tmp dbname=app", "host='/tmp'"},
      {"host=/tmp password=old dbname=app", "password='pw'"},
      {"postgresql://alice:old@db.example:5433/app", "user='alice'"},
  };
  for (const auto& c : cases) {
    core::Result<std::string> dsn = DsnWithPassword(c.dsn, "pw");
    ASSERT_TRUE(dsn.ok()) << c.dsn << ": " << dsn.status().message();
    EXPECT_NE(dsn.value().find(c.must_contain), std::string::npos) << dsn.value();
    EXPECT_EQ(dsn.value().find("old"), std::string::npos) << dsn.value();
    EXPECT_NE(dsn.value().find("password='pw'"), std::string::npos) << dsn.value();
  }
}

TEST(DsnWithPasswordTest, QuotesSpecialCharacters) {
  core::Result<std::string> dsn = DsnWithPassword("dbname=app", "it's a \\ secret");
  ASSERT_TRUE(dsn.ok());
  EXPECT_EQ(dsn.value(), "dbname='app' password='it\\'s a \\\\ secret'");
}

TEST(MakeCollectorSourceTest, UnreadablePasswordFileIsAnErrorNamingTheFile) {
  config::TargetConfig target{"t", "host=/tmp", "/nonexistent/lockwatch-secret"};
  core::Result<std::unique_ptr<PollSource>> source = MakeCollectorSource(target, config::SessionConfig{});
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), core::Status::Code::kPermissionDenied);
  EXPECT_NE(source.status().message().find("/nonexistent/lockwatch-secret"), std::string::npos);
}

TEST(MakeCollectorSourceTest, ReadablePasswordFileGivesAnUnconnectedSource) {
  char path[] = "/tmp/lockwatch-secret-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "s3cretpw\n";
  }
  config::TargetConfig target{"t", "host=/tmp port=1", path};
  core::Result<std::unique_ptr<PollSource>> source = MakeCollectorSource(target, config::SessionConfig{});
  std::remove(path);
  ASSERT_TRUE(source.ok()) << source.status().message();
  EXPECT_FALSE(source.value()->connected());
}

TEST(LogTest, JsonLinesAreOneEscapedObjectEach) {
  testing::internal::CaptureStderr();
  SetupLogging(config::LogConfig{"info", "json"});
  Log(spdlog::level::warn, "line \"one\"\nstill one", {{"target", "a\"b"}, {"attempt", 3}, {"ratio", 0.5}});
  Log(spdlog::level::debug, "filtered out");
  spdlog::info("plain {} from another layer", "message");
  spdlog::default_logger()->flush();
  const std::string out = testing::internal::GetCapturedStderr();
  SetupLogging(config::LogConfig{"info", "text"});
  std::istringstream lines(out);
  std::string line;
  std::vector<nlohmann::json> objects;
  while (std::getline(lines, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    objects.push_back(j);
  }
  ASSERT_EQ(objects.size(), 2u) << out;
  EXPECT_EQ(objects[0]["level"], "warning");
  EXPECT_EQ(objects[0]["msg"], "line \"one\"\nstill one");
  EXPECT_EQ(objects[0]["target"], "a\"b");
  EXPECT_EQ(objects[0]["attempt"], 3);
  EXPECT_EQ(objects[0]["ratio"], 0.5);
  EXPECT_TRUE(objects[0].contains("ts"));
  EXPECT_EQ(objects[1]["msg"], "plain message from another layer");
  EXPECT_EQ(objects[1]["level"], "info");
  EXPECT_EQ(out.rfind("{\"ts\":", 0), 0u) << out;  // ts comes first
}

TEST(LogTest, TextLinesQuoteValuesThatNeedIt) {
  testing::internal::CaptureStderr();
  SetupLogging(config::LogConfig{"info", "text"});
  Log(spdlog::level::info, "connected", {{"target", "main"}, {"dsn", "host=/tmp dbname=x"}, {"n", 2}});
  spdlog::default_logger()->flush();
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find(" info connected target=main dsn=\"host=/tmp dbname=x\" n=2\n"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace lockwatch::agent
