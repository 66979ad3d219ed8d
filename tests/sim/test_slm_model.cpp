#include "hilo/sim/slm_model.hpp"

#include <cmath>
#include <numbers>
#include <random>

#include <gtest/gtest.h>

#include "hilo/sim/config_error.hpp"

using namespace hilo::sim;

namespace {
constexpr double kPi = std::numbers::pi;
double wrapped(double d) { return std::remainder(d, 2.0 * kPi); }
SlmOptions small(int rows, int cols, int bits = 8) {
  SlmOptions o;
  o.rows = rows;
  o.cols = cols;
  o.bit_depth = bits;
  return o;
}
}  // namespace

TEST(SlmModel, LinearLutQuantizationErrorIsAtMostHalfAStep) {
  for (int bits : {1, 3, 8, 10}) {
    const SlmModel slm(small(16, 16, bits));
    std::mt19937_64 rng(bits);
    std::uniform_real_distribution<double> u(-20.0, 20.0);
    RArray phase(16, 16);
    for (Eigen::Index i = 0; i < phase.size(); ++i) phase.data()[i] = u(rng);
    const RArray got = slm.level_phase(slm.quantize(phase));
    const double half_step = kPi / double(1 << bits);
    for (Eigen::Index i = 0; i < phase.size(); ++i)
      EXPECT_LE(std::abs(wrapped(got.data()[i] - phase.data()[i])), half_step + 1e-12) << "bits " << bits;
  }
}

TEST(SlmModel, LinearLutWrapsAndMapsLevelsOnto2PiSteps) {
  const SlmModel slm(small(1, 4, 2));
  EXPECT_DOUBLE_EQ(slm.phase_of_level(1), kPi / 2);
  EXPECT_DOUBLE_EQ(slm.phase_of_level(3), 3 * kPi / 2);
  RArray p(1, 4);
  p << 2 * kPi - 0.01, -kPi / 2, kPi + 0.1, 4 * kPi + kPi / 2;
  const Levels l = slm.quantize(p);
  EXPECT_EQ(l(0, 0), 0);  // just below 2π is nearest to 0
  EXPECT_EQ(l(0, 1), 3);
  EXPECT_EQ(l(0, 2), 2);
  EXPECT_EQ(l(0, 3), 1);
}

TEST(SlmModel, TableLutPicksTheNearestEntryOnTheCircle) {
  SlmOptions o = small(8, 8, 4);
  for (int l = 0; l < 16; ++l) o.lut_rad.push_back(1.8 * kPi * std::pow(l / 15.0, 1.7));  // gamma-like, < 2π
  const SlmModel slm(o);
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(-kPi, 3 * kPi);
  RArray p(8, 8);
  for (Eigen::Index i = 0; i < p.size(); ++i) p.data()[i] = u(rng);
  const Levels l = slm.quantize(p);
  for (Eigen::Index i = 0; i < p.size(); ++i) {
    double best = 1e9;
    for (double q : o.lut_rad) best = std::min(best, std::abs(wrapped(q - p.data()[i])));
    EXPECT_NEAR(std::abs(wrapped(o.lut_rad[l.data()[i]] - p.data()[i])), best, 1e-12);
  }
}

TEST(SlmModel, WithoutFringingTheRealisedPhaseIsTheUpsampledLevelMap) {
  SlmOptions o = small(5, 7, 8);
  o.oversample = 3;
  const SlmModel slm(o);
  Levels l(5, 7);
  for (Eigen::Index i = 0; i < l.size(); ++i) l.data()[i] = std::uint16_t((37 * i) % 256);
  const RArray phi = slm.realised_phase(l), lp = slm.level_phase(l);
  ASSERT_EQ(phi.rows(), 15);
  ASSERT_EQ(phi.cols(), 21);
  for (int r = 0; r < 15; ++r)
    for (int c = 0; c < 21; ++c) ASSERT_EQ(phi(r, c), lp(r / 3, c / 3));
}

