#include "hilo/drivers/device.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <sstream>

#include "hilo/drivers/camera.hpp"

namespace hilo::drivers {

std::string_view to_string(DeviceState s) {
  switch (s) {
    case DeviceState::ready: return "ready";
    case DeviceState::busy: return "busy";
    case DeviceState::fault: return "fault";
    case DeviceState::disconnected: return "disconnected";
  }
  return "unknown";
}

std::string_view to_string(DeviceErrc e) {
  switch (e) {
    case DeviceErrc::timeout: return "timeout";
    case DeviceErrc::disconnected: return "disconnected";
    case DeviceErrc::write_failed: return "write_failed";
    case DeviceErrc::corrupt_frame: return "corrupt_frame";
    case DeviceErrc::invalid_argument: return "invalid_argument";
    case DeviceErrc::io: return "io";
  }
  return "unknown";
}

std::string_view to_string(TriggerMode t) { return t == TriggerMode::software ? "software" : "free_run"; }

void to_json(nlohmann::json& j, PixelFormat f) { j = std::string(to_string(f)); }
void from_json(const nlohmann::json& j, PixelFormat& f) {
  const std::string s = j.is_string() ? j.get<std::string>() : j.dump();
  if (s == "mono8") f = PixelFormat::mono8;
  else if (s == "mono12") f = PixelFormat::mono12;
  else if (s == "mono16") f = PixelFormat::mono16;
  else throw std::invalid_argument("pixel_format must be mono8, mono12 or mono16, got '" + s + "'");
}
void to_json(nlohmann::json& j, TriggerMode t) { j = std::string(to_string(t)); }
void from_json(const nlohmann::json& j, TriggerMode& t) {
  const std::string s = j.is_string() ? j.get<std::string>() : j.dump();
  if (s == "free_run") t = TriggerMode::free_run;
  else if (s == "software") t = TriggerMode::software;
  else throw std::invalid_argument("trigger must be free_run or software, got '" + s + "'");
}

std::string_view to_string(PixelFormat f) {
  switch (f) {
    case PixelFormat::mono8: return "mono8";
    case PixelFormat::mono12: return "mono12";
    case PixelFormat::mono16: return "mono16";
  }
  return "unknown";
}

int bit_depth(PixelFormat f) {
  switch (f) {
    case PixelFormat::mono8: return 8;
    case PixelFormat::mono12: return 12;
    case PixelFormat::mono16: return 16;
  }
  return 0;
}

std::string RetryPolicy::validate() const {
  std::ostringstream m;
  if (max_attempts < 1) {
    m << "retry.max_attempts must be >= 1, got " << max_attempts;
  } else if (!(initial_backoff_ms >= 0.0) || !std::isfinite(initial_backoff_ms)) {
    m << "retry.initial_backoff_ms must be finite and >= 0, got " << initial_backoff_ms;
  } else if (!(backoff_factor >= 1.0) || !std::isfinite(backoff_factor)) {
    m << "retry.backoff_factor must be finite and >= 1, got " << backoff_factor;
  } else if (!(max_backoff_ms >= initial_backoff_ms) || !std::isfinite(max_backoff_ms)) {
    m << "retry.max_backoff_ms must be finite and >= retry.initial_backoff_ms (" << initial_backoff_ms
      << "), got " << max_backoff_ms;
  }
  return m.str();
}

std::chrono::microseconds RetryPolicy::backoff_before_attempt(int attempt) const {
  if (attempt < 2) return std::chrono::microseconds(0);
  const double ms =
      std::min(max_backoff_ms, initial_backoff_ms * std::pow(backoff_factor, attempt - 2));
  return std::chrono::microseconds(static_cast<long long>(std::llround(ms * 1000.0)));
}

bool is_transient(DeviceErrc e) {
  switch (e) {
    case DeviceErrc::timeout:
    case DeviceErrc::corrupt_frame:
    case DeviceErrc::write_failed:
    case DeviceErrc::disconnected:
      return true;
    case DeviceErrc::invalid_argument:
    case DeviceErrc::io:
      return false;
  }
  return false;
}

}  // namespace hilo::drivers
