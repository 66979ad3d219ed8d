#pragma once
// NTK kernel-regression estimate of the accuracy a front-end design can reach, before building it.
//
// The front-end is frozen (its features a(x) are computed once, e.g. OpticalStudent::features for a
// candidate set of kernels or a random-PSF design); the backend is replaced by an infinitely wide
// one-hidden-layer ReLU network in the NTK parameterisation, whose kernel is analytic (arc-cosine
// recursion, Jacot et al. 2018; Arora et al. 2019):
//   Σ⁰(a,a') = a·a'/D + 1                       (weights and bias ~ N(0,1), input scaled by 1/√D)
//   θ = arccos(Σ⁰(a,a') / √(Σ⁰(a,a) Σ⁰(a',a')))
//   Σ¹ = √(Σ⁰(a,a) Σ⁰(a',a')) · (sin θ + (π − θ) cos θ) / π        (= 2·E[relu(u) relu(u')])
//   Σ̇¹ = (π − θ) / π                                             (= 2·E[1(u>0) 1(u'>0)])
//   Θ = Σ¹ + Σ⁰ · Σ̇¹
// Prediction: ŷ = Θ(X_test, X_train)(Θ(X_train, X_train) + λI)⁻¹ Y_train, Y one-hot minus 1/C, class =
// argmax. λ = r · mean diag(Θ_train) with r chosen on the validation split from `ratios`. One symmetric
// eigendecomposition of Θ_train serves every λ. Cost O(N³) time, O(N²) memory (N = 3000: ~70 MB).
// This is an estimate for an infinitely wide backend trained to convergence with squared loss; finite
// students trained with cross-entropy for a few epochs usually land below it.
#include <vector>

#include "hilo/distill/data.hpp"
#include "hilo/distill/student.hpp"

namespace hilo::distill {

// Θ between the rows of A (n × D) and B (m × D).
MatD relu_ntk(const MatD& A, const MatD& B);

struct KernelRegressionOptions {
  std::vector<double> ratios{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};

struct KernelRegressionResult {
  double ratio = 0;      // chosen λ / mean diag Θ
  double val_acc = 0;    // at the chosen λ
  double test_acc = 0;
  std::vector<double> val_acc_per_ratio;
};

KernelRegressionResult ntk_regression(const MatD& train_a, const std::vector<int>& train_y, const MatD& val_a,
                                      const std::vector<int>& val_y, const MatD& test_a, const std::vector<int>& test_y,
                                      int classes, const KernelRegressionOptions& o = {});

// Convenience: features of the student's current front-end (no noise) for the first n_train training
// images and all validation/test images, then ntk_regression.
KernelRegressionResult estimate_front_end(OpticalStudent& s, const Splits& data, int n_train,
                                          const KernelRegressionOptions& o = {});

}  // namespace hilo::distill
