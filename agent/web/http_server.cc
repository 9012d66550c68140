// HttpServer: cpp-httplib (built against OpenSSL 3) serving /, /metrics, /healthz and /readyz.
//
// prometheus-cpp's Exposer is not used: its civetweb crashes on the first HTTPS connection when linked with
// OpenSSL 3, and exporter-toolkit's client_auth_type semantics need direct control of the SSL_CTX.
#include "agent/web/http_server.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <httplib.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "agent/web/basic_auth.h"
#include "agent/web/listen_address.h"

namespace lockwatch::web {
namespace {

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kTextContentType = "text/plain; charset=utf-8";

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string LandingPage(const std::string& title) {
  const std::string t = HtmlEscape(title);
  // Relative links keep working behind a reverse proxy that serves lockwatch under a path prefix.
  return "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>" + t +
         "</title></head>\n<body>\n<h1>" + t +
         "</h1>\n<p>PostgreSQL lock-contention monitor.</p>\n<ul>\n"
         "<li><a href=\"metrics\">/metrics</a> &mdash; Prometheus metrics</li>\n"
         "<li><a href=\"healthz\">/healthz</a> &mdash; liveness (the agent is running)</li>\n"
         "<li><a href=\"readyz\">/readyz</a> &mdash; readiness (every target has been polled)</li>\n"
         "</ul>\n</body>\n</html>\n";
}

// Drains OpenSSL's error queue into one line (the last error is the most specific).
std::string OpenSslErrors() {
  std::string out;
  unsigned long code = 0;  // NOLINT(google-runtime-int): OpenSSL's type
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

int ProtocolVersion(const std::string& v) {
  if (v == "TLS10") return TLS1_VERSION;
  if (v == "TLS11") return TLS1_1_VERSION;
  if (v == "TLS13") return TLS1_3_VERSION;
  return TLS1_2_VERSION;
}

// Never prompt on a terminal for an encrypted key's passphrase: fail instead.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return 0; }

// Accepts any client certificate: used where Go's crypto/tls requests or requires a certificate but does
// not verify it (RequestClientCert, RequireAnyClientCert).
int AcceptAnyCertificate(int /*preverify_ok*/, X509_STORE_CTX* /*ctx*/) { return 1; }

// Configures a fresh SSL_CTX from the web config. On failure returns false with `error` set.
bool ConfigureTls(SSL_CTX& ctx, const WebConfig& config, std::string& error) {
  ERR_clear_error();
  SSL_CTX_set_options(&ctx,
                      SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(&ctx, ProtocolVersion(config.min_version)) != 1 ||
      SSL_CTX_set_max_proto_version(&ctx, ProtocolVersion(config.max_version)) != 1) {
    error =
        "cannot set TLS versions " + config.min_version + ".." + config.max_version + ": " + OpenSslErrors();
    return false;
  }
  SSL_CTX_set_default_passwd_cb(&ctx, NoPassphrase);
  if (SSL_CTX_use_certificate_chain_file(&ctx, config.cert_file.c_str()) != 1) {
    error = "cannot load cert_file " + config.cert_file + ": " + OpenSslErrors();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(&ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    error =
        "cannot load key_file " + config.key_file + " (encrypted keys are not supported): " + OpenSslErrors();
    return false;
  }
  if (SSL_CTX_check_private_key(&ctx) != 1) {
    error = "key_file " + config.key_file + " does not match cert_file " + config.cert_file;
    return false;
  }
  if (!config.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(&ctx, config.client_ca_file.c_str(), nullptr) != 1) {
      error = "cannot load client_ca_file " + config.client_ca_file + ": " + OpenSslErrors();
      return false;
    }
    // The CA names sent in the CertificateRequest help clients pick the right certificate.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.client_ca_file.c_str());
    if (names == nullptr) {
      error = "client_ca_file " + config.client_ca_file + " holds no CA certificate: " + OpenSslErrors();
      return false;
    }
    SSL_CTX_set_client_CA_list(&ctx, names);
  }
  // Session resumption with client verification fails unless the context has a session id context.
  static const unsigned char kSessionContext[] = "lockwatch";
  SSL_CTX_set_session_id_context(&ctx, kSessionContext, sizeof(kSessionContext) - 1);

  const std::string& type = config.client_auth_type;
  if (type == "NoClientCert" || type.empty()) {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_NONE, nullptr);
  } else if (type == "RequestClientCert") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, AcceptAnyCertificate);
  } else if (type == "RequireAnyClientCert") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, AcceptAnyCertificate);
  } else if (type == "VerifyClientCertIfGiven") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
  } else if (type == "RequireAndVerifyClientCert") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else {
    error = "invalid client_auth_type \"" + type + "\"";
    return false;
  }
  const bool verifies = type == "VerifyClientCertIfGiven" || type == "RequireAndVerifyClientCert";
  if (verifies && config.client_ca_file.empty()) {
    error = "client_auth_type " + type + " needs client_ca_file";
    return false;
  }
  return true;
}

// SO_REUSEADDR only. cpp-httplib's default also sets SO_REUSEPORT, which would let a second lockwatch bind
// the same port and silently split scrapes between two processes.
void ReuseAddressOnly(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

core::Status CheckResolvable(const ListenAddress& address, const std::string& listen) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(address.host.c_str(), nullptr, &hints, &result);
  if (result != nullptr) freeaddrinfo(result);
  if (rc != 0) {
    return core::Status::InvalidArgument("invalid listen address \"" + listen + "\": cannot resolve host \"" +
                                         address.host + "\": " + gai_strerror(rc));
  }
  return core::Status::Ok();
}

}  // namespace

struct HttpServer::Impl {
  Impl(WebConfig c, Handlers h, ServerOptions o)
      : config(std::move(c)), handlers(std::move(h)), options(o), auth(config.basic_auth_users) {}

