#include <cmath>
#include <random>
#include <stdexcept>
#include <utility>

#include <gtest/gtest.h>

#include "hilo/calibration/dark_flat.hpp"
#include "hilo/calibration/registration.hpp"
#include "sim_rig.hpp"

namespace hilo::calibration {
namespace {

using testing::SimRig;
using testing::bench_options;

// The feature-map area of the default layout on the sim.yaml camera (8 tiles of 36 px, 4 per row,
// centred): where registration errors matter.
const Rect kFeatureField{0, 36, 143, 72};

RArray smooth_random_image(int rows, int cols, std::mt19937_64& rng) {
  std::normal_distribution<double> g;
  RArray img = RArray::Zero(rows, cols);
  for (int i = 0; i < 40; ++i) {
    const double x0 = 20 + (cols - 40) * (0.5 + 0.2 * g(rng)), y0 = 20 + (rows - 40) * (0.5 + 0.2 * g(rng));
    const double s = 1.5 + std::abs(g(rng)) * 2;
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) img(r, c) += 100 * std::exp(-((c - x0) * (c - x0) + (r - y0) * (r - y0)) / (2 * s * s));
  }
  return img;
}

TEST(PoseFit, RecoversKnownWarpOfSyntheticImage) {
  std::mt19937_64 rng(3);
  const RArray pred = smooth_random_image(96, 96, rng);
  Pose truth;
  truth.shift_x_px = 2.3;
  truth.shift_y_px = -1.7;
  truth.rotation_deg = 1.1;
  truth.scale = 1.02;
  const RArray meas = 0.9 * warp_forward(pred, truth) + 5.0;
  const PoseFit fit = fit_pose({meas}, {pred});
  EXPECT_TRUE(fit.converged) << fit.report;
  EXPECT_LT(max_displacement_px(fit.pose, truth, {0, 0, 95, 95}, 96, 96), 0.01) << fit.report;
  EXPECT_NEAR(fit.pose.gain, 0.9, 1e-3);
  EXPECT_NEAR(fit.offset[0], 5.0, 0.05);
}

TEST(PoseFit, PhaseCorrelationCapturesShiftsBeyondTheGradientBasin) {
  std::mt19937_64 rng(5);
  const RArray pred = smooth_random_image(96, 96, rng);
  Pose truth;
  truth.shift_x_px = -9.0;
  truth.shift_y_px = 7.5;
  const RArray meas = warp_forward(pred, truth);
  const PoseFit fit = fit_pose({meas}, {pred});
  EXPECT_LT(max_displacement_px(fit.pose, truth, {0, 0, 95, 95}, 96, 96), 0.01) << fit.report;
}

TEST(PoseFit, RejectsMismatchedInputsAndBadOptions) {
  EXPECT_THROW(fit_pose({}, {}), std::invalid_argument);
  EXPECT_THROW(fit_pose({RArray::Zero(4, 4)}, {RArray::Zero(5, 4)}), std::invalid_argument);
  PoseFitOptions o;
  o.max_iterations = 0;
  EXPECT_EQ(o.validate(), "fit.max_iterations must be >= 1, got 0");
}

TEST(WarpBack, UndoesWarpForwardInsideTheField) {
  std::mt19937_64 rng(9);
  const RArray img = smooth_random_image(80, 80, rng);
  Pose p;
  p.shift_x_px = 1.3;
  p.rotation_deg = -0.8;
  p.scale = 0.99;
  const RArray back = warp_back(warp_forward(img, p), p);
  // Two bilinear resamplings smooth slightly; compare away from the border.
  const double err = (back - img).block(10, 10, 60, 60).abs().maxCoeff();
  EXPECT_LT(err, 0.05 * img.maxCoeff());
}

struct Case {
  const char* profile;
  std::uint64_t seed;
  double tolerance_px;
};

class RegistrationOnProfiles : public ::testing::TestWithParam<Case> {};

// Registration with the default options on a simulated bench with a flat element: the fit and the truth.
std::pair<PoseFit, Pose> register_flat(const sim::BenchOptions& options, std::uint64_t seed) {
  SimRig rig(options, seed + 100);
  rig.set_flat_element();
  ProbeRig probe(rig.input, rig.camera);
  auto dark = measure_dark(probe);
  if (!dark.ok()) throw std::runtime_error("dark frame: " + dark.error().message);
  std::mt19937_64 rng(seed);
  auto reg = register_input_to_camera(probe, rig.predictor(), dark.value(), {}, rng);
  if (!reg.ok()) throw std::runtime_error("registration: " + reg.error().message);
  return {reg.value().fit, rig.bench.true_pose(rig.t_s())};
}

TEST_P(RegistrationOnProfiles, RecoversShiftRotationScaleWithinFifthPixel) {
  const auto [fit, truth] = register_flat(bench_options(GetParam().profile, GetParam().seed), GetParam().seed);
  const double err = max_displacement_px(fit.pose, truth, kFeatureField, 144, 144);
  RecordProperty("max_error_px", std::to_string(err));
  std::printf("[%s seed %lu] truth (%.3f, %.3f, %.3f deg, %.4f) fit (%.3f, %.3f, %.3f deg, %.4f) gain %.4f "
              "(true %.4f): max error over feature field %.3f px; %s\n",
              GetParam().profile, (unsigned long)GetParam().seed, truth.shift_x_px, truth.shift_y_px,
              truth.rotation_deg, truth.scale, fit.pose.shift_x_px, fit.pose.shift_y_px, fit.pose.rotation_deg,
              fit.pose.scale, fit.pose.gain, truth.gain, err, fit.report.c_str());
  EXPECT_TRUE(fit.converged);
  EXPECT_LT(err, GetParam().tolerance_px);
}

// The coherent (4f) bench (imaging: coherent), same probes and fit. Measured, 2 seeds: mild 0.06 px,
// moderate 0.5–0.6 px, severe 3–5 px over the feature field: under coherent light the aberrated amplitude
// spread function makes neighbouring probe pixels interfere, which the model's Gaussian blur cannot
// describe (isolated dot probes were tried and did worse: 1.6–1.8 px on moderate). The bounds are
// regression guards at those figures, not an acceptance; docs/calibration.md, "Registration on a
// coherent bench".
class CoherentRegistration : public ::testing::TestWithParam<Case> {};

TEST_P(CoherentRegistration, RecoversThePoseWithinItsMeasuredError) {
  sim::BenchOptions o = bench_options(GetParam().profile, GetParam().seed);
  o.imaging = sim::Imaging::coherent;
  const auto [fit, truth] = register_flat(o, GetParam().seed);
  const double err = max_displacement_px(fit.pose, truth, kFeatureField, 144, 144);
  std::printf("[coherent %s seed %lu] max error over feature field %.3f px\n", GetParam().profile,
              (unsigned long)GetParam().seed, err);
  EXPECT_TRUE(fit.converged);
  EXPECT_LT(err, GetParam().tolerance_px);
}

INSTANTIATE_TEST_SUITE_P(Profiles, CoherentRegistration,
                         ::testing::Values(Case{"mild", 1, 0.2}, Case{"moderate", 1, 1.0}, Case{"moderate", 2, 1.0},
                                           Case{"severe", 1, 6.0}),
                         [](const auto& info) {
                           return std::string(info.param.profile) + "_seed" + std::to_string(info.param.seed);
                         });

INSTANTIATE_TEST_SUITE_P(Profiles, RegistrationOnProfiles,
                         // The acceptance is 0.2 px over the feature field. The severe profile misses it (0.5–0.9 px): its
// 0.6 waves of defocus blur the probes over ~16 px, which the Gaussian blur term models poorly, and
// the misfit leaks into the scale. Its bound is a regression guard, not the acceptance; see
// docs/calibration.md, "Registration".
                         ::testing::Values(Case{"ideal", 1, 0.2}, Case{"mild", 1, 0.2}, Case{"mild", 2, 0.2},
                                           Case{"mild", 3, 0.2}, Case{"moderate", 1, 0.2}, Case{"moderate", 2, 0.2},
                                           Case{"moderate", 3, 0.2}, Case{"severe", 1, 1.0}, Case{"severe", 2, 1.0},
                                           Case{"severe", 3, 1.0}),
                         [](const auto& info) {
                           return std::string(info.param.profile) + "_seed" + std::to_string(info.param.seed);
                         });

}  // namespace
}  // namespace hilo::calibration
