// Segmentation: the upsampling and non-negative optical layers, the per-pixel losses, mean IoU, the
// last-layer NTK and its matching loss (finite differences and the exact NTK), composed scenes and the
// job's config rules.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "gradcheck.hpp"
#include "hilo/distill/ntk.hpp"
#include "hilo/distill/segmentation.hpp"

using namespace hilo::distill;
using hilo::distill::testing::check_layer;
using hilo::distill::testing::numeric_grad;
using hilo::distill::testing::randn;
using hilo::distill::testing::rel_err;

namespace {
LabelMap random_labels(Eigen::Index rows, Eigen::Index cols, int classes, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> u(0, classes - 1);
  return LabelMap::NullaryExpr(rows, cols, [&] { return static_cast<std::uint8_t>(u(rng)); });
}

// Non-trivial batch-norm statistics, so that evaluation mode is not the identity.
void set_running_stats(Sequential<double>& net) {
  for (std::size_t i = 0; i < net.size(); ++i)
    for (auto& b : net.layer(i).buffers()) b.value->setConstant(b.name == "running_var" ? 1.7 : 0.1);
}
}  // namespace

TEST(Upsample2d, CopiesEachPixelIntoItsBlockAndItsGradientMatchesFiniteDifferences) {
  Upsample2d<double> up(Shape{2, 2, 3}, 2);
  EXPECT_EQ(up.out_shape(), (Shape{2, 4, 6}));
  MatD x(1, 12);
  for (int i = 0; i < 12; ++i) x(0, i) = i;
  const MatD y = up.forward(x, false);
  for (int c = 0; c < 2; ++c)
    for (int r = 0; r < 4; ++r)
      for (int q = 0; q < 6; ++q) EXPECT_EQ(y(0, (c * 4 + r) * 6 + q), x(0, (c * 2 + r / 2) * 3 + q / 2));
  std::mt19937_64 rng(1);
  Upsample2d<double> up3(Shape{2, 3, 2}, 3);
  check_layer(up3, randn(3, 12, rng), true, rng);
  EXPECT_THROW(Upsample2d<double>(Shape{1, 2, 2}, 0), std::invalid_argument);
}

TEST(NonnegConv2d, KernelsAreSoftplusOfRhoAndGradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(2);
  NonnegConv2d<double> conv(Shape{2, 5, 5}, 3, 3, 1);
  EXPECT_EQ(conv.out_shape(), (Shape{3, 5, 5}));
  *conv.params()[0].value = randn(3, 18, rng, 2.0);
  const MatD k = conv.kernels();
  EXPECT_GT(k.minCoeff(), 0.0);
  const MatD rho = *conv.params()[0].value;
  for (Eigen::Index i = 0; i < k.size(); ++i) EXPECT_NEAR(k.data()[i], std::log1p(std::exp(rho.data()[i])), 1e-12);
  // The forward is the plain convolution with κ as its weight.
  Conv2d<double> plain(Shape{2, 5, 5}, 3, 3, 1);
  plain.weight() = k;
  const MatD x = randn(4, 50, rng);
  EXPECT_LT(rel_err(conv.forward(x, false), plain.forward(x, false)), 1e-14);
  check_layer(conv, x, true, rng);
}

TEST(NonnegConv2d, ExactNtkOfANetworkWithTheOpticalLayerMatchesTheFullJacobian) {
  std::mt19937_64 rng(3);
  Sequential<double> net(Shape{1, 6, 6});
  net.nonneg_conv(2, 3, 1).avgpool(2).batchnorm().relu().linear(3);
  init_he(net, rng);
  init_optical(net, rng);
  set_running_stats(net);
  const MatD x = randn(5, 36, rng);
  EXPECT_LT(rel_err(ntk_exact(net, x), ntk_naive(net, x)), 1e-10);
}

