#pragma once

#include <string>
#include <utility>
#include <vector>

#include "agent/core/status.h"

namespace lockwatch::pg {

// A parsed connection string: the libpq keywords that were set, in libpq's order.
struct ConnParams {
  std::vector<std::pair<std::string, std::string>> values;
};

// Validates a libpq conninfo string or postgres:// URI with libpq itself (empty = PG* environment).
// On error the message says which part is wrong and never contains the password.
core::Result<ConnParams> ParseDsn(const std::string& dsn);

// The DSN with any password removed ("password=***" / "user:***@"), safe for logs and errors. Works on
// unparseable input too.
std::string RedactDsn(const std::string& dsn);

}  // namespace lockwatch::pg
