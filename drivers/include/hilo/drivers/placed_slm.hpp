#pragma once
// An input device seen at the design's input resolution: a rows × cols Slm that shows each pattern on
// `device` magnified by the largest integer factor s that fits (each pattern pixel becomes s × s device
// pixels), centred, the rest of the device dark. It is the placement the capture job uses and the one
// hilo-emulator inverts (input_from_monitor), so calibration probes, measured inputs and captured
// inputs land on the same device pixels. With s = 1 and equal sizes it passes patterns through.
// The device is borrowed (it must outlive this object); levels keep the device's type and bit depth.
// Construction throws std::invalid_argument when rows × cols does not fit the device at s = 1.
#include "hilo/drivers/slm.hpp"

namespace hilo::drivers {

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
  // invalid_argument (as a DeviceError) when `levels` is not rows × cols.
  DeviceStatus show(const cv::Mat& levels) override;

 private:
  Slm& device_;
  int rows_, cols_, scale_;
};

}  // namespace hilo::drivers
