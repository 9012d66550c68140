#include <iostream>

#include <CLI/CLI.hpp>

#include "agent/agent/run_command.h"
#include "agent/app/cli.h"
#include "agent/app/pg_source.h"
#include "agent/app/terminal.h"
#include "agent/console/top_command.h"
#include "agent/forensics/analyze_command.h"
#include "agent/forensics/report_command.h"
#include "agent/hooks/webhook.h"
#include "agent/policy/rules_command.h"

namespace lockwatch::app {

// The composition root: the only place that knows the real terminal, streams and PostgreSQL adapter.
int Main(int argc, char** argv) {
  hooks::InitHttpClient();  // libcurl's global state, before any thread starts
  CliContext context;
  context.terminal = DetectTerminal();
  context.snapshot_source = MakePgSnapshotSource;
  context.commands.emplace_back([](CLI::App& app) { agent::AddRunCommand(app); });
  context.commands.emplace_back([&context](CLI::App& app) { forensics::AddAnalyzeCommand(app, context); });
  context.commands.emplace_back([&context](CLI::App& app) { forensics::AddReportCommand(app, context); });
  context.commands.emplace_back([&context](CLI::App& app) { policy::AddRulesCommand(app, context); });
  context.commands.emplace_back([&context](CLI::App& app) { console::AddTopCommand(app, context); });
  context.out = &std::cout;
  context.err = &std::cerr;
  return RunCli(context, argc, argv);
}

}  // namespace lockwatch::app
