#include "agent/forensics/analyze_command.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <ostream>

#include "agent/forensics/incident_timeline.h"
#include "agent/forensics/timeline_render.h"

namespace lockwatch::forensics {
namespace {

constexpr int kDefaultWidth = 100;

int TextWidth(const AnalyzeCommandOptions& options, const app::TerminalInfo& terminal) {
  if (options.width > 0) return options.width;
  int width = kDefaultWidth;
  // A narrower terminal wins; a wider one does not make the report wider (it stays readable).
  if (terminal.stdout_is_tty) {
    if (terminal.env_columns) width = std::min(width, *terminal.env_columns);
    if (terminal.tty_columns) width = std::min(width, *terminal.tty_columns);
  }
  return std::max(width, 40);
}

}  // namespace

int RunAnalyze(const AnalyzeCommandOptions& options, app::CliContext& context) {
  std::ostream& err = *context.err;
  try {
    core::Result<Timeline> timeline = ReadTimeline(options.file);
    if (!timeline.ok()) {
      err << "lockwatch analyze: " << timeline.status().message() << "\n";
      return app::kExitError;
    }
    const Timeline& t = timeline.value();
    if (options.json) {
      for (const std::string& w : t.warnings)
        err << "lockwatch analyze: warning: " << options.file << ": " << w << "\n";
      // Strings come from the file: replace anything that is not UTF-8 rather than throw.
      *context.out
          << TimelineJson(t, options.file).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
          << "\n";
    } else {
      TimelineTextOptions text;
      text.width = TextWidth(options, context.terminal);
      *context.out << RenderTimelineText(t, options.file, text);
    }
    context.out->flush();
    return app::kExitOk;
  } catch (const std::exception& e) {
    err << "lockwatch analyze: " << options.file << ": " << e.what() << "\n";
    return app::kExitError;
  }
}

void AddAnalyzeCommand(CLI::App& app, app::CliContext& context) {
  auto options = std::make_shared<AnalyzeCommandOptions>();
  CLI::App* analyze =
      app.add_subcommand("analyze", "Show the incident recorded in a dump file as a timeline");
  analyze->add_option("file", options->file, "Dump file (.dump.gz, or a .partial left by a stopped writer)")
      ->required();
  analyze->add_flag("--json", options->json, "Print a JSON document instead of text (see docs/analyze.md)");
  analyze
      ->add_option("--width", options->width, "Text width in columns (default: 100, or a narrower terminal)")
      ->check(CLI::Range(40, 1000));
  analyze->callback([options, &context]() { context.exit_code = RunAnalyze(*options, context); });
}

}  // namespace lockwatch::forensics
