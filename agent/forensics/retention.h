#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/core/snapshot.h"
#include "agent/core/status.h"

namespace lockwatch::forensics {

// Limits on the dumps kept in a directory; 0 means "no limit" for each.
struct RetentionPolicy {
  size_t max_count = 0;
  core::TimestampUs max_age_us = 0;
  uint64_t max_total_bytes = 0;
};

struct DumpFileInfo {
  std::string path;
  core::TimestampUs modified_at_us = 0;
  uint64_t bytes = 0;
};

// Which files to delete, oldest (by modification time, then path) first: everything older than max_age,
// then the oldest until at most max_count remain and their total is within max_total_bytes. Pure.
std::vector<std::string> PlanRetention(std::vector<DumpFileInfo> files, const RetentionPolicy& policy,
                                       core::TimestampUs now);

// Applies PlanRetention to the dumps in `dir`: files named "*.dump.gz", plus "*.dump.gz.partial" files
// older than max_age (a writer killed long ago; a recent .partial may be in progress and is never touched).
// Returns the deleted paths. A file that cannot be deleted is an error naming it (those deleted before
// stay deleted).
core::Result<std::vector<std::string>> ApplyRetention(const std::string& dir, const RetentionPolicy& policy,
                                                      core::TimestampUs now);

}  // namespace lockwatch::forensics
