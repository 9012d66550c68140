#pragma once

#include <nlohmann/json.hpp>

#include "agent/core/analysis.h"
#include "agent/core/snapshot.h"

namespace lockwatch::json {

// Version of the document TreeDocument builds. Within one version fields are only ever added; a removal, a
// rename or a change of type or meaning bumps it. Documented in agent/docs/json-schema.md.
inline constexpr int kTreeSchemaVersion = 1;

// The `lockwatch tree --json` document: the snapshot's sessions and prepared transactions, and the report's
// edges, roots, cycles and waiters. Pure. Timestamps are ISO-8601 UTC strings (or null), xids integers (or
// null), lock modes pg_locks names.
nlohmann::json TreeDocument(const core::Snapshot& snapshot, const core::Report& report);

}  // namespace lockwatch::json
