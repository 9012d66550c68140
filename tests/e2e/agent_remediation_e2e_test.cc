// End-to-end: `lockwatch run` with a rules file, enforcement on, an exec hook and a dump directory, against
// a real PostgreSQL 15 pile-up behind an idle-in-transaction root. The root is terminated, its waiters
// proceed, and the decision shows up in the audit log, the metrics, the hook and the incident dump.
#include <chrono>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/forensics/dump_reader.h"

#include "tests/e2e/e2e_harness.h"

namespace lockwatch::e2e {
namespace {

using std::chrono::milliseconds;

std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

struct Scenario {
  bool enforce = false;
};

// Returns the audit lines of one run over the pile-up.
class RemediationRun {
 public:
  explicit RemediationRun(bool enforce) {
    const std::string table = "lw_rem_e2e_" + std::to_string(getpid()) + (enforce ? "_e" : "_d");
    PgSession setup(TestDsn());
    EXPECT_TRUE(setup.ok()) << setup.error();
    setup.Exec("DROP TABLE IF EXISTS " + table);
    setup.Exec("CREATE TABLE " + table + " (id int PRIMARY KEY, v int)");
    setup.Exec("INSERT INTO " + table + " VALUES (1, 0)");
    // A non-superuser application role: rules never pick superusers unless they say so.
    setup.Exec(
        "DO $$ BEGIN CREATE ROLE lw_rem_e2e_app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    setup.Exec("GRANT ALL ON " + table + " TO lw_rem_e2e_app");
    WriteFile(dir_.File("rules.yaml"),
              "rules:\n"
              "  - name: idle-tx-root\n"
              "    match:\n"
              "      role: root\n"
              "      state: idle in transaction\n"
              "      min_idle_in_transaction: 1s\n"
              "      min_blocked_total: 5\n"
              "    action: terminate\n");
    WriteFile(dir_.File("lockwatch.yaml"),
              "listen: 127.0.0.1:0\n"
              "interval: 500ms\n"
              "incidents:\n  resolve_after: 2s\n"
              "remediation:\n"
              "  rules_file: " +
                  dir_.File("rules.yaml") + "\n" + "  enforce: " + (enforce ? "true" : "false") + "\n" +
                  "  audit_log: " + dir_.File("audit.log") + "\n" +
                  "  kill_switch_file: " + dir_.File("pause") + "\n" +
                  "hooks:\n"
                  "  - name: spool\n"
                  "    type: exec\n"
                  "    events: [incident.opened, action.planned, action.executed, action.failed]\n"
                  "    argv: [/bin/sh, -c, 'cat >> " +
                  dir_.File("hook.jsonl") + "; echo >> " + dir_.File("hook.jsonl") + "']\n" +
                  "targets:\n  - name: db\n    dsn: '" + TestDsn() + "'\n");
    std::vector<std::string> args = {"--config", dir_.File("lockwatch.yaml"), "--dump-dir",
                                     dir_.File("dumps")};
    if (enforce) args.emplace_back("--enforce");
    agent_ = std::make_unique<Agent>(dir_.path(), args);
    EXPECT_NE(agent_->port(), 0) << agent_->Log();

    const std::string app_dsn = TestDsn() + " user=lw_rem_e2e_app application_name=batch-job";
    root_ = std::make_unique<PgSession>(app_dsn);
    root_pid_ = std::stoi(root_->Exec("SELECT pg_backend_pid()").value_or("0"));
    root_->Exec("BEGIN");
    root_->Exec("UPDATE " + table + " SET v = v + 1 WHERE id = 1");
    for (int i = 0; i < 20; ++i) {
      waiters_.push_back(std::make_unique<PgSession>(TestDsn() + " application_name=payments"));
      waiters_.back()->Send("UPDATE " + table + " SET v = v + 1 WHERE id = 1");
    }
    table_ = table;
  }

  ~RemediationRun() {
    PgSession s(TestDsn());
    s.Exec("DROP TABLE IF EXISTS " + table_);
  }

  int Waiting() const {
    PgSession s(TestDsn());
    return std::stoi(s.Exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                            "application_name = 'payments'")
                         .value_or("-1"));
  }
  bool RootAlive() const {
    PgSession s(TestDsn());
    return s.Exec("SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(root_pid_))
               .value_or("") == "1";
  }

  TempDir dir_;
  std::string table_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<PgSession> root_;
  int root_pid_ = 0;
  std::vector<std::unique_ptr<PgSession>> waiters_;
};

TEST(AgentRemediationE2eTest, EnforcedIdleTransactionRootIsTerminatedAndEverythingIsRecorded) {
  RemediationRun run(true);
  // The root is terminated once it has been idle in transaction for 1 s with 20 sessions behind it.
  ASSERT_TRUE(Eventually([&] { return !run.RootAlive(); }, milliseconds(20000)))
      << run.agent_->Log() << ReadFile(run.dir_.File("audit.log"));
  for (auto& w : run.waiters_) EXPECT_TRUE(w->Finish());  // every waiter proceeds
  PgSession s(TestDsn());
  EXPECT_EQ(s.Exec("SELECT v FROM " + run.table_ + " WHERE id = 1"), "20");  // the root's update rolled back

  ASSERT_TRUE(Eventually(
      [&] {
        return run.agent_->Series(
                   "lockwatch_remediation_actions_total{target=\"db\",action=\"terminate\",mode="
                   "\"enforce\"}") == 1.0;
      },
      milliseconds(10000)))
      << run.agent_->Metrics();
  // The result is audited when the agent collects it, at a poll after the signal.
  ASSERT_TRUE(Eventually(
      [&] { return ReadFile(run.dir_.File("audit.log")).find("\"executed\"") != std::string::npos; },
      milliseconds(10000)))
      << ReadFile(run.dir_.File("audit.log"));
  const std::vector<nlohmann::json> audit = JsonLines(ReadFile(run.dir_.File("audit.log")));
  bool executed = false;
  for (const nlohmann::json& a : audit) {
    if (a.value("decision", "") == "executed" && a.value("pid", 0) == run.root_pid_) {
      executed = true;
      EXPECT_EQ(a.value("action", ""), "terminate");
      EXPECT_EQ(a.value("mode", ""), "enforce");
      EXPECT_EQ(a.value("result", ""), "exited");
      EXPECT_EQ(a.value("rule", ""), "idle-tx-root");
    }
    EXPECT_NE(a.value("pid", 0), 0);
  }
  EXPECT_TRUE(executed) << ReadFile(run.dir_.File("audit.log"));
  struct stat st {};
  ASSERT_EQ(stat(run.dir_.File("audit.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The hook got the executed action.
  ASSERT_TRUE(Eventually(
      [&] { return ReadFile(run.dir_.File("hook.jsonl")).find("action.executed") != std::string::npos; },
      milliseconds(10000)))
      << ReadFile(run.dir_.File("hook.jsonl")) << run.agent_->Log();
  // The incident.opened payload explains the pile-up: an idle-in-transaction root, and the remedy.
  bool explained = false;
  for (const nlohmann::json& h : JsonLines(ReadFile(run.dir_.File("hook.jsonl")))) {
    if (h.value("event", "") != "incident.opened") continue;
    for (const nlohmann::json& x : h.at("explanations")) {
      if (x.value("kind", "") == "idle_in_transaction_holder" && x.value("root_pid", 0) == run.root_pid_) {
        explained = true;
      }
    }
    EXPECT_NE(h.value("summary", "").find("Remedy:"), std::string::npos) << h.dump();
  }
  EXPECT_TRUE(explained) << ReadFile(run.dir_.File("hook.jsonl"));

  // The incident dump holds the action record; analyze says lockwatch ended it.
  ASSERT_TRUE(
      Eventually([&] { return run.agent_->Series("lockwatch_dumps_written_total{target=\"db\"}") == 1.0; },
                 milliseconds(20000)))
      << run.agent_->Log();
  std::string dump;
  for (const auto& e : std::filesystem::directory_iterator(run.dir_.File("dumps"))) dump = e.path().string();
  core::Result<forensics::Dump> read = forensics::ReadDump(dump);
  ASSERT_TRUE(read.ok()) << read.status().message();
  bool action_record = false;
  std::string actions;
  for (const forensics::DumpRecord& r : read.value().records) {
    if (r.type == "action") actions += r.record.dump() + "\n";
    if (r.type == "action" && r.record.value("decision", "") == "executed") action_record = true;
  }
  EXPECT_TRUE(action_record);
  Process analyze(LockwatchBinary(), {"analyze", "--json", dump}, run.dir_.File("analyze.json"));
  ASSERT_EQ(analyze.WaitExit(milliseconds(30000)), 0);
  const nlohmann::json doc = nlohmann::json::parse(analyze.Log(), nullptr, false);
  ASSERT_TRUE(doc.is_object()) << analyze.Log();
  ASSERT_FALSE(doc["roots"].empty());
  EXPECT_EQ(doc["roots"][0]["end"].value("cause", ""), "terminated_by_lockwatch")
      << doc["roots"][0].dump(2) << actions;
}

TEST(AgentRemediationE2eTest, DryRunChangesNothingAndAuditsWhatItWouldDo) {
  RemediationRun run(false);  // enforce: false in the config, no flag
  ASSERT_TRUE(Eventually(
      [&] {
        return run.agent_->Series(
                   "lockwatch_remediation_actions_total{target=\"db\",action=\"terminate\",mode=\"dry_"
                   "run\"}") == 1.0;
      },
      milliseconds(20000)))
      << run.agent_->Metrics();
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_TRUE(run.RootAlive());
  EXPECT_EQ(run.Waiting(), 20);
  bool dry = false;
  for (const nlohmann::json& a : JsonLines(ReadFile(run.dir_.File("audit.log")))) {
    if (a.value("decision", "") == "executed") {
      dry = true;
      EXPECT_EQ(a.value("mode", ""), "dry_run");
      EXPECT_EQ(a.value("result", ""), "dry_run");
    }
  }
  EXPECT_TRUE(dry) << ReadFile(run.dir_.File("audit.log"));
  run.root_->Exec("ROLLBACK");
  for (auto& w : run.waiters_) EXPECT_TRUE(w->Finish());
}

}  // namespace
}  // namespace lockwatch::e2e
