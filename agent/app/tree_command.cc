#include "agent/app/tree_command.h"

#include <exception>
#include <memory>
#include <ostream>
#include <utility>

#include <spdlog/spdlog.h>

#include "agent/app/logging.h"
#include "agent/app/terminal.h"
#include "agent/core/explain.h"
#include "agent/core/tree_render.h"
#include "agent/json/tree_document.h"

namespace lockwatch::app {
namespace {

std::string Target(const SnapshotSource& source) {
  const std::string dsn = source.redacted_dsn();
  return dsn.empty() ? "the server named by the PG* environment" : dsn;
}

}  // namespace

std::string FormatTreeOutput(const core::Snapshot& snapshot, const core::Report& report,
                             const TreeOptions& options, const TerminalInfo& terminal) {
  if (options.json) {
    // Query text and application names are client data: invalid UTF-8 (SQL_ASCII databases) is replaced
    // rather than failing the whole document.
    return json::TreeDocument(snapshot, report, core::Explain(snapshot, report))
               .dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
           "\n";
  }
  core::TreeRenderOptions render;
  render.width = ResolveWidth(options.width, terminal);
  render.color = ResolveColor(options.no_color, terminal);
  return core::RenderTree(snapshot, report, render);
}

int RunTree(const TreeOptions& options, CliContext& context) {
  std::ostream& err = *context.err;
  try {
    std::unique_ptr<SnapshotSource> source = context.snapshot_source(options.dsn);
    spdlog::debug("connecting to {}", Target(*source));
    const core::Status connected = source->Connect();
    if (!connected.ok()) {
      // The adapter's message usually names the (redacted) target already; do not say it twice.
      const std::string& message = connected.message();
      err << "lockwatch tree: cannot connect";
      if (source->redacted_dsn().empty() || message.find(source->redacted_dsn()) == std::string::npos) {
        err << " to " << Target(*source);
      }
      err << ": " << message << "\n";
      return kExitConnectionFailed;
    }
    core::Result<core::Snapshot> snapshot = source->Poll();
    if (!snapshot.ok()) {
      const bool lost = snapshot.status().code() == core::Status::Code::kUnavailable;
      err << "lockwatch tree: " << (lost ? "connection lost while reading " : "cannot read lock state of ")
          << Target(*source) << ": " << snapshot.status().message() << "\n";
      return lost ? kExitConnectionFailed : kExitError;
    }
    const core::Report report = core::Analyze(snapshot.value());
    spdlog::debug("{} sessions, {} edges, {} roots", snapshot.value().sessions.size(), report.edges.size(),
                  report.roots.size());
    *context.out << FormatTreeOutput(snapshot.value(), report, options, context.terminal);
    context.out->flush();
    return kExitOk;
  } catch (const std::exception& e) {
    err << "lockwatch tree: " << e.what() << "\n";
    return kExitError;
  }
}

void AddTreeCommand(CLI::App& app, CliContext& context) {
  auto options = std::make_shared<TreeOptions>();
  CLI::App* tree = app.add_subcommand(
      "tree", "Print who blocks whom right now: one snapshot, the blocking forest, most harmful root first");
  tree->add_option("--dsn", options->dsn, "libpq conninfo or postgres:// URI (default: PG* environment)")
      ->envname("LOCKWATCH_DSN");
  tree->add_flag("--json", options->json, "Print the versioned JSON document (agent/docs/json-schema.md)");
  tree->add_option("--width", options->width, "Line width (default: $COLUMNS, the terminal, or 120)")
      ->check(CLI::Range(20, 100000));
  tree->add_flag("--no-color", options->no_color, "Never use colours (also: NO_COLOR environment variable)");
  tree->callback([options, &context]() {
    const core::Status logging = ConfigureLogging(context.global, "warn");
    if (!logging.ok()) {
      *context.err << "lockwatch: " << logging.message() << "\n";
      context.exit_code = kExitError;
      return;
    }
    context.exit_code = RunTree(*options, context);
  });
}

}  // namespace lockwatch::app
