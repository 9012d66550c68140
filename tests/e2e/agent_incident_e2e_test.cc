// End-to-end tests of incidents and dumps: the README's pile-up under `lockwatch run` against a real
// PostgreSQL 15 leaves exactly one incident and one complete dump; SIGKILL mid-incident leaves a readable
// one.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/forensics/dump_reader.h"
#include "agent/json/iso_time.h"

#include "tests/e2e/e2e_harness.h"

namespace lockwatch::e2e {
namespace {

using std::chrono::milliseconds;

int64_t WallNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A database of its own with the README's accounts table.
class Bank {
 public:
  explicit Bank(const std::string& admin_dsn) : admin_dsn_(admin_dsn) {
    name_ = "lw_bank_" + std::to_string(getpid()) + "_" + std::to_string(++counter_);
    PgSession admin(admin_dsn);
    EXPECT_TRUE(admin.ok()) << admin.error();
    admin.Exec("CREATE DATABASE " + name_);
    dsn_ = admin_dsn + " dbname=" + name_;
    PgSession s(dsn_);
    EXPECT_TRUE(s.ok()) << s.error();
    s.Exec("CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL)");
    s.Exec("INSERT INTO accounts SELECT g, 'customer ' || g, 1000 FROM generate_series(1, 10000) g");
  }
  ~Bank() {
    PgSession admin(admin_dsn_);
    admin.Exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  }
  const std::string& dsn() const { return dsn_; }
  std::string Dsn(const std::string& application) const { return dsn_ + " application_name=" + application; }

  int Waiting(const std::string& application) const {
    PgSession s(dsn_);
    std::optional<std::string> n = s.Exec(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = '" +
        application + "'");
    return n ? std::stoi(*n) : -1;
  }

 private:
  static inline int counter_ = 0;
  std::string admin_dsn_;
  std::string name_;
  std::string dsn_;
};

// The README's pile-up (packaging/demo/quickstart.sh): batch-job updates row 7 and stays idle in
// transaction; payments-worker sessions wait for the row; a migration's ALTER TABLE queues for the table;
// mobile-api readers queue behind the ALTER.
class ReadmePileUp {
 public:
  ReadmePileUp(const Bank& bank, int payment_workers, int readers) : bank_(bank) {
    batch_ = std::make_unique<PgSession>(bank.Dsn("batch-job"));
    batch_pid_ = std::stoi(batch_->Exec("SELECT pg_backend_pid()").value_or("0"));
    batch_->Exec("BEGIN");
    batch_->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 7");
    for (int i = 0; i < payment_workers; ++i) {
      others_.push_back(std::make_unique<PgSession>(bank.Dsn("payments-worker")));
      others_.back()->Send("UPDATE accounts SET balance = balance + 10 WHERE id = 7");
    }
    EXPECT_TRUE(
        Eventually([&] { return bank.Waiting("payments-worker") == payment_workers; }, milliseconds(10000)));
    others_.push_back(std::make_unique<PgSession>(bank.Dsn("migration")));
    others_.back()->Send("ALTER TABLE accounts ADD COLUMN note text");
    EXPECT_TRUE(Eventually([&] { return bank.Waiting("migration") == 1; }, milliseconds(10000)));
    for (int i = 0; i < readers; ++i) {
      others_.push_back(std::make_unique<PgSession>(bank.Dsn("mobile-api")));
      others_.back()->Send("SELECT count(*) FROM accounts WHERE balance > 0");
    }
    EXPECT_TRUE(Eventually([&] { return bank.Waiting("mobile-api") == readers; }, milliseconds(20000)));
  }
  ~ReadmePileUp() { Commit(); }

  int batch_pid() const { return batch_pid_; }

  // The batch job finally commits (and stays connected): everyone proceeds.
  void Commit() {
    if (committed_) return;
    committed_ = true;
    batch_->Exec("COMMIT");
    for (auto& s : others_) EXPECT_TRUE(s->Finish());
    others_.clear();
  }

