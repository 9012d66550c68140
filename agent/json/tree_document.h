#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/analysis.h"
#include "agent/core/explain.h"
#include "agent/core/snapshot.h"

namespace lockwatch::json {

// Version of the document TreeDocument builds. Within one version fields are only ever added; a removal, a
// rename or a change of type or meaning bumps it. Documented in agent/docs/json-schema.md.
inline constexpr int kTreeSchemaVersion = 1;

// The snapshot's sessions and prepared transactions, and the report's edges, roots, cycles and waiters. Pure.
// Timestamps are ISO-8601 UTC strings (or null), xids integers (or null), lock modes pg_locks names. This
// form has no "explanations" key (dump records are built from it).
nlohmann::json TreeDocument(const core::Snapshot& snapshot, const core::Report& report);
// The `lockwatch tree --json` document: the above plus "explanations" (normally core::Explain(snapshot,
// report)), one ExplanationJson each, in the given order.
nlohmann::json TreeDocument(const core::Snapshot& snapshot, const core::Report& report,
                            const std::vector<core::Explanation>& explanations);

// One explanation as it appears in the document's "explanations" array (also for hook payloads):
// {"kind", "root_pid", "root_gid", "pids", "situation", "remedy"}.
nlohmann::json ExplanationJson(const core::Explanation& explanation);

}  // namespace lockwatch::json
