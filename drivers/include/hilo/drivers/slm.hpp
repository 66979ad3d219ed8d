#pragma once
// Spatial light modulator (or display) interface. A pattern is shown pixel-exact: its size must equal
// the device resolution and it is never resampled. Levels are 8-bit (CV_8UC1) or 16-bit (CV_16UC1);
// a device of bit depth b uses levels [0, 2^b − 1].
#include <string>

#include <opencv2/core/mat.hpp>

#include "hilo/drivers/device.hpp"

namespace hilo::drivers {

class Slm {
 public:
  virtual ~Slm() = default;

  virtual std::string name() const = 0;
  virtual int width_px() const = 0;
  virtual int height_px() const = 0;
  virtual double pixel_pitch_um() const = 0;
  virtual int bit_depth() const = 0;
  virtual double settle_time_ms() const = 0;  // time after show() before the pattern is stable

  virtual DeviceState state() const = 0;
  // Idempotent: opening an open device or closing a closed one is a no-op.
  virtual DeviceStatus open() = 0;
  virtual void close() = 0;

  // Shows `levels` and returns once it is displayed and settled (or the error). invalid_argument if the
  // size or type does not match the device.
  virtual DeviceStatus show(const cv::Mat& levels) = 0;
};

}  // namespace hilo::drivers
