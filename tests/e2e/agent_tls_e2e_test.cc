// The whole agent behind its exporter-toolkit web config: HTTPS with a verified client certificate and basic
// auth, scraped with the real curl, and a stalled TLS client that must not delay SIGTERM.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/e2e/e2e_harness.h"
#include "tests/web/web_test_support.h"

namespace lockwatch::e2e {
namespace {

using std::chrono::seconds;
using web::testing::BcryptHash;
using web::testing::Curl;
using web::testing::CurlResult;
using web::testing::MakeTestPki;
using web::testing::TestPki;

// An agent on 127.0.0.1:0 logs the real port; over TLS the harness's plain-HTTP helpers do not apply, so the
// test talks to it with curl.
std::string HttpsUrl(const Agent& agent, const std::string& path) {
  return "https://127.0.0.1:" + std::to_string(agent.port()) + path;
}

TEST(AgentTlsE2eTest, ServesMetricsOnlyToVerifiedClientsWithTheRightPassword) {
  TempDir dir("lockwatch-e2e-tls");
  const TestPki pki = MakeTestPki(dir.path());
  const std::string web_config = dir.File("web.yml");
  WriteFile(web_config,
            "tls_server_config:\n"
            "  cert_file: " +
                pki.server_cert + "\n" + "  key_file: " + pki.server_key + "\n" +
                "  client_auth_type: RequireAndVerifyClientCert\n"
                "  client_ca_file: " +
                pki.ca_cert + "\n" +
                "basic_auth_users:\n"
                "  prometheus: " +
                BcryptHash("s3cret-scrape") + "\n");
  Agent agent(dir.path(), {"--dsn", TestDsn(), "--listen", "127.0.0.1:0", "--interval", "200ms",
                           "--web.config.file", web_config});
  ASSERT_NE(agent.port(), 0) << agent.Log();
  const std::vector<std::string> good_cert = {"--cacert",      pki.ca_cert, "--cert",
                                              pki.client_cert, "--key",     pki.client_key};
  std::vector<std::string> good = good_cert;
  good.insert(good.end(), {"-u", "prometheus:s3cret-scrape"});

  // Verified client, right password: the metrics, with the target up once it has polled.
  CurlResult scrape;
  EXPECT_TRUE(Eventually(
      [&] {
        scrape = Curl(HttpsUrl(agent, "/metrics"), good);
        return scrape.http_status == 200 &&
               SeriesValue(scrape.body, "lockwatch_up{target=\"default\"}") == 1.0;
      },
      std::chrono::milliseconds(10000)))
      << scrape.exit_code << " " << scrape.http_status << " " << scrape.error << "\n"
      << agent.Log();

  // Right certificate, wrong or missing password: 401.
  std::vector<std::string> wrong_password = good_cert;
  wrong_password.insert(wrong_password.end(), {"-u", "prometheus:guess"});
  EXPECT_EQ(Curl(HttpsUrl(agent, "/metrics"), wrong_password).http_status, 401);
  EXPECT_EQ(Curl(HttpsUrl(agent, "/metrics"), good_cert).http_status, 401);

  // No client certificate, or one from another CA: the TLS handshake fails, nothing is served.
  std::vector<std::string> no_cert = {"--cacert", pki.ca_cert, "-u", "prometheus:s3cret-scrape"};
  const CurlResult without_cert = Curl(HttpsUrl(agent, "/metrics"), no_cert);
  EXPECT_NE(without_cert.exit_code, 0);
  EXPECT_EQ(without_cert.http_status, 0);
  std::vector<std::string> foreign = {"--cacert", pki.ca_cert,          "--cert", pki.other_client_cert,
                                      "--key",    pki.other_client_key, "-u",     "prometheus:s3cret-scrape"};
  const CurlResult foreign_cert = Curl(HttpsUrl(agent, "/metrics"), foreign);
  EXPECT_NE(foreign_cert.exit_code, 0);
  EXPECT_EQ(foreign_cert.http_status, 0);

  // The server is not trusted without the CA (certificate verification stays on).
  EXPECT_EQ(Curl(HttpsUrl(agent, "/metrics"), {"--cert", pki.client_cert, "--key", pki.client_key}).exit_code,
            60);

  // Probes: /healthz needs no password (a verified certificate is still required by the TLS layer).
  EXPECT_EQ(Curl(HttpsUrl(agent, "/healthz"), good_cert).http_status, 200);

  // The password is never logged.
  EXPECT_EQ(agent.Log().find("s3cret-scrape"), std::string::npos);

  // A client that opens a TCP connection and never starts the TLS handshake must not delay shutdown.
  const int stalled = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(stalled, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(agent.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(stalled, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto sent = Clock::now();
  agent.process().Signal(SIGTERM);
  EXPECT_EQ(agent.process().WaitExit(seconds(2)), 0) << agent.Log();
  EXPECT_LT(Clock::now() - sent, seconds(2));
  ::close(stalled);
}

}  // namespace
}  // namespace lockwatch::e2e
