#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "agent/core/status.h"

namespace lockwatch::forensics {

// An append-only file being written. Errors are values (ENOSPC, EIO -> kInternal naming the path and errno
// text). Not thread-safe.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual core::Status Append(std::string_view data) = 0;
  // fdatasync(): data reaches the disk (used at each flush point).
  virtual core::Status SyncData() = 0;
  // fsync() then close.
  virtual core::Status Close() = 0;
};

// The filesystem operations the dump writer needs; the seam tests use to inject failures.
class DumpFileSystem {
 public:
  virtual ~DumpFileSystem() = default;
  // Creates `path` exclusively (O_CREAT|O_EXCL, mode 0600); fails if it exists.
  virtual core::Result<std::unique_ptr<WritableFile>> CreateExclusive(const std::string& path) = 0;
  // rename(2): atomic replacement within one filesystem.
  virtual core::Status Rename(const std::string& from, const std::string& to) = 0;
  // fsync() of a directory, so a rename in it survives a crash.
  virtual core::Status SyncDirectory(const std::string& dir) = 0;
};

// The real POSIX filesystem. Stateless; safe to share.
DumpFileSystem& PosixDumpFileSystem();

}  // namespace lockwatch::forensics
