#include "hilo/sim/slm_model.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "hilo/io/options_json.hpp"
#include "hilo/sim/config_error.hpp"

namespace hilo::sim {

namespace {
constexpr double kTwoPi = 2.0 * std::numbers::pi;

double wrap_distance(double a, double b) {
  double d = std::fmod(std::abs(a - b), kTwoPi);
  return std::min(d, kTwoPi - d);
}

// Normalised 1-D Gaussian taps of σ samples, truncated at 4σ.
std::vector<double> gaussian_taps(double sigma) {
  const int half = std::max(1, int(std::ceil(4.0 * sigma)));
  std::vector<double> w(2 * half + 1);
  double sum = 0.0;
  for (int i = -half; i <= half; ++i) sum += w[i + half] = std::exp(-0.5 * (i * i) / (sigma * sigma));
  for (double& x : w) x /= sum;
  return w;
}

// Separable convolution with edge replication.
RArray smooth(const RArray& a, const std::vector<double>& w) {
  const int half = int(w.size() / 2);
  const Eigen::Index R = a.rows(), C = a.cols();
  RArray tmp(R, C), out(R, C);
  for (Eigen::Index r = 0; r < R; ++r)
    for (Eigen::Index c = 0; c < C; ++c) {
      double s = 0.0;
      for (int k = -half; k <= half; ++k) s += w[k + half] * a(r, std::clamp<Eigen::Index>(c + k, 0, C - 1));
      tmp(r, c) = s;
    }
  for (Eigen::Index r = 0; r < R; ++r)
    for (Eigen::Index c = 0; c < C; ++c) {
      double s = 0.0;
      for (int k = -half; k <= half; ++k) s += w[k + half] * tmp(std::clamp<Eigen::Index>(r + k, 0, R - 1), c);
      out(r, c) = s;
    }
  return out;
}

// Active fraction of sub-sample j (of s) along one axis for an active interval of width a (pixel = 1).
std::vector<double> coverage_1d(int s, double a) {
  std::vector<double> f(s);
  const double lo = 0.5 * (1.0 - a), hi = 0.5 * (1.0 + a);
  for (int j = 0; j < s; ++j) {
    const double x0 = double(j) / s, x1 = double(j + 1) / s;
    f[j] = std::max(0.0, std::min(x1, hi) - std::max(x0, lo)) * s;
  }
  return f;
}
}  // namespace

std::string SlmOptions::validate(const std::string& path) const {
  using namespace detail;
  if (auto e = io::first_broken({range_rule(path + ".rows", rows, 1, 8192), range_rule(path + ".cols", cols, 1, 8192),
                                 range_rule(path + ".pixel_pitch_um", pixel_pitch_um, 0.1, 1000.0)});
      !e.empty())
    return e;
  if (!(fill_factor > 0.0 && fill_factor <= 1.0)) return path + ".fill_factor must be in (0, 1], got " + fmt(fill_factor);
  if (auto e = range_rule(path + ".bit_depth", bit_depth, 1, 16); !e.empty()) return e;
  if (!lut_rad.empty()) {
    const std::size_t n = std::size_t(1) << std::clamp(bit_depth, 1, 16);
    if (lut_rad.size() != n)
      return path + ".lut_rad must have 2^bit_depth = " + std::to_string(n) + " entries, got " +
             std::to_string(lut_rad.size());
    for (std::size_t i = 0; i < n; ++i)
      if (auto e = finite_rule(path + ".lut_rad[" + std::to_string(i) + "]", lut_rad[i]); !e.empty()) return e;
  }
  return io::first_broken({range_rule(path + ".fringing_sigma_px", fringing_sigma_px, 0.0, 5.0),
                           range_rule(path + ".oversample", oversample, 1, 32)});
}

SlmModel::SlmModel(SlmOptions options) : opt_(std::move(options)) {
  detail::require_valid(opt_.validate());
  const int n = levels_count();
  if (opt_.lut_rad.empty()) {
    lut_.resize(n);
    for (int l = 0; l < n; ++l) lut_[l] = kTwoPi * l / n;
  } else {
    lut_ = opt_.lut_rad;
  }
}

double SlmModel::phase_of_level(int level) const {
  if (level < 0 || level >= levels_count())
    throw std::invalid_argument("SLM level " + std::to_string(level) + " outside [0, " +
                                std::to_string(levels_count() - 1) + "]");
  return lut_[level];
}

void SlmModel::check_shape(Eigen::Index r, Eigen::Index c, const char* what) const {
  if (r != opt_.rows || c != opt_.cols)
    throw std::invalid_argument(std::string(what) + " must be " + std::to_string(opt_.rows) + " x " +
                                std::to_string(opt_.cols) + " (SLM pixels), got " +
                                std::to_string(r) + " x " + std::to_string(c));
}

Levels SlmModel::quantize(const RArray& phase) const {
  check_shape(phase.rows(), phase.cols(), "SLM phase");
  if (!phase.isFinite().all()) throw std::invalid_argument("SLM phase must be finite");
  const int n = levels_count();
  Levels out(phase.rows(), phase.cols());
  const bool linear = opt_.lut_rad.empty();
  for (Eigen::Index i = 0; i < phase.size(); ++i) {
    const double p = phase.data()[i];
    int best = 0;
    if (linear) {
      // Nearest step on the circle; the candidate pair below/above covers ties (lower wins).
      double w = std::fmod(p, kTwoPi);
      if (w < 0) w += kTwoPi;
      const int lo = int(std::floor(w / kTwoPi * n)) % n, hi = (lo + 1) % n;
      best = wrap_distance(w, lut_[hi]) < wrap_distance(w, lut_[lo]) ? hi : lo;
    } else {
      double bd = wrap_distance(p, lut_[0]);
      for (int l = 1; l < n; ++l)
        if (const double d = wrap_distance(p, lut_[l]); d < bd) bd = d, best = l;
    }
    out.data()[i] = std::uint16_t(best);
  }
  return out;
}

RArray SlmModel::level_phase(const Levels& levels) const {
  check_shape(levels.rows(), levels.cols(), "SLM levels");
  RArray out(levels.rows(), levels.cols());
  for (Eigen::Index i = 0; i < levels.size(); ++i) out.data()[i] = phase_of_level(levels.data()[i]);
  return out;
}

RArray SlmModel::realised_phase(const Levels& levels) const {
  const RArray p = level_phase(levels);
  const int s = opt_.oversample;
  RArray up(p.rows() * s, p.cols() * s);
  for (Eigen::Index r = 0; r < up.rows(); ++r)
    for (Eigen::Index c = 0; c < up.cols(); ++c) up(r, c) = p(r / s, c / s);
  if (opt_.fringing_sigma_px <= 0.0) return up;
  return smooth(up, gaussian_taps(opt_.fringing_sigma_px * s));
}

CArray SlmModel::modulation(const Levels& levels) const {
  const RArray phi = realised_phase(levels);
  const int s = opt_.oversample;
  const std::vector<double> f = coverage_1d(s, std::sqrt(opt_.fill_factor));
  CArray out(phi.rows(), phi.cols());
  for (Eigen::Index r = 0; r < phi.rows(); ++r)
    for (Eigen::Index c = 0; c < phi.cols(); ++c)
      out(r, c) = std::polar(f[r % s] * f[c % s], phi(r, c));
  return out;
}

}  // namespace hilo::sim
