#include "agent/web/basic_auth.h"

#include <array>
#include <cctype>
#include <cstring>
#include <memory>
#include <utility>

#include <crypt.h>
#include <openssl/crypto.h>

namespace lockwatch::web {
namespace {

bool IsBcryptBase64(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '/';
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool IsBcryptHash(std::string_view hash) {
  // $2b$10$ + 53 characters.
  constexpr size_t kLength = 60;
  if (hash.size() != kLength) return false;
  if (hash[0] != '$' || hash[1] != '2' || hash[3] != '$' || hash[6] != '$') return false;
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return false;
  if (std::isdigit(static_cast<unsigned char>(hash[4])) == 0 ||
      std::isdigit(static_cast<unsigned char>(hash[5])) == 0) {
    return false;
  }
  const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (cost < 4 || cost > 31) return false;
  for (size_t i = 7; i < hash.size(); ++i) {
    if (!IsBcryptBase64(hash[i])) return false;
  }
  return true;
}

std::optional<std::string> DecodeBase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    std::array<int, 4> v{};
    int padding = 0;
    for (size_t j = 0; j < 4; ++j) {
      const char c = text[i + j];
      if (c == '=') {
        // Padding only in the last group's last one or two positions.
        if (i + 4 != text.size() || j < 2) return std::nullopt;
        ++padding;
        v[j] = 0;
        continue;
      }
      if (padding > 0) return std::nullopt;  // data after '='
      v[j] = Base64Value(c);
      if (v[j] < 0) return std::nullopt;
    }
    const unsigned triple = (static_cast<unsigned>(v[0]) << 18U) | (static_cast<unsigned>(v[1]) << 12U) |
                            (static_cast<unsigned>(v[2]) << 6U) | static_cast<unsigned>(v[3]);
    out.push_back(static_cast<char>((triple >> 16U) & 0xFFU));
    if (padding < 2) out.push_back(static_cast<char>((triple >> 8U) & 0xFFU));
    if (padding < 1) out.push_back(static_cast<char>(triple & 0xFFU));
  }
  return out;
}

std::optional<BasicCredentials> ParseBasicAuthorization(std::string_view header) {
  const auto space = header.find(' ');
  if (space == std::string_view::npos || !EqualsIgnoreCase(header.substr(0, space), "Basic")) {
    return std::nullopt;
  }
  std::string_view encoded = header.substr(space + 1);
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  while (!encoded.empty() && encoded.back() == ' ') encoded.remove_suffix(1);
  auto decoded = DecodeBase64(encoded);
  if (!decoded) return std::nullopt;
  const auto colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return BasicCredentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

bool VerifyBcrypt(const std::string& password, const std::string& hash) {
  if (password.find('\0') != std::string::npos || password.size() >= CRYPT_MAX_PASSPHRASE_SIZE) return false;
  // crypt_data is 32 KiB: too large for the small stacks of server threads.
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* result = crypt_r(password.c_str(), hash.c_str(), data.get());
  bool ok = false;
  if (result != nullptr && result[0] != '*') {
    const size_t length = std::strlen(result);
    // The length is not secret (it is fixed by the algorithm); the bytes are compared in constant time.
    ok = length == hash.size() && CRYPTO_memcmp(result, hash.data(), length) == 0;
  }
  // The buffer held material derived from the password.
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return ok;
}

BasicAuthenticator::BasicAuthenticator(std::map<std::string, std::string> users) : users_(std::move(users)) {}

bool BasicAuthenticator::Check(std::string_view authorization) const {
  if (users_.empty()) return true;
  const auto credentials = ParseBasicAuthorization(authorization);
  if (!credentials) return false;
  const auto it = users_.find(credentials->user);
  if (it == users_.end()) {
    // Spend the same work as for a known user, then refuse.
    (void)VerifyBcrypt(credentials->password, users_.begin()->second);
    return false;
  }
  return VerifyBcrypt(credentials->password, it->second);
}

}  // namespace lockwatch::web
