#include "agent/agent/run_command.h"

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "agent/agent/agent.h"
#include "agent/agent/log.h"
#include "agent/agent/shutdown.h"
#include "agent/config/config.h"
#include "agent/pg/dsn.h"

#ifndef LOCKWATCH_VERSION
#define LOCKWATCH_VERSION "unknown"
#endif
#ifndef LOCKWATCH_REVISION
#define LOCKWATCH_REVISION "unknown"
#endif

namespace lockwatch::agent {
namespace {

struct RunFlags {
  std::string config_path;
  config::ConfigOverrides overrides;
};

void RunAgent(const RunFlags& flags) {
  // Signals are blocked before any thread exists so that every thread inherits the mask and only the main
  // thread's sigtimedwait() ever sees them.
  SignalWaiter signals;
  config::AgentConfig cfg;
  if (!flags.config_path.empty()) {
    core::Result<config::AgentConfig> loaded = config::LoadAgentConfig(flags.config_path);
    if (!loaded.ok()) {
      std::cerr << "lockwatch run: " << loaded.status().message() << "\n";
      throw CLI::RuntimeError(2);
    }
    cfg = std::move(loaded).value();
  }
  core::Status applied = config::ApplyOverrides(flags.overrides, &cfg);
  if (!applied.ok()) {
    std::cerr << "lockwatch run: " << applied.message() << "\n";
    throw CLI::RuntimeError(2);
  }
  SetupLogging(cfg.log);
  Log(spdlog::level::info, "lockwatch agent starting",
      {{"version", LOCKWATCH_VERSION},
       {"revision", LOCKWATCH_REVISION},
       {"config", flags.config_path.empty() ? "(none)" : flags.config_path}});

  auto agent = std::make_unique<Agent>(cfg, flags.config_path, flags.overrides,
                                       metrics::BuildInfo{LOCKWATCH_VERSION, LOCKWATCH_REVISION});
  const int code = agent->Run(&signals);
  if (agent->abandoned_pollers()) {
    // A poll is stuck on an unresponsive server; its thread still uses the agent's state, so no destructor
    // may run. The logs are flushed; leave now with the intended code.
    spdlog::default_logger()->flush();
    std::cerr.flush();
    std::_Exit(code);
  }
  agent.reset();
  spdlog::default_logger()->flush();
  if (code != 0) throw CLI::RuntimeError(code);
}

}  // namespace

void AddRunCommand(CLI::App& app) {
  auto flags = std::make_shared<RunFlags>();
  CLI::App* run =
      app.add_subcommand("run", "Run the monitoring agent: poll targets, serve Prometheus metrics");
  run->add_option("-c,--config", flags->config_path, "YAML config file (see agent.md); reloaded on SIGHUP");
  run->add_option_function<std::string>(
      "--dsn", [flags](const std::string& v) { flags->overrides.dsn = v; },
      "libpq conninfo or URI of one target named \"default\" (replaces the file's targets); "
      "use PGPASSFILE/PGPASSWORD or password_file for passwords");
  run->add_option_function<std::string>(
      "--listen", [flags](const std::string& v) { flags->overrides.listen = v; },
      std::string("metrics address host:port (default ") + config::kDefaultListen + ")");
  run->add_option_function<std::string>(
      "--interval", [flags](const std::string& v) { flags->overrides.interval = v; },
      "poll interval, e.g. 500ms, 1s, 2m (default 1s)");
  run->add_option_function<std::string>(
      "--web.config.file", [flags](const std::string& v) { flags->overrides.web_config_file = v; },
      "exporter-toolkit web config (TLS, basic auth)");
  run->add_flag_function(
      "--enforce", [flags](int64_t count) { flags->overrides.enforce = count > 0; },
      "send the signals remediation rules decide; also needs remediation.enforce: true in the config "
      "(otherwise everything is a dry run)");
  run->add_option_function<std::string>(
      "--dump-dir", [flags](const std::string& v) { flags->overrides.dump_dir = v; },
      "directory for incident dumps (default /var/lib/lockwatch/dumps; created with mode 0700)");
  // The application may already define --log-level/--log-format globally (they fall through to
  // subcommands); then the global values are read when `run` starts instead of defining the flags twice.
  CLI::App* parent = &app;
  const bool global_log_flags = app.get_option_no_throw("--log-level") != nullptr;
  if (!global_log_flags) {
    run->add_option_function<std::string>(
        "--log-level", [flags](const std::string& v) { flags->overrides.log_level = v; },
        "trace, debug, info, warn, error, critical or off (default info)");
    run->add_option_function<std::string>(
        "--log-format", [flags](const std::string& v) { flags->overrides.log_format = v; },
        "text or json (default text)");
  }
  run->callback([flags, parent, global_log_flags]() {
    if (global_log_flags) {
      const CLI::Option* level = parent->get_option_no_throw("--log-level");
      const CLI::Option* format = parent->get_option_no_throw("--log-format");
      if (level != nullptr && level->count() > 0) flags->overrides.log_level = level->as<std::string>();
      if (format != nullptr && format->count() > 0) flags->overrides.log_format = format->as<std::string>();
    }
    RunAgent(*flags);
  });
}

}  // namespace lockwatch::agent
