#pragma once
// The retry helper every driver path goes through, and the decorators that give any Slm or Camera the
// stated RetryPolicy plus the counters the daemon reports per device.
//
// Rule (device.hpp): an operation is tried up to policy.max_attempts times. After a transient failure
// (timeout, corrupt_frame, write_failed) the helper waits policy.backoff_before_attempt(n) on the
// injected Clock and tries again. After `disconnected` it tries once to reopen the device (close, then
// open); only if the reopen succeeds does the attempt count as retryable. The last attempt's
// disconnect is reopened too (without the backoff wait), so the next operation does not meet a closed
// device and report the same disconnect a second time; `reconnects` counts it when it succeeds.
// invalid_argument and io are returned at once. The error returned is that of the last attempt, its message prefixed with the
// number of attempts made when more than one.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>

#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/clock.hpp"
#include "hilo/drivers/device.hpp"
#include "hilo/drivers/slm.hpp"

namespace hilo::drivers {

// Per-device counters. attempts: every try of an operation (first tries and retries); retries: tries
// after a failure; failures: operations that ended in an error after their last try; reconnects:
// successful reopens after `disconnected`.
struct RetryCounters {
  std::uint64_t attempts = 0;
  std::uint64_t retries = 0;
  std::uint64_t failures = 0;
  std::uint64_t reconnects = 0;
};

namespace detail {
inline const DeviceError* error_of(const DeviceStatus& s) { return s ? &*s : nullptr; }
template <typename T>
const DeviceError* error_of(const DeviceResult<T>& r) {
  return r.ok() ? nullptr : &r.error();
}
template <typename R>
R with_attempt_count(R result, int attempts) {
  if (attempts <= 1) return result;
  DeviceError e = *error_of(result);
  e.message = "after " + std::to_string(attempts) + " attempts: " + e.message;
  return R(std::move(e));
}
}  // namespace detail

// Runs `op` (() -> DeviceStatus or DeviceResult<T>) under `policy`. `reopen` (may be empty: then
// `disconnected` is final) closes and reopens the device and returns its status.
template <typename Op>
auto run_with_retry(const RetryPolicy& policy, Clock& clock, RetryCounters& counters, Op&& op,
                    const std::function<DeviceStatus()>& reopen = {}) -> std::invoke_result_t<Op&> {
  using R = std::invoke_result_t<Op&>;
  for (int attempt = 1;; ++attempt) {
    ++counters.attempts;
    if (attempt > 1) ++counters.retries;
    R result = op();
    const DeviceError* err = detail::error_of(result);
    if (err == nullptr) return result;
    bool retry = attempt < policy.max_attempts && is_transient(err->code);
    if (err->code == DeviceErrc::disconnected && reopen) {
      if (retry) clock.sleep_for(policy.backoff_before_attempt(attempt + 1));
      const bool reopened = !reopen();
      if (reopened) ++counters.reconnects;
      retry = retry && reopened;
    } else if (retry) {
      clock.sleep_for(policy.backoff_before_attempt(attempt + 1));
    }
    if (!retry) {
      ++counters.failures;
      return detail::with_attempt_count(std::move(result), attempt);
    }
  }
}

// An Slm whose show() and open() follow `policy`. Owns the wrapped device; the clock must outlive it.
class RetryingSlm final : public Slm {
 public:
  RetryingSlm(std::unique_ptr<Slm> inner, RetryPolicy policy, Clock& clock);

  std::string name() const override { return inner_->name(); }
  int width_px() const override { return inner_->width_px(); }
  int height_px() const override { return inner_->height_px(); }
  double pixel_pitch_um() const override { return inner_->pixel_pitch_um(); }
  int bit_depth() const override { return inner_->bit_depth(); }
  double settle_time_ms() const override { return inner_->settle_time_ms(); }
  DeviceState state() const override { return inner_->state(); }
  DeviceStatus open() override;
  void close() override { inner_->close(); }
  DeviceStatus show(const cv::Mat& levels) override;

  const RetryCounters& counters() const { return counters_; }
  const RetryPolicy& policy() const { return policy_; }
  Slm& inner() { return *inner_; }
  // A copy of the levels of the last successful show() (empty before one): what the device shows now.
  // Read it only while holding the bench's device mutex, as for show().
  const cv::Mat& last_shown() const { return last_shown_; }

 private:
  std::unique_ptr<Slm> inner_;
  RetryPolicy policy_;
  Clock* clock_;
  RetryCounters counters_;
  cv::Mat last_shown_;
};

// A Camera whose open(), setters and grab() follow `policy`. A retried grab() waits up to `timeout`
// per attempt, so the worst case is max_attempts × timeout plus the backoffs.
class RetryingCamera final : public Camera {
 public:
  RetryingCamera(std::unique_ptr<Camera> inner, RetryPolicy policy, Clock& clock);

  std::string name() const override { return inner_->name(); }
  int width_px() const override { return inner_->width_px(); }
  int height_px() const override { return inner_->height_px(); }
  DeviceState state() const override { return inner_->state(); }
  DeviceStatus open() override;
  void close() override { inner_->close(); }
  PixelFormat pixel_format() const override { return inner_->pixel_format(); }
  DeviceStatus set_pixel_format(PixelFormat f) override;
  double exposure_ms() const override { return inner_->exposure_ms(); }
  DeviceStatus set_exposure_ms(double ms) override;
  double gain_db() const override { return inner_->gain_db(); }
  DeviceStatus set_gain_db(double db) override;
  TriggerMode trigger_mode() const override { return inner_->trigger_mode(); }
  DeviceStatus set_trigger_mode(TriggerMode m) override;
  DeviceResult<Frame> grab(std::chrono::milliseconds timeout) override;

  const RetryCounters& counters() const { return counters_; }
  const RetryPolicy& policy() const { return policy_; }
  Camera& inner() { return *inner_; }

 private:
  DeviceStatus reopen();
  std::unique_ptr<Camera> inner_;
  RetryPolicy policy_;
  Clock* clock_;
  RetryCounters counters_;
};

}  // namespace hilo::drivers
