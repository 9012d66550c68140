#include "agent/core/wait_graph.h"

#include <algorithm>
#include <array>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lockwatch::core::internal {
namespace {

constexpr uint32_t kNoIndex = std::numeric_limits<uint32_t>::max();
constexpr int kModeCount = 9;  // LOCKMODE 0..8; index 0 unused

uint64_t Mix(uint64_t h, uint64_t v) {
  // splitmix64-style combination: cheap and good enough to spread the near-sequential oids of pg_locks.
  h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ULL;
  return h ^ (h >> 29);
}

template <typename T>
uint64_t MixOpt(uint64_t h, const std::optional<T>& v) {
  return v ? Mix(h, static_cast<uint64_t>(*v) + 1) : Mix(h, 0);
}

// The lock target: every identity column of the row, NULLs included (section 2 of the reference). This
// is injective per LOCKTAG in every server version, so no per-locktype parsing is needed for grouping.
struct KeyView {
  const LockRow* row;
};

struct KeyHash {
  size_t operator()(const KeyView& k) const {
    const LockRow& r = *k.row;
    uint64_t h = std::hash<std::string_view>()(r.locktype);
    h = MixOpt(h, r.database);
    h = MixOpt(h, r.relation);
    h = MixOpt(h, r.page);
    h = MixOpt(h, r.tuple);
    h = Mix(h, r.virtualxid ? std::hash<std::string_view>()(*r.virtualxid) + 1 : 0);
    h = MixOpt(h, r.transactionid);
    h = MixOpt(h, r.classid);
    h = MixOpt(h, r.objid);
    h = MixOpt(h, r.objsubid);
    return static_cast<size_t>(h);
  }
};

struct KeyEq {
  bool operator()(const KeyView& a, const KeyView& b) const {
    const LockRow& x = *a.row;
    const LockRow& y = *b.row;
    return x.locktype == y.locktype && x.database == y.database && x.relation == y.relation &&
           x.page == y.page && x.tuple == y.tuple && x.virtualxid == y.virtualxid &&
           x.transactionid == y.transactionid && x.classid == y.classid && x.objid == y.objid &&
           x.objsubid == y.objsubid;
  }
};

// A PROCLOCK as seen through pg_locks: one holder (backend or prepared transaction) on one key.
struct Entry {
  uint32_t key = 0;
  uint32_t holder = 0;
  LockMask hold = 0;
  LockMode wait = LockMode::kNone;
  size_t wait_row = 0;
};

struct Holder {
  int32_t pid = 0;  // 0 for a prepared transaction
  uint32_t node = 0;
  const Session* session = nullptr;
};

// One waiter in a lock's queue during reconstruction.
struct QueueItem {
  uint32_t entry = 0;
  std::optional<TimestampUs> arrival;
  int32_t pid = 0;
  uint32_t next = kNoIndex;
  uint32_t prev = kNoIndex;
};

uint64_t PairKey(uint32_t a, uint32_t b) { return (static_cast<uint64_t>(a) << 32) | b; }

// Open-addressing hash index (linear probing, power-of-two capacity, load <= 1/2). pg_locks can have a
// million rows; node-based std::unordered_map costs one allocation and one cache miss per row, this costs
// neither. `Find` calls `same(value)` to compare candidates, so the stored value can refer to an external
// key (a lock row) and only the full hash is kept here.
class FlatIndex {
 public:
  static constexpr uint32_t kEmpty = std::numeric_limits<uint32_t>::max();

  void Reserve(size_t n) {
    size_t capacity = 16;
    while (capacity < 2 * n) capacity *= 2;
    if (capacity > hashes_.size()) Rehash(capacity);
  }

  // Returns the value stored for `hash` that satisfies `same`, or inserts `value` and returns it.
  template <typename Same>
  uint32_t FindOrInsert(uint64_t hash, uint32_t value, const Same& same) {
    if (2 * (size_ + 1) > hashes_.size()) Rehash(hashes_.empty() ? 16 : 2 * hashes_.size());
    const size_t mask = hashes_.size() - 1;
    for (size_t i = static_cast<size_t>(hash) & mask;; i = (i + 1) & mask) {
      if (values_[i] == kEmpty) {
        hashes_[i] = hash;
        values_[i] = value;
        ++size_;
        return value;
      }
      if (hashes_[i] == hash && same(values_[i])) return values_[i];
    }
  }

