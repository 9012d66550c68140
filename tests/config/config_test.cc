#include "agent/config/config.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

namespace lockwatch::config {
namespace {

using std::chrono::milliseconds;

struct BadConfigCase {
  const char* name;
  const char* yaml;
  const char* position;  // "line:column"
  const char* fragment;
};

class BadConfigTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfigTest, ErrorNamesFileLineColumnAndWhatWasExpected) {
  const BadConfigCase& c = GetParam();
  core::Result<AgentConfig> result = ParseAgentConfig(c.yaml, "lockwatch.yaml");
  ASSERT_FALSE(result.ok()) << c.yaml;
  EXPECT_EQ(result.status().code(), core::Status::Code::kInvalidArgument);
  const std::string& message = result.status().message();
  const std::string prefix = std::string("lockwatch.yaml:") + c.position + ": ";
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << "message: " << message << "\nexpected prefix: " << prefix;
  EXPECT_NE(message.find(c.fragment), std::string::npos)
      << "message: " << message << "\nfragment: " << c.fragment;
}

const BadConfigCase kBadConfigs[] = {
    {"UnknownTopLevelKey", "listen: ':9817'\nbogus: 1\n", "2:1", "unknown key \"bogus\" in the top level"},
    {"UnknownSessionKey", "session:\n  statement_timeout: 1s\n  lock_timeot: 1s\n", "3:3",
     "unknown key \"lock_timeot\" in \"session\""},
    {"UnknownLogKey", "log:\n  colour: true\n", "2:3", "unknown key \"colour\" in \"log\""},
    {"UnknownTargetKey", "targets:\n  - name: a\n    dsn: host=/tmp\n    passwd: x\n", "4:5",
     "unknown key \"passwd\" in a target"},
    {"DuplicateKey", "interval: 1s\ninterval: 2s\n", "2:1", "duplicate key \"interval\""},
    {"BadDuration", "listen: ':9817'\ninterval: fast\n", "2:11",
     "expected a duration like 500ms, 2s or 1m, got \"fast\""},
    {"DurationWithoutUnit", "max_backoff: 30\n", "1:14",
     "expected a duration like 500ms, 2s or 1m, got \"30\""},
    {"NestedBadDuration", "session:\n  lock_timeout: 10x\n", "2:17", "got \"10x\""},
    {"IntervalTooShort", "interval: 10ms\n", "1:11", "at least 100ms"},
    {"DurationIsAList", "interval:\n  - 1s\n", "2:3", "expected a duration"},
    {"ListenIsAList", "listen: [1, 2]\n", "1:9", "expected a string for \"listen\""},
    {"ListenWithoutPort", "listen: localhost\n", "1:9", "expected a listen address"},
    {"ListenPortTooLarge", "listen: ':99999'\n", "1:9", "port above 65535"},
    {"ListenBareIpv6", "listen: '::1:9817'\n", "1:9", "IPv6 addresses need brackets"},
    {"TargetsNotAList", "targets: foo\n", "1:10", "expected \"targets\" to be a list"},
    {"LogNotAMapping", "log: debug\n", "1:6", "expected \"log\" to be a mapping"},
    {"BadLogLevel", "log:\n  level: loud\n", "2:10", "expected a log level"},
    {"BadLogFormat", "log:\n  format: xml\n", "2:11", "expected log format text or json"},
    {"TargetWithoutName", "targets:\n  - dsn: ''\n", "2:5", "expected a \"name\" in every target"},
    {"BadTargetName", "targets:\n  - name: 'a b'\n", "2:11", "expected a target name"},
    {"DuplicateTargetName", "targets:\n  - name: a\n    dsn: ''\n  - name: a\n    dsn: ''\n", "4:11",
     "duplicate target name \"a\" (first defined at line 2)"},
    {"BadDsnKeyword", "targets:\n  - name: a\n    dsn: 'host=/tmp bogus=1'\n", "3:10", "invalid dsn"},
    {"TopLevelNotAMapping", "- a\n- b\n", "1:1", "expected the top level to be a mapping"},
    {"InvalidYaml", "targets: [a,\n", "2:1", "invalid YAML"},
    {"UnknownIncidentKey", "incidents:\n  max_wait: 5s\n  blocked: 3\n", "3:3",
     "unknown key \"blocked\" in \"incidents\""},
    {"IncidentCountNotANumber", "incidents:\n  blocked_sessions: many\n", "2:21",
     "expected an integer from 1 to 1000000 for \"blocked_sessions\", got \"many\""},
    {"IncidentDepthZero", "incidents:\n  max_depth: 0\n", "2:14", "expected an integer from 1 to 1000"},
    {"BadResolveAfter", "incidents:\n  resolve_after: later\n", "2:18", "expected a duration"},
    {"BadRecorderSize", "recorder:\n  max_bytes: 64 megs\n", "2:14", "expected a size like 64MiB"},
    {"UnknownRecorderKey", "recorder:\n  minutes: 5\n", "2:3", "unknown key \"minutes\" in \"recorder\""},
    {"BadQueryTextMode", "dumps:\n  query_text: redact\n", "2:15",
     "expected query_text keep, normalize or drop, got \"redact\""},
    {"BadDumpsEnabled", "dumps:\n  enabled: maybe\n", "2:12", "expected true or false for \"enabled\""},
    {"EmptyDumpDir", "dumps:\n  dir: ''\n", "2:8", "expected a directory path"},
    {"UnknownRetentionKey", "dumps:\n  retention:\n    max_files: 3\n", "3:5",
     "unknown key \"max_files\" in \"retention\""},
    {"BadRetentionAge", "dumps:\n  retention:\n    max_age: 400d\n", "3:14", "between 1ms and 366d"},
};

INSTANTIATE_TEST_SUITE_P(Malformed, BadConfigTest, ::testing::ValuesIn(kBadConfigs),
                         [](const ::testing::TestParamInfo<BadConfigCase>& case_info) {
                           return case_info.param.name;
                         });

TEST(ConfigTest, BadDsnErrorNeverContainsThePassword) {
  const char* const kDsns[] = {
      "'host=/tmp password=s3cretpw bogus=1'",
      "'postgresql://alice:s3cretpw@db.example/app?bogus=1'",
      "'host=/tmp password=s3cretpw port'",
  };
  for (const char* dsn : kDsns) {
    const std::string yaml = std::string("targets:\n  - name: a\n    dsn: ") + dsn + "\n";
    core::Result<AgentConfig> result = ParseAgentConfig(yaml, "lw.yaml");
    ASSERT_FALSE(result.ok()) << dsn;
    EXPECT_EQ(result.status().message().rfind("lw.yaml:3:10: invalid dsn", 0), 0u)
        << result.status().message();
    EXPECT_EQ(result.status().message().find("s3cretpw"), std::string::npos) << result.status().message();
  }
}

TEST(ConfigTest, EmptyFileGivesDocumentedDefaults) {
  core::Result<AgentConfig> result = ParseAgentConfig("", "lw.yaml");
  ASSERT_TRUE(result.ok()) << result.status().message();
  const AgentConfig& c = result.value();
  EXPECT_EQ(c.listen, ":9817");
  EXPECT_EQ(c.interval, milliseconds(1000));
  EXPECT_EQ(c.max_backoff, milliseconds(30000));
  EXPECT_EQ(c.session.statement_timeout, milliseconds(2000));
  EXPECT_EQ(c.session.lock_timeout, milliseconds(100));
  EXPECT_EQ(c.session.connect_timeout, milliseconds(5000));
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.log.format, "text");
  EXPECT_EQ(c.web_config_file, "");
  ASSERT_EQ(c.targets.size(), 1u);
  EXPECT_EQ(c.targets[0].name, "default");
  EXPECT_EQ(c.targets[0].dsn, "");
  EXPECT_EQ(c.incidents.max_wait, milliseconds(5000));
  EXPECT_EQ(c.incidents.blocked_sessions, 10);
  EXPECT_EQ(c.incidents.max_depth, 3);
  EXPECT_EQ(c.incidents.resolve_after, milliseconds(30000));
  EXPECT_EQ(c.recorder.duration, milliseconds(5 * 60 * 1000));
  EXPECT_EQ(c.recorder.max_bytes, uint64_t{64} << 20);
  EXPECT_TRUE(c.dumps.enabled);
  EXPECT_EQ(c.dumps.dir, "/var/lib/lockwatch/dumps");
  EXPECT_EQ(c.dumps.query_text, "normalize");
  EXPECT_EQ(c.dumps.flush_interval, milliseconds(2000));
  EXPECT_EQ(c.dumps.max_count, 100u);
  EXPECT_EQ(c.dumps.max_age, milliseconds(int64_t{30} * 24 * 3600 * 1000));
  EXPECT_EQ(c.dumps.max_total_bytes, uint64_t{1} << 30);
}

