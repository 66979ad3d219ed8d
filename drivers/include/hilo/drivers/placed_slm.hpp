#pragma once
// Placement of a design-resolution pattern on an input device: the one rule the capture job, the
// calibration probes (PlacedSlm) and hilo-emulator (input_from_monitor, its inverse) share, so that
// probes, measured inputs and captured inputs land on the same device pixels.
//
// Rule: a rows × cols pattern is magnified by an integer factor s (nearest neighbour: each pattern pixel
// becomes s × s device pixels; default s = fitting_scale, the largest that fits), centred on a
// device_rows × device_cols pattern whose other pixels are 0 (dark); the top-left corner of the block is
// ((device_rows − rows·s) / 2, (device_cols − cols·s) / 2), integer division.
// Bit depth: 8-bit levels v (CV_8UC1) become device levels round(v·(2^b − 1)/255) for a device of bit
// depth b > 8 (CV_16UC1), and stay as they are for b ≤ 8; 16-bit levels (CV_16UC1) are device levels
// already and are placed unchanged.
#include <opencv2/core/mat.hpp>

#include "hilo/drivers/slm.hpp"

namespace hilo::drivers {

// The largest integer s with rows·s ≤ device_rows and cols·s ≤ device_cols; 0 when none (or a
// non-positive size).
int fitting_scale(int rows, int cols, int device_rows, int device_cols);

// The device pattern of `levels` (CV_8UC1 or CV_16UC1) under the rule above; scale 0 = fitting_scale.
// Throws std::invalid_argument when the pattern at that scale does not fit the device, or when the
// levels have another type.
cv::Mat place_pattern(const cv::Mat& levels, int device_rows, int device_cols, int bit_depth, int scale = 0);

// An input device seen at the design's input resolution: a rows × cols Slm that shows each pattern on
// `device` through place_pattern at the fitting scale, the rest of the device dark. With s = 1 and equal
// sizes it passes patterns through. The device is borrowed (it must outlive this object).
// Construction throws std::invalid_argument when rows × cols does not fit the device at s = 1.
class PlacedSlm final : public Slm {
 public:
  PlacedSlm(Slm& device, int rows, int cols);

  int scale() const { return scale_; }

  std::string name() const override { return device_.name(); }
  int width_px() const override { return cols_; }
  int height_px() const override { return rows_; }
  double pixel_pitch_um() const override { return device_.pixel_pitch_um() * scale_; }
  int bit_depth() const override { return device_.bit_depth(); }
  double settle_time_ms() const override { return device_.settle_time_ms(); }
  DeviceState state() const override { return device_.state(); }
  DeviceStatus open() override { return device_.open(); }
  void close() override { device_.close(); }
  // invalid_argument (as a DeviceError) when `levels` is not rows × cols, CV_8UC1 or CV_16UC1.
  DeviceStatus show(const cv::Mat& levels) override;

 private:
  Slm& device_;
  int rows_, cols_, scale_;
};

}  // namespace hilo::drivers
