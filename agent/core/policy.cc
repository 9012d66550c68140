#include "agent/core/policy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

namespace lockwatch::core {
namespace {

// ---------------------------------------------------------------------------------------------------
// Addresses. Written by hand because the core may not call the C library's inet_pton (no OS calls).

bool ParseDecimal(std::string_view text, int max, int* out) {
  if (text.empty() || text.size() > 3) return false;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value > max) return false;
  *out = value;
  return true;
}

bool ParseIpv4(std::string_view text, uint8_t* bytes) {
  for (int i = 0; i < 4; ++i) {
    const size_t dot = text.find('.');
    if ((i < 3) != (dot != std::string_view::npos)) return false;
    const std::string_view part = i < 3 ? text.substr(0, dot) : text;
    int value = 0;
    if (!ParseDecimal(part, 255, &value)) return false;
    bytes[i] = static_cast<uint8_t>(value);
    if (i < 3) text.remove_prefix(dot + 1);
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits on ':' (an empty text gives no groups).
std::vector<std::string_view> SplitGroups(std::string_view text) {
  std::vector<std::string_view> groups;
  if (text.empty()) return groups;
  size_t start = 0;
  while (true) {
    const size_t colon = text.find(':', start);
    if (colon == std::string_view::npos) {
      groups.push_back(text.substr(start));
      return groups;
    }
    groups.push_back(text.substr(start, colon - start));
    start = colon + 1;
  }
}

// Parses groups of an IPv6 address half into 16-bit words; the last group may be a dotted IPv4 address
// when `allow_ipv4_tail`.
bool ParseIpv6Groups(const std::vector<std::string_view>& groups, bool allow_ipv4_tail,
                     std::vector<uint16_t>* words) {
  for (size_t i = 0; i < groups.size(); ++i) {
    const std::string_view g = groups[i];
    if (allow_ipv4_tail && i + 1 == groups.size() && g.find('.') != std::string_view::npos) {
      uint8_t v4[4];
      if (!ParseIpv4(g, v4)) return false;
      words->push_back(static_cast<uint16_t>((v4[0] << 8) | v4[1]));
      words->push_back(static_cast<uint16_t>((v4[2] << 8) | v4[3]));
      continue;
    }
    if (g.empty() || g.size() > 4) return false;
    unsigned value = 0;
    for (char c : g) {
      const int h = HexValue(c);
      if (h < 0) return false;
      value = value * 16 + static_cast<unsigned>(h);
    }
    words->push_back(static_cast<uint16_t>(value));
  }
  return true;
}

bool ParseIpv6(std::string_view text, uint8_t* bytes) {
  std::vector<uint16_t> head;
  std::vector<uint16_t> tail;
  const size_t gap = text.find("::");
  if (gap != std::string_view::npos) {
    if (text.find("::", gap + 1) != std::string_view::npos) return false;
    const std::string_view left = text.substr(0, gap);
    const std::string_view right = text.substr(gap + 2);
    if (!ParseIpv6Groups(SplitGroups(left), false, &head)) return false;
    if (!ParseIpv6Groups(SplitGroups(right), true, &tail)) return false;
    if (head.size() + tail.size() > 7) return false;
  } else {
    if (!ParseIpv6Groups(SplitGroups(text), true, &head)) return false;
    if (head.size() != 8) return false;
  }
  std::vector<uint16_t> words = head;
  words.resize(8 - tail.size(), 0);
  words.insert(words.end(), tail.begin(), tail.end());
  for (size_t i = 0; i < 8; ++i) {
    bytes[2 * i] = static_cast<uint8_t>(words[i] >> 8);
    bytes[2 * i + 1] = static_cast<uint8_t>(words[i] & 0xFF);
  }
  return true;
}

std::optional<Cidr> ParseHost(std::string_view text) {
  Cidr out;
  if (text.find(':') != std::string_view::npos) {
    if (!ParseIpv6(text, out.address.data())) return std::nullopt;
    out.v6 = true;
    out.prefix_length = 128;
  } else {
    if (!ParseIpv4(text, out.address.data())) return std::nullopt;
    out.prefix_length = 32;
  }
  return out;
}

void ClearHostBits(Cidr* cidr) {
  const int total = cidr->v6 ? 16 : 4;
  for (int i = 0; i < total; ++i) {
    const int bits_here = std::clamp(cidr->prefix_length - 8 * i, 0, 8);
    const auto mask = static_cast<uint8_t>(bits_here == 0 ? 0 : (0xFF << (8 - bits_here)) & 0xFF);
    cidr->address[static_cast<size_t>(i)] =
        static_cast<uint8_t>(cidr->address[static_cast<size_t>(i)] & mask);
  }
}

bool PrefixEqual(const uint8_t* a, const uint8_t* b, int prefix_length) {
  int bits = prefix_length;
  for (size_t i = 0; bits > 0; ++i, bits -= 8) {
    const int n = std::min(bits, 8);
    const auto mask = static_cast<uint8_t>((0xFF << (8 - n)) & 0xFF);
    if ((a[i] & mask) != (b[i] & mask)) return false;
  }
  return true;
}

// Is `address` an IPv4-mapped IPv6 address (::ffff:a.b.c.d)?
bool IsV4Mapped(const Cidr& address) {
  for (size_t i = 0; i < 10; ++i) {
    if (address.address[i] != 0) return false;
  }
  return address.address[10] == 0xFF && address.address[11] == 0xFF;
}

// ---------------------------------------------------------------------------------------------------
// Session facts

bool IsIdleInTransaction(const std::string& state) {
  return state == "idle in transaction" || state == "idle in transaction (aborted)";
}

bool IsReplication(const std::string& backend_type) {
  return backend_type.rfind("wal", 0) == 0 || backend_type.find("replication") != std::string::npos ||
         backend_type == "startup" || backend_type == "parallel apply worker" ||
         backend_type == "slotsync worker";
}

bool IsAutovacuum(const std::string& backend_type) { return backend_type.rfind("autovacuum", 0) == 0; }

double SecondsBetween(TimestampUs from, TimestampUs to) { return static_cast<double>(to - from) / 1e6; }

// Longest text a query condition looks at. std::regex matches recursively; a cap keeps the stack bounded
// whatever track_activity_query_size is.
constexpr size_t kMaxQueryTextForMatch = 8192;

// Graph facts of one node, computed on demand.
struct NodeFacts {
  int blocked_direct = 0;
  int blocked_total = 0;
  int depth = 0;
  std::vector<NodeRef> held_up;  // every node waiting on it, directly or transitively
};

class Graph {
 public:
  explicit Graph(const Report& report) : report_(report) {
    for (size_t i = 0; i < report.edges.size(); ++i) {
      const Edge& e = report.edges[i];
      waiters_of_[e.blocker].push_back(e.waiter);
      edges_of_blocker_[e.blocker].push_back(i);
      waits_.insert(e.waiter);
    }
    for (const Waiter& w : report.waiters) {
      waits_.insert(w.node);
      waiter_[w.node] = &w;
    }
    for (const Root& r : report.roots) root_[r.node] = &r;
    for (auto& entry : waiters_of_) {
      std::vector<NodeRef>& v = entry.second;
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
    }
  }

  bool Blocks(const NodeRef& node) const { return waiters_of_.count(node) > 0; }
  bool Waits(const NodeRef& node) const { return waits_.count(node) > 0; }
  const Root* RootOf(const NodeRef& node) const {
    auto it = root_.find(node);
    return it == root_.end() ? nullptr : it->second;
  }
  const Waiter* WaiterOf(const NodeRef& node) const {
    auto it = waiter_.find(node);
    return it == waiter_.end() ? nullptr : it->second;
  }
  std::vector<const Edge*> EdgesBlockedBy(const NodeRef& node) const {
    std::vector<const Edge*> out;
    auto it = edges_of_blocker_.find(node);
    if (it == edges_of_blocker_.end()) return out;
    for (size_t i : it->second) out.push_back(&report_.edges[i]);
    return out;
  }
  // Nodes that block others, ascending.
  std::vector<NodeRef> Blockers() const {
    std::vector<NodeRef> out;
    for (const auto& entry : waiters_of_) out.push_back(entry.first);
    return out;
  }

  const NodeFacts& Facts(const NodeRef& node) {
    auto it = facts_.find(node);
    if (it != facts_.end()) return it->second;
    NodeFacts f;
    auto direct = waiters_of_.find(node);
    if (direct != waiters_of_.end()) {
      f.blocked_direct = static_cast<int>(direct->second.size());
      // Breadth-first over the waiters; a cycle back to `node` does not count it.
      std::set<NodeRef> seen{node};
      std::vector<NodeRef> frontier = direct->second;
      while (!frontier.empty()) {
        std::vector<NodeRef> next;
        for (const NodeRef& n : frontier) {
          if (!seen.insert(n).second) continue;
          f.held_up.push_back(n);
          auto w = waiters_of_.find(n);
          if (w != waiters_of_.end()) next.insert(next.end(), w->second.begin(), w->second.end());
        }
        frontier = std::move(next);
      }
      f.blocked_total = static_cast<int>(f.held_up.size());
    }
    const Root* root = RootOf(node);
    f.depth = root != nullptr ? root->depth : Depth(node);
    return facts_.emplace(node, std::move(f)).first->second;
  }

 private:
  // Longest chain of waits below `node`, iteratively (chains can be long) and tolerant of cycles (an
  // edge back into the path being explored contributes nothing).
  int Depth(const NodeRef& start) {
    auto known = depth_.find(start);
    if (known != depth_.end()) return known->second;
    struct Frame {
      NodeRef node;
      size_t next = 0;
    };
    std::set<NodeRef> on_path;
    std::vector<Frame> stack;
    stack.push_back(Frame{start, 0});
    on_path.insert(start);
    while (!stack.empty()) {
      Frame& top = stack.back();
      auto w = waiters_of_.find(top.node);
      const std::vector<NodeRef>* children = w == waiters_of_.end() ? nullptr : &w->second;
      if (children != nullptr && top.next < children->size()) {
        const NodeRef child = (*children)[top.next++];
        if (depth_.count(child) > 0 || on_path.count(child) > 0) continue;
        on_path.insert(child);
        stack.push_back(Frame{child, 0});
        continue;
      }
      int best = 0;
      if (children != nullptr) {
        for (const NodeRef& child : *children) {
          if (on_path.count(child) > 0) {
            best = std::max(best, 1);
            continue;
          }
          auto d = depth_.find(child);
          best = std::max(best, 1 + (d == depth_.end() ? 0 : d->second));
        }
      }
      depth_[top.node] = best;
      on_path.erase(top.node);
      stack.pop_back();
    }
    return depth_[start];
  }

  const Report& report_;
  std::map<NodeRef, std::vector<NodeRef>> waiters_of_;
  std::map<NodeRef, std::vector<size_t>> edges_of_blocker_;
  std::set<NodeRef> waits_;
  std::map<NodeRef, const Waiter*> waiter_;
  std::map<NodeRef, const Root*> root_;
  std::map<NodeRef, NodeFacts> facts_;
  std::map<NodeRef, int> depth_;
};

std::string Join(const std::vector<std::string>& parts, const char* separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

std::string Quoted(const std::string& text) { return "\"" + text + "\""; }

bool RelationMatches(const NamePattern& pattern, const std::string& relation) {
  if (pattern.Matches(relation)) return true;
  if (pattern.text.find('.') != std::string::npos) return false;
  const size_t dot = relation.find('.');
  const std::string_view view = relation;
  return dot != std::string::npos && pattern.Matches(view.substr(dot + 1));
}

// One candidate and what is known about it.
struct Candidate {
  NodeRef node;
  const Session* session = nullptr;
  const PreparedXact* prepared = nullptr;
};

class Evaluator {
 public:
  Evaluator(const Protection& protection, const Snapshot& snapshot, const Report& report, TimestampUs now,
            const QueryNormalizer& normalizer)
      : protection_(protection), snapshot_(snapshot), graph_(report), now_(now), normalizer_(normalizer) {
    for (const Session& s : snapshot.sessions) sessions_.emplace(s.pid, &s);
    for (const PreparedXact& p : snapshot.prepared) prepared_.emplace(p.gid, &p);
  }

  std::vector<Candidate> Candidates(PolicyRole role, const Report& report) const {
    std::vector<NodeRef> nodes;
    switch (role) {
      case PolicyRole::kRoot:
        for (const Root& r : report.roots) nodes.push_back(r.node);
        break;
      case PolicyRole::kAmplifier:
        for (const NodeRef& n : graph_.Blockers()) {
          if (graph_.Waits(n)) nodes.push_back(n);
        }
        break;
      case PolicyRole::kBlocker:
        nodes = graph_.Blockers();
        break;
      case PolicyRole::kAny: {
        std::set<NodeRef> all;
        for (const NodeRef& n : graph_.Blockers()) all.insert(n);
        for (const Waiter& w : report.waiters) all.insert(w.node);
        for (const Session& s : snapshot_.sessions) {
          // Parallel workers belong to their leader's node.
          if (s.leader_pid && *s.leader_pid != s.pid) continue;
          all.insert(NodeRef{s.pid, ""});
        }
        nodes.assign(all.begin(), all.end());
        break;
      }
    }
    std::vector<Candidate> out;
    for (const NodeRef& n : nodes) {
      Candidate c;
      c.node = n;
      if (n.is_prepared()) {
        auto it = prepared_.find(n.gid);
        if (it != prepared_.end()) c.prepared = it->second;
      } else {
        auto it = sessions_.find(n.pid);
        if (it != sessions_.end()) c.session = it->second;
      }
      out.push_back(c);
    }
    return out;
  }

  // Checks the conditions; on a match fills `words` with the reasons.
  bool Matches(const RuleConditions& m, const Candidate& c, std::vector<std::string>* words) {
    const Session* s = c.session;
    const PreparedXact* p = c.prepared;
    if (!m.states.empty()) {
      if (s == nullptr || std::find(m.states.begin(), m.states.end(), s->state) == m.states.end())
        return false;
      words->push_back("state " + s->state);
    }
    if (m.min_idle_in_transaction) {
      if (s == nullptr || !IsIdleInTransaction(s->state) || !s->state_change) return false;
      const double d = SecondsBetween(*s->state_change, now_);
      if (d < *m.min_idle_in_transaction) return false;
      words->push_back("idle in transaction for " + FormatSeconds(d) + " (at least " +
                       FormatSeconds(*m.min_idle_in_transaction) + ")");
    }
    if (m.min_running) {
      if (s == nullptr || s->state != "active" || !s->query_start) return false;
      const double d = SecondsBetween(*s->query_start, now_);
      if (d < *m.min_running) return false;
      words->push_back("running for " + FormatSeconds(d) + " (at least " + FormatSeconds(*m.min_running) +
                       ")");
    }
    if (m.min_waiting) {
      const Waiter* w = graph_.WaiterOf(c.node);
      if (w == nullptr) return false;
      const double d = w->since ? SecondsBetween(*w->since, now_) : w->wait_seconds;
      if (d < *m.min_waiting) return false;
      words->push_back("waiting for a lock for " + FormatSeconds(d) + " (at least " +
                       FormatSeconds(*m.min_waiting) + ")");
    }
    if (m.min_transaction_age) {
      std::optional<TimestampUs> start;
      if (s != nullptr) start = s->xact_start;
      if (p != nullptr) start = p->prepared;
      if (!start) return false;
      const double d = SecondsBetween(*start, now_);
      if (d < *m.min_transaction_age) return false;
      words->push_back("transaction open for " + FormatSeconds(d) + " (at least " +
                       FormatSeconds(*m.min_transaction_age) + ")");
    }
    const bool graph_conditions = m.min_blocked_direct || m.min_blocked_total || m.min_chain_depth ||
                                  !m.blocks_applications.empty() || !m.blocks_users.empty();
    if (graph_conditions) {
      const NodeFacts& f = graph_.Facts(c.node);
      if (m.min_blocked_direct && f.blocked_direct < *m.min_blocked_direct) return false;
      if (m.min_blocked_total && f.blocked_total < *m.min_blocked_total) return false;
      if (m.min_chain_depth) {
        if (f.depth < *m.min_chain_depth) return false;
        words->push_back("chain depth " + std::to_string(f.depth) + " (at least " +
                         std::to_string(*m.min_chain_depth) + ")");
      }
      if (!m.blocks_applications.empty() || !m.blocks_users.empty()) {
        std::string held;
        if (!HoldsUp(m, f, &held)) return false;
        words->push_back("holds up " + held);
      }
    }
    if (!m.lock_types.empty() || !m.lock_modes.empty() || !m.relations.empty()) {
      std::string lock;
      if (!LockMatches(m, c.node, &lock)) return false;
      words->push_back("lock " + lock);
    }
    if (!m.databases.empty()) {
      const std::string* db = s != nullptr ? &s->datname : p != nullptr ? &p->database : nullptr;
      if (db == nullptr || !AnyMatches(m.databases, *db)) return false;
      words->push_back("database " + *db);
    }
    if (!m.users.empty()) {
      const std::string* user = s != nullptr ? &s->usename : p != nullptr ? &p->owner : nullptr;
      if (user == nullptr || !AnyMatches(m.users, *user)) return false;
      words->push_back("user " + *user);
    }
    if (!m.applications.empty()) {
      if (s == nullptr || !AnyMatches(m.applications, s->application_name)) return false;
      words->push_back("application " + Quoted(s->application_name));
    }
    if (!m.clients.empty()) {
      if (s == nullptr) return false;
      const auto it = std::find_if(m.clients.begin(), m.clients.end(), [&](const ClientMatcher& cm) {
        return ClientMatches(cm, s->client_addr);
      });
      if (it == m.clients.end()) return false;
      words->push_back("client " + (s->client_addr.empty() ? std::string("local") : s->client_addr) + " in " +
                       it->text);
    }
    if (!m.backend_types.empty()) {
      if (s == nullptr || std::find(m.backend_types.begin(), m.backend_types.end(), s->backend_type) ==
                              m.backend_types.end()) {
        return false;
      }
      words->push_back("backend " + s->backend_type);
    }
    if (m.query) {
      if (s == nullptr) return false;
      const std::string& text = NormalizedQuery(*s);
      if (!std::regex_search(text, m.query->regex)) return false;
      words->push_back("query matches /" + m.query->text + "/");
    }
    return true;
  }

  // The first skip reason that applies, or "" to act.
  std::pair<std::string, std::string> Skip(const Rule& rule, const Candidate& c) {
    const Session* s = c.session;
    const std::string pid_text = "pid " + std::to_string(c.node.pid);
    if (!c.node.is_prepared() && snapshot_.own_pid != 0 && c.node.pid == snapshot_.own_pid) {
      return {kSkipOwnSession, pid_text + " is lockwatch's own session"};
    }
    if (s != nullptr && std::find(protection_.own_applications.begin(), protection_.own_applications.end(),
                                  s->application_name) != protection_.own_applications.end()) {
      return {kSkipOwnSession, "application " + Quoted(s->application_name) + " is lockwatch"};
    }
    if (c.node.is_prepared()) {
      return {kSkipPreparedTransaction, "prepared transaction " + Quoted(c.node.gid) +
                                            " has no backend to signal: COMMIT PREPARED or ROLLBACK "
                                            "PREPARED it by hand"};
    }
    if (s == nullptr) return {kSkipUnknownIdentity, pid_text + " is not in pg_stat_activity"};
    if (!s->backend_start) {
      return {kSkipUnknownIdentity, pid_text + " has no backend_start (not visible to lockwatch's role)"};
    }
    if (graph_.Waits(c.node) && !graph_.Blocks(c.node)) {
      return {kSkipOnlyWaits, pid_text + " only waits for a lock; it is not the cause"};
    }
    if (IsReplication(s->backend_type)) {
      return {kSkipReplication, pid_text + " is a replication process (" + s->backend_type + ")"};
    }
    const bool named_backend = std::find(rule.match.backend_types.begin(), rule.match.backend_types.end(),
                                         s->backend_type) != rule.match.backend_types.end();
    if (IsAutovacuum(s->backend_type) && !named_backend) {
      return {kSkipAutovacuum,
              pid_text + " is an " + s->backend_type + " and the rule does not name it in backend_type"};
    }
    if (AnyMatches(protection_.users, s->usename)) {
      return {kSkipProtectedUser, "user " + s->usename + " is protected"};
    }
    if (AnyMatches(protection_.applications, s->application_name)) {
      return {kSkipProtectedApplication, "application " + Quoted(s->application_name) + " is protected"};
    }
    if (AnyMatches(protection_.databases, s->datname)) {
      return {kSkipProtectedDatabase, "database " + s->datname + " is protected"};
    }
    for (const ClientMatcher& cm : protection_.clients) {
      if (ClientMatches(cm, s->client_addr)) {
        return {kSkipProtectedClient, "client " +
                                          (s->client_addr.empty() ? std::string("local") : s->client_addr) +
                                          " is in protected range " + cm.text};
      }
    }
    if (s->superuser.value_or(true) && !rule.match.include_superusers) {
      return {kSkipSuperuser, s->superuser ? "user " + s->usename + " is a superuser"
                                           : "user " + s->usename +
                                                 " may be a superuser (unknown) and the rule does not "
                                                 "include superusers"};
    }
    if ((rule.action == ActionKind::kCancel || rule.action == ActionKind::kCancelThenTerminate) &&
        IsIdleInTransaction(s->state)) {
      return {
          kSkipCancelIdleInTransaction,
          pid_text + " is " + s->state + ": cancel does nothing to it, only terminate ends its transaction"};
    }
    return {"", ""};
  }

  Graph& graph() { return graph_; }

 private:
  const std::string& NormalizedQuery(const Session& s) {
    auto it = normalized_.find(s.pid);
    if (it != normalized_.end()) return it->second;
    std::string_view text(s.query);
    if (text.size() > kMaxQueryTextForMatch) text = text.substr(0, kMaxQueryTextForMatch);
    std::string out = normalizer_ ? normalizer_(text) : std::string(text);
    if (out.size() > kMaxQueryTextForMatch) out.resize(kMaxQueryTextForMatch);
    return normalized_.emplace(s.pid, std::move(out)).first->second;
  }

  bool HoldsUp(const RuleConditions& m, const NodeFacts& f, std::string* held) const {
    for (const NodeRef& n : f.held_up) {
      auto it = sessions_.find(n.pid);
      if (n.is_prepared() || it == sessions_.end()) continue;
      const Session& w = *it->second;
      const bool app_ok =
          m.blocks_applications.empty() || AnyMatches(m.blocks_applications, w.application_name);
      const bool user_ok = m.blocks_users.empty() || AnyMatches(m.blocks_users, w.usename);
      if (app_ok && user_ok) {
        *held = "pid " + std::to_string(w.pid) + " (user " + w.usename + ", application " +
                Quoted(w.application_name) + ")";
        return true;
      }
    }
    return false;
  }

  bool LockMatches(const RuleConditions& m, const NodeRef& node, std::string* lock) const {
    for (const Edge* e : graph_.EdgesBlockedBy(node)) {
      if (!m.lock_types.empty() &&
          std::find(m.lock_types.begin(), m.lock_types.end(), e->target.locktype) == m.lock_types.end()) {
        continue;
      }
      if (!m.relations.empty()) {
        if (!e->target.relation) continue;
        const bool any = std::any_of(m.relations.begin(), m.relations.end(), [&](const NamePattern& p) {
          return RelationMatches(p, *e->target.relation);
        });
        if (!any) continue;
      }
      LockMask modes = e->blocker_held;
      if (e->blocker_wanted != LockMode::kNone) modes = static_cast<LockMask>(modes | Bit(e->blocker_wanted));
      if (!m.lock_modes.empty()) {
        const bool any = std::any_of(m.lock_modes.begin(), m.lock_modes.end(),
                                     [&](LockMode mode) { return (modes & Bit(mode)) != 0; });
        if (!any) continue;
      }
      *lock = e->target.text + " (" + MaskNames(modes) + ")";
      return true;
    }
    return false;
  }

  const Protection& protection_;
  const Snapshot& snapshot_;
  Graph graph_;
  TimestampUs now_;
  const QueryNormalizer& normalizer_;
  std::map<int32_t, const Session*> sessions_;
  std::map<std::string, const PreparedXact*> prepared_;
  std::map<int32_t, std::string> normalized_;
};

// The node's own place, most specific first.
const char* PlaceOf(Graph& graph, const NodeRef& node) {
  if (graph.RootOf(node) != nullptr) return "root";
  if (graph.Blocks(node)) return graph.Waits(node) ? "amplifier" : "blocker";
  return graph.Waits(node) ? "waiter" : "session";
}

std::string PlaceInWords(const std::string& place) {
  if (place == "root") return "root blocker";
  if (place == "amplifier") return "queued lock request holding others up";
  if (place == "blocker") return "blocker";
  if (place == "waiter") return "waiting session";
  return "session";
}

}  // namespace

// ---------------------------------------------------------------------------------------------------

std::optional<Cidr> ParseCidr(std::string_view text) {
  const size_t slash = text.find('/');
  std::optional<Cidr> out = ParseHost(text.substr(0, slash));
  if (!out) return std::nullopt;
  if (slash != std::string_view::npos) {
    int prefix = 0;
    if (!ParseDecimal(text.substr(slash + 1), out->v6 ? 128 : 32, &prefix)) return std::nullopt;
    out->prefix_length = prefix;
  }
  ClearHostBits(&*out);
  return out;
}

std::optional<Cidr> ParseAddress(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash != std::string_view::npos) text = text.substr(0, slash);
  if (text.empty()) return std::nullopt;
  return ParseHost(text);
}

bool CidrContains(const Cidr& range, std::string_view address) {
  std::optional<Cidr> a = ParseAddress(address);
  if (!a) return false;
  if (range.v6 == a->v6) return PrefixEqual(range.address.data(), a->address.data(), range.prefix_length);
  if (!range.v6) {
    // An IPv4 range and an IPv6 address: only an IPv4-mapped address can be inside.
    return IsV4Mapped(*a) && PrefixEqual(range.address.data(), a->address.data() + 12, range.prefix_length);
  }
  // An IPv6 range and an IPv4 address: compare as the IPv4-mapped form.
  std::array<uint8_t, 16> mapped{};
  mapped[10] = 0xFF;
  mapped[11] = 0xFF;
  std::copy(a->address.begin(), a->address.begin() + 4, mapped.begin() + 12);
  return PrefixEqual(range.address.data(), mapped.data(), range.prefix_length);
}

bool ClientMatches(const ClientMatcher& matcher, std::string_view client_addr) {
  if (matcher.local) return client_addr.empty();
  return CidrContains(matcher.range, client_addr);
}

bool NamePattern::Matches(std::string_view name) const {
  // Glob with '*' only, iteratively with one backtrack point (linear for practical patterns).
  const std::string_view p(text);
  size_t pi = 0;
  size_t ni = 0;
  size_t star = std::string_view::npos;
  size_t star_name = 0;
  while (ni < name.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      star_name = ni;
    } else if (pi < p.size() && p[pi] == name[ni]) {
      ++pi;
      ++ni;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ni = ++star_name;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool AnyMatches(const std::vector<NamePattern>& patterns, std::string_view name) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const NamePattern& p) { return p.Matches(name); });
}

const char* PolicyRoleName(PolicyRole role) {
  switch (role) {
    case PolicyRole::kRoot:
      return "root";
    case PolicyRole::kAmplifier:
      return "amplifier";
    case PolicyRole::kBlocker:
      return "blocker";
    case PolicyRole::kAny:
      return "any";
  }
  return "unknown";
}

std::optional<PolicyRole> ParsePolicyRole(std::string_view name) {
  for (PolicyRole r : {PolicyRole::kRoot, PolicyRole::kAmplifier, PolicyRole::kBlocker, PolicyRole::kAny}) {
    if (name == PolicyRoleName(r)) return r;
  }
  return std::nullopt;
}

bool RuleConditions::OnlyIdleInTransaction() const {
  if (min_idle_in_transaction) return true;
  if (states.empty()) return false;
  return std::all_of(states.begin(), states.end(),
                     [](const std::string& s) { return IsIdleInTransaction(s); });
}

std::string FormatSeconds(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  if (seconds < 1) return std::to_string(static_cast<int64_t>(std::llround(seconds * 1000))) + "ms";
  if (seconds < 10 && std::fabs(seconds - std::round(seconds)) >= 0.05) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1fs", seconds);
    return buffer;
  }
  int64_t total = std::llround(seconds);
  const int64_t hours = total / 3600;
  const int64_t minutes = (total % 3600) / 60;
  const int64_t secs = total % 60;
  std::string out;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (minutes > 0) out += std::to_string(minutes) + "m";
  if (secs > 0 && hours == 0) out += std::to_string(secs) + "s";
  if (out.empty()) out = "0s";
  return out;
}