TEST(ConfigTest, IncidentRecorderAndDumpKeysAreRead) {
  const char* yaml = R"(incidents:
  max_wait: 2s
  blocked_sessions: 4
  max_depth: 2
  resolve_after: 1m
recorder:
  duration: 10m
  max_bytes: 16MiB
dumps:
  enabled: false
  dir: /srv/lockwatch/dumps
  query_text: drop
  flush_interval: 500ms
  retention:
    max_count: 7
    max_age: 90d
    max_total_size: 2GB
)";
  core::Result<AgentConfig> result = ParseAgentConfig(yaml, "lw.yaml");
  ASSERT_TRUE(result.ok()) << result.status().message();
  const AgentConfig& c = result.value();
  EXPECT_EQ(c.incidents.max_wait, milliseconds(2000));
  EXPECT_EQ(c.incidents.blocked_sessions, 4);
  EXPECT_EQ(c.incidents.max_depth, 2);
  EXPECT_EQ(c.incidents.resolve_after, milliseconds(60000));
  EXPECT_EQ(c.recorder.duration, milliseconds(600000));
  EXPECT_EQ(c.recorder.max_bytes, uint64_t{16} << 20);
  EXPECT_FALSE(c.dumps.enabled);
  EXPECT_EQ(c.dumps.dir, "/srv/lockwatch/dumps");
  EXPECT_EQ(c.dumps.query_text, "drop");
  EXPECT_EQ(c.dumps.flush_interval, milliseconds(500));
  EXPECT_EQ(c.dumps.max_count, 7u);
  EXPECT_EQ(c.dumps.max_age, milliseconds(int64_t{90} * 24 * 3600 * 1000));
  EXPECT_EQ(c.dumps.max_total_bytes, uint64_t{2000000000});
}