 private:
  void Rehash(size_t capacity) {
    std::vector<uint64_t> old_hashes(capacity, 0);
    std::vector<uint32_t> old_values(capacity, kEmpty);
    old_hashes.swap(hashes_);
    old_values.swap(values_);
    const size_t mask = capacity - 1;
    for (size_t j = 0; j < old_values.size(); ++j) {
      if (old_values[j] == kEmpty) continue;
      size_t i = static_cast<size_t>(old_hashes[j]) & mask;
      while (values_[i] != kEmpty) i = (i + 1) & mask;
      hashes_[i] = old_hashes[j];
      values_[i] = old_values[j];
    }
  }

  std::vector<uint64_t> hashes_;
  std::vector<uint32_t> values_;
  size_t size_ = 0;
};

uint64_t HashPair(uint64_t pair) { return Mix(0x51ED270B27D3A5C1ULL, pair); }

class Builder {
 public:
  explicit Builder(const Snapshot& snapshot) : snap_(snapshot) {}

  WaitGraph Build() {
    IndexSessions();
    IndexPrepared();
    ScanRows();
    GroupEntriesByKey();
    for (uint32_t key = 0; key + 1 < key_begin_.size(); ++key) ProcessKey(key);
    FinishUnknownPids();
    return std::move(graph_);
  }

 private:
  bool Excluded(int32_t pid) const {
    if (snap_.own_pid == 0) return false;
    if (pid == snap_.own_pid) return true;
    auto it = sessions_.find(pid);
    return it != sessions_.end() && it->second->leader_pid == snap_.own_pid;
  }

  void IndexSessions() {
    sessions_.reserve(snap_.sessions.size());
    for (const Session& s : snap_.sessions) {
      if (snap_.own_pid != 0 && s.pid == snap_.own_pid) continue;
      sessions_.emplace(s.pid, &s);
    }
  }

  // Prepared transactions: rows with pid NULL grouped by virtualtransaction (its value differs before and
  // after a restart, so it is only used as a group id); the group's own xid names the gid.
  void IndexPrepared() {
    std::unordered_map<uint32_t, const std::string*> gid_by_xid;
    for (const PreparedXact& p : snap_.prepared) gid_by_xid.emplace(p.transaction, &p.gid);
    for (const LockRow& r : snap_.locks) {
      if (r.pid || r.mode == LockMode::kSIRead) continue;
      if (r.granted && r.mode == LockMode::kExclusive && r.locktype == "transactionid" && r.transactionid) {
        auto it = gid_by_xid.find(*r.transactionid);
        if (it != gid_by_xid.end()) prepared_gid_.emplace(r.virtualtransaction, *it->second);
      }
    }
  }

  uint32_t InternNode(int32_t pid, const std::string& gid, const Session* session) {
    uint32_t& slot = pid != 0 ? node_by_pid_[pid] : node_by_gid_[gid];
    if (slot == 0) {
      graph_.nodes.push_back(NodeRef{pid, gid});
      graph_.node_session.push_back(session);
      graph_.node_holds_advisory.push_back(false);
      slot = static_cast<uint32_t>(graph_.nodes.size());  // stored +1 so that 0 means "absent"
    }
    return slot - 1;
  }

  uint32_t InternHolder(const LockRow& r) {
    if (r.pid) {
      uint32_t& slot = holder_by_pid_[*r.pid];
      if (slot == 0) {
        Holder h;
        h.pid = *r.pid;
        auto it = sessions_.find(*r.pid);
        h.session = it == sessions_.end() ? nullptr : it->second;
        const int32_t lead = h.session && h.session->leader_pid ? *h.session->leader_pid : *r.pid;
        const Session* lead_session = h.session;
        if (lead != *r.pid) {
          auto lit = sessions_.find(lead);
          lead_session = lit == sessions_.end() ? nullptr : lit->second;
        }
        h.node = InternNode(lead, std::string(), lead_session);
        if (!h.session) unknown_pids_.push_back(*r.pid);
        holders_.push_back(h);
        slot = static_cast<uint32_t>(holders_.size());
      }
      return slot - 1;
    }
    uint32_t& slot = holder_by_vxact_[r.virtualtransaction];
    if (slot == 0) {
      auto it = prepared_gid_.find(r.virtualtransaction);
      const std::string gid = it != prepared_gid_.end() ? it->second : "?" + r.virtualtransaction;
      Holder h;
      h.node = InternNode(0, gid, nullptr);
      holders_.push_back(h);
      slot = static_cast<uint32_t>(holders_.size());
    }
    return slot - 1;
  }

