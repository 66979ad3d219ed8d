#pragma once
// What every device (SLM, camera) shares: its state, the errors it reports, and the retry policy the
// drivers apply before reporting a fault to the daemon.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

namespace hilo::drivers {

enum class DeviceState { ready, busy, fault, disconnected };
std::string_view to_string(DeviceState s);

// Stable error codes at the driver boundary; the daemon maps them onto protocol error codes.
enum class DeviceErrc {
  timeout,           // no frame / no acknowledgement within the deadline
  disconnected,      // the device is gone (cable, process, X display)
  write_failed,      // the SLM did not accept a pattern
  corrupt_frame,     // a frame arrived but failed its integrity check
  invalid_argument,  // the caller asked for something the device cannot do (size, depth, range)
  io,                // any other failure of the transport
};
std::string_view to_string(DeviceErrc e);

struct DeviceError {
  DeviceErrc code;
  std::string message;  // names the device and what failed, e.g. "camera 'sim': grab timed out after 50 ms"
};

// Result of an operation that yields a value: the value, or the error that prevented it.
template <typename T>
class DeviceResult {
 public:
  DeviceResult(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  DeviceResult(DeviceError err) : v_(std::move(err)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  const DeviceError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, DeviceError> v_;
};

// Result of an operation that yields nothing: std::nullopt on success.
using DeviceStatus = std::optional<DeviceError>;

// How a driver retries a failed operation before it reports the failure: up to max_attempts tries,
// waiting initial_backoff_ms, then ×backoff_factor after each failure, capped at max_backoff_ms.
// Only transient errors (timeout, corrupt_frame, write_failed, disconnected followed by a successful
// reopen) are retried; invalid_argument never is.
struct RetryPolicy {
  int max_attempts = 3;
  double initial_backoff_ms = 5.0;
  double backoff_factor = 2.0;
  double max_backoff_ms = 500.0;

  // Empty when valid, else the violated rule, e.g. "retry.max_attempts must be >= 1, got 0".
  [[nodiscard]] std::string validate() const;
  std::chrono::microseconds backoff_before_attempt(int attempt) const;  // attempt = 2, 3, ...
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RetryPolicy, max_attempts, initial_backoff_ms, backoff_factor,
                                                max_backoff_ms)

bool is_transient(DeviceErrc e);

}  // namespace hilo::drivers
