#include "hilo/sim/imaging.hpp"

#include <cmath>
#include <numbers>
#include <random>

#include <gtest/gtest.h>

#include "hilo/sim/optics.hpp"

namespace hilo::sim {
namespace {

constexpr double kPi = std::numbers::pi;

RArray random_real(Eigen::Index rows, Eigen::Index cols, std::mt19937_64& rng, double lo = 0.0, double hi = 1.0) {
  std::uniform_real_distribution<double> u(lo, hi);
  RArray a(rows, cols);
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = u(rng);
  return a;
}

// The contract of incoherent_image written out as a direct sum.
RArray direct_same_convolution(const RArray& obj, const RArray& psf) {
  RArray out = RArray::Zero(obj.rows(), obj.cols());
  for (Eigen::Index r = 0; r < obj.rows(); ++r)
    for (Eigen::Index c = 0; c < obj.cols(); ++c)
      for (Eigen::Index i = 0; i < psf.rows(); ++i)
        for (Eigen::Index j = 0; j < psf.cols(); ++j) {
          const Eigen::Index rr = r - i + psf.rows() / 2, cc = c - j + psf.cols() / 2;
          if (rr >= 0 && rr < obj.rows() && cc >= 0 && cc < obj.cols()) out(r, c) += obj(rr, cc) * psf(i, j);
        }
  return out;
}

double rel_err(const RArray& a, const RArray& b) { return (a - b).matrix().norm() / b.matrix().norm(); }

// ∂loss/∂x by central differences of step h, element by element.
template <typename Loss>
RArray central_differences(const RArray& x, const Loss& loss, double h = 1e-5) {
  RArray fd(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    RArray plus = x, minus = x;
    plus.data()[i] += h;
    minus.data()[i] -= h;
    fd.data()[i] = (loss(plus) - loss(minus)) / (2 * h);
  }
  return fd;
}

TEST(IncoherentImage, DeltaPsfIsIdentity) {
  std::mt19937_64 rng(31);
  for (auto [or_, oc, pr, pc] : {std::array<int, 4>{17, 23, 5, 5}, {32, 32, 6, 4}, {20, 20, 20, 20}, {9, 12, 1, 1}}) {
    const RArray obj = random_real(or_, oc, rng);
    RArray psf = RArray::Zero(pr, pc);
    psf(pr / 2, pc / 2) = 1.0;
    EXPECT_LT((incoherent_image(obj, psf) - obj).abs().maxCoeff(), 1e-12) << or_ << "x" << oc << " psf " << pr << "x" << pc;
  }
}

TEST(IncoherentImage, MatchesDirectLinearConvolution) {
  std::mt19937_64 rng(32);
  for (auto [or_, oc, pr, pc] : {std::array<int, 4>{16, 16, 7, 7}, {13, 21, 4, 9}, {10, 10, 25, 18}}) {
    const RArray obj = random_real(or_, oc, rng), psf = random_real(pr, pc, rng);
    EXPECT_LT(rel_err(incoherent_image(obj, psf), direct_same_convolution(obj, psf)), 1e-12)
        << or_ << "x" << oc << " psf " << pr << "x" << pc;
  }
  // An off-centre delta shifts the image: psf(centre + (1, 2)) moves content down 1 and right 2.
  const RArray obj = random_real(12, 12, rng);
  RArray psf = RArray::Zero(7, 7);
  psf(3 + 1, 3 + 2) = 1.0;
  const RArray img = incoherent_image(obj, psf);
  EXPECT_NEAR((img.block(1, 2, 11, 10) - obj.block(0, 0, 11, 10)).abs().maxCoeff(), 0.0, 1e-12);
  EXPECT_NEAR(img.row(0).abs().maxCoeff(), 0.0, 1e-12);
}

TEST(IncoherentImager, CachedImagerAdjointAndPsfGradientSatisfyInnerProductIdentities) {
  std::mt19937_64 rng(33);
  for (auto [or_, oc, pr, pc] : {std::array<int, 4>{16, 20, 5, 7}, {11, 11, 11, 11}, {8, 14, 6, 3}}) {
    const RArray psf = random_real(pr, pc, rng);
    const IncoherentImager imager(or_, oc, psf);
    const RArray x = random_real(or_, oc, rng, -1, 1), g = random_real(or_, oc, rng, -1, 1);
    const RArray y = imager.image(x);
    EXPECT_LT(rel_err(y, direct_same_convolution(x, psf)), 1e-12);
    // <A x, g> = <x, Aᵀ g>
    EXPECT_NEAR((y * g).sum(), (x * imager.adjoint(g)).sum(), 1e-10 * (y.abs() * g.abs()).sum());
    // image is linear in the psf: <image(x, δpsf), g> = <δpsf, ∂L/∂psf>
    const RArray dpsf = random_real(pr, pc, rng, -1, 1);
    const RArray grad = incoherent_image_psf_vjp(x, pr, pc, g);
    ASSERT_EQ(grad.rows(), pr);
    EXPECT_NEAR((direct_same_convolution(x, dpsf) * g).sum(), (dpsf * grad).sum(), 1e-10 * (grad.abs()).sum());
  }
  EXPECT_THROW(IncoherentImager(8, 8, RArray::Ones(3, 3)).image(RArray::Ones(8, 9)), std::invalid_argument);
}

TEST(PupilPsf, HasUnitSumAndTiltShiftsIt) {
  const Eigen::Index n = 16;
  const int pad = 2;
  std::mt19937_64 rng(34);
  const RArray amp = circular_aperture(n, n, 1.0, 7.5, 4);
  const RArray flat = RArray::Zero(n, n);
  const RArray psf0 = psf_from_phase(flat, amp, pad);
  ASSERT_EQ(psf0.rows(), pad * n);
  EXPECT_NEAR(psf0.sum(), 1.0, 1e-12);
  Eigen::Index mr, mc;
  psf0.maxCoeff(&mr, &mc);
  EXPECT_EQ(mr, pad * n / 2);
  EXPECT_EQ(mc, pad * n / 2);
  // φ = 2π s c / (pad·n) is a tilt that moves the PSF by exactly s samples along x.
  RArray tilt(n, n);
  for (Eigen::Index r = 0; r < n; ++r)
    for (Eigen::Index c = 0; c < n; ++c) tilt(r, c) = 2 * kPi * 3.0 * double(c) / double(pad * n);
  const RArray shifted = psf_from_phase(tilt, amp, pad);
  EXPECT_LT((shifted.block(0, 3, pad * n, pad * n - 3) - psf0.block(0, 0, pad * n, pad * n - 3)).abs().maxCoeff(), 1e-12);
  EXPECT_THROW(psf_from_phase(flat, RArray::Zero(n, n), pad), std::invalid_argument);
  EXPECT_THROW(psf_from_phase(flat, amp, 0), std::invalid_argument);
}

TEST(PupilPsf, AiryFirstZeroAtOnePointTwoTwoLambdaFOverD) {
  const Eigen::Index n = 128;
  const int pad = 4;
  const double pitch = 10e-6, lambda = 532e-9, f = 0.1, radius = 30 * pitch;
  const RArray psf = psf_from_phase(RArray::Zero(n, n), circular_aperture(n, n, pitch, radius, 8), pad);
  const double delta = psf_sample_pitch(lambda, f, pad * n, pitch);
  const double expected = 1.22 * lambda * f / (2 * radius) / delta;
  const Eigen::Index c0 = pad * n / 2;
  Eigen::Index first = -1;
  for (Eigen::Index d = 1; d < 40; ++d)
    if (psf(c0, c0 + d) <= psf(c0, c0 + d - 1) && psf(c0, c0 + d) <= psf(c0, c0 + d + 1)) {
      first = d;
      break;
    }
  EXPECT_NEAR(double(first), expected, 1.0);
}

TEST(PupilPsf, VjpMatchesFiniteDifferences) {
  std::mt19937_64 rng(35);
  for (auto [r, c, pad] : {std::array<int, 3>{8, 8, 2}, {6, 10, 3}, {7, 5, 1}}) {
    const RArray phase = random_real(r, c, rng, -kPi, kPi);
    RArray amp = random_real(r, c, rng, 0.2, 1.0);
    amp(0, 0) = 0.0;  // an opaque sample has zero gradient
    const PupilPsf model(r, c, pad);
    const RArray target = random_real(pad * r, pad * c, rng, 0.0, 2.0 / (pad * pad * r * c));
    // A nonlinear loss of the normalised PSF: L = Σ (PSF − target)² · (1 + target).
    auto loss = [&](const RArray& ph) {
      const RArray p = model.psf(ph, amp);
      return ((p - target).square() * (1.0 + target)).sum();
    };
    const RArray p = model.psf(phase, amp);
    const RArray dL_dpsf = 2.0 * (p - target) * (1.0 + target);
    const RArray grad = model.vjp(phase, amp, dL_dpsf);
    EXPECT_EQ(grad(0, 0), 0.0);
    EXPECT_LT(rel_err(grad, central_differences(phase, loss)), 1e-4) << r << "x" << c << " pad " << pad;
    // The free function agrees with the cached model.
    EXPECT_LT((psf_from_phase_vjp(phase, amp, dL_dpsf, pad) - grad).abs().maxCoeff(), 1e-15);
  }
}

TEST(PupilPsf, AmplitudeSpreadFunctionSquaresToThePsfAndItsVjpMatchesFiniteDifferences) {
  std::mt19937_64 rng(36);
  for (auto [r, c, pad] : {std::array<int, 3>{8, 8, 2}, {6, 10, 3}, {7, 5, 1}}) {
    const RArray phase = random_real(r, c, rng, -kPi, kPi);
    RArray amp = random_real(r, c, rng, 0.2, 1.0);
    amp(0, 0) = 0.0;
    const PupilPsf model(r, c, pad);
    const CArray h = model.asf(phase, amp);
    EXPECT_LT((h.abs2() - model.psf(phase, amp)).abs().maxCoeff(), 1e-15);
    EXPECT_NEAR(h.abs2().sum(), 1.0, 1e-12);
    // A loss that needs the phase of h, not only |h|: L = Σ w_re·Re(h)³ + w_im·Im(h)·Re(h).
    const RArray wr = random_real(pad * r, pad * c, rng, -1.0, 1.0), wi = random_real(pad * r, pad * c, rng, -1.0, 1.0);
    auto loss = [&](const RArray& ph) {
      const CArray a = model.asf(ph, amp);
      return (wr * a.real().cube() + wi * a.imag() * a.real()).sum();
    };
    const RArray re = h.real(), im = h.imag();
    CArray g(h.rows(), h.cols());
    g.real() = 3.0 * wr * re.square() + wi * im;
    g.imag() = wi * re;
    const RArray grad = model.asf_vjp(phase, amp, g);
    EXPECT_EQ(grad(0, 0), 0.0);
    EXPECT_LT(rel_err(grad, central_differences(phase, loss)), 1e-5) << r << "x" << c << " pad " << pad;
  }
}

TEST(PupilPsf, ConcentratePhasePutsTheLightOnTheWindowAndNeverLosesIt) {
  std::mt19937_64 rng(37);
  const int n = 32, pad = 2;
  const RArray amp = circular_aperture(n, n, 1.0, 16.0, 4);
  RArray window = RArray::Zero(pad * n, pad * n);
  window.block(10, 12, 5, 5) = 1.0;
  window.block(40, 30, 5, 5) = 1.0;
  window.block(20, 45, 5, 5) = 1.0;
  auto on_window = [&](const RArray& phase) { return (psf_from_phase(phase, amp, pad) * window).sum(); };
  RArray phase = random_real(n, n, rng, -kPi, kPi);
  double last = on_window(phase);
  const double start = last;
  for (int step = 0; step < 10; ++step) {
    phase = concentrate_phase(phase, amp, pad, window, 5);
    const double now = on_window(phase);
    EXPECT_GE(now, last - 1e-12) << "step " << step;
    last = now;
  }
  EXPECT_LT(start, 0.05);  // 75 of 4096 samples: a random phase puts about 2 % there
  EXPECT_GT(last, 0.6);
  EXPECT_THROW(concentrate_phase(phase, amp, pad, RArray::Zero(n, n), 1), std::invalid_argument);
}

TEST(KernelTiling, ComposedPsfProducesEachFeatureMapSideBySide) {
  std::mt19937_64 rng(36);
  KernelTiling t;
  t.count = 5;
  t.kernel_size = 5;
  t.tile_columns = 3;
  t.gap = 2;
  t.object_rows = 12;
  t.object_cols = 10;
  ASSERT_EQ(t.validate(), "");
  std::vector<RArray> kernels;
  for (int j = 0; j < t.count; ++j) kernels.push_back(random_real(5, 5, rng));
  const RArray obj = random_real(12, 10, rng);
  const RArray psf = t.compose(kernels);
  ASSERT_EQ(psf.rows(), t.canvas_rows());
  const std::vector<RArray> maps = t.crop(incoherent_image(t.embed(obj), psf));
  ASSERT_EQ(maps.size(), 5u);
  for (int j = 0; j < t.count; ++j)
    EXPECT_LT(rel_err(maps[j], direct_same_convolution(obj, kernels[j])), 1e-12) << "kernel " << j;
  // Adjoint pairs: <compose(k), g> = Σ <k_j, decompose(g)_j>, <crop(x), m> = <x, uncrop(m)>.
  const RArray g = random_real(t.canvas_rows(), t.canvas_cols(), rng, -1, 1);
  const auto parts = t.decompose(g);
  double rhs = 0.0;
  for (int j = 0; j < t.count; ++j) rhs += (kernels[j] * parts[j]).sum();
  EXPECT_NEAR((psf * g).sum(), rhs, 1e-12);
  const auto cropped = t.crop(g);
  double lhs2 = 0.0;
  for (int j = 0; j < t.count; ++j) lhs2 += (cropped[j] * maps[j]).sum();
  EXPECT_NEAR(lhs2, (g * t.uncrop(maps)).sum(), 1e-12);
}

TEST(KernelTiling, ValidateNamesTheViolatedRule) {
  KernelTiling t;
  t.kernel_size = 4;
  {
    const std::string e = t.validate();
    EXPECT_NE(e.find("tiling.kernel_size"), std::string::npos);
  }
  t = KernelTiling{};
  t.count = 0;
  EXPECT_NE(t.validate(), "");
  t = KernelTiling{};
  std::vector<RArray> negative(std::size_t(t.count), RArray::Zero(7, 7));
  negative[2](1, 1) = -0.1;
  EXPECT_THROW(t.compose(negative), std::invalid_argument);
}

TEST(PolychromaticPsf, SingleWavelengthOnItsOwnGridEqualsMonochromaticPsf) {
  const Eigen::Index n = 32;
  std::mt19937_64 rng(37);
  const RArray phase = random_real(n, n, rng, -1, 1), amp = circular_aperture(n, n, 1.0, 15.0);
  PolychromaticOptions o;
  o.design_wavelength_m = 532e-9;
  o.focal_m = 0.05;
  o.pupil_pitch_m = 8e-6;
  o.pad = 2;
  o.camera_pitch_m = psf_sample_pitch(532e-9, o.focal_m, o.pad * n, o.pupil_pitch_m);
  o.out_rows = o.out_cols = o.pad * n;
  const RArray poly = polychromatic_psf(phase, amp, {{532e-9, 2.0}}, o);
  EXPECT_LT((poly - psf_from_phase(phase, amp, o.pad)).abs().maxCoeff(), 1e-14);
}

TEST(PolychromaticPsf, AiryRadiusScalesWithEachWavelength) {
  const Eigen::Index n = 64;
  const double radius = 20.0;  // samples
  const RArray amp = circular_aperture(n, n, 1.0, radius, 8);
  PolychromaticOptions o;
  o.pupil_pitch_m = 8e-6;
  o.focal_m = 0.02;
  o.pad = 8;              // PSF pitch 2.2 µm (450 nm) and 3.2 µm (650 nm): finer than the camera's
  o.camera_pitch_m = 4e-6;
  o.out_rows = o.out_cols = 96;
  for (double lambda : {450e-9, 650e-9}) {
    const RArray psf = polychromatic_psf(RArray::Zero(n, n), amp, {{lambda, 1.0}}, o);
    EXPECT_NEAR(psf.sum(), 1.0, 1e-12);
    const double expected = 1.22 * lambda * o.focal_m / (2 * radius * o.pupil_pitch_m) / o.camera_pitch_m;
    const Eigen::Index c0 = o.out_cols / 2;
    Eigen::Index first = -1;
    for (Eigen::Index d = 1; d < 40; ++d)
      if (psf(c0, c0 + d) <= psf(c0, c0 + d - 1) && psf(c0, c0 + d) <= psf(c0, c0 + d + 1)) {
        first = d;
        break;
      }
    EXPECT_NEAR(double(first), expected, 1.0) << "λ = " << lambda;
  }
  // A weighted mixture is the weighted mean of the single-wavelength PSFs.
  const RArray blue = polychromatic_psf(RArray::Zero(n, n), amp, {{450e-9, 1.0}}, o);
  const RArray red = polychromatic_psf(RArray::Zero(n, n), amp, {{650e-9, 1.0}}, o);
  const RArray mix = polychromatic_psf(RArray::Zero(n, n), amp, {{450e-9, 1.0}, {650e-9, 3.0}}, o);
  EXPECT_LT((mix - (0.25 * blue + 0.75 * red)).abs().maxCoeff(), 1e-14);
  EXPECT_THROW(polychromatic_psf(RArray::Zero(n, n), amp, {{450e-9, -1.0}}, o), std::invalid_argument);
  EXPECT_THROW(polychromatic_psf(RArray::Zero(n, n), amp, {}, o), std::invalid_argument);
}

}  // namespace
}  // namespace hilo::sim
