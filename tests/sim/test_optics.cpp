#include "hilo/sim/optics.hpp"

#include <cmath>
#include <numbers>
#include <random>

#include <gtest/gtest.h>

#include "hilo/sim/propagation.hpp"

namespace hilo::sim {
namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kLambda = 633e-9;

double rel_err(const CArray& a, const CArray& b) { return (a - b).matrix().norm() / b.matrix().norm(); }

// Position (in samples, sub-sample by a parabola through the minimum) of the first minimum of a radial
// intensity profile starting at the centre.
double first_minimum(const RArray& I, Eigen::Index r0, Eigen::Index c0) {
  for (Eigen::Index d = 1; c0 + d + 1 < I.cols(); ++d) {
    const double a = I(r0, c0 + d - 1), b = I(r0, c0 + d), c = I(r0, c0 + d + 1);
    if (b <= a && b <= c) {
      const double denom = a - 2 * b + c;
      return double(d) + (denom > 0 ? 0.5 * (a - c) / denom : 0.0);
    }
  }
  return -1.0;
}

TEST(ThinLens, PhaseIsQuadraticWithFocalLength) {
  const double pitch = 5e-6, f = 0.1;
  const CArray t = thin_lens(33, 40, pitch, kLambda, f);
  const double x = (37 - 20) * pitch, y = (3 - 16) * pitch;
  const cplx expected = std::polar(1.0, -2 * kPi / kLambda * (x * x + y * y) / (2 * f));
  EXPECT_NEAR(std::abs(t(3, 37) - expected), 0.0, 1e-12);
  EXPECT_EQ(t(16, 20), cplx(1.0, 0.0));
  EXPECT_THROW(thin_lens(8, 8, pitch, kLambda, 0.0), std::invalid_argument);
}

TEST(ThinLens, FocusesGaussianBeamToAnalyticWaist) {
  // Collimated Gaussian (w0) through a lens f, propagated by f (angular spectrum): waist λf/(π w0).
  const Eigen::Index n = 256;
  const double pitch = 4e-6, w0 = 200e-6, f = 0.05;
  const RArray x = grid_x(n, n, pitch), y = grid_y(n, n, pitch);
  Field beam{(-(x.square() + y.square()) / (w0 * w0)).exp().cast<cplx>(), pitch, kLambda};
  apply_thin_lens(beam, f);
  const Field focus = propagate_angular_spectrum(beam, f);
  const RArray I = focus.u.abs2();
  const double w = 2.0 * std::sqrt((I * x.square()).sum() / I.sum());
  // Gaussian-beam (q-parameter) prediction at distance f behind the lens: 1/q = 1/q0 − 1/f, q → q + f,
  // Im(1/q) = −λ/(π w²). It tends to λf/(π w0) when f ≪ z_R (here f/z_R ≈ 0.25).
  const cplx q0(0.0, kPi * w0 * w0 / kLambda);
  const cplx q = 1.0 / (1.0 / q0 - 1.0 / f) + f;
  const double expected = std::sqrt(-kLambda / (kPi * std::imag(1.0 / q)));
  EXPECT_NEAR(w / expected, 1.0, 0.01);
  EXPECT_LT(w, 0.5 * w0);
}

TEST(Apertures, AntiAliasedAreasConvergeToAnalytic) {
  const double pitch = 1e-6;
  const RArray hard = circular_aperture(64, 64, pitch, 20.3e-6, 1);
  const RArray soft = circular_aperture(64, 64, pitch, 20.3e-6, 8);
  const double area = kPi * 20.3 * 20.3;
  EXPECT_NEAR(soft.sum() / area, 1.0, 2e-3);
  EXPECT_GT(std::abs(hard.sum() - area), std::abs(soft.sum() - area));
  EXPECT_TRUE((soft >= 0.0).all() && (soft <= 1.0).all());
  EXPECT_GT(((soft > 0.0) && (soft < 1.0)).count(), 0);  // the edge really is graded
  const RArray rect = rectangular_aperture(40, 50, pitch, 21e-6, 10e-6, 4);
  EXPECT_NEAR(rect.sum(), 21.0 * 10.0, 1e-9);
  EXPECT_THROW(circular_aperture(8, 8, pitch, -1.0), std::invalid_argument);
  EXPECT_THROW(circular_aperture(8, 8, pitch, 1e-6, 0), std::invalid_argument);
}

TEST(Airy, FirstZeroAtOnePointTwoTwoLambdaFOverD) {
  // Circular pupil at the front focal plane of a lens; the back focal plane is the Fraunhofer pattern
  // without the quadratic phase.
  const Eigen::Index n = 512;
  const double pitch = 10e-6, f = 0.2, radius = 40 * pitch;
  const Field pupil{circular_aperture(n, n, pitch, radius, 8).cast<cplx>(), pitch, kLambda};
  const Field focal = propagate_fraunhofer(pupil, f, false);
  const double expected = 1.22 * kLambda * f / (2 * radius) / focal.pitch_m;  // in samples
  const double measured = first_minimum(focal.u.abs2(), n / 2, n / 2);
  EXPECT_NEAR(measured, expected, 1.0) << "expected " << expected << " samples";
}

TEST(Zernike, NollIndicesMapToRadialAndAzimuthalOrders) {
  const std::pair<int, int> table[] = {{0, 0}, {1, 1}, {1, 1}, {2, 0}, {2, 2}, {2, 2}, {3, 1}, {3, 1},
                                       {3, 3}, {3, 3}, {4, 0}, {4, 2}, {4, 2}, {4, 4}, {4, 4}, {5, 1}};
  for (int j = 1; j <= 16; ++j) EXPECT_EQ(noll_to_nm(j), table[j - 1]) << "j = " << j;
  EXPECT_THROW(noll_to_nm(0), std::invalid_argument);
  // Closed forms (Noll 1976).
  const double rho = 0.7, th = 0.4;
  EXPECT_NEAR(zernike(2, rho, th), 2 * rho * std::cos(th), 1e-12);
  EXPECT_NEAR(zernike(3, rho, th), 2 * rho * std::sin(th), 1e-12);
  EXPECT_NEAR(zernike(4, rho, th), std::sqrt(3.0) * (2 * rho * rho - 1), 1e-12);
  EXPECT_NEAR(zernike(5, rho, th), std::sqrt(6.0) * rho * rho * std::sin(2 * th), 1e-12);
  EXPECT_NEAR(zernike(6, rho, th), std::sqrt(6.0) * rho * rho * std::cos(2 * th), 1e-12);
  EXPECT_NEAR(zernike(8, rho, th), std::sqrt(8.0) * (3 * std::pow(rho, 3) - 2 * rho) * std::cos(th), 1e-12);
  EXPECT_NEAR(zernike(11, rho, th), std::sqrt(5.0) * (6 * std::pow(rho, 4) - 6 * rho * rho + 1), 1e-12);
}

TEST(Zernike, OrthonormalOnUnitDisk) {
  // (1/π) ∫∫ Z_i Z_j ρ dρ dθ by Gauss–Legendre in ρ (exact for these polynomials) and a uniform θ rule.
  const double gx[] = {-0.9602898564975363, -0.7966664774136267, -0.5255324099163290, -0.1834346424956498,
                       0.1834346424956498,  0.5255324099163290,  0.7966664774136267,  0.9602898564975363};
  const double gw[] = {0.1012285362903763, 0.2223810344533745, 0.3137066458778873, 0.3626837833783620,
                       0.3626837833783620, 0.3137066458778873, 0.2223810344533745, 0.1012285362903763};
  const int J = 21, T = 64;
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(J, J);
  for (int q = 0; q < 8; ++q) {
    const double rho = 0.5 * (gx[q] + 1), w = 0.5 * gw[q];
    for (int t = 0; t < T; ++t) {
      const double th = 2 * kPi * t / T;
      Eigen::VectorXd z(J);
      for (int j = 0; j < J; ++j) z[j] = zernike(j + 1, rho, th);
      G += (w * rho * (2 * kPi / T) / kPi) * z * z.transpose();
    }
  }
  EXPECT_LT((G - Eigen::MatrixXd::Identity(J, J)).cwiseAbs().maxCoeff(), 1e-10);
}

TEST(Zernike, SampledMapIsZeroOutsidePupilAndNearlyOrthonormalInside) {
  const Eigen::Index n = 129;
  const double pitch = 1e-6, radius = 60e-6;
  const RArray defocus = zernike_map(4, n, n, pitch, radius), astig = zernike_map(6, n, n, pitch, radius);
  const RArray inside = circular_aperture(n, n, pitch, radius);
  EXPECT_EQ((defocus * (1.0 - inside)).abs().maxCoeff(), 0.0);
  const double m = inside.sum();
  EXPECT_NEAR((defocus * defocus).sum() / m, 1.0, 0.02);
  EXPECT_NEAR((defocus * astig).sum() / m, 0.0, 0.02);
  EXPECT_NEAR(defocus(n / 2, n / 2), -std::sqrt(3.0), 1e-12);
}

TEST(FourFCorrelator, FlatFilterImagesInputInverted) {
  std::mt19937_64 rng(21);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (auto [r, c] : {std::pair{64, 64}, {33, 48}, {31, 31}}) {
    CArray u(r, c);
    for (Eigen::Index i = 0; i < u.size(); ++i) u.data()[i] = {nd(rng), nd(rng)};
    const FourFCorrelator sys(r, c, 8e-6, kLambda, 0.1);
    const Field out = sys.apply(Field{u, 8e-6, kLambda}, CArray::Ones(r, c));
    EXPECT_LT(rel_err(out.u, CArray(-invert_through_axis(u))), 1e-12) << r << "x" << c;
    EXPECT_GT(rel_err(out.u, CArray(-u)), 0.5);  // inversion is not the identity for a random input
  }
}

TEST(FourFCorrelator, FourierPlaneFilterSelectsSpatialFrequency) {
  // u = e^{i2πν1x} + e^{i2πν2x}: a Fourier-plane pinhole at u = λ f ν1 passes only the first wave.
  const Eigen::Index n = 64;
  const double pitch = 8e-6, f = 0.1;
  const int m1 = 5, m2 = -9;
  const RArray x = grid_x(n, n, pitch);
  const double nu1 = m1 / (n * pitch), nu2 = m2 / (n * pitch);
  CArray u(n, n);
  for (Eigen::Index i = 0; i < u.size(); ++i)
    u.data()[i] = std::polar(1.0, 2 * kPi * nu1 * x.data()[i]) + std::polar(1.0, 2 * kPi * nu2 * x.data()[i]);
  const FourFCorrelator sys(n, n, pitch, kLambda, f);
  EXPECT_NEAR(sys.fourier_plane_pitch_m(), kLambda * f / (n * pitch), 1e-18);
  CArray H = CArray::Zero(n, n);
  H(n / 2, n / 2 + m1) = 1.0;  // the sample at u = m1·Δu = λ f ν1
  const Field out = sys.apply(Field{u, pitch, kLambda}, H);
  CArray expected(n, n);
  for (Eigen::Index i = 0; i < u.size(); ++i) expected.data()[i] = -std::polar(1.0, -2 * kPi * nu1 * x.data()[i]);
  EXPECT_LT(rel_err(out.u, expected), 1e-12);
}

TEST(FourFCorrelator, RejectsMismatchedFilter) {
  const FourFCorrelator sys(16, 16, 8e-6, kLambda, 0.1);
  EXPECT_THROW(sys.apply(Field{CArray::Ones(16, 16), 8e-6, kLambda}, CArray::Ones(16, 8)), std::invalid_argument);
  EXPECT_THROW(FourFCorrelator(16, 16, 8e-6, kLambda, -0.1), std::invalid_argument);
}

}  // namespace
}  // namespace hilo::sim
