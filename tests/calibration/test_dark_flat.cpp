#include <cmath>

#include <gtest/gtest.h>

#include "hilo/calibration/dark_flat.hpp"
#include "hilo/calibration/linearity.hpp"
#include "hilo/calibration/registration.hpp"
#include "sim_rig.hpp"

namespace hilo::calibration {
namespace {

using testing::SimRig;
using testing::bench_options;

class DarkOnProfiles : public ::testing::TestWithParam<const char*> {};

TEST_P(DarkOnProfiles, LevelAndHotPixelsMatchTheCameraModel) {
  SimRig rig(bench_options(GetParam()));
  rig.set_flat_element();
  ProbeRig probe(rig.input, rig.camera);
  auto dark = measure_dark(probe);
  ASSERT_TRUE(dark.ok()) << dark.error().message;
  const DarkFrame& d = dark.value();
  const double truth = rig.bench.dark_level_counts();
  const RArray& hot_truth = rig.bench.camera().hot_pixel_mask();
  std::printf("[%s] dark level %.4f counts (truth %.4f), robust sigma %.3f, temporal noise %.3f; hot %d (truth %d), "
              "agreeing %d\n",
              GetParam(), d.level, truth, d.sigma, d.temporal_noise, d.hot_count, int(hot_truth.sum()),
              int((d.hot * hot_truth).sum()));
  EXPECT_NEAR(d.level, truth, 0.05);
  EXPECT_EQ(d.hot_count, int(hot_truth.sum()));
  EXPECT_EQ(int((d.hot * hot_truth).sum()), int(hot_truth.sum()));
}

INSTANTIATE_TEST_SUITE_P(Profiles, DarkOnProfiles, ::testing::Values("ideal", "mild", "moderate", "severe"));

TEST(DarkFrame, HotPixelTestIsRobustToTheOutliersItFinds) {
  std::vector<RArray> frames(4, RArray::Constant(50, 50, 100.0));
  std::mt19937_64 rng(1);
  std::normal_distribution<double> g(0, 1);
  for (auto& f : frames)
    for (Eigen::Index i = 0; i < f.size(); ++i) f.data()[i] += g(rng);
  for (auto& f : frames) f(7, 9) += 50, f(30, 3) += 12;  // hot; 12 counts is 24 σ of the 4-frame mean
  const DarkFrame d = dark_from_frames(frames);
  EXPECT_EQ(d.hot_count, 2);
  EXPECT_EQ(d.hot(7, 9), 1);
  EXPECT_EQ(d.hot(30, 3), 1);
  EXPECT_NEAR(d.level, 100.0, 0.1);
  EXPECT_NEAR(d.temporal_noise, 1.0, 0.2);
}

TEST(FlatField, RecoversAKnownPixelResponseNonUniformity) {
  std::mt19937_64 rng(2);
  std::normal_distribution<double> g(0, 0.03);
  RArray prnu(40, 40), model = RArray::Zero(40, 40);
  for (Eigen::Index i = 0; i < prnu.size(); ++i) prnu.data()[i] = 1.0 + g(rng);
  model.block(5, 5, 30, 30).setConstant(1000.0);
  const RArray signal = 0.8 * model * prnu;
  const FlatField f = flat_from_frame(signal, model, RArray::Zero(40, 40));
  EXPECT_EQ(f.pixels, 900);
  // flat ∝ prnu on the lit area, and brightness · flat reproduces the true response exactly.
  const RArray ratio = (f.flat / prnu).block(5, 5, 30, 30);
  EXPECT_LT(ratio.maxCoeff() - ratio.minCoeff(), 1e-9);
  EXPECT_LT((f.brightness * f.flat - 0.8 * prnu).block(5, 5, 30, 30).abs().maxCoeff(), 1e-9);
  EXPECT_NEAR(f.brightness, 0.8, 0.8 * 0.01);
  EXPECT_EQ(f.flat(0, 0), 1.0);
}

struct FlatCase {
  const char* profile;
  double systematic;  // allowed rms beyond 3 σ of noise: the as-built PSF's shaping of the lit area
};
class FlatOnProfiles : public ::testing::TestWithParam<FlatCase> {};

TEST_P(FlatOnProfiles, OnTheSimulatorIsUniformToNoiseAndPsfMismatch) {
  // The simulated camera has no pixel-response non-uniformity, so the measured flat must be 1 within
  // the noise of the frames plus what the Gaussian blur model leaves of the as-built PSF's shape.
  SimRig rig(bench_options(GetParam().profile));
  rig.set_flat_element();
  ProbeRig probe(rig.input, rig.camera);
  auto dark = measure_dark(probe);
  ASSERT_TRUE(dark.ok());
  std::mt19937_64 rng(1);
  auto reg = register_input_to_camera(probe, rig.predictor(), dark.value(), {}, rng);
  ASSERT_TRUE(reg.ok());
  FlatOptions fo;
  auto flat = measure_flat(probe, rig.predictor(), dark.value(), reg.value().fit, fo);
  ASSERT_TRUE(flat.ok());
  const FlatField& f = flat.value();
  double s2 = 0;
  for (Eigen::Index i = 0; i < f.flat.size(); ++i)
    if (f.measured.data()[i] != 0) s2 += (f.flat.data()[i] - 1) * (f.flat.data()[i] - 1);
  const double rms = std::sqrt(s2 / f.pixels);
  // Shot + read noise of the 16-frame mean at the plateau (≈ 0.8 · 3500 · 0.96 counts, 4 e-/count).
  const double signal = fo.level * 3500 * rig.bench.true_gain(0);
  const double expected = std::sqrt(signal * 4 + 2.5 * 2.5) / 4 / signal / std::sqrt(double(fo.frames));
  std::printf("[%s] flat: %d px, rms deviation %.5f (shot/read noise %.5f), brightness %.4f (true gain %.4f)\n", GetParam().profile, f.pixels,
              rms, expected, f.brightness, rig.bench.true_gain(0));
  EXPECT_GT(f.pixels, 200);
  EXPECT_LT(rms, 3 * expected + GetParam().systematic);
}

INSTANTIATE_TEST_SUITE_P(Profiles, FlatOnProfiles,
                         ::testing::Values(FlatCase{"mild", 0.0}, FlatCase{"moderate", 0.02}),
                         [](const auto& info) { return std::string(info.param.profile); });

TEST(DarkFrame, CameraTimeoutComesBackAsAValue) {
  drivers::FaultOptions faults;
  faults.camera_timeout_rate = 1.0;  // the drivers' fault injection: every grab times out
  SimRig rig(bench_options("ideal"), 7, faults);
  rig.set_flat_element();
  ProbeRig probe(rig.input, rig.camera);
  auto dark = measure_dark(probe);
  ASSERT_FALSE(dark.ok());
  EXPECT_EQ(dark.error().code, drivers::DeviceErrc::timeout);
}

TEST(DarkFrame, OptionsNameTheViolatedRule) {
  DarkOptions o;
  o.frames = 0;
  EXPECT_EQ(o.validate(), "dark.frames must be >= 1, got 0");
  FlatOptions f;
  f.level = 1.5;
  EXPECT_NE(f.validate().find("flat.level must be in (0, 1]"), std::string::npos);
}

struct LinCase {
  const char* profile;
  double exposure_ms;
  double tolerance;  // relative gain error; severe: the registration's scale bias enters as s²
};
class LinearityOnProfiles : public ::testing::TestWithParam<LinCase> {};

TEST_P(LinearityOnProfiles, GainMatchesTrueGainAndSaturationOnsetIsFound) {
  // Registration at the config's 10 ms; linearity at the case's exposure. The simulated camera's
  // exposure is fixed by the bench config (SimCamera refuses another), so another exposure is another
  // bench of the same profile and seed: the same as-built optics, as when the daemon reloads the config.
  SimRig reg_rig(bench_options(GetParam().profile));
  reg_rig.set_flat_element();
  ProbeRig reg_probe(reg_rig.input, reg_rig.camera);
  auto dark = measure_dark(reg_probe);
  ASSERT_TRUE(dark.ok());
  std::mt19937_64 rng(1);
  auto reg = register_input_to_camera(reg_probe, reg_rig.predictor(), dark.value(), {}, rng);
  ASSERT_TRUE(reg.ok());
  SimRig rig(bench_options(GetParam().profile, 0, sim::ElementKind::slm, GetParam().exposure_ms));
  EXPECT_TRUE(rig.camera.set_exposure_ms(2 * GetParam().exposure_ms).has_value());  // refused, see above
  rig.set_flat_element();
  ProbeRig probe(rig.input, rig.camera);
  auto dark2 = measure_dark(probe);  // the dark level depends on the exposure
  ASSERT_TRUE(dark2.ok());
  auto lin = measure_linearity(probe, rig.predictor(), dark2.value(), reg.value().fit);
  ASSERT_TRUE(lin.ok());
  const LinearityFit& f = lin.value();
  const double truth = rig.bench.true_gain(rig.t_s());
  // Ground-truth saturation onset: the level at which the brightest plateau pixel reaches full scale.
  const RArray ideal = rig.predictor()(RArray::Ones(28, 28));
  const double onset = (4095.0 - rig.bench.dark_level_counts()) / (truth * ideal.maxCoeff());
  std::printf("[%s, %.0f ms] %s; true gain %.4f, true saturation onset %.3f\n", GetParam().profile,
              GetParam().exposure_ms, f.report.c_str(), truth, onset);
  EXPECT_NEAR(f.gain, truth, GetParam().tolerance * truth);
  EXPECT_LT(f.nonlinearity, 0.01);
  if (onset > 1.0) {
    EXPECT_FALSE(f.saturation_level.has_value());
  } else {
    ASSERT_TRUE(f.saturation_level.has_value());
    // The first grid level at or above the onset; pixels on the plateau a little below the peak
    // saturate a little later, noise a little earlier, hence one grid step of slack either way.
    EXPECT_GE(*f.saturation_level, onset - 0.125);
    EXPECT_LE(*f.saturation_level, onset + 0.125);
  }
}

INSTANTIATE_TEST_SUITE_P(Profiles, LinearityOnProfiles,
                         ::testing::Values(LinCase{"ideal", 10, 0.01}, LinCase{"moderate", 10, 0.01},
                                           LinCase{"severe", 10, 0.03}, LinCase{"moderate", 20, 0.01}),
                         [](const auto& info) {
                           return std::string(info.param.profile) + "_" +
                                  std::to_string(int(info.param.exposure_ms)) + "ms";
                         });

}  // namespace
}  // namespace hilo::calibration