  std::optional<TimestampUs> SinceOf(const LockRow& r, const Holder& h) const {
    if (r.waitstart) return r.waitstart;
    return h.session ? h.session->state_change : std::nullopt;
  }

  void RecordNodeWait(size_t row_index, const Holder& h) {
    const LockRow& r = snap_.locks[row_index];
    uint32_t& slot = wait_by_node_[h.node];
    if (slot == 0) {
      graph_.waits.push_back(NodeWait{h.node, row_index, SinceOf(r, h)});
      slot = static_cast<uint32_t>(graph_.waits.size());
      return;
    }
    // A lock group with several waiting members: prefer the leader's own wait, then the lowest pid.
    NodeWait& existing = graph_.waits[slot - 1];
    const int32_t lead = graph_.nodes[h.node].pid;
    const int32_t old_pid = *snap_.locks[existing.row].pid;
    const bool better = old_pid != lead && (h.pid == lead || h.pid < old_pid);
    if (better) existing = NodeWait{h.node, row_index, SinceOf(r, h)};
  }

  void ScanRows() {
    const size_t n = snap_.locks.size();
    keys_.Reserve(n);
    entries_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const LockRow& r = snap_.locks[i];
      // Predicate locks never block and reuse relation/page/tuple keys: drop them before anything else.
      if (r.mode == LockMode::kSIRead || r.mode == LockMode::kNone) continue;
      if (r.pid && Excluded(*r.pid)) continue;
      const uint32_t holder_id = InternHolder(r);
      const Holder& h = holders_[holder_id];
      if (r.granted && r.locktype == "advisory") graph_.node_holds_advisory[h.node] = true;
      // A prepared transaction never waits; a granted=false row without pid would be garbage.
      const bool waiting = !r.granted && r.pid;
      if (waiting) RecordNodeWait(i, h);
      // Fast-path locks cannot conflict with a waiter (they are moved to the main table first); skipping
      // them also removes the duplicates of a lock read while it was being transferred.
      if (r.fastpath) continue;
      if (!r.granted && !r.pid) continue;

      const auto next_key = static_cast<uint32_t>(key_rows_.size());
      const uint32_t key = keys_.FindOrInsert(KeyHash()(KeyView{&r}), next_key, [&](uint32_t k) {
        return KeyEq()(KeyView{&snap_.locks[key_rows_[k]]}, KeyView{&r});
      });
      if (key == next_key) {
        key_rows_.push_back(i);
        key_last_entry_.push_back(kNoIndex);
      }
      // pg_locks lists the modes of one PROCLOCK consecutively, so a holder's rows on a key are merged
      // here in the common case; the rare leftovers are merged per key after grouping.
      uint32_t entry = key_last_entry_[key];
      if (entry == kNoIndex || entries_[entry].holder != holder_id) {
        entry = static_cast<uint32_t>(entries_.size());
        entries_.push_back(Entry{key, holder_id, 0, LockMode::kNone, 0});
        key_last_entry_[key] = entry;
      }
      Entry& e = entries_[entry];
      if (r.granted) {
        e.hold = static_cast<LockMask>(e.hold | Bit(r.mode));
      } else if (e.wait == LockMode::kNone) {
        e.wait = r.mode;
        e.wait_row = i;
      }
    }
  }

