#include "agent/pg/actuator.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lockwatch::pg {
namespace {

TEST(SignalResultTest, NamesAndWhetherASignalWasSent) {
  struct Case {
    SignalResult result;
    const char* name;
    bool sent;
  };
  const std::vector<Case> cases = {
      {SignalResult::kSignalled, "signalled", true},
      {SignalResult::kExited, "exited", true},
      {SignalResult::kStillRunning, "still_running", true},
      {SignalResult::kStale, "stale", false},
      {SignalResult::kRefused, "refused", false},
      {SignalResult::kPermissionDenied, "permission_denied", false},
      {SignalResult::kError, "error", false},
  };
  for (const Case& c : cases) {
    EXPECT_STREQ(SignalResultName(c.result), c.name);
    EXPECT_EQ(SignalSent(c.result), c.sent) << c.name;
  }
  EXPECT_STREQ(SignalKindName(SignalKind::kCancel), "cancel");
  EXPECT_STREQ(SignalKindName(SignalKind::kTerminate), "terminate");
}

// Requests that can never be safe are rejected before any connection is attempted (the DSN points nowhere).
TEST(ActuatorTest, IncompleteIdentityIsRejectedWithoutConnecting) {
  struct Case {
    const char* name;
    int32_t pid;
    std::optional<core::TimestampUs> backend_start;
    std::chrono::milliseconds wait;
    const char* message_has;
  };
  const std::vector<Case> cases = {
      {"no backend_start", 4242, std::nullopt, std::chrono::milliseconds(10), "backend_start is required"},
      {"zero pid", 0, 1, std::chrono::milliseconds(10), "not a pid"},
      {"negative pid", -5, 1, std::chrono::milliseconds(10), "not a pid"},
      {"negative wait", 4242, 1, std::chrono::milliseconds(-1), "negative terminate_wait"},
  };
  Actuator actuator("host=/nonexistent/lockwatch-test port=1 password=hunter2");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    SignalRequest request;
    request.victim.pid = c.pid;
    request.victim.backend_start = c.backend_start;
    request.kind = SignalKind::kTerminate;
    request.terminate_wait = c.wait;
    core::Result<SignalOutcome> r = actuator.Signal(request);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), core::Status::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.message_has), std::string::npos) << r.status().message();
    EXPECT_FALSE(actuator.connected());
  }
}

TEST(ActuatorTest, UnreachableServerIsUnavailableAndNeverLeaksThePassword) {
  Actuator actuator("host=/nonexistent/lockwatch-test port=1 password=hunter2");
  EXPECT_EQ(actuator.redacted_dsn().find("hunter2"), std::string::npos);
  SignalRequest request;
  request.victim.pid = 4242;
  request.victim.backend_start = 1;
  core::Result<SignalOutcome> r = actuator.Signal(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), core::Status::Code::kUnavailable);
  EXPECT_EQ(r.status().message().find("hunter2"), std::string::npos) << r.status().message();
  EXPECT_FALSE(actuator.connected());
  EXPECT_EQ(actuator.server_version_num(), 0);
}

}  // namespace
}  // namespace lockwatch::pg
