#include "hilo/sim/as_built.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "hilo/io/options_json.hpp"
#include "hilo/sim/config_error.hpp"
#include "hilo/sim/fft.hpp"
#include "hilo/sim/optics.hpp"

namespace hilo::sim {

namespace {
constexpr double kPi = std::numbers::pi;
// Independent generator streams derived from one profile seed.
enum Stream : std::uint64_t { kFabrication = 0x9e3779b97f4a7c15ULL, kWalk = 0xbf58476d1ce4e5b9ULL };
}  // namespace

std::string AsBuiltProfile::validate(const std::string& path) const {
  using namespace detail;
  if (!(gain > 0.0 && gain <= 10.0)) return path + ".gain must be in (0, 10], got " + fmt(gain);
  const std::string m = path + ".misalignment";
  const std::string a = path + ".aberrations";
  if (auto e = io::first_broken({range_rule(m + ".shift_x_px", misalignment.shift_x_px, -1000.0, 1000.0),
                                 range_rule(m + ".shift_y_px", misalignment.shift_y_px, -1000.0, 1000.0),
                                 range_rule(m + ".rotation_deg", misalignment.rotation_deg, -45.0, 45.0),
                                 range_rule(m + ".scale", misalignment.scale, 0.5, 2.0),
                                 range_rule(a + ".defocus_waves", aberrations.defocus_waves, -10.0, 10.0)});
      !e.empty())
    return e;
  for (const auto& [j, c] : aberrations.zernike_waves) {
    if (j < 2 || j > 66) return a + ".zernike_waves key must be a Noll index in [2, 66], got " + std::to_string(j);
    if (auto e = range_rule(a + ".zernike_waves." + std::to_string(j), c, -10.0, 10.0); !e.empty()) return e;
  }
  const std::string f = path + ".fabrication";
  if (auto e = io::first_broken({range_rule(f + ".phase_rms_rad", fabrication.phase_rms_rad, 0.0, 10.0),
                                 range_rule(f + ".correlation_length_px", fabrication.correlation_length_px, 0.1, 1000.0)});
      !e.empty())
    return e;
  if (!(fabrication.height_error > -0.5 && fabrication.height_error < 0.5))
    return f + ".height_error must be in (-0.5, 0.5), got " + fmt(fabrication.height_error);
  const std::string d = path + ".drift";
  return io::first_broken(
      {fabrication.quantization_levels != 0
           ? range_rule(f + ".quantization_levels", fabrication.quantization_levels, 2, 65536)
           : std::string(),
       sensor.validate(path + ".sensor"),
       range_rule(d + ".shift_x_px_per_s", drift.shift_x_px_per_s, -10.0, 10.0),
       range_rule(d + ".shift_y_px_per_s", drift.shift_y_px_per_s, -10.0, 10.0),
       range_rule(d + ".gain_per_s", drift.gain_per_s, -0.1, 0.1),
       range_rule(d + ".shift_walk_px_per_sqrt_s", drift.shift_walk_px_per_sqrt_s, 0.0, 10.0),
       range_rule(d + ".gain_walk_per_sqrt_s", drift.gain_walk_per_sqrt_s, 0.0, 0.1),
       range_rule(d + ".walk_step_s", drift.walk_step_s, 1e-3, 3600.0)});
}

AsBuilt::AsBuilt(AsBuiltProfile profile) : p_(std::move(profile)) {
  detail::require_valid(p_.validate());
  for (int s = 0; s < 3; ++s) {
    walk_rng_[s].seed(p_.seed ^ (kWalk + std::uint64_t(s)));
    walks_[s] = {0.0};
  }
}

RArray AsBuilt::pupil_phase(Eigen::Index rows, Eigen::Index cols, double pupil_radius_px) const {
  RArray phase = RArray::Zero(rows, cols);
  std::map<int, double> c = p_.aberrations.zernike_waves;
  c[4] += p_.aberrations.defocus_waves;
  for (const auto& [j, waves] : c)
    if (waves != 0.0) phase += (2.0 * kPi * waves) * zernike_map(j, rows, cols, 1.0, pupil_radius_px);
  return phase;
}

RArray AsBuilt::fabrication_noise(Eigen::Index rows, Eigen::Index cols) const {
  if (p_.fabrication.phase_rms_rad == 0.0) return RArray::Zero(rows, cols);
  std::mt19937_64 rng(p_.seed ^ kFabrication);
  return correlated_noise(rows, cols, p_.fabrication.phase_rms_rad, p_.fabrication.correlation_length_px, rng);
}

RArray AsBuilt::fabricate(const RArray& design) const {
  RArray phase = design * (1.0 + p_.fabrication.height_error);
  if (const int q = p_.fabrication.quantization_levels; q > 0) {
    const double step = 2.0 * kPi / q;
    phase = (phase / step).round() * step;
  }
  if (p_.fabrication.phase_rms_rad > 0.0) phase += fabrication_noise(design.rows(), design.cols());
  return phase;
}

double AsBuilt::walk(int s, double t_s) const {
  const double u = t_s / p_.drift.walk_step_s;
  const auto k = static_cast<std::size_t>(std::floor(u));
  std::lock_guard lock(mu_);
  std::vector<double>& w = walks_[s];
  while (w.size() < k + 2) w.push_back(w.back() + walk_step_[s](walk_rng_[s]));
  const double f = u - double(k);
  // Unit variance per step → variance t/step; scaled to walk²·t by the caller via √step.
  return ((1.0 - f) * w[k] + f * w[k + 1]) * std::sqrt(p_.drift.walk_step_s);
}

Pose AsBuilt::pose_at(double t_s) const {
  if (!std::isfinite(t_s) || t_s < 0.0)
    throw std::invalid_argument("as-built pose time must be finite and >= 0 s, got " + detail::fmt(t_s));
  const auto& m = p_.misalignment;
  const auto& d = p_.drift;
  Pose pose{m.shift_x_px, m.shift_y_px, m.rotation_deg, m.scale, p_.gain};
  if (t_s == 0.0) return pose;
  pose.shift_x_px += d.shift_x_px_per_s * t_s;
  pose.shift_y_px += d.shift_y_px_per_s * t_s;
  double g = 1.0 + d.gain_per_s * t_s;
  if (d.shift_walk_px_per_sqrt_s > 0.0) {
    pose.shift_x_px += d.shift_walk_px_per_sqrt_s * walk(0, t_s);
    pose.shift_y_px += d.shift_walk_px_per_sqrt_s * walk(1, t_s);
  }
  if (d.gain_walk_per_sqrt_s > 0.0) g += d.gain_walk_per_sqrt_s * walk(2, t_s);
  pose.gain *= std::max(g, 0.0);
  return pose;
}

RArray correlated_noise(Eigen::Index rows, Eigen::Index cols, double rms, double L, std::mt19937_64& rng) {
  std::normal_distribution<double> g(0.0, 1.0);
  CArray w(rows, cols);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = g(rng);
  // Smoothing white noise with a Gaussian of σ gives autocorrelation exp(−d²/(4σ²)) = exp(−d²/L²) for
  // σ = L/2; applied as its transfer function exp(−2π²σ²ν²) on the periodic grid.
  const Fft2 fft(rows, cols);
  fft.forward(w);
  const Eigen::ArrayXd fy = fft_frequencies(rows, 1.0), fx = fft_frequencies(cols, 1.0);
  const double sigma = 0.5 * L;
  for (Eigen::Index r = 0; r < rows; ++r)
    for (Eigen::Index c = 0; c < cols; ++c)
      w(r, c) *= std::exp(-2.0 * kPi * kPi * sigma * sigma * (fy(r) * fy(r) + fx(c) * fx(c)));
  fft.inverse(w);
  RArray n = w.real();
  n -= n.mean();
  const double cur = std::sqrt(n.square().mean());
  return cur > 0.0 ? RArray(n * (rms / cur)) : n;
}

}  // namespace hilo::sim
