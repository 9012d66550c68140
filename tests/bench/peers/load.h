#pragma once

// The load generator: lock pile-ups on a real server, held by one process through many libpq connections
// (statements sent without waiting for the answer, so thousands of waiting sessions cost one socket each).

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <libpq-fe.h>

namespace lockwatch::bench {

struct Shape {
  int waiters = 0;      // sessions waiting on a heavyweight lock (0: steady state, `idle` sessions instead)
  int idle = 0;         // sessions that hold their extra locks and wait for nothing
  int extra_locks = 0;  // advisory locks held by every session (L)
  int roots = 1;        // root blockers; waiters are spread over them round robin
  int churners = 0;     // extra waiting sessions that are cancelled and replaced continuously
};

// Builds and holds one pile-up. Each root sits idle in transaction holding ACCESS SHARE on its table
// lw_hot_<r>; the first waiter of each root queues ACCESS EXCLUSIVE (an ALTER TABLE's lock) behind it, and
// every other waiter queues ACCESS SHARE behind that one: one hard blocker and a queue of soft-blocked
// sessions, the most common production pile-up.
class PileUp {
 public:
  PileUp(std::string dsn, PGconn* admin) : dsn_(std::move(dsn)), admin_(admin) {}
  ~PileUp();
  PileUp(const PileUp&) = delete;
  PileUp& operator=(const PileUp&) = delete;

  // Empty on success, else the error.
  std::string Build(const Shape& shape);
  // Terminates every session of the pile-up and waits until the server has let them go.
  void Teardown();
  // Sessions cancelled and replaced by the churn thread so far.
  int64_t churn_cycles() const { return churn_cycles_.load(); }

 private:
  PGconn* Open(const char* application_name, std::string* error);
  bool HoldAdvisory(PGconn* conn, int64_t session, int count, std::string* error);
  int64_t WaitingCount();
  bool WaitForWaiting(int64_t count, std::string* error);
  void Churn(int churners, int extra_locks);

  std::string dsn_;
  PGconn* admin_;
  std::vector<PGconn*> conns_;
  int64_t next_session_ = 0;
  std::thread churn_;
  std::atomic<bool> stop_churn_{false};
  std::atomic<int64_t> churn_cycles_{0};
  std::atomic<int64_t> churn_session_{1'000'000};
};

}  // namespace lockwatch::bench
