#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "agent/app/cli_context.h"
#include "agent/core/status.h"

namespace lockwatch::forensics {

struct ReportCommandOptions {
  std::string file;    // the dump
  std::string output;  // -o: the HTML file to write (replaced atomically when it exists)
};

// Writes `contents` to `path` atomically: a temporary file in the same directory (mode 0600), fsync, rename
// over `path`. On error the temporary file is removed and `path` is untouched. Errors name the path.
core::Status WriteFileAtomically(const std::string& path, const std::string& contents);

// `lockwatch report FILE -o report.html`: reads a dump and writes the self-contained HTML report
// (RenderReportHtml) with mode 0600 (it holds query text). Prints the path on context.out, and the
// dump's warnings on context.err. Errors: one line on context.err naming the file, kExitError.
int RunReport(const ReportCommandOptions& options, app::CliContext& context);

// Adds `report` to the CLI; the callback stores RunReport's status in context.exit_code. `context` must
// outlive app.parse().
void AddReportCommand(CLI::App& app, app::CliContext& context);

}  // namespace lockwatch::forensics
