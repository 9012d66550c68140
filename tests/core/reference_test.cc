// Differential test: the output-sensitive graph construction against a literal, quadratic transcription of
// the reference algorithm (postgres-locks.md sections 3.2, 3.4 and 10) on random pg_locks snapshots.

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/analysis.h"

#include "tests/core/report_strings.h"
#include "tests/testing/snapshot_builder.h"

namespace lockwatch::core {
namespace {

using testing::Sec;
using testing::SnapshotBuilder;

constexpr uint32_t kDb = 16384;

// Literal reference: per key, per holder, hold mask and wait; queue by (NULL last, waitstart, pid) with the
// jump rule; every pair checked.
std::vector<std::string> ReferenceEdges(const Snapshot& s) {
  std::map<int32_t, int32_t> lead;
  for (const Session& sess : s.sessions) lead[sess.pid] = sess.leader_pid.value_or(sess.pid);
  std::map<std::string, std::string> gid_of_vt;
  for (const LockRow& r : s.locks) {
    if (r.pid || r.mode == LockMode::kSIRead || !r.granted || r.locktype != "transactionid") continue;
    for (const PreparedXact& p : s.prepared) {
      if (r.transactionid == p.transaction && r.mode == LockMode::kExclusive)
        gid_of_vt[r.virtualtransaction] = p.gid;
    }
  }
  auto node_of = [&](const LockRow& r) -> std::string {
    if (!r.pid) {
      auto it = gid_of_vt.find(r.virtualtransaction);
      return "0:" + (it != gid_of_vt.end() ? it->second : "?" + r.virtualtransaction);
    }
    auto it = lead.find(*r.pid);
    return std::to_string(it != lead.end() ? it->second : *r.pid);
  };
  using Key =
      std::tuple<std::string, std::optional<uint32_t>, std::optional<uint32_t>, std::optional<int32_t>,
                 std::optional<int32_t>, std::optional<std::string>, std::optional<uint32_t>,
                 std::optional<uint32_t>, std::optional<uint32_t>, std::optional<int32_t>>;
  struct Proc {
    std::string holder;  // pid or vt
    std::string node;
    int32_t pid = 0;
    LockMask hold = 0;
    LockMode wait = LockMode::kNone;
    std::optional<TimestampUs> arrival;
  };
  std::map<Key, std::map<std::string, Proc>> locks;
  for (const LockRow& r : s.locks) {
    if (r.mode == LockMode::kSIRead || r.fastpath) continue;
    if (!r.granted && !r.pid) continue;
    const Key key{r.locktype,   r.database,      r.relation, r.page,  r.tuple,
                  r.virtualxid, r.transactionid, r.classid,  r.objid, r.objsubid};
    const std::string holder = r.pid ? std::to_string(*r.pid) : "vt" + r.virtualtransaction;
    Proc& p = locks[key][holder];
    p.holder = holder;
    p.node = node_of(r);
    p.pid = r.pid.value_or(0);
    if (r.granted) {
      p.hold = static_cast<LockMask>(p.hold | Bit(r.mode));
    } else {
      p.wait = r.mode;
      p.arrival = r.waitstart;
    }
  }
  struct Out {
    bool hard = false;
    bool certain = false;
  };
  std::map<std::pair<std::string, std::string>, Out> edges;
  for (auto& [key, procs] : locks) {
    std::vector<Proc*> arrival;
    std::map<std::string, LockMask> node_hold;
    for (auto& [h, p] : procs) {
      node_hold[p.node] |= p.hold;
      if (p.wait != LockMode::kNone) arrival.push_back(&p);
    }
    std::sort(arrival.begin(), arrival.end(), [](const Proc* a, const Proc* b) {
      return std::make_tuple(!a->arrival.has_value(), a->arrival.value_or(0), a->pid) <
             std::make_tuple(!b->arrival.has_value(), b->arrival.value_or(0), b->pid);
    });
    std::vector<Proc*> queue;
    for (Proc* p : arrival) {
      size_t pos = queue.size();
      const LockMask held = node_hold[p->node];
      if (held != 0) {
        for (size_t i = 0; i < queue.size(); ++i) {
          if ((ConflictMask(queue[i]->wait) & held) != 0) {
            pos = i;
            break;
          }
        }
      }
      queue.insert(queue.begin() + static_cast<std::ptrdiff_t>(pos), p);
    }
    for (size_t wi = 0; wi < queue.size(); ++wi) {
      const Proc* w = queue[wi];
      const LockMask conflict = ConflictMask(w->wait);
      for (auto& [h, p] : procs) {
        if (&p == w || p.node == w->node) continue;
        Out* out = nullptr;
        if ((conflict & p.hold) != 0) {
          out = &edges[{w->node, p.node}];
          out->hard = true;
          out->certain = true;
          continue;
        }
        const auto it = std::find(queue.begin(), queue.end(), &p);
        if (p.wait == LockMode::kNone || (conflict & Bit(p.wait)) == 0 ||
            it - queue.begin() >= static_cast<std::ptrdiff_t>(wi)) {
          continue;
        }
        out = &edges[{w->node, p.node}];
        const bool certain = w->arrival && p.arrival && *w->arrival != *p.arrival;
        if (!out->hard) out->certain = out->certain || certain;
      }
    }
  }
  std::vector<std::string> out;
  out.reserve(edges.size());
  for (const auto& [pair, e] : edges) {
    out.push_back(pair.first + "->" + pair.second + (e.hard ? " hard" : " soft") + (e.certain ? "" : "?"));
  }
  return out;
}

Snapshot RandomSnapshot(std::mt19937& rng) {
  auto pick = [&rng](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  SnapshotBuilder b;
  b.Version(150000).Now(Sec(1000));
  const int sessions = 3 + pick(8);
  for (int i = 0; i < sessions; ++i) {
    b.Session(100 + i);
    if (i >= 3 && pick(4) == 0) b.LeaderPid(100 + pick(3));  // some parallel workers
  }
  b.Prepared(900, "g1");
  const char* modes[] = {
      "AccessShareLock", "RowShareLock",          "RowExclusiveLock", "ShareUpdateExclusiveLock",
      "ShareLock",       "ShareRowExclusiveLock", "ExclusiveLock",    "AccessExclusiveLock"};
  auto target = [&](SnapshotBuilder& sb) {
    const int t = pick(3);
    if (t == 0) sb.Relation(kDb, 16000 + static_cast<uint32_t>(pick(2)));
    if (t == 1) sb.Tuple(kDb, 16000, 0, 1);
    if (t == 2) sb.Advisory(kDb, 1);
  };
  // Holdings.
  for (int i = 0; i < sessions; ++i) {
    const int n = pick(3);
    for (int j = 0; j < n; ++j) {
      b.Lock(100 + i);
      target(b);
      b.Mode(modes[pick(8)]).Granted();
      if (pick(6) == 0) b.FastPath();
    }
  }
  if (pick(2) == 0) {
    b.PreparedLock("3/24").TransactionId(900).Mode("ExclusiveLock").Granted();
    b.PreparedLock("3/24");
    target(b);
    b.Mode(modes[pick(8)]).Granted();
  }
  // At most one wait per backend.
  for (int i = 0; i < sessions; ++i) {
    if (pick(3) == 0) continue;
    b.Lock(100 + i);
    target(b);
    b.Mode(modes[pick(8)]);
    const int ws = pick(5);
    b.Waiting(ws == 0 ? std::nullopt : std::optional<TimestampUs>(Sec(900 + ws)));
  }
  // Predicate-lock noise.
  b.Lock(100).Tuple(kDb, 16000, 0, 1).Mode("SIReadLock").Granted();
  return b.Build();
}

TEST(ReferenceTest, RandomSnapshotsMatchTheReferenceAlgorithm) {
  std::mt19937 rng(20240601);
  for (int round = 0; round < 3000; ++round) {
    const Snapshot s = RandomSnapshot(rng);
    std::vector<std::string> expected = ReferenceEdges(s);
    std::sort(expected.begin(), expected.end());
    std::vector<std::string> actual = EdgeStrings(Analyze(s));
    std::sort(actual.begin(), actual.end());
    ASSERT_EQ(actual, expected) << "round " << round;
  }
}

}  // namespace
}  // namespace lockwatch::core
