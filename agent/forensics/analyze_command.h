#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "agent/app/cli_context.h"

namespace lockwatch::forensics {

struct AnalyzeCommandOptions {
  std::string file;
  bool json = false;  // the `--json` document (agent/docs/analyze.md) instead of text
  int width = 0;      // text width; 0 = the terminal's when narrower than 100, else 100
};

// `lockwatch analyze FILE`: reads a dump (final or .partial) and prints the incident as a timeline on
// context.out. Warnings (an incomplete dump) are part of the text; with --json they are in the document and
// also printed on context.err. A file that cannot be read or is not a usable dump: one line on
// context.err naming the file, kExitError. Never throws.
int RunAnalyze(const AnalyzeCommandOptions& options, app::CliContext& context);

// Adds `analyze` to the CLI; the callback stores RunAnalyze's status in context.exit_code. `context` must
// outlive app.parse().
void AddAnalyzeCommand(CLI::App& app, app::CliContext& context);

}  // namespace lockwatch::forensics
