// End-to-end tests of HttpServer: real servers on loopback, the real curl binary as client, a PKI made
// with the openssl CLI.
#include "agent/web/http_server.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/web/web_test_support.h"

namespace lockwatch::web {
namespace {

using testing::BcryptHash;
using testing::Curl;
using testing::CurlResult;
using testing::TempDir;
using testing::TestPki;

constexpr const char* kMetricsText =
    "# HELP lockwatch_up Whether the last poll succeeded.\n# TYPE lockwatch_up gauge\nlockwatch_up 1\n";

// A connected TCP socket that never sends anything.
class IdleConnection {
 public:
  explicit IdleConnection(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~IdleConnection() { close(fd_); }
  IdleConnection(const IdleConnection&) = delete;
  IdleConnection& operator=(const IdleConnection&) = delete;

  bool connected() const { return connected_; }

  // True when the server closes the connection within `timeout`.
  bool ClosedByServerWithin(std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (poll(&p, 1, static_cast<int>(left.count()) + 1) <= 0) continue;
      char buf[512];
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return true;  // EOF or reset
    }
    return false;
  }

 private:
  int fd_;
  bool connected_ = false;
};

class HttpServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    pki_ = new TestPki(testing::MakeTestPki(dir_->path()));
    alice_hash_ = new std::string(BcryptHash("wonderland"));
  }
  static void TearDownTestSuite() {
    delete alice_hash_;
    delete pki_;
    delete dir_;
  }

  Handlers MakeHandlers() {
    Handlers h;
    h.metrics = [this] {
      ++scrapes_;
      return std::string(kMetricsText);
    };
    h.ready = [this] { return ready_.load(); };
    h.landing_title = "lockwatch 9.9.9";
    return h;
  }

  WebConfig TlsConfig() const {
    WebConfig c;
    c.cert_file = pki_->server_cert;
    c.key_file = pki_->server_key;
    return c;
  }

  // Starts `server` on an ephemeral loopback port.
  static void StartOnLoopback(HttpServer& server) {
    const core::Status s = server.Start("127.0.0.1:0");
    ASSERT_TRUE(s.ok()) << s.message();
    ASSERT_GT(server.port(), 0);
  }

  static std::string Url(const HttpServer& server, const std::string& path,
                         const std::string& host = "127.0.0.1") {
    return std::string(server.tls() ? "https" : "http") + "://" + host + ":" + std::to_string(server.port()) +
           path;
  }

  std::vector<std::string> TrustCa() const { return {"--cacert", pki_->ca_cert}; }

  static TempDir* dir_;
  static TestPki* pki_;
  static std::string* alice_hash_;
  std::atomic<bool> ready_{false};
  std::atomic<int> scrapes_{0};
};

