// Randomized differential test: seeded random sessions take random table, row and advisory locks one
// statement at a time; whenever the server is stable, lockwatch's blockers of every session must equal
// pg_blocking_pids(). The seed and the statement log are printed on failure so a case can be replayed with
// LOCKWATCH_RANDOM_SEED=<seed> LOCKWATCH_RANDOM_CASES=<n>.

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/pg_fixture.h"
#include "tests/testing/pg_harness.h"

namespace lockwatch::integration {
namespace {

using testing::PgSession;
using Clock = std::chrono::steady_clock;

constexpr std::array<const char*, 8> kTableModes = {
    "ACCESS SHARE", "ROW SHARE",           "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE",
    "SHARE",        "SHARE ROW EXCLUSIVE", "EXCLUSIVE",     "ACCESS EXCLUSIVE",
};
constexpr std::array<const char*, 3> kTables = {"r1", "r2", "rows"};
constexpr std::array<const char*, 4> kRowLocks = {"FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE",
                                                  "FOR KEY SHARE"};
constexpr std::array<const char*, 4> kAdvisory = {"pg_advisory_lock", "pg_advisory_lock_shared",
                                                  "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared"};
// Advisory keys used by nothing else in the test suite.
constexpr std::array<int, 3> kAdvisoryKeys = {910001, 910002, 910003};
constexpr int kMaxPreparedPerCase = 3;

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::stoll(v);
}

template <typename T, size_t N>
const T& Pick(std::mt19937_64& rng, const std::array<T, N>& values) {
  return values[std::uniform_int_distribution<size_t>(0, N - 1)(rng)];
}

// A random lock-taking statement.
std::string RandomStatement(std::mt19937_64& rng) {
  const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
  const int row = std::uniform_int_distribution<int>(1, 3)(rng);
  if (kind < 4)
    return std::string("LOCK TABLE ") + Pick(rng, kTables) + " IN " + Pick(rng, kTableModes) + " MODE";
  if (kind < 6) return "SELECT * FROM rows WHERE id = " + std::to_string(row) + " " + Pick(rng, kRowLocks);
  if (kind < 7) return "UPDATE rows SET v = v + 1 WHERE id = " + std::to_string(row);
  return std::string("SELECT ") + Pick(rng, kAdvisory) + "(" + std::to_string(Pick(rng, kAdvisoryKeys)) + ")";
}

class RandomDifferentialTest : public PgFixture {
 protected:
  struct Member {
    std::string label;
    PgSession* session = nullptr;
  };

  void Log(const std::string& line) { log_.push_back(line); }

  std::string LogText() const {
    std::string out;
    for (const std::string& line : log_) out += "    " + line + "\n";
    return out;
  }

  // After a failed statement the transaction is aborted (its locks are already released): start a new one.
  void Restart(const Member& m, const std::string& error) {
    Log(m.label + " error: " + error);
    m.session->Exec("ROLLBACK; BEGIN");
  }

  // Waits until every session is idle or waits on a heavyweight lock with waitstart set, collecting
  // statements that finished meanwhile (an error restarts the transaction, which can wake others: repeat
  // until a pass changes nothing).
  void Stabilize(const std::vector<Member>& members) {
    for (bool changed = true; changed;) {
      changed = false;
      for (const Member& m : members) {
        if (!m.session->pending()) continue;
        std::string error;
        if (testing::WaitUntilFinishedOrWaiting(observer(), *m.session, kWaitTimeout, &error) ==
            testing::WaitOutcome::kFinished) {
          changed = true;
          Log(m.label + " finished" + (error.empty() ? "" : " with error"));
          if (!error.empty()) Restart(m, error);
        }
      }
    }
  }

  // Compares lockwatch with pg_blocking_pids for every session. A mismatch is re-checked after waiting for
  // stability again (the poll and the pg_blocking_pids calls are separate reads); only a mismatch that
  // persists is reported. Returns false on failure.
  bool Compare(const std::vector<Member>& members, const std::string& where) {
    std::vector<std::string> mismatches;
    for (int attempt = 0; attempt < 3; ++attempt) {
      Stabilize(members);
      core::Report report = PollAndAnalyze();
      int blocked = 0;
      mismatches = BlockerMismatches(report, &blocked);
      ++comparisons_;
      if (mismatches.empty()) {
        waiter_checks_ += blocked;
        return true;
      }
    }
    std::string text;
    for (const std::string& m : mismatches) text += "  " + m + "\n";
    ADD_FAILURE() << "lockwatch differs from pg_blocking_pids at " << where << "\n"
                  << text << "  replay: LOCKWATCH_RANDOM_SEED=" << seed_
                  << " LOCKWATCH_RANDOM_CASES=" << (case_ + 1) << " (case seed "
                  << (seed_ + static_cast<uint64_t>(case_)) << ")\n  statements:\n"
                  << LogText();
    return false;
  }

