// Fuzzes the snapshot decoder (pg::DecodeSnapshot, pg::DecodeRelationNames) and, on success, the analysis
// and tree rendering of the decoded snapshot.
//
// Input format (seeds in corpus/pg_decode_fuzz/ follow it):
//   byte 0      bits 0..6: server version index into kVersions (modulo); bit 7: decode relation-name rows
//               instead of a snapshot result
//   rest        rows separated by '\n', cells separated by '\t', the cell "\N" is SQL NULL. When the first
//               line starts with '#', the rest of that line is the column header; otherwise the header is
//               the one the server sends (kind, c1..c18, or oid, name).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/analysis.h"
#include "agent/core/tree_render.h"
#include "agent/pg/decode.h"
#include "agent/pg/queries.h"
#include "agent/pg/row_set.h"

namespace {

constexpr std::array<int, 7> kVersions = {120000, 130000, 140000, 150000, 160000, 170000, 180000};

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t pos = text.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, pos - start));
    start = pos + 1;
  }
}

lockwatch::pg::RowSet ParseRows(std::string_view text, bool relation_names) {
  lockwatch::pg::RowSet rows;
  std::vector<std::string_view> lines = Split(text, '\n');
  size_t first = 0;
  if (!lines.empty() && !lines[0].empty() && lines[0][0] == '#') {
    for (std::string_view name : Split(lines[0].substr(1), '\t')) rows.columns.emplace_back(name);
    first = 1;
  } else if (relation_names) {
    rows.columns = {"oid", "name"};
  } else {
    rows.columns.emplace_back("kind");
    for (size_t i = 1; i <= lockwatch::pg::kPayloadColumns; ++i)
      rows.columns.push_back("c" + std::to_string(i));
  }
  for (size_t i = first; i < lines.size(); ++i) {
    if (lines[i].empty() && i + 1 == lines.size()) break;  // trailing newline
    std::vector<std::optional<std::string>> row;
    for (std::string_view cell : Split(lines[i], '\t')) {
      if (cell == "\\N") {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(cell));
      }
    }
    rows.rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool relation_names = (data[0] & 0x80U) != 0;
  const int version = kVersions[(data[0] & 0x7FU) % kVersions.size()];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const lockwatch::pg::RowSet rows = ParseRows(text, relation_names);

  if (relation_names) {
    (void)lockwatch::pg::DecodeRelationNames(rows);
    return 0;
  }
  lockwatch::pg::PollMeta meta;
  lockwatch::core::Result<lockwatch::core::Snapshot> snapshot =
      lockwatch::pg::DecodeSnapshot(rows, version, &meta);
  if (!snapshot.ok()) return 0;
  const lockwatch::core::Report report = lockwatch::core::Analyze(snapshot.value());
  (void)lockwatch::core::RenderTree(snapshot.value(), report, lockwatch::core::TreeRenderOptions{});
  return 0;
}
