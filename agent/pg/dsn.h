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

// A libpq keyword=value conninfo string with every value single-quoted and escaped, so any value
// (spaces, quotes, backslashes, '=') round-trips through libpq unchanged.
std::string ToConninfo(const ConnParams& params);

// Sets `key` to `value`: replaces an existing entry when `override` is true, otherwise only adds it when
// the key is absent.
void SetParam(ConnParams* params, const std::string& key, const std::string& value, bool override);

// The value of `key`, or nullptr.
const std::string* FindParam(const ConnParams& params, const std::string& key);

// `message` with every password that `dsn` contains replaced by "***" (and the whole DSN replaced by its
// redacted form), for error texts that may echo the input.
std::string ScrubSecrets(const std::string& message, const std::string& dsn);

// The DSN with any password removed ("password=***" / "user:***@"), safe for logs and errors. Works on
// unparseable input too.
std::string RedactDsn(const std::string& dsn);

}  // namespace lockwatch::pg
