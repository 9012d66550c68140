#pragma once

#include <string>

#include "agent/core/status.h"

namespace lockwatch::web {

// A parsed --web.listen-address.
struct ListenAddress {
  std::string host;  // literal IPv4/IPv6 address or host name, without brackets; never empty
  int port = 0;      // 0 = any free port
};

// Parses "host:port", ":port" (all IPv4 addresses, host becomes "0.0.0.0"), "[v6addr]:port" and
// "[::]:port". The port must be 0..65535. A bare IPv6 address without brackets is rejected because its
// last colon is ambiguous. Returns kInvalidArgument naming the address on any error.
core::Result<ListenAddress> ParseListenAddress(const std::string& listen);

// "host:port", with brackets around IPv6 hosts; for messages.
std::string FormatListenAddress(const std::string& host, int port);

}  // namespace lockwatch::web
