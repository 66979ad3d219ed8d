#pragma once
// Camera model: irradiance on the sensor → integer ADC counts.
//
// Units and conventions (docs/sim.md, "Camera model"):
//   input    irradiance in photons per physical sensor pixel per millisecond, shape rows × cols
//            (the sensor before binning). Negative or non-finite input throws std::invalid_argument.
//   output   counts as whole numbers in an RArray of shape (rows / binning) × (cols / binning),
//            each in [0, 2^bit_depth − 1].
//   gain     conversion gain in electrons per count (e-/count): counts = electrons / gain + offset.
//            A larger gain_e_per_count means fewer counts per photon.
// Signal chain, per physical pixel p:
//   mean electrons  μ_p = irradiance_p · exposure_ms · QE + dark_p · exposure_ms / 1000,
//                   dark_p = dark_current_e_per_s (+ hot_pixel_e_per_s on a hot pixel)
//   electrons       e_p ~ Poisson(μ_p) if noise.shot_noise, else μ_p; then clipped to full_well_e
//   charge binning  E = Σ e_p over each binning × binning block (one read per binned pixel)
//   read noise      E += N(0, read_noise_e²)
//   ADC             counts = round(E / gain_e_per_count + dark_offset_counts), clipped to
//                   [0, 2^bit_depth − 1] (saturation at full scale).
// Hot pixels sit at fixed positions drawn from `seed` (fixed-pattern noise): each physical pixel is hot
// with probability noise.hot_pixel_fraction, independently of the per-frame generator.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "hilo/sim/field.hpp"

namespace hilo::sim {

// The noise part of a camera: what an as-built profile's `sensor` section sets.
struct SensorNoise {
  bool shot_noise = true;             // Poisson photon/dark-electron statistics
  double read_noise_e = 2.0;          // Gaussian σ per binned read, electrons
  double dark_offset_counts = 16.0;   // ADC pedestal added to every pixel, counts
  double dark_current_e_per_s = 1.0;  // thermal electrons per physical pixel per second
  double hot_pixel_fraction = 0.0;    // probability a physical pixel is hot, [0, 0.1]
  double hot_pixel_e_per_s = 2000.0;  // extra dark current of a hot pixel

  [[nodiscard]] std::string validate(const std::string& path = "sensor") const;  // "" when valid, else the broken rule
  // A noiseless sensor: no shot noise, read noise, offset, dark current or hot pixels.
  static SensorNoise none() { return {false, 0.0, 0.0, 0.0, 0.0, 0.0}; }
};

struct CameraOptions {
  int rows = 64;                 // physical sensor pixels, before binning
  int cols = 64;
  double pixel_pitch_um = 5.0;   // physical pixel pitch
  int binning = 1;               // b × b charge binning; rows and cols must be multiples of b
  double exposure_ms = 10.0;
  double gain_e_per_count = 1.0;
  double quantum_efficiency = 0.7;  // electrons per photon, (0, 1]
  double full_well_e = 20000.0;     // per physical pixel
  int bit_depth = 12;               // ADC bits, [8, 16]
  std::uint64_t seed = 1;           // fixed-pattern seed (hot-pixel positions)
  SensorNoise noise;

  [[nodiscard]] std::string validate(const std::string& path = "camera") const;  // "" when valid, else the broken rule
};

class CameraModel {
 public:
  explicit CameraModel(CameraOptions options);  // validates; throws ConfigError

  const CameraOptions& options() const { return opt_; }
  int out_rows() const { return opt_.rows / opt_.binning; }
  int out_cols() const { return opt_.cols / opt_.binning; }
  double full_scale_counts() const;  // 2^bit_depth − 1

  // One frame. rng drives shot and read noise only; the same rng state gives the same frame.
  RArray capture(const RArray& photons_per_px_per_ms, std::mt19937_64& rng) const;

  // Expected electrons per physical pixel (before noise, clipping and binning), for tests and
  // calibration ground truth.
  RArray mean_electrons(const RArray& photons_per_px_per_ms) const;

  // Hot-pixel mask on the physical sensor grid: 1 where hot, 0 elsewhere.
  const RArray& hot_pixel_mask() const { return hot_; }

 private:
  CameraOptions opt_;
  RArray hot_;
};

}  // namespace hilo::sim
