#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/app/cli_context.h"
#include "agent/core/status.h"

namespace lockwatch::app {

// Accepted --log-level values, most verbose first.
const std::vector<std::string>& LogLevelNames();

// Installs the process-wide logger: stderr, UTC timestamps, plain text or one JSON object per line
// ({"ts","level","msg"}, as the agent's own log lines). `default_level` applies when --log-level was not
// given. Errors: kInvalidArgument for an unknown level or format. Call once, before any thread logs.
core::Status ConfigureLogging(const GlobalOptions& options, std::string_view default_level);

}  // namespace lockwatch::app
