// The agent's incident pipeline: flight recorder -> incident -> dump, with a real directory and with a
// failing or hung filesystem (a full disk never crashes the agent, a hung disk never blocks a poll).
#include "agent/agent/incident_pipeline.h"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/forensics/dump_reader.h"

#include "tests/forensics/dump_test_util.h"

namespace lockwatch::agent {
namespace {

using forensics::test::PileUp;
using testing::Sec;

constexpr core::TimestampUs kT0 = Sec(1800000000);

std::vector<std::string> Files(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().string();
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(name);
    }
  }
  return out;
}

bool HasSeries(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

IncidentPipelineOptions Options(const std::string& dir) {
  IncidentPipelineOptions o;
  o.thresholds.resolve_after_us = Sec(5);
  o.dumps.dir = dir;
  o.dumps.flush_interval = std::chrono::milliseconds(0);
  return o;
}

std::shared_ptr<metrics::AgentMetrics> Metrics() {
  auto m = std::make_shared<metrics::AgentMetrics>(metrics::BuildInfo{"test", "test"},
                                                   []() { return std::nullopt; });
  m->AddTarget("t", std::chrono::milliseconds(1000));
  return m;
}

// Polls at 1 s: `quiet` polls without waits, `busy` with 12 waiters, then `tail` quiet ones.
void Feed(IncidentPipeline& p, int quiet, int busy, int tail, core::TimestampUs* now) {
  for (int i = 0; i < quiet; ++i, *now += Sec(1)) {
    const core::Snapshot s = PileUp(*now, 0, 5);
    p.OnPoll(s, core::Analyze(s));
  }
  for (int i = 0; i < busy; ++i, *now += Sec(1)) {
    const core::Snapshot s = PileUp(*now, 12, 5);
    p.OnPoll(s, core::Analyze(s));
  }
  for (int i = 0; i < tail; ++i, *now += Sec(1)) {
    const core::Snapshot s = PileUp(*now, 0, 5);
    p.OnPoll(s, core::Analyze(s));
  }
}

TEST(IncidentPipelineTest, OneIncidentWritesOneCompleteDumpWithTheHistoryBeforeIt) {
  forensics::test::TempDir dir;
  auto metrics = Metrics();
  IncidentPipeline pipeline("t", Options(dir.File("dumps")), metrics);
  core::TimestampUs now = kT0;
  Feed(pipeline, 4, 6, 8, &now);
  pipeline.WaitForDumps();
  const std::vector<std::string> dumps = Files(dir.File("dumps"), ".dump.gz");
  ASSERT_EQ(dumps.size(), 1u);
  EXPECT_TRUE(Files(dir.File("dumps"), ".partial").empty());
  core::Result<forensics::Dump> read = forensics::ReadDump(dumps[0]);
  ASSERT_TRUE(read.ok()) << read.status().message();
  int before = 0;
  int during = 0;
  int after = 0;
  std::vector<std::string> events;
  for (const forensics::DumpRecord& r : read.value().records) {
    if (r.type == "snapshot") {
      const std::string phase = r.record.value("phase", "");
      before += phase == "before";
      during += phase == "during";
      after += phase == "after";
    } else if (r.type == "incident") {
      events.push_back(r.record.value("event", ""));
    }
  }
  EXPECT_TRUE(read.value().complete);
  EXPECT_EQ(before, 4);
  // Six busy polls plus the quiet ones before the resolve (5 s of quiet: polls at +0..+4 s).
  EXPECT_EQ(during, 6 + 5);
  EXPECT_EQ(after, 1);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front(), "opened");
  EXPECT_EQ(events.back(), "resolved");
  const std::string text = metrics->Render(static_cast<double>(now) / 1e6);
  EXPECT_TRUE(HasSeries(text, "lockwatch_incidents_total{target=\"t\"} 1")) << text;
  EXPECT_TRUE(HasSeries(text, "lockwatch_incident_active{target=\"t\"} 0"));
  EXPECT_TRUE(HasSeries(text, "lockwatch_dumps_written_total{target=\"t\"} 1"));
  EXPECT_TRUE(HasSeries(text, "lockwatch_dump_errors_total{target=\"t\"} 0"));
}

TEST(IncidentPipelineTest, FlappingContentionWithinResolveAfterIsOneIncident) {
  forensics::test::TempDir dir;
  auto metrics = Metrics();
  IncidentPipeline pipeline("t", Options(dir.File("dumps")), metrics);
  core::TimestampUs now = kT0;
  for (int round = 0; round < 4; ++round) Feed(pipeline, 0, 2, 3, &now);  // 3 s gaps < 5 s
  Feed(pipeline, 0, 0, 7, &now);
  pipeline.WaitForDumps();
  EXPECT_EQ(Files(dir.File("dumps"), ".dump.gz").size(), 1u);
  EXPECT_TRUE(HasSeries(metrics->Render(static_cast<double>(now) / 1e6),
                        "lockwatch_incidents_total{target=\"t\"} 1"));
}

// A filesystem whose files fail with ENOSPC once `full` is set.
class FullDisk : public forensics::DumpFileSystem {
 public:
  std::atomic<bool> full{false};

  core::Result<std::unique_ptr<forensics::WritableFile>> CreateExclusive(const std::string& path) override {
    if (full.load()) return core::Status::Internal(path + ": No space left on device");
    core::Result<std::unique_ptr<forensics::WritableFile>> real =
        forensics::PosixDumpFileSystem().CreateExclusive(path);
    if (!real.ok()) return real.status();
    return std::unique_ptr<forensics::WritableFile>(new File(std::move(real).value(), &full));
  }
  core::Status Rename(const std::string& from, const std::string& to) override {
    return forensics::PosixDumpFileSystem().Rename(from, to);
  }
  core::Status SyncDirectory(const std::string& dir) override {
    return forensics::PosixDumpFileSystem().SyncDirectory(dir);
  }

