#pragma once

#include <CLI/CLI.hpp>

namespace lockwatch::agent {

// Registers `run` (the long-running agent) on `app`: flags --config, --dsn, --listen, --interval,
// --web.config.file, --log-level, --log-format. Flags override the config file. The subcommand's callback
// runs the agent until SIGTERM/SIGINT; a failure to start throws CLI::RuntimeError(exit code) after printing
// the reason (config errors as file:line:column) to stderr, so `return app.exit(e)` yields that code.
void AddRunCommand(CLI::App& app);

}  // namespace lockwatch::agent
