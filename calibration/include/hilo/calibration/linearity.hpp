#pragma once
// Gain and linearity of the whole chain (input device → optics → camera).
//
// Uniform inputs at several levels L are shown; the dark-corrected signal summed over the frame (hot
// pixels excluded) S(L) is compared with the registered model summed alike, M(L) (predictor counts
// through registered_model). Whole-frame sums conserve light whatever the as-built PSF does to the
// shape of the lit area, which plateau means do not:
//     S = gain · M + offset        (least squares over the unsaturated levels)
// gain is the brightness of the bench relative to its design (the as-built profile's gain in simulator
// mode: within 1 % there, docs/calibration.md). The plateau is where the registered model at L = 1 is
// ≥ min_model_fraction of its maximum. A level is saturated when any plateau pixel of its raw
// mean frame is within saturation_margin_counts of the camera's full scale (2^bits − 1 of the pixel
// format); saturation_level is the lowest such L. nonlinearity is the largest |S − fit| / (gain · max M)
// over the unsaturated levels.
#include <optional>
#include <string>
#include <vector>

#include "hilo/calibration/dark_flat.hpp"
#include "hilo/calibration/probe.hpp"
#include "hilo/calibration/registration.hpp"

namespace hilo::calibration {

struct LinearityOptions {
  std::vector<double> levels = {0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0};  // in [0, 1], ≥ 2 distinct
  int frames = 4;                    // ≥ 1
  double min_model_fraction = 0.9;   // (0, 1]
  double saturation_margin_counts = 0.5;  // ≥ 0

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};

struct LinearityFit {
  double gain = 0.0;
  double offset = 0.0;        // counts
  double nonlinearity = 0.0;  // fraction of full signal
  std::optional<double> saturation_level;
  std::vector<double> levels, signal, model;  // per level: S and M (sums over the frame)
  int fitted_levels = 0;
  std::string report;
};

drivers::DeviceResult<LinearityFit> measure_linearity(ProbeRig& rig, const Predictor& predict, const DarkFrame& dark,
                                                      const PoseFit& registration,
                                                      const LinearityOptions& options = {});

}  // namespace hilo::calibration