  // One case: 4-8 sessions, 2-3 random statements each on average. Returns false on a mismatch.
  bool RunCase(std::mt19937_64& rng) {
    log_.clear();
    const int n = std::uniform_int_distribution<int>(4, 8)(rng);
    std::vector<Member> members;
    for (int i = 0; i < n; ++i) {
      const std::string label = "c" + std::to_string(case_) + "s" + std::to_string(i);
      PgSession& s = Open(label);
      // Never let the deadlock detector rearrange queues (or break cycles) during a case.
      s.Exec("SET deadlock_timeout = '10min'; SET lock_timeout = 0; BEGIN");
      members.push_back({label, &s});
      Log(label + " = pid " + std::to_string(s.pid()));
    }
    const int steps = std::uniform_int_distribution<int>(2 * n, 3 * n)(rng);
    int prepared = 0;
    for (int step = 0; step < steps; ++step) {
      std::vector<const Member*> idle;
      for (const Member& m : members) {
        if (!m.session->pending()) idle.push_back(&m);
      }
      if (idle.empty()) break;  // everyone waits (possibly in a deadlock the detector will not break)
      const Member& m = *idle[std::uniform_int_distribution<size_t>(0, idle.size() - 1)(rng)];
      std::string sql;
      if (prepared < kMaxPreparedPerCase && std::uniform_int_distribution<int>(0, 19)(rng) == 0) {
        sql = "PREPARE TRANSACTION '" + gid_prefix() + std::to_string(case_) + "_" +
              std::to_string(prepared++) + "'; BEGIN";
      } else {
        sql = RandomStatement(rng);
      }
      Log(m.label + ": " + sql);
      m.session->Send(sql);
      std::string error;
      if (testing::WaitUntilFinishedOrWaiting(observer(), *m.session, kWaitTimeout, &error) ==
          testing::WaitOutcome::kWaitingOnLock) {
        Log(m.label + " waits");
      } else if (!error.empty()) {
        Restart(m, error);
      }
      if (!Compare(members, "case " + std::to_string(case_) + " step " + std::to_string(step))) return false;
    }
    // Sessions end with the case: cancel waits, release prepared transactions, close, wait for the backends.
    for (const Member& m : members) {
      if (m.session->pending()) m.session->Cancel();
    }
    testing::RollbackPreparedWithPrefix(observer(), gid_prefix() + std::to_string(case_) + "_");
    for (const Member& m : members) CloseAndForget(m.label);
    return true;
  }

  uint64_t seed_ = 0;
  int case_ = 0;
  int comparisons_ = 0;
  int waiter_checks_ = 0;
  std::vector<std::string> log_;
};

TEST_F(RandomDifferentialTest, BlockersMatchPgBlockingPidsForEverySession) {
  const auto now_seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  seed_ =
      static_cast<uint64_t>(EnvInt("LOCKWATCH_RANDOM_SEED", static_cast<int64_t>(now_seed % 1000000007ULL)));
  const int64_t cases = EnvInt("LOCKWATCH_RANDOM_CASES", 100);
  const auto time_cap = std::chrono::seconds(EnvInt("LOCKWATCH_RANDOM_TIME_CAP_S", 240));
  std::cout << "random differential: seed " << seed_ << ", up to " << cases << " cases, time cap "
            << time_cap.count() << " s" << std::endl;
  ASSERT_GT(cases, 0);

  observer().Exec(
      "SET search_path = " + schema() +
      "; CREATE TABLE r1(id int); CREATE TABLE r2(id int);"
      "CREATE TABLE rows(id int PRIMARY KEY, v int); INSERT INTO rows VALUES (1, 0), (2, 0), (3, 0);"
      "RESET search_path");

  const Clock::time_point start = Clock::now();
  for (case_ = 0; case_ < cases; ++case_) {
    if (Clock::now() - start > time_cap) {
      std::cout << "random differential: time cap reached after " << case_ << " cases" << std::endl;
      break;
    }
    std::mt19937_64 rng(seed_ + static_cast<uint64_t>(case_));
    if (!RunCase(rng)) break;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << "random differential: seed " << seed_ << ", " << case_ << " cases, " << comparisons_
            << " comparisons, " << waiter_checks_ << " blocked-session checks, " << seconds << " s"
            << std::endl;
  // A run that never saw a blocked session proves nothing.
  EXPECT_GT(waiter_checks_, 0);
}

}  // namespace
}  // namespace lockwatch::integration