TEST(InitOptical, DrawsFlatKernelsWithTheStatedRipple) {
  std::mt19937_64 rng(4);
  Sequential<double> net(Shape{1, 8, 8});
  net.nonneg_conv(4, 5, 2);
  init_optical(net, rng, 0.5);
  const auto& conv = dynamic_cast<NonnegConv2d<double>&>(net.layer(0));
  const MatD k = conv.kernels();
  const double mean = 1.0 / 25;
  EXPECT_GE(k.minCoeff(), 0.5 * mean - 1e-12);
  EXPECT_LE(k.maxCoeff(), 1.5 * mean + 1e-12);
  EXPECT_NEAR(k.mean(), mean, 0.1 * mean);
  EXPECT_THROW(init_optical(net, rng, 1.0), std::invalid_argument);
}

TEST(PixelLosses, CrossEntropyIsTheClassifierLossOfEveryPixelAndItsGradientMatches) {
  std::mt19937_64 rng(5);
  const int B = 3, C = 4, HW = 6;
  MatD z = randn(B, C * HW, rng, 2.0);
  const LabelMap y = random_labels(B, HW, C, rng);
  // The same logits as one row per pixel, for the classification loss.
  MatD rows(B * HW, C);
  std::vector<int> labels;
  for (int b = 0; b < B; ++b)
    for (int q = 0; q < HW; ++q) {
      for (int c = 0; c < C; ++c) rows(b * HW + q, c) = z(b, c * HW + q);
      labels.push_back(y(b, q));
    }
  MatD d;
  EXPECT_NEAR(pixel_cross_entropy(z, y, C, &d), softmax_cross_entropy(rows, labels, static_cast<MatD*>(nullptr)), 1e-12);
  EXPECT_LT(rel_err(d, numeric_grad(z, [&] { return pixel_cross_entropy(z, y, C, static_cast<MatD*>(nullptr)); })), 1e-6);
  EXPECT_THROW(pixel_cross_entropy(z, random_labels(B, HW + 1, C, rng), C, static_cast<MatD*>(nullptr)), std::invalid_argument);
}

TEST(PixelLosses, SoftLabelKdGradientMatchesFiniteDifferencesAndAlphaZeroIsTheTaskLoss) {
  std::mt19937_64 rng(6);
  const int B = 2, C = 3, HW = 5;
  MatD s = randn(B, C * HW, rng, 2.0);
  const MatD t = randn(B, C * HW, rng, 2.0);
  const LabelMap y = random_labels(B, HW, C, rng);
  for (double alpha : {0.0, 0.4, 1.0}) {
    MatD d;
    const double v = pixel_kd(s, t, y, C, 2.5, alpha, &d);
    EXPECT_LT(rel_err(d, numeric_grad(s, [&] { return pixel_kd(s, t, y, C, 2.5, alpha, static_cast<MatD*>(nullptr)); })), 1e-6)
        << "alpha " << alpha;
    if (alpha == 0.0) EXPECT_NEAR(v, pixel_cross_entropy(s, y, C, static_cast<MatD*>(nullptr)), 1e-12);
  }
  // KL vanishes when the student is the teacher.
  EXPECT_NEAR(pixel_kd(t, t, y, C, 2.0, 1.0, static_cast<MatD*>(nullptr)), 0.0, 1e-12);
  EXPECT_THROW(pixel_kd(s, t, y, C, 0.0, 0.5, static_cast<MatD*>(nullptr)), std::invalid_argument);
}

TEST(MeanIou, CountsIntersectionOverUnionPerClassAndLeavesEmptyClassesOut) {
  LabelMap truth(1, 5), pred(1, 5);
  truth << 0, 0, 1, 1, 2;
  pred << 0, 1, 1, 1, 2;
  const IouReport r = mean_iou(pred, truth, 4);  // class 3 appears nowhere
  EXPECT_DOUBLE_EQ(r.per_class[0], 0.5);
  EXPECT_DOUBLE_EQ(r.per_class[1], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.per_class[2], 1.0);
  EXPECT_TRUE(std::isnan(r.per_class[3]));
  EXPECT_DOUBLE_EQ(r.mean_iou, (0.5 + 2.0 / 3.0 + 1.0) / 3.0);
  EXPECT_DOUBLE_EQ(r.pixel_accuracy, 0.8);
  EXPECT_THROW(mean_iou(pred, LabelMap::Zero(1, 4), 4), std::invalid_argument);
  MatD z(1, 8);  // 2 classes × 4 pixels
  z << 0, 5, 0, 2, 1, 0, 3, 1;
  LabelMap a(1, 4);
  a << 1, 0, 1, 0;
  EXPECT_EQ(pixel_argmax(z, 2), a);
}

