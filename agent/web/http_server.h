#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent/core/status.h"

namespace lockwatch::web {

// exporter-toolkit compatible web configuration (--web.config.file).
struct WebConfig {
  // tls_server_config
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  // NoClientCert (default), RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven,
  // RequireAndVerifyClientCert
  std::string client_auth_type = "NoClientCert";
  std::string min_version = "TLS12";  // TLS10, TLS11, TLS12 or TLS13
  std::string max_version = "TLS13";  // TLS10, TLS11, TLS12 or TLS13; not below min_version
  // basic_auth_users: user -> bcrypt hash ($2a$/$2b$/$2y$)
  std::map<std::string, std::string> basic_auth_users;

  bool tls_enabled() const { return !cert_file.empty(); }
};

// Reads and validates a web config file. Errors name file:line:column and what was expected; unknown keys
// are errors; referenced certificate files must exist and be readable.
// Relative file paths are resolved against the config file's directory (as exporter-toolkit does) and
// stored resolved. An empty file (or only comments) means plain HTTP without authentication.
// client_auth_type semantics (the Go crypto/tls ones):
//   NoClientCert                no certificate is requested; client_ca_file must not be set
//   RequestClientCert           a certificate is requested, neither required nor verified
//   RequireAnyClientCert        a certificate is required but not verified against client_ca_file
//   VerifyClientCertIfGiven     a certificate is optional; when given it must verify against client_ca_file
//   RequireAndVerifyClientCert  a certificate is required and must verify against client_ca_file
// The last two need client_ca_file. Keys exporter-toolkit knows but lockwatch does not implement
// (cipher_suites, curve_preferences, client_allowed_sans, inline cert/key, http_server_config, ...) are
// rejected with an error saying so, rather than silently ignored.
core::Result<WebConfig> LoadWebConfig(const std::string& path);

// What the server serves. Callbacks are called on server threads and must be thread-safe and cheap (no
// database access): metrics() returns the text exposition; ready() says whether every target has polled.
// A missing metrics callback serves 503; a missing ready callback counts as ready.
struct Handlers {
  std::function<std::string()> metrics;
  std::function<bool()> ready;
  // Shown as the landing page's title and heading, e.g. "lockwatch 0.1.0 (rev abc123)". HTML-escaped.
  std::string landing_title = "lockwatch";
};

// Resource limits. The defaults suit a Prometheus scrape endpoint: a few workers, and timeouts so that a
// slow or silent client (including one that opens TLS and never sends anything) frees its worker.
struct ServerOptions {
  int threads = 4;               // worker threads (connections served at once)
  int read_timeout_ms = 10000;   // per read, including the TLS handshake
  int write_timeout_ms = 10000;  // per write
  int keep_alive_timeout_s = 5;  // idle time between requests on one connection
  int keep_alive_max_requests = 100;
};

// HTTP or HTTPS endpoint: "/" landing page, "/metrics", "/healthz" (always 200 while the process serves),
// "/readyz" (200 when ready(), else 503). Basic auth (when configured) on every path except /healthz.
// Non-copyable; Stop() or the destructor joins the server thread.
class HttpServer {
 public:
  HttpServer(WebConfig config, Handlers handlers, ServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds `listen` ("host:port", ":port" = all IPv4 addresses, "[::1]:port", port 0 = any free port) and
  // starts serving on a background thread; returns once the socket is listening. Returns kInvalidArgument
  // for a bad address, kUnavailable when the port is taken or TLS material cannot be loaded (the message
  // names the address or file), kPermissionDenied for a privileged port. Calling Start twice without Stop
  // is kInternal.
  core::Status Start(const std::string& listen);
  // Stops accepting, lets in-flight requests finish and joins. Idempotent. cpp-httplib cannot interrupt
  // its workers, so a silent client holds this up to read_timeout_ms (TLS handshake) or
  // keep_alive_timeout_s (waiting for the next request): about 10 s at worst with the defaults.
  void Stop();
  // The bound port (after a successful Start), 0 otherwise.
  int port() const;
  // Whether the endpoint serves HTTPS.
  bool tls() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lockwatch::web
