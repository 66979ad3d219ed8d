// The digital twin (calibration/twin.hpp): on images it never saw, its features are far closer to the
// measured ones than the design model's on a moderate bench and at the noise level on an ideal one; its
// noise model matches the bench's spread; the twin modes' training set mixes rows as documented.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <random>
#include <stdexcept>

#include "twin_rig.hpp"
#include "hilo/calibration/twin.hpp"

using namespace hilo;
using namespace hilo::calibration;
using hilo::calibration::testing::DeployedRig;
using hilo::calibration::testing::sparse_images;

namespace {

struct Residuals {
  std::optional<Twin> twin;
  double twin_error = 0, design_error = 0;
};

// Kernels measured through the bench, then 24 new images measured and predicted by both models.
Residuals residuals(DeployedRig& d) {
  std::mt19937_64 rng(7);
  auto mk = measure_kernels(d.capture(), d.calibration, d.design, d.deployment, KernelProbeOptions{}, rng);
  if (!mk) throw std::runtime_error(mk.error().message);
  Residuals r;
  const TwinNoise noise = twin_noise(mk.value(), d.calibration, 1);
  r.twin.emplace(std::move(mk.value()), d.design, d.deployment, noise, d.student);
  const distill::Mat<float> x = sparse_images(24, rng);
  auto m = measure_features(*d.probe, d.calibration, ExtractOptions{}, d.deployment, d.student, x, 1);
  if (!m) throw std::runtime_error(m.error().message);
  const distill::MatD design = design_features(d.design, d.deployment, d.student, x), twin = r.twin->features(x);
  r.twin_error = relative_rms(twin, m.value());
  r.design_error = relative_rms(design, m.value());
  EXPECT_LT((r.twin->features(x, design) - twin).cwiseAbs().maxCoeff(), 1e-9 * twin.cwiseAbs().maxCoeff())
      << "the twin from given design features differs from the twin's own";
  return r;
}

}  // namespace

TEST(Twin, PredictsUnseenImagesOfTheModerateBenchFarBetterThanTheDesign) {
  DeployedRig d("moderate");
  const auto r = residuals(d);
  std::printf("moderate: twin %.4f, design %.4f\n", r.twin_error, r.design_error);
  EXPECT_LT(r.twin_error, 0.5 * r.design_error);
}

// Ideal bench (no sensor noise, only the ADC's rounding): both models at that level.
TEST(Twin, OnAnIdealBenchBothAreAtTheNoiseLevel) {
  DeployedRig d("ideal");
  const auto r = residuals(d);
  std::printf("ideal: twin %.4f, design %.4f\n", r.twin_error, r.design_error);
  EXPECT_LT(r.design_error, 0.05);
  EXPECT_LT(r.twin_error, 0.05);
}

// The noise model found by the photon transfer gives the spread of the moderate bench's features: the
// same images measured twice (difference / √2) against a twin draw minus its expectation.
TEST(Twin, NoiseModelMatchesTheBenchsRepeatability) {
  DeployedRig d("moderate");
  const auto r = residuals(d);
  std::mt19937_64 rng(9);
  const distill::Mat<float> x = sparse_images(16, rng);
  auto m1 = measure_features(*d.probe, d.calibration, ExtractOptions{}, d.deployment, d.student, x, 1);
  auto m2 = measure_features(*d.probe, d.calibration, ExtractOptions{}, d.deployment, d.student, x, 1);
  ASSERT_TRUE(m1 && m2);
  const double bench_noise = (m1.value() - m2.value()).norm() / std::sqrt(2.0);
  const double twin_noise = (r.twin->sample_features(x, rng) - r.twin->features(x)).norm();
  std::printf("moderate: feature noise bench %.4g, twin model %.4g (read var %.3g counts², shot slope %.3g)\n", bench_noise,
              twin_noise, r.twin->noise().read_var, r.twin->noise().shot_slope);
  EXPECT_NEAR(twin_noise / bench_noise, 1.0, 0.3);
  EXPECT_NEAR(r.twin->noise().shot_slope, 1.0 / d.opts.camera.gain_e_per_count, 0.05) << "shot noise: 1 count per e⁻/count";
}

// The pipeline keeps the design model's maps of the training split once for every profile
// (design_maps); the twin's features from them are its own, bit for bit, with the same noise draws.
TEST(Twin, FeaturesFromKeptDesignMapsEqualItsOwnBitForBit) {
  DeployedRig d("moderate");
  std::mt19937_64 rng(7);
  auto mk = measure_kernels(d.capture(), d.calibration, d.design, d.deployment, KernelProbeOptions{}, rng);
  ASSERT_TRUE(mk) << mk.error().message;
  const TwinNoise noise = twin_noise(mk.value(), d.calibration, 1);
  const Twin twin(std::move(mk.value()), d.design, d.deployment, noise, d.student);
  const distill::Mat<float> x = sparse_images(12, rng);
  const distill::MatD maps = design_maps(d.design, d.deployment, d.student, x);
  ASSERT_EQ(maps.rows(), 12);
  EXPECT_TRUE(design_features(d.design, d.deployment, d.student, x) == d.student.features_from_maps(maps));
  std::mt19937_64 r1(3), r2(3);
  const distill::MatD own = twin.sample_features(x, r1), kept = twin.features_from_design_maps(x, maps, &r2);
  EXPECT_TRUE(own == kept) << "max difference " << (own - kept).cwiseAbs().maxCoeff();
  EXPECT_EQ(r1(), r2()) << "the same number of draws";
  EXPECT_TRUE(twin.features(x) == twin.features_from_design_maps(x, maps, nullptr));
  EXPECT_FALSE(own == twin.features(x)) << "the noise model drew nothing";
  EXPECT_THROW(twin.features_from_design_maps(x, maps.topRows(11), nullptr), std::invalid_argument);
  EXPECT_THROW(twin.features_from_design_maps(x, maps.leftCols(maps.cols() - 1), nullptr), std::invalid_argument);
}