TempDir* HttpServerTest::dir_ = nullptr;
TestPki* HttpServerTest::pki_ = nullptr;
std::string* HttpServerTest::alice_hash_ = nullptr;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_F(HttpServerTest, PlainHttpServesEachPath) {
  HttpServer server(WebConfig{}, MakeHandlers());
  StartOnLoopback(server);
  struct Case {
    const char* path;
    int status;
    const char* content_type;
    const char* body_contains;
  };
  const Case cases[] = {
      {"/", 200, "text/html; charset=utf-8", "<a href=\"metrics\">"},
      {"/", 200, "text/html; charset=utf-8", "<title>lockwatch 9.9.9</title>"},
      {"/metrics", 200, "text/plain; version=0.0.4; charset=utf-8", "lockwatch_up 1\n"},
      {"/metrics?name[]=x", 200, "text/plain; version=0.0.4; charset=utf-8", "lockwatch_up 1\n"},
      {"/healthz", 200, "text/plain; charset=utf-8", "ok"},
      {"/readyz", 503, "text/plain; charset=utf-8", "not ready"},
      {"/nope", 404, "text/plain; charset=utf-8", "404 page not found"},
      {"/metrics/extra", 404, "text/plain; charset=utf-8", "404"},
      {"/index.html", 404, "text/plain; charset=utf-8", "404"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    const CurlResult r = Curl(Url(server, c.path), {"-g"});
    ASSERT_EQ(r.exit_code, 0) << r.error;
    EXPECT_EQ(r.http_status, c.status);
    EXPECT_TRUE(Contains(r.headers, std::string("Content-Type: ") + c.content_type + "\r\n")) << r.headers;
    EXPECT_TRUE(Contains(r.body, c.body_contains)) << r.body;
  }
  EXPECT_EQ(Curl(Url(server, "/metrics")).body, kMetricsText);
}

TEST_F(HttpServerTest, HealthzIsOkWhileReadyzFollowsTheReadyCallback) {
  HttpServer server(WebConfig{}, MakeHandlers());
  StartOnLoopback(server);
  ready_ = false;
  EXPECT_EQ(Curl(Url(server, "/healthz")).http_status, 200);
  EXPECT_EQ(Curl(Url(server, "/readyz")).http_status, 503);
  ready_ = true;
  EXPECT_EQ(Curl(Url(server, "/healthz")).http_status, 200);
  const CurlResult r = Curl(Url(server, "/readyz"));
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.body, "ready\n");
}

TEST_F(HttpServerTest, HeadIsServedAndOtherMethodsAreRefused) {
  HttpServer server(WebConfig{}, MakeHandlers());
  StartOnLoopback(server);
  const CurlResult head = Curl(Url(server, "/metrics"), {"-I"});
  EXPECT_EQ(head.exit_code, 0) << head.error;
  EXPECT_EQ(head.http_status, 200);
  EXPECT_TRUE(Contains(head.headers, "Content-Type: text/plain; version=0.0.4; charset=utf-8"))
      << head.headers;
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
    SCOPED_TRACE(method);
    const CurlResult r = Curl(Url(server, "/metrics"), {"-X", method});
    EXPECT_EQ(r.http_status, 405);
    EXPECT_TRUE(Contains(r.headers, "Allow: GET, HEAD")) << r.headers;
  }
}

TEST_F(HttpServerTest, LandingTitleIsEscaped) {
  Handlers h = MakeHandlers();
  h.landing_title = "<lockwatch & \"co\">";
  HttpServer server(WebConfig{}, h);
  StartOnLoopback(server);
  const CurlResult r = Curl(Url(server, "/"));
  EXPECT_TRUE(Contains(r.body, "<h1>&lt;lockwatch &amp; &quot;co&quot;&gt;</h1>")) << r.body;
  EXPECT_FALSE(Contains(r.body, "<lockwatch")) << r.body;
}

TEST_F(HttpServerTest, FailingOrMissingCallbacksGiveErrorsWithoutDetails) {
  Handlers throwing;
  throwing.metrics = []() -> std::string { throw std::runtime_error("secret internal detail"); };
  HttpServer a(WebConfig{}, throwing);
  StartOnLoopback(a);
  const CurlResult r = Curl(Url(a, "/metrics"));
  EXPECT_EQ(r.http_status, 500);
  EXPECT_FALSE(Contains(r.headers + r.body, "secret internal detail")) << r.headers << r.body;
  // No ready callback counts as ready; no metrics callback is 503.
  EXPECT_EQ(Curl(Url(a, "/readyz")).http_status, 200);
  HttpServer b(WebConfig{}, Handlers{});
  StartOnLoopback(b);
  EXPECT_EQ(Curl(Url(b, "/metrics")).http_status, 503);
}

TEST_F(HttpServerTest, MetricsAreGzippedWhenTheScraperAsks) {
  HttpServer server(WebConfig{}, MakeHandlers());
  StartOnLoopback(server);
  // Prometheus sends "Accept-Encoding: gzip".
  const CurlResult r = Curl(Url(server, "/metrics"), {"--compressed", "-H", "Accept-Encoding: gzip"});
  EXPECT_EQ(r.http_status, 200);
  EXPECT_TRUE(Contains(r.headers, "Content-Encoding: gzip")) << r.headers;
  EXPECT_EQ(r.body, kMetricsText);
}

