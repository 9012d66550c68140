#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/snapshot.h"
#include "agent/core/status.h"

namespace CLI {
class App;
}  // namespace CLI

namespace lockwatch::app {

// Options accepted before or after any subcommand.
struct GlobalOptions {
  std::string log_level;            // "" = the command's default (warn for one-shot commands)
  std::string log_format = "text";  // "text" | "json"
};

// What the process knows about where stdout goes. Filled from the real terminal by Main, by hand in tests.
struct TerminalInfo {
  bool stdout_is_tty = false;
  std::optional<int> env_columns;  // $COLUMNS, when set to a positive integer
  std::optional<int> tty_columns;  // ioctl(TIOCGWINSZ) on stdout, when it is a terminal
  bool no_color_env = false;       // $NO_COLOR set to a non-empty value (https://no-color.org)
};

// One source of snapshots (a PostgreSQL server in production, a fixture in tests). Not thread-safe.
class SnapshotSource {
 public:
  virtual ~SnapshotSource() = default;
  // Errors: as pg::Collector::Connect (kInvalidArgument, kUnavailable, kPermissionDenied).
  virtual core::Status Connect() = 0;
  virtual core::Result<core::Snapshot> Poll() = 0;
  // The target with any password removed, for messages.
  virtual std::string redacted_dsn() const = 0;
};

// Makes a source for a DSN (libpq conninfo or URI; "" = PG* environment). Never connects by itself.
using SnapshotSourceFactory = std::function<std::unique_ptr<SnapshotSource>(const std::string& dsn)>;

// Shared state of one CLI invocation: the composition root fills the dependencies, subcommands read them and
// report their exit status. Streams are borrowed and must outlive the invocation.
// Registers one more subcommand on the CLI (commands whose dependencies the composition root owns, such as
// `run`, which needs the whole agent).
using CommandRegistrar = std::function<void(CLI::App& app)>;

struct CliContext {
  GlobalOptions global;
  std::vector<CommandRegistrar> commands;
  TerminalInfo terminal;
  SnapshotSourceFactory snapshot_source;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  int exit_code = 0;
};

// Exit statuses shared by the commands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitConnectionFailed = 2;

}  // namespace lockwatch::app
