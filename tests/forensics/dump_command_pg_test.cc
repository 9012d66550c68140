// `lockwatch dump`'s core against a real PostgreSQL server (LOCKWATCH_TEST_DSN): a real pile-up is captured,
// written and read back.
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "agent/forensics/dump_command.h"
#include "agent/forensics/dump_reader.h"
#include "agent/forensics/dump_records.h"
#include "agent/pg/collector.h"

#include "tests/forensics/dump_test_util.h"
#include "tests/testing/pg_harness.h"

namespace lockwatch::forensics {
namespace {

class CollectorSource final : public app::SnapshotSource {
 public:
  explicit CollectorSource(const std::string& dsn) : collector_(dsn) {}
  core::Status Connect() override { return collector_.Connect(); }
  core::Result<core::Snapshot> Poll() override { return collector_.Poll(); }
  std::string redacted_dsn() const override { return collector_.redacted_dsn(); }

 private:
  pg::Collector collector_;
};

TEST(DumpCommandPgTest, CapturesRealPileUp) {
  const std::string dsn = testing::TestDsn();
  testing::PgSession setup(dsn, "lw_dump_setup");
  setup.Exec(
      "drop table if exists lw_dump_t; create table lw_dump_t(id int primary key, v int);"
      "insert into lw_dump_t values (1, 0)");
  testing::PgSession holder(dsn, "lw_dump_holder");
  holder.Exec("begin; update lw_dump_t set v = 1 where id = 1");
  testing::PgSession waiter(dsn, "lw_dump_waiter");
  waiter.Send("update lw_dump_t set v = 2 where id = 1");
  // Wait until the server shows the waiter blocked (bounded).
  for (int i = 0; i < 100; ++i) {
    const auto n = setup.ExecScalar(
        "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and "
        "application_name = 'lw_dump_waiter'");
    if (n && *n == "1") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  test::TempDir dir;
  const std::string path = dir.File("pg.dump.gz");
  std::ostringstream out;
  std::ostringstream err;
  app::CliContext context;
  context.out = &out;
  context.err = &err;
  context.snapshot_source = [](const std::string& d) {
    return std::unique_ptr<app::SnapshotSource>(std::make_unique<CollectorSource>(d));
  };
  DumpCommandOptions options;
  options.dsn = dsn;
  options.output = path;
  ASSERT_EQ(RunDump(options, context), app::kExitOk) << err.str();
  holder.Exec("rollback");

  const core::Result<Dump> d = ReadDump(path);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_TRUE(d.value().complete);
  ASSERT_EQ(d.value().records.size(), 2U);
  const nlohmann::json& rec = d.value().records[0].record;
  EXPECT_GE(rec["report"]["summary"]["blocked_sessions"].get<int>(), 1);
  EXPECT_EQ(rec["report"]["roots"][0]["pid"], holder.pid());
  EXPECT_GE(d.value().header["server_version_num"].get<int>(), 150000);
  // Normalised by default: the literal of the waiting statement is gone.
  EXPECT_EQ(rec.dump().find("set v = 2"), std::string::npos);
  const core::Result<core::Snapshot> decoded = DecodeSnapshot(rec["snapshot"]);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(core::Analyze(decoded.value()).blocked_sessions, rec["report"]["summary"]["blocked_sessions"]);
}

}  // namespace
}  // namespace lockwatch::forensics
