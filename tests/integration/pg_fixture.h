#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"
#include "agent/pg/collector.h"

#include "tests/testing/pg_harness.h"

namespace lockwatch::integration {

// Bound for every wait on server state in these tests.
constexpr std::chrono::milliseconds kWaitTimeout{15000};

// Base fixture for tests against the throwaway server: an observer session, a lockwatch collector, named
// sessions ("A", "B", ...) in a per-test schema, and cleanup that runs even when the test failed or threw:
// pending statements are cancelled, prepared transactions of the test rolled back, connections closed and
// awaited, the schema dropped. When the test failed, the lock state and lockwatch's edges are printed.
class PgFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Opens a session labelled `label` (application_name "lwit-<label>") with search_path = schema().
  testing::PgSession& Open(const std::string& label);
  // Closes a session opened with Open (cancelling its statement) and waits until its backend is gone.
  void CloseAndForget(const std::string& label);

  // One lockwatch poll of the server through the adapter under test, analysed by the core. Throws on error.
  core::Report PollAndAnalyze();

  // Edges whose waiter is one of this fixture's sessions, as "B->A hard" (prepared blockers as
  // "prepared:<gid>"), sorted.
  std::vector<std::string> OurEdges(const core::Report& report) const;
  // Roots that are this fixture's sessions or prepared transactions, as "A idle_in_transaction", in report
  // order.
  std::vector<std::string> OurRoots(const core::Report& report) const;
  // Cycles made only of this fixture's sessions, as "A,B hard" ("soft" when no hard edge), sorted.
  std::vector<std::string> OurCycles(const core::Report& report) const;

  // For every session of this fixture: the set of blocker pids in lockwatch's edges (0 for a prepared
  // transaction) equals the set of pg_blocking_pids(pid). Adds a failure per mismatch; returns the number of
  // sessions compared that were blocked.
  int ExpectBlockersMatchPgBlockingPids(const core::Report& report);
  // The same comparison without gtest side effects: one line per mismatching session, empty when all agree.
  std::vector<std::string> BlockerMismatches(const core::Report& report, int* blocked = nullptr);

  // The label of a node: a session label, "prepared:<gid>", or "pid:<n>" for somebody else's backend.
  std::string Label(const core::NodeRef& node) const;
  std::vector<int32_t> OurPids() const;

  const std::string& schema() const { return schema_; }
  // Prefix of prepared-transaction gids of this test; TearDown rolls back every gid with it.
  const std::string& gid_prefix() const { return gid_prefix_; }
  testing::PgSession& observer() { return *observer_; }
  testing::PgSession& session(const std::string& label) { return *sessions_.at(label); }
  // Text of the last report's edges (all of them), for failure messages.
  std::string DescribeLastReport() const;

  std::string dsn_;

 private:
  std::string schema_;
  std::string gid_prefix_;
  std::unique_ptr<testing::PgSession> observer_;
  std::unique_ptr<pg::Collector> collector_;
  std::map<std::string, std::unique_ptr<testing::PgSession>> sessions_;
  std::map<int32_t, std::string> labels_;
  std::optional<core::Report> last_report_;
};

// "B->A hard": the expected-edge notation used by OurEdges.
struct ExpectedEdge {
  std::string waiter;
  std::string blocker;
  core::EdgeKind kind;
};
std::vector<std::string> EdgeStrings(const std::vector<ExpectedEdge>& edges);

}  // namespace lockwatch::integration
