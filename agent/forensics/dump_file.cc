#include "agent/forensics/dump_file.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lockwatch::forensics {
namespace {

core::Status Errno(const std::string& what, const std::string& path, int err) {
  std::string message = what + " " + path + ": " + std::strerror(err);
  if (err == EACCES || err == EPERM) return core::Status::PermissionDenied(std::move(message));
  return core::Status::Internal(std::move(message));
}

class PosixFile final : public WritableFile {
 public:
  PosixFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  core::Status Append(std::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("cannot write", path_, errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return core::Status::Ok();
  }
  core::Status SyncData() override {
    if (::fdatasync(fd_) != 0) return Errno("cannot sync", path_, errno);
    return core::Status::Ok();
  }
  core::Status Close() override {
    if (fd_ < 0) return core::Status::Ok();
    const int fd = std::exchange(fd_, -1);
    if (::fsync(fd) != 0) {
      const int err = errno;
      ::close(fd);
      return Errno("cannot sync", path_, err);
    }
    if (::close(fd) != 0) return Errno("cannot close", path_, errno);
    return core::Status::Ok();
  }

 private:
  std::string path_;
  int fd_;
};

class PosixFs final : public DumpFileSystem {
 public:
  core::Result<std::unique_ptr<WritableFile>> CreateExclusive(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return Errno("cannot create", path, errno);
    // The umask cannot widen 0600, but a restrictive one could narrow it to unusable; make it exact.
    ::fchmod(fd, 0600);
    return std::unique_ptr<WritableFile>(std::make_unique<PosixFile>(path, fd));
  }
  core::Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return Errno("cannot rename " + from + " to", to, errno);
    return core::Status::Ok();
  }
  core::Status SyncDirectory(const std::string& dir) override {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open directory", dir, errno);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return Errno("cannot sync directory", dir, err);
    return core::Status::Ok();
  }
};

}  // namespace

DumpFileSystem& PosixDumpFileSystem() {
  static PosixFs fs;
  return fs;
}

}  // namespace lockwatch::forensics
