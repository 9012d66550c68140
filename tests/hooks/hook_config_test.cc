#include "agent/hooks/hook_config.h"

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lockwatch::hooks {
namespace {

HookConfig ValidExec() {
  HookConfig h;
  h.name = "pager";
  h.kind = HookKind::kExec;
  h.exec.argv = {"/usr/local/bin/page-dba", "--urgent"};
  return h;
}

HookConfig ValidWebhook() {
  HookConfig h;
  h.name = "chat";
  h.kind = HookKind::kWebhook;
  h.webhook.url = "https://chat.example.com/hooks/abc";
  return h;
}

TEST(HookConfigTest, DefaultsAreTheDocumentedOnes) {
  const HookConfig h;
  EXPECT_EQ(h.timeout, std::chrono::milliseconds(10000));
  EXPECT_TRUE(h.events.empty());
  EXPECT_EQ(h.exec.kill_grace, std::chrono::milliseconds(2000));
  EXPECT_EQ(h.webhook.retries, 3);
  EXPECT_EQ(h.webhook.initial_backoff, std::chrono::milliseconds(1000));
  EXPECT_EQ(h.webhook.format, WebhookFormat::kJson);
  const HooksConfig all;
  EXPECT_EQ(all.queue_capacity, 1000U);
  EXPECT_EQ(all.incident_update_min_interval, std::chrono::milliseconds(60000));
  EXPECT_EQ(all.query_text, forensics::QueryTextMode::kNormalize);
}

TEST(HookConfigTest, ValidHooksPass) {
  EXPECT_TRUE(ValidateHookConfig(ValidExec()).ok());
  EXPECT_TRUE(ValidateHookConfig(ValidWebhook()).ok());
  HookConfig w = ValidWebhook();
  w.webhook.url = "http://127.0.0.1:8080/x";
  w.webhook.headers = {{"X-Team", "dba"}};
  w.webhook.header_files = {{"Authorization", "/etc/lockwatch/token"}};
  w.events = {"incident.opened", "action.failed"};
  EXPECT_TRUE(ValidateHookConfig(w).ok()) << ValidateHookConfig(w).message();
}

TEST(HookConfigTest, InvalidHooksAreRejectedWithTheFieldNamed) {
  struct Case {
    std::string name;
    std::function<HookConfig()> make;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"empty name",
       [] {
         HookConfig h = ValidExec();
         h.name = "";
         return h;
       },
       "hooks[].name"},
      {"upper-case name",
       [] {
         HookConfig h = ValidExec();
         h.name = "Pager";
         return h;
       },
       "hooks[].name"},
      {"unknown event",
       [] {
         HookConfig h = ValidExec();
         h.events = {"incident.open"};
         return h;
       },
       "hooks[pager].events: unknown event \"incident.open\""},
      {"zero timeout",
       [] {
         HookConfig h = ValidExec();
         h.timeout = std::chrono::milliseconds(0);
         return h;
       },
       "hooks[pager].timeout"},
      {"no argv",
       [] {
         HookConfig h = ValidExec();
         h.exec.argv.clear();
         return h;
       },
       "hooks[pager].exec.argv"},
      {"relative program",
       [] {
         HookConfig h = ValidExec();
         h.exec.argv = {"page-dba"};
         return h;
       },
       "exec.argv[0] must be an absolute path"},
      {"reserved env",
       [] {
         HookConfig h = ValidExec();
         h.exec.env = {{"LOCKWATCH_EVENT", "x"}};
         return h;
       },
       "reserved"},
      {"bad env name",
       [] {
         HookConfig h = ValidExec();
         h.exec.env = {{"A-B", "x"}};
         return h;
       },
       "invalid variable name"},
      {"ftp url",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.url = "ftp://x/y";
         return h;
       },
       "webhook.url must start with http:// or https://"},
      {"url without host",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.url = "https:///x";
         return h;
       },
       "has no host"},
      {"url with space",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.url = "https://a b/";
         return h;
       },
       "spaces"},
      {"header with newline",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.headers = {{"X-A", "a\r\nX-B: b"}};
         return h;
       },
       "line break"},
      {"content-type header",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.headers = {{"content-type", "text/plain"}};
         return h;
       },
       "set by lockwatch"},
      {"bad header name",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.headers = {{"X A", "b"}};
         return h;
       },
       "invalid header name"},
      {"relative header file",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.header_files = {{"Authorization", "token"}};
         return h;
       },
       "must be an absolute path"},
      {"header twice",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.headers = {{"Authorization", "x"}};
         h.webhook.header_files = {{"Authorization", "/t"}};
         return h;
       },
       "both headers and header_files"},
      {"ca_file with http",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.url = "http://x/";
         h.webhook.ca_file = "/etc/ca.pem";
         return h;
       },
       "ca_file is only meaningful"},
      {"negative retries",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.retries = -1;
         return h;
       },
       "retries"},
      {"too many retries",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.retries = 11;
         return h;
       },
       "retries"},
      {"zero backoff",
       [] {
         HookConfig h = ValidWebhook();
         h.webhook.initial_backoff = std::chrono::milliseconds(0);
         return h;
       },
       "initial_backoff"},
  };
  for (const Case& c : cases) {
    const core::Status s = ValidateHookConfig(c.make());
    EXPECT_FALSE(s.ok()) << c.name;
    EXPECT_EQ(s.code(), core::Status::Code::kInvalidArgument) << c.name;
    EXPECT_NE(s.message().find(c.expected), std::string::npos) << c.name << ": " << s.message();
  }
}

TEST(HookConfigTest, UrlIsNeverEchoedInErrors) {
  HookConfig h = ValidWebhook();
  h.webhook.url = "ftp://user:pa55word@example.com/T000/B000/XXXXsecret";
  const core::Status s = ValidateHookConfig(h);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().find("pa55word"), std::string::npos);
  EXPECT_EQ(s.message().find("XXXXsecret"), std::string::npos);
}

TEST(HooksConfigTest, DuplicateNamesAndBadQueueAreRejected) {
  HooksConfig c;
  c.hooks = {ValidExec(), ValidWebhook()};
  EXPECT_TRUE(ValidateHooksConfig(c).ok());
  c.hooks.push_back(ValidExec());
  EXPECT_NE(ValidateHooksConfig(c).message().find("duplicate hook name \"pager\""), std::string::npos);
  c.hooks.pop_back();
  c.queue_capacity = 0;
  EXPECT_NE(ValidateHooksConfig(c).message().find("queue_capacity"), std::string::npos);
}

TEST(HookConfigTest, NamesParse) {
  EXPECT_EQ(ParseHookKind("exec"), HookKind::kExec);
  EXPECT_EQ(ParseHookKind("webhook"), HookKind::kWebhook);
  EXPECT_FALSE(ParseHookKind("http").has_value());
  EXPECT_EQ(ParseWebhookFormat("json"), WebhookFormat::kJson);
  EXPECT_EQ(ParseWebhookFormat("chat"), WebhookFormat::kChat);
  EXPECT_FALSE(ParseWebhookFormat("slack").has_value());
  EXPECT_STREQ(HookKindName(HookKind::kWebhook), "webhook");
  EXPECT_STREQ(WebhookFormatName(WebhookFormat::kChat), "chat");
}

TEST(HookWantsTest, EmptyFilterWantsEverything) {
  HookConfig h = ValidExec();
  EXPECT_TRUE(HookWants(h, "action.failed"));
  h.events = {"incident.opened"};
  EXPECT_TRUE(HookWants(h, "incident.opened"));
  EXPECT_FALSE(HookWants(h, "incident.resolved"));
}

}  // namespace
}  // namespace lockwatch::hooks
