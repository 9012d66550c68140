#include "tests/integration/pg_fixture.h"

#include <algorithm>
#include <cctype>
#include <iostream>
#include <sstream>

namespace lockwatch::integration {
namespace {

std::string KindName(core::EdgeKind kind) { return kind == core::EdgeKind::kHard ? "hard" : "soft"; }

std::string Join(const std::set<int32_t>& values) {
  std::string out = "{";
  for (int32_t v : values) out += (out.size() == 1 ? "" : ",") + std::to_string(v);
  return out + "}";
}

}  // namespace

std::vector<std::string> EdgeStrings(const std::vector<ExpectedEdge>& edges) {
  std::vector<std::string> out;
  out.reserve(edges.size());
  for (const ExpectedEdge& e : edges) out.push_back(e.waiter + "->" + e.blocker + " " + KindName(e.kind));
  std::sort(out.begin(), out.end());
  return out;
}

void PgFixture::SetUp() {
  dsn_ = testing::TestDsn();
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "_" + info->name();
  std::string ident;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    ident += std::isalnum(u) != 0 ? static_cast<char>(std::tolower(u)) : '_';
  }
  // Identifiers are limited to 63 bytes; gids get a suffix.
  schema_ = "lwit_" + ident.substr(0, 40);
  gid_prefix_ = schema_ + "_";
  observer_ = std::make_unique<testing::PgSession>(dsn_, "lwit-observer");
  testing::ResetScenarioSchema(*observer_, schema_);
  collector_ = std::make_unique<pg::Collector>(dsn_);
  core::Status status = collector_->Connect();
  if (!status.ok()) throw testing::HarnessError("lockwatch collector cannot connect: " + status.message());
}

void PgFixture::TearDown() {
  if (observer_ == nullptr) return;  // SetUp failed before connecting
  if (HasFailure()) {
    std::cout << "---- lock state at failure (" << schema_ << ") ----\n"
              << testing::DumpLockState(*observer_, OurPids())
              << "---- lockwatch edges of the last poll ----\n"
              << DescribeLastReport() << "----\n";
  }
  for (auto& [label, s] : sessions_) {
    if (s->pending()) s->Cancel();
  }
  testing::RollbackPreparedWithPrefix(*observer_, gid_prefix_);
  std::vector<int32_t> pids = OurPids();
  sessions_.clear();  // closes every connection (cancel + drain)
  labels_.clear();
  testing::WaitUntilGone(*observer_, pids, kWaitTimeout);
  collector_.reset();
  testing::DropSchema(*observer_, schema_);
  observer_.reset();
}

testing::PgSession& PgFixture::Open(const std::string& label) {
  if (sessions_.count(label) != 0) throw testing::HarnessError("session " + label + " already open");
  auto s = std::make_unique<testing::PgSession>(dsn_, "lwit-" + label);
  testing::SetSearchPath(*s, schema_);
  labels_[s->pid()] = label;
  testing::PgSession& ref = *s;
  sessions_[label] = std::move(s);
  return ref;
}

void PgFixture::CloseAndForget(const std::string& label) {
  auto it = sessions_.find(label);
  if (it == sessions_.end()) return;
  const int32_t pid = it->second->pid();
  sessions_.erase(it);
  labels_.erase(pid);
  testing::WaitUntilGone(*observer_, {pid}, kWaitTimeout);
}

core::Report PgFixture::PollAndAnalyze() {
  core::Result<core::Snapshot> snapshot = collector_->Poll();
  if (!snapshot.ok()) throw testing::HarnessError("lockwatch poll failed: " + snapshot.status().message());
  last_report_ = core::Analyze(snapshot.value());
  return *last_report_;
}

std::string PgFixture::Label(const core::NodeRef& node) const {
  if (node.is_prepared()) return "prepared:" + node.gid;
  auto it = labels_.find(node.pid);
  return it != labels_.end() ? it->second : "pid:" + std::to_string(node.pid);
}

