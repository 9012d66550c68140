#include "agent/hooks/webhook.h"

#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/hooks/http_listener.h"
#include "tests/testing/temp_dir.h"
#include "tests/web/web_test_support.h"

namespace lockwatch::hooks {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using testing::HttpListener;

constexpr core::TimestampUs kSec = 1000000;
constexpr core::TimestampUs kT0 = 1795614300LL * kSec;

class LogCapture {
 public:
  HookLogger Logger() {
    return [this](spdlog::level::level_enum /*level*/, const std::string& msg, const LogFields& fields) {
      std::lock_guard<std::mutex> lock(mu_);
      text_ += msg;
      for (const auto& [k, v] : fields) text_.append(" ").append(k).append("=").append(v);
      text_ += "\n";
    };
  }
  std::string text() const {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

 private:
  mutable std::mutex mu_;
  std::string text_;
};

Event IncidentOpened() {
  core::IncidentEvent e;
  e.kind = core::IncidentEventKind::kOpened;
  e.incident.id = "main-20261125T134500Z";
  e.incident.target = "main";
  e.incident.started_at = kT0;
  e.incident.last_over_at = kT0;
  e.incident.trigger = "lock wait 7.2 s > 5 s";
  e.incident.peak_blocked_sessions = 12;
  core::IncidentRoot root;
  root.pid = 4242;
  root.classification = core::RootClass::kIdleInTransaction;
  root.query = "UPDATE t SET secret = 'swordfish' WHERE id = 99";
  root.first_seen_at = kT0;
  e.incident.roots.push_back(root);
  return MakeIncidentEvent(e, kT0, forensics::QueryTextMode::kNormalize);
}

HookConfig WebhookTo(const std::string& url) {
  HookConfig c;
  c.name = "web";
  c.kind = HookKind::kWebhook;
  c.timeout = milliseconds(2000);
  c.webhook.url = url;
  c.webhook.retries = 3;
  c.webhook.initial_backoff = milliseconds(20);
  return c;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

TEST(WebhookTest, PostsTheDocumentedJsonPayload) {
  HttpListener listener;
  Webhook hook(WebhookTo(listener.Url("/lockwatch/events")), nullptr);
  const Event event = IncidentOpened();
  Interrupt interrupt;
  const DeliveryResult r = hook.Deliver(event, interrupt);
  ASSERT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.detail, "HTTP 200");
  const auto requests = listener.requests();
  ASSERT_EQ(requests.size(), 1U);
  const HttpListener::Request& req = requests[0];
  EXPECT_EQ(req.path, "/lockwatch/events");
  EXPECT_EQ(req.Header("Content-Type"), "application/json");
  EXPECT_EQ(req.Header("User-Agent").rfind("lockwatch/", 0), 0U) << req.Header("User-Agent");
  const json body = json::parse(req.body);
  EXPECT_EQ(body, event.payload);
  EXPECT_EQ(body.at("schema_version"), 1);
  EXPECT_EQ(body.at("event"), "incident.opened");
  EXPECT_EQ(body.at("target"), "main");
  EXPECT_EQ(body.at("at"), "2026-11-25T13:45:00.000000Z");
  EXPECT_EQ(body.at("query_text"), "normalize");
  EXPECT_EQ(body.at("incident").at("id"), "main-20261125T134500Z");
  EXPECT_EQ(body.at("incident").at("roots")[0].at("pid"), 4242);
  EXPECT_FALSE(body.at("summary").get<std::string>().empty());
  // Normalised by default: the statement shape arrives, its literals never do.
  EXPECT_NE(req.body.find("UPDATE t SET secret"), std::string::npos) << req.body;
  EXPECT_EQ(req.body.find("swordfish"), std::string::npos) << req.body;
}

TEST(WebhookTest, ChatFormatPostsTheSummaryAsText) {
  HttpListener listener;
  HookConfig config = WebhookTo(listener.Url("/hooks/T000/B000/XXXX"));
  config.webhook.format = WebhookFormat::kChat;
  Webhook hook(config, nullptr);
  const Event event = IncidentOpened();
  Interrupt interrupt;
  ASSERT_TRUE(hook.Deliver(event, interrupt).ok);
  const auto requests = listener.requests();
  ASSERT_EQ(requests.size(), 1U);
  const json body = json::parse(requests[0].body);
  EXPECT_EQ(body, json({{"text", event.summary}}));
  EXPECT_NE(body.at("text").get<std::string>().find("lock incident main-20261125T134500Z opened"),
            std::string::npos);
}

TEST(WebhookTest, RetryPolicyByResponse) {
  struct Case {
    std::string name;
    std::vector<int> statuses;
    int retries;
    bool ok;
    int attempts;
    std::string detail;
  };
  const std::vector<Case> cases = {
      {"500 then success", {500}, 3, true, 2, "HTTP 200"},
      {"503 and 429 retried", {503, 429}, 3, true, 3, "HTTP 200"},
      {"400 not retried", {400}, 3, false, 1, "HTTP 400: {\"error\":\"scripted failure\"}"},
      {"404 not retried", {404}, 3, false, 1, "HTTP 404"},
      {"retries exhausted", {500, 500, 500}, 2, false, 3, "HTTP 500"},
      {"no retries", {502}, 0, false, 1, "HTTP 502"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    HttpListener listener;
    listener.Script(c.statuses);
    HookConfig config = WebhookTo(listener.Url("/x"));
    config.webhook.retries = c.retries;
    Webhook hook(config, nullptr);
    Interrupt interrupt;
    const DeliveryResult r = hook.Deliver(IncidentOpened(), interrupt);
    EXPECT_EQ(r.ok, c.ok);
    EXPECT_EQ(r.attempts, c.attempts);
    EXPECT_EQ(r.detail.rfind(c.detail, 0), 0U) << r.detail;
    EXPECT_EQ(listener.requests().size(), static_cast<size_t>(c.attempts));
  }
}

TEST(WebhookTest, BackoffDoublesBetweenAttempts) {
  HttpListener listener;
  listener.Script({500, 500});
  HookConfig config = WebhookTo(listener.Url("/x"));
  config.webhook.initial_backoff = milliseconds(200);
  Webhook hook(config, nullptr);
  Interrupt interrupt;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(hook.Deliver(IncidentOpened(), interrupt).ok);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, milliseconds(600));  // 200 + 400
  EXPECT_LT(took, milliseconds(3000));
}

TEST(WebhookTest, HeadersFromConfigAndFromFileArriveAndAreNeverLogged) {
  testing::TempDir dir("lw-webhook");
  const std::string token_file = dir.File("token");
  WriteFile(token_file, "  Bearer tok-first-123\n");
  HttpListener listener;
  listener.Script({500, 400});  // a retry and a failure: both paths log
  HookConfig config = WebhookTo("http://hookuser:hookpass@127.0.0.1:" + std::to_string(listener.port()) +
                                "/secret-path-abc?key=qs-secret");
  config.webhook.headers = {{"X-Team", "dba-on-call-value"}};
  config.webhook.header_files = {{"Authorization", token_file}};
  LogCapture logs;
  Webhook hook(config, logs.Logger());
  Interrupt interrupt;
  EXPECT_FALSE(hook.Deliver(IncidentOpened(), interrupt).ok);
  // Read at each delivery: a rotated token is used without a restart.
  WriteFile(token_file, "Bearer tok-second-456");
  EXPECT_TRUE(hook.Deliver(IncidentOpened(), interrupt).ok);

  const auto requests = listener.requests();
  ASSERT_EQ(requests.size(), 3U);
  EXPECT_EQ(requests[0].Header("Authorization"), "Bearer tok-first-123");
  EXPECT_EQ(requests[0].Header("X-Team"), "dba-on-call-value");
  EXPECT_EQ(requests[2].Header("Authorization"), "Bearer tok-second-456");

  const std::string log = logs.text();
  EXPECT_NE(log.find("webhook attempt failed, will retry"), std::string::npos) << log;
  EXPECT_NE(log.find("webhook failed"), std::string::npos) << log;
  EXPECT_NE(log.find("url=http://127.0.0.1:" + std::to_string(listener.port())), std::string::npos) << log;
  for (const char* secret : {"tok-first", "tok-second", "dba-on-call-value", "hookpass", "hookuser",
                             "secret-path-abc", "qs-secret"}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " in: " << log;
  }
}

TEST(WebhookTest, UnreadableHeaderFileFailsWithoutSending) {
  HttpListener listener;
  HookConfig config = WebhookTo(listener.Url("/x"));
  config.webhook.header_files = {{"Authorization", "/nonexistent/lockwatch-token"}};
  Webhook hook(config, nullptr);
  Interrupt interrupt;
  const DeliveryResult r = hook.Deliver(IncidentOpened(), interrupt);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 0);
  EXPECT_NE(r.detail.find("Authorization (/nonexistent/lockwatch-token)"), std::string::npos) << r.detail;
  EXPECT_TRUE(listener.requests().empty());
}

TEST(WebhookTest, HangingEndpointIsTimedOutAndCountedAsFailure) {
  HttpListener listener;
  listener.Delay(milliseconds(10000));  // released when the listener is destroyed
  HookConfig config = WebhookTo(listener.Url("/slow"));
  config.timeout = milliseconds(500);
  config.webhook.retries = 0;
  Webhook hook(config, nullptr);
  Interrupt interrupt;
  const auto start = std::chrono::steady_clock::now();
  const DeliveryResult r = hook.Deliver(IncidentOpened(), interrupt);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.detail.find("imed out"), std::string::npos) << r.detail;
  EXPECT_GE(took, milliseconds(450));
  EXPECT_LT(took, milliseconds(2500));
}

