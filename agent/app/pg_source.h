#pragma once

#include <memory>
#include <string>

#include "agent/app/cli_context.h"

namespace lockwatch::app {

// A SnapshotSource reading a live server through pg::Collector (one pinned connection).
std::unique_ptr<SnapshotSource> MakePgSnapshotSource(const std::string& dsn);

}  // namespace lockwatch::app