  void Route(httplib::Server& svr) const;

  const WebConfig config;
  const Handlers handlers;
  const ServerOptions options;
  const BasicAuthenticator auth;

  std::mutex mu;  // serialises Start and Stop
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  std::atomic<int> port{0};
};

void HttpServer::Impl::Route(httplib::Server& svr) const {
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Liveness probes must work without credentials; everything else is behind basic auth when it is
    // configured, unknown paths included (as exporter-toolkit does). The Authorization header is never
    // logged or echoed.
    if (req.path != "/healthz" && auth.enabled() && !auth.Check(req.get_header_value("Authorization"))) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"lockwatch\"");
      res.set_content("401 unauthorized\n", kTextContentType);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "GET" && req.method != "HEAD") {
      res.status = 405;
      res.set_header("Allow", "GET, HEAD");
      res.set_content("405 method not allowed\n", kTextContentType);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  svr.Get("/", [this](const httplib::Request& /*req*/, httplib::Response& res) {
    res.set_content(LandingPage(handlers.landing_title), "text/html; charset=utf-8");
  });
  svr.Get("/metrics", [this](const httplib::Request& /*req*/, httplib::Response& res) {
    if (!handlers.metrics) {
      res.status = 503;
      res.set_content("metrics are not available\n", kTextContentType);
      return;
    }
    res.set_content(handlers.metrics(), kMetricsContentType);
  });
  // Liveness only: never consults the database or the poll state, so an outage of PostgreSQL does not get
  // the agent restarted.
  svr.Get("/healthz", [](const httplib::Request& /*req*/, httplib::Response& res) {
    res.set_content("ok\n", kTextContentType);
  });
  svr.Get("/readyz", [this](const httplib::Request& /*req*/, httplib::Response& res) {
    const bool ready = !handlers.ready || handlers.ready();
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "not ready\n", kTextContentType);
  });

  svr.set_error_handler([](const httplib::Request& /*req*/, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) res.set_content("404 page not found\n", kTextContentType);
  });
  // Without this, cpp-httplib copies the exception text into a response header.
  svr.set_exception_handler(
      [](const httplib::Request& /*req*/, httplib::Response& res, const std::exception_ptr& /*ep*/) {
        res.status = 500;
        res.set_content("500 internal error\n", kTextContentType);
      });
}

HttpServer::HttpServer(WebConfig config, Handlers handlers, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(handlers), options)) {}

HttpServer::~HttpServer() { Stop(); }

core::Status HttpServer::Start(const std::string& listen) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->server) return core::Status::Internal("HTTP server already started");

  auto address = ParseListenAddress(listen);
  if (!address.ok()) return address.status();
  if (auto resolvable = CheckResolvable(address.value(), listen); !resolvable.ok()) return resolvable;
  const std::string where = FormatListenAddress(address.value().host, address.value().port);

  std::unique_ptr<httplib::Server> server;
  if (impl_->config.tls_enabled()) {
    std::string tls_error;
    auto ssl = std::make_unique<httplib::SSLServer>(
        [this, &tls_error](SSL_CTX& ctx) { return ConfigureTls(ctx, impl_->config, tls_error); });
    if (!ssl->is_valid()) {
      return core::Status::Unavailable("cannot serve HTTPS on " + where + ": " +
                                       (tls_error.empty() ? OpenSslErrors() : tls_error));
    }
    server = std::move(ssl);
  } else {
    server = std::make_unique<httplib::Server>();
  }

  const ServerOptions& o = impl_->options;
  const size_t threads = o.threads > 0 ? static_cast<size_t>(o.threads) : 1;
  server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server->set_socket_options(ReuseAddressOnly);
  server->set_read_timeout(std::chrono::milliseconds(o.read_timeout_ms));
  server->set_write_timeout(std::chrono::milliseconds(o.write_timeout_ms));
  server->set_keep_alive_timeout(o.keep_alive_timeout_s);
  server->set_keep_alive_max_count(
      o.keep_alive_max_requests > 0 ? static_cast<size_t>(o.keep_alive_max_requests) : 1);
  server->set_payload_max_length(size_t{64} * 1024);  // scrapes carry no body
  impl_->Route(*server);

  errno = 0;
  int bound = -1;
  if (address.value().port == 0) {
    bound = server->bind_to_any_port(address.value().host);
  } else if (server->bind_to_port(address.value().host, address.value().port)) {
    bound = address.value().port;
  }
  if (bound < 0) {
    const int err = errno;
    const std::string why = err != 0 ? std::strerror(err) : "bind failed";
    const std::string message = "cannot listen on " + where + ": " + why;
    if (err == EADDRNOTAVAIL)
      return core::Status::InvalidArgument(message + " (not an address of this host)");
    if (err == EACCES) return core::Status::PermissionDenied(message);
    return core::Status::Unavailable(message);
  }

  auto finished = std::make_shared<std::atomic<bool>>(false);
  httplib::Server* raw = server.get();
  impl_->thread = std::thread([raw, finished] {
    raw->listen_after_bind();
    finished->store(true);
  });
  // stop() only acts on a running server, so Start returns once the accept loop is live: a Stop() right
  // after Start() then always terminates it.
  while (!raw->is_running() && !finished->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!raw->is_running()) {
    impl_->thread.join();
    return core::Status::Unavailable("cannot listen on " + where + ": the accept loop ended at once");
  }
  impl_->server = std::move(server);
  impl_->port = bound;
  return core::Status::Ok();
}

void HttpServer::Stop() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->server) return;
  impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->server.reset();
  impl_->port = 0;
}

int HttpServer::port() const { return impl_->port; }

bool HttpServer::tls() const { return impl_->config.tls_enabled(); }

}  // namespace lockwatch::web