TEST_F(HttpServerTest, HttpsIsVerifiableWithTheCaAndUntrustedWithoutIt) {
  HttpServer server(TlsConfig(), MakeHandlers());
  StartOnLoopback(server);
  ASSERT_TRUE(server.tls());
  for (const char* host : {"127.0.0.1", "localhost"}) {
    SCOPED_TRACE(host);
    const CurlResult ok = Curl(Url(server, "/metrics", host), TrustCa());
    EXPECT_EQ(ok.exit_code, 0) << ok.error;
    EXPECT_EQ(ok.http_status, 200);
    EXPECT_EQ(ok.body, kMetricsText);
  }
  const CurlResult untrusted = Curl(Url(server, "/metrics"));
  EXPECT_EQ(untrusted.exit_code, 60) << untrusted.error;  // peer certificate cannot be authenticated
  EXPECT_EQ(untrusted.http_status, 0);
  // Plain HTTP to the HTTPS port gets no metrics.
  const CurlResult plain = Curl("http://127.0.0.1:" + std::to_string(server.port()) + "/metrics");
  EXPECT_NE(plain.http_status, 200);
  EXPECT_FALSE(Contains(plain.body, "lockwatch_up"));
}

TEST_F(HttpServerTest, ClientCertificatePoliciesFollowExporterToolkitSemantics) {
  enum Client { kNone, kGood, kOtherCa };
  struct Case {
    const char* auth_type;
    bool ca;
    bool none_ok;
    bool good_ok;
    bool other_ok;
  };
  const Case cases[] = {
      {"NoClientCert", false, true, true, true},
      {"RequestClientCert", false, true, true, true},
      {"RequireAnyClientCert", false, false, true, true},
      {"VerifyClientCertIfGiven", true, true, true, false},
      {"RequireAndVerifyClientCert", true, false, true, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.auth_type);
    WebConfig config = TlsConfig();
    config.client_auth_type = c.auth_type;
    if (c.ca) config.client_ca_file = pki_->ca_cert;
    HttpServer server(config, MakeHandlers());
    StartOnLoopback(server);
    for (const Client client : {kNone, kGood, kOtherCa}) {
      SCOPED_TRACE(client == kNone   ? "no client cert"
                   : client == kGood ? "client cert from the CA"
                                     : "other CA");
      std::vector<std::string> args = TrustCa();
      if (client == kGood) args.insert(args.end(), {"--cert", pki_->client_cert, "--key", pki_->client_key});
      if (client == kOtherCa) {
        args.insert(args.end(), {"--cert", pki_->other_client_cert, "--key", pki_->other_client_key});
      }
      const bool expect_ok = client == kNone ? c.none_ok : client == kGood ? c.good_ok : c.other_ok;
      const CurlResult r = Curl(Url(server, "/metrics"), args);
      if (expect_ok) {
        EXPECT_EQ(r.exit_code, 0) << r.error;
        EXPECT_EQ(r.http_status, 200);
        EXPECT_EQ(r.body, kMetricsText);
      } else {
        EXPECT_NE(r.exit_code, 0);
        EXPECT_EQ(r.http_status, 0);  // the handshake failed: no HTTP response at all
        EXPECT_FALSE(Contains(r.body, "lockwatch_up"));
      }
    }
  }
}

TEST_F(HttpServerTest, MinVersionTls13RefusesTls12Clients) {
  WebConfig config = TlsConfig();
  config.min_version = "TLS13";
  HttpServer server(config, MakeHandlers());
  StartOnLoopback(server);
  std::vector<std::string> tls12 = TrustCa();
  tls12.insert(tls12.end(), {"--tls-max", "1.2"});
  const CurlResult old_client = Curl(Url(server, "/metrics"), tls12);
  EXPECT_NE(old_client.exit_code, 0);
  EXPECT_EQ(old_client.http_status, 0);
  const CurlResult new_client = Curl(Url(server, "/metrics"), TrustCa());
  EXPECT_EQ(new_client.http_status, 200) << new_client.error;
}