 private:
  class File : public forensics::WritableFile {
   public:
    File(std::unique_ptr<forensics::WritableFile> real, std::atomic<bool>* full)
        : real_(std::move(real)), full_(full) {}
    core::Status Append(std::string_view data) override {
      if (full_->load()) return core::Status::Internal("write: No space left on device");
      return real_->Append(data);
    }
    core::Status SyncData() override { return real_->SyncData(); }
    core::Status Close() override { return real_->Close(); }

   private:
    std::unique_ptr<forensics::WritableFile> real_;
    std::atomic<bool>* full_;
  };
};

TEST(IncidentPipelineTest, FullDiskIsCountedAndTheNextIncidentIsDumpedOnceThereIsSpace) {
  forensics::test::TempDir dir;
  auto metrics = Metrics();
  FullDisk disk;
  IncidentPipelineOptions o = Options(dir.File("dumps"));
  o.dumps.fs = &disk;
  IncidentPipeline pipeline("t", o, metrics);
  core::TimestampUs now = kT0;
  Feed(pipeline, 2, 2, 0, &now);  // incident open, dump started
  pipeline.WaitForDumps();
  disk.full = true;
  Feed(pipeline, 0, 3, 7, &now);  // writes fail; the incident resolves anyway
  pipeline.WaitForDumps();
  std::string text = metrics->Render(static_cast<double>(now) / 1e6);
  EXPECT_TRUE(HasSeries(text, "lockwatch_dump_errors_total{target=\"t\"} 1")) << text;
  EXPECT_TRUE(HasSeries(text, "lockwatch_dumps_written_total{target=\"t\"} 0"));
  // What was synced before the failure stays readable in the .partial file.
  const std::vector<std::string> partial = Files(dir.File("dumps"), ".partial");
  ASSERT_EQ(partial.size(), 1u);
  core::Result<forensics::Dump> read = forensics::ReadDump(partial[0]);
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_GE(read.value().records.size(), 3u);

  disk.full = false;
  Feed(pipeline, 0, 3, 7, &now);
  pipeline.WaitForDumps();
  text = metrics->Render(static_cast<double>(now) / 1e6);
  EXPECT_TRUE(HasSeries(text, "lockwatch_incidents_total{target=\"t\"} 2")) << text;
  EXPECT_TRUE(HasSeries(text, "lockwatch_dumps_written_total{target=\"t\"} 1"));
}

// A filesystem whose writes block until released: a hung disk.
class HungDisk : public forensics::DumpFileSystem {
 public:
  void Hang() {
    std::lock_guard<std::mutex> lock(mu_);
    hung_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hung_ = false;
    }
    cv_.notify_all();
  }
  void WaitWhileHung() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !hung_; });
  }

  core::Result<std::unique_ptr<forensics::WritableFile>> CreateExclusive(const std::string& path) override {
    core::Result<std::unique_ptr<forensics::WritableFile>> real =
        forensics::PosixDumpFileSystem().CreateExclusive(path);
    if (!real.ok()) return real.status();
    return std::unique_ptr<forensics::WritableFile>(new File(std::move(real).value(), this));
  }
  core::Status Rename(const std::string& from, const std::string& to) override {
    return forensics::PosixDumpFileSystem().Rename(from, to);
  }
  core::Status SyncDirectory(const std::string& dir) override {
    return forensics::PosixDumpFileSystem().SyncDirectory(dir);
  }

 private:
  class File : public forensics::WritableFile {
   public:
    File(std::unique_ptr<forensics::WritableFile> real, HungDisk* disk)
        : real_(std::move(real)), disk_(disk) {}
    core::Status Append(std::string_view data) override {
      disk_->WaitWhileHung();
      return real_->Append(data);
    }
    core::Status SyncData() override { return real_->SyncData(); }
    core::Status Close() override { return real_->Close(); }

   private:
    std::unique_ptr<forensics::WritableFile> real_;
    HungDisk* disk_;
  };

  std::mutex mu_;
  std::condition_variable cv_;
  bool hung_ = false;
};

TEST(IncidentPipelineTest, HungDiskNeverBlocksAPollAndExcessRecordsAreDroppedAndCounted) {
  forensics::test::TempDir dir;
  auto metrics = Metrics();
  HungDisk disk;
  IncidentPipelineOptions o = Options(dir.File("dumps"));
  o.dumps.fs = &disk;
  o.dumps.max_queued_records = 5;
  auto pipeline = std::make_unique<IncidentPipeline>("t", o, metrics);
  core::TimestampUs now = kT0;
  Feed(*pipeline, 1, 1, 0, &now);  // opens; the dump's header is written
  pipeline->WaitForDumps();
  disk.Hang();
  // Every one of these polls returns although the writer is stuck on the disk (the test would hang
  // otherwise); beyond 5 queued records they are dropped.
  Feed(*pipeline, 0, 40, 0, &now);
  std::string text = metrics->Render(static_cast<double>(now) / 1e6);
  const std::string prefix = "lockwatch_dump_records_dropped_total{target=\"t\"} ";
  const size_t at = text.find(prefix);
  ASSERT_NE(at, std::string::npos);
  const double dropped = std::stod(text.substr(at + prefix.size()));
  EXPECT_GE(dropped, 40 - 5 - 1);  // at most the queue plus the record in the writer's hands survive
  disk.Release();
  Feed(*pipeline, 0, 0, 7, &now);
  pipeline->WaitForDumps();
  EXPECT_EQ(Files(dir.File("dumps"), ".dump.gz").size(), 1u);
}

}  // namespace
}  // namespace lockwatch::agent