TEST(WebhookTest, ConnectionRefusedIsRetried) {
  int port = 0;
  {
    HttpListener gone;  // a port that was just free and now has no listener
    port = gone.port();
  }
  HookConfig config = WebhookTo("http://127.0.0.1:" + std::to_string(port) + "/x");
  config.webhook.retries = 2;
  config.webhook.initial_backoff = milliseconds(10);
  Webhook hook(config, nullptr);
  Interrupt interrupt;
  const DeliveryResult r = hook.Deliver(IncidentOpened(), interrupt);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 3);
}

TEST(WebhookTest, InterruptAbortsTheBackoff) {
  HttpListener listener;
  listener.Script({500, 500, 500, 500});
  HookConfig config = WebhookTo(listener.Url("/x"));
  config.webhook.initial_backoff = milliseconds(30000);
  Webhook hook(config, nullptr);
  Interrupt interrupt;
  std::thread trigger([&] {
    std::this_thread::sleep_for(milliseconds(300));
    interrupt.Trigger();
  });
  const auto start = std::chrono::steady_clock::now();
  const DeliveryResult r = hook.Deliver(IncidentOpened(), interrupt);
  const auto took = std::chrono::steady_clock::now() - start;
  trigger.join();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_NE(r.detail.find("abandoned at shutdown"), std::string::npos) << r.detail;
  EXPECT_LT(took, milliseconds(2000));
}

