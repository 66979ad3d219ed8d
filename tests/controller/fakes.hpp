#pragma once
// Test doubles for the controller tests: plain classes whose behaviour the test sets through public
// members. The camera's frame is a pure function of the SLM's last pattern, so tests can check every
// stored frame against the input that produced it:
//   frame(r, c) = 3 · pattern(r, c) + 7   (CV_16UC1, same size as the SLM)
#include <functional>
#include <optional>
#include <vector>

#include <opencv2/core.hpp>

#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/slm.hpp"

namespace hilo::controller::testing {

using drivers::DeviceError;
using drivers::DeviceErrc;
using drivers::DeviceResult;
using drivers::DeviceState;
using drivers::DeviceStatus;

class FakeSlm : public drivers::Slm {
 public:
  int rows = 32, cols = 32, depth = 8;
  cv::Mat last;
  int shows = 0;
  std::optional<DeviceError> fail;  // returned by every show() while set

  std::string name() const override { return "fake-slm"; }
  int width_px() const override { return cols; }
  int height_px() const override { return rows; }
  double pixel_pitch_um() const override { return 8.0; }
  int bit_depth() const override { return depth; }
  double settle_time_ms() const override { return 0.0; }
  DeviceState state() const override { return DeviceState::ready; }
  DeviceStatus open() override { return std::nullopt; }
  void close() override {}
  DeviceStatus show(const cv::Mat& levels) override {
    if (fail) return fail;
    if (levels.rows != rows || levels.cols != cols || (levels.type() != CV_8UC1 && levels.type() != CV_16UC1)) {
      return DeviceError{DeviceErrc::invalid_argument, "slm 'fake-slm': pattern size or type mismatch"};
    }
    last = levels.clone();
    ++shows;
    return std::nullopt;
  }
};

class FakeCamera : public drivers::Camera {
 public:
  explicit FakeCamera(FakeSlm& slm) : slm_(slm) {}
  std::optional<DeviceError> fail;          // returned by every grab() while set
  std::function<void(std::uint64_t)> on_grab;  // called with the sequence number before each frame
  std::uint64_t seq = 0;
  double exposure = 10.0, gain = 0.0;
  drivers::PixelFormat format = drivers::PixelFormat::mono16;
  drivers::TriggerMode trigger = drivers::TriggerMode::software;

  static cv::Mat expected_frame(const cv::Mat& pattern) {
    cv::Mat f;
    pattern.convertTo(f, CV_16UC1, 3.0, 7.0);
    return f;
  }

  std::string name() const override { return "fake-camera"; }
  int width_px() const override { return slm_.cols; }
  int height_px() const override { return slm_.rows; }
  DeviceState state() const override { return DeviceState::ready; }
  DeviceStatus open() override { return std::nullopt; }
  void close() override {}
  drivers::PixelFormat pixel_format() const override { return format; }
  DeviceStatus set_pixel_format(drivers::PixelFormat f) override {
    format = f;
    return std::nullopt;
  }
  double exposure_ms() const override { return exposure; }
  DeviceStatus set_exposure_ms(double ms) override {
    if (ms > 1000) return DeviceError{DeviceErrc::invalid_argument, "camera 'fake-camera': exposure above 1000 ms"};
    exposure = ms;
    return std::nullopt;
  }
  double gain_db() const override { return gain; }
  DeviceStatus set_gain_db(double db) override {
    gain = db;
    return std::nullopt;
  }
  drivers::TriggerMode trigger_mode() const override { return trigger; }
  DeviceStatus set_trigger_mode(drivers::TriggerMode m) override {
    trigger = m;
    return std::nullopt;
  }
  DeviceResult<drivers::Frame> grab(std::chrono::milliseconds) override {
    if (on_grab) on_grab(seq);
    if (fail) return *fail;
    drivers::Frame f;
    f.image = slm_.last.empty() ? cv::Mat(slm_.rows, slm_.cols, CV_16UC1, cv::Scalar(7)) : expected_frame(slm_.last);
    f.sequence = seq++;
    f.timestamp_s = 0.001 * static_cast<double>(f.sequence);
    return f;
  }

 private:
  FakeSlm& slm_;
};

}  // namespace hilo::controller::testing
