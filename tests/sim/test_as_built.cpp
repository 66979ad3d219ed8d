#include "hilo/sim/as_built.hpp"

#include <cmath>
#include <numbers>
#include <random>

#include <gtest/gtest.h>

#include "hilo/sim/config_error.hpp"
#include "hilo/sim/optics.hpp"

using namespace hilo::sim;

namespace {
AsBuiltProfile rough(std::uint64_t seed) {
  AsBuiltProfile p;
  p.seed = seed;
  p.fabrication.phase_rms_rad = 0.3;
  p.fabrication.correlation_length_px = 4.0;
  p.drift.shift_walk_px_per_sqrt_s = 0.05;
  p.drift.gain_walk_per_sqrt_s = 0.01;
  return p;
}
}  // namespace

TEST(AsBuilt, IdealProfileChangesNothing) {
  const AsBuilt ideal{AsBuiltProfile{}};
  EXPECT_EQ(ideal.pupil_phase(32, 32, 16.0).abs().maxCoeff(), 0.0);
  RArray design(16, 16);
  for (Eigen::Index i = 0; i < design.size(); ++i) design.data()[i] = 0.1 * double(i);
  EXPECT_EQ((ideal.fabricate(design) - design).abs().maxCoeff(), 0.0);
  const Pose p = ideal.pose_at(1000.0);
  EXPECT_TRUE(p.is_identity_warp());
  EXPECT_EQ(p.gain, 1.0);
  EXPECT_EQ((warp_image(design, p) - design).abs().maxCoeff(), 0.0);
}

TEST(AsBuilt, SameSeedIsBitIdenticalAndOtherSeedsDiffer) {
  const AsBuilt a(rough(5)), b(rough(5)), c(rough(6));
  const RArray na = a.fabrication_noise(48, 48);
  EXPECT_EQ((na - b.fabrication_noise(48, 48)).abs().maxCoeff(), 0.0);
  EXPECT_GT((na - c.fabrication_noise(48, 48)).abs().maxCoeff(), 0.1);
  // Poses agree whatever order the times are asked in.
  const Pose late_first = b.pose_at(37.5);
  for (double t : {0.5, 3.0, 37.5}) {
    const Pose pa = a.pose_at(t);
    EXPECT_EQ(pa.shift_x_px, (t == 37.5 ? late_first : b.pose_at(t)).shift_x_px);
    EXPECT_EQ(pa.gain, b.pose_at(t).gain);
  }
  EXPECT_NE(a.pose_at(37.5).shift_x_px, c.pose_at(37.5).shift_x_px);
}

TEST(AsBuilt, FabricationNoiseHasTheStatedRmsAndCorrelationLength) {
  const double L = 4.0;
  std::mt19937_64 rng(3);
  const RArray n = correlated_noise(256, 256, 0.3, L, rng);
  EXPECT_NEAR(std::sqrt(n.square().mean()), 0.3, 1e-12);
  EXPECT_NEAR(n.mean(), 0.0, 1e-12);
  // Autocorrelation exp(−d²/L²): 1/e at lag L, exp(−1/4) at lag L/2 (periodic grid, statistical tolerance).
  auto corr = [&](int lag) {
    double s = 0.0;
    for (int r = 0; r < 256; ++r)
      for (int c = 0; c < 256; ++c) s += n(r, c) * (n(r, (c + lag) % 256) + n((r + lag) % 256, c));
    return s / (2.0 * 256 * 256 * 0.09);
  };
  EXPECT_NEAR(corr(4), std::exp(-1.0), 0.05);
  EXPECT_NEAR(corr(2), std::exp(-0.25), 0.05);
  EXPECT_LT(std::abs(corr(16)), 0.05);
}

TEST(AsBuilt, FabricationScalesAndQuantizesTheDesign) {
  AsBuiltProfile p;
  p.fabrication.height_error = -0.1;
  p.fabrication.quantization_levels = 4;
  const AsBuilt a(p);
  RArray d(1, 3);
  d << 1.0, 2.0, 4.0;
  const RArray f = a.fabricate(d);
  const double step = std::numbers::pi / 2;
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(f(0, i), std::round(0.9 * d(0, i) / step) * step);
}

TEST(AsBuilt, DefocusIsTheNollZernikeInWaves) {
  AsBuiltProfile p;
  p.aberrations.defocus_waves = 0.25;
  p.aberrations.zernike_waves[4] = 0.05;  // adds to defocus
  p.aberrations.zernike_waves[6] = -0.1;
  const AsBuilt a(p);
  const RArray got = a.pupil_phase(64, 64, 30.0);
  const RArray want = 2 * std::numbers::pi * (0.3 * zernike_map(4, 64, 64, 1.0, 30.0) - 0.1 * zernike_map(6, 64, 64, 1.0, 30.0));
  EXPECT_LT((got - want).abs().maxCoeff(), 1e-12);
  // Noll normalisation: RMS over the pupil of the defocus-only part is 2π·0.3 rad.
  const RArray z4 = 2 * std::numbers::pi * 0.3 * zernike_map(4, 64, 64, 1.0, 30.0);
  const RArray inside = (circular_aperture(64, 64, 1.0, 30.0) > 0.5).cast<double>();
  EXPECT_NEAR(std::sqrt((z4.square() * inside).sum() / inside.sum()), 2 * std::numbers::pi * 0.3, 0.05);
}

