#include "agent/app/tree_command.h"

#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/app/cli.h"
#include "agent/app/terminal.h"

#include "tests/app/tree_fixtures.h"

namespace lockwatch::app_test {
namespace {

using app::CliContext;
using core::LockMode;
using core::Status;

// A scripted snapshot source: records the DSN it was made for, answers Connect and Poll as told.
struct FakeServer {
  Status connect = Status::Ok();
  core::Result<core::Snapshot> poll = core::Snapshot{};
  std::string redacted = "host=db.internal user=monitor password=***";
  std::string dsn_seen;
  int connects = 0;
  int polls = 0;
};

class FakeSource : public app::SnapshotSource {
 public:
  explicit FakeSource(FakeServer* server) : server_(server) {}
  Status Connect() override {
    ++server_->connects;
    return server_->connect;
  }
  core::Result<core::Snapshot> Poll() override {
    ++server_->polls;
    return server_->poll;
  }
  std::string redacted_dsn() const override { return server_->redacted; }

 private:
  FakeServer* server_;
};

SnapshotFixture Blocked() {
  SnapshotFixture f;
  f.Relation(16384, "public.t")
      .Session(101, "idle in transaction", "select count(*) from t", 60)
      .Session(102, "active", "alter table t add column x int -- " + std::string(200, 'x'), 30)
      .HoldsRelation(101, 16384, LockMode::kAccessShare)
      .WaitsRelation(102, 16384, LockMode::kAccessExclusive, 30);
  return f;
}

class TreeCommandTest : public ::testing::Test {
 protected:
  TreeCommandTest() {
    server_.poll = Blocked().snapshot();
    context_.out = &out_;
    context_.err = &err_;
    context_.snapshot_source = [this](const std::string& dsn) {
      server_.dsn_seen = dsn;
      return std::make_unique<FakeSource>(&server_);
    };
  }

  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "lockwatch");
    std::vector<const char*> argv;
    argv.reserve(args.size());
    for (const std::string& a : args) argv.push_back(a.c_str());
    return app::RunCli(context_, static_cast<int>(argv.size()), argv.data());
  }

  FakeServer server_;
  CliContext context_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(TreeCommandTest, PrintsTheTreeAndExitsZero) {
  EXPECT_EQ(Run({"tree", "--dsn", "host=db.internal"}), 0) << err_.str();
  EXPECT_EQ(server_.dsn_seen, "host=db.internal");
  EXPECT_EQ(server_.connects, 1);
  EXPECT_EQ(server_.polls, 1);
  EXPECT_NE(out_.str().find("ROOT idle_in_transaction"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("`- 102 | waiting 30s"), std::string::npos) << out_.str();
  EXPECT_EQ(err_.str(), "");
}

TEST_F(TreeCommandTest, NoWaitsIsStillSuccess) {
  SnapshotFixture quiet;
  quiet.Session(5, "idle", "select 1");
  server_.poll = quiet.snapshot();
  EXPECT_EQ(Run({"tree"}), 0);
  EXPECT_NE(out_.str().find("No lock waits"), std::string::npos);
}

TEST_F(TreeCommandTest, NotATerminalMeansWidth120AndNoColour) {
  EXPECT_EQ(Run({"tree"}), 0);
  bool cut = false;
  std::istringstream lines(out_.str());
  for (std::string line; std::getline(lines, line);) {
    EXPECT_LE(line.size(), 120u) << line;
    cut = cut || line.size() == 120u;
  }
  EXPECT_TRUE(cut) << "the long query line should have been cut at 120: " << out_.str();
  EXPECT_EQ(out_.str().find('\x1b'), std::string::npos);
}

TEST_F(TreeCommandTest, WidthFlagOverridesTheTerminal) {
  context_.terminal.env_columns = 200;
  EXPECT_EQ(Run({"tree", "--width", "80"}), 0);
  std::istringstream lines(out_.str());
  for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), 80u) << line;
}

