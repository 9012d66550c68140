// Cost of the pure analysis on a realistic pile-up, from 1k to 1M pg_locks rows. The time per row should
// stay flat across sizes (linear cost). Snapshot construction is measured separately from Analyze().

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>

#include <benchmark/benchmark.h>

#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"

namespace lockwatch::core {
namespace {

constexpr uint32_t kDb = 16384;
constexpr uint32_t kHot = 16385;  // the table everybody piles up on
constexpr TimestampUs kNow = 1'700'000'000'000'000;

// Peak resident set size of this process in kB (VmHWM), 0 when unavailable.
double PeakRssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6));
  }
  return 0;
}

LockRow Row(int32_t pid, const char* locktype, LockMode mode, bool granted) {
  LockRow r;
  r.locktype = locktype;
  r.pid = pid;
  r.virtualtransaction = std::to_string(pid % 1000) + "/" + std::to_string(pid);
  r.mode = mode;
  r.granted = granted;
  return r;
}

// A DDL pile-up: session 1 sits idle in transaction holding AccessShare on the hot table, session 2 queues
// an AccessExclusive ALTER TABLE, everybody else queues AccessShare behind it; 1% of sessions instead wait
// on the row lock of their neighbour. Every session also holds its own vxid/xid and a spread of relation,
// tuple and advisory locks (fast path and main table), plus predicate-lock noise, up to `rows` rows.
Snapshot PileUp(int64_t rows) {
  const auto sessions = static_cast<int32_t>(std::min<int64_t>(10000, std::max<int64_t>(10, rows / 100)));
  const int64_t per_session = rows / sessions;
  Snapshot s;
  s.server_version_num = 150000;
  s.captured_at_us = kNow;
  s.own_pid = 1;
  s.locks_read = true;
  s.sessions.reserve(static_cast<size_t>(sessions));
  s.locks.reserve(static_cast<size_t>(rows));
  for (int32_t i = 0; i < sessions; ++i) {
    const int32_t pid = 1000 + i;
    Session sess;
    sess.pid = pid;
    sess.backend_type = "client backend";
    sess.state = i == 0 ? "idle in transaction" : "active";
    sess.state_change = kNow - 60'000'000 + i;
    s.sessions.push_back(sess);

    const auto xid = static_cast<uint32_t>(100000 + i);
    int64_t left = per_session;
    auto add = [&](LockRow r) {
      s.locks.push_back(std::move(r));
      --left;
    };
    LockRow vxid = Row(pid, "virtualxid", LockMode::kExclusive, true);
    vxid.virtualxid = vxid.virtualtransaction;
    vxid.fastpath = true;
    add(vxid);
    LockRow own = Row(pid, "transactionid", LockMode::kExclusive, true);
    own.transactionid = xid;
    add(own);

    // The wait of this session.
    if (i == 0) {
      LockRow hold = Row(pid, "relation", LockMode::kAccessShare, true);
      hold.database = kDb;
      hold.relation = kHot;
      add(hold);
    } else if (i % 100 == 50) {
      LockRow tuple = Row(pid, "tuple", LockMode::kExclusive, true);
      tuple.database = kDb;
      tuple.relation = 20000;
      tuple.page = i;
      tuple.tuple = 1;
      add(tuple);
      LockRow wait = Row(pid, "transactionid", LockMode::kShare, false);
      wait.transactionid = xid - 1;
      wait.waitstart = kNow - 5'000'000 + i;
      add(wait);
    } else {
      LockRow wait =
          Row(pid, "relation", i == 1 ? LockMode::kAccessExclusive : LockMode::kAccessShare, false);
      wait.database = kDb;
      wait.relation = kHot;
      wait.waitstart = kNow - 30'000'000 + i;
      add(wait);
    }

    // Everything else this session holds.
    for (int64_t j = 0; left > 0; ++j) {
      const auto k = static_cast<uint32_t>(j);
      switch (j % 8) {
        case 0:
        case 1:
        case 2: {
          LockRow r =
              Row(pid, "relation", j % 2 == 0 ? LockMode::kAccessShare : LockMode::kRowExclusive, true);
          r.database = kDb;
          r.relation = 30000 + (static_cast<uint32_t>(pid) * 7 + k) % 5000;
          r.fastpath = j < 16;
          add(r);
          break;
        }
        case 3:
        case 4: {
          LockRow r = Row(pid, "tuple", LockMode::kExclusive, true);
          r.database = kDb;
          r.relation = 40000 + k % 100;
          r.page = static_cast<int32_t>(pid);
          r.tuple = static_cast<int32_t>(j);
          add(r);
          break;
        }
        case 5: {
          LockRow r = Row(pid, "transactionid", LockMode::kExclusive, true);  // sub-transaction xids
          r.transactionid = 10'000'000 + static_cast<uint32_t>(i) * 1000 + k;
          add(r);
          break;
        }
        case 6: {
          LockRow r = Row(pid, "advisory", j % 16 == 6 ? LockMode::kShare : LockMode::kExclusive, true);
          r.database = kDb;
          r.classid = 0;
          r.objid = static_cast<uint32_t>(pid) * 1000 + k;
          r.objsubid = 1;
          add(r);
          break;
        }
        default: {
          LockRow r = Row(pid, "tuple", LockMode::kSIRead, true);
          r.database = kDb;
          r.relation = 40000 + k % 100;
          r.page = static_cast<int32_t>(pid);
          r.tuple = static_cast<int32_t>(j);
          add(r);
          break;
        }
      }
    }
  }
  return s;
}

void BM_BuildSnapshot(benchmark::State& state) {
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the loop variable is unused by design
    Snapshot s = PileUp(state.range(0));
    benchmark::DoNotOptimize(s.locks.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["peak_rss_kb"] = PeakRssKb();
}

void BM_Analyze(benchmark::State& state) {
  const Snapshot s = PileUp(state.range(0));
  size_t edges = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the loop variable is unused by design
    Report r = Analyze(s);
    edges = r.edges.size();
    benchmark::DoNotOptimize(r.roots.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(s.locks.size()));
  state.counters["rows"] = static_cast<double>(s.locks.size());
  state.counters["sessions"] = static_cast<double>(s.sessions.size());
  state.counters["edges"] = static_cast<double>(edges);
  state.counters["peak_rss_kb"] = PeakRssKb();
}

BENCHMARK(BM_BuildSnapshot)->RangeMultiplier(10)->Range(1000, 1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Analyze)->RangeMultiplier(10)->Range(1000, 1000000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lockwatch::core

BENCHMARK_MAIN();
