#include "agent/hooks/exec_hook.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/testing/temp_dir.h"

namespace lockwatch::hooks {
namespace {

using std::chrono::milliseconds;

struct CapturedLog {
  spdlog::level::level_enum level;
  std::string msg;
  LogFields fields;
  std::string Field(const std::string& key) const {
    for (const auto& [k, v] : fields) {
      if (k == key) return v;
    }
    return "";
  }
};

class LogCapture {
 public:
  HookLogger Logger() {
    return [this](spdlog::level::level_enum level, const std::string& msg, const LogFields& fields) {
      std::lock_guard<std::mutex> lock(mu_);
      logs_.push_back(CapturedLog{level, msg, fields});
    };
  }
  std::vector<CapturedLog> logs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return logs_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<CapturedLog> logs_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Event SampleEvent() {
  Event e;
  e.kind = EventKind::kIncidentOpened;
  e.target = "main";
  e.at = 1795614300LL * 1000000;
  e.incident_id = "main-20261125T134500Z";
  e.summary = "[main] lock incident main-20261125T134500Z opened";
  e.payload = {
      {"schema_version", 1}, {"event", "incident.opened"}, {"target", "main"}, {"summary", e.summary}};
  return e;
}

// True once our child `pid` has been reaped: waitpid knows nothing of it any more.
bool Reaped(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == -1 && errno == ECHILD;
}

// True when `pid` no longer runs (gone, or a zombie waiting for a reaper that is not us).
bool NotRunning(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

TEST(ExecHookTest, ReceivesTheEventAsJsonOnStdinAndKeyFieldsInTheEnvironment) {
  testing::TempDir dir("lw-exec");
  ::setenv("PGPASSWORD", "must-not-leak", 1);  // the agent's environment is not inherited
  HookConfig config;
  config.name = "script";
  config.timeout = milliseconds(5000);
  config.exec.argv = {
      "/bin/sh",          "-c", "cat > \"$1\"; env > \"$2\"; echo done", "sh", dir.File("stdin.json"),
      dir.File("env.txt")};
  config.exec.env = {{"TEAM", "dba"}};
  LogCapture logs;
  ExecHook hook(config, logs.Logger());
  const Event event = SampleEvent();
  Interrupt interrupt;
  const DeliveryResult r = hook.Deliver(event, interrupt);
  ::unsetenv("PGPASSWORD");
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.detail, "exit 0");

  const nlohmann::json got = nlohmann::json::parse(ReadFile(dir.File("stdin.json")));
  EXPECT_EQ(got, event.payload);

  const std::string env = ReadFile(dir.File("env.txt"));
  EXPECT_NE(env.find("LOCKWATCH_EVENT=incident.opened\n"), std::string::npos) << env;
  EXPECT_NE(env.find("LOCKWATCH_TARGET=main\n"), std::string::npos) << env;
  EXPECT_NE(env.find("LOCKWATCH_INCIDENT_ID=main-20261125T134500Z\n"), std::string::npos) << env;
  EXPECT_NE(env.find("LOCKWATCH_AT=2026-11-25T13:45:00.000000Z\n"), std::string::npos) << env;
  EXPECT_NE(env.find("TEAM=dba\n"), std::string::npos) << env;
  EXPECT_NE(env.find("PATH="), std::string::npos) << env;
  EXPECT_EQ(env.find("must-not-leak"), std::string::npos) << env;
  EXPECT_EQ(env.find("LOCKWATCH_PID"), std::string::npos) << env;

  const std::vector<CapturedLog> lines = logs.logs();
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0].msg, "exec hook ran");
  EXPECT_EQ(lines[0].level, spdlog::level::info);
  EXPECT_EQ(lines[0].Field("hook"), "script");
  EXPECT_EQ(lines[0].Field("stdout"), "done\n");
}

TEST(ExecHookTest, NonZeroExitIsAFailureAndStderrIsLogged) {
  HookConfig config;
  config.name = "failing";
  config.timeout = milliseconds(5000);
  config.exec.argv = {"/bin/sh", "-c", "cat >/dev/null; echo boom >&2; exit 3"};
  LogCapture logs;
  ExecHook hook(config, logs.Logger());
  Interrupt interrupt;
  const DeliveryResult r = hook.Deliver(SampleEvent(), interrupt);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "exit 3");
  const std::vector<CapturedLog> lines = logs.logs();
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0].msg, "exec hook failed");
  EXPECT_EQ(lines[0].level, spdlog::level::warn);
  EXPECT_EQ(lines[0].Field("stderr"), "boom\n");
  EXPECT_EQ(lines[0].Field("result"), "exit 3");
}

TEST(ExecHookTest, MissingProgramFailsToStart) {
  HookConfig config;
  config.name = "missing";
  config.exec.argv = {"/nonexistent/lockwatch-hook"};
  ExecHook hook(config, nullptr);
  Interrupt interrupt;
  const DeliveryResult r = hook.Deliver(SampleEvent(), interrupt);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 0);
  EXPECT_NE(r.detail.find("could not start /nonexistent/lockwatch-hook"), std::string::npos) << r.detail;
}