TEST_F(TreeCommandTest, ColourOnTerminalUnlessDisabled) {
  context_.terminal.stdout_is_tty = true;
  EXPECT_EQ(Run({"tree"}), 0);
  EXPECT_NE(out_.str().find("\x1b["), std::string::npos);
  out_.str("");
  EXPECT_EQ(Run({"tree", "--no-color"}), 0);
  EXPECT_EQ(out_.str().find('\x1b'), std::string::npos);
}

TEST_F(TreeCommandTest, JsonFlagPrintsTheVersionedDocument) {
  EXPECT_EQ(Run({"tree", "--json"}), 0) << err_.str();
  const nlohmann::json doc = nlohmann::json::parse(out_.str());
  EXPECT_EQ(doc.at("schema_version"), 1);
  EXPECT_EQ(doc.at("roots").size(), 1u);
  EXPECT_EQ(doc.at("edges").at(0).at("waiter_pid"), 102);
  // Explanations of every root (here the idle-in-transaction holder 101).
  ASSERT_EQ(doc.at("explanations").size(), 1u) << doc.at("explanations").dump();
  EXPECT_EQ(doc.at("explanations").at(0).at("kind"), "idle_in_transaction_holder");
  EXPECT_EQ(doc.at("explanations").at(0).at("root_pid"), 101);
}

TEST_F(TreeCommandTest, TextShowsWhyAndFixUnderTheRoot) {
  EXPECT_EQ(Run({"tree"}), 0) << err_.str();
  const std::string text = out_.str();
  const size_t root = text.find("\n101 | ");
  ASSERT_NE(root, std::string::npos) << text;
  const size_t why = text.find("\n  why: idle_in_transaction_holder: pid 101", root);
  const size_t fix = text.find("\n  fix: SELECT pg_terminate_backend(101)", root);
  EXPECT_NE(why, std::string::npos) << text;
  EXPECT_NE(fix, std::string::npos) << text;
  EXPECT_LT(why, fix);
  EXPECT_LT(fix, text.find("\n`- 102 |", root)) << text;
}

TEST_F(TreeCommandTest, ConnectionFailureExitsTwoWithRedactedTarget) {
  server_.connect = Status::Unavailable("could not connect to server: Connection refused");
  EXPECT_EQ(Run({"tree", "--dsn", "host=db.internal user=monitor password=hunter2"}), 2);
  EXPECT_EQ(server_.polls, 0);
  EXPECT_EQ(out_.str(), "");
  EXPECT_NE(err_.str().find("cannot connect to host=db.internal user=monitor password=***"),
            std::string::npos)
      << err_.str();
  EXPECT_NE(err_.str().find("Connection refused"), std::string::npos);
  EXPECT_EQ(err_.str().find("hunter2"), std::string::npos) << err_.str();
}

struct FailureCase {
  const char* name;
  bool at_connect;
  Status status;
  int exit_code;
};

class TreeFailureTest : public TreeCommandTest, public ::testing::WithParamInterface<FailureCase> {};

TEST_P(TreeFailureTest, MapsErrorsToExitStatus) {
  const FailureCase& c = GetParam();
  if (c.at_connect) {
    server_.connect = c.status;
  } else {
    server_.poll = c.status;
  }
  EXPECT_EQ(Run({"tree"}), c.exit_code);
  EXPECT_NE(err_.str().find(c.status.message()), std::string::npos) << err_.str();
  EXPECT_EQ(out_.str(), "");
}

INSTANTIATE_TEST_SUITE_P(
    Errors, TreeFailureTest,
    ::testing::Values(
        FailureCase{"connect_refused", true, Status::Unavailable("refused"), 2},
        FailureCase{"connect_auth", true, Status::PermissionDenied("password authentication failed"), 2},
        FailureCase{"connect_bad_dsn", true, Status::InvalidArgument("invalid connection option"), 2},
        FailureCase{"poll_connection_lost", false, Status::Unavailable("server closed the connection"), 2},
        FailureCase{"poll_sql_error", false, Status::QueryFailed("42501: permission denied"), 1},
        FailureCase{"poll_timeout", false, Status::Timeout("57014: statement timeout"), 1}),
    [](const ::testing::TestParamInfo<FailureCase>& param_info) { return param_info.param.name; });