TEST(ConfigTest, ParseByteSizeUnits) {
  const std::pair<const char*, uint64_t> good[] = {
      {"1", 1},
      {"512KiB", 512 * 1024},
      {"64MiB", uint64_t{64} << 20},
      {"1.5GiB", uint64_t{3} << 29},
      {"500MB", 500000000},
      {"2kB", 2000},
      {"1TiB", uint64_t{1} << 40},
  };
  for (const auto& [text, bytes] : good) {
    core::Result<uint64_t> r = ParseByteSize(text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().message();
    EXPECT_EQ(r.value(), bytes) << text;
  }
  for (const char* text : {"", "MiB", "1.2.3MiB", "64 MiB", "64mib", "0", "2TiB", "-1", "0.1"}) {
    EXPECT_FALSE(ParseByteSize(text).ok()) << text;
  }
}

TEST(ConfigTest, DumpDirFlagOverridesTheFile) {
  core::Result<AgentConfig> result = ParseAgentConfig("dumps:\n  dir: /a\n", "lw.yaml");
  ASSERT_TRUE(result.ok());
  AgentConfig c = result.value();
  ConfigOverrides o;
  o.dump_dir = "/b";
  ASSERT_TRUE(ApplyOverrides(o, &c).ok());
  EXPECT_EQ(c.dumps.dir, "/b");
  o.dump_dir = "";
  core::Status bad = ApplyOverrides(o, &c);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message(), "--dump-dir: expected a directory path");
}