  // Counting sort of entries by key: each key's PROCLOCKs become one contiguous range.
  void GroupEntriesByKey() {
    key_begin_.assign(key_rows_.size() + 1, 0);
    key_has_waiter_.assign(key_rows_.size(), false);
    for (const Entry& e : entries_) {
      ++key_begin_[e.key + 1];
      if (e.wait != LockMode::kNone) key_has_waiter_[e.key] = true;
    }
    for (size_t k = 1; k < key_begin_.size(); ++k) key_begin_[k] += key_begin_[k - 1];
    by_key_.resize(entries_.size());
    std::vector<uint32_t> fill(key_begin_.begin(), key_begin_.end() - 1);
    for (uint32_t i = 0; i < entries_.size(); ++i) by_key_[fill[entries_[i].key]++] = i;

    // Merge the entries of one holder on one key that were not adjacent in pg_locks (e.g. a row read
    // twice in a race); the buckets are compacted in place.
    std::vector<uint32_t> holder_key(holders_.size(), kNoIndex);
    std::vector<uint32_t> holder_entry(holders_.size(), 0);
    uint32_t out = 0;
    for (uint32_t key = 0; key + 1 < key_begin_.size(); ++key) {
      const uint32_t begin = key_begin_[key];
      const uint32_t end = key_begin_[key + 1];
      key_begin_[key] = out;
      for (uint32_t i = begin; i < end; ++i) {
        const uint32_t id = by_key_[i];
        const uint32_t holder = entries_[id].holder;
        if (holder_key[holder] != key) {
          holder_key[holder] = key;
          holder_entry[holder] = id;
          by_key_[out++] = id;
          continue;
        }
        Entry& into = entries_[holder_entry[holder]];
        const Entry& from = entries_[id];
        into.hold = static_cast<LockMask>(into.hold | from.hold);
        if (into.wait == LockMode::kNone && from.wait != LockMode::kNone) {
          into.wait = from.wait;
          into.wait_row = from.wait_row;
        }
      }
    }
    key_begin_.back() = out;
    by_key_.resize(out);
    node_hold_.assign(graph_.nodes.size(), 0);
    node_wanted_.assign(graph_.nodes.size(), LockMode::kNone);
    holder_stamp_.assign(entries_.size(), kNoIndex);
  }

  uint32_t NodeOf(uint32_t entry) const { return holders_[entries_[entry].holder].node; }

  void AddEdge(uint32_t waiter_entry, uint32_t blocker_entry, EdgeKind kind, bool certain) {
    const Entry& w = entries_[waiter_entry];
    const uint32_t wn = NodeOf(waiter_entry);
    const uint32_t bn = NodeOf(blocker_entry);
    GraphEdge edge;
    edge.waiter = wn;
    edge.blocker = bn;
    edge.kind = kind;
    edge.certain = certain;
    edge.key_row = key_rows_[w.key];
    edge.waiter_mode = w.wait;
    edge.blocker_held = node_hold_[bn];
    edge.blocker_wanted = node_wanted_[bn];
    edge.waiter_since = snap_.locks[w.wait_row].waitstart;
    const auto next_edge = static_cast<uint32_t>(graph_.edges.size());
    const uint32_t index = edge_index_.FindOrInsert(HashPair(PairKey(wn, bn)), next_edge, [&](uint32_t x) {
      return graph_.edges[x].waiter == wn && graph_.edges[x].blocker == bn;
    });
    if (index == next_edge) {
      graph_.edges.push_back(edge);
      return;
    }
    GraphEdge& existing = graph_.edges[index];
    if (existing.kind == EdgeKind::kSoft && kind == EdgeKind::kHard) {
      existing = edge;
    } else if (existing.kind == kind && certain) {
      existing.certain = true;  // one certain reason is enough; keep the first target
    }
  }

  void ProcessKey(uint32_t key) {
    if (!key_has_waiter_[key]) return;
    const uint32_t begin = key_begin_[key];
    const uint32_t end = key_begin_[key + 1];

    // Node-level view of the key: a lock group's modes are the union of its members' (myHeldLocks).
    for (uint32_t i = begin; i < end; ++i) {
      const Entry& e = entries_[by_key_[i]];
      const uint32_t node = holders_[e.holder].node;
      node_hold_[node] = static_cast<LockMask>(node_hold_[node] | e.hold);
      if (e.wait > node_wanted_[node]) node_wanted_[node] = e.wait;
    }

    EmitHardEdges(begin, end);
    EmitSoftEdges(begin, end);

    for (uint32_t i = begin; i < end; ++i) {
      const uint32_t node = NodeOf(by_key_[i]);
      node_hold_[node] = 0;
      node_wanted_[node] = LockMode::kNone;
    }
  }

