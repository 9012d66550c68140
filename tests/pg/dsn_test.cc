#include "agent/pg/dsn.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lockwatch::pg {
namespace {

std::string Get(const ConnParams& p, const std::string& key) {
  const std::string* v = FindParam(p, key);
  return v == nullptr ? "<unset>" : *v;
}

TEST(ParseDsnTest, AcceptsKeyValueUriAndEmpty) {
  struct Case {
    std::string dsn;
    std::vector<std::pair<std::string, std::string>> want;
  };
  const std::vector<Case> cases = {
      {"host=/tmp/sock port=55432 user=postgres dbname=postgres",
       {{"host", "/tmp/sock"}, {"port", "55432"}, {"user", "postgres"}, {"dbname", "postgres"}}},
      {"host = db1  dbname='my db' password='it\\'s'",
       {{"host", "db1"}, {"dbname", "my db"}, {"password", "it's"}}},
      {"postgresql://mon:pw@db1:5433/shop?sslmode=disable&application_name=x",
       {{"user", "mon"},
        {"password", "pw"},
        {"host", "db1"},
        {"port", "5433"},
        {"dbname", "shop"},
        {"sslmode", "disable"},
        {"application_name", "x"}}},
      {"postgres://db1,db2/shop", {{"host", "db1,db2"}, {"port", ","}, {"dbname", "shop"}}},
      {"", {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dsn);
    core::Result<ConnParams> p = ParseDsn(c.dsn);
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_EQ(p.value().values.size(), c.want.size());
    for (const auto& [k, v] : c.want) EXPECT_EQ(Get(p.value(), k), v) << k;
  }
}

TEST(ParseDsnTest, ErrorsReportLibpqMessageWithoutThePassword) {
  struct Case {
    std::string dsn;
    std::string message_has;
  };
  const std::vector<Case> cases = {
      {"hots=db1 password=Sekr3tPw", "invalid connection option \"hots\""},
      {"host=db1 password=Sekr3tPw dbname", "missing \"=\" after \"dbname\""},
      {"host=db1 password='Sekr3tPw", "unterminated quoted string"},
      {"password=Sekr3tPw host='db1", "unterminated quoted string"},
      {"postgresql://mon:Sekr3tPw@db1/shop?foo=bar", "invalid URI query parameter: \"foo\""},
      {"postgresql://mon:Sekr3tPw@[::1/shop", "IPv6"},
      {"postgresql://mon:Sekr3tPw@db1/shop?password", "missing key/value separator \"=\""},
      {"postgresql://db1/shop?password=Sekr3tPw&bad", "missing key/value separator \"=\""},
      {"postgresql://mon:Sekr3tPw%zz@db1/shop", "percent"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dsn);
    core::Result<ConnParams> p = ParseDsn(c.dsn);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), core::Status::Code::kInvalidArgument);
    EXPECT_NE(p.status().message().find(c.message_has), std::string::npos) << p.status().message();
    EXPECT_EQ(p.status().message().find("Sekr3tPw"), std::string::npos) << p.status().message();
    EXPECT_EQ(p.status().message().find("Sekr3t"), std::string::npos) << p.status().message();
  }
}

TEST(RedactDsnTest, RemovesPasswordsInEveryForm) {
  struct Case {
    std::string dsn;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"host=h password=secret dbname=d", "host=h password=*** dbname=d"},
      {"password = 'se cret' user=u", "password = *** user=u"},
      {"password='it\\'s secret' x=1", "password=*** x=1"},
      {"password=sec\\ ret host=h", "password=*** host=h"},
      {"host=h password=", "host=h password=***"},
      {"password secret host=h", "password *** host=h"},
      {"dbname='host=x password=secret'", "dbname='host=x password=***'"},
      {"postgresql://user:secret@host/db", "postgresql://user:***@host/db"},
      {"postgres://user:secret@h1:5432,h2/db?password=other&sslmode=require",
       "postgres://user:***@h1:5432,h2/db?password=***&sslmode=require"},
      {"postgresql://host/db?pass%77ord=secret", "postgresql://host/db?pass%77ord=***"},
      {"postgresql://user@host/db", "postgresql://user@host/db"},
      {"postgresql://host/db?dbname=postgresql%3A%2F%2Fu%3Asecret%40h",
       "postgresql://host/db?dbname=postgresql://u:***@h"},
      {"host=h sslmode=require", "host=h sslmode=require"},
      {"", ""},
  };
  for (const Case& c : cases) EXPECT_EQ(RedactDsn(c.dsn), c.want) << c.dsn;
}

TEST(RedactDsnTest, RedactedDsnNeverContainsThePassword) {
  for (const std::string& dsn :
       {std::string("password=Sekr3tPw"), std::string("postgres://u:Sekr3tPw@h"),
        std::string("postgres://h?password=Sekr3tPw"), std::string("password 'Sekr3tPw'")}) {
    EXPECT_EQ(RedactDsn(dsn).find("Sekr3tPw"), std::string::npos) << dsn;
  }
}

TEST(ScrubSecretsTest, ReplacesTheDsnAndEachPassword) {
  const std::string dsn = "postgresql://u:Sekr3tPw@[::1/db";
  EXPECT_EQ(ScrubSecrets("bad URI: \"" + dsn + "\"", dsn), "bad URI: \"postgresql://u:***@[::1/db\"");
  EXPECT_EQ(ScrubSecrets("token Sekr3tPw seen", "password=Sekr3tPw"), "token *** seen");
  EXPECT_EQ(ScrubSecrets("nothing here", ""), "nothing here");
}

TEST(ToConninfoTest, QuotedValuesRoundTripThroughLibpq) {
  ConnParams in;
  in.values = {{"host", "/tmp/dir with space"},
               {"password", "it's a \\ secret"},
               {"dbname", "a=b c"},
               {"application_name", ""}};
  const std::string conninfo = ToConninfo(in);
  core::Result<ConnParams> out = ParseDsn(conninfo);
  ASSERT_TRUE(out.ok()) << out.status().message();
  for (const auto& [k, v] : in.values) EXPECT_EQ(Get(out.value(), k), v) << k;
}

TEST(SetParamTest, OverrideReplacesOtherwiseOnlyAdds) {
  ConnParams p;
  p.values = {{"application_name", "psql"}, {"connect_timeout", "30"}};
  SetParam(&p, "application_name", "lockwatch", true);
  SetParam(&p, "connect_timeout", "5", false);
  SetParam(&p, "keepalives", "1", false);
  EXPECT_EQ(Get(p, "application_name"), "lockwatch");
  EXPECT_EQ(Get(p, "connect_timeout"), "30");
  EXPECT_EQ(Get(p, "keepalives"), "1");
  EXPECT_EQ(p.values.size(), 3u);
}

}  // namespace
}  // namespace lockwatch::pg
