// The live view's options (validation, command-line flags) and its pure HTTP helpers.
#include <algorithm>
#include <cctype>

#include <CLI/CLI.hpp>

#include "hilo/controller/live_view.hpp"
#include "hilo/controller/daemon.hpp"
#include "live_view_http.hpp"

namespace hilo::controller {

namespace live_http {

std::optional<HostPort> split_endpoint(std::string_view ep, std::string* why) {
  const auto colon = ep.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == ep.size()) {
    *why = "expected HOST:PORT, got '" + std::string(ep) + "'";
    return std::nullopt;
  }
  std::string host(ep.substr(0, colon));
  const std::string port(ep.substr(colon + 1));
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    *why = "port must be a number in [0, 65535], got '" + port + "'";
    return std::nullopt;
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return HostPort{host, static_cast<unsigned short>(std::stoul(port))};
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::optional<std::string> query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key) return percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

bool same_secret(std::string_view a, std::string_view b) {
  unsigned char d = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i % std::max<std::size_t>(1, b.size())]);
  return d == 0;
}

}  // namespace live_http

std::string LiveViewOptions::validate() const {
  if (!enabled()) return {};
  std::string why;
  const auto hp = live_http::split_endpoint(endpoint, &why);
  if (!hp) return "--http-endpoint: " + why;
  if (!is_loopback_endpoint("tcp://" + endpoint) && token_file.empty()) {
    return "--http-endpoint '" + endpoint + "' is not loopback; a non-loopback bind requires --http-token-file";
  }
  if (max_event_clients < 1 || max_event_clients > 1000) {
    return "live_view.max_event_clients must be in [1, 1000], got " + std::to_string(max_event_clients);
  }
  if (max_connections <= max_event_clients || max_connections > 10000) {
    return "live_view.max_connections must be in [max_event_clients + 1, 10000], got " + std::to_string(max_connections);
  }
  if (!(device_poll_s >= 0.05 && device_poll_s <= 60)) {
    return "live_view.device_poll_s must be in [0.05, 60], got " + std::to_string(device_poll_s);
  }
  return preview.validate();
}

void add_live_view_options(CLI::App& app, LiveViewOptions& o) {
  app.add_option("--http-endpoint", o.endpoint,
                 "serve the read-only live view page on HOST:PORT (port 0: any free port; the ready file gets "
                 "http_url); off by default");
  app.add_option("--http-token-file", o.token_file,
                 "live view token (first line, >= 16 characters): required by every HTTP request; required for a "
                 "non-loopback --http-endpoint");
  app.add_option("--http-max-clients", o.max_event_clients, "live view event streams at once; beyond: 503")
      ->capture_default_str();
  app.add_option("--preview-max-per-s", o.preview.max_per_s, "preview images taken per second and source")
      ->capture_default_str();
}

}  // namespace hilo::controller
