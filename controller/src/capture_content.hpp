#pragma once
// Internal to the capture job (capture.cpp): whether a capture checks frame content, and the gate when
// it does (capture.hpp, "Frame integrity by content"; calibration/content_gate.hpp).
#include <optional>

#include <nlohmann/json.hpp>

#include "hilo/calibration/content_gate.hpp"
#include "hilo/controller/capture.hpp"

namespace hilo::controller {

struct CaptureContent {
  std::optional<calibration::ContentGate> gate;  // empty: the check is off
  // stats.content_check: {"active", "model": "design (uncalibrated)", "options"} or {"active": false,
  // "reason"}; reference_frames and dark_noise_counts are added once the reference is taken.
  nlohmann::json status;

  void off(const std::string& reason);
};

// The gate for capturing `in` on `devices` under `opt`, or why there is none. Never throws: a design the
// gate refuses turns the check off with the refusal as the reason.
CaptureContent capture_content(const CaptureInputs& in, const CaptureOptions& opt, const Devices& devices);

}  // namespace hilo::controller
