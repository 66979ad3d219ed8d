// The float32 student path (BasicOpticalStudent<float>, distill.precision "float32") against the double
// student it is converted from: logits, parameter gradients, the closed-form NTK and its second-order
// gradient, the conversion both ways, training through train_student, and the option's rules.
#include <gtest/gtest.h>

#include <random>

#include "gradcheck.hpp"
#include "student_fixture.hpp"
#include "hilo/distill/losses.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/distill/student_jobs.hpp"

using namespace hilo::distill;
using hilo::distill::testing::randn;
using hilo::distill::testing::rel_err;

namespace {
struct Case {
  std::string param, nonneg, signing;
};
const std::vector<Case> kCases{{"intensity", "softplus", "pairs"}, {"intensity", "square", "bias"}, {"phase", "softplus", "pairs"}};

MatD images(int n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  return MatD::NullaryExpr(n, 36, [&] { return u(rng); });
}

// A tiny double student with a non-trivial standardisation and ReLU masks that vary across samples.
OpticalStudent make(const Case& c, std::mt19937_64& rng) {
  OpticalStudent s(hilo::distill::testing::tiny_student(c.param, c.nonneg, c.signing), Shape{1, 6, 6}, 3);
  s.init(rng);
  s.fit_feature_norm(s.features(images(16, rng)));
  s.w1() *= 3.0;
  s.b1() = MatD::Constant(1, 6, 0.02);
  return s;
}

template <typename T>
std::vector<MatD> grads(BasicOpticalStudent<T>& s) {
  std::vector<MatD> g;
  for (auto& p : s.params()) g.push_back(p.grad->template cast<double>());
  return g;
}

// Float has a unit roundoff of 6e-8; these sums run over at most a few hundred terms.
constexpr double kFloatTol = 1e-4;
}  // namespace

TEST(FloatStudent, LogitsAndGradientsAgreeWithTheDoublePath) {
  for (const auto& c : kCases) {
    std::mt19937_64 rng(21);
    OpticalStudent d = make(c, rng);
    BasicOpticalStudent<float> f = d.as<float>();
    const MatD x = images(5, rng);
    const MatD R = randn(5, 3, rng);
    d.zero_grad();
    f.zero_grad();
    const MatD ld = d.forward(x, false), lf = f.forward(x.cast<float>(), false).cast<double>();
    EXPECT_LT(rel_err(lf, ld), kFloatTol) << c.param << " logits";
    d.backward(R);
    f.backward(R.cast<float>());
    const auto gd = grads(d), gf = grads(f);
    const auto names = d.params();
    for (std::size_t i = 0; i < gd.size(); ++i) EXPECT_LT(rel_err(gf[i], gd[i]), kFloatTol) << c.param << " " << names[i].name;
  }
}

TEST(FloatStudent, NtkAndItsGradientAgreeWithTheDoublePath) {
  for (const auto& c : kCases)
    for (ParamSet set : {ParamSet::all, ParamSet::optical, ParamSet::backend}) {
      std::mt19937_64 rng(22);
      OpticalStudent d = make(c, rng);
      BasicOpticalStudent<float> f = d.as<float>();
      const MatD x = images(4, rng);
      const MatD G = randn(4, 4, rng);
      d.zero_grad();
      f.zero_grad();
      const MatD td = d.ntk(x, set), tf = f.ntk(x.cast<float>(), set);
      EXPECT_LT(rel_err(tf, td), kFloatTol) << c.param << " " << to_string(set);
      d.ntk_backward(G);
      f.ntk_backward(G);
      const auto gd = grads(d), gf = grads(f);
      for (std::size_t i = 0; i < gd.size(); ++i)
        if (gd[i].norm() > 0) EXPECT_LT(rel_err(gf[i], gd[i]), 10 * kFloatTol) << c.param << " " << to_string(set) << " " << i;
    }
}

TEST(FloatStudent, ConversionKeepsEveryParameterWithinFloatRounding) {
  std::mt19937_64 rng(23);
  for (const auto& c : kCases) {
    OpticalStudent d = make(c, rng);
    const OpticalStudent back = d.as<float>().as<double>();
    EXPECT_LT(rel_err(back.kernels(), d.kernels()), 1e-6) << c.param;
    EXPECT_LT(rel_err(back.feature_offset(), d.feature_offset()), 1e-6) << c.param;
    EXPECT_LT(rel_err(back.feature_scale(), d.feature_scale()), 1e-6) << c.param;
    OpticalStudent b2 = d.as<float>().as<double>();
    EXPECT_LT(rel_err(b2.w1(), d.w1()), 1e-6) << c.param;
    EXPECT_GT((b2.w1() - d.w1()).norm(), 0.0) << c.param << ": the float copy rounds";
  }
}


