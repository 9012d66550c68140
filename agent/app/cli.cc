#include "agent/app/cli.h"

#include <CLI/CLI.hpp>

#include "agent/app/logging.h"
#include "agent/app/tree_command.h"
#include "agent/forensics/dump_command.h"

#ifndef LOCKWATCH_VERSION
#define LOCKWATCH_VERSION "0.0.0"
#endif
#ifndef LOCKWATCH_REVISION
#define LOCKWATCH_REVISION "unknown"
#endif

namespace lockwatch::app {

const char* VersionString() { return "lockwatch " LOCKWATCH_VERSION " (revision " LOCKWATCH_REVISION ")"; }

int RunCli(CliContext& context, int argc, const char* const* argv) {
  CLI::App app{"lockwatch: PostgreSQL lock-contention monitor and diagnostic agent", "lockwatch"};
  // Global flags are accepted after the subcommand too ("lockwatch tree --log-level debug").
  app.fallthrough();
  app.require_subcommand(1);
  app.set_version_flag("--version", VersionString());
  app.add_option("--log-level", context.global.log_level, "Log level on stderr (default: warn for tree)")
      ->check(CLI::IsMember(LogLevelNames()));
  app.add_option("--log-format", context.global.log_format, "Log format on stderr")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

  // One line per subcommand; each lives in its own <name>_command.cc.
  AddTreeCommand(app, context);
  forensics::AddDumpCommand(app, context);
  for (const CommandRegistrar& add : context.commands) {
    add(app);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, *context.out, *context.err);
  }
  return context.exit_code;
}

}  // namespace lockwatch::app