 private:
  const Bank& bank_;
  std::unique_ptr<PgSession> batch_;
  bool committed_ = false;
  int batch_pid_ = 0;
  std::vector<std::unique_ptr<PgSession>> others_;
};

std::vector<std::string> FilesEndingWith(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(it->path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string AgentConfig(const std::string& dsn, const std::string& dump_dir) {
  return "listen: 127.0.0.1:0\n"
         "interval: 500ms\n"
         "incidents:\n"
         "  resolve_after: 3s\n"
         "dumps:\n"
         "  dir: " +
         dump_dir +
         "\n"
         "  flush_interval: 1s\n"
         "targets:\n"
         "  - name: bank\n"
         "    dsn: '" +
         dsn + "'\n";
}

std::optional<double> Series(Agent& agent, const std::string& name) {
  return agent.Series(name + "{target=\"bank\"}");
}

// Runs `lockwatch <args>` to completion; returns its exit status and output (stdout and stderr).
std::pair<int, std::string> RunLockwatch(const std::string& dir, const std::vector<std::string>& args) {
  static int runs = 0;
  Process p(LockwatchBinary(), args, dir + "/cli-" + std::to_string(++runs) + ".log");
  const std::optional<int> rc = p.WaitExit(milliseconds(30000));
  return {rc.value_or(-1), p.Log()};
}

int64_t TimeOf(const nlohmann::json& record, const char* key) {
  return json::ParseIso8601(record.value(key, "")).value_or(0);
}

TEST(AgentIncidentE2eTest, ReadmePileUpLeavesExactlyOneIncidentAndOneDump) {
  TempDir dir;
  Bank bank(TestDsn());
  const std::string dumps = dir.File("dumps");
  WriteFile(dir.File("lockwatch.yaml"), AgentConfig(bank.dsn(), dumps));
  Agent agent(dir.path(), {"--config", dir.File("lockwatch.yaml"), "--dump-dir", dumps});
  ASSERT_NE(agent.port(), 0) << agent.Log();
  // A few quiet polls first: the dump must start with the minutes before the incident.
  ASSERT_TRUE(Eventually([&] { return Series(agent, "lockwatch_recorder_entries").value_or(0) >= 4; },
                         milliseconds(15000)))
      << agent.Log();
  EXPECT_EQ(Series(agent, "lockwatch_incident_active"), 0);

  int batch_pid = 0;
  double recorder_bytes = 0;
  double recorder_entries = 0;
  {
    ReadmePileUp pileup(bank, 3, 30);
    batch_pid = pileup.batch_pid();
    ASSERT_TRUE(
        Eventually([&] { return Series(agent, "lockwatch_incident_active") == 1.0; }, milliseconds(15000)))
        << agent.Log();
    EXPECT_EQ(Series(agent, "lockwatch_incidents_total"), 1);
    std::this_thread::sleep_for(milliseconds(3000));  // the incident goes on for a while
    recorder_bytes = Series(agent, "lockwatch_recorder_bytes").value_or(0);
    recorder_entries = Series(agent, "lockwatch_recorder_entries").value_or(0);
    // Mid-incident the dump exists only as .partial.
    EXPECT_EQ(FilesEndingWith(dumps, ".dump.gz.partial").size(), 1u);
    EXPECT_TRUE(FilesEndingWith(dumps, ".dump.gz").empty());
    pileup.Commit();
    // The incident resolves while the batch job's session is still connected (it committed, not quit).
    ASSERT_TRUE(Eventually([&] { return Series(agent, "lockwatch_dumps_written_total") == 1.0; },
                           milliseconds(20000)))
        << agent.Log();
  }
  EXPECT_EQ(Series(agent, "lockwatch_incident_active"), 0);
  EXPECT_EQ(Series(agent, "lockwatch_incidents_total"), 1);
  EXPECT_EQ(Series(agent, "lockwatch_dump_errors_total"), 0);

  const std::vector<std::string> files = FilesEndingWith(dumps, ".dump.gz");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(FilesEndingWith(dumps, ".partial").empty());
  struct stat st {};
  ASSERT_EQ(stat(files[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  core::Result<forensics::Dump> read = forensics::ReadDump(files[0]);
  ASSERT_TRUE(read.ok()) << read.status().message();
  const forensics::Dump& dump = read.value();
  EXPECT_TRUE(dump.complete);
  EXPECT_EQ(dump.header.value("reason", ""), "incident");
  EXPECT_EQ(dump.header.value("target", ""), "bank");

  int before = 0;
  int during = 0;
  int after = 0;
  int opened = 0;
  int resolved = 0;
  int64_t started_at = 0;
  int64_t first_before = 0;
  nlohmann::json root;
  for (const forensics::DumpRecord& r : dump.records) {
    if (r.type == "incident") {
      const std::string event = r.record.value("event", "");
      if (event == "opened") {
        ++opened;
        started_at = TimeOf(r.record["incident"], "started_at");
        if (!r.record["incident"]["roots"].empty()) root = r.record["incident"]["roots"][0];
      }
      if (event == "resolved") ++resolved;
    } else if (r.type == "snapshot") {
      const std::string phase = r.record.value("phase", "");
      if (phase == "before") {
        if (before++ == 0) first_before = TimeOf(r.record, "captured_at");
      }
      if (phase == "during") ++during;
      if (phase == "after") ++after;
    }
  }
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(resolved, 1);
  EXPECT_GE(before, 4);
  EXPECT_GT(during, 4);
  EXPECT_EQ(after, 1);
  EXPECT_GT(started_at, 0);
  EXPECT_LT(first_before, started_at) << "the history must precede the incident";
  ASSERT_TRUE(root.is_object()) << "no root in the opened record";
  EXPECT_EQ(root.value("pid", 0), batch_pid);
  EXPECT_EQ(root.value("application_name", ""), "batch-job");
  EXPECT_EQ(root.value("classification", ""), "idle_in_transaction");
  // Normalised by default: the statement is recognisable, its constants are not kept.
  EXPECT_NE(root.value("query", "").find("UPDATE accounts SET balance = balance -"), std::string::npos)
      << root.dump();
  EXPECT_EQ(root.value("query", "").find("id = 7"), std::string::npos) << root.dump();

  // What a DBA reads the next morning: the root, its query and application, and how it ended.
  const auto [rc, text] = RunLockwatch(dir.path(), {"analyze", files[0]});
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("pid " + std::to_string(batch_pid) + " (postgres, batch-job"), std::string::npos)
      << text;
  EXPECT_NE(text.find("UPDATE accounts SET balance = balance -"), std::string::npos) << text;
  const auto [json_rc, json_text] = RunLockwatch(dir.path(), {"analyze", "--json", files[0]});
  ASSERT_EQ(json_rc, 0) << json_text;
  const nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << json_text;
  ASSERT_FALSE(doc["roots"].empty());
  EXPECT_EQ(doc["roots"][0].value("pid", 0), batch_pid);
  EXPECT_EQ(doc["roots"][0].value("application_name", ""), "batch-job");
  EXPECT_EQ(doc["roots"][0]["end"].value("cause", ""), "committed_or_rolled_back") << doc["roots"][0].dump(2);
  const auto [report_rc, report_text] =
      RunLockwatch(dir.path(), {"report", files[0], "-o", dir.File("report.html")});
  EXPECT_EQ(report_rc, 0) << report_text;
  EXPECT_NE(ReadFile(dir.File("report.html")).find("batch-job"), std::string::npos);

  const double bytes = static_cast<double>(std::filesystem::file_size(files[0]));
  const double minutes = (static_cast<double>(WallNowUs()) - static_cast<double>(started_at)) / 60e6;
  std::printf(
      "figures: recorder %.0f bytes for %.0f polls (%.0f bytes/poll, %.1f MiB per recorded minute at "
      "1 s polls) with the README pile-up; dump %.0f bytes, %d during records, about %.0f bytes per "
      "minute of incident at 500 ms polls\n",
      recorder_bytes, recorder_entries, recorder_entries > 0 ? recorder_bytes / recorder_entries : 0,
      recorder_entries > 0 ? recorder_bytes / recorder_entries * 60 / 1048576 : 0, bytes, during,
      minutes > 0 ? bytes / minutes : 0);
}

TEST(AgentIncidentE2eTest, ConnectionSurgeJoiningTheQueueIsNamedByAnalyze) {
  TempDir dir;
  Bank bank(TestDsn());
  const std::string dumps = dir.File("dumps");
  WriteFile(dir.File("lockwatch.yaml"), AgentConfig(bank.dsn(), dumps));
  Agent agent(dir.path(), {"--config", dir.File("lockwatch.yaml"), "--dump-dir", dumps});
  ASSERT_NE(agent.port(), 0) << agent.Log();
  ASSERT_TRUE(Eventually([&] { return Series(agent, "lockwatch_recorder_entries").value_or(0) >= 3; },
                         milliseconds(15000)));
  {
    ReadmePileUp pileup(bank, 2, 8);
    ASSERT_TRUE(
        Eventually([&] { return Series(agent, "lockwatch_incident_active") == 1.0; }, milliseconds(15000)))
        << agent.Log();
    // A push notification: 40 new sessions from one application arrive and queue behind the ALTER.
    std::vector<std::unique_ptr<PgSession>> burst;
    for (int i = 0; i < 40; ++i) {
      burst.push_back(std::make_unique<PgSession>(bank.Dsn("push-notify")));
      burst.back()->Send("SELECT count(*) FROM accounts WHERE balance > 0");
    }
    ASSERT_TRUE(Eventually([&] { return bank.Waiting("push-notify") == 40; }, milliseconds(20000)));
    // The arrival metrics name the application that surged.
    EXPECT_TRUE(Eventually(
        [&] {
          return agent
                     .Series(
                         "lockwatch_session_arrivals_by_application{target=\"bank\",application=\"push-"
                         "notify\"}")
                     .value_or(0) >= 40;
        },
        milliseconds(5000)))
        << agent.Metrics();
    std::this_thread::sleep_for(milliseconds(1500));  // the agent polls the queue at its peak
    pileup.Commit();
    for (auto& s : burst) EXPECT_TRUE(s->Finish());
  }
  ASSERT_TRUE(
      Eventually([&] { return Series(agent, "lockwatch_dumps_written_total") == 1.0; }, milliseconds(20000)))
      << agent.Log();
  const std::vector<std::string> files = FilesEndingWith(dumps, ".dump.gz");
  ASSERT_EQ(files.size(), 1u);
  const auto [rc, text] = RunLockwatch(dir.path(), {"analyze", "--json", files[0]});
  ASSERT_EQ(rc, 0) << text;
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << text;
  ASSERT_TRUE(doc["surge"].is_object()) << doc.dump(2);
  EXPECT_TRUE(doc["surge"].value("detected", false)) << doc["surge"].dump(2);
  ASSERT_FALSE(doc["surge"]["by_application"].empty()) << doc["surge"].dump(2);
  EXPECT_EQ(doc["surge"]["by_application"][0].value("application_name", ""), "push-notify");
  EXPECT_GE(doc["surge"]["by_application"][0].value("added", 0), 40);
  const auto [text_rc, human] = RunLockwatch(dir.path(), {"analyze", files[0]});
  EXPECT_EQ(text_rc, 0);
  EXPECT_NE(human.find("CONNECTION SURGE: sessions"), std::string::npos) << human;
  EXPECT_NE(human.find("push-notify"), std::string::npos) << human;
}

TEST(AgentIncidentE2eTest, SigkillMidIncidentLeavesADumpReadableToTheLastSeconds) {
  TempDir dir;
  Bank bank(TestDsn());
  const std::string dumps = dir.File("dumps");
  WriteFile(dir.File("lockwatch.yaml"), AgentConfig(bank.dsn(), dumps));
  Agent agent(dir.path(), {"--config", dir.File("lockwatch.yaml"), "--dump-dir", dumps});
  ASSERT_NE(agent.port(), 0) << agent.Log();
  ReadmePileUp pileup(bank, 2, 12);
  ASSERT_TRUE(
      Eventually([&] { return Series(agent, "lockwatch_incident_active") == 1.0; }, milliseconds(15000)))
      << agent.Log();
  std::this_thread::sleep_for(milliseconds(4000));
  const int64_t killed_at = WallNowUs();
  agent.process().Signal(SIGKILL);
  ASSERT_TRUE(agent.process().WaitExit(milliseconds(5000)).has_value());

  const std::vector<std::string> partial = FilesEndingWith(dumps, ".dump.gz.partial");
  ASSERT_EQ(partial.size(), 1u);
  EXPECT_TRUE(FilesEndingWith(dumps, ".dump.gz").empty());
  core::Result<forensics::Dump> read = forensics::ReadDump(partial[0]);
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_FALSE(read.value().complete);
  int64_t last_during = 0;
  bool opened = false;
  for (const forensics::DumpRecord& r : read.value().records) {
    if (r.type == "incident" && r.record.value("event", "") == "opened") opened = true;
    if (r.type == "snapshot" && r.record.value("phase", "") == "during") {
      last_during = std::max(last_during, TimeOf(r.record, "captured_at"));
    }
  }
  EXPECT_TRUE(opened);
  // flush_interval is 1 s and polls come every 500 ms: at most about 2 s may be lost; allow 3.
  EXPECT_GE(last_during, killed_at - 3000000) << "lost " << (killed_at - last_during) / 1000 << " ms";
  std::printf("figures: SIGKILL lost the last %.2f s of the incident\n",
              static_cast<double>(killed_at - last_during) / 1e6);
  pileup.Commit();
}

}  // namespace
}  // namespace lockwatch::e2e
