// Measured kernels (calibration/measured_kernels.hpp): the least squares recovers a known model
// exactly; on the simulator the kernels measured through the calibrated bench are those of the as-built
// PSF (ground truth), not the design's, and on an ideal bench they are the design's.
#include <gtest/gtest.h>

#include <random>

#include "twin_rig.hpp"
#include "hilo/calibration/measured_kernels.hpp"

using namespace hilo;
using namespace hilo::calibration;
using hilo::calibration::testing::DeployedRig;

namespace {

double mean_correlation(const distill::MatD& a, const distill::MatD& b) {
  double s = 0;
  for (Eigen::Index j = 0; j < a.rows(); ++j) {
    const Eigen::VectorXd x = a.row(j).transpose().array() - a.row(j).mean();
    const Eigen::VectorXd y = b.row(j).transpose().array() - b.row(j).mean();
    s += x.dot(y) / std::sqrt(x.squaredNorm() * y.squaredNorm());
  }
  return s / double(a.rows());
}

}  // namespace

TEST(MeasuredKernels, OptionsNameTheBrokenRule) {
  EXPECT_EQ(KernelProbeOptions{}.validate(), "");
  KernelProbeOptions o;
  o.margin_px = 11;
  EXPECT_EQ(o.validate(), "bench.kernels.margin_px must be in [0, 10], got 11");
  o = {};
  o.points = 1;
  o.random_patterns = 0;
  EXPECT_EQ(o.validate(), "bench.kernels.points + random_patterns must be >= 2, got 1");
  o = {};
  o.fill = 0;
  EXPECT_NE(o.validate().find("bench.kernels.fill must be in (0, 1]"), std::string::npos);
  o = {};
  o.frames = 0;
  EXPECT_NE(o.validate().find("bench.kernels.frames"), std::string::npos);
  o = {};
  o.ridge = -1;
  EXPECT_NE(o.validate().find("bench.kernels.ridge"), std::string::npos);
}

// Maps made by the model itself (random kernels on an 11 × 11 support, stray light, offset) are fitted
// back to rounding: the regressors, the orientation and kernel_maps agree.
TEST(MeasuredKernels, FitRecoversAKnownModelExactly) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  MeasuredKernels truth;
  truth.kernel_size = 7;
  truth.support = 11;
  truth.kernels = distill::MatD::NullaryExpr(3, 121, [&] { return u(rng); });
  truth.stray = {0.01, 0.002, 0.0};
  truth.offset = {0.5, -0.25, 0.0};
  KernelProbeOptions o;
  const auto probes = kernel_probes(28, 28, 11, o, rng);
  ASSERT_EQ(int(probes.size()), o.points + o.random_patterns);
  std::vector<std::vector<sim::RArray>> maps;
  for (const auto& p : probes) maps.push_back(kernel_maps(truth, p));
  const MeasuredKernels got = fit_kernels(probes, maps, 7, 2, 0.0);
  EXPECT_LT((got.kernels - truth.kernels).cwiseAbs().maxCoeff(), 1e-9);
  for (int j = 0; j < 3; ++j) {
    EXPECT_NEAR(got.stray[j], truth.stray[j], 1e-10);
    EXPECT_NEAR(got.offset[j], truth.offset[j], 1e-8);
    EXPECT_LT(got.fit_residual[j], 1e-10);
  }
  // A single lit pixel at (r, c) gives map(r − u + H, c − v + H) = w(u, v): the cross-correlation
  // orientation of the student's kernels.
  sim::RArray point = sim::RArray::Zero(28, 28);
  point(14, 14) = 1.0;
  const auto m = kernel_maps(truth, point);
  EXPECT_NEAR(m[0](14 - 0 + 5, 14 - 3 + 5) - truth.stray[0] - truth.offset[0], truth.kernels(0, 0 * 11 + 3), 1e-12);
  std::vector<std::vector<sim::RArray>> short_maps = maps;
  short_maps.pop_back();
  EXPECT_THROW(fit_kernels(probes, short_maps, 7, 2, 0.0), std::invalid_argument);
}

// Moderate profile, camera noise on: the measured kernels correlate with the as-built PSF's kernels (cut
// the same way) clearly better than the designed ones do.
TEST(MeasuredKernels, OnTheModerateBenchTheyAreTheAsBuiltKernels) {
  DeployedRig d("moderate");
  std::mt19937_64 rng(5);
  const KernelProbeOptions o;
  auto mk = measure_kernels(d.capture(), d.calibration, d.design, d.deployment, o, rng);
  ASSERT_TRUE(mk) << mk.error().message;
  const auto& k = mk.value();
  const int s = 7 + 2 * o.margin_px;
  EXPECT_EQ(k.support, s);
  EXPECT_EQ(k.frames, (o.points + o.random_patterns) * o.frames + 4) << "+ two pairs of single frames (photon transfer)";
  const distill::MatD truth = psf_kernels(d.rig->bench.as_built_psf(), d.deployment.layout, s, d.deployment.kernel_scale);
  const double measured_vs_truth = mean_correlation(k.kernels, truth), design_vs_truth = mean_correlation(k.design, truth);
  std::printf("moderate: measured vs as-built %.3f, design vs as-built %.3f, measured vs design %.3f\n", measured_vs_truth,
              design_vs_truth, k.mean_correlation);
  EXPECT_GT(measured_vs_truth, 0.95);
  EXPECT_GT(measured_vs_truth, design_vs_truth + 0.05);
  EXPECT_NEAR(k.mean_correlation, mean_correlation(k.kernels, k.design), 1e-9);
}

// Ideal bench: the measured kernels are the design's kernels (Deployment::kernels in the central k × k).
TEST(MeasuredKernels, OnAnIdealBenchTheyAreTheDesignKernels) {
  DeployedRig d("ideal");
  std::mt19937_64 rng(6);
  auto mk = measure_kernels(d.capture(), d.calibration, d.design, d.deployment, KernelProbeOptions{}, rng);
  ASSERT_TRUE(mk) << mk.error().message;
  const auto& k = mk.value();
  std::printf("ideal: measured vs design %.4f\n", k.mean_correlation);
  EXPECT_GT(k.mean_correlation, 0.98);
  const distill::MatD central = psf_kernels(d.design.psf(), d.deployment.layout, 7, d.deployment.kernel_scale);
  EXPECT_LT((central - d.deployment.kernels).cwiseAbs().maxCoeff(), 1e-12 * d.deployment.kernels.cwiseAbs().maxCoeff() + 1e-15)
      << "psf_kernels at s = k is what the deployment holds";
}
