#include "agent/agent/dump_worker.h"

#include <cerrno>
#include <cstring>
#include <utility>
#include <variant>

#include <sys/stat.h>

#include "agent/agent/log.h"

namespace lockwatch::agent {
namespace {

using Clock = std::chrono::steady_clock;

int64_t WallNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// mkdir -p with mode 0700 for what it creates (dumps hold query text and user names).
core::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return core::Status::InvalidArgument("no dump directory configured");
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return core::Status::Internal("cannot create dump directory " + path + ": " + std::strerror(errno));
    }
  }
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return core::Status::Internal("dump directory " + dir + " is not a directory");
  }
  return core::Status::Ok();
}

}  // namespace

struct DumpWorker::Job {
  struct Begin {
    forensics::DumpHeader header;
    std::vector<core::RecordedEntry> before;
  };
  struct Snap {
    std::string phase;
    core::Snapshot snapshot;
    core::Report report;
  };
  struct Event {
    core::IncidentEvent event;
    core::TimestampUs at = 0;
  };
  struct Record {
    nlohmann::json record;
  };
  struct End {
    core::TimestampUs at = 0;
  };
  std::variant<Begin, Snap, Event, Record, End> what;
};

DumpWorker::DumpWorker(std::string target, DumpWorkerOptions options, std::shared_ptr<DumpObserver> observer)
    : target_(std::move(target)), options_(std::move(options)), observer_(std::move(observer)) {
  thread_ = std::thread([this] { Run(); });
}

DumpWorker::~DumpWorker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    drain_deadline_ = Clock::now() + options_.drain_timeout;
  }
  cv_.notify_all();
  thread_.join();
}

void DumpWorker::Enqueue(std::unique_ptr<Job> job, bool droppable) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (droppable) {
      if (queued_records_ >= options_.max_queued_records) {
        observer_->OnRecordsDropped(1);
        return;
      }
      ++queued_records_;
    }
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void DumpWorker::BeginDump(forensics::DumpHeader header, std::vector<core::RecordedEntry> before) {
  auto job = std::make_unique<Job>();
  job->what = Job::Begin{std::move(header), std::move(before)};
  Enqueue(std::move(job), false);
}

void DumpWorker::AddSnapshot(std::string phase, core::Snapshot snapshot, core::Report report) {
  auto job = std::make_unique<Job>();
  job->what = Job::Snap{std::move(phase), std::move(snapshot), std::move(report)};
  Enqueue(std::move(job), true);
}

void DumpWorker::AddIncident(core::IncidentEvent event, core::TimestampUs at) {
  auto job = std::make_unique<Job>();
  job->what = Job::Event{std::move(event), at};
  Enqueue(std::move(job), false);  // small, and the summary matters most
}

void DumpWorker::AddRecord(nlohmann::json record) {
  auto job = std::make_unique<Job>();
  job->what = Job::Record{std::move(record)};
  Enqueue(std::move(job), true);
}

void DumpWorker::EndDump(core::TimestampUs at) {
  auto job = std::make_unique<Job>();
  job->what = Job::End{at};
  Enqueue(std::move(job), false);
}

void DumpWorker::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void DumpWorker::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Wakes for work, for a stop, or for the flush interval so that the last records reach the disk even
    // when no new record arrives (polls failing during an incident).
    cv_.wait_for(lock, options_.flush_interval, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) {
      if (stopping_) break;
      lock.unlock();
      FlushIfDue();
      lock.lock();
      continue;
    }
    if (stopping_ && Clock::now() > drain_deadline_) {
      // Out of time: keep the control messages (a final close) and drop the rest.
      uint64_t dropped = 0;
      std::deque<std::unique_ptr<Job>> keep;
      for (auto& job : queue_) {
        if (std::holds_alternative<Job::Snap>(job->what) || std::holds_alternative<Job::Record>(job->what)) {
          ++dropped;
        } else {
          keep.push_back(std::move(job));
        }
      }
      queue_ = std::move(keep);
      queued_records_ = 0;
      if (dropped > 0) observer_->OnRecordsDropped(dropped);
      if (queue_.empty()) continue;
    }
    std::unique_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    const bool droppable =
        std::holds_alternative<Job::Snap>(job->what) || std::holds_alternative<Job::Record>(job->what);
    if (droppable && queued_records_ > 0) --queued_records_;
    busy_ = true;
    lock.unlock();
    const Clock::time_point start = Clock::now();
    Handle(*job);
    busy_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
    job.reset();
    lock.lock();
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
  lock.unlock();
  // Stopping with a dump open (agent shutdown or reload during an incident): close it so the file is
  // complete; the incident summary written so far says it had not resolved.
  CloseOpenDump(WallNowUs());
  std::lock_guard<std::mutex> relock(mu_);
  idle_cv_.notify_all();
}

