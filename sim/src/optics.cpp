#include "hilo/sim/optics.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace hilo::sim {
namespace {

constexpr double kPi = std::numbers::pi;

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

void check_grid(const char* what, Eigen::Index rows, Eigen::Index cols, double pitch_m) {
  require(rows >= 1 && cols >= 1, std::string(what) + ": rows and cols must be >= 1");
  require(pitch_m > 0.0 && std::isfinite(pitch_m), std::string(what) + ": pitch_m must be finite and > 0");
}

// Fraction of an s × s lattice of points in the sample (r, c) for which inside(x, y) holds.
template <typename Inside>
RArray coverage(Eigen::Index rows, Eigen::Index cols, double pitch_m, int supersample, Inside inside) {
  require(supersample >= 1, "aperture: supersample must be >= 1, got " + std::to_string(supersample));
  RArray a(rows, cols);
  const int s = supersample;
  for (Eigen::Index r = 0; r < rows; ++r) {
    for (Eigen::Index c = 0; c < cols; ++c) {
      const double y0 = double(r - rows / 2) * pitch_m, x0 = double(c - cols / 2) * pitch_m;
      int hits = 0;
      for (int i = 0; i < s; ++i) {
        const double y = y0 + ((i + 0.5) / s - 0.5) * pitch_m;
        for (int j = 0; j < s; ++j) {
          const double x = x0 + ((j + 0.5) / s - 0.5) * pitch_m;
          hits += inside(x, y) ? 1 : 0;
        }
      }
      a(r, c) = double(hits) / double(s * s);
    }
  }
  return a;
}

double radial(int n, int m, double rho) {
  // R_n^m(ρ) = Σ_{s=0}^{(n−m)/2} (−1)^s (n−s)! / (s! ((n+m)/2−s)! ((n−m)/2−s)!) ρ^{n−2s}
  double sum = 0.0;
  for (int s = 0; s <= (n - m) / 2; ++s) {
    const double num = std::tgamma(n - s + 1.0);
    const double den = std::tgamma(s + 1.0) * std::tgamma((n + m) / 2 - s + 1.0) * std::tgamma((n - m) / 2 - s + 1.0);
    sum += ((s % 2) ? -1.0 : 1.0) * num / den * std::pow(rho, n - 2 * s);
  }
  return sum;
}

}  // namespace

RArray grid_x(Eigen::Index rows, Eigen::Index cols, double pitch_m) {
  check_grid("grid_x", rows, cols, pitch_m);
  RArray x(rows, cols);
  for (Eigen::Index c = 0; c < cols; ++c) x.col(c).setConstant(double(c - cols / 2) * pitch_m);
  return x;
}

RArray grid_y(Eigen::Index rows, Eigen::Index cols, double pitch_m) {
  check_grid("grid_y", rows, cols, pitch_m);
  RArray y(rows, cols);
  for (Eigen::Index r = 0; r < rows; ++r) y.row(r).setConstant(double(r - rows / 2) * pitch_m);
  return y;
}

CArray thin_lens(Eigen::Index rows, Eigen::Index cols, double pitch_m, double wavelength_m, double focal_m) {
  check_grid("thin_lens", rows, cols, pitch_m);
  require(wavelength_m > 0.0, "thin_lens: wavelength_m must be > 0");
  require(focal_m != 0.0 && std::isfinite(focal_m), "thin_lens: focal_m must be finite and non-zero");
  const double k = 2 * kPi / wavelength_m;
  CArray t(rows, cols);
  for (Eigen::Index r = 0; r < rows; ++r) {
    const double y = double(r - rows / 2) * pitch_m;
    for (Eigen::Index c = 0; c < cols; ++c) {
      const double x = double(c - cols / 2) * pitch_m;
      t(r, c) = std::polar(1.0, -k * (x * x + y * y) / (2 * focal_m));
    }
  }
  return t;
}

void apply_thin_lens(Field& field, double focal_m) {
  field.u *= thin_lens(field.u.rows(), field.u.cols(), field.pitch_m, field.wavelength_m, focal_m);
}

RArray circular_aperture(Eigen::Index rows, Eigen::Index cols, double pitch_m, double radius_m, int supersample) {
  check_grid("circular_aperture", rows, cols, pitch_m);
  require(radius_m > 0.0, "circular_aperture: radius_m must be > 0, got " + std::to_string(radius_m));
  const double r2 = radius_m * radius_m;
  return coverage(rows, cols, pitch_m, supersample, [r2](double x, double y) { return x * x + y * y <= r2; });
}

