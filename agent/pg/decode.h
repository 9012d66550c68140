#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/snapshot.h"
#include "agent/core/status.h"
#include "agent/pg/row_set.h"

namespace lockwatch::pg {

// Facts of the snapshot statement's meta row that are about the poll rather than the server state.
struct PollMeta {
  uint32_t database_oid = 0;  // oid of core::Snapshot::current_database
  int64_t elapsed_us = 0;     // server time from statement start to the last row (clock_timestamp delta)
};

// Decodes the result of SnapshotSql(server_version_num) (layout in queries.h). Strict: any malformed row
// (wrong column count or names, unknown kind, a bad or out-of-range integer, a bad boolean, an unknown
// lock mode, a NULL where the server never sends one, a value in a column the kind does not use, a
// missing or duplicated meta row, a version mismatch) gives Status::Corrupt whose message names the row
// number (0-based) and the field. Never throws, never crashes, on any input. `meta` may be null.
core::Result<core::Snapshot> DecodeSnapshot(const RowSet& rows, int server_version_num,
                                            PollMeta* meta = nullptr);

// Decodes the result of RelationNamesSql(): (oid, name) rows. Strict like DecodeSnapshot.
core::Result<std::vector<std::pair<uint32_t, std::string>>> DecodeRelationNames(const RowSet& rows);

}  // namespace lockwatch::pg