TEST(WebhookTest, InterruptAbortsATransferInProgress) {
  HttpListener listener;
  listener.Delay(milliseconds(10000));
  HookConfig config = WebhookTo(listener.Url("/slow"));
  config.timeout = milliseconds(30000);
  Webhook hook(config, nullptr);
  Interrupt interrupt;
  std::thread trigger([&] {
    std::this_thread::sleep_for(milliseconds(300));
    interrupt.Trigger();
  });
  const auto start = std::chrono::steady_clock::now();
  const DeliveryResult r = hook.Deliver(IncidentOpened(), interrupt);
  const auto took = std::chrono::steady_clock::now() - start;
  trigger.join();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "stopped at shutdown");
  EXPECT_LT(took, milliseconds(2500));
}

TEST(WebhookTest, TlsPeerIsVerifiedAgainstTheSystemStoreOrTheConfiguredCa) {
  testing::TempDir dir("lw-webhook-pki");
  const web::testing::TestPki pki = web::testing::MakeTestPki(dir.path());
  HttpListener listener(pki.server_cert, pki.server_key);
  const std::string url = "https://127.0.0.1:" + std::to_string(listener.port()) + "/events";

  // A certificate from a CA the system does not trust: refused, not retried, nothing delivered.
  HookConfig config = WebhookTo(url);
  Webhook untrusted(config, nullptr);
  Interrupt interrupt;
  const DeliveryResult refused = untrusted.Deliver(IncidentOpened(), interrupt);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.attempts, 1);
  EXPECT_NE(refused.detail.find("certificate"), std::string::npos) << refused.detail;
  EXPECT_TRUE(listener.requests().empty());

  // The wrong CA file: still refused.
  config.webhook.ca_file = pki.other_ca_cert;
  EXPECT_FALSE(Webhook(config, nullptr).Deliver(IncidentOpened(), interrupt).ok);
  EXPECT_TRUE(listener.requests().empty());

  // The right CA file: delivered.
  config.webhook.ca_file = pki.ca_cert;
  const DeliveryResult delivered = Webhook(config, nullptr).Deliver(IncidentOpened(), interrupt);
  EXPECT_TRUE(delivered.ok) << delivered.detail;
  ASSERT_EQ(listener.requests().size(), 1U);
  EXPECT_EQ(json::parse(listener.requests()[0].body).at("event"), "incident.opened");
}

TEST(RedactedUrlTest, KeepsOnlySchemeHostAndPort) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com"},
      {"http://user:pw@127.0.0.1:8080/a?b=c", "http://127.0.0.1:8080"},
      {"https://example.com", "https://example.com"},
      {"https://example.com?token=x", "https://example.com"},
      {"https://a@b@example.com:443/#frag", "https://example.com:443"},
      {"not a url", "(invalid url)"},
  };
  for (const auto& [url, want] : cases) EXPECT_EQ(RedactedUrl(url), want) << url;
}

}  // namespace
}  // namespace lockwatch::hooks
