#include "agent/forensics/dump_writer.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/core/analysis.h"
#include "agent/core/flight_recorder.h"
#include "agent/core/incident.h"
#include "agent/forensics/dump_reader.h"
#include "agent/forensics/dump_records.h"

#include "tests/forensics/dump_test_util.h"

namespace lockwatch::forensics {
namespace {

using test::Exists;
using test::PileUp;
using test::TempDir;
using testing::Sec;

DumpHeader Header() {
  DumpHeader h;
  h.target = "db1";
  h.incident_id = "db1-20261125T134507Z";
  h.created_at_us = Sec(1000);
  h.server_version_num = 150018;
  h.settings = {{"deadlock_timeout", "1s"}};
  h.lockwatch_version = "0.1.0";
  return h;
}

// A monotonic clock the test moves by hand.
struct FakeClock {
  int64_t now_us = 0;
  std::function<int64_t()> Fn() {
    return [this] { return now_us; };
  }
};

std::unique_ptr<DumpWriter> MustCreate(const std::string& path, DumpWriterOptions options = {}) {
  core::Result<std::unique_ptr<DumpWriter>> w = DumpWriter::Create(path, Header(), std::move(options));
  EXPECT_TRUE(w.ok()) << w.status().message();
  return w.ok() ? std::move(w).value() : nullptr;
}

TEST(DumpWriterTest, RoundTripsEveryRecordType) {
  TempDir dir;
  const std::string path = dir.File("a.dump.gz");
  const core::Snapshot before = PileUp(Sec(990), 3, 5);
  const core::Snapshot during = PileUp(Sec(1000), 4, 5);
  const core::Report during_report = core::Analyze(during);
  core::IncidentTracker tracker("db1");
  const std::vector<core::IncidentEvent> events = tracker.Observe(during_report, during, Sec(1000));
  ASSERT_EQ(events.size(), 1U);

  DumpWriterOptions options;
  options.query_text = QueryTextMode::kKeep;
  std::unique_ptr<DumpWriter> w = MustCreate(path, options);
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(w->WriteRecorded(core::CompactEntry(before, core::Analyze(before))).ok());
  ASSERT_TRUE(w->WriteSnapshot("during", during, during_report).ok());
  ASSERT_TRUE(w->WriteIncident(events[0], Sec(1000)).ok());
  ASSERT_TRUE(w->Close(Sec(1001)).ok());
  EXPECT_EQ(w->records(), 3);

  core::Result<Dump> dump = ReadDump(path);
  ASSERT_TRUE(dump.ok()) << dump.status().message();
  const Dump& d = dump.value();
  EXPECT_TRUE(d.complete);
  EXPECT_TRUE(d.warnings.empty()) << d.warnings[0];
  EXPECT_EQ(d.schema_version, 1);
  EXPECT_EQ(d.header["format"], "lockwatch-dump");
  EXPECT_EQ(d.header["target"], "db1");
  EXPECT_EQ(d.header["server_version_num"], 150018);
  EXPECT_EQ(d.header["settings"]["deadlock_timeout"], "1s");
  EXPECT_EQ(d.header["query_text"], "keep");
  ASSERT_EQ(d.records.size(), 4U);
  EXPECT_EQ(d.records[0].type, "snapshot");
  EXPECT_EQ(d.records[0].record["phase"], "before");
  EXPECT_EQ(d.records[0].record["compact"], true);
  EXPECT_EQ(d.records[0].record["report"]["summary"]["sessions"], 9);  // 4 kept + 5 counted
  EXPECT_EQ(d.records[0].record["uninvolved_sessions"][0]["count"], 5);
  EXPECT_EQ(d.records[1].record["phase"], "during");
  EXPECT_EQ(d.records[1].record["report"]["summary"]["blocked_sessions"], 4);
  EXPECT_EQ(d.records[2].type, "incident");
  EXPECT_EQ(d.records[2].record["event"], "opened");
  EXPECT_EQ(d.records[2].record["incident"]["roots"][0]["pid"], 100);
  EXPECT_EQ(d.records[3].type, "end");
  EXPECT_EQ(d.records[3].record["records"], 3);
  EXPECT_EQ(d.records[3].line, 5);

  core::Result<core::Snapshot> decoded = DecodeSnapshot(d.records[1].record["snapshot"]);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  const core::Snapshot& s = decoded.value();
  ASSERT_EQ(s.sessions.size(), during.sessions.size());
  ASSERT_EQ(s.locks.size(), during.locks.size());
  for (size_t i = 0; i < s.sessions.size(); ++i) {
    EXPECT_EQ(s.sessions[i].pid, during.sessions[i].pid);
    EXPECT_EQ(s.sessions[i].query, during.sessions[i].query);
    EXPECT_EQ(s.sessions[i].xact_start, during.sessions[i].xact_start);
    EXPECT_EQ(s.sessions[i].client_addr, during.sessions[i].client_addr);
  }
  for (size_t i = 0; i < s.locks.size(); ++i) {
    EXPECT_EQ(s.locks[i].pid, during.locks[i].pid);
    EXPECT_EQ(s.locks[i].mode, during.locks[i].mode);
    EXPECT_EQ(s.locks[i].granted, during.locks[i].granted);
    EXPECT_EQ(s.locks[i].transactionid, during.locks[i].transactionid);
    EXPECT_EQ(s.locks[i].waitstart, during.locks[i].waitstart);
  }
  EXPECT_EQ(s.captured_at_us, during.captured_at_us);
  // The decoded snapshot analyses to the same graph.
  const core::Report again = core::Analyze(s);
  EXPECT_EQ(again.blocked_sessions, during_report.blocked_sessions);
  EXPECT_EQ(again.edges.size(), during_report.edges.size());
}

TEST(DumpWriterTest, NormalizeModeLeavesNoLiteralInTheFile) {
  TempDir dir;
  const std::string path = dir.File("n.dump.gz");
  const core::Snapshot s = PileUp(Sec(1000), 2, 2);
  std::unique_ptr<DumpWriter> w = MustCreate(path);  // default mode: normalize
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(w->WriteSnapshot("during", s, core::Analyze(s)).ok());
  ASSERT_TRUE(w->Close(Sec(1001)).ok());
  core::Result<Dump> d = ReadDump(path);
  ASSERT_TRUE(d.ok());
  const std::string text = d.value().records[0].record.dump();
  EXPECT_EQ(text.find("idle secret"), std::string::npos);
  EXPECT_EQ(text.find("= 42"), std::string::npos);
  EXPECT_NE(text.find("where id = $2"), std::string::npos);
  EXPECT_NE(text.find("query_fingerprint"), std::string::npos);
}

TEST(DumpWriterTest, DropModeWritesNullQueries) {
  TempDir dir;
  const std::string path = dir.File("d.dump.gz");
  const core::Snapshot s = PileUp(Sec(1000), 1, 0);
  DumpWriterOptions options;
  options.query_text = QueryTextMode::kDrop;
  std::unique_ptr<DumpWriter> w = MustCreate(path, options);
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(w->WriteSnapshot("during", s, core::Analyze(s)).ok());
  ASSERT_TRUE(w->Close(Sec(1001)).ok());
  core::Result<Dump> d = ReadDump(path);
  ASSERT_TRUE(d.ok());
  for (const auto& session : d.value().records[0].record["snapshot"]["sessions"]) {
    EXPECT_TRUE(session["query"].is_null());
    EXPECT_FALSE(session["query_fingerprint"].get<std::string>().empty());
  }
  EXPECT_EQ(d.value().header["query_text"], "drop");
}

TEST(DumpWriterTest, FinalNameAppearsOnlyAtCloseWithMode0600) {
  TempDir dir;
  const std::string path = dir.File("v.dump.gz");
  std::unique_ptr<DumpWriter> w = MustCreate(path);
  ASSERT_NE(w, nullptr);
  EXPECT_FALSE(Exists(path));
  EXPECT_TRUE(Exists(path + ".partial"));
  struct stat st {};
  ASSERT_EQ(::stat((path + ".partial").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  const core::Snapshot s = PileUp(Sec(1000), 1, 0);
  ASSERT_TRUE(w->WriteSnapshot("during", s, core::Analyze(s)).ok());
  ASSERT_TRUE(w->Flush().ok());
  EXPECT_FALSE(Exists(path));
  ASSERT_TRUE(w->Close(Sec(1001)).ok());
  EXPECT_TRUE(Exists(path));
  EXPECT_FALSE(Exists(path + ".partial"));
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
}

TEST(DumpWriterTest, RefusesToReuseAnExistingPartialFile) {
  TempDir dir;
  const std::string path = dir.File("x.dump.gz");
  std::unique_ptr<DumpWriter> first = MustCreate(path);
  ASSERT_NE(first, nullptr);
  core::Result<std::unique_ptr<DumpWriter>> second = DumpWriter::Create(path, Header());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("File exists"), std::string::npos) << second.status().message();
}

TEST(DumpWriterTest, RecordsBecomeReadableAtTheFlushInterval) {
  TempDir dir;
  const std::string path = dir.File("f.dump.gz");
  FakeClock clock;
  DumpWriterOptions options;
  options.monotonic_us = clock.Fn();
  options.flush_interval = std::chrono::milliseconds(2000);
  std::unique_ptr<DumpWriter> w = MustCreate(path, options);
  ASSERT_NE(w, nullptr);
  const core::Snapshot s = PileUp(Sec(1000), 1, 0);
  const core::Report r = core::Analyze(s);
  clock.now_us = 1000000;
  ASSERT_TRUE(w->WriteSnapshot("during", s, r).ok());
  core::Result<Dump> early = ReadDumpFromBytes(test::ReadBytes(w->partial_path()));
  ASSERT_TRUE(early.ok()) << early.status().message();
  EXPECT_EQ(early.value().records.size(), 0U);  // header only: the record is not flushed yet
  clock.now_us = 2000000;
  ASSERT_TRUE(w->WriteSnapshot("during", s, r).ok());
  core::Result<Dump> later = ReadDumpFromBytes(test::ReadBytes(w->partial_path()));
  ASSERT_TRUE(later.ok()) << later.status().message();
  EXPECT_EQ(later.value().records.size(), 2U);
  EXPECT_FALSE(later.value().complete);
  ASSERT_FALSE(later.value().warnings.empty());
  EXPECT_EQ(later.value().warnings.back(), "truncated: no end record");
}

// The writer process dies without Close (SIGKILL): the .partial file holds every record up to the last
// flush and nothing after it.
TEST(DumpWriterTest, KilledWriterLeavesReadablePartialUpToLastFlush) {
  TempDir dir;
  const std::string path = dir.File("k.dump.gz");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    DumpWriterOptions options;
    options.flush_interval = std::chrono::hours(1);
    core::Result<std::unique_ptr<DumpWriter>> w = DumpWriter::Create(path, Header(), options);
    if (!w.ok()) ::_exit(3);
    const core::Snapshot s = PileUp(Sec(1000), 3, 3);
    const core::Report r = core::Analyze(s);
    for (int i = 0; i < 5; ++i) {
      if (!w.value()->WriteSnapshot("during", s, r).ok()) ::_exit(4);
    }
    if (!w.value()->Flush().ok()) ::_exit(5);
    for (int i = 0; i < 3; ++i) {
      if (!w.value()->WriteSnapshot("during", s, r).ok()) ::_exit(6);
    }
    ::kill(::getpid(), SIGKILL);
    ::_exit(7);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_FALSE(Exists(path));
  core::Result<Dump> dump = ReadDump(path + ".partial");
  ASSERT_TRUE(dump.ok()) << dump.status().message();
  EXPECT_EQ(dump.value().records.size(), 5U);
  EXPECT_FALSE(dump.value().complete);
  ASSERT_FALSE(dump.value().warnings.empty());
  EXPECT_EQ(dump.value().warnings.back(), "truncated: no end record");
}

// A file that accepts `quota` bytes, then fails like a full disk.
class FullDiskFile final : public WritableFile {
 public:
  FullDiskFile(size_t quota, std::string* sink) : quota_(quota), sink_(sink) {}
  core::Status Append(std::string_view data) override {
    if (sink_->size() + data.size() > quota_) {
      return core::Status::Internal(std::string("cannot write x.partial: ") + std::strerror(ENOSPC));
    }
    sink_->append(data);
    return core::Status::Ok();
  }
  core::Status SyncData() override { return core::Status::Ok(); }
  core::Status Close() override { return core::Status::Ok(); }

 private:
  size_t quota_;
  std::string* sink_;
};

class FullDiskFs final : public DumpFileSystem {
 public:
  explicit FullDiskFs(size_t quota) : quota_(quota) {}
  core::Result<std::unique_ptr<WritableFile>> CreateExclusive(const std::string& /*path*/) override {
    return std::unique_ptr<WritableFile>(std::make_unique<FullDiskFile>(quota_, &bytes));
  }
  core::Status Rename(const std::string& /*from*/, const std::string& /*to*/) override {
    ++renames;
    return core::Status::Ok();
  }
  core::Status SyncDirectory(const std::string& /*dir*/) override { return core::Status::Ok(); }
  std::string bytes;
  int renames = 0;

 private:
  size_t quota_;
};

TEST(DumpWriterTest, FullDiskIsAStatusAndSticks) {
  FullDiskFs fs(600);
  DumpWriterOptions options;
  options.fs = &fs;
  options.flush_interval = std::chrono::milliseconds(0);
  options.query_text = QueryTextMode::kKeep;
  core::Result<std::unique_ptr<DumpWriter>> w = DumpWriter::Create("/nowhere/x.dump.gz", Header(), options);
  ASSERT_TRUE(w.ok()) << w.status().message();
  const core::Snapshot s = PileUp(Sec(1000), 20, 20);
  const core::Status first = w.value()->WriteSnapshot("during", s, core::Analyze(s));
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.message().find("No space left on device"), std::string::npos) << first.message();
  EXPECT_FALSE(w.value()->Flush().ok());
  EXPECT_FALSE(w.value()->Close(Sec(1001)).ok());
  EXPECT_EQ(fs.renames, 0);  // an incomplete dump never gets the final name
  // What reached the disk before the failure is still a readable dump (the header).
  core::Result<Dump> d = ReadDumpFromBytes(fs.bytes);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d.value().header["target"], "db1");
}

// The same on a real, tiny filesystem, when this process may mount one (root on Linux).
TEST(DumpWriterTest, FullTmpfsIsAStatusNotACrash) {
  TempDir dir;
  const std::string mount_point = dir.File("tiny");
  ASSERT_EQ(::mkdir(mount_point.c_str(), 0700), 0);
  const std::string mount = "mount -t tmpfs -o size=64k tmpfs " + mount_point + " 2>/dev/null";
  if (::geteuid() != 0 || std::system(mount.c_str()) != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root); FullDiskIsAStatusAndSticks covers ENOSPC";
  }
  DumpWriterOptions options;
  options.flush_interval = std::chrono::milliseconds(0);
  options.query_text = QueryTextMode::kKeep;
  core::Result<std::unique_ptr<DumpWriter>> w =
      DumpWriter::Create(mount_point + "/full.dump.gz", Header(), options);
  core::Status last;
  if (w.ok()) {
    core::Snapshot s = PileUp(Sec(1000), 2, 0);
    uint64_t seed = 1;
    for (int i = 0; i < 200 && last.ok(); ++i) {
      std::string noise(4096, ' ');  // incompressible text so the disk really fills
      for (char& c : noise) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        c = static_cast<char>('a' + (seed >> 33) % 26);
      }
      s.sessions[0].query = noise;
      last = w.value()->WriteSnapshot("during", s, core::Analyze(s));
    }
  } else {
    last = w.status();
  }
  w = core::Status::Internal("released");  // close the file before unmounting
  const std::string umount = "umount " + mount_point;
  ASSERT_EQ(std::system(umount.c_str()), 0);
  ASSERT_FALSE(last.ok());
  EXPECT_NE(last.message().find("No space left on device"), std::string::npos) << last.message();
}

}  // namespace
}  // namespace lockwatch::forensics