std::vector<int32_t> PgFixture::OurPids() const {
  std::vector<int32_t> pids;
  pids.reserve(labels_.size());
  for (const auto& [pid, label] : labels_) pids.push_back(pid);
  return pids;
}

std::vector<std::string> PgFixture::OurEdges(const core::Report& report) const {
  std::vector<std::string> out;
  for (const core::Edge& e : report.edges) {
    if (e.waiter.is_prepared() || labels_.count(e.waiter.pid) == 0) continue;
    out.push_back(Label(e.waiter) + "->" + Label(e.blocker) + " " + KindName(e.kind));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> PgFixture::OurRoots(const core::Report& report) const {
  std::vector<std::string> out;
  for (const core::Root& r : report.roots) {
    const bool ours =
        r.node.is_prepared() ? r.node.gid.rfind(gid_prefix_, 0) == 0 : labels_.count(r.node.pid) != 0;
    if (ours) out.push_back(Label(r.node) + " " + core::RootClassName(r.classification));
  }
  return out;
}

std::vector<std::string> PgFixture::OurCycles(const core::Report& report) const {
  std::vector<std::string> out;
  for (const core::Cycle& c : report.cycles) {
    std::vector<std::string> names;
    bool ours = true;
    for (int32_t pid : c.pids) {
      auto it = labels_.find(pid);
      if (it == labels_.end()) {
        ours = false;
        break;
      }
      names.push_back(it->second);
    }
    if (!ours) continue;
    std::sort(names.begin(), names.end());
    std::string text;
    for (const std::string& n : names) text += (text.empty() ? "" : ",") + n;
    out.push_back(text + (c.has_hard_edge ? " hard" : " soft"));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> PgFixture::BlockerMismatches(const core::Report& report, int* blocked) {
  std::vector<std::string> mismatches;
  int n_blocked = 0;
  for (const auto& [pid, label] : labels_) {
    std::set<int32_t> ours;
    for (const core::Edge& e : report.edges) {
      if (!e.waiter.is_prepared() && e.waiter.pid == pid) ours.insert(e.blocker.pid);
    }
    const std::vector<int32_t> raw = testing::BlockingPids(*observer_, pid);
    const std::set<int32_t> server(raw.begin(), raw.end());
    if (!server.empty()) ++n_blocked;
    if (ours != server) {
      mismatches.push_back(label + " (pid " + std::to_string(pid) + "): lockwatch blockers " + Join(ours) +
                           ", pg_blocking_pids " + Join(server));
    }
  }
  if (blocked != nullptr) *blocked = n_blocked;
  return mismatches;
}

int PgFixture::ExpectBlockersMatchPgBlockingPids(const core::Report& report) {
  int blocked = 0;
  for (const std::string& m : BlockerMismatches(report, &blocked))
    ADD_FAILURE() << "blocker set differs: " << m;
  return blocked;
}

std::string PgFixture::DescribeLastReport() const {
  if (!last_report_.has_value()) return "(no poll yet)\n";
  std::ostringstream out;
  for (const core::Edge& e : last_report_->edges) {
    out << "  " << Label(e.waiter) << " (" << e.waiter.pid << ") -> " << Label(e.blocker) << " ("
        << e.blocker.pid << ") " << KindName(e.kind) << (e.certain ? "" : " uncertain") << " on "
        << e.target.text << " wants " << core::LockModeName(e.waiter_mode) << " blocker holds "
        << core::MaskNames(e.blocker_held) << " blocker wants " << core::LockModeName(e.blocker_wanted)
        << "\n";
  }
  for (const core::Root& r : last_report_->roots) {
    out << "  root " << Label(r.node) << " " << core::RootClassName(r.classification) << " blocks "
        << r.blocked_sessions << "\n";
  }
  for (const core::Cycle& c : last_report_->cycles) {
    out << "  cycle";
    for (int32_t pid : c.pids) out << " " << pid;
    out << (c.has_hard_edge ? " (hard)" : " (soft only)") << "\n";
  }
  return out.str();
}

}  // namespace lockwatch::integration
