#include <string>

#include <gtest/gtest.h>

#include "agent/web/http_server.h"

#include "tests/web/web_test_support.h"

namespace lockwatch::web {
namespace {

using testing::BcryptHash;
using testing::TempDir;
using testing::WriteFile;

// Replaces every occurrence of `from` in `text`.
std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size()) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

class WebConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Contents do not matter to LoadWebConfig: it checks that the files exist and can be read.
    WriteFile(dir_.File("server.crt"), "cert");
    WriteFile(dir_.File("server.key"), "key");
    WriteFile(dir_.File("ca.crt"), "ca");
  }

  core::Result<WebConfig> Load(const std::string& yaml) {
    const std::string path = dir_.File("web.yml");
    WriteFile(path, yaml);
    return LoadWebConfig(path);
  }

  TempDir dir_;
};

TEST_F(WebConfigTest, EmptyFileMeansPlainHttpWithoutAuth) {
  for (const std::string yaml : {"", "# only a comment\n", "---\n"}) {
    SCOPED_TRACE(yaml);
    const auto config = Load(yaml);
    ASSERT_TRUE(config.ok()) << config.status().message();
    EXPECT_FALSE(config.value().tls_enabled());
    EXPECT_TRUE(config.value().basic_auth_users.empty());
  }
}

TEST_F(WebConfigTest, EmptySectionsMeanNoTlsAndNoAuth) {
  const auto config = Load("tls_server_config:\nbasic_auth_users: {}\n");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_FALSE(config.value().tls_enabled());
  EXPECT_TRUE(config.value().basic_auth_users.empty());
}

TEST_F(WebConfigTest, ReadsFullConfigAndResolvesRelativePathsAgainstTheConfigFile) {
  const std::string hash = BcryptHash("secret");
  const auto config = Load(
      "tls_server_config:\n"
      "  cert_file: server.crt\n"
      "  key_file: " +
      dir_.File("server.key") +
      "\n"
      "  client_ca_file: ca.crt\n"
      "  client_auth_type: RequireAndVerifyClientCert\n"
      "  min_version: TLS13\n"
      "basic_auth_users:\n"
      "  alice: " +
      hash +
      "\n"
      "  bob: '" +
      hash + "'\n");
  ASSERT_TRUE(config.ok()) << config.status().message();
  const WebConfig& c = config.value();
  EXPECT_TRUE(c.tls_enabled());
  EXPECT_EQ(c.cert_file, dir_.File("server.crt"));
  EXPECT_EQ(c.key_file, dir_.File("server.key"));
  EXPECT_EQ(c.client_ca_file, dir_.File("ca.crt"));
  EXPECT_EQ(c.client_auth_type, "RequireAndVerifyClientCert");
  EXPECT_EQ(c.min_version, "TLS13");
  EXPECT_EQ(c.max_version, "TLS13");
  ASSERT_EQ(c.basic_auth_users.size(), 2U);
  EXPECT_EQ(c.basic_auth_users.at("alice"), hash);
  EXPECT_EQ(c.basic_auth_users.at("bob"), hash);
}