struct AuthCase {
  const char* name;
  const char* path;
  std::vector<std::string> credentials;  // curl arguments
  int status;
};

std::vector<AuthCase> AuthCases() {
  return {
      {"right password", "/metrics", {"-u", "alice:wonderland"}, 200},
      {"wrong password", "/metrics", {"-u", "alice:looking-glass"}, 401},
      {"no credentials", "/metrics", {}, 401},
      {"unknown user", "/metrics", {"-u", "mallory:wonderland"}, 401},
      {"empty password", "/metrics", {"-u", "alice:"}, 401},
      {"not basic", "/metrics", {"-H", "Authorization: Bearer wonderland"}, 401},
      {"landing page needs auth", "/", {}, 401},
      {"readyz needs auth", "/readyz", {}, 401},
      {"unknown path needs auth", "/nope", {}, 401},
      {"unknown path with auth", "/nope", {"-u", "alice:wonderland"}, 404},
      {"healthz needs no auth", "/healthz", {}, 200},
      {"healthz with wrong auth", "/healthz", {"-u", "alice:wrong"}, 200},
  };
}

void ExpectAuthCases(const std::string& base_url, const std::vector<std::string>& tls_args) {
  for (const auto& c : AuthCases()) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> args = tls_args;
    args.insert(args.end(), c.credentials.begin(), c.credentials.end());
    const CurlResult r = Curl(base_url + c.path, args);
    EXPECT_EQ(r.exit_code, 0) << r.error;
    EXPECT_EQ(r.http_status, c.status);
    if (c.status == 401) {
      EXPECT_TRUE(Contains(r.headers, "WWW-Authenticate: Basic realm=\"lockwatch\"\r\n")) << r.headers;
      EXPECT_FALSE(Contains(r.body, "lockwatch_up"));
    }
    if (c.status == 200 && std::string(c.path) == "/metrics") {
      EXPECT_EQ(r.body, kMetricsText);
    }
  }
}

TEST_F(HttpServerTest, BasicAuthOverHttp) {
  WebConfig config;
  config.basic_auth_users = {{"alice", *alice_hash_}, {"bob", BcryptHash("builder")}};
  HttpServer server(config, MakeHandlers());
  StartOnLoopback(server);
  ExpectAuthCases(Url(server, ""), {});
  EXPECT_EQ(Curl(Url(server, "/metrics"), {"-u", "bob:builder"}).http_status, 200);
  EXPECT_EQ(Curl(Url(server, "/metrics"), {"-u", "bob:wonderland"}).http_status, 401);
}

TEST_F(HttpServerTest, BasicAuthOverHttpsWithClientCertificates) {
  WebConfig config = TlsConfig();
  config.client_auth_type = "RequireAndVerifyClientCert";
  config.client_ca_file = pki_->ca_cert;
  config.basic_auth_users = {{"alice", *alice_hash_}};
  HttpServer server(config, MakeHandlers());
  StartOnLoopback(server);
  std::vector<std::string> tls = TrustCa();
  tls.insert(tls.end(), {"--cert", pki_->client_cert, "--key", pki_->client_key});
  ExpectAuthCases(Url(server, ""), tls);
}

