#include "agent/forensics/dump_command.h"

#include <memory>
#include <sstream>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "agent/forensics/dump_reader.h"

#include "tests/forensics/dump_test_util.h"

namespace lockwatch::forensics {
namespace {

using testing::Sec;

class FakeSource final : public app::SnapshotSource {
 public:
  FakeSource(core::Status connect, core::Result<core::Snapshot> poll, std::string dsn)
      : connect_(std::move(connect)), poll_(std::move(poll)), dsn_(std::move(dsn)) {}
  core::Status Connect() override { return connect_; }
  core::Result<core::Snapshot> Poll() override { return poll_; }
  std::string redacted_dsn() const override { return dsn_; }

 private:
  core::Status connect_;
  core::Result<core::Snapshot> poll_;
  std::string dsn_;
};

struct Harness {
  std::ostringstream out;
  std::ostringstream err;
  app::CliContext context;
  Harness(const core::Status& connect, const core::Result<core::Snapshot>& poll,
          const std::string& dsn = "host=db.example port=5433") {
    context.out = &out;
    context.err = &err;
    context.snapshot_source = [=](const std::string&) {
      return std::unique_ptr<app::SnapshotSource>(std::make_unique<FakeSource>(connect, poll, dsn));
    };
  }
};

TEST(DumpCommandTest, WritesReadableManualDump) {
  test::TempDir dir;
  const std::string path = dir.File("manual.dump.gz");
  Harness h(core::Status::Ok(), test::PileUp(Sec(1795614307), 3, 2));
  DumpCommandOptions options;
  options.output = path;
  ASSERT_EQ(RunDump(options, h.context), app::kExitOk) << h.err.str();
  EXPECT_EQ(h.out.str(), path + "\n6 sessions, 3 blocked, 1 root blockers, max depth 1, longest wait 12 s\n");
  const core::Result<Dump> d = ReadDump(path);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_TRUE(d.value().complete);
  EXPECT_EQ(d.value().header["reason"], "manual");
  EXPECT_EQ(d.value().header["target"], "db.example_5433_app");
  EXPECT_EQ(d.value().header["query_text"], "normalize");
  ASSERT_EQ(d.value().records.size(), 2U);
  EXPECT_EQ(d.value().records[0].record["phase"], "manual");
  EXPECT_EQ(d.value().records[0].record["report"]["summary"]["blocked_sessions"], 3);
}

TEST(DumpCommandTest, DefaultFileNameNamesTargetAndTime) {
  EXPECT_EQ(DefaultDumpFileName("db1_app", Sec(1795614307)), "lockwatch-db1_app-20261125T134507Z.dump.gz");
}

TEST(DumpCommandTest, TargetNameNeverCarriesSecretsOrSlashes) {
  const struct {
    const char* dsn;
    const char* db;
    const char* want;
  } cases[] = {
      {"host=db.example port=5433 user=x", "app", "db.example_5433_app"},
      {"postgresql://u@10.0.0.5:6432/app?sslmode=require", "app", "10.0.0.5_6432_app"},
      {"postgres://db.example/app", "app", "db.example_app"},
      {"host=/var/run/postgresql", "app", "local_app"},
      {"", "app", "local_app"},
      {"host='my db'", "a/b", "my_db_a_b"},
  };
  for (const auto& c : cases) EXPECT_EQ(TargetName(c.dsn, c.db), c.want) << c.dsn;
}

TEST(DumpCommandTest, ConnectionFailureExitsTwo) {
  Harness h(core::Status::Unavailable("connection refused"), core::Status::Internal("unused"));
  EXPECT_EQ(RunDump(DumpCommandOptions{}, h.context), app::kExitConnectionFailed);
  EXPECT_EQ(h.err.str(), "lockwatch dump: cannot connect to host=db.example port=5433: connection refused\n");
  EXPECT_TRUE(h.out.str().empty());
}

TEST(DumpCommandTest, LostConnectionDuringPollExitsTwo) {
  Harness h(core::Status::Ok(), core::Status::Unavailable("server closed the connection"));
  EXPECT_EQ(RunDump(DumpCommandOptions{}, h.context), app::kExitConnectionFailed);
  EXPECT_NE(h.err.str().find("connection lost while reading"), std::string::npos);
}

TEST(DumpCommandTest, UnwritableOutputExitsOne) {
  Harness h(core::Status::Ok(), test::PileUp(Sec(1000), 1, 0));
  DumpCommandOptions options;
  options.output = "/nonexistent/dir/x.dump.gz";
  EXPECT_EQ(RunDump(options, h.context), app::kExitError);
  EXPECT_NE(h.err.str().find("cannot create /nonexistent/dir/x.dump.gz.partial"), std::string::npos)
      << h.err.str();
}

TEST(DumpCommandTest, ParsesOptionsAndQueryTextMode) {
  test::TempDir dir;
  const std::string path = dir.File("cli.dump.gz");
  Harness h(core::Status::Ok(), test::PileUp(Sec(1000), 1, 0));
  CLI::App app;
  AddDumpCommand(app, h.context);
  const char* argv[] = {"lockwatch", "dump", "-o", path.c_str(), "--query-text", "drop"};
  app.parse(6, argv);
  EXPECT_EQ(h.context.exit_code, app::kExitOk) << h.err.str();
  const core::Result<Dump> d = ReadDump(path);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d.value().header["query_text"], "drop");
  EXPECT_TRUE(d.value().records[0].record["snapshot"]["sessions"][0]["query"].is_null());
}

}  // namespace
}  // namespace lockwatch::forensics
