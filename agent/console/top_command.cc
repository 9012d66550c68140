#include "agent/console/top_command.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "agent/console/top_terminal.h"
#include "agent/core/arrivals.h"
#include "agent/core/explain.h"
#include "agent/forensics/dump_command.h"
#include "agent/forensics/query_text.h"
#include "agent/pg/actuator.h"

namespace lockwatch::console {
namespace {

using Clock = std::chrono::steady_clock;

class PgSignaller : public SessionSignaller {
 public:
  explicit PgSignaller(const std::string& dsn) : actuator_(dsn) {}

  std::string Signal(const SignalEffect& effect, bool allow_superuser) override {
    pg::SignalRequest request;
    request.victim = effect.victim;
    request.kind =
        effect.action == core::ActionKind::kTerminate ? pg::SignalKind::kTerminate : pg::SignalKind::kCancel;
    request.allow_superuser = allow_superuser;
    const std::string what =
        std::string(pg::SignalKindName(request.kind)) + " pid " + std::to_string(effect.victim.pid);
    core::Result<pg::SignalOutcome> outcome = actuator_.Signal(request);
    // The actuator's connection is only needed for the moment of the signal.
    actuator_.Disconnect();
    if (!outcome.ok()) return what + ": not sent: " + outcome.status().message();
    const pg::SignalOutcome& o = outcome.value();
    std::string text = what + ": " + pg::SignalResultName(o.result);
    if (!o.message.empty()) text += " (" + o.message + ")";
    return text;
  }

 private:
  pg::Actuator actuator_;
};

core::Result<std::string> WriteDump(const core::Snapshot& snapshot, const core::Report& report,
                                    const std::string& redacted_dsn, const std::string& dir) {
  const std::string target = forensics::TargetName(redacted_dsn, snapshot.current_database);
  const std::string path = (dir.empty() ? std::string(".") : dir) + "/" +
                           forensics::DefaultDumpFileName(target, snapshot.captured_at_us);
  const core::Status written =
      forensics::WriteManualDump(snapshot, report, target, path, forensics::QueryTextMode::kNormalize);
  if (!written.ok()) return written;
  return path;
}

// One analysed poll and everything derived from it; owns what a TopFrame points to.
struct Refresh {
  core::Snapshot snapshot;
  core::Report report;
  std::vector<core::Explanation> explanations;
  core::ArrivalStats arrivals;
  std::map<core::NodeRef, int> previous_blocked;
  bool has_previous = false;

  TopFrame Frame(const std::string& target, double interval) const {
    TopFrame frame;
    frame.snapshot = &snapshot;
    frame.report = &report;
    frame.explanations = &explanations;
    frame.arrivals = &arrivals;
    frame.previous_blocked = previous_blocked;
    frame.has_previous = has_previous;
    frame.target = target;
    frame.interval_seconds = interval;
    return frame;
  }
};

class Poller {
 public:
  explicit Poller(std::unique_ptr<app::SnapshotSource> source) : source_(std::move(source)) {}

  core::Status Connect() {
    connected_ = false;
    core::Status status = source_->Connect();
    connected_ = status.ok();
    return status;
  }

  // Polls (reconnecting when the last attempt lost the connection) and analyses.
  core::Status Next(Refresh& out) {
    if (!connected_) {
      core::Status status = Connect();
      if (!status.ok()) return status;
    }
    core::Result<core::Snapshot> polled = source_->Poll();
    if (!polled.ok()) {
      if (polled.status().code() == core::Status::Code::kUnavailable) connected_ = false;
      return polled.status();
    }
    std::map<core::NodeRef, int> previous;
    for (const core::Root& r : last_report_.roots) previous[r.node] = r.blocked_sessions;
    out.has_previous = has_previous_;
    out.previous_blocked = std::move(previous);
    out.snapshot = std::move(polled.value());
    out.report = core::Analyze(out.snapshot);
    out.explanations = core::Explain(out.snapshot, out.report);
    tracker_.Observe(out.snapshot);
    out.arrivals = tracker_.Stats();
    last_report_ = out.report;
    has_previous_ = true;
    return core::Status::Ok();
  }

