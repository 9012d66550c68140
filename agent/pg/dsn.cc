#include "agent/pg/dsn.h"

#include <cctype>
#include <memory>
#include <string_view>

#include <libpq-fe.h>

namespace lockwatch::pg {
namespace {

constexpr std::string_view kMask = "***";

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

bool IsUri(std::string_view dsn) {
  return dsn.rfind("postgresql://", 0) == 0 || dsn.rfind("postgres://", 0) == 0;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding as libpq does for URI parts; malformed escapes are kept as they are.
std::string PercentDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

void AddSecret(std::string_view raw, std::vector<std::string>* secrets) {
  if (raw.empty()) return;
  secrets->emplace_back(raw);
  std::string decoded = PercentDecode(raw);
  if (decoded != raw) secrets->push_back(decoded);
}

std::string Redact(const std::string& dsn, std::vector<std::string>* secrets);

// postgres://user:secret@host/db?password=secret&sslmode=require. Mirrors libpq's split: the user info is
// everything before the first '@' that precedes any '/'.
std::string RedactUri(const std::string& uri, std::vector<std::string>* secrets) {
  const std::size_t scheme_end = uri.find("://") + 3;
  std::string out = uri.substr(0, scheme_end);
  std::size_t pos = scheme_end;
  const std::size_t at = uri.find_first_of("@/", pos);
  if (at != std::string::npos && uri[at] == '@') {
    const std::string_view userinfo(uri.data() + pos, at - pos);
    const std::size_t colon = userinfo.find(':');
    if (colon != std::string_view::npos) {
      AddSecret(userinfo.substr(colon + 1), secrets);
      out.append(userinfo.substr(0, colon + 1));
      out.append(kMask);
    } else {
      out.append(userinfo);
    }
    out += '@';
    pos = at + 1;
  }
  const std::size_t query = uri.find('?', pos);
  if (query == std::string::npos) return out + uri.substr(pos);
  out.append(uri, pos, query + 1 - pos);
  pos = query + 1;
  while (pos <= uri.size()) {
    std::size_t amp = uri.find('&', pos);
    if (amp == std::string::npos) amp = uri.size();
    const std::string_view param(uri.data() + pos, amp - pos);
    const std::size_t eq = param.find('=');
    const std::string key = PercentDecode(param.substr(0, eq));
    if (eq != std::string_view::npos && key == "password") {
      AddSecret(param.substr(eq + 1), secrets);
      out.append(param.substr(0, eq + 1));
      out.append(kMask);
    } else if (eq != std::string_view::npos && key == "dbname") {
      // A dbname may itself be a connection string (expand_dbname in libpq's *Params functions).
      std::vector<std::string> inner;
      const std::string redacted = Redact(PercentDecode(param.substr(eq + 1)), &inner);
      out.append(param.substr(0, eq + 1));
      if (inner.empty()) {
        out.append(param.substr(eq + 1));
      } else {
        secrets->insert(secrets->end(), inner.begin(), inner.end());
        out += redacted;
      }
    } else {
      out.append(param);
    }
    if (amp < uri.size()) out += '&';
    pos = amp + 1;
  }
  return out;
}

// keyword = value pairs, tokenised like libpq's conninfo_parse; also copes with input libpq rejects (a
// "password" keyword without '=' still has its next word masked).
std::string RedactKeyValue(const std::string& dsn, std::vector<std::string>* secrets) {
  std::string out;
  std::size_t i = 0;
  const std::size_t n = dsn.size();
  while (i < n) {
    if (IsSpace(dsn[i])) {
      out += dsn[i++];
      continue;
    }
    const std::size_t key_begin = i;
    while (i < n && !IsSpace(dsn[i]) && dsn[i] != '=') ++i;
    const std::string key = dsn.substr(key_begin, i - key_begin);
    out += key;
    while (i < n && IsSpace(dsn[i])) out += dsn[i++];
    const bool has_eq = i < n && dsn[i] == '=';
    if (has_eq) {
      out += dsn[i++];
      while (i < n && IsSpace(dsn[i])) out += dsn[i++];
    } else if (key != "password") {
      continue;  // malformed: keep scanning from the next word
    }
    // The value: quoted (backslash escapes, up to the closing quote) or up to whitespace.
    const std::size_t value_begin = i;
    std::string value;
    if (i < n && dsn[i] == '\'') {
      ++i;
      while (i < n && dsn[i] != '\'') {
        if (dsn[i] == '\\' && i + 1 < n) ++i;
        value += dsn[i++];
      }
      if (i < n) ++i;  // closing quote
    } else {
      while (i < n && !IsSpace(dsn[i])) {
        if (dsn[i] == '\\' && i + 1 < n) ++i;
        value += dsn[i++];
      }
    }
    const std::string_view raw(dsn.data() + value_begin, i - value_begin);
    if (key == "password") {
      AddSecret(raw, secrets);
      AddSecret(value, secrets);
      out.append(kMask);
    } else if (key == "dbname" && (value.find('=') != std::string::npos || IsUri(value))) {
      // A dbname may itself be a connection string (expand_dbname in libpq's *Params functions).
      std::vector<std::string> inner;
      std::string redacted = Redact(value, &inner);
      if (inner.empty()) {
        out.append(raw);
      } else {
        for (const std::string& s : inner) secrets->push_back(s);
        out += "'" + redacted + "'";
      }
    } else {
      out.append(raw);
    }
  }
  return out;
}

std::string Redact(const std::string& dsn, std::vector<std::string>* secrets) {
  return IsUri(dsn) ? RedactUri(dsn, secrets) : RedactKeyValue(dsn, secrets);
}

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) return text;
  std::size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

struct ConninfoOptionsDeleter {
  void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};

}  // namespace

std::string RedactDsn(const std::string& dsn) {
  std::vector<std::string> secrets;
  return Redact(dsn, &secrets);
}

std::string ScrubSecrets(const std::string& message, const std::string& dsn) {
  std::vector<std::string> secrets;
  const std::string redacted = Redact(dsn, &secrets);
  std::string out = dsn.empty() ? message : ReplaceAll(message, dsn, redacted);
  // Very short secrets are indistinguishable from ordinary text; masking them would garble the message
  // without protecting anything.
  constexpr std::size_t kMinSecret = 3;
  for (const std::string& s : secrets) {
    if (s.size() >= kMinSecret) out = ReplaceAll(out, s, kMask);
  }
  return out;
}

core::Result<ConnParams> ParseDsn(const std::string& dsn) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoOptionsDeleter> options(PQconninfoParse(dsn.c_str(), &error));
  if (options == nullptr) {
    std::string message = error != nullptr ? error : "out of memory";
    if (error != nullptr) PQfreemem(error);
    while (!message.empty() && IsSpace(message.back())) message.pop_back();
    return core::Status::InvalidArgument("invalid DSN: " + ScrubSecrets(message, dsn));
  }
  ConnParams params;
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (o->val != nullptr) params.values.emplace_back(o->keyword, o->val);
  }
  return params;
}

std::string ToConninfo(const ConnParams& params) {
  std::string out;
  for (const auto& [key, value] : params.values) {
    if (!out.empty()) out += ' ';
    out += key;
    out += "='";
    for (char c : value) {
      if (c == '\\' || c == '\'') out += '\\';
      out += c;
    }
    out += '\'';
  }
  return out;
}

void SetParam(ConnParams* params, const std::string& key, const std::string& value, bool override) {
  for (auto& [k, v] : params->values) {
    if (k == key) {
      if (override) v = value;
      return;
    }
  }
  params->values.emplace_back(key, value);
}

const std::string* FindParam(const ConnParams& params, const std::string& key) {
  for (const auto& [k, v] : params.values) {
    if (k == key) return &v;
  }
  return nullptr;
}

}  // namespace lockwatch::pg