TEST_F(HttpServerTest, ConcurrentScrapesAllSucceed) {
  HttpServer server(TlsConfig(), MakeHandlers());
  StartOnLoopback(server);
  constexpr int kScrapers = 12;
  std::vector<CurlResult> results(kScrapers);
  std::vector<std::thread> threads;
  threads.reserve(kScrapers);
  for (int i = 0; i < kScrapers; ++i) {
    threads.emplace_back([&, i] { results[i] = Curl(Url(server, "/metrics"), TrustCa()); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    EXPECT_EQ(r.http_status, 200) << r.error;
    EXPECT_EQ(r.body, kMetricsText);
  }
  EXPECT_EQ(scrapes_.load(), kScrapers);
}

TEST_F(HttpServerTest, SilentTlsConnectionsDoNotBlockScrapes) {
  ServerOptions options;
  options.threads = 2;
  options.read_timeout_ms = 1500;
  options.keep_alive_timeout_s = 1;
  HttpServer server(TlsConfig(), MakeHandlers(), options);
  StartOnLoopback(server);

  // One silent client holds one worker; the other worker serves a scrape at once.
  {
    IdleConnection idle(server.port());
    ASSERT_TRUE(idle.connected());
    const auto start = std::chrono::steady_clock::now();
    const CurlResult r = Curl(Url(server, "/metrics"), TrustCa());
    EXPECT_EQ(r.http_status, 200) << r.error;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1200));
    // The read timeout frees the worker: the server closes the silent connection.
    EXPECT_TRUE(idle.ClosedByServerWithin(std::chrono::milliseconds(4000)));
  }
  // As many silent clients as workers: the scrape waits for the timeout, then succeeds.
  std::vector<std::unique_ptr<IdleConnection>> idle;
  for (int i = 0; i < options.threads; ++i) {
    idle.push_back(std::make_unique<IdleConnection>(server.port()));
    ASSERT_TRUE(idle.back()->connected());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the workers pick them up
  const CurlResult r = Curl(Url(server, "/metrics"), TrustCa());
  EXPECT_EQ(r.http_status, 200) << r.error;
  for (const auto& c : idle) EXPECT_TRUE(c->ClosedByServerWithin(std::chrono::milliseconds(4000)));
}

TEST_F(HttpServerTest, StopIsIdempotentAndFreesThePort) {
  auto server = std::make_unique<HttpServer>(WebConfig{}, MakeHandlers());
  StartOnLoopback(*server);
  const int port = server->port();
  ASSERT_EQ(Curl(Url(*server, "/healthz")).http_status, 200);
  server->Stop();
  server->Stop();
  EXPECT_EQ(server->port(), 0);
  const CurlResult refused = Curl("http://127.0.0.1:" + std::to_string(port) + "/healthz");
  EXPECT_EQ(refused.exit_code, 7) << refused.error;  // connection refused

  HttpServer again(WebConfig{}, MakeHandlers());
  const core::Status s = again.Start("127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(again.port(), port);
  EXPECT_EQ(Curl(Url(again, "/healthz")).http_status, 200);
  // A stopped server can be started again.
  ASSERT_TRUE(server->Start("127.0.0.1:0").ok());
  EXPECT_EQ(Curl(Url(*server, "/healthz")).http_status, 200);
}

TEST_F(HttpServerTest, StopWithSilentClientsIsBoundedByTheTimeouts) {
  ServerOptions options;
  options.read_timeout_ms = 1000;
  options.keep_alive_timeout_s = 1;
  for (const bool tls : {false, true}) {
    SCOPED_TRACE(tls ? "https" : "http");
    HttpServer server(tls ? TlsConfig() : WebConfig{}, MakeHandlers(), options);
    StartOnLoopback(server);
    IdleConnection idle(server.port());
    ASSERT_TRUE(idle.connected());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a worker now waits on it
    const auto start = std::chrono::steady_clock::now();
    server.Stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500));
    EXPECT_TRUE(idle.ClosedByServerWithin(std::chrono::milliseconds(100)));
  }
}

TEST_F(HttpServerTest, StartTwiceIsAnError) {
  HttpServer server(WebConfig{}, MakeHandlers());
  StartOnLoopback(server);
  EXPECT_EQ(server.Start("127.0.0.1:0").code(), core::Status::Code::kInternal);
}