TEST(ConfigTest, EveryKeyIsRead) {
  const char* yaml = R"(# full example
listen: 127.0.0.1:9900
interval: 500ms
web_config_file: /etc/lockwatch/web.yml
max_backoff: 1m
log:
  level: debug
  format: json
session:
  statement_timeout: 1500ms
  lock_timeout: 50ms
  connect_timeout: 3s
targets:
  - name: primary
    dsn: host=/var/run/postgresql dbname=app
    password_file: /run/secrets/pg
  - name: replica
    dsn: postgresql://monitor@replica.internal/app
)";
  core::Result<AgentConfig> result = ParseAgentConfig(yaml, "lw.yaml");
  ASSERT_TRUE(result.ok()) << result.status().message();
  const AgentConfig& c = result.value();
  EXPECT_EQ(c.listen, "127.0.0.1:9900");
  EXPECT_EQ(c.interval, milliseconds(500));
  EXPECT_EQ(c.web_config_file, "/etc/lockwatch/web.yml");
  EXPECT_EQ(c.max_backoff, milliseconds(60000));
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.format, "json");
  EXPECT_EQ(c.session.statement_timeout, milliseconds(1500));
  EXPECT_EQ(c.session.lock_timeout, milliseconds(50));
  EXPECT_EQ(c.session.connect_timeout, milliseconds(3000));
  ASSERT_EQ(c.targets.size(), 2u);
  EXPECT_EQ(c.targets[0].name, "primary");
  EXPECT_EQ(c.targets[0].dsn, "host=/var/run/postgresql dbname=app");
  EXPECT_EQ(c.targets[0].password_file, "/run/secrets/pg");
  EXPECT_EQ(c.targets[1].name, "replica");
  EXPECT_EQ(c.targets[1].dsn, "postgresql://monitor@replica.internal/app");
  EXPECT_EQ(c.targets[1].password_file, "");
}

TEST(ConfigTest, FlagsOverrideFileValues) {
  core::Result<AgentConfig> result = ParseAgentConfig(
      "listen: ':1234'\ninterval: 2s\nlog:\n  level: debug\ntargets:\n  - name: a\n    dsn: host=/a\n"
      "  - name: b\n    dsn: host=/b\n",
      "lw.yaml");
  ASSERT_TRUE(result.ok()) << result.status().message();
  AgentConfig c = result.value();
  ConfigOverrides o;
  o.dsn = "host=/tmp dbname=x";
  o.listen = "127.0.0.1:0";
  o.interval = "250ms";
  o.log_format = "json";
  o.web_config_file = "/w.yml";
  ASSERT_TRUE(ApplyOverrides(o, &c).ok());
  EXPECT_EQ(c.listen, "127.0.0.1:0");
  EXPECT_EQ(c.interval, milliseconds(250));
  EXPECT_EQ(c.log.level, "debug");  // not overridden
  EXPECT_EQ(c.log.format, "json");
  EXPECT_EQ(c.web_config_file, "/w.yml");
  ASSERT_EQ(c.targets.size(), 1u);
  EXPECT_EQ(c.targets[0].name, "default");
  EXPECT_EQ(c.targets[0].dsn, "host=/tmp dbname=x");
}

TEST(ConfigTest, NoOverridesKeepTheFileTargets) {
  core::Result<AgentConfig> result =
      ParseAgentConfig("targets:\n  - name: a\n    dsn: host=/a\n  - name: b\n    dsn: host=/b\n", "lw.yaml");
  ASSERT_TRUE(result.ok()) << result.status().message();
  AgentConfig c = result.value();
  ASSERT_TRUE(ApplyOverrides(ConfigOverrides{}, &c).ok());
  ASSERT_EQ(c.targets.size(), 2u);
  EXPECT_EQ(c.targets[1].name, "b");
}

TEST(ConfigTest, DsnFlagAloneGivesOneDefaultTarget) {
  AgentConfig c;
  ConfigOverrides o;
  o.dsn = "postgresql://monitor@localhost/app";
  ASSERT_TRUE(ApplyOverrides(o, &c).ok());
  ASSERT_EQ(c.targets.size(), 1u);
  EXPECT_EQ(c.targets[0].name, "default");
  EXPECT_EQ(c.listen, ":9817");
  EXPECT_EQ(c.interval, milliseconds(1000));
}

