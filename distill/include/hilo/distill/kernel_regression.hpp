#pragma once
// NTK kernel-regression estimate of the accuracy a front-end design can reach, before building it.
//
// The front-end is frozen (its features a(x) are computed once, e.g. OpticalStudent::features for a
// candidate set of kernels or a random-PSF design); the backend is replaced by an infinitely wide
// fully connected ReLU network with L hidden layers in the NTK parameterisation (weights and biases
// ~ N(0,1), each layer's input scaled by √(2/width), the first by 1/√D, no output bias), whose kernel
// is analytic (arc-cosine recursion, Cho & Saul 2009; Jacot et al. 2018; Arora et al. 2019):
//   Σ₁(a,a') = a·a'/D + 1,   Θ₁ = Σ₁
//   for h = 1..L, with n_h = √(Σ_h(a,a) Σ_h(a',a')) and θ_h = arccos(Σ_h(a,a') / n_h):
//     E_h  = n_h · (sin θ_h + (π − θ_h) cos θ_h) / π            (= 2·E[relu(u) relu(u')], u ~ N(0, Σ_h))
//     Ė_h  = (π − θ_h) / π                                     (= 2·E[1(u>0) 1(u'>0)])
//     h < L:  Σ_{h+1} = E_h + 1,  Θ_{h+1} = Σ_{h+1} + Θ_h · Ė_h
//     h = L:  Θ = E_L + Θ_L · Ė_L
//   On the diagonal θ = 0, so Σ_{h+1}(a,a) = Σ_h(a,a) + 1.
// L = 1 is the one-hidden-layer backend of the student's shape.
//
// Features are standardised before the kernel: the front-end estimate uses the student's own fixed
// standardisation â = (a − μ) ⊙ σ⁻¹ (OpticalStudent::fit_feature_norm, the one the trained student's
// backend sees), so the estimate does not depend on the units of a: scaling every feature by a
// constant c > 0 leaves â, and hence the estimate, unchanged (for feature_norm "feature" or "map").
//
// Prediction: ŷ = Θ(X_test, X_train)(Θ(X_train, X_train) + λI)⁻¹ Y_train, Y one-hot minus 1/C, class =
// argmax. λ = r · trace(Θ_train)/n with r chosen on the validation split from `ratios`: the largest r
// that reaches the highest validation accuracy. On MNIST-like data the accuracy is flat for r → 0
// (the noise-free labels favour near-interpolation) and falls for large r, so the largest tied r is
// the interior end of that plateau rather than the grid's edge. One symmetric eigendecomposition of
// Θ_train serves every λ. Cost O(n³) time, O(n²) memory (n = 3000: ~70 MB). A chosen r at either end
// of the grid is reported in `warning`: the optimum may lie outside it.
// This is an estimate for an infinitely wide backend trained to convergence with squared loss; finite
// students trained with cross-entropy for a few epochs usually land below it.
//
// The reference (the NTKD paper's "infinitely wide network on raw pixels"): the same regression with
// no front-end at all, on the pixels standardised by the per-pixel mean and one global scale (the RMS
// of the centred training pixels), so it too is unit-free. Per-pixel scales are not used: border pixels
// that are almost always 0 would be amplified by orders of magnitude.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/data.hpp"
#include "hilo/distill/student.hpp"

namespace hilo::distill {

// Θ between the rows of A (n × D) and B (m × D) for `depth` hidden layers (formula above). Throws
// std::invalid_argument when the column counts differ or depth < 1.
MatD relu_ntk(const MatD& A, const MatD& B, int depth = 1);

struct KernelRegressionOptions {
  // r = λ / (trace Θ_train / n), strictly increasing; decades from 1e-6 to 1e2 by default.
  std::vector<double> ratios{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0};
  int depth = 1;  // hidden layers L of the infinitely wide backend, [1, 10]
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KernelRegressionOptions, ratios, depth)

struct KernelRegressionResult {
  double ratio = 0;             // chosen r = λ / (trace Θ_train / n)
  double lambda = 0;            // chosen λ
  double trace_per_sample = 0;  // trace Θ_train / n
  double val_acc = 0;           // at the chosen λ
  double test_acc = 0;
  std::vector<double> val_acc_per_ratio;
  std::vector<double> val_mse_per_ratio;  // ‖ŷ − Y‖² / n_val per ratio
  std::string warning;  // "" when r is interior to the grid, else which edge it landed on
  nlohmann::json to_json() const;
};

// Kernel regression on given features (used as they are: standardise first).
KernelRegressionResult ntk_regression(const MatD& train_a, const std::vector<int>& train_y, const MatD& val_a,
                                      const std::vector<int>& val_y, const MatD& test_a, const std::vector<int>& test_y,
                                      int classes, const KernelRegressionOptions& o = {});

// The student's current front-end (no noise): features of the first n_train training images and all
// validation/test images, standardised by the student's μ, σ⁻¹ (fit them first for a front-end that
// was never trained, as training does: fit_feature_norm on the first kFeatureNormSamples training
// images), then ntk_regression. The student is not changed.
KernelRegressionResult estimate_front_end(OpticalStudent& s, const Splits& data, int n_train,
                                          const KernelRegressionOptions& o = {});

// The reference on raw pixels (see above); μ and the scale from the first n_train training images.
KernelRegressionResult estimate_reference(const Splits& data, int n_train, const KernelRegressionOptions& o = {});

}  // namespace hilo::distill
