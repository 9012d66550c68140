#include "agent/forensics/report_command.h"

#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <ostream>
#include <random>

#include <fcntl.h>
#include <stdlib.h>  // mkstemp
#include <sys/stat.h>
#include <unistd.h>

#include "agent/forensics/incident_timeline.h"
#include "agent/forensics/report_html.h"

namespace lockwatch::forensics {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// 128 random bits as base64 characters: the page's CSP nonce.
std::string NewNonce() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::random_device random;
  std::string nonce;
  for (int i = 0; i < 22; ++i) nonce.push_back(kAlphabet[random() % 64]);
  return nonce;
}

}  // namespace

core::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string temp = path + ".tmp-XXXXXX";
  const int fd = ::mkstemp(temp.data());  // mode 0600
  if (fd < 0) return core::Status::InvalidArgument("cannot create " + temp + ": " + ErrnoText(errno));
  const auto fail = [&](const std::string& what, int err) {
    ::close(fd);
    ::unlink(temp.c_str());
    return core::Status::Internal(what + " " + path + ": " + ErrnoText(err));
  };
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write", errno);
    }
    written += static_cast<size_t>(n);
  }
  if (::fchmod(fd, S_IRUSR | S_IWUSR) != 0) return fail("cannot set the mode of", errno);
  if (::fsync(fd) != 0) return fail("cannot sync", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return core::Status::Internal("cannot close " + path + ": " + ErrnoText(err));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return core::Status::Internal("cannot rename " + temp + " to " + path + ": " + ErrnoText(err));
  }
  // The rename survives a crash only once the directory is synced; a failure here is not worth an error.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
  return core::Status::Ok();
}

int RunReport(const ReportCommandOptions& options, app::CliContext& context) {
  std::ostream& err = *context.err;
  try {
    core::Result<Timeline> timeline = ReadTimeline(options.file);
    if (!timeline.ok()) {
      err << "lockwatch report: " << timeline.status().message() << "\n";
      return app::kExitError;
    }
    for (const std::string& w : timeline.value().warnings) {
      err << "lockwatch report: warning: " << options.file << ": " << w << "\n";
    }
    ReportHtmlOptions html;
    html.nonce = NewNonce();
    const core::Status written =
        WriteFileAtomically(options.output, RenderReportHtml(timeline.value(), options.file, html));
    if (!written.ok()) {
      err << "lockwatch report: " << written.message() << "\n";
      return app::kExitError;
    }
    *context.out << options.output << "\n";
    context.out->flush();
    return app::kExitOk;
  } catch (const std::exception& e) {
    err << "lockwatch report: " << options.file << ": " << e.what() << "\n";
    return app::kExitError;
  }
}

void AddReportCommand(CLI::App& app, app::CliContext& context) {
  auto options = std::make_shared<ReportCommandOptions>();
  CLI::App* report = app.add_subcommand("report", "Write a self-contained HTML report of a dump file");
  report->add_option("file", options->file, "Dump file (.dump.gz, or a .partial left by a stopped writer)")
      ->required();
  report->add_option("-o,--output", options->output, "HTML file to write (mode 0600: it holds query text)")
      ->required();
  report->callback([options, &context]() { context.exit_code = RunReport(*options, context); });
}

}  // namespace lockwatch::forensics