TEST(HeadNtk, IsTheExactNtkOfTheFinalOneByOneConvolution) {
  std::mt19937_64 rng(7);
  const int F = 3, H = 4, W = 5, C = 4, B = 6;
  Sequential<double> head(Shape{F, H, W});
  head.conv(C, 1, 0);
  init_he(head, rng);
  const MatD h = randn(B, F * H * W, rng);
  EXPECT_LT(rel_err(head_ntk(h, C, H * W), ntk_exact(head, h)), 1e-12);
}

TEST(HeadNtkLoss, GradientReachesEveryStudentParameterAndMatchesFiniteDifferences) {
  std::mt19937_64 rng(8);
  const int C = 4;
  Sequential<double> student(Shape{1, 8, 8}), teacher(Shape{1, 8, 8});
  student.nonneg_conv(2, 3, 1).avgpool(2).batchnorm().conv(3, 3, 1).relu().upsample(2).conv(C, 1, 0);
  teacher.conv(3, 3, 1).relu().conv(C, 1, 0);
  init_he(student, rng);
  init_optical(student, rng);
  init_he(teacher, rng);
  set_running_stats(student);
  const MatD x = randn(6, 64, rng).cwiseAbs();
  for (const char* kind : {"cka", "alignment", "mse"}) {
    HeadNtkLoss<double> loss(student, teacher, x, KernelDistance{kind}, 0.7, 6);
    student.zero_grad();
    loss.value(x, true);
    int checked = 0;
    for (const auto& p : student.params()) {
      const MatD g = *p.grad;
      if (p.name.rfind("6.", 0) == 0) {  // the last layer (index 6): Θ does not depend on it
        EXPECT_EQ(g.squaredNorm(), 0.0) << kind << " " << p.name;
        continue;
      }
      const MatD n = numeric_grad(*p.value, [&] { return 0.7 * loss.value(x, false); });
      EXPECT_LT(rel_err(g, n), 1e-5) << kind << " " << p.name;
      EXPECT_GT(g.norm(), 0.0) << kind << " " << p.name;
      ++checked;
    }
    EXPECT_EQ(checked, 5) << kind;  // rho, γ, β, conv weight and bias
  }
  Sequential<double> no_head(Shape{1, 8, 8});
  no_head.conv(C, 3, 1);
  EXPECT_THROW(HeadNtkLoss<double>(student, no_head, x, KernelDistance{"cka"}, 1.0, 4), std::invalid_argument);
  EXPECT_THROW(HeadNtkLoss<double>(student, teacher, x, KernelDistance{"cka"}, 1.0, 1), std::invalid_argument);
}

namespace {
// Digits of side n with one bright square each at a random place, labels 0..9 in turn.
Dataset square_digits(int count, int n, std::mt19937_64& rng) {
  Dataset d;
  d.shape = {1, n, n};
  d.x = Mat<float>::Zero(count, n * n);
  std::uniform_int_distribution<int> pos(0, n / 2);
  std::uniform_real_distribution<float> v(0.0f, 1.0f);
  for (int i = 0; i < count; ++i) {
    d.y.push_back(i % 10);
    const int r = pos(rng), c = pos(rng);
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) d.x(i, y * n + x) = (y >= r && y < r + n / 2 && x >= c && x < c + n / 2) ? 1.0f : 0.1f * v(rng);
  }
  return d;
}
}  // namespace

