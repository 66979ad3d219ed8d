// Deferral to the teacher (distill/deferral.hpp): the confidence is the largest softmax entry, a rate's
// threshold defers exactly that share of the held-out inputs, and the combined accuracy runs from the
// model's (rate 0) to the teacher's (rate 1).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "hilo/distill/deferral.hpp"

using namespace hilo::distill;

TEST(Deferral, ConfidenceIsTheLargestSoftmaxEntry) {
  MatD z(2, 3);
  z << 1.0, 2.0, 0.5, -3.0, -3.0, -3.0;
  const auto c = confidence(z);
  const double e = std::exp(2.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(0.5));
  EXPECT_NEAR(c[0], e, 1e-15);
  EXPECT_NEAR(c[1], 1.0 / 3.0, 1e-15);
}

TEST(Deferral, ThresholdsDeferTheRatesShareOfTheHeldOutInputsAndTheCurveRunsFromModelToTeacher) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> g(0.0, 1.0);
  const int n = 200, C = 10;
  MatD model(n, C), teacher = MatD::Zero(n, C);
  std::vector<int> labels;
  for (int i = 0; i < n; ++i) {
    labels.push_back(i % C);
    for (int k = 0; k < C; ++k) model(i, k) = g(rng);
    // The model is right, and confident, on every other input; the teacher is always right.
    if (i % 2 == 0) model(i, labels.back()) += 6.0;
    teacher(i, labels.back()) = 5.0;
  }
  const std::vector<double> rates{0.0, 0.1, 0.25, 0.5, 1.0};
  const auto t = deferral_thresholds(model, rates);
  const auto curve = deferral_curve(model, teacher, labels, rates, t);
  ASSERT_EQ(curve.size(), rates.size());
  for (std::size_t j = 0; j < rates.size(); ++j) {
    EXPECT_DOUBLE_EQ(curve[j].rate, rates[j]) << "no ties: exactly the target share is deferred on the held-out set";
    if (j > 0) EXPECT_GE(curve[j].accuracy, curve[j - 1].accuracy) << "the least confident go first";
  }
  const double model_alone = accuracy(model, labels);
  EXPECT_DOUBLE_EQ(curve[0].accuracy, model_alone);
  EXPECT_DOUBLE_EQ(curve[0].threshold, 0.0);
  EXPECT_DOUBLE_EQ(curve.back().accuracy, 1.0);
  EXPECT_DOUBLE_EQ(curve.back().teacher_accuracy, 1.0);
  // At 50 % the deferred half is the unconfident half, where the model was (mostly) wrong.
  EXPECT_GT(curve[3].accuracy, model_alone + 0.3);
  EXPECT_EQ(deferred(model, t[1]).size(), std::size_t(n));

  EXPECT_THROW(deferral_thresholds(model, {1.5}), std::invalid_argument);
  EXPECT_THROW(deferral_curve(model, teacher.topRows(10), labels, rates, t), std::invalid_argument);
  EXPECT_THROW(deferral_curve(model, teacher, labels, rates, {0.5}), std::invalid_argument);
  EXPECT_THROW(confidence(MatD::Zero(3, 1)), std::invalid_argument);
  MatD bad = model;
  bad(0, 0) = std::nan("");
  EXPECT_THROW(confidence(bad), std::invalid_argument);
}

TEST(Deferral, DecideDefersBelowTheThresholdAndTakesTheTeachersClassThen) {
  MatD model(4, 3), teacher = MatD::Zero(4, 3);
  model << 5.0, 0.0, 0.0,   // confident, class 0
      0.1, 0.0, 0.0,        // unsure, class 0
      0.0, 0.0, 4.0,        // confident, class 2
      0.0, 0.2, 0.1;        // unsure, class 1
  for (int i = 0; i < 4; ++i) teacher(i, (i + 1) % 3) = 3.0;  // the teacher says (i + 1) mod 3
  const auto c = confidence(model);
  const double tau = 0.5;
  const auto d = decide(model, &teacher, tau);
  ASSERT_EQ(d.size(), 4u);
  const int want_model[] = {0, 0, 2, 1};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(d[i].model_class, want_model[i]);
    EXPECT_DOUBLE_EQ(d[i].confidence, c[std::size_t(i)]);
    EXPECT_EQ(d[i].deferred, c[std::size_t(i)] < tau);
    EXPECT_EQ(d[i].teacher_class, (i + 1) % 3);
    EXPECT_EQ(d[i].decision(), d[i].deferred ? (i + 1) % 3 : want_model[i]);
  }
  EXPECT_FALSE(d[0].deferred);
  EXPECT_TRUE(d[1].deferred);
  // Without the teacher's logits a deferred input has no class.
  const auto blind = decide(model, nullptr, tau);
  EXPECT_EQ(blind[1].teacher_class, -1);
  EXPECT_EQ(blind[1].decision(), -1);
  EXPECT_EQ(blind[0].decision(), 0);
  // τ = 0 defers nothing; deferred() is the same rule.
  for (const auto& x : decide(model, &teacher, 0.0)) EXPECT_FALSE(x.deferred);
  const auto flags = deferred(model, tau);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(flags[std::size_t(i)], d[std::size_t(i)].deferred);
  EXPECT_THROW(decide(model, &teacher, -0.1), std::invalid_argument);
  const MatD narrow = teacher.leftCols(2);
  EXPECT_THROW(decide(model, &narrow, tau), std::invalid_argument);
}
