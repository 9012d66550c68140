#pragma once

#include "agent/app/cli_context.h"

namespace lockwatch::app {

// "lockwatch 0.1.0 (revision 1a2b3c4d5e6f)".
const char* VersionString();

// Builds the command line (global flags and every subcommand), parses `argv` and runs the chosen command
// with the dependencies in `context`. Returns the process exit status: the command's, or CLI11's for usage
// errors (message on context.err), 0 for --help/--version (text on context.out).
int RunCli(CliContext& context, int argc, const char* const* argv);

// The process entry point: wires the real terminal, stdout/stderr and PostgreSQL, then RunCli.
int Main(int argc, char** argv);

}  // namespace lockwatch::app
