#include <chrono>
#include <cmath>
#include <numbers>
#include <random>

#include <gtest/gtest.h>

#include "hilo/calibration/dark_flat.hpp"
#include "hilo/calibration/drift.hpp"
#include "hilo/calibration/registration.hpp"
#include "sim_rig.hpp"

namespace hilo::calibration {
namespace {

using testing::SimRig;
using testing::bench_options;

const Rect kFeatureField{0, 36, 143, 72};  // the feature-map area of the default layout (as in registration)

TEST(ComposePoses, EqualsApplyingInnerThenOuter) {
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int i = 0; i < 20; ++i) {
    Pose a{3 * u(rng), 3 * u(rng), 2 * u(rng), 1 + 0.05 * u(rng), 1.0};
    Pose b{3 * u(rng), 3 * u(rng), 2 * u(rng), 1 + 0.05 * u(rng), 1.0};
    const Pose ab = compose_poses(a, b);
    for (const Eigen::Vector2d p : {Eigen::Vector2d(0, 0), Eigen::Vector2d(143, 20), Eigen::Vector2d(70, 130)})
      EXPECT_LT((apply_pose(ab, p, 144, 144) - apply_pose(a, apply_pose(b, p, 144, 144), 144, 144)).norm(), 1e-9);
  }
}

// A stand-in for a deployed element that spreads every probe over the feature field: a crossed
// sinusoidal phase grating whose diffraction orders land 36 px apart (the tile pitch), so the probe
// images fill the area where rotation and scale matter, as the deployed kernels would.
RArray grating_phase(int rows, int cols, int psf_pad) {
  const double period = double(psf_pad * cols) / 36.0;  // element px per cycle for a 36 px order spacing
  RArray phase(rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      phase(r, c) = 1.2 * (std::cos(2 * std::numbers::pi * c / period) + std::cos(2 * std::numbers::pi * r / period)) + 2.4;
  return phase;
}

// Calibrates the rig (dark, registration with a flat element), puts the grating element in place and
// captures the drift reference through it.
struct Calibrated {
  DarkFrame dark;
  DriftReference reference;
};

Calibrated calibrate(SimRig& rig, ProbeRig& probe, const DriftOptions& options) {
  rig.set_flat_element();
  Calibrated c;
  c.dark = measure_dark(probe).value();
  std::mt19937_64 rng(1);
  const PoseFit fit = register_input_to_camera(probe, rig.predictor(), c.dark, {}, rng).value().fit;
  const auto& slm = rig.bench.options().element.slm;
  rig.set_element_phase(grating_phase(slm.rows, slm.cols, rig.bench.options().element.psf_pad));
  c.reference = capture_drift_reference(probe, c.dark, fit.pose, rig.t_s(), options, rng).value();
  return c;
}

void advance_to(SimRig& rig, double t_s) {
  const double dt = t_s - rig.t_s();
  if (dt > 0) rig.clock.advance(std::chrono::microseconds(std::llround(dt * 1e6)));
}

DriftOptions field_options() {
  DriftOptions o;
  o.field = kFeatureField;
  return o;
}

struct TruthCase {
  const char* profile;
  std::vector<double> times_s;
  double tolerance_px;
  double gain_tolerance;
};
class DriftOnProfiles : public ::testing::TestWithParam<TruthCase> {};

// The profile's own drift (linear rates plus random walks of shift and gain): at each check the
// measured displacement and shift change match true_pose(t) − true_pose(t0), the gain change
// true_gain(t) / true_gain(t0) − 1.
TEST_P(DriftOnProfiles, MeasuredDriftMatchesTheTruePoseChange) {
  SimRig rig(bench_options(GetParam().profile));
  ProbeRig probe(rig.input, rig.camera);
  const DriftOptions opt = field_options();
  const Calibrated cal = calibrate(rig, probe, opt);
  // Truth at the middle of the reference capture (drift within one capture, ~0.2 s, is negligible).
  const double t0 = 0.5 * (cal.reference.t0_s + rig.t_s());
  const Pose p0 = rig.bench.true_pose(t0);
  for (double t : GetParam().times_s) {
    advance_to(rig, t);
    const double t_begin = rig.t_s();
    auto rep = check_drift(probe, cal.reference, cal.dark, t_begin, opt);
    ASSERT_TRUE(rep.ok()) << rep.error().message;
    const DriftReport& r = rep.value();
    const Pose pt = rig.bench.true_pose(0.5 * (t_begin + rig.t_s()));
    const double true_disp = max_displacement_px(pt, p0, kFeatureField, 144, 144);
    const double true_gain = pt.gain / p0.gain - 1.0;
    std::printf("[%s t=%.0f s] %s; true displacement %.3f px (shift %+.3f, %+.3f), true gain change %+.3f %%\n",
                GetParam().profile, t, r.message.c_str(), true_disp, pt.shift_x_px - p0.shift_x_px,
                pt.shift_y_px - p0.shift_y_px, 100 * true_gain);
    EXPECT_TRUE(r.fit.converged);
    EXPECT_NEAR(r.displacement_px, true_disp, GetParam().tolerance_px);
    EXPECT_NEAR(r.change.shift_x_px, pt.shift_x_px - p0.shift_x_px, GetParam().tolerance_px);
    EXPECT_NEAR(r.change.shift_y_px, pt.shift_y_px - p0.shift_y_px, GetParam().tolerance_px);
    EXPECT_NEAR(r.gain_change, true_gain, GetParam().gain_tolerance);
    // The updated pose is the re-compensated registration: the reference's error, not more.
    EXPECT_LT(max_displacement_px(r.updated_pose, pt, kFeatureField, 144, 144),
              max_displacement_px(cal.reference.pose, p0, kFeatureField, 144, 144) + GetParam().tolerance_px);
  }
}

INSTANTIATE_TEST_SUITE_P(Profiles, DriftOnProfiles,
                         ::testing::Values(TruthCase{"moderate", {1, 120, 300, 600}, 0.02, 0.001},
                                           TruthCase{"severe", {1, 20, 40, 80}, 0.03, 0.001}),
                         [](const auto& info) { return std::string(info.param.profile); });

// Linear drift of 0.01 px/s (0.008, −0.006) and no random walk: the 0.5 px threshold is crossed at
// t0 + 50 s. Checks at 5–20 s steps, 5 s about the crossing: no trip while the true displacement is ≤ 0.45 px, a trip from 0.55 px on
// (the check at exactly 0.5 px may go either way).
TEST(DriftThreshold, TripsWhenTheTrueDisplacementCrossesIt) {
  sim::BenchOptions o = bench_options("moderate");
  o.profile.drift = {};
  o.profile.drift.shift_x_px_per_s = 0.008;
  o.profile.drift.shift_y_px_per_s = -0.006;
  SimRig rig(o);
  ProbeRig probe(rig.input, rig.camera);
  const DriftOptions opt = field_options();
  const Calibrated cal = calibrate(rig, probe, opt);
  const double t0 = cal.reference.t0_s;
  bool tripped = false;
  for (double dt : {10.0, 20.0, 30.0, 40.0, 45.0, 50.0, 55.0, 60.0, 80.0, 100.0}) {
    advance_to(rig, t0 + dt);
    const DriftReport r = check_drift(probe, cal.reference, cal.dark, rig.t_s(), opt).value();
    const double truth = max_displacement_px(rig.bench.true_pose(rig.t_s()), rig.bench.true_pose(t0), kFeatureField,
                                             144, 144);
    if (truth < 0.47) EXPECT_FALSE(r.exceeded) << r.message << "; truth " << truth;
    if (truth > 0.53) {
      EXPECT_TRUE(r.exceeded) << r.message << "; truth " << truth;
      EXPECT_EQ(r.message.rfind("drift exceeded: shift ", 0), 0u) << r.message;
    }
    EXPECT_LT(std::abs(r.gain_change), 0.001) << "no gain drift in this profile: " << r.message;
    if (r.exceeded && !tripped) std::printf("first trip at t0 + %.0f s: %s (truth %.3f px)\n", dt, r.message.c_str(), truth);
    tripped = tripped || r.exceeded;
  }
  EXPECT_TRUE(tripped);
}

TEST(DriftThreshold, NeverTripsOnAProfileWithoutDrift) {
  sim::BenchOptions o = bench_options("moderate");
  o.profile.drift = {};
  SimRig rig(o);
  ProbeRig probe(rig.input, rig.camera);
  const DriftOptions opt = field_options();
  const Calibrated cal = calibrate(rig, probe, opt);
  double worst = 0, worst_gain = 0;
  for (double t = 60; t <= 3600; t += 60 * 7) {
    advance_to(rig, t);
    const DriftReport r = check_drift(probe, cal.reference, cal.dark, rig.t_s(), opt).value();
    EXPECT_FALSE(r.exceeded) << r.message;
    worst = std::max(worst, r.displacement_px);
    worst_gain = std::max(worst_gain, std::abs(r.gain_change));
  }
  std::printf("no drift: largest measured displacement %.4f px, gain change %.4f %%\n", worst, 100 * worst_gain);
  EXPECT_LT(worst, 0.03);  // the noise floor of the check (measured 0.009 px, 0.04 %)
  EXPECT_LT(worst_gain, 0.002);
}

TEST(DriftThreshold, GainChangeAloneTrips) {
  sim::BenchOptions o = bench_options("moderate");
  o.profile.drift = {};
  o.profile.drift.gain_per_s = -0.001;  // −3 % after 30 s; threshold 2 % crossed at 20 s
  SimRig rig(o);
  ProbeRig probe(rig.input, rig.camera);
  const DriftOptions opt = field_options();
  const Calibrated cal = calibrate(rig, probe, opt);
  advance_to(rig, cal.reference.t0_s + 10);
  const DriftReport early = check_drift(probe, cal.reference, cal.dark, rig.t_s(), opt).value();
  EXPECT_FALSE(early.exceeded) << early.message;
  advance_to(rig, cal.reference.t0_s + 30);
  const DriftReport late = check_drift(probe, cal.reference, cal.dark, rig.t_s(), opt).value();
  EXPECT_TRUE(late.exceeded) << late.message;
  // The profile's gain is 1 + gain_per_s·t (sim/src/as_built.cpp), so the truth is relative to the
  // reference's time; the check's noise floor is 0.05 % (NeverTripsOnAProfileWithoutDrift), bound 3×.
  const double g0 = 1.0 + o.profile.drift.gain_per_s * cal.reference.t0_s;
  const double truth = (1.0 + o.profile.drift.gain_per_s * rig.t_s()) / g0 - 1.0;
  EXPECT_NEAR(late.gain_change, truth, 0.0015) << late.message;
  EXPECT_EQ(late.message.rfind("drift exceeded: gain change", 0), 0u) << "a gain trip, not a shift trip: " << late.message;
}

TEST(Drift, CameraTimeoutComesBackAsAValue) {
  SimRig rig(bench_options("ideal"));
  ProbeRig probe(rig.input, rig.camera);
  const Calibrated cal = calibrate(rig, probe, {});
  drivers::FaultOptions faults;
  faults.camera_timeout_rate = 1.0;
  SimRig broken(bench_options("ideal"), 7, faults);
  broken.set_flat_element();
  ProbeRig broken_probe(broken.input, broken.camera);
  auto r = check_drift(broken_probe, cal.reference, cal.dark, 1.0, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, drivers::DeviceErrc::timeout);
}

TEST(Drift, OptionsAndMismatchedFramesAreRejected) {
  DriftOptions o;
  o.shift_threshold_px = 0;
  EXPECT_EQ(o.validate(), "drift.shift_threshold_px must be > 0, got 0.000000");
  o = {};
  o.probes = 0;
  EXPECT_EQ(o.validate(), "drift.probes must be >= 1, got 0");
  DriftReference ref;
  ref.frames = {RArray::Zero(8, 8), RArray::Zero(8, 8)};
  EXPECT_THROW(compare_drift({RArray::Zero(8, 8)}, ref, 0.0, {}), std::invalid_argument);
}

}  // namespace
}  // namespace hilo::calibration
