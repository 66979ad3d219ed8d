#pragma once
// As-built error profile: the "real hardware" in simulator mode.
//
// A profile describes how the built bench departs from the ideal model the student is trained on:
// brightness (gain), misalignment of the camera image, pupil aberrations, fabrication error of a fixed
// element, sensor noise and slow drift. It is hidden from the training model; calibration code may read
// it only as ground truth in tests. Every random part is drawn from `seed`, so one profile and one seed
// give bit-identical realisations in any call order. A default-constructed profile is ideal: every error
// zero and a noiseless sensor.
//
// Conventions (docs/sim.md, "As-built profile"):
//   misalignment  camera-grid transform about the frame centre (cols/2, rows/2), x = column, y = row
//                 (y points down): a point at ideal position (x, y) appears at
//                   x' = s (x cos θ − y sin θ) + t_x,   y' = s (x sin θ + y cos θ) + t_y
//                 θ = rotation_deg (positive = clockwise as displayed, since y points down),
//                 s = scale, t = shift in camera pixels (after binning: the camera's output pixels).
//   aberrations   pupil phase 2π · Σ_j c_j Z_j(ρ, θ), c_j in waves, Noll-normalised Zernike Z_j (RMS 1
//                 over the pupil); defocus_waves is c_4 (added to any zernike_waves entry for j = 4).
//   fabrication   fabricated phase = quantize((1 + height_error) · φ_design, quantization_levels)
//                 + a Gaussian random field of RMS phase_rms_rad whose autocorrelation is
//                 exp(−d² / L²), L = correlation_length_px element samples (1/e at lag L).
//                 quantization_levels = 0 means continuous.
//   drift         at time t (s, t ≥ 0): shift(t) = shift + rate·t + W_shift(t),
//                 gain(t) = gain · (1 + gain_per_s·t + W_gain(t)), W random walks with variance
//                 walk² · t, sampled every walk_step_s and linearly interpolated in between.
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "hilo/sim/camera_model.hpp"
#include "hilo/sim/field.hpp"
#include "hilo/sim/pose.hpp"

namespace hilo::sim {

struct Misalignment {
  double shift_x_px = 0.0;
  double shift_y_px = 0.0;
  double rotation_deg = 0.0;  // [−45, 45]
  double scale = 1.0;         // [0.5, 2]
};

struct Aberrations {
  double defocus_waves = 0.0;           // Noll Z4 coefficient, waves RMS
  std::map<int, double> zernike_waves;  // Noll index j ≥ 2 → coefficient in waves RMS
};

struct FabricationError {
  double phase_rms_rad = 0.0;          // random phase error RMS, rad
  double correlation_length_px = 2.0;  // element samples, > 0
  double height_error = 0.0;           // fractional etch-depth error, (−0.5, 0.5)
  int quantization_levels = 0;         // 0 = continuous, else [2, 65536]
};

struct Drift {
  double shift_x_px_per_s = 0.0;
  double shift_y_px_per_s = 0.0;
  double gain_per_s = 0.0;                 // fractional gain change per second
  double shift_walk_px_per_sqrt_s = 0.0;   // random-walk diffusion of the shift
  double gain_walk_per_sqrt_s = 0.0;       // random-walk diffusion of the fractional gain
  double walk_step_s = 1.0;                // random-walk sampling interval
};

struct AsBuiltProfile {
  std::string name = "ideal";
  std::uint64_t seed = 1;
  double gain = 1.0;  // brightness: multiplies the irradiance reaching the camera, (0, 10]
  Misalignment misalignment;
  Aberrations aberrations;
  FabricationError fabrication;
  SensorNoise sensor = SensorNoise::none();
  Drift drift;

  [[nodiscard]] std::string validate(const std::string& path = "profile") const;  // "" when valid, else the broken rule
};

// Realises a profile: deterministic maps and poses derived from its seed. Thread-safe.
class AsBuilt {
 public:
  explicit AsBuilt(AsBuiltProfile profile);  // validates; throws ConfigError

  const AsBuiltProfile& profile() const { return p_; }

  // Aberration phase (rad) on an element grid of rows × cols samples with a circular pupil of radius
  // pupil_radius_px samples centred on the optical axis; 0 outside the pupil. All-zero for no aberrations.
  RArray pupil_phase(Eigen::Index rows, Eigen::Index cols, double pupil_radius_px) const;

  // Fabricated phase of a fixed element designed as design_phase (rad). The random field depends only on
  // the seed and the shape, so two elements of one shape made under one profile share it.
  RArray fabricate(const RArray& design_phase) const;
  // The random phase error field alone (rad), rows × cols.
  RArray fabrication_noise(Eigen::Index rows, Eigen::Index cols) const;

  // Misalignment and gain at time t_s ≥ 0 (drift included). Throws std::invalid_argument for t_s < 0 or
  // non-finite t_s.
  Pose pose_at(double t_s) const;

 private:
  double walk(int stream, double t_s) const;  // random walk (unit diffusion) of one stream at t_s
  AsBuiltProfile p_;
  mutable std::mutex mu_;
  // Walk values at steps 0, 1, 2, … (unit variance per step) for shift x, shift y and gain, extended on
  // demand from one generator per stream seeded from the profile seed.
  mutable std::vector<double> walks_[3];
  mutable std::mt19937_64 walk_rng_[3];
  mutable std::normal_distribution<double> walk_step_[3];  // persistent: it caches pairs of draws
};

// Gaussian-smoothed white noise with exact sample RMS `rms` and autocorrelation exp(−d²/L²), on a
// rows × cols grid (circular), from rng.
RArray correlated_noise(Eigen::Index rows, Eigen::Index cols, double rms, double correlation_length_px,
                        std::mt19937_64& rng);

}  // namespace hilo::sim
