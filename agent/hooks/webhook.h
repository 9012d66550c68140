#pragma once

#include <string>

#include "agent/hooks/delivery.h"
#include "agent/hooks/hook_config.h"
#include "agent/hooks/payloads.h"

namespace lockwatch::hooks {

// Webhooks: an HTTP POST of the event (or of {"text": summary} in chat format) with libcurl.

// Initialises libcurl once per process (curl_global_init). Called by the Webhook constructor; call it
// early from main, before other threads start, to be strictly within libcurl's rules.
void InitHttpClient();

// "https://hooks.example.com:8443": scheme, host and port only, for logs. Userinfo, path and query are
// dropped: incoming-webhook URLs carry their secret in the path.
std::string RedactedUrl(const std::string& url);

// Posts with Content-Type application/json, a timeout per attempt, TLS peer and host verification always
// on (optionally against webhook.ca_file), no redirects followed, http and https only. Retries after
// connection errors, timeouts, HTTP 429 and 5xx with exponential backoff (initial_backoff, doubling,
// capped at kMaxBackoff); 3xx and other 4xx fail at once. Header files are read at each delivery; their
// content and configured header values are never logged. A triggered Interrupt aborts the transfer in
// progress (within about a second) and any backoff.
class Webhook : public HookRunner {
 public:
  Webhook(HookConfig config, HookLogger logger);
  DeliveryResult Deliver(const Event& event, const Interrupt& interrupt) override;

 private:
  HookConfig config_;
  HookLogger logger_;
  std::string redacted_url_;
};

}  // namespace lockwatch::hooks
