#include "agent/forensics/query_text.h"

#include <cstdint>
#include <cstdio>

#include <pg_query.h>

namespace lockwatch::forensics {
namespace {

bool IsIdentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// End of a single-quoted literal starting at `open` (the quote); text.size() when unterminated.
size_t EndOfQuoted(std::string_view text, size_t open, bool backslash_escapes) {
  size_t i = open + 1;
  while (i < text.size()) {
    if (backslash_escapes && text[i] == '\\') {
      i += 2;
      continue;
    }
    if (text[i] == '\'') {
      if (i + 1 < text.size() && text[i + 1] == '\'') {
        i += 2;
        continue;
      }
      return i + 1;
    }
    ++i;
  }
  return text.size();
}

// If a dollar-quote tag ($$ or $tag$) opens at `i`, its length; 0 otherwise ($1 is a parameter).
size_t DollarTagLength(std::string_view text, size_t i) {
  size_t j = i + 1;
  if (j < text.size() && IsDigit(text[j])) return 0;
  while (j < text.size() && text[j] != '$') {
    if (!IsIdentChar(text[j])) return 0;
    ++j;
  }
  return j < text.size() ? j - i + 1 : 0;
}

std::string Fnv1aHex(std::string_view text) {
  uint64_t h = 14695981039346656037ULL;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "r:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::optional<std::string> ParserNormalize(std::string_view query) {
  const std::string copy(query);  // libpg_query wants a NUL-terminated string
  PgQueryNormalizeResult result = pg_query_normalize(copy.c_str());
  std::optional<std::string> out;
  if (result.error == nullptr && result.normalized_query != nullptr)
    out = std::string(result.normalized_query);
  pg_query_free_normalize_result(result);
  return out;
}

}  // namespace

const char* QueryTextModeName(QueryTextMode mode) {
  switch (mode) {
    case QueryTextMode::kKeep:
      return "keep";
    case QueryTextMode::kNormalize:
      return "normalize";
    case QueryTextMode::kDrop:
      return "drop";
  }
  return "unknown";
}

std::optional<QueryTextMode> ParseQueryTextMode(std::string_view name) {
  if (name == "keep") return QueryTextMode::kKeep;
  if (name == "normalize") return QueryTextMode::kNormalize;
  if (name == "drop") return QueryTextMode::kDrop;
  return std::nullopt;
}

std::string RedactLiterals(std::string_view q) {
  std::string out;
  out.reserve(q.size());
  size_t i = 0;
  while (i < q.size()) {
    const char c = q[i];
    const bool after_ident = i > 0 && IsIdentChar(q[i - 1]);
    if (c == '-' && i + 1 < q.size() && q[i + 1] == '-') {
      while (i < q.size() && q[i] != '\n') ++i;
      out += ' ';
      continue;
    }
    if (c == '/' && i + 1 < q.size() && q[i + 1] == '*') {
      const size_t end = q.find("*/", i + 2);
      i = end == std::string_view::npos ? q.size() : end + 2;
      out += ' ';
      continue;
    }
    if (c == '"') {  // quoted identifier: kept as is
      size_t end = q.find('"', i + 1);
      end = end == std::string_view::npos ? q.size() : end + 1;
      out.append(q.substr(i, end - i));
      i = end;
      continue;
    }
    if (c == '\'') {
      // A literal prefix (E, B, X, N, U&) was copied already as an identifier character; take it back.
      bool backslash = false;
      const size_t n = out.size();
      auto prefix_at = [&](size_t len) { return n >= len && (n == len || !IsIdentChar(out[n - len - 1])); };
      if (n >= 2 && out[n - 1] == '&' && (out[n - 2] == 'U' || out[n - 2] == 'u') && prefix_at(2)) {
        out.resize(n - 2);
      } else if (n >= 1 && prefix_at(1)) {
        const char p = out[n - 1];
        if (p == 'E' || p == 'e' || p == 'B' || p == 'b' || p == 'X' || p == 'x' || p == 'N' || p == 'n') {
          backslash = p == 'E' || p == 'e';
          out.resize(n - 1);
        }
      }
      i = EndOfQuoted(q, i, backslash);
      out += '?';
      continue;
    }
    if (c == '$' && !after_ident) {
      const size_t tag = DollarTagLength(q, i);
      if (tag > 0) {
        const size_t end = q.find(q.substr(i, tag), i + tag);
        i = end == std::string_view::npos ? q.size() : end + tag;
        out += '?';
        continue;
      }
    }
    if ((IsDigit(c) || (c == '.' && i + 1 < q.size() && IsDigit(q[i + 1]))) && !after_ident) {
      while (i < q.size() && (IsIdentChar(q[i]) || q[i] == '.' ||
                              ((q[i] == '+' || q[i] == '-') && (q[i - 1] == 'e' || q[i - 1] == 'E')))) {
        ++i;
      }
      out += '?';
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

std::optional<std::string> ParserFingerprint(std::string_view query) {
  const std::string copy(query);
  PgQueryFingerprintResult result = pg_query_fingerprint(copy.c_str());
  std::optional<std::string> out;
  if (result.error == nullptr && result.fingerprint_str != nullptr) out = std::string(result.fingerprint_str);
  pg_query_free_fingerprint_result(result);
  return out;
}

QueryText ProcessQueryText(std::string_view query, QueryTextMode mode) {
  QueryText out;
  if (query.empty()) {
    out.text = mode == QueryTextMode::kDrop ? std::nullopt : std::optional<std::string>("");
    out.method = mode == QueryTextMode::kDrop ? QueryTextMethod::kDropped : QueryTextMethod::kKept;
    return out;
  }
  // Embedded NULs cannot reach libpg_query (C strings); such text never parses, so redaction handles it.
  const bool c_safe = query.find('\0') == std::string_view::npos;
  std::optional<std::string> fingerprint = c_safe ? ParserFingerprint(query) : std::nullopt;
  std::optional<std::string> redacted;
  if (!fingerprint) {
    redacted = RedactLiterals(query);
    const bool redacted_c_safe = redacted->find('\0') == std::string::npos;
    fingerprint = redacted_c_safe ? ParserFingerprint(*redacted) : std::nullopt;
    if (!fingerprint) fingerprint = Fnv1aHex(*redacted);
  }
  out.fingerprint = std::move(*fingerprint);

  switch (mode) {
    case QueryTextMode::kKeep:
      out.text = std::string(query);
      out.method = QueryTextMethod::kKept;
      break;
    case QueryTextMode::kDrop:
      out.method = QueryTextMethod::kDropped;
      break;
    case QueryTextMode::kNormalize: {
      std::optional<std::string> normalized = c_safe && !redacted ? ParserNormalize(query) : std::nullopt;
      if (normalized) {
        out.text = std::move(normalized);
        out.method = QueryTextMethod::kParser;
      } else {
        out.text = redacted ? std::move(*redacted) : RedactLiterals(query);
        out.method = QueryTextMethod::kRedacted;
      }
      break;
    }
  }
  return out;
}

}  // namespace lockwatch::forensics
