#pragma once
// Phase-only SLM model: levels → realised complex modulation.
//
// Conventions (docs/sim.md, "SLM model"):
//   levels     integers in [0, 2^bit_depth − 1], one per SLM pixel, shape rows × cols.
//   LUT        level → phase in radians. Empty `lut_rad` means linear: φ(l) = 2π · l / 2^bit_depth
//              (so the top level sits one step below 2π). A table must have exactly 2^bit_depth
//              finite entries.
//   quantize   a desired phase (any real value, rad) → the level whose LUT phase is nearest on the
//              circle (distance measured modulo 2π); ties go to the lower level.
//   oversample s: the realised field is sampled at s × s points per SLM pixel, pitch = pixel_pitch / s.
//   fringing   pixel crosstalk: the realised phase is the nearest-upsampled level phase map convolved
//              with a normalised Gaussian of σ = fringing_sigma_px SLM pixels (σ·s samples), with edge
//              replication at the panel border. Phase wraps are smoothed through intermediate values,
//              as the liquid crystal's director field does (the "flyback" region).
//   fill factor the active area fraction ff of each pixel, a centred square of side √ff · pitch. The
//              amplitude of a sample is the active fraction of the area it covers, so its mean over a
//              pixel is exactly ff; at s = 1 the amplitude is ff everywhere (a pure efficiency factor).
#include <cstdint>
#include <string>
#include <vector>

#include "hilo/sim/field.hpp"

namespace hilo::sim {

using Levels = Eigen::Array<std::uint16_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct SlmOptions {
  int rows = 64;
  int cols = 64;
  double pixel_pitch_um = 8.0;
  double fill_factor = 0.93;      // (0, 1]
  int bit_depth = 8;              // [1, 16]
  std::vector<double> lut_rad;    // empty → linear; else 2^bit_depth entries
  double fringing_sigma_px = 0.0; // [0, 5] SLM pixels
  int oversample = 1;             // [1, 32]

  [[nodiscard]] std::string validate(const std::string& path = "slm") const;  // "" when valid, else the broken rule
};

class SlmModel {
 public:
  explicit SlmModel(SlmOptions options);  // validates; throws ConfigError

  const SlmOptions& options() const { return opt_; }
  int levels_count() const { return 1 << opt_.bit_depth; }
  double phase_of_level(int level) const;  // LUT lookup, rad

  // Nearest level per pixel. Shape must be rows × cols, values finite, else std::invalid_argument.
  Levels quantize(const RArray& phase_rad) const;
  // LUT phase per SLM pixel (no fringing), rad. Levels out of range throw std::invalid_argument.
  RArray level_phase(const Levels& levels) const;
  // Realised phase on the oversampled grid, (rows·s) × (cols·s), rad, fringing applied.
  RArray realised_phase(const Levels& levels) const;
  // Realised complex modulation on the oversampled grid: amplitude (fill factor) · e^{i φ_realised}.
  CArray modulation(const Levels& levels) const;

 private:
  void check_shape(Eigen::Index r, Eigen::Index c, const char* what) const;
  SlmOptions opt_;
  std::vector<double> lut_;  // 2^bit_depth phases
};

}  // namespace hilo::sim
