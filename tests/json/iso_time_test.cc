#include "agent/json/iso_time.h"

#include <string>

#include <gtest/gtest.h>

namespace lockwatch::json {
namespace {

struct IsoCase {
  core::TimestampUs us;
  const char* text;
};

const IsoCase kCases[] = {
    {0, "1970-01-01T00:00:00.000000Z"},
    {1795614300123456, "2026-11-25T13:45:00.123456Z"},
    {-1, "1969-12-31T23:59:59.999999Z"},
    {1709164800000001, "2024-02-29T00:00:00.000001Z"},
    {4102444799999999, "2099-12-31T23:59:59.999999Z"},
};

TEST(IsoTimeTest, FormatsAndParsesBack) {
  for (const IsoCase& c : kCases) {
    EXPECT_EQ(FormatIso8601(c.us), c.text);
    EXPECT_EQ(ParseIso8601(c.text), c.us) << c.text;
  }
}

TEST(IsoTimeTest, ParsesShorterFractions) {
  EXPECT_EQ(ParseIso8601("1970-01-01T00:00:01Z"), 1000000);
  EXPECT_EQ(ParseIso8601("1970-01-01T00:00:01.5Z"), 1500000);
}

TEST(IsoTimeTest, RejectsMalformed) {
  for (const char* text :
       {"", "2026-11-25", "2026-11-25 13:45:00Z", "2026-11-25T13:45:00", "2026-11-25T13:45:00.Z",
        "2026-11-25T13:45:00.1234567Z", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
        "2026-11-25T24:00:00Z", "2026-11-25T13:45:00+01:00", "2026-11-25T13:45:00.123456Zx"}) {
    EXPECT_FALSE(ParseIso8601(text).has_value()) << text;
  }
}

TEST(IsoTimeTest, NullForAbsent) {
  EXPECT_TRUE(IsoOrNull(std::nullopt).is_null());
  EXPECT_EQ(IsoOrNull(0), "1970-01-01T00:00:00.000000Z");
}

}  // namespace
}  // namespace lockwatch::json
