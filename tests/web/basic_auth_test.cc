#include "agent/web/basic_auth.h"

#include <string>

#include <gtest/gtest.h>

#include "tests/web/web_test_support.h"

namespace lockwatch::web {
namespace {

using testing::BcryptHash;

std::string Basic(const std::string& user_colon_password);

TEST(BasicAuthTest, DecodeBase64HandlesPaddingAndRejectsGarbage) {
  struct Case {
    const char* in;
    std::optional<std::string> out;
  };
  const Case cases[] = {
      {"", std::string()},
      {"YQ==", std::string("a")},
      {"YWI=", std::string("ab")},
      {"YWJj", std::string("abc")},
      {"YWxpY2U6c2VjcmV0", std::string("alice:secret")},
      {"YQ=", std::nullopt},       // bad length
      {"Y===", std::nullopt},      // too much padding
      {"YQ=a", std::nullopt},      // data after padding
      {"YW!j", std::nullopt},      // invalid character
      {"YQ==YWJj", std::nullopt},  // padding not at the end
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    EXPECT_EQ(DecodeBase64(c.in), c.out);
  }
}

TEST(BasicAuthTest, ParsesBasicAuthorizationHeader) {
  auto creds = ParseBasicAuthorization("Basic YWxpY2U6czNjcjp0");  // alice:s3cr:t
  ASSERT_TRUE(creds.has_value());
  EXPECT_EQ(creds->user, "alice");
  EXPECT_EQ(creds->password, "s3cr:t");  // only the first ':' separates

  creds = ParseBasicAuthorization("basic YWxpY2U6");  // scheme is case-insensitive; empty password
  ASSERT_TRUE(creds.has_value());
  EXPECT_EQ(creds->password, "");

  EXPECT_FALSE(ParseBasicAuthorization("").has_value());
  EXPECT_FALSE(ParseBasicAuthorization("Bearer YWxpY2U6c2VjcmV0").has_value());
  EXPECT_FALSE(ParseBasicAuthorization("Basic YWxpY2U=").has_value());  // "alice": no colon
  EXPECT_FALSE(ParseBasicAuthorization("Basic !!!!").has_value());
}

TEST(BasicAuthTest, RecognisesBcryptHashFormats) {
  const std::string real = BcryptHash("pw");
  EXPECT_TRUE(IsBcryptHash(real));
  std::string y = real;
  y[2] = 'y';
  EXPECT_TRUE(IsBcryptHash(y));
  std::string a = real;
  a[2] = 'a';
  EXPECT_TRUE(IsBcryptHash(a));

  const std::string tail = real.substr(7);
  const std::string bad[] = {
      "",
      "plaintext",
      "$1$abcdefgh$abcdefghijklmnopqrstuv",  // md5-crypt
      "$2x$05$" + tail,                      // unsupported variant
      "$2b$03$" + tail,                      // cost too low
      "$2b$32$" + tail,                      // cost too high
      "$2b$5$" + tail,                       // one-digit cost
      "$2b$05$" + tail.substr(1),            // too short
      "$2b$05$" + tail + "x",                // too long
      "$2b$05$" + tail.substr(1) + "!",      // invalid character
  };
  for (const auto& h : bad) {
    SCOPED_TRACE(h);
    EXPECT_FALSE(IsBcryptHash(h));
  }
}

TEST(BasicAuthTest, VerifyBcryptAcceptsOnlyTheRightPassword) {
  const std::string hash = BcryptHash("correct horse");
  EXPECT_TRUE(VerifyBcrypt("correct horse", hash));
  EXPECT_FALSE(VerifyBcrypt("correct hors", hash));
  EXPECT_FALSE(VerifyBcrypt("", hash));
  EXPECT_FALSE(VerifyBcrypt(std::string("correct horse\0x", 15), hash));  // NUL would truncate
  EXPECT_FALSE(VerifyBcrypt("correct horse", "not a hash"));
  std::string tampered = hash;
  tampered.back() = tampered.back() == 'a' ? 'b' : 'a';
  EXPECT_FALSE(VerifyBcrypt("correct horse", tampered));
}

std::string Basic(const std::string& user_colon_password) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  const auto byte = [&](size_t k) {
    return static_cast<unsigned>(static_cast<unsigned char>(user_colon_password[k]));
  };
  for (; i + 2 < user_colon_password.size(); i += 3) {
    const unsigned v = (byte(i) << 16U) | (byte(i + 1) << 8U) | byte(i + 2);
    out += kAlphabet[(v >> 18U) & 63U];
    out += kAlphabet[(v >> 12U) & 63U];
    out += kAlphabet[(v >> 6U) & 63U];
    out += kAlphabet[v & 63U];
  }
  const size_t rest = user_colon_password.size() - i;
  if (rest == 1) {
    const unsigned v = byte(i) << 16U;
    out += kAlphabet[(v >> 18U) & 63U];
    out += kAlphabet[(v >> 12U) & 63U];
    out += "==";
  } else if (rest == 2) {
    const unsigned v = (byte(i) << 16U) | (byte(i + 1) << 8U);
    out += kAlphabet[(v >> 18U) & 63U];
    out += kAlphabet[(v >> 12U) & 63U];
    out += kAlphabet[(v >> 6U) & 63U];
    out += '=';
  }
  return "Basic " + out;
}

TEST(BasicAuthTest, AuthenticatorChecksUserAndPassword) {
  const BasicAuthenticator auth({{"alice", BcryptHash("wonderland")}, {"bob", BcryptHash("builder")}});
  ASSERT_TRUE(auth.enabled());
  struct Case {
    std::string header;
    bool allowed;
  };
  const Case cases[] = {
      {Basic("alice:wonderland"), true},
      {Basic("bob:builder"), true},
      {Basic("alice:builder"), false},     // another user's password
      {Basic("carol:wonderland"), false},  // unknown user
      {Basic("alice:"), false},
      {Basic("alice:wonderland "), false},
      {"", false},
      {"Bearer token", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.header);
    EXPECT_EQ(auth.Check(c.header), c.allowed);
  }
}

TEST(BasicAuthTest, AuthenticatorWithoutUsersAllowsEverything) {
  const BasicAuthenticator auth({});
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.Check(""));
}

}  // namespace
}  // namespace lockwatch::web