RArray rectangular_aperture(Eigen::Index rows, Eigen::Index cols, double pitch_m, double width_m, double height_m,
                            int supersample) {
  check_grid("rectangular_aperture", rows, cols, pitch_m);
  require(width_m > 0.0 && height_m > 0.0, "rectangular_aperture: width_m and height_m must be > 0");
  const double hw = width_m / 2, hh = height_m / 2;
  return coverage(rows, cols, pitch_m, supersample,
                  [hw, hh](double x, double y) { return std::abs(x) <= hw && std::abs(y) <= hh; });
}

std::pair<int, int> noll_to_nm(int j) {
  require(j >= 1, "noll_to_nm: Noll index j must be >= 1, got " + std::to_string(j));
  int n = 0;
  while ((n + 1) * (n + 2) / 2 < j) ++n;
  // Within radial order n, j runs over (n+1) values; m takes the values of the same parity as n in
  // increasing order, each m > 0 twice (cos for even j, sin for odd j).
  const int first = n * (n + 1) / 2 + 1;  // first j of order n
  const int idx = j - first;              // 0 … n
  const int m = (n % 2 == 0) ? 2 * ((idx + 1) / 2) : 2 * (idx / 2) + 1;
  return {n, m};
}

double zernike(int j, double rho, double theta) {
  const auto [n, m] = noll_to_nm(j);
  if (m == 0) return std::sqrt(n + 1.0) * radial(n, 0, rho);
  const double norm = std::sqrt(2.0 * (n + 1.0)) * radial(n, m, rho);
  return (j % 2 == 0) ? norm * std::cos(m * theta) : norm * std::sin(m * theta);
}

RArray zernike_map(int j, Eigen::Index rows, Eigen::Index cols, double pitch_m, double radius_m) {
  check_grid("zernike_map", rows, cols, pitch_m);
  require(radius_m > 0.0, "zernike_map: radius_m must be > 0");
  noll_to_nm(j);  // validates j
  RArray z(rows, cols);
  for (Eigen::Index r = 0; r < rows; ++r) {
    const double y = double(r - rows / 2) * pitch_m;
    for (Eigen::Index c = 0; c < cols; ++c) {
      const double x = double(c - cols / 2) * pitch_m;
      // Same inside test as circular_aperture, so a hard-edged pupil and the map agree on every sample.
      const double r2 = x * x + y * y;
      z(r, c) = r2 <= radius_m * radius_m ? zernike(j, std::sqrt(r2) / radius_m, std::atan2(y, x)) : 0.0;
    }
  }
  return z;
}

// ---------------------------------------------------------------------------------- 4f correlator
FourFCorrelator::FourFCorrelator(Eigen::Index rows, Eigen::Index cols, double pitch_m, double wavelength_m,
                                 double focal_m, Planning planning)
    : rows_(rows), cols_(cols), pitch_m_(pitch_m), wavelength_m_(wavelength_m), focal_m_(focal_m),
      fft_((check_grid("FourFCorrelator", rows, cols, pitch_m), rows), cols, planning) {
  require(wavelength_m > 0.0, "FourFCorrelator: wavelength_m must be > 0");
  require(focal_m > 0.0, "FourFCorrelator: focal_m must be > 0");
}

double FourFCorrelator::fourier_plane_pitch_m() const {
  return wavelength_m_ * focal_m_ / (double(cols_) * pitch_m_);
}

Field FourFCorrelator::apply(const Field& in, const CArray& H) const {
  require(in.u.rows() == rows_ && in.u.cols() == cols_, "FourFCorrelator: input field shape differs from the correlator's");
  require(H.rows() == rows_ && H.cols() == cols_, "FourFCorrelator: filter H shape differs from the correlator's");
  require(std::abs(in.wavelength_m - wavelength_m_) <= 1e-12 * wavelength_m_ &&
              std::abs(in.pitch_m - pitch_m_) <= 1e-12 * pitch_m_,
          "FourFCorrelator: input pitch/wavelength differ from the correlator's");
  // Both lenses as forward transforms of the centred grid: F{F{u}}(x) = N·u(−x); the two 1/(iλf) factors
  // and the Δx²·Δu² measures of the Fourier integrals combine to −1/N.
  CArray w = ifftshift(in.u);
  fft_.forward(w);
  w *= ifftshift(H);
  fft_.forward(w);
  w *= -1.0 / double(rows_ * cols_);
  return Field{fftshift(w), pitch_m_, wavelength_m_};
}

namespace {
template <typename A>
A invert(const A& a) {
  const Eigen::Index R = a.rows(), C = a.cols();
  A out(R, C);
  for (Eigen::Index r = 0; r < R; ++r)
    for (Eigen::Index c = 0; c < C; ++c) out(r, c) = a(((2 * (R / 2) - r) % R + R) % R, ((2 * (C / 2) - c) % C + C) % C);
  return out;
}
}  // namespace

CArray invert_through_axis(const CArray& a) { return invert(a); }
RArray invert_through_axis(const RArray& a) { return invert(a); }

}  // namespace hilo::sim
