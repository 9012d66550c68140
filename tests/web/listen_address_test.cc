#include "agent/web/listen_address.h"

#include <gtest/gtest.h>

namespace lockwatch::web {
namespace {

struct GoodCase {
  const char* listen;
  const char* host;
  int port;
};

TEST(ListenAddressTest, ParsesSupportedForms) {
  const GoodCase cases[] = {
      {"127.0.0.1:9187", "127.0.0.1", 9187},
      {"localhost:80", "localhost", 80},
      {":9187", "0.0.0.0", 9187},
      {"[::1]:9187", "::1", 9187},
      {"[::]:0", "::", 0},
      {"0.0.0.0:65535", "0.0.0.0", 65535},
      {":0", "0.0.0.0", 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.listen);
    const auto parsed = ParseListenAddress(c.listen);
    ASSERT_TRUE(parsed.ok()) << parsed.status().message();
    EXPECT_EQ(parsed.value().host, c.host);
    EXPECT_EQ(parsed.value().port, c.port);
  }
}

TEST(ListenAddressTest, RejectsMalformedAddressesNamingThem) {
  const char* cases[] = {
      "",     "9187",      "127.0.0.1", "127.0.0.1:", "127.0.0.1:abc", "127.0.0.1:65536", "127.0.0.1:-1",
      "[::1", "[::1]9187", "[::1]:",    "[]:9187",    "::1:9187",      "a b:9187",        "127.0.0.1:123456",
  };
  for (const char* listen : cases) {
    SCOPED_TRACE(listen);
    const auto parsed = ParseListenAddress(listen);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), core::Status::Code::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(std::string("\"") + listen + "\""), std::string::npos)
        << parsed.status().message();
  }
}

TEST(ListenAddressTest, FormatsIpv6InBrackets) {
  EXPECT_EQ(FormatListenAddress("::1", 80), "[::1]:80");
  EXPECT_EQ(FormatListenAddress("127.0.0.1", 80), "127.0.0.1:80");
}

}  // namespace
}  // namespace lockwatch::web