  std::string target() const {
    const std::string dsn = source_->redacted_dsn();
    return dsn.empty() ? "PG* environment" : dsn;
  }
  std::string redacted_dsn() const { return source_->redacted_dsn(); }

 private:
  std::unique_ptr<app::SnapshotSource> source_;
  bool connected_ = false;
  core::ArrivalTracker tracker_;
  core::Report last_report_;
  bool has_previous_ = false;
};

// Plain-text frames: every tree expanded, no height limit.
int RunPlain(const TopOptions& options, app::CliContext& context, Poller& poller) {
  std::ostream& out = *context.out;
  const int width = options.width.value_or(
      context.terminal.env_columns.value_or(context.terminal.tty_columns.value_or(120)));
  const bool color = !options.no_color && !context.terminal.no_color_env && context.terminal.stdout_is_tty;
  const int frames = options.once ? 1 : options.count;
  const auto interval = std::chrono::duration<double>(options.interval_seconds);
  for (int n = 0; frames == 0 || n < frames; ++n) {
    const auto started = Clock::now();
    Refresh refresh;
    const core::Status status = poller.Next(refresh);
    if (!status.ok()) {
      *context.err << "lockwatch top: cannot read " << poller.target() << ": " << status.message() << "\n";
      return status.code() == core::Status::Code::kUnavailable ? app::kExitConnectionFailed : app::kExitError;
    }
    TopState state;
    state.own_pid = refresh.snapshot.own_pid;
    for (const core::Edge& e : refresh.report.edges) state.expanded.insert(e.blocker);
    if (n > 0) out << "\n";
    for (const std::string& line :
         RenderTop(refresh.Frame(poller.target(), options.interval_seconds), state, width, 0, color)) {
      out << line << "\n";
    }
    out.flush();
    if (frames != 0 && n + 1 >= frames) break;
    while (Clock::now() - started < interval) {
      if (TopStopRequested()) return app::kExitOk;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (TopStopRequested()) return app::kExitOk;
  }
  return app::kExitOk;
}

int RunInteractive(const TopOptions& options, app::CliContext& context, Poller& poller,
                   TerminalScreen& screen, const TopDependencies& deps) {
  const bool color = !options.no_color && !context.terminal.no_color_env;
  const auto interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.interval_seconds));
  TopState state;
  state.allow_superuser = options.allow_superuser;
  std::unique_ptr<Refresh> current;
  std::string poll_error;
  auto next_poll = Clock::now();
  for (;;) {
    if (TopStopRequested()) return app::kExitOk;
    if (Clock::now() >= next_poll) {
      next_poll = Clock::now() + interval;
      auto refresh = std::make_unique<Refresh>();
      const core::Status status = poller.Next(*refresh);
      if (status.ok()) {
        current = std::move(refresh);
        state.own_pid = current->snapshot.own_pid;
        poll_error.clear();
      } else {
        poll_error = "cannot read " + poller.target() + ": " + status.message() + " (retrying)";
      }
    }
    TakeTopResized();
    const int width = screen.columns();
    const int height = screen.rows();
    if (current == nullptr) {
      screen.Draw({"lockwatch top | " + poller.target(), poll_error.empty() ? "connecting..." : poll_error});
    } else {
      const TopFrame frame = current->Frame(poller.target(), options.interval_seconds);
      TopState shown = state;
      if (!poll_error.empty() && shown.message.empty()) shown.message = poll_error;
      screen.Draw(RenderTop(frame, shown, width, height, color));
    }
    const auto wait = std::max(Clock::duration::zero(), next_poll - Clock::now());
    const std::vector<Key> keys = screen.ReadKeys(
        std::chrono::duration_cast<std::chrono::milliseconds>(wait) + std::chrono::milliseconds(1));
    if (current == nullptr) {
      for (const Key& k : keys) {
        if (k.code == Key::Code::kChar && k.ch == 'q') return app::kExitOk;
      }
      continue;
    }
    const TopFrame frame = current->Frame(poller.target(), options.interval_seconds);
    for (const Key& key : keys) {
      const TopEffect effect = HandleKey(state, key, frame, std::max(1, height - 5));
      if (effect.quit) return app::kExitOk;
      if (effect.dump) {
        core::Result<std::string> path =
            deps.dump(current->snapshot, current->report, poller.redacted_dsn(), options.dump_dir);
        state.message =
            path.ok() ? "dump written: " + path.value() : "dump failed: " + path.status().message();
      }
      if (effect.signal) {
        std::unique_ptr<SessionSignaller> signaller = deps.signaller(options.dsn);
        state.message = signaller->Signal(*effect.signal, options.allow_superuser);
        next_poll = Clock::now();  // show the effect at once
      }
    }
  }
}

}  // namespace