std::vector<PolicyDecision> Evaluate(const Policy& policy, const Protection& protection,
                                     const Snapshot& snapshot, const Report& report, TimestampUs now,
                                     const QueryNormalizer& normalizer) {
  Evaluator evaluator(protection, snapshot, report, now, normalizer);
  struct Ordered {
    size_t rule_index;
    PolicyDecision decision;
  };
  std::vector<Ordered> out;
  std::set<NodeRef> acted;
  for (size_t ri = 0; ri < policy.rules.size(); ++ri) {
    const Rule& rule = policy.rules[ri];
    for (const Candidate& c : evaluator.Candidates(rule.match.role, report)) {
      std::vector<std::string> words;
      if (!evaluator.Matches(rule.match, c, &words)) continue;
      const NodeFacts& facts = evaluator.graph().Facts(c.node);
      PolicyDecision d;
      d.node = c.node;
      d.chain_depth = facts.depth;
      PlannedAction& a = d.planned;
      a.rule = rule.name;
      a.action = rule.action;
      a.grace_seconds = rule.action == ActionKind::kCancelThenTerminate ? rule.grace_seconds : 0;
      a.role = PlaceOf(evaluator.graph(), c.node);
      a.blocked_direct = facts.blocked_direct;
      a.blocked_total = facts.blocked_total;
      a.decided_at = snapshot.captured_at_us;
      a.victim.pid = c.node.pid;
      if (c.session != nullptr) {
        const Session& s = *c.session;
        a.victim.backend_start = s.backend_start;
        a.victim.xact_start = s.xact_start;
        if (IsIdleInTransaction(s.state)) a.victim.state_change = s.state_change;
        d.user = s.usename;
        d.application = s.application_name;
        d.database = s.datname;
        d.client_addr = s.client_addr;
        d.state = s.state;
        d.backend_type = s.backend_type;
      } else if (c.prepared != nullptr) {
        d.user = c.prepared->owner;
        d.database = c.prepared->database;
        d.state = "prepared";
      }
      std::string head = PlaceInWords(a.role);
      if (c.node.is_prepared()) head += " (prepared transaction " + Quoted(c.node.gid) + ")";
      if (facts.blocked_total > 0) {
        head += ", blocks " + std::to_string(facts.blocked_total) + " session" +
                (facts.blocked_total == 1 ? "" : "s") + " (" + std::to_string(facts.blocked_direct) +
                " directly)";
      }
      const RuleConditions& m = rule.match;
      if (m.min_blocked_total || m.min_blocked_direct) {
        std::vector<std::string> limits;
        if (m.min_blocked_total)
          limits.push_back("at least " + std::to_string(*m.min_blocked_total) + " in all");
        if (m.min_blocked_direct) limits.push_back(std::to_string(*m.min_blocked_direct) + " directly");
        head += " (rule: " + Join(limits, ", ") + ")";
      }
      words.insert(words.begin(), head);
      a.reason = Join(words, "; ");
      auto [skip, detail] = evaluator.Skip(rule, c);
      if (skip.empty() && acted.count(c.node) > 0) {
        skip = kSkipAlreadyDecided;
        detail = "an earlier rule already acts on this session";
      }
      d.skip = std::move(skip);
      d.skip_detail = std::move(detail);
      if (!d.skipped()) acted.insert(c.node);
      out.push_back(Ordered{ri, std::move(d)});
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Ordered& x, const Ordered& y) {
    if (x.decision.planned.blocked_total != y.decision.planned.blocked_total) {
      return x.decision.planned.blocked_total > y.decision.planned.blocked_total;
    }
    if (x.rule_index != y.rule_index) return x.rule_index < y.rule_index;
    return x.decision.node < y.decision.node;
  });
  std::vector<PolicyDecision> decisions;
  decisions.reserve(out.size());
  for (Ordered& o : out) decisions.push_back(std::move(o.decision));
  return decisions;
}

std::vector<PlannedAction> ActingDecisions(const std::vector<PolicyDecision>& decisions) {
  std::vector<PlannedAction> out;
  for (const PolicyDecision& d : decisions) {
    if (!d.skipped()) out.push_back(d.planned);
  }
  return out;
}

}  // namespace lockwatch::core
