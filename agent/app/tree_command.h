#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "agent/app/cli_context.h"
#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"

namespace lockwatch::app {

struct TreeOptions {
  std::string dsn;           // "" = PG* environment
  bool json = false;         // the JSON document instead of text
  std::optional<int> width;  // --width; otherwise from the terminal
  bool no_color = false;     // --no-color
};

// The output of `lockwatch tree` for an analysed snapshot: the text forest (width and colour resolved from
// the options and the terminal) or the pretty-printed JSON document, newline-terminated. Pure.
std::string FormatTreeOutput(const core::Snapshot& snapshot, const core::Report& report,
                             const TreeOptions& options, const TerminalInfo& terminal);

// One snapshot from `context.snapshot_source`, analysed and written to context.out. Returns kExitOk (with or
// without waits), kExitConnectionFailed when the server cannot be reached or the connection breaks (message
// on context.err naming the redacted DSN), kExitError otherwise.
int RunTree(const TreeOptions& options, CliContext& context);

// Adds `tree` to the CLI; its callback configures logging (default level warn), runs RunTree and stores the
// exit status in context.exit_code. `context` must outlive app.parse().
void AddTreeCommand(CLI::App& app, CliContext& context);

}  // namespace lockwatch::app