TEST(SlmModel, FringingSmoothsAStepWithTheStatedWidth) {
  // A phase step convolved with a Gaussian of σ is an erf edge: its 10–90 % rise is 2·1.2816·σ.
  SlmOptions o = small(4, 16, 8);
  o.oversample = 16;
  o.fringing_sigma_px = 0.5;
  const SlmModel slm(o);
  Levels l = Levels::Zero(4, 16);
  l.rightCols(8).setConstant(64);  // π/2
  const RArray phi = slm.realised_phase(l);
  const auto row = phi.row(32);
  const double lo = 0.1 * kPi / 2, hi = 0.9 * kPi / 2;
  // Linear interpolation of the crossing positions (in samples).
  auto crossing = [&](double level) {
    for (Eigen::Index c = 1; c < row.size(); ++c)
      if (row(c - 1) < level && row(c) >= level) return double(c - 1) + (level - row(c - 1)) / (row(c) - row(c - 1));
    return -1.0;
  };
  const double width_px = (crossing(hi) - crossing(lo)) / 16.0;
  EXPECT_NEAR(width_px, 2.0 * 1.28155 * 0.5, 0.03);
  // Centred on the pixel edge, and the total phase is preserved (normalised kernel).
  EXPECT_NEAR(0.5 * (crossing(hi) + crossing(lo)) / 16.0, 8.0 - 0.5 / 16.0, 0.03);
  SlmOptions sharp = o;
  sharp.fringing_sigma_px = 0.0;
  EXPECT_NEAR(phi.sum(), SlmModel(sharp).realised_phase(l).sum(), 1e-6 * phi.sum());
}

TEST(SlmModel, FillFactorSetsTheMeanAmplitudePerPixel) {
  for (int s : {1, 2, 5, 8}) {
    SlmOptions o = small(3, 3, 8);
    o.fill_factor = 0.81;
    o.oversample = s;
    const SlmModel slm(o);
    const CArray m = slm.modulation(Levels::Zero(3, 3));
    EXPECT_NEAR(m.abs().mean(), 0.81, 1e-12) << "oversample " << s;
    EXPECT_LE(m.abs().maxCoeff(), 1.0 + 1e-12);
  }
  // With s = 10 and √ff = 0.9 the outermost half sample of each side is dark.
  SlmOptions o = small(1, 1, 8);
  o.fill_factor = 0.81;
  o.oversample = 10;
  const CArray m = SlmModel(o).modulation(Levels::Zero(1, 1));
  EXPECT_NEAR(std::abs(m(0, 0)), 0.25, 1e-12);
  EXPECT_NEAR(std::abs(m(5, 5)), 1.0, 1e-12);
}

TEST(SlmModel, ModulationCarriesTheRealisedPhase) {
  SlmOptions o = small(4, 4, 8);
  o.fill_factor = 1.0;
  const SlmModel slm(o);
  Levels l(4, 4);
  for (Eigen::Index i = 0; i < l.size(); ++i) l.data()[i] = std::uint16_t(16 * i);
  const CArray m = slm.modulation(l);
  for (Eigen::Index i = 0; i < l.size(); ++i)
    EXPECT_NEAR(std::abs(m.data()[i] - std::polar(1.0, 2 * kPi * 16 * i / 256.0)), 0.0, 1e-12);
}

TEST(SlmModel, ValidateNamesTheRule) {
  SlmOptions o;
  o.bit_depth = 4;
  o.lut_rad = {0.0, 1.0};
  {
    const std::string e = o.validate();
    EXPECT_EQ(e, "slm.lut_rad must have 2^bit_depth = 16 entries, got 2");
  }
  o = {};
  o.fill_factor = 0.0;
  EXPECT_NE(o.validate(), "");
  o = {};
  o.oversample = 0;
  EXPECT_NE(o.validate(), "");
  const SlmModel slm(small(2, 2, 8));
  EXPECT_THROW(slm.quantize(RArray::Zero(3, 2)), std::invalid_argument);
  EXPECT_THROW(slm.level_phase(Levels::Constant(2, 2, 256)), std::invalid_argument);
}
