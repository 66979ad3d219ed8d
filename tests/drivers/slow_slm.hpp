#pragma once
// Test double for a slow SLM, shared by the capture and calibration suites: a decorator whose show()
// calls numbered in `swallow` (1-based, counted from construction or the last arm()) return at once
// without reaching the device, so the device keeps the previous pattern and the next frame images it —
// with a fresh frame id and a timestamp after the settle, which the frame gate cannot tell from a good
// frame: only its content shows it. Every other call passes through.
#include <set>
#include <string>

#include "hilo/drivers/slm.hpp"

namespace hilo::drivers::testing {

class SlowSlm final : public Slm {
 public:
  explicit SlowSlm(Slm& inner, std::set<int> swallow = {}) : in_(inner), swallow_(std::move(swallow)) {}
  // Swallows the calls numbered in `swallow`, counting from the next call.
  void arm(std::set<int> swallow) {
    swallow_ = std::move(swallow);
    calls_ = 0;
  }
  std::string name() const override { return in_.name(); }
  int width_px() const override { return in_.width_px(); }
  int height_px() const override { return in_.height_px(); }
  double pixel_pitch_um() const override { return in_.pixel_pitch_um(); }
  int bit_depth() const override { return in_.bit_depth(); }
  double settle_time_ms() const override { return in_.settle_time_ms(); }
  DeviceState state() const override { return in_.state(); }
  DeviceStatus open() override { return in_.open(); }
  void close() override { in_.close(); }
  DeviceStatus show(const cv::Mat& levels) override { return swallow_.count(++calls_) ? std::nullopt : in_.show(levels); }

 private:
  Slm& in_;
  std::set<int> swallow_;
  int calls_ = 0;
};

}  // namespace hilo::drivers::testing