TEST_F(HttpServerTest, PortInUseIsUnavailableNamingTheAddress) {
  HttpServer first(WebConfig{}, MakeHandlers());
  StartOnLoopback(first);
  const std::string address = "127.0.0.1:" + std::to_string(first.port());
  for (const bool tls : {false, true}) {
    SCOPED_TRACE(tls ? "https" : "http");
    HttpServer second(tls ? TlsConfig() : WebConfig{}, MakeHandlers());
    const core::Status s = second.Start(address);
    EXPECT_EQ(s.code(), core::Status::Code::kUnavailable);
    EXPECT_TRUE(Contains(s.message(), address)) << s.message();
    EXPECT_TRUE(Contains(s.message(), "in use")) << s.message();
  }
  EXPECT_EQ(Curl(Url(first, "/healthz")).http_status, 200);  // the first one is unharmed
}

TEST_F(HttpServerTest, BadListenAddressesAreInvalidArguments) {
  for (const char* listen : {"nonsense", "127.0.0.1:99999", "::1:9187", "192.0.2.1:0"}) {
    SCOPED_TRACE(listen);
    HttpServer server(WebConfig{}, MakeHandlers());
    const core::Status s = server.Start(listen);
    EXPECT_EQ(s.code(), core::Status::Code::kInvalidArgument) << s.message();
    EXPECT_EQ(server.port(), 0);
  }
}

TEST_F(HttpServerTest, ListensOnIpv6LoopbackAndOnAllAddresses) {
  HttpServer v6(WebConfig{}, MakeHandlers());
  ASSERT_TRUE(v6.Start("[::1]:0").ok());
  const CurlResult r6 = Curl("http://[::1]:" + std::to_string(v6.port()) + "/healthz", {"-g"});
  EXPECT_EQ(r6.http_status, 200) << r6.error;

  HttpServer any(TlsConfig(), MakeHandlers());
  ASSERT_TRUE(any.Start(":0").ok());
  EXPECT_EQ(Curl(Url(any, "/healthz"), TrustCa()).http_status, 200);
}

TEST_F(HttpServerTest, UnusableTlsMaterialIsUnavailableNamingTheFile) {
  WebConfig mismatched = TlsConfig();
  mismatched.key_file = pki_->client_key;
  HttpServer a(mismatched, MakeHandlers());
  core::Status s = a.Start("127.0.0.1:0");
  EXPECT_EQ(s.code(), core::Status::Code::kUnavailable);
  EXPECT_TRUE(Contains(s.message(), pki_->client_key)) << s.message();

  WebConfig not_pem = TlsConfig();
  not_pem.cert_file = dir_->File("ca.srl");  // exists, not a certificate
  HttpServer b(not_pem, MakeHandlers());
  s = b.Start("127.0.0.1:0");
  EXPECT_EQ(s.code(), core::Status::Code::kUnavailable);
  EXPECT_TRUE(Contains(s.message(), "ca.srl")) << s.message();
}

TEST_F(HttpServerTest, ServesWhatLoadWebConfigReads) {
  const std::string path = dir_->File("web-config.yml");
  testing::WriteFile(path,
                     "tls_server_config:\n"
                     "  cert_file: server.crt\n"  // relative to the config file
                     "  key_file: server.key\n"
                     "  client_auth_type: RequireAndVerifyClientCert\n"
                     "  client_ca_file: ca.crt\n"
                     "basic_auth_users:\n"
                     "  alice: " +
                         *alice_hash_ + "\n");
  const auto config = LoadWebConfig(path);
  ASSERT_TRUE(config.ok()) << config.status().message();
  HttpServer server(config.value(), MakeHandlers());
  StartOnLoopback(server);
  std::vector<std::string> args = TrustCa();
  args.insert(args.end(), {"--cert", pki_->client_cert, "--key", pki_->client_key, "-u", "alice:wonderland"});
  const CurlResult r = Curl(Url(server, "/metrics"), args);
  EXPECT_EQ(r.http_status, 200) << r.error;
  EXPECT_EQ(r.body, kMetricsText);
}

}  // namespace
}  // namespace lockwatch::web
