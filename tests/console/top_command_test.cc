#include "agent/console/top_command.h"

#include <memory>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include "agent/app/cli_context.h"

#include "tests/testing/snapshot_builder.h"

namespace lockwatch::console {
namespace {

using testing::Sec;

struct FakeServer {
  core::Status connect = core::Status::Ok();
  core::Result<core::Snapshot> poll = core::Snapshot{};
  int polls = 0;
};

class FakeSource : public app::SnapshotSource {
 public:
  explicit FakeSource(FakeServer* server) : server_(server) {}
  core::Status Connect() override { return server_->connect; }
  core::Result<core::Snapshot> Poll() override {
    ++server_->polls;
    return server_->poll;
  }
  std::string redacted_dsn() const override { return "host=db1 password=***"; }

 private:
  FakeServer* server_;
};

core::Snapshot Blocked() {
  return testing::SnapshotBuilder()
      .Now(Sec(1795614300))
      .RelationName(5, 16384, "public.t")
      .Session(101)
      .State("idle in transaction")
      .Query("select count(*) from t")
      .Session(102)
      .Query("alter table t add column x int")
      .Lock(101)
      .Relation(5, 16384)
      .Mode("AccessShareLock")
      .Granted()
      .Lock(102)
      .Relation(5, 16384)
      .Mode("AccessExclusiveLock")
      .Waiting(Sec(1795614290))
      .Build();
}

class TopCommandTest : public ::testing::Test {
 protected:
  int Run(const std::string& args) {
    context_.out = &out_;
    context_.err = &err_;
    context_.snapshot_source = [this](const std::string&) -> std::unique_ptr<app::SnapshotSource> {
      return std::make_unique<FakeSource>(&server_);
    };
    CLI::App app;
    AddTopCommand(app, context_);
    app.parse("top " + args, false);
    return context_.exit_code;
  }

  FakeServer server_;
  app::CliContext context_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(TopCommandTest, OnceNotOnATerminalPrintsOnePlainFrameWithTreesExpanded) {
  server_.poll = Blocked();
  EXPECT_EQ(Run("--once --width 200"), app::kExitOk);
  const std::string text = out_.str();
  EXPECT_EQ(server_.polls, 1);
  EXPECT_NE(text.find("lockwatch top | 2026-11-25T13:45:00.000000Z | every 1s | host=db1 password=***"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\n[-] 101 idle in transaction blocks 1 | "), std::string::npos) << text;
  EXPECT_NE(text.find("    why: idle_in_transaction_holder: "), std::string::npos) << text;
  EXPECT_NE(text.find("    fix: SELECT pg_terminate_backend(101)"), std::string::npos) << text;
  EXPECT_NE(text.find("  `-  102 waits 10s AccessExclusiveLock on relation public.t (hard)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find("q quit"), std::string::npos);
}

TEST_F(TopCommandTest, CountPrintsThatManyFrames) {
  server_.poll = Blocked();
  EXPECT_EQ(Run("--count 2 --interval 0.1"), app::kExitOk);
  EXPECT_EQ(server_.polls, 2);
  const std::string text = out_.str();
  EXPECT_NE(text.find("lockwatch top |"), text.rfind("lockwatch top |"));
  EXPECT_NE(text.find("blocks 1 (=)"), std::string::npos) << "second frame shows the change: " << text;
}

TEST_F(TopCommandTest, ConnectionFailureExitsTwo) {
  server_.connect = core::Status::Unavailable("connection refused");
  EXPECT_EQ(Run("--once"), app::kExitConnectionFailed);
  EXPECT_NE(err_.str().find("lockwatch top: cannot connect to host=db1 password=***: connection refused"),
            std::string::npos)
      << err_.str();
}

TEST_F(TopCommandTest, PollFailureInPlainModeExitsWithItsStatus) {
  server_.poll = core::Status::QueryFailed("permission denied for pg_locks");
  EXPECT_EQ(Run("--once"), app::kExitError);
  EXPECT_NE(err_.str().find("permission denied for pg_locks"), std::string::npos) << err_.str();
}

}  // namespace
}  // namespace lockwatch::console
