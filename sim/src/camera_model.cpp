#include "hilo/sim/camera_model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <boost/random/normal_distribution.hpp>
#include <boost/random/poisson_distribution.hpp>

#include "hilo/io/options_json.hpp"
#include "hilo/sim/config_error.hpp"

namespace hilo::sim {

using detail::fmt;
using detail::range_rule;

std::string SensorNoise::validate(const std::string& path) const {
  return io::first_broken({range_rule(path + ".read_noise_e", read_noise_e, 0.0, 1e4),
                           range_rule(path + ".dark_offset_counts", dark_offset_counts, 0.0, 65535.0),
                           range_rule(path + ".dark_current_e_per_s", dark_current_e_per_s, 0.0, 1e7),
                           range_rule(path + ".hot_pixel_fraction", hot_pixel_fraction, 0.0, 0.1),
                           range_rule(path + ".hot_pixel_e_per_s", hot_pixel_e_per_s, 0.0, 1e9)});
}

std::string CameraOptions::validate(const std::string& path) const {
  if (auto e = io::first_broken({range_rule(path + ".rows", rows, 1, 16384), range_rule(path + ".cols", cols, 1, 16384),
                                 range_rule(path + ".pixel_pitch_um", pixel_pitch_um, 0.1, 100.0),
                                 range_rule(path + ".binning", binning, 1, 16)});
      !e.empty())
    return e;
  if (rows % binning != 0 || cols % binning != 0)
    return path + ".binning must divide rows and cols, got " + std::to_string(binning) + " for " +
           std::to_string(rows) + " x " + std::to_string(cols);
  if (auto e = io::first_broken({range_rule(path + ".exposure_ms", exposure_ms, 1e-6, 1e6),
                                 range_rule(path + ".gain_e_per_count", gain_e_per_count, 1e-3, 1e4)});
      !e.empty())
    return e;
  if (!(quantum_efficiency > 0.0 && quantum_efficiency <= 1.0))
    return path + ".quantum_efficiency must be in (0, 1], got " + fmt(quantum_efficiency);
  return io::first_broken({range_rule(path + ".full_well_e", full_well_e, 1.0, 1e8),
                           range_rule(path + ".bit_depth", bit_depth, 8, 16), noise.validate(path + ".noise")});
}

CameraModel::CameraModel(CameraOptions options) : opt_(std::move(options)) {
  detail::require_valid(opt_.validate());
  hot_ = RArray::Zero(opt_.rows, opt_.cols);
  if (opt_.noise.hot_pixel_fraction > 0.0) {
    std::mt19937_64 fixed(opt_.seed);
    std::bernoulli_distribution hot(opt_.noise.hot_pixel_fraction);
    for (Eigen::Index i = 0; i < hot_.size(); ++i) hot_.data()[i] = hot(fixed) ? 1.0 : 0.0;
  }
}

double CameraModel::full_scale_counts() const { return std::ldexp(1.0, opt_.bit_depth) - 1.0; }

RArray CameraModel::mean_electrons(const RArray& irr) const {
  if (irr.rows() != opt_.rows || irr.cols() != opt_.cols)
    throw std::invalid_argument("camera input must be " + std::to_string(opt_.rows) + " x " +
                                std::to_string(opt_.cols) + " (sensor pixels), got " +
                                std::to_string(irr.rows()) + " x " + std::to_string(irr.cols()));
  if (!irr.isFinite().all() || (irr < 0.0).any())
    throw std::invalid_argument("camera input irradiance must be finite and >= 0");
  const double t_s = opt_.exposure_ms * 1e-3;
  return irr * (opt_.exposure_ms * opt_.quantum_efficiency) + opt_.noise.dark_current_e_per_s * t_s +
         hot_ * (opt_.noise.hot_pixel_e_per_s * t_s);
}

RArray CameraModel::capture(const RArray& irr, std::mt19937_64& rng) const {
  RArray e = mean_electrons(irr);
  if (opt_.noise.shot_noise) {
    // One Poisson draw per pixel, each with its own mean. Boost.Random's sampler (inversion below a mean
    // of 10, Hörmann's PTRD above) sets up a new mean in a few operations, where std::poisson_distribution
    // evaluates lgamma and logarithms for each: 2.2–2.5 against 10.8–11.1 ms for a 144 × 144 frame of
    // means 50–5,000 e⁻ (docs/sim.md, "Camera model").
    for (Eigen::Index i = 0; i < e.size(); ++i) {
      const double mu = e.data()[i];
      e.data()[i] = mu > 0.0 ? double(boost::random::poisson_distribution<long long, double>(mu)(rng)) : 0.0;
    }
  }
  e = e.min(opt_.full_well_e);

  const int b = opt_.binning;
  RArray binned(out_rows(), out_cols());
  for (int r = 0; r < out_rows(); ++r)
    for (int c = 0; c < out_cols(); ++c) binned(r, c) = e.block(r * b, c * b, b, b).sum();

  if (opt_.noise.read_noise_e > 0.0) {
    boost::random::normal_distribution<double> read(0.0, opt_.noise.read_noise_e);  // ziggurat
    for (Eigen::Index i = 0; i < binned.size(); ++i) binned.data()[i] += read(rng);
  }
  const double top = full_scale_counts();
  return (binned / opt_.gain_e_per_count + opt_.noise.dark_offset_counts)
      .round()
      .max(0.0)
      .min(top);
}

}  // namespace hilo::sim
