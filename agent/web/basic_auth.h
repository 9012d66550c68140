#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace lockwatch::web {

// True when `hash` looks like a bcrypt hash crypt_r() can check: $2a$, $2b$ or $2y$, a two-digit cost
// 04..31, then 53 characters of bcrypt's base64 (22 salt + 31 hash).
bool IsBcryptHash(std::string_view hash);

// Standard base64 (RFC 4648, padding required when the length is not a multiple of 4). nullopt on any
// invalid character or length.
std::optional<std::string> DecodeBase64(std::string_view text);

struct BasicCredentials {
  std::string user;
  std::string password;
};

// Parses an Authorization header value "Basic <base64(user:password)>" (scheme case-insensitive). The
// password is everything after the first ':'. nullopt when the header is not valid Basic credentials.
std::optional<BasicCredentials> ParseBasicAuthorization(std::string_view header);

// Hashes `password` with the salt and cost of `hash` using the system crypt_r() and compares the result
// with `hash` in constant time. False for passwords containing NUL (crypt_r would silently truncate them)
// and for hashes crypt_r rejects. Thread-safe. Costs one bcrypt evaluation (tens of ms at cost 10).
bool VerifyBcrypt(const std::string& password, const std::string& hash);

// Checks Authorization headers against exporter-toolkit's basic_auth_users (user -> bcrypt hash).
// Immutable after construction, so Check() may be called from many threads.
class BasicAuthenticator {
 public:
  explicit BasicAuthenticator(std::map<std::string, std::string> users);

  // False when no users are configured: every request is allowed.
  bool enabled() const { return !users_.empty(); }

  // True when `authorization` (the raw header value, possibly empty) carries a configured user and the
  // matching password. An unknown user still costs one bcrypt evaluation so that response time does not
  // reveal which user names exist.
  bool Check(std::string_view authorization) const;

 private:
  std::map<std::string, std::string> users_;
};

}  // namespace lockwatch::web
