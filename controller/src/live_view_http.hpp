#pragma once
// Small pieces of HTTP handling shared by the live view's server and its options (internal to
// controller/src). Pure functions, no I/O.
#include <optional>
#include <string>
#include <string_view>

namespace hilo::controller::live_http {

struct HostPort {
  std::string host;  // without brackets
  unsigned short port = 0;
};

// "HOST:PORT" or "[v6]:PORT" → host and port; nullopt with *why set when malformed or the port is
// outside [0, 65535].
std::optional<HostPort> split_endpoint(std::string_view ep, std::string* why);

// %XX and '+' decoded; malformed escapes are kept as they are.
std::string percent_decode(std::string_view s);

// The value of `key` in a query string ("a=1&token=x"), percent-decoded.
std::optional<std::string> query_param(std::string_view query, std::string_view key);

// Compares in time independent of where the strings differ.
bool same_secret(std::string_view a, std::string_view b);

}  // namespace hilo::controller::live_http