void DumpWorker::Abandon(const std::string& message) {
  const std::string path = writer_ ? writer_->partial_path() : options_.dir;
  failed_ = true;
  writer_.reset();  // leaves the .partial file with what was synced
  observer_->OnDumpError(path, message);
}

void DumpWorker::CloseOpenDump(core::TimestampUs at) {
  if (writer_ && !failed_) {
    const std::string path = writer_->path();
    const Clock::time_point start = Clock::now();
    core::Status st = writer_->Close(at);
    busy_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
    if (st.ok()) {
      observer_->OnDumpWritten(path, writer_->compressed_bytes(), writer_->records(), busy_seconds_);
    } else {
      observer_->OnDumpError(path, st.message());
    }
  }
  writer_.reset();
}

void DumpWorker::FlushIfDue() {
  if (!writer_ || failed_ || !unflushed_) return;
  if (Clock::now() - last_write_ < options_.flush_interval) return;
  core::Status st = writer_->Flush();
  if (!st.ok()) {
    Abandon(st.message());
    return;
  }
  unflushed_ = false;
}

void DumpWorker::Handle(Job& job) {
  if (auto* begin = std::get_if<Job::Begin>(&job.what)) {
    CloseOpenDump(WallNowUs());
    failed_ = false;
    busy_seconds_ = 0;
    core::Status dir = MakeDirs(options_.dir);
    if (!dir.ok()) {
      failed_ = true;
      observer_->OnDumpError(options_.dir, dir.message());
      return;
    }
    if (!retention_applied_) {
      // Once at the first dump: old files from earlier runs count against the limits too.
      (void)forensics::ApplyRetention(options_.dir, options_.retention, WallNowUs());
      retention_applied_ = true;
    }
    forensics::DumpWriterOptions wo;
    wo.flush_interval = options_.flush_interval;
    wo.query_text = options_.query_text;
    wo.fs = options_.fs;
    const std::string base =
        options_.dir + "/lockwatch-" + target_ + "-" + core::CompactUtc(begin->header.created_at_us);
    core::Result<std::unique_ptr<forensics::DumpWriter>> made =
        forensics::DumpWriter::Create(base + ".dump.gz", begin->header, wo);
    // Two incidents opening in the same second (or a leftover file): never overwrite, pick a new name.
    for (int n = 1; !made.ok() && n < 10; ++n) {
      made = forensics::DumpWriter::Create(base + "-" + std::to_string(n) + ".dump.gz", begin->header, wo);
    }
    if (!made.ok()) {
      failed_ = true;
      observer_->OnDumpError(base + ".dump.gz", made.status().message());
      return;
    }
    writer_ = std::move(made).value();
    for (const core::RecordedEntry& entry : begin->before) {
      core::Status st = writer_->WriteRecorded(entry);
      if (!st.ok()) {
        Abandon(st.message());
        return;
      }
    }
    core::Status st = writer_->Flush();  // the history is on disk before the first "during" record
    if (!st.ok()) Abandon(st.message());
    last_write_ = Clock::now();
    unflushed_ = false;
    return;
  }
  if (auto* end = std::get_if<Job::End>(&job.what)) {
    if (writer_ && !failed_) {
      CloseOpenDump(end->at);
      core::Result<std::vector<std::string>> removed =
          forensics::ApplyRetention(options_.dir, options_.retention, WallNowUs());
      if (removed.ok() && !removed.value().empty()) {
        Log(spdlog::level::info, "retention removed old dumps",
            {{"target", target_}, {"removed", static_cast<int64_t>(removed.value().size())}});
      } else if (!removed.ok()) {
        Log(spdlog::level::warn, "dump retention failed",
            {{"target", target_}, {"error", removed.status().message()}});
      }
    }
    writer_.reset();
    failed_ = false;
    return;
  }
  if (!writer_ || failed_) {
    observer_->OnRecordsDropped(1);
    return;
  }
  core::Status st;
  if (auto* snap = std::get_if<Job::Snap>(&job.what)) {
    st = writer_->WriteSnapshot(snap->phase, snap->snapshot, snap->report);
  } else if (auto* event = std::get_if<Job::Event>(&job.what)) {
    st = writer_->WriteIncident(event->event, event->at);
  } else if (auto* record = std::get_if<Job::Record>(&job.what)) {
    st = writer_->WriteRecord(record->record);
  }
  if (!st.ok()) {
    Abandon(st.message());
    return;
  }
  last_write_ = Clock::now();
  unflushed_ = true;  // the writer flushes by itself at its interval; FlushIfDue covers quiet periods
}

}  // namespace lockwatch::agent
