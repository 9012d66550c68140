#include "agent/forensics/query_text.h"

#include <string>

#include <gtest/gtest.h>

namespace lockwatch::forensics {
namespace {

struct RedactCase {
  const char* name;
  const char* in;
  const char* out;
};

class RedactLiteralsTest : public ::testing::TestWithParam<RedactCase> {};

TEST_P(RedactLiteralsTest, ReplacesLiteralsKeepsStructure) {
  EXPECT_EQ(RedactLiterals(GetParam().in), GetParam().out);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RedactLiteralsTest,
    ::testing::Values(
        RedactCase{"String", "select * from t where name = 'alice'", "select * from t where name = ?"},
        RedactCase{"DoubledQuote", "select 'it''s', 1", "select ?, ?"},
        RedactCase{"EscapeString", R"(select E'a\'b' from t)", "select ? from t"},
        RedactCase{"BitAndHex", "select B'101', X'ff'", "select ?, ?"},
        RedactCase{"Unicode", "select U&'d\\0061t'", "select ?"},
        RedactCase{"PrefixLetterOfIdentifierIsKept", "select name'x'", "select name?"},
        RedactCase{"Numbers", "update t set v = 3.5e+2, w = .5 where id = 42",
                   "update t set v = ?, w = ? where id = ?"},
        RedactCase{"DigitsInIdentifiersKept", "select col1 from t2", "select col1 from t2"},
        RedactCase{"ParametersKept", "select * from t where id = $1", "select * from t where id = $1"},
        RedactCase{"DollarQuoted", "select $$secret$$, $tag$x$tag$", "select ?, ?"},
        RedactCase{"QuotedIdentifierKept", "select \"Weird'Name\" from t", "select \"Weird'Name\" from t"},
        RedactCase{"LineComment", "select 1 -- password=hunter2\nfrom t", "select ?  \nfrom t"},
        RedactCase{"BlockComment", "select /* card 4111 */ 2", "select   ?"},
        RedactCase{"TruncatedString", "insert into t values ('secret tex", "insert into t values (?"},
        RedactCase{"TruncatedDollar", "do $$ begin perform secret", "do ?"}, RedactCase{"Empty", "", ""}),
    [](const ::testing::TestParamInfo<RedactCase>& p) { return std::string(p.param.name); });

TEST(QueryTextTest, NormalizeUsesParserForValidSql) {
  const QueryText q =
      ProcessQueryText("select * from accounts where id = 42 and name = 'bob'", QueryTextMode::kNormalize);
  ASSERT_TRUE(q.text.has_value());
  EXPECT_EQ(*q.text, "select * from accounts where id = $1 and name = $2");
  EXPECT_EQ(q.method, QueryTextMethod::kParser);
  EXPECT_EQ(q.fingerprint.size(), 16U);
}

TEST(QueryTextTest, NormalizeFallsBackToRedactionForTruncatedText) {
  const QueryText q = ProcessQueryText("update accounts set balance = 10 where owner = 'alice and",
                                       QueryTextMode::kNormalize);
  ASSERT_TRUE(q.text.has_value());
  EXPECT_EQ(*q.text, "update accounts set balance = ? where owner = ?");
  EXPECT_EQ(q.method, QueryTextMethod::kRedacted);
  EXPECT_FALSE(q.fingerprint.empty());
  EXPECT_EQ(q.text->find("alice"), std::string::npos);
}

TEST(QueryTextTest, FingerprintIgnoresConstants) {
  const QueryText a = ProcessQueryText("select * from t where id = 1", QueryTextMode::kKeep);
  const QueryText b = ProcessQueryText("select * from t where id = 2", QueryTextMode::kKeep);
  const QueryText c = ProcessQueryText("select * from u where id = 2", QueryTextMode::kKeep);
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  EXPECT_NE(a.fingerprint, c.fingerprint);
}

TEST(QueryTextTest, UnparseableTextGetsStableHashFingerprint) {
  const QueryText a = ProcessQueryText("this is not sql at all 'x'", QueryTextMode::kKeep);
  const QueryText b = ProcessQueryText("this is not sql at all 'y'", QueryTextMode::kKeep);
  EXPECT_EQ(a.fingerprint.rfind("r:", 0), 0U) << a.fingerprint;
  EXPECT_EQ(a.fingerprint, b.fingerprint);  // same text once redacted
}

TEST(QueryTextTest, KeepKeepsTextVerbatim) {
  const QueryText q = ProcessQueryText("select 'x'", QueryTextMode::kKeep);
  EXPECT_EQ(q.text, std::optional<std::string>("select 'x'"));
  EXPECT_EQ(q.method, QueryTextMethod::kKept);
}

TEST(QueryTextTest, DropKeepsOnlyFingerprint) {
  const QueryText q = ProcessQueryText("select 'secret'", QueryTextMode::kDrop);
  EXPECT_FALSE(q.text.has_value());
  EXPECT_EQ(q.method, QueryTextMethod::kDropped);
  EXPECT_FALSE(q.fingerprint.empty());
}

TEST(QueryTextTest, EmbeddedNulNeverReachesParser) {
  const std::string text("select 'a\0b'", 12);
  const QueryText q = ProcessQueryText(text, QueryTextMode::kNormalize);
  ASSERT_TRUE(q.text.has_value());
  EXPECT_EQ(*q.text, "select ?");
}

TEST(QueryTextTest, ModeNamesRoundTrip) {
  for (QueryTextMode m : {QueryTextMode::kKeep, QueryTextMode::kNormalize, QueryTextMode::kDrop}) {
    EXPECT_EQ(ParseQueryTextMode(QueryTextModeName(m)), m);
  }
  EXPECT_FALSE(ParseQueryTextMode("redact").has_value());
}

}  // namespace
}  // namespace lockwatch::forensics
