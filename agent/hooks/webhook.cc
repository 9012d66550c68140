#include "agent/hooks/webhook.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <utility>
#include <vector>

#include <curl/curl.h>

#ifndef LOCKWATCH_VERSION
#define LOCKWATCH_VERSION "0.0.0"
#endif

namespace lockwatch::hooks {
namespace {

constexpr size_t kMaxResponseLogged = 256;

class CurlHandle {
 public:
  CurlHandle() : h_(curl_easy_init()) {}
  ~CurlHandle() {
    if (h_ != nullptr) curl_easy_cleanup(h_);
  }
  CurlHandle(const CurlHandle&) = delete;
  CurlHandle& operator=(const CurlHandle&) = delete;
  CURL* get() const { return h_; }

 private:
  CURL* h_;
};

class HeaderList {
 public:
  HeaderList() = default;
  ~HeaderList() { curl_slist_free_all(list_); }
  HeaderList(const HeaderList&) = delete;
  HeaderList& operator=(const HeaderList&) = delete;
  bool Add(const std::string& line) {
    curl_slist* next = curl_slist_append(list_, line.c_str());
    if (next == nullptr) return false;
    list_ = next;
    return true;
  }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

std::string Trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// Reads a header value from its file. Errors name the header and the file, never the content.
bool ReadHeaderFile(const std::string& header, const std::string& path, std::string* value,
                    std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read header file for " + header + " (" + path + "): " + std::strerror(errno);
    return false;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  *value = Trim(buf.str());
  if (value->empty()) {
    *error = "header file for " + header + " (" + path + ") is empty";
    return false;
  }
  if (std::any_of(value->begin(), value->end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; })) {
    *error = "header file for " + header + " (" + path + ") holds more than one line";
    return false;
  }
  return true;
}

size_t KeepPrefix(char* data, size_t size, size_t nmemb, void* user) {
  auto* body = static_cast<std::string*>(user);
  const size_t n = size * nmemb;
  if (body->size() < kMaxResponseLogged) body->append(data, std::min(n, kMaxResponseLogged - body->size()));
  return n;
}

int CheckInterrupt(void* user, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/, curl_off_t /*ultotal*/,
                   curl_off_t /*ulnow*/) {
  return static_cast<const Interrupt*>(user)->triggered() ? 1 : 0;
}

// Printable ASCII only, for a response body quoted in a log line.
std::string Printable(const std::string& s) {
  std::string out;
  for (char c : s) out += (c >= ' ' && c < 0x7f) ? c : ' ';
  return Trim(out);
}

enum class Verdict { kSuccess, kRetry, kFail, kInterrupted };

struct Attempt {
  Verdict verdict = Verdict::kFail;
  std::string detail;
};

bool RetryableCurlError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

Attempt PostOnce(const HookConfig& config, const std::string& body, const HeaderList& headers,
                 const Interrupt& interrupt) {
  Attempt out;
  CurlHandle curl;
  if (curl.get() == nullptr) {
    out.detail = "curl_easy_init failed";
    return out;
  }
  CURL* h = curl.get();
  char errbuf[CURL_ERROR_SIZE] = {0};
  std::string response;
  const long timeout_ms = static_cast<long>(config.timeout.count());
  curl_easy_setopt(h, CURLOPT_URL, config.webhook.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  // Verification is not configurable: a hook carrying incident details and tokens never goes to an
  // unauthenticated peer. A private CA is supported through ca_file instead.
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!config.webhook.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, config.webhook.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &KeepPrefix);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &CheckInterrupt);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &interrupt);

  const CURLcode code = curl_easy_perform(h);
  if (code == CURLE_ABORTED_BY_CALLBACK) {
    out.verdict = Verdict::kInterrupted;
    out.detail = "stopped at shutdown";
    return out;
  }
  if (code != CURLE_OK) {
    out.verdict = RetryableCurlError(code) ? Verdict::kRetry : Verdict::kFail;
    out.detail = errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(code));
    return out;
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  out.detail = "HTTP " + std::to_string(status);
  if (status >= 200 && status < 300) {
    out.verdict = Verdict::kSuccess;
    return out;
  }
  const std::string said = Printable(response);
  if (!said.empty()) out.detail += ": " + said;
  out.verdict = (status == 429 || status >= 500) ? Verdict::kRetry : Verdict::kFail;
  return out;
}

}  // namespace

void InitHttpClient() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string RedactedUrl(const std::string& url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return "(invalid url)";
  const size_t host_start = scheme_end + 3;
  size_t host_end = url.find_first_of("/?#", host_start);
  if (host_end == std::string::npos) host_end = url.size();
  std::string authority = url.substr(host_start, host_end - host_start);
  const size_t at = authority.rfind('@');
  if (at != std::string::npos) authority = authority.substr(at + 1);
  return url.substr(0, host_start) + authority;
}

Webhook::Webhook(HookConfig config, HookLogger logger)
    : config_(std::move(config)),
      logger_(std::move(logger)),
      redacted_url_(RedactedUrl(config_.webhook.url)) {
  InitHttpClient();
}

DeliveryResult Webhook::Deliver(const Event& event, const Interrupt& interrupt) {
  ScopedSigpipeBlock no_sigpipe;
  DeliveryResult result;
  const WebhookConfig& w = config_.webhook;
  const std::string body = Serialize(w.format == WebhookFormat::kChat ? ChatPayload(event) : event.payload);

  HeaderList headers;
  headers.Add("Content-Type: application/json");
  headers.Add(std::string("User-Agent: lockwatch/") + LOCKWATCH_VERSION);
  headers.Add("Expect:");  // no 100-continue round trip
  for (const auto& [name, value] : w.headers) headers.Add(std::string(name).append(": ").append(value));
  bool headers_ok = true;
  for (const auto& [name, path] : w.header_files) {
    std::string value;
    if (!ReadHeaderFile(name, path, &value, &result.detail)) {
      headers_ok = false;
      break;
    }
    headers.Add(std::string(name).append(": ").append(value));
  }

  if (headers_ok) {
    std::chrono::milliseconds backoff = w.initial_backoff;
    for (int attempt = 0; attempt <= w.retries; ++attempt) {
      if (attempt > 0) {
        if (!interrupt.SleepFor(backoff)) {
          result.detail += " (retry abandoned at shutdown)";
          break;
        }
        backoff = std::min(backoff * 2, kMaxBackoff);
      }
      const Attempt a = PostOnce(config_, body, headers, interrupt);
      result.attempts = attempt + 1;
      result.detail = a.detail;
      if (a.verdict == Verdict::kSuccess) {
        result.ok = true;
        break;
      }
      if (a.verdict != Verdict::kRetry) break;
      if (logger_ && attempt < w.retries) {
        logger_(spdlog::level::info, "webhook attempt failed, will retry",
                {{"hook", config_.name},
                 {"event", EventKindName(event.kind)},
                 {"url", redacted_url_},
                 {"attempt", std::to_string(attempt + 1)},
                 {"result", a.detail}});
      }
    }
  }
  if (logger_) {
    logger_(result.ok ? spdlog::level::debug : spdlog::level::warn,
            result.ok ? "webhook delivered" : "webhook failed",
            {{"hook", config_.name},
             {"event", EventKindName(event.kind)},
             {"target", event.target},
             {"url", redacted_url_},
             {"attempts", std::to_string(result.attempts)},
             {"result", result.detail}});
  }
  return result;
}

}  // namespace lockwatch::hooks