TEST(AsBuilt, DriftFollowsItsRatesAndRandomWalkVariance) {
  AsBuiltProfile p;
  p.misalignment.shift_x_px = 1.0;
  p.drift.shift_x_px_per_s = 0.01;
  p.drift.gain_per_s = -0.001;
  const AsBuilt a(p);
  EXPECT_DOUBLE_EQ(a.pose_at(100.0).shift_x_px, 2.0);
  EXPECT_DOUBLE_EQ(a.pose_at(100.0).gain, 0.9);
  // Random walk: Var W(t) = walk²·t, over many seeds.
  double s2 = 0.0;
  const int n = 400;
  for (int seed = 0; seed < n; ++seed) {
    AsBuiltProfile q;
    q.seed = std::uint64_t(seed);
    q.drift.shift_walk_px_per_sqrt_s = 0.1;
    const double x = AsBuilt(q).pose_at(25.0).shift_x_px;
    s2 += x * x;
  }
  EXPECT_NEAR(s2 / n, 0.01 * 25.0, 5.0 * 0.25 * std::sqrt(2.0 / n));
  EXPECT_THROW(a.pose_at(-1.0), std::invalid_argument);
}

TEST(AsBuilt, WarpMovesAPointWhereThePoseSays) {
  RArray img = RArray::Zero(65, 65);
  img(32 + 10, 32 + 20) = 1.0;  // x = 20, y = 10 from the centre (32, 32)
  Pose pose{2.5, -1.25, 30.0, 1.1, 1.0};
  const RArray w = warp_image(img, pose);
  double sx = 0, sy = 0, s = 0;
  for (int r = 0; r < 65; ++r)
    for (int c = 0; c < 65; ++c) s += w(r, c), sx += w(r, c) * (c - 32), sy += w(r, c) * (r - 32);
  const double th = 30.0 * std::numbers::pi / 180.0;
  EXPECT_NEAR(sx / s, 1.1 * (20 * std::cos(th) - 10 * std::sin(th)) + 2.5, 0.05);
  EXPECT_NEAR(sy / s, 1.1 * (20 * std::sin(th) + 10 * std::cos(th)) - 1.25, 0.05);
  // A whole-pixel shift is exact.
  const RArray shifted = warp_image(img, Pose{3.0, -2.0, 0.0, 1.0, 1.0});
  EXPECT_EQ(shifted(32 + 10 - 2, 32 + 20 + 3), 1.0);
  EXPECT_EQ(shifted.sum(), 1.0);
}

TEST(AsBuilt, WarpAdjointIsTheTranspose) {
  // ⟨warp(a), b⟩ = ⟨a, warp_adjoint(b)⟩ for random a, b, on a non-square grid, for a pose that pushes
  // part of the image out of the frame (the zero boundary must be transposed too).
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n(0.0, 1.0);
  const RArray a = RArray::NullaryExpr(19, 23, [&] { return n(rng); });
  const RArray b = RArray::NullaryExpr(19, 23, [&] { return n(rng); });
  for (const Pose& pose : {Pose{0.37, -2.6, 7.0, 1.08, 1.0}, Pose{-4.2, 0.5, -20.0, 0.93, 1.0}}) {
    const double lhs = (warp_image(a, pose) * b).sum(), rhs = (a * warp_image_adjoint(b, pose)).sum();
    EXPECT_NEAR(lhs, rhs, 1e-12 * std::abs(lhs) + 1e-12);
    EXPECT_GT(std::abs(lhs - (a * b).sum()), 1e-3);  // the warp really moved something
  }
  EXPECT_EQ((warp_image_adjoint(b, Pose{}) - b).abs().maxCoeff(), 0.0);
}

TEST(AsBuilt, ValidateNamesTheRule) {
  AsBuiltProfile p;
  p.misalignment.rotation_deg = 90;
  {
    const std::string e = p.validate();
    EXPECT_EQ(e, "profile.misalignment.rotation_deg must be in [-45, 45], got 90");
  }
  p = {};
  p.fabrication.quantization_levels = 1;
  EXPECT_NE(p.validate(), "");
  p = {};
  p.gain = 0;
  EXPECT_THROW(AsBuilt{p}, ConfigError);
}