TEST(RunExecTest, HangingProgramAndItsChildrenAreKilledAtTheTimeoutWithoutZombies) {
  testing::TempDir dir("lw-exec");
  ExecSpec spec;
  spec.argv = {"/bin/sh", "-c", "sleep 60 & echo $! > \"$1\"; wait", "sh", dir.File("child.pid")};
  spec.timeout = milliseconds(1000);
  spec.kill_grace = milliseconds(500);
  Interrupt interrupt;
  const auto start = std::chrono::steady_clock::now();
  const ExecResult r = RunExec(spec, interrupt);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.started) << r.error;
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.exited);
  EXPECT_EQ(r.term_signal, SIGTERM);
  EXPECT_GE(took, milliseconds(1000));
  EXPECT_LT(took, milliseconds(3500));
  EXPECT_TRUE(Reaped(r.pid));
  const std::string child = ReadFile(dir.File("child.pid"));
  ASSERT_FALSE(child.empty());
  const pid_t grandchild = static_cast<pid_t>(std::stol(child));
  // The background `sleep` was in the hook's process group: it got the signal too.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = NotRunning(grandchild);
    if (!gone) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(gone) << "grandchild " << grandchild << " still runs";
}

TEST(RunExecTest, ProgramIgnoringSigtermIsKilledAfterTheGrace) {
  ExecSpec spec;
  spec.argv = {"/bin/sh", "-c", "trap '' TERM; sleep 60"};
  spec.timeout = milliseconds(1000);
  spec.kill_grace = milliseconds(300);
  Interrupt interrupt;
  const auto start = std::chrono::steady_clock::now();
  const ExecResult r = RunExec(spec, interrupt);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.started) << r.error;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_GE(took, milliseconds(1300));
  EXPECT_LT(took, milliseconds(3500));
  EXPECT_TRUE(Reaped(r.pid));
}

TEST(RunExecTest, InterruptStopsARunningProgramPromptly) {
  ExecSpec spec;
  spec.argv = {"/bin/sleep", "60"};
  spec.timeout = milliseconds(30000);
  spec.kill_grace = milliseconds(500);
  Interrupt interrupt;
  std::thread trigger([&] {
    std::this_thread::sleep_for(milliseconds(200));
    interrupt.Trigger();
  });
  const auto start = std::chrono::steady_clock::now();
  const ExecResult r = RunExec(spec, interrupt);
  const auto took = std::chrono::steady_clock::now() - start;
  trigger.join();
  EXPECT_TRUE(r.interrupted);
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_TRUE(Reaped(r.pid));
}

TEST(RunExecTest, LargeInputIsFedWhileOutputIsReadAndOutputIsBounded) {
  ExecSpec spec;
  spec.argv = {"/bin/cat"};
  spec.input = std::string(1 << 20, 'x');  // far more than a pipe buffer each way
  spec.max_output = 1000;
  spec.timeout = milliseconds(5000);
  Interrupt interrupt;
  const ExecResult r = RunExec(spec, interrupt);
  ASSERT_TRUE(r.started) << r.error;
  EXPECT_TRUE(r.exited);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.size(), 1000U);
  EXPECT_TRUE(r.out_truncated);
  EXPECT_FALSE(r.err_truncated);
}

TEST(RunExecTest, ProgramThatIgnoresStdinDoesNotHurtTheCaller) {
  ExecSpec spec;
  spec.argv = {"/bin/true"};
  spec.input = std::string(1 << 20, 'x');
  spec.timeout = milliseconds(5000);
  Interrupt interrupt;
  const ExecResult r = RunExec(spec, interrupt);  // EPIPE, not SIGPIPE
  ASSERT_TRUE(r.started) << r.error;
  EXPECT_TRUE(r.exited);
  EXPECT_EQ(r.exit_code, 0);
}

TEST(RunExecTest, NoDescriptorIsInherited) {
  // A descriptor opened without O_CLOEXEC, as another thread or library might.
  const int leaked = ::open("/dev/null", O_RDONLY);  // NOLINT(android-cloexec-open)
  ASSERT_GE(leaked, 0);
  ExecSpec spec;
  spec.argv = {"/bin/ls", "-1", "/proc/self/fd"};
  spec.timeout = milliseconds(5000);
  Interrupt interrupt;
  const ExecResult r = RunExec(spec, interrupt);
  ::close(leaked);
  ASSERT_TRUE(r.exited) << r.error;
  std::set<std::string> fds;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) fds.insert(line);
  // 0-2 are the pipes; 3 is ls's own handle on /proc/self/fd.
  EXPECT_EQ(fds, (std::set<std::string>{"0", "1", "2", "3"})) << r.out;
}

// The example hook shipped in packaging/hooks runs as documented: exit 0, the event kept in the spool.
TEST(ExecHookTest, ExampleLoggerScriptKeepsTheEventInItsSpool) {
  testing::TempDir dir("lw-exec-example");
  HookConfig config;
  config.name = "syslog";
  config.timeout = milliseconds(5000);
  config.exec.argv = {std::string(LOCKWATCH_SOURCE_DIR) + "/packaging/hooks/lockwatch-hook-logger"};
  config.exec.env = {{"LOCKWATCH_HOOK_SPOOL", dir.path()}};
  ExecHook hook(config, nullptr);
  const Event event = SampleEvent();
  Interrupt interrupt;
  const DeliveryResult r = hook.Deliver(event, interrupt);
  EXPECT_TRUE(r.ok) << r.detail;
  const std::string kept = ReadFile(dir.File("2026-11-25T13:45:00.000000Z-incident.opened.json"));
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(nlohmann::json::parse(kept), event.payload);
}

TEST(ExecEnvironmentTest, ConfiguredVariablesCannotOverrideLockwatchOnes) {
  ExecHookConfig config;
  config.env = {{"LOCKWATCH_TARGET", "spoofed"}, {"HOME", "/var/lib/lockwatch"}};
  const auto env = ExecEnvironment(config, SampleEvent());
  EXPECT_EQ(env.at("LOCKWATCH_TARGET"), "main");
  EXPECT_EQ(env.at("HOME"), "/var/lib/lockwatch");
  EXPECT_FALSE(env.at("PATH").empty());
}

}  // namespace
}  // namespace lockwatch::hooks