TEST(FloatStudent, TrainsThroughTrainStudentLikeTheDoublePathAndReturnsADoubleModel) {
  std::mt19937_64 rng(24);
  const Splits s = hilo::distill::testing::toy_splits(256, rng);
  Sequential<float> teacher = hilo::distill::testing::toy_teacher(s, rng);
  StudentOptions so;
  so.kernels = 4;
  so.kernel_size = 3;
  so.hidden = 16;
  TrainOptions t;
  t.epochs = 3;
  t.batch_size = 32;
  t.optimizer.lr = 1e-2;
  for (const std::string run : {"none", "kd", "ntkd", "ntkd+kd"}) {
    const std::string method = run == "ntkd+kd" ? "ntkd" : run;
    DistillOptions d;
    d.method = method;
    d.ntk_with_kd = run == "ntkd+kd";
    d.ntk_subbatch = 8;
    d.ntk_every = 2;
    OpticalStudent s64(so, s.train.shape, 2), s32(so, s.train.shape, 2);
    const History h64 = train_student(s64, teacher, s, d, t, {});
    d.precision = "float32";
    const History h32 = train_student(s32, teacher, s, d, t, {});
    // The teacher is untrained (random logits): its soft labels pull KD students away from the labels,
    // so the absolute bound holds for the students that learn from labels alone.
    if (d.method != "kd" && !d.ntk_with_kd) EXPECT_GT(h32.test_acc, 0.9) << run;
    else EXPECT_GT(h32.test_acc, 0.8) << run;
    EXPECT_NEAR(h32.test_acc, h64.test_acc, 0.05) << run;
    // Same initialisation and draws: the two runs differ by float rounding only, so the losses stay close.
    EXPECT_NEAR(h32.epochs.back().loss, h64.epochs.back().loss, 0.05 * h64.epochs.back().loss + 1e-3) << run;
    if (method == "ntkd") EXPECT_TRUE(h32.epochs.back().extra.contains("ntk_distance"));
  }
}

TEST(FloatStudent, PrecisionOptionRefusesUnknownValuesAndMethodsItDoesNotRun) {
  DistillOptions d;
  EXPECT_EQ(d.validate(), "");
  d.precision = "float16";
  EXPECT_NE(d.validate().find("distill.precision must be \"float64\" or \"float32\", got \"float16\""), std::string::npos);
  d.precision = "float32";
  EXPECT_EQ(d.validate(), "");
  for (const std::string m : {"gd", "shared"}) {
    d.method = m;
    EXPECT_NE(d.validate().find("distill.precision \"float32\" runs methods none, kd and ntkd; got method \"" + m),
              std::string::npos) << m;
  }
  for (const std::string m : {"none", "kd", "ntkd"}) {
    d.method = m;
    d.ntk_with_kd = m == "ntkd";
    EXPECT_EQ(d.validate(), "") << m;
  }
  // The job reader names the key.
  const nlohmann::json j = {{"command", "distill"}, {"data", {{"name", "mnist"}}}, {"distill", {{"precision", "half"}}}};
  try {
    (void)DistillJob::from_json(j);
    ADD_FAILURE() << "a bad precision was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("distill.precision"), std::string::npos) << e.what();
  }
}

TEST(FloatStudent, KdLossOnFloatLogitsEqualsTheDoubleLossToFloatRounding) {
  std::mt19937_64 rng(31);
  MatD teacher_logits(8, 4), logits(5, 4);
  std::normal_distribution<double> n(0.0, 2.0);
  for (Eigen::Index i = 0; i < teacher_logits.size(); ++i) teacher_logits.data()[i] = n(rng);
  for (Eigen::Index i = 0; i < logits.size(); ++i) logits.data()[i] = n(rng);
  const std::vector<int> rows{3, 0, 7, 5, 1}, y{2, 0, 3, 1, 1};
  const Mat<float> logits_f = logits.cast<float>();
  KdLoss kd64(teacher_logits, 3.0, 0.3, 0.6);
  BasicKdLoss<float> kd32(teacher_logits, 3.0, 0.3, 0.6);
  StepTerms<double> t64;
  StepTerms<float> t32;
  kd64.add_output_terms(Batch<double>{rows, y, logits, 0, rng}, t64);
  kd32.add_output_terms(Batch<float>{rows, y, logits_f, 0, rng}, t32);
  EXPECT_NEAR(t32.loss, t64.loss, 1e-6 * std::abs(t64.loss));
  ASSERT_EQ(t32.dlogits.rows(), 5);
  EXPECT_LT((t32.dlogits.cast<double>() - t64.dlogits).cwiseAbs().maxCoeff(), 1e-6 * t64.dlogits.cwiseAbs().maxCoeff());
}
