#include "agent/forensics/retention.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <system_error>

#include <sys/stat.h>

namespace lockwatch::forensics {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<std::string> PlanRetention(std::vector<DumpFileInfo> files, const RetentionPolicy& policy,
                                       core::TimestampUs now) {
  std::sort(files.begin(), files.end(), [](const DumpFileInfo& a, const DumpFileInfo& b) {
    return a.modified_at_us != b.modified_at_us ? a.modified_at_us < b.modified_at_us : a.path < b.path;
  });
  uint64_t total = 0;
  for (const DumpFileInfo& f : files) total += f.bytes;
  std::vector<std::string> doomed;
  size_t remaining = files.size();
  for (const DumpFileInfo& f : files) {
    const bool too_old = policy.max_age_us > 0 && now - f.modified_at_us > policy.max_age_us;
    const bool too_many = policy.max_count > 0 && remaining > policy.max_count;
    const bool too_big = policy.max_total_bytes > 0 && total > policy.max_total_bytes;
    if (!too_old && !too_many && !too_big) break;  // sorted oldest first: the rest are newer
    doomed.push_back(f.path);
    --remaining;
    total -= f.bytes;
  }
  return doomed;
}

core::Result<std::vector<std::string>> ApplyRetention(const std::string& dir, const RetentionPolicy& policy,
                                                      core::TimestampUs now) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<DumpFileInfo> dumps;
  std::vector<DumpFileInfo> stale_partials;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string path = it->path().string();
    const bool dump = EndsWith(path, ".dump.gz");
    const bool partial = EndsWith(path, ".dump.gz.partial");
    if (!dump && !partial) continue;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    DumpFileInfo info{path,
                      static_cast<core::TimestampUs>(st.st_mtim.tv_sec) * 1000000 + st.st_mtim.tv_nsec / 1000,
                      static_cast<uint64_t>(st.st_size)};
    (dump ? dumps : stale_partials).push_back(std::move(info));
  }
  if (ec) return core::Status::Internal("cannot list " + dir + ": " + ec.message());

  std::vector<std::string> doomed = PlanRetention(std::move(dumps), policy, now);
  if (policy.max_age_us > 0) {
    for (const DumpFileInfo& p : stale_partials) {
      if (now - p.modified_at_us > policy.max_age_us) doomed.push_back(p.path);
    }
  }
  std::vector<std::string> deleted;
  for (const std::string& path : doomed) {
    if (!fs::remove(path, ec) && ec)
      return core::Status::Internal("cannot delete " + path + ": " + ec.message());
    deleted.push_back(path);
  }
  return deleted;
}

}  // namespace lockwatch::forensics
