#include "agent/forensics/dump_command.h"

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <ostream>
#include <utility>

#include "agent/core/incident.h"
#include "agent/forensics/dump_writer.h"

#ifndef LOCKWATCH_VERSION
#define LOCKWATCH_VERSION "0.0.0"
#endif

namespace lockwatch::forensics {
namespace {

std::string Sanitize(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == '_';
    out += ok ? c : '_';
  }
  return out;
}

// host[:port] of a URI or the host= / port= of a conninfo string; "" when neither names a host.
std::string HostPart(const std::string& dsn) {
  for (const char* scheme : {"postgresql://", "postgres://"}) {
    const std::string prefix(scheme);
    if (dsn.compare(0, prefix.size(), prefix) != 0) continue;
    std::string rest = dsn.substr(prefix.size());
    rest = rest.substr(0, rest.find_first_of("/?"));
    if (const size_t at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
    if (!rest.empty() && rest[0] == '/') return "";
    return rest;
  }
  // conninfo: key = value pairs, values optionally single-quoted with backslash escapes.
  std::string host;
  std::string port;
  size_t i = 0;
  const size_t n = dsn.size();
  while (i < n) {
    while (i < n && dsn[i] == ' ') ++i;
    std::string key;
    while (i < n && dsn[i] != '=' && dsn[i] != ' ') key += dsn[i++];
    while (i < n && dsn[i] == ' ') ++i;
    if (i < n && dsn[i] == '=') ++i;
    while (i < n && dsn[i] == ' ') ++i;
    std::string value;
    if (i < n && dsn[i] == '\'') {
      for (++i; i < n && dsn[i] != '\''; ++i) {
        if (dsn[i] == '\\' && i + 1 < n) ++i;
        value += dsn[i];
      }
      ++i;
    } else {
      while (i < n && dsn[i] != ' ') value += dsn[i++];
    }
    if (key == "host") host = value;
    if (key == "port") port = value;
  }
  if (host.empty() || host[0] == '/') return "";
  return port.empty() ? host : host + ":" + port;
}

}  // namespace

std::string TargetName(const std::string& redacted_dsn, const std::string& current_database) {
  std::string host = HostPart(redacted_dsn);
  if (host.empty()) host = "local";
  return Sanitize(current_database.empty() ? host : host + "_" + current_database);
}

std::string DefaultDumpFileName(const std::string& target, core::TimestampUs at) {
  return "lockwatch-" + target + "-" + core::CompactUtc(at) + ".dump.gz";
}

core::Status WriteManualDump(const core::Snapshot& snapshot, const core::Report& report,
                             const std::string& target, const std::string& path, QueryTextMode query_text) {
  DumpHeader header;
  header.target = target;
  header.reason = "manual";
  header.created_at_us = snapshot.captured_at_us;
  header.server_version_num = snapshot.server_version_num;
  header.settings = snapshot.settings;
  header.lockwatch_version = LOCKWATCH_VERSION;
  DumpWriterOptions options;
  options.query_text = query_text;
  core::Result<std::unique_ptr<DumpWriter>> writer = DumpWriter::Create(path, std::move(header), options);
  if (!writer.ok()) return writer.status();
  core::Status st = writer.value()->WriteSnapshot("manual", snapshot, report);
  if (!st.ok()) return st;
  return writer.value()->Close(snapshot.captured_at_us);
}

int RunDump(const DumpCommandOptions& options, app::CliContext& context) {
  std::ostream& err = *context.err;
  try {
    std::unique_ptr<app::SnapshotSource> source = context.snapshot_source(options.dsn);
    const std::string shown =
        source->redacted_dsn().empty() ? "the server named by the PG* environment" : source->redacted_dsn();
    const core::Status connected = source->Connect();
    if (!connected.ok()) {
      err << "lockwatch dump: cannot connect";
      if (source->redacted_dsn().empty() ||
          connected.message().find(source->redacted_dsn()) == std::string::npos) {
        err << " to " << shown;
      }
      err << ": " << connected.message() << "\n";
      return app::kExitConnectionFailed;
    }
    core::Result<core::Snapshot> snapshot = source->Poll();
    if (!snapshot.ok()) {
      const bool lost = snapshot.status().code() == core::Status::Code::kUnavailable;
      err << "lockwatch dump: " << (lost ? "connection lost while reading " : "cannot read lock state of ")
          << shown << ": " << snapshot.status().message() << "\n";
      return lost ? app::kExitConnectionFailed : app::kExitError;
    }
    const core::Snapshot& snap = snapshot.value();
    const core::Report report = core::Analyze(snap);
    const std::string target = TargetName(source->redacted_dsn(), snap.current_database);
    const std::string path =
        options.output.empty() ? DefaultDumpFileName(target, snap.captured_at_us) : options.output;
    const core::Status written = WriteManualDump(snap, report, target, path, options.query_text);
    if (!written.ok()) {
      err << "lockwatch dump: " << written.message() << "\n";
      return app::kExitError;
    }
    *context.out << path << "\n"
                 << snap.sessions.size() << " sessions, " << report.blocked_sessions << " blocked, "
                 << report.roots.size() << " root blockers, max depth " << report.max_depth
                 << ", longest wait " << static_cast<int64_t>(report.max_wait_seconds) << " s\n";
    context.out->flush();
    return app::kExitOk;
  } catch (const std::exception& e) {
    err << "lockwatch dump: " << e.what() << "\n";
    return app::kExitError;
  }
}

void AddDumpCommand(CLI::App& app, app::CliContext& context) {
  auto options = std::make_shared<DumpCommandOptions>();
  auto mode = std::make_shared<std::string>("normalize");
  CLI::App* dump =
      app.add_subcommand("dump", "Capture one snapshot now and write it as a forensic dump file");
  dump->add_option("--dsn", options->dsn, "libpq conninfo or postgres:// URI (default: PG* environment)")
      ->envname("LOCKWATCH_DSN");
  dump->add_option("-o,--output", options->output,
                   "Output file (default: lockwatch-<target>-<UTC time>.dump.gz in the current directory)");
  dump->add_option("--query-text", *mode, "Query text in the dump: keep, normalize or drop")
      ->check(CLI::IsMember({"keep", "normalize", "drop"}))
      ->capture_default_str();
  dump->callback([options, mode, &context]() {
    options->query_text = ParseQueryTextMode(*mode).value_or(QueryTextMode::kNormalize);
    context.exit_code = RunDump(*options, context);
  });
}

}  // namespace lockwatch::forensics
