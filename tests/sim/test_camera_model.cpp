#include "hilo/sim/camera_model.hpp"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "hilo/sim/config_error.hpp"

using namespace hilo::sim;

namespace {
// A camera whose counts equal electrons: gain 1 e-/count, QE 1, 1 ms, no offset, no dark, no read noise.
CameraOptions unit_camera(int n = 64) {
  CameraOptions o;
  o.rows = o.cols = n;
  o.exposure_ms = 1.0;
  o.gain_e_per_count = 1.0;
  o.quantum_efficiency = 1.0;
  o.full_well_e = 1e6;
  o.bit_depth = 16;
  o.noise.read_noise_e = 0.0;
  o.noise.dark_offset_counts = 0.0;
  o.noise.dark_current_e_per_s = 0.0;
  return o;
}
struct Moments {
  double mean = 0, var = 0;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= double(v.size());
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= double(v.size() - 1);
  return m;
}
}  // namespace

TEST(CameraModel, ShotNoiseIsPoisson) {
  const CameraModel cam(unit_camera());
  std::mt19937_64 rng(11);
  for (double lambda : {3.0, 50.0, 900.0}) {
    std::vector<double> v;
    for (int f = 0; f < 4; ++f) {
      const RArray frame = cam.capture(RArray::Constant(64, 64, lambda), rng);
      v.insert(v.end(), frame.data(), frame.data() + frame.size());
    }
    const double n = double(v.size());
    const Moments m = moments(v);
    // Poisson: mean = variance = λ. Standard errors: √(λ/n) for the mean, ≈ √(2λ²/n + λ/n) for the variance.
    EXPECT_NEAR(m.mean, lambda, 5.0 * std::sqrt(lambda / n)) << "lambda " << lambda;
    EXPECT_NEAR(m.var, lambda, 5.0 * std::sqrt((2.0 * lambda * lambda + lambda) / n)) << "lambda " << lambda;
    // Counts are whole numbers.
    for (double x : v) ASSERT_EQ(x, std::round(x));
  }
}

TEST(CameraModel, ReadNoiseIsGaussianWithStatedSigma) {
  CameraOptions o = unit_camera();
  o.noise.shot_noise = false;
  o.noise.read_noise_e = 4.0;
  o.noise.dark_offset_counts = 100.0;
  const CameraModel cam(o);
  std::mt19937_64 rng(3);
  std::vector<double> v;
  for (int f = 0; f < 4; ++f) {
    const RArray frame = cam.capture(RArray::Zero(64, 64), rng);
    v.insert(v.end(), frame.data(), frame.data() + frame.size());
  }
  const Moments m = moments(v);
  const double n = double(v.size()), var = 16.0 + 1.0 / 12.0;  // + ADC rounding
  EXPECT_NEAR(m.mean, 100.0, 5.0 * std::sqrt(var / n));
  EXPECT_NEAR(m.var, var, 5.0 * var * std::sqrt(2.0 / n));
}

TEST(CameraModel, GainAndQuantumEfficiencyScaleCounts) {
  CameraOptions o = unit_camera(8);
  o.noise.shot_noise = false;
  o.gain_e_per_count = 2.0;
  o.quantum_efficiency = 0.5;
  o.exposure_ms = 4.0;
  const CameraModel cam(o);
  std::mt19937_64 rng(1);
  // 100 photons/px/ms · 4 ms · QE 0.5 = 200 e- → 100 counts at 2 e-/count.
  const RArray frame = cam.capture(RArray::Constant(8, 8, 100.0), rng);
  EXPECT_EQ(frame.minCoeff(), 100.0);
  EXPECT_EQ(frame.maxCoeff(), 100.0);
}

TEST(CameraModel, SaturationClipsAtFullScale) {
  for (int bits : {8, 12, 16}) {
    CameraOptions o = unit_camera(16);
    o.bit_depth = bits;
    o.full_well_e = 1e8;
    o.noise.read_noise_e = 5.0;
    const CameraModel cam(o);
    std::mt19937_64 rng(2);
    RArray in = RArray::Constant(16, 16, 1e7);
    in(0, 0) = 10.0;  // one pixel well below full scale
    const RArray frame = cam.capture(in, rng);
    const double top = std::ldexp(1.0, bits) - 1.0;
    EXPECT_EQ(cam.full_scale_counts(), top);
    EXPECT_EQ(frame.maxCoeff(), top);
    EXPECT_EQ(frame(5, 5), top);
    EXPECT_LT(frame(0, 0), 60.0);
  }
}

TEST(CameraModel, FullWellClipsElectronsBeforeTheAdc) {
  CameraOptions o = unit_camera(8);
  o.noise.shot_noise = false;
  o.full_well_e = 1000.0;
  const CameraModel cam(o);
  std::mt19937_64 rng(2);
  const RArray frame = cam.capture(RArray::Constant(8, 8, 5000.0), rng);
  EXPECT_EQ(frame.maxCoeff(), 1000.0);
}