  // Hard blockers: holders whose granted modes conflict with the waiter's request. Holders are bucketed by
  // held mode so that each waiter only visits holders it conflicts with.
  void EmitHardEdges(uint32_t begin, uint32_t end) {
    for (auto& bucket : holders_by_mode_) bucket.clear();
    for (uint32_t i = begin; i < end; ++i) {
      const uint32_t id = by_key_[i];
      const LockMask hold = entries_[id].hold;
      for (int m = 1; m < kModeCount; ++m) {
        if ((hold & (1u << m)) != 0) holders_by_mode_[static_cast<size_t>(m)].push_back(id);
      }
    }
    for (uint32_t i = begin; i < end; ++i) {
      const uint32_t w = by_key_[i];
      if (entries_[w].wait == LockMode::kNone) continue;
      const LockMask conflict = ConflictMask(entries_[w].wait);
      const uint32_t wn = NodeOf(w);
      for (int m = 1; m < kModeCount; ++m) {
        if ((conflict & (1u << m)) == 0) continue;
        for (uint32_t h : holders_by_mode_[static_cast<size_t>(m)]) {
          if (h == w || holder_stamp_[h] == w) continue;
          holder_stamp_[h] = w;
          // Same lock group never blocks, as in pg_blocking_pids (even for extend locks).
          if (NodeOf(h) == wn) continue;
          AddEdge(w, h, EdgeKind::kHard, true);
        }
      }
    }
  }

  std::optional<TimestampUs> ArrivalOf(uint32_t entry) const {
    const Entry& e = entries_[entry];
    if (snap_.server_version_num >= 140000) return snap_.locks[e.wait_row].waitstart;
    // Before 14 there is no waitstart: state_change approximates when the waiting statement started.
    const Session* s = holders_[e.holder].session;
    return s ? s->state_change : std::nullopt;
  }

  // Reconstructs the wait queue (section 3.4: arrival order plus the ProcSleep jump rule) and emits soft
  // blockers: waiters ahead whose requested mode conflicts with the waiter's requested mode.
  void EmitSoftEdges(uint32_t begin, uint32_t end) {
    queue_.clear();
    for (uint32_t i = begin; i < end; ++i) {
      const uint32_t id = by_key_[i];
      if (entries_[id].wait == LockMode::kNone) continue;
      queue_.push_back(QueueItem{id, ArrivalOf(id), holders_[entries_[id].holder].pid, kNoIndex, kNoIndex});
    }
    if (queue_.size() < 2) return;
    // NULL arrival = newest; ties by pid.
    std::sort(queue_.begin(), queue_.end(), [](const QueueItem& a, const QueueItem& b) {
      if (a.arrival.has_value() != b.arrival.has_value()) return a.arrival.has_value();
      if (a.arrival && *a.arrival != *b.arrival) return *a.arrival < *b.arrival;
      return a.pid < b.pid;
    });

    // The queue is a linked list over queue_. A jumper is inserted before the first waiter whose requested
    // mode conflicts with what the jumper's group already holds; that waiter is the earliest of the
    // per-mode "first waiter" entries, whose relative order `rank` keeps (at most 8 modes), so each
    // insertion is O(1) however long the queue.
    std::array<uint32_t, kModeCount> first;
    first.fill(kNoIndex);
    std::vector<int> rank;  // modes ordered by the queue position of their first waiter
    uint32_t head = kNoIndex;
    uint32_t tail = kNoIndex;
    for (uint32_t p = 0; p < queue_.size(); ++p) {
      const Entry& e = entries_[queue_[p].entry];
      const int wmode = static_cast<int>(e.wait);
      const LockMask held = node_hold_[NodeOf(queue_[p].entry)];
      size_t target_rank = rank.size();
      if (held != 0) {
        for (size_t r = 0; r < rank.size(); ++r) {
          if ((ConflictMask(static_cast<LockMode>(rank[r])) & held) != 0) {
            target_rank = r;
            break;
          }
        }
      }
      if (target_rank == rank.size()) {
        queue_[p].prev = tail;
        if (tail != kNoIndex) queue_[tail].next = p;
        tail = p;
        if (head == kNoIndex) head = p;
        if (first[static_cast<size_t>(wmode)] == kNoIndex) {
          first[static_cast<size_t>(wmode)] = p;
          rank.push_back(wmode);
        }
        continue;
      }
      const uint32_t t = first[static_cast<size_t>(rank[target_rank])];
      queue_[p].next = t;
      queue_[p].prev = queue_[t].prev;
      if (queue_[t].prev != kNoIndex) queue_[queue_[t].prev].next = p;
      queue_[t].prev = p;
      if (head == t) head = p;
      auto current = std::find(rank.begin(), rank.end(), wmode);
      if (current == rank.end()) {
        rank.insert(rank.begin() + static_cast<std::ptrdiff_t>(target_rank), wmode);
        first[static_cast<size_t>(wmode)] = p;
      } else if (static_cast<size_t>(current - rank.begin()) >= target_rank) {
        rank.erase(current);
        rank.insert(rank.begin() + static_cast<std::ptrdiff_t>(target_rank), wmode);
        first[static_cast<size_t>(wmode)] = p;
      }
    }

    const bool exact_order = snap_.server_version_num >= 140000;
    for (auto& seen : seen_by_mode_) seen.clear();
    for (uint32_t p = head; p != kNoIndex; p = queue_[p].next) {
      const uint32_t w = queue_[p].entry;
      const LockMode wmode = entries_[w].wait;
      const LockMask conflict = ConflictMask(wmode);
      const uint32_t wn = NodeOf(w);
      for (int m = 1; m < kModeCount; ++m) {
        if ((conflict & (1u << m)) == 0) continue;
        for (uint32_t q : seen_by_mode_[static_cast<size_t>(m)]) {
          const uint32_t o = queue_[q].entry;
          if (NodeOf(o) == wn) continue;
          const bool certain = exact_order && queue_[p].arrival && queue_[q].arrival &&
                               *queue_[p].arrival != *queue_[q].arrival;
          AddEdge(w, o, EdgeKind::kSoft, certain);
        }
      }
      seen_by_mode_[static_cast<size_t>(wmode)].push_back(p);
    }
  }

