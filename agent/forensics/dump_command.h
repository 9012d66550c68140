#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "agent/app/cli_context.h"
#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"
#include "agent/core/status.h"
#include "agent/forensics/query_text.h"

namespace lockwatch::forensics {

struct DumpCommandOptions {
  std::string dsn;     // "" = PG* environment
  std::string output;  // -o; "" = DefaultDumpFileName(...) in the current directory
  QueryTextMode query_text = QueryTextMode::kNormalize;
};

// A file-name-safe target name from a (redacted) DSN and the database read: "<host>[_<port>]_<database>",
// "local_<database>" for Unix sockets / no host. Only [A-Za-z0-9._-]; never contains a password.
std::string TargetName(const std::string& redacted_dsn, const std::string& current_database);

// "lockwatch-<target>-<yyyymmddThhmmssZ>.dump.gz".
std::string DefaultDumpFileName(const std::string& target, core::TimestampUs at);

// Writes a complete one-snapshot dump (header, one snapshot record with phase "manual", end) to `path`
// (created exclusively; an existing file is an error). Returns `path`.
core::Status WriteManualDump(const core::Snapshot& snapshot, const core::Report& report,
                             const std::string& target, const std::string& path, QueryTextMode query_text);

// `lockwatch dump`: one snapshot from context.snapshot_source, analysed and written. Prints the path and a
// one-line summary on context.out. Returns kExitOk, kExitConnectionFailed when the server cannot be reached
// or the connection breaks, kExitError otherwise (e.g. the file cannot be written).
int RunDump(const DumpCommandOptions& options, app::CliContext& context);

// Adds `dump` to the CLI; the callback stores RunDump's status in context.exit_code. `context` must outlive
// app.parse().
void AddDumpCommand(CLI::App& app, app::CliContext& context);

}  // namespace lockwatch::forensics