TEST(CameraModel, BinningSumsCharge) {
  CameraOptions o = unit_camera(12);
  o.noise.shot_noise = false;
  o.binning = 3;
  const CameraModel cam(o);
  ASSERT_EQ(cam.out_rows(), 4);
  ASSERT_EQ(cam.out_cols(), 4);
  RArray in(12, 12);
  for (Eigen::Index i = 0; i < in.size(); ++i) in.data()[i] = double(i % 17);
  std::mt19937_64 rng(2);
  const RArray frame = cam.capture(in, rng);
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(frame(r, c), in.block(3 * r, 3 * c, 3, 3).sum());
}

TEST(CameraModel, DarkOffsetAndDarkCurrentInADarkFrame) {
  CameraOptions o = unit_camera(32);
  o.noise.dark_offset_counts = 64.0;
  o.noise.dark_current_e_per_s = 20000.0;
  o.exposure_ms = 10.0;  // 200 e- of dark charge, Poisson
  const CameraModel cam(o);
  std::mt19937_64 rng(4);
  const RArray frame = cam.capture(RArray::Zero(32, 32), rng);
  EXPECT_NEAR(frame.mean(), 264.0, 5.0 * std::sqrt(200.0 / 1024.0));

  o.noise.dark_current_e_per_s = 0.0;
  const RArray flat = CameraModel(o).capture(RArray::Zero(32, 32), rng);
  EXPECT_EQ(flat.minCoeff(), 64.0);
  EXPECT_EQ(flat.maxCoeff(), 64.0);
}

TEST(CameraModel, HotPixelsAreFixedForASeed) {
  CameraOptions o = unit_camera(64);
  o.noise.shot_noise = false;
  o.noise.hot_pixel_fraction = 0.01;
  o.noise.hot_pixel_e_per_s = 1e5;
  o.exposure_ms = 10.0;  // 1000 e- on a hot pixel
  o.seed = 77;
  const CameraModel a(o), b(o);
  EXPECT_EQ((a.hot_pixel_mask() - b.hot_pixel_mask()).abs().maxCoeff(), 0.0);
  const double n_hot = a.hot_pixel_mask().sum();
  EXPECT_GT(n_hot, 10.0);  // binomial(4096, 0.01): mean 41, sd 6.4
  EXPECT_LT(n_hot, 80.0);
  std::mt19937_64 r1(1), r2(999);
  const RArray f1 = a.capture(RArray::Zero(64, 64), r1), f2 = a.capture(RArray::Zero(64, 64), r2);
  EXPECT_EQ(((f1 > 500.0).cast<double>() - a.hot_pixel_mask()).abs().maxCoeff(), 0.0);
  EXPECT_EQ(((f2 > 500.0).cast<double>() - a.hot_pixel_mask()).abs().maxCoeff(), 0.0);
  o.seed = 78;
  EXPECT_GT((CameraModel(o).hot_pixel_mask() - a.hot_pixel_mask()).abs().sum(), 0.0);
}

TEST(CameraModel, SameGeneratorStateGivesSameFrame) {
  CameraOptions o = unit_camera(16);
  o.noise.read_noise_e = 3.0;
  const CameraModel cam(o);
  std::mt19937_64 a(5), b(5), c(6);
  const RArray in = RArray::Constant(16, 16, 40.0);
  const RArray fa = cam.capture(in, a);
  EXPECT_EQ((fa - cam.capture(in, b)).abs().maxCoeff(), 0.0);
  EXPECT_GT((fa - cam.capture(in, c)).abs().maxCoeff(), 0.0);
}

TEST(CameraModel, ValidateNamesTheRule) {
  CameraOptions o;
  o.bit_depth = 20;
  {
    const std::string e = o.validate();
    EXPECT_EQ(e, "camera.bit_depth must be in [8, 16], got 20");
  }
  o = {};
  o.rows = 30;
  o.binning = 4;
  EXPECT_NE(o.validate(), "");
  o = {};
  o.noise.read_noise_e = -1;
  {
    const std::string e = o.validate("sim.camera");
    EXPECT_NE(e.find("sim.camera.noise.read_noise_e"), std::string::npos) << e;
  }
}

TEST(CameraModel, RejectsWrongShapeAndNegativeInput) {
  const CameraModel cam(unit_camera(8));
  std::mt19937_64 rng(1);
  EXPECT_THROW(cam.capture(RArray::Zero(8, 9), rng), std::invalid_argument);
  RArray bad = RArray::Zero(8, 8);
  bad(2, 2) = -1.0;
  EXPECT_THROW(cam.capture(bad, rng), std::invalid_argument);
}