  void FinishUnknownPids() {
    std::sort(unknown_pids_.begin(), unknown_pids_.end());
    unknown_pids_.erase(std::unique(unknown_pids_.begin(), unknown_pids_.end()), unknown_pids_.end());
    graph_.unknown_pids = std::move(unknown_pids_);
  }

  const Snapshot& snap_;
  WaitGraph graph_;

  std::unordered_map<int32_t, const Session*> sessions_;
  std::unordered_map<std::string, std::string> prepared_gid_;  // virtualtransaction -> gid
  std::unordered_map<int32_t, uint32_t> node_by_pid_;          // values are index + 1
  std::unordered_map<std::string, uint32_t> node_by_gid_;
  std::unordered_map<int32_t, uint32_t> holder_by_pid_;
  std::unordered_map<std::string, uint32_t> holder_by_vxact_;
  std::unordered_map<uint32_t, uint32_t> wait_by_node_;
  std::vector<Holder> holders_;
  std::vector<int32_t> unknown_pids_;

  FlatIndex keys_;                        // lock target -> key id
  std::vector<size_t> key_rows_;          // a representative row per key
  std::vector<uint32_t> key_last_entry_;  // the entry created last for each key
  std::vector<Entry> entries_;
  std::vector<uint32_t> key_begin_;
  std::vector<bool> key_has_waiter_;
  std::vector<uint32_t> by_key_;

  std::vector<LockMask> node_hold_;
  std::vector<LockMode> node_wanted_;
  std::vector<uint32_t> holder_stamp_;
  std::array<std::vector<uint32_t>, kModeCount> holders_by_mode_;
  std::array<std::vector<uint32_t>, kModeCount> seen_by_mode_;
  std::vector<QueueItem> queue_;
  FlatIndex edge_index_;  // (waiter node, blocker node) -> edge
};

}  // namespace

WaitGraph BuildWaitGraph(const Snapshot& snapshot) { return Builder(snapshot).Build(); }

}  // namespace lockwatch::core::internal