struct BadFlagCase {
  const char* name;
  ConfigOverrides overrides;
  const char* prefix;
};

TEST(ConfigTest, BadFlagValuesNameTheFlag) {
  const BadFlagCase cases[] = {
      {"interval",
       ConfigOverrides{std::nullopt, std::nullopt, "soon", std::nullopt, std::nullopt, std::nullopt,
                       std::nullopt},
       "--interval: expected a duration"},
      {"listen",
       ConfigOverrides{std::nullopt, "nowhere", std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                       std::nullopt},
       "--listen: expected a listen address"},
      {"level",
       ConfigOverrides{std::nullopt, std::nullopt, std::nullopt, std::nullopt, "loud", std::nullopt,
                       std::nullopt},
       "--log-level: expected"},
      {"format",
       ConfigOverrides{std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt, "xml",
                       std::nullopt},
       "--log-format: expected text or json"},
      {"dsn",
       ConfigOverrides{"host=/tmp password=s3cretpw bogus=1", std::nullopt, std::nullopt, std::nullopt,
                       std::nullopt, std::nullopt, std::nullopt},
       "--dsn: "},
  };
  for (const BadFlagCase& c : cases) {
    AgentConfig config;
    core::Status s = ApplyOverrides(c.overrides, &config);
    ASSERT_FALSE(s.ok()) << c.name;
    EXPECT_EQ(s.message().rfind(c.prefix, 0), 0u) << c.name << ": " << s.message();
    EXPECT_EQ(s.message().find("s3cretpw"), std::string::npos) << s.message();
  }
}

TEST(ConfigTest, ParseDurationAcceptsUnitsAndCombinations) {
  const std::pair<const char*, int64_t> cases[] = {
      {"500ms", 500},   {"2s", 2000},   {"1m", 60000}, {"1h", 3600000},
      {"1m30s", 90000}, {"1.5s", 1500}, {"1ms", 1},    {"30d", int64_t{30} * 86400000},
  };
  for (const auto& [text, ms] : cases) {
    core::Result<milliseconds> d = ParseDuration(text);
    ASSERT_TRUE(d.ok()) << text << ": " << d.status().message();
    EXPECT_EQ(d.value().count(), ms) << text;
  }
}

TEST(ConfigTest, ParseDurationRejectsMalformedText) {
  for (const char* text : {"", "fast", "10", "1x", "s", "-1s", "0s", "1..5s", "1 s", "1S", "367d", "9000h"}) {
    EXPECT_FALSE(ParseDuration(text).ok()) << text;
  }
}

TEST(ConfigTest, ValidateListenAcceptsHostPortForms) {
  for (const char* ok : {":9817", "0.0.0.0:9817", "127.0.0.1:0", "[::1]:9817", "localhost:65535"}) {
    EXPECT_TRUE(ValidateListen(ok).ok()) << ok;
  }
  for (const char* bad : {"9817", "", ":", ":abc", "[::1:9817", "host:123456"}) {
    EXPECT_FALSE(ValidateListen(bad).ok()) << bad;
  }
}

TEST(ConfigTest, LoadAgentConfigNamesTheFilePath) {
  char path[] = "/tmp/lockwatch-config-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "targets:\n  - name: ok\n    dsn: host=/tmp\n    bad_key: 1\n";
  }
  core::Result<AgentConfig> result = LoadAgentConfig(path);
  std::remove(path);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message().rfind(std::string(path) + ":4:5: unknown key \"bad_key\"", 0), 0u)
      << result.status().message();
}

TEST(ConfigTest, LoadAgentConfigReportsAMissingFile) {
  core::Result<AgentConfig> result = LoadAgentConfig("/nonexistent/lockwatch.yaml");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("/nonexistent/lockwatch.yaml: cannot read config file"),
            std::string::npos)
      << result.status().message();
}

}  // namespace
}  // namespace lockwatch::config