TEST(Scenes, OneDigitOnItsOwnCanvasIsItsAreaAverageLabelledByTheThreshold) {
  Dataset d;
  d.shape = {1, 4, 4};
  d.x = Mat<float>(1, 16);
  for (int i = 0; i < 16; ++i) d.x(0, i) = static_cast<float>(i) / 16.0f;
  d.y = {7};
  SceneOptions o;
  o.canvas = 2;
  o.digit_size = 2;
  o.min_digits = o.max_digits = 1;
  o.threshold = 0.5;
  std::mt19937_64 rng(9);
  const Scenes s = compose_scenes(d, 3, o, rng);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s.shape, (Shape{1, 2, 2}));
  // 2×2 blocks of i/16: top-left (0+1+4+5)/64, top-right (2+3+6+7)/64, …
  const float expect[4] = {10.0f / 64, 18.0f / 64, 42.0f / 64, 50.0f / 64};
  for (int i = 0; i < 3; ++i)
    for (int q = 0; q < 4; ++q) {
      EXPECT_FLOAT_EQ(s.x(i, q), expect[q]);
      EXPECT_EQ(s.labels(i, q), expect[q] >= 0.5f ? 7 : kSegBackground);
    }
}

TEST(Scenes, EveryDigitPixelCarriesItsClassAndNothingElseDoes) {
  std::mt19937_64 rng(10);
  const Dataset d = square_digits(40, 28, rng);
  SceneOptions o;  // 32 × 32, digits of 14, 1..3 of them
  const Scenes s = compose_scenes(d, 50, o, rng);
  int digits_seen = 0;
  for (int i = 0; i < 50; ++i) {
    std::vector<int> classes;
    for (int q = 0; q < 32 * 32; ++q) {
      const int l = s.labels(i, q);
      EXPECT_EQ(l != kSegBackground, s.x(i, q) >= o.threshold) << "scene " << i << " pixel " << q;
      if (l != kSegBackground && std::find(classes.begin(), classes.end(), l) == classes.end()) classes.push_back(l);
    }
    EXPECT_GE(classes.size(), 1u);
    EXPECT_LE(classes.size(), 3u);
    digits_seen += static_cast<int>(classes.size());
  }
  EXPECT_GT(digits_seen, 50);  // more than one digit per scene on average
  // Rules.
  Dataset rgb = d;
  rgb.shape = {3, 28, 28};
  EXPECT_THROW(compose_scenes(rgb, 1, o, rng), std::invalid_argument);
  SceneOptions bad = o;
  bad.digit_size = 12;  // does not divide 28
  EXPECT_THROW(compose_scenes(d, 1, bad, rng), std::invalid_argument);
  bad = o;
  bad.max_digits = 0;
  EXPECT_THROW(compose_scenes(d, 1, bad, rng), std::invalid_argument);
  EXPECT_THROW(compose_scenes(Dataset{}, 1, o, rng), std::invalid_argument);
}

TEST(SegmentJob, ConfigRulesNameTheKey) {
  auto rule = [](nlohmann::json j) -> std::string {
    try {
      SegmentJob::from_json(j);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(rule({{"command", "segment"}, {"data", {{"name", "mnist"}}}}), "");
  EXPECT_NE(rule({{"methods", {"none", "shared"}}}).find("unknown method 'shared'"), std::string::npos);
  EXPECT_NE(rule({{"kd", {{"alpha", 1.5}}}}).find("kd.alpha"), std::string::npos);
  EXPECT_NE(rule({{"ntkd", {{"distance", "l1"}}}}).find("ntkd.distance"), std::string::npos);
  EXPECT_NE(rule({{"student", {{"kernel_size", 4}}}}).find("kernel_size"), std::string::npos);
  EXPECT_NE(rule({{"scenes", {{"threshold", 1.0}}}}).find("threshold"), std::string::npos);
  EXPECT_NE(rule({{"command", "distill"}}).find("command"), std::string::npos);
  EXPECT_NE(rule({{"sceens", {}}}).find("sceens"), std::string::npos);
  EXPECT_THROW(make_seg_teacher(SegTeacherArch{{8, 8, 8}}, Shape{1, 36, 36}, kSegClasses), std::invalid_argument);
  EXPECT_THROW(make_seg_student(SegStudentArch{8, 7, 3, 16}, Shape{1, 32, 32}, kSegClasses), std::invalid_argument);
}
