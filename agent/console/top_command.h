#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "agent/app/cli_context.h"
#include "agent/console/top_model.h"
#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"
#include "agent/core/status.h"

namespace lockwatch::console {

struct TopOptions {
  std::string dsn;                // "" = PG* environment
  double interval_seconds = 1.0;  // --interval
  bool once = false;              // --once: one plain-text frame, then exit
  int count = 0;                  // --count N: plain-text frames to print (0 = until interrupted)
  bool allow_superuser = false;   // --allow-superuser: superuser sessions may be cancelled/terminated
  bool no_color = false;          // --no-color
  std::optional<int> width;       // --width for plain-text frames
  std::string dump_dir = ".";     // --dump-dir: where `w` writes dumps
};

// Sends a confirmed cancel/terminate with the race-free statement and says what happened, in one line.
class SessionSignaller {
 public:
  virtual ~SessionSignaller() = default;
  virtual std::string Signal(const SignalEffect& effect, bool allow_superuser) = 0;
};

// The outside world of `top`, replaceable in tests. Defaults (MakeDefaultTopDependencies) use pg::Actuator
// and the forensics dump writer.
struct TopDependencies {
  std::function<std::unique_ptr<SessionSignaller>(const std::string& dsn)> signaller;
  // Writes a one-snapshot dump into `dir`; returns the path or an error.
  std::function<core::Result<std::string>(const core::Snapshot&, const core::Report&,
                                          const std::string& redacted_dsn, const std::string& dir)>
      dump;
};
TopDependencies MakeDefaultTopDependencies();

// Runs the view. On a terminal (stdin and stdout) it is interactive until `q`, SIGINT or SIGTERM, and the
// terminal is restored on every exit path; otherwise (or with --once / --count) it prints plain-text frames
// (every tree expanded) to context.out, one per interval. Returns kExitOk, kExitConnectionFailed when the
// first connection fails (or, in plain mode, a poll loses the connection), kExitError otherwise.
int RunTop(const TopOptions& options, app::CliContext& context, const TopDependencies& deps);

// Adds `top` to the CLI; the callback stores RunTop's status in context.exit_code. `context` must outlive
// app.parse().
void AddTopCommand(CLI::App& app, app::CliContext& context);

}  // namespace lockwatch::console