TEST_F(TreeCommandTest, EmptyDsnNamesTheEnvironment) {
  server_.redacted = "";
  server_.connect = Status::Unavailable("no such host");
  EXPECT_EQ(Run({"tree"}), 2);
  EXPECT_NE(err_.str().find("PG* environment"), std::string::npos) << err_.str();
}

TEST_F(TreeCommandTest, VersionPrintsVersionAndRevision) {
  EXPECT_EQ(Run({"--version"}), 0);
  EXPECT_EQ(out_.str(), std::string(app::VersionString()) + "\n");
  EXPECT_EQ(out_.str().rfind("lockwatch ", 0), 0u);
  EXPECT_NE(out_.str().find("(revision "), std::string::npos);
  EXPECT_EQ(server_.connects, 0);
}

struct UsageCase {
  const char* name;
  std::vector<std::string> args;
  const char* message;
};

class CliUsageTest : public TreeCommandTest, public ::testing::WithParamInterface<UsageCase> {};

TEST_P(CliUsageTest, RejectsWithCli11Message) {
  const UsageCase& c = GetParam();
  const int code = Run(c.args);
  EXPECT_NE(code, 0);
  EXPECT_NE(err_.str().find(c.message), std::string::npos) << err_.str();
  EXPECT_EQ(server_.connects, 0) << "nothing runs on a usage error";
}

INSTANTIATE_TEST_SUITE_P(
    Usage, CliUsageTest,
    ::testing::Values(UsageCase{"no_subcommand", {}, "subcommand"},
                      UsageCase{"unknown_subcommand", {"frobnicate"}, "subcommand"},
                      UsageCase{"unknown_flag", {"tree", "--bogus"}, "--bogus"},
                      UsageCase{"width_too_small", {"tree", "--width", "5"}, "--width"},
                      UsageCase{"width_not_a_number", {"tree", "--width", "wide"}, "--width"},
                      UsageCase{"bad_log_level", {"--log-level", "loud", "tree"}, "--log-level"},
                      UsageCase{"bad_log_format", {"tree", "--log-format", "xml"}, "--log-format"}),
    [](const ::testing::TestParamInfo<UsageCase>& param_info) { return param_info.param.name; });

TEST_F(TreeCommandTest, GlobalFlagsAreAcceptedAfterTheSubcommand) {
  EXPECT_EQ(Run({"tree", "--log-level", "error", "--log-format", "json"}), 0) << err_.str();
  EXPECT_EQ(context_.global.log_level, "error");
  EXPECT_EQ(context_.global.log_format, "json");
}

struct WidthCase {
  const char* name;
  std::optional<int> flag;
  app::TerminalInfo terminal;
  int width;
};

TEST(TerminalTest, WidthComesFromFlagThenColumnsThenTerminalThenDefault) {
  const WidthCase cases[] = {
      {"flag_wins", 90, {true, 100, 110, false}, 90},
      {"columns_env", std::nullopt, {true, 100, 110, false}, 100},
      {"tty_ioctl", std::nullopt, {true, std::nullopt, 110, false}, 110},
      {"pipe_default", std::nullopt, {false, std::nullopt, std::nullopt, false}, 120},
      {"columns_env_even_when_piped", std::nullopt, {false, 70, std::nullopt, false}, 70},
  };
  for (const WidthCase& c : cases) EXPECT_EQ(app::ResolveWidth(c.flag, c.terminal), c.width) << c.name;
}

TEST(TerminalTest, ColourOnlyOnTerminalWithoutNoColor) {
  const struct {
    bool flag;
    bool tty;
    bool no_color_env;
    bool color;
  } cases[] = {
      {false, true, false, true},
      {true, true, false, false},
      {false, false, false, false},
      {false, true, true, false},
  };
  for (const auto& c : cases) {
    app::TerminalInfo t;
    t.stdout_is_tty = c.tty;
    t.no_color_env = c.no_color_env;
    EXPECT_EQ(app::ResolveColor(c.flag, t), c.color) << c.flag << c.tty << c.no_color_env;
  }
}

}  // namespace
}  // namespace lockwatch::app_test