TEST_F(WebConfigTest, DefaultsMatchExporterToolkit) {
  const auto config = Load("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config.value().client_auth_type, "NoClientCert");
  EXPECT_EQ(config.value().min_version, "TLS12");
  EXPECT_EQ(config.value().max_version, "TLS13");
}

struct ErrorCase {
  const char* name;
  std::string yaml;   // CERT / KEY / CA / HASH are replaced by valid values
  const char* where;  // ":line:column:" expected in the message
  const char* what;   // expected in the message
};

TEST_F(WebConfigTest, ErrorsNameFileLineColumnAndWhatWasExpected) {
  const std::string tls = "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n";
  const ErrorCase cases[] = {
      {"unknown top-level key", "tls_server_confg:\n  cert_file: CERT\n",
       ":1:1:", "unknown key \"tls_server_confg\"; expected tls_server_config or basic_auth_users"},
      {"unknown tls key", tls + "  cert_fil: CERT\n",
       ":4:3:", "unknown key \"cert_fil\" in tls_server_config"},
      {"unsupported exporter-toolkit key", tls + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
       ":4:3:", "lockwatch does not support"},
      {"http_server_config unsupported", "http_server_config:\n  http2: false\n",
       ":1:1:", "lockwatch does not support"},
      {"users is a list", "basic_auth_users:\n  - alice\n",
       ":2:3:", "expected a mapping of user: bcrypt-hash"},
      {"tls is a scalar", "tls_server_config: yes\n", ":1:20:", "expected a mapping for tls_server_config"},
      {"cert_file is a list", "tls_server_config:\n  cert_file: [a, b]\n  key_file: KEY\n",
       ":2:14:", "expected a string for tls_server_config.cert_file, got a list"},
      {"top level is a list", "- a\n- b\n", ":1:1:", "expected a mapping"},
      {"missing cert file", "tls_server_config:\n  cert_file: missing.crt\n  key_file: KEY\n",
       ":2:14:", "missing.crt\" cannot be read"},
      {"missing key file", "tls_server_config:\n  cert_file: CERT\n  key_file: /nonexistent/k.pem\n",
       ":3:13:", "key_file \"/nonexistent/k.pem\" cannot be read"},
      {"missing ca file",
       tls + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: nope.crt\n",
       ":5:19:", "client_ca_file"},
      {"cert without key", "tls_server_config:\n  cert_file: CERT\n", ":2:3:", "needs key_file"},
      {"key without cert", "tls_server_config:\n  key_file: KEY\n", ":2:3:", "needs cert_file"},
      {"bad client_auth_type", tls + "  client_auth_type: RequireClientCert\n",
       ":4:21:", "invalid client_auth_type \"RequireClientCert\"; expected NoClientCert"},
      {"verification without ca", tls + "  client_auth_type: VerifyClientCertIfGiven\n",
       ":4:21:", "needs client_ca_file"},
      {"ca without client auth", tls + "  client_ca_file: CA\n",
       ":4:19:", "client_auth_type is NoClientCert"},
      {"bad min_version", tls + "  min_version: TLS1.2\n", ":4:16:", "invalid TLS version \"TLS1.2\""},
      {"max below min", tls + "  min_version: TLS13\n  max_version: TLS12\n", ":5:16:", "below min_version"},
      {"bad hash", "basic_auth_users:\n  alice: notahash\n",
       ":2:10:", "basic_auth_users.alice is not a bcrypt hash"},
      {"md5 hash", "basic_auth_users:\n  alice: $1$saltsalt$hashhashhashhashhashha\n",
       ":2:10:", "is not a bcrypt hash"},
      {"user with colon", "basic_auth_users:\n  'a:b': HASH\n", ":2:3:", "contains ':'"},
      {"duplicate user", "basic_auth_users:\n  alice: HASH\n  alice: HASH\n",
       ":3:3:", "duplicate key \"alice\""},
      {"invalid yaml", "tls_server_config:\n  cert_file: [unclosed\n", ":3:1:", "invalid YAML"},
      {"tab indentation", "basic_auth_users:\n\talice: HASH\n", ":2:", "invalid YAML"},
  };
  const std::string hash = BcryptHash("pw");
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string yaml = Replace(c.yaml, "CERT", "server.crt");
    yaml = Replace(yaml, "KEY", "server.key");
    yaml = Replace(yaml, "CA", "ca.crt");
    yaml = Replace(yaml, "HASH", hash);
    const auto config = Load(yaml);
    ASSERT_FALSE(config.ok()) << yaml;
    EXPECT_EQ(config.status().code(), core::Status::Code::kInvalidArgument);
    const std::string& message = config.status().message();
    EXPECT_EQ(message.rfind(dir_.File("web.yml") + c.where, 0), 0U) << message;
    EXPECT_NE(message.find(c.what), std::string::npos) << message;
  }
}

TEST_F(WebConfigTest, BadHashErrorDoesNotEchoTheHash) {
  const auto config = Load("basic_auth_users:\n  alice: $2b$05$tooshorthashvalue\n");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message().find("tooshorthashvalue"), std::string::npos)
      << config.status().message();
}

TEST_F(WebConfigTest, MissingFileIsAnErrorNamingIt) {
  const auto config = LoadWebConfig(dir_.File("absent.yml"));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), core::Status::Code::kInvalidArgument);
  EXPECT_NE(config.status().message().find(dir_.File("absent.yml")), std::string::npos);
}

}  // namespace
}  // namespace lockwatch::web
