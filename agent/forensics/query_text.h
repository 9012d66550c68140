#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lockwatch::forensics {

// What a dump keeps of a session's query text.
enum class QueryTextMode {
  kKeep,       // the text as pg_stat_activity showed it
  kNormalize,  // constants replaced: by libpg_query ($1, $2, ...) or, when the text does not parse
               // (truncated by track_activity_query_size, not SQL), by RedactLiterals ('?')
  kDrop,       // no text at all; only the fingerprint
};

// "keep", "normalize", "drop".
const char* QueryTextModeName(QueryTextMode mode);
std::optional<QueryTextMode> ParseQueryTextMode(std::string_view name);

// How a QueryText was produced.
enum class QueryTextMethod { kKept, kParser, kRedacted, kDropped };

struct QueryText {
  std::optional<std::string> text;  // nullopt when dropped
  QueryTextMethod method = QueryTextMethod::kKept;
  // Hex of libpg_query's fingerprint (same statement shape -> same value, constants ignored). When the text
  // does not parse, the fingerprint of its redacted form, or failing that a 64-bit FNV-1a hash of the
  // redacted text prefixed "r:" (so it is never mistaken for a parser fingerprint). "" for empty text.
  std::string fingerprint;
};

// Applies `mode` to one query text. Never fails; safe for any bytes.
QueryText ProcessQueryText(std::string_view query, QueryTextMode mode);

// Replaces string literals ('...', E'...', B'...', X'...', U&'...', $tag$...$tag$) and numeric literals
// with '?'; an unterminated literal (truncated text) is replaced up to the end. Identifiers, "quoted
// identifiers", $n parameters and keywords are kept. Comments are removed (they may carry data).
std::string RedactLiterals(std::string_view query);

// libpg_query's fingerprint as hex, or nullopt when the text does not parse.
std::optional<std::string> ParserFingerprint(std::string_view query);

}  // namespace lockwatch::forensics