TEST(TwinTrainingSet, MeasuredRowsRepeatedAndTwinRowsShiftedByTheMeanResidual) {
  distill::Dataset train;
  train.x = distill::Mat<float>::Zero(5, 784);
  for (int i = 0; i < 5; ++i) train.x(i, 0) = float(i);
  train.y = {0, 1, 2, 3, 4};
  distill::MatD twin = distill::MatD::Zero(5, 2);
  distill::MatD measured(2, 2);
  measured << 1, 2, 3, 4;  // rows of samples 1 and 3, whose twin rows are 0: mean residual (2, 3)
  TwinMix mix;
  mix.measured_weight = 3;
  const auto set = twin_training_set(twin, train, measured, {1, 3}, mix);
  ASSERT_EQ(set.features.rows(), 3 + 2 * 3);
  ASSERT_EQ(set.samples.y.size(), 9u);
  EXPECT_EQ(set.samples.y[0], 0);
  EXPECT_EQ(set.samples.y[1], 2);
  EXPECT_EQ(set.samples.y[2], 4);
  EXPECT_DOUBLE_EQ(set.features(0, 0), 2.0);
  EXPECT_DOUBLE_EQ(set.features(2, 1), 3.0);
  for (int w = 0; w < 3; ++w) {
    EXPECT_EQ(set.samples.y[std::size_t(3 + 2 * w)], 1);
    EXPECT_DOUBLE_EQ(set.features(3 + 2 * w, 1), 2.0);
    EXPECT_FLOAT_EQ(set.samples.x(4 + 2 * w, 0), 3.0f);
  }
  mix.residual_correction = false;
  EXPECT_DOUBLE_EQ(twin_training_set(twin, train, measured, {1, 3}, mix).features(0, 0), 0.0);
  EXPECT_THROW(twin_training_set(twin, train, measured, {1, 7}, mix), std::invalid_argument);
  EXPECT_THROW(twin_training_set(twin, train, measured, {1}, mix), std::invalid_argument);
  mix.measured_weight = 0;
  EXPECT_EQ(mix.validate(), "compensation.twin.measured_weight must be in [1, 1000], got 0");
  EXPECT_THROW(twin_training_set(twin, train, measured, {1, 3}, mix), std::invalid_argument);
  EXPECT_THROW(relative_rms(distill::MatD::Zero(2, 2), distill::MatD::Zero(2, 2)), std::invalid_argument);
  EXPECT_THROW(relative_rms(distill::MatD::Zero(2, 2), distill::MatD::Ones(3, 2)), std::invalid_argument);
}

// The twin NTKD's groups over training images (shared by every re-fit): each training sample's row in a
// twin set (a measured one: its first copy) holds that sample's image, so the teacher's Θ_T of a group
// of images is Θ_T of the mapped rows.
TEST(TwinTrainingSet, SampleRowsNameEachSamplesRowAndMapTheNtkGroups) {
  distill::Dataset train;
  train.x = distill::Mat<float>::Zero(5, 784);
  for (int i = 0; i < 5; ++i) train.x(i, 0) = float(i);
  train.y = {0, 1, 2, 3, 4};
  const distill::MatD twin = distill::MatD::Zero(5, 2), measured = distill::MatD::Ones(2, 2);
  TwinMix mix;
  mix.measured_weight = 3;
  std::vector<int> rows;
  const auto set = twin_training_set(twin, train, measured, {3, 1}, mix, &rows);
  ASSERT_EQ(rows, (std::vector<int>{0, 4, 1, 3, 2})) << "twin rows first in order, then the measured copies (3, 1, 3, 1, ...)";
  for (int i = 0; i < 5; ++i) EXPECT_EQ(set.samples.x(rows[std::size_t(i)], 0), float(i));
  NtkGroups g;
  g.rows = {{0, 3}, {4, 1, 2}};
  g.teacher = {distill::MatD::Identity(2, 2), 2 * distill::MatD::Identity(3, 3)};
  const NtkGroups m = map_ntk_groups(g, rows);
  EXPECT_EQ(m.rows, (std::vector<std::vector<int>>{{0, 3}, {2, 4, 1}}));
  EXPECT_TRUE(m.teacher[1] == g.teacher[1]);
  g.rows[0][1] = 5;
  EXPECT_THROW(map_ntk_groups(g, rows), std::invalid_argument);
}
