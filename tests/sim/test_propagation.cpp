#include "hilo/sim/propagation.hpp"

#include <cmath>
#include <numbers>
#include <random>

#include <gtest/gtest.h>

#include "hilo/sim/optics.hpp"

namespace hilo::sim {
namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kLambda = 633e-9;

double energy(const CArray& u) { return u.abs2().sum(); }
double rel_err(const CArray& a, const CArray& b) { return (a - b).matrix().norm() / b.matrix().norm(); }

Field gaussian(Eigen::Index n, double pitch, double w0) {
  const RArray x = grid_x(n, n, pitch), y = grid_y(n, n, pitch);
  return Field{(-(x.square() + y.square()) / (w0 * w0)).exp().cast<cplx>(), pitch, kLambda};
}

// Second-moment (1/e² intensity) radius along x: w = 2·sqrt(<x²>) for a Gaussian beam.
double second_moment_width(const Field& f) {
  const RArray I = f.u.abs2();
  const RArray x = grid_x(f.u.rows(), f.u.cols(), f.pitch_m);
  const double xc = (I * x).sum() / I.sum();
  return 2.0 * std::sqrt((I * (x - xc).square()).sum() / I.sum());
}

// A random field whose spectrum lies within |ν| < fraction · 1/(2Δx) on the unpadded grid.
Field random_band_limited(Eigen::Index rows, Eigen::Index cols, double pitch, double fraction, std::mt19937_64& rng) {
  std::normal_distribution<double> n(0.0, 1.0);
  const Eigen::ArrayXd fx = fft_frequencies(cols, pitch), fy = fft_frequencies(rows, pitch);
  const double limit = fraction / (2 * pitch);
  CArray spec(rows, cols);
  for (Eigen::Index r = 0; r < rows; ++r)
    for (Eigen::Index c = 0; c < cols; ++c)
      spec(r, c) = (std::abs(fx[c]) < limit && std::abs(fy[r]) < limit) ? cplx(n(rng), n(rng)) : cplx(0, 0);
  return Field{ifft2(spec), pitch, kLambda};
}

TEST(AngularSpectrum, GaussianBeamWidthFollowsAnalyticWz) {
  const double pitch = 4e-6, w0 = 40e-6;
  const double zr = kPi * w0 * w0 / kLambda;
  const Field in = gaussian(128, pitch, w0);
  EXPECT_NEAR(second_moment_width(in) / w0, 1.0, 1e-6);
  for (double z : {0.5 * zr, zr, 2 * zr, -1.5 * zr}) {
    const Field out = propagate_angular_spectrum(in, z);
    const double expected = w0 * std::sqrt(1 + (z / zr) * (z / zr));
    EXPECT_NEAR(second_moment_width(out) / expected, 1.0, 1e-3) << "z = " << z;  // required: 1 %
  }
}

TEST(AngularSpectrum, ConservesEnergyWithinBand) {
  std::mt19937_64 rng(11);
  PropagationOptions circular;
  circular.pad = false;
  for (auto [r, c] : {std::pair{64, 64}, {96, 80}, {128, 128}}) {
    const double pitch = 2e-6;
    // Band limit at this z on an unpadded grid: 1/(λ√((2Δνz)²+1)); keep the field inside it.
    const Field in = random_band_limited(r, c, pitch, 0.5, rng);
    const double z = 200e-6;
    const Field out = propagate_angular_spectrum(in, z, circular);
    EXPECT_NEAR(energy(out.u) / energy(in.u), 1.0, 1e-6) << r << "x" << c;
  }
  // Padded: a beam well inside the window keeps its energy too.
  const Field beam = gaussian(128, 4e-6, 40e-6);
  const Field far = propagate_angular_spectrum(beam, 0.016);
  EXPECT_NEAR(energy(far.u) / energy(beam.u), 1.0, 1e-6);
}

TEST(AngularSpectrum, ForwardThenBackwardRestoresBandLimitedField) {
  std::mt19937_64 rng(12);
  PropagationOptions circular;
  circular.pad = false;
  for (auto [r, c] : {std::pair{64, 64}, {72, 96}}) {
    const Field in = random_band_limited(r, c, 2e-6, 0.5, rng);
    const AngularSpectrum fwd(r, c, 2e-6, kLambda, 300e-6, circular), back(r, c, 2e-6, kLambda, -300e-6, circular);
    const Field there = fwd.propagate(in);
    EXPECT_GT(rel_err(there.u, in.u), 0.1);  // it really moved
    EXPECT_LT(rel_err(back.propagate(there).u, in.u), 1e-5) << r << "x" << c;
  }
  // Padded propagation of a compact beam, there and back.
  const Field beam = gaussian(128, 4e-6, 40e-6);
  const Field back = propagate_angular_spectrum(propagate_angular_spectrum(beam, 0.01), -0.01);
  EXPECT_LT(rel_err(back.u, beam.u), 1e-5);
}

TEST(AngularSpectrum, BandLimitFollowsMatsushimaShimobaba) {
  const Eigen::Index n = 64;
  const double pitch = 2e-6, z = 0.05;
  const AngularSpectrum asm_(n, n, pitch, kLambda, z);  // padded: working grid 2n
  const CArray& H = asm_.transfer_function();
  ASSERT_EQ(H.rows(), 2 * n);
  const double dnu = 1.0 / (2 * n * pitch);
  const double limit = 1.0 / (kLambda * std::sqrt(std::pow(2 * dnu * z, 2) + 1));
  const Eigen::ArrayXd f = fft_frequencies(2 * n, pitch);
  for (Eigen::Index c = 0; c < 2 * n; ++c) {
    const bool inside = std::abs(f[c]) < limit;
    EXPECT_EQ(std::abs(H(0, c)) > 0.5, inside) << "column " << c << " at ν = " << f[c];
  }
}

TEST(AngularSpectrum, RejectsMismatchedFieldAndBadGeometry) {
  const AngularSpectrum p(32, 32, 2e-6, kLambda, 1e-3);
  Field f{CArray::Ones(32, 16), 2e-6, kLambda};
  EXPECT_THROW(p.propagate(f), std::invalid_argument);
  f.u = CArray::Ones(32, 32);
  f.wavelength_m = 532e-9;
  EXPECT_THROW(p.propagate(f), std::invalid_argument);
  EXPECT_THROW(AngularSpectrum(32, 32, 0.0, kLambda, 1e-3), std::invalid_argument);
  EXPECT_THROW(AngularSpectrum(32, 32, 2e-6, -1.0, 1e-3), std::invalid_argument);
}

TEST(FresnelTransfer, AgreesWithAngularSpectrumInParaxialRegime) {
  const Field beam = gaussian(128, 4e-6, 40e-6);
  for (double z : {2e-3, 8e-3, -5e-3}) {
    const Field a = propagate_angular_spectrum(beam, z);
    const Field f = propagate_fresnel(beam, z);
    EXPECT_LT(rel_err(f.u, a.u), 1e-4) << "z = " << z;
  }
  // Far outside the paraxial regime (features near λ) they must disagree: the comparison has teeth.
  const Field fine = gaussian(64, 0.25e-6, 0.5e-6);
  EXPECT_GT(rel_err(propagate_fresnel(fine, 2e-6).u, propagate_angular_spectrum(fine, 2e-6).u), 1e-2);
}

TEST(Fraunhofer, MatchesAnalyticFarFieldOfRectangle) {
  const Eigen::Index n = 512;
  const double pitch = 10e-6, z = 1.0;
  const int na = 31, nb = 15;  // samples across the rectangle in x and y
  const double a = na * pitch, b = nb * pitch;
  const Field in{rectangular_aperture(n, n, pitch, a, b).cast<cplx>(), pitch, kLambda};
  ASSERT_DOUBLE_EQ(in.u.real().sum(), double(na * nb));
  const Field out = propagate_fraunhofer(in, z);
  const double dx2 = kLambda * z / (n * pitch);
  EXPECT_DOUBLE_EQ(out.pitch_m, dx2);
  const double k = 2 * kPi / kLambda;
  auto sinc = [](double v) { return v == 0.0 ? 1.0 : std::sin(kPi * v) / (kPi * v); };
  const double peak = a * b / (kLambda * z);
  double worst = 0.0;
  for (Eigen::Index r = n / 2 - 40; r <= n / 2 + 40; ++r) {
    for (Eigen::Index c = n / 2 - 40; c <= n / 2 + 40; ++c) {
      const double x = double(c - n / 2) * dx2, y = double(r - n / 2) * dx2;
      const cplx analytic = std::polar(1.0, k * z + k * (x * x + y * y) / (2 * z)) / cplx(0.0, kLambda * z) * a * b *
                            sinc(a * x / (kLambda * z)) * sinc(b * y / (kLambda * z));
      worst = std::max(worst, std::abs(out.u(r, c) - analytic) / peak);
    }
  }
  // The sampled rectangle's transform is a Dirichlet kernel; it departs from sinc by ~(πk/N)²/6.
  EXPECT_LT(worst, 3e-3);
  // Energy: Σ|U|²·pitch² is conserved exactly.
  EXPECT_NEAR(energy(out.u) * dx2 * dx2 / (energy(in.u) * pitch * pitch), 1.0, 1e-12);
}

TEST(Fraunhofer, RejectsNonSquareGridAndNonPositiveDistance) {
  const Field f{CArray::Ones(8, 6), 1e-6, kLambda};
  EXPECT_THROW(propagate_fraunhofer(f, 1.0), std::invalid_argument);
  const Field g{CArray::Ones(8, 8), 1e-6, kLambda};
  EXPECT_THROW(propagate_fraunhofer(g, 0.0), std::invalid_argument);
}

}  // namespace
}  // namespace hilo::sim
