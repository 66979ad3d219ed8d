#include "hilo/drivers/retry.hpp"

#include <cassert>

namespace hilo::drivers {

RetryingSlm::RetryingSlm(std::unique_ptr<Slm> inner, RetryPolicy policy, Clock& clock)
    : inner_(std::move(inner)), policy_(policy), clock_(&clock) {
  assert(inner_ && "RetryingSlm needs a device");
  assert(policy_.validate().empty() && "validate the RetryPolicy before wrapping");
}

DeviceStatus RetryingSlm::open() {
  return run_with_retry(policy_, *clock_, counters_, [&] { return inner_->open(); });
}

DeviceStatus RetryingSlm::show(const cv::Mat& levels) {
  DeviceStatus s = run_with_retry(
      policy_, *clock_, counters_, [&] { return inner_->show(levels); },
      [&]() -> DeviceStatus {
        inner_->close();
        return inner_->open();
      });
  if (!s) levels.copyTo(last_shown_);
  return s;
}

RetryingCamera::RetryingCamera(std::unique_ptr<Camera> inner, RetryPolicy policy, Clock& clock)
    : inner_(std::move(inner)), policy_(policy), clock_(&clock) {
  assert(inner_ && "RetryingCamera needs a device");
  assert(policy_.validate().empty() && "validate the RetryPolicy before wrapping");
}

// Reopens the device and restores the settings it had, so a reconnect is invisible to the caller.
DeviceStatus RetryingCamera::reopen() {
  const PixelFormat format = inner_->pixel_format();
  const double exposure = inner_->exposure_ms();
  const double gain = inner_->gain_db();
  const TriggerMode trigger = inner_->trigger_mode();
  inner_->close();
  if (auto e = inner_->open()) return e;
  if (auto e = inner_->set_pixel_format(format)) return e;
  if (auto e = inner_->set_exposure_ms(exposure)) return e;
  if (auto e = inner_->set_gain_db(gain)) return e;
  return inner_->set_trigger_mode(trigger);
}

DeviceStatus RetryingCamera::open() {
  return run_with_retry(policy_, *clock_, counters_, [&] { return inner_->open(); });
}

DeviceStatus RetryingCamera::set_pixel_format(PixelFormat f) {
  return run_with_retry(policy_, *clock_, counters_, [&] { return inner_->set_pixel_format(f); });
}

DeviceStatus RetryingCamera::set_exposure_ms(double ms) {
  return run_with_retry(policy_, *clock_, counters_, [&] { return inner_->set_exposure_ms(ms); });
}

DeviceStatus RetryingCamera::set_gain_db(double db) {
  return run_with_retry(policy_, *clock_, counters_, [&] { return inner_->set_gain_db(db); });
}

DeviceStatus RetryingCamera::set_trigger_mode(TriggerMode m) {
  return run_with_retry(policy_, *clock_, counters_, [&] { return inner_->set_trigger_mode(m); });
}

DeviceResult<Frame> RetryingCamera::grab(std::chrono::milliseconds timeout) {
  return run_with_retry(
      policy_, *clock_, counters_, [&] { return inner_->grab(timeout); }, [&] { return reopen(); });
}

}  // namespace hilo::drivers