TopDependencies MakeDefaultTopDependencies() {
  TopDependencies deps;
  deps.signaller = [](const std::string& dsn) -> std::unique_ptr<SessionSignaller> {
    return std::make_unique<PgSignaller>(dsn);
  };
  deps.dump = WriteDump;
  return deps;
}

int RunTop(const TopOptions& options, app::CliContext& context, const TopDependencies& deps) {
  std::ostream& err = *context.err;
  if (options.interval_seconds < 0.1) {
    err << "lockwatch top: --interval must be at least 0.1 seconds\n";
    return app::kExitError;
  }
  InstallTopSignalHandlers();
  try {
    Poller poller(context.snapshot_source(options.dsn));
    const core::Status connected = poller.Connect();
    if (!connected.ok()) {
      err << "lockwatch top: cannot connect to " << poller.target() << ": " << connected.message() << "\n";
      return app::kExitConnectionFailed;
    }
    const bool plain = options.once || options.count > 0 || !context.terminal.stdout_is_tty;
    if (!plain) {
      core::Result<std::unique_ptr<TerminalScreen>> screen =
          TerminalScreen::Open(STDIN_FILENO, STDOUT_FILENO);
      if (screen.ok()) {
        // Log lines would tear the screen apart: silence them while it is shown.
        const spdlog::level::level_enum level = spdlog::get_level();
        spdlog::set_level(spdlog::level::off);
        int code = app::kExitError;
        try {
          code = RunInteractive(options, context, poller, *screen.value(), deps);
        } catch (...) {
          screen.value()->Restore();
          spdlog::set_level(level);
          throw;
        }
        screen.value()->Restore();
        spdlog::set_level(level);
        return code;
      }
    }
    return RunPlain(options, context, poller);
  } catch (const std::exception& e) {
    err << "lockwatch top: " << e.what() << "\n";
    return app::kExitError;
  }
}

void AddTopCommand(CLI::App& app, app::CliContext& context) {
  auto options = std::make_shared<TopOptions>();
  CLI::App* top = app.add_subcommand(
      "top",
      "Live view of the blocking forest: roots by impact, explanations, arrivals; cancel or terminate");
  top->add_option("--dsn", options->dsn, "libpq conninfo or postgres:// URI (default: PG* environment)")
      ->envname("LOCKWATCH_DSN");
  top->add_option("--interval", options->interval_seconds, "Seconds between refreshes (default 1)")
      ->check(CLI::Range(0.1, 3600.0));
  top->add_flag("--once", options->once, "Print one plain-text frame and exit");
  top->add_option("--count", options->count, "Print N plain-text frames, one per interval, and exit")
      ->check(CLI::Range(1, 1000000));
  top->add_flag("--allow-superuser", options->allow_superuser,
                "Allow cancelling/terminating superuser sessions (refused by default)");
  top->add_flag("--no-color", options->no_color, "Never use colours (also: NO_COLOR environment variable)");
  top->add_option("--width", options->width, "Width of plain-text frames (default: $COLUMNS or 120)")
      ->check(CLI::Range(20, 100000));
  top->add_option("--dump-dir", options->dump_dir, "Directory for dumps written with the w key (default .)");
  top->callback(
      [options, &context]() { context.exit_code = RunTop(*options, context, MakeDefaultTopDependencies()); });
}

}  // namespace lockwatch::console
