#pragma once

#include <optional>
#include <string>
#include <vector>

namespace lockwatch::pg {

// A query result in text form, as the server sent it: column names and, per row, one value per column
// (nullopt = SQL NULL). The decoders take this instead of a libpqxx result so they can be tested and
// fuzzed without a server.
struct RowSet {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
};

}  // namespace lockwatch::pg
