#include "agent/web/listen_address.h"

#include <cctype>

namespace lockwatch::web {
namespace {

core::Status Bad(const std::string& listen, const std::string& why) {
  return core::Status::InvalidArgument("invalid listen address \"" + listen + "\": " + why);
}

}  // namespace

core::Result<ListenAddress> ParseListenAddress(const std::string& listen) {
  std::string host;
  std::string port_text;
  if (!listen.empty() && listen.front() == '[') {
    const auto close = listen.find(']');
    if (close == std::string::npos) return Bad(listen, "missing ']' after IPv6 address");
    host = listen.substr(1, close - 1);
    if (host.empty()) return Bad(listen, "empty IPv6 address between brackets");
    if (close + 1 >= listen.size() || listen[close + 1] != ':') {
      return Bad(listen, "expected ':port' after ']'");
    }
    port_text = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) return Bad(listen, "expected host:port or :port");
    host = listen.substr(0, colon);
    if (host.find(':') != std::string::npos) {
      return Bad(listen, "IPv6 addresses must be written in brackets, e.g. [::1]:9187");
    }
    // Go's net.Listen treats an empty host as "every address"; IPv4 any is the portable choice.
    if (host.empty()) host = "0.0.0.0";
    port_text = listen.substr(colon + 1);
  }
  if (port_text.empty()) return Bad(listen, "missing port");
  if (port_text.size() > 5) return Bad(listen, "port must be 0..65535");
  int port = 0;
  for (const char c : port_text) {
    if (std::isdigit(static_cast<unsigned char>(c)) == 0) return Bad(listen, "port must be a number");
    port = port * 10 + (c - '0');
  }
  if (port > 65535) return Bad(listen, "port must be 0..65535");
  for (const char c : host) {
    if (std::isspace(static_cast<unsigned char>(c)) != 0 || c == '[' || c == ']' || c == '/') {
      return Bad(listen, "invalid character in host");
    }
  }
  return ListenAddress{host, port};
}

std::string FormatListenAddress(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

}  // namespace lockwatch::web
