// The NTK kernel-regression estimate: the infinite-width ReLU NTK against closed forms, Gaussian
// quadrature and wide random networks of growing width; λ chosen inside the grid on a problem whose
// optimum is interior (and the edge warning when it is not); the estimate independent of feature units.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "gradcheck.hpp"
#include "hilo/distill/kernel_regression.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/distill/student_jobs.hpp"

using namespace hilo::distill;
using hilo::distill::testing::rel_err;

namespace {
MatD gaussian(Eigen::Index rows, Eigen::Index cols, std::mt19937_64& rng, double sd = 1.0) {
  std::normal_distribution<double> n(0.0, sd);
  return MatD::NullaryExpr(rows, cols, [&] { return n(rng); });
}

// Empirical NTK of one draw of the finite network the kernel describes: depth hidden layers of width m,
// u₁ = W₁a/√D + b₁, u_{h+1} = √(2/m)·W_{h+1} relu(u_h) + b_{h+1}, f = √(2/m)·v·relu(u_L), every weight
// and bias N(0,1). Θ(i,j) = Σ_params ∂f(a_i)/∂θ · ∂f(a_j)/∂θ, layer by layer (backprop per sample).
MatD empirical_ntk(const MatD& A, int depth, int m, std::mt19937_64& rng) {
  const Eigen::Index N = A.rows(), D = A.cols();
  const double c = std::sqrt(2.0 / m);
  std::vector<MatD> W, b, U, H;  // U[h], H[h]: N × m pre-activations and activations of hidden layer h
  W.push_back(gaussian(m, D, rng));
  b.push_back(gaussian(1, m, rng));
  for (int h = 1; h < depth; ++h) {
    W.push_back(gaussian(m, m, rng));
    b.push_back(gaussian(1, m, rng));
  }
  const MatD v = gaussian(1, m, rng);
  for (int h = 0; h < depth; ++h) {
    MatD u = h == 0 ? MatD(A * W[0].transpose() / std::sqrt(double(D))) : MatD(c * H.back() * W[h].transpose());
    u.rowwise() += b[h].row(0);
    U.push_back(u);
    H.push_back(u.cwiseMax(0.0));
  }
  MatD theta = c * c * H.back() * H.back().transpose();  // output weights v
  // δ_h = ∂f/∂u_h (N × m), from the top down.
  MatD delta = (U.back().array() > 0).cast<double>().rowwise() * (c * v.row(0).array());
  for (int h = depth - 1; h >= 0; --h) {
    const MatD in = h == 0 ? MatD(A * A.transpose() / double(D)) : MatD(c * c * H[h - 1] * H[h - 1].transpose());
    theta += (delta * delta.transpose()).cwiseProduct((in.array() + 1.0).matrix());  // W_h and b_h
    if (h > 0) delta = ((c * delta * W[h]).array() * (U[h - 1].array() > 0).cast<double>()).matrix();
  }
  return theta;
}
}  // namespace

TEST(KernelRegression, ReluNtkOnTheDiagonalIsTheClosedFormSum) {
  // θ = 0 on the diagonal: Σ_h(a,a) = s + h − 1 with s = |a|²/D + 1, so Θ = Σ_{h=1..L} (s + h − 1) + (s + L − 1).
  std::mt19937_64 rng(31);
  const MatD A = gaussian(3, 7, rng, 2.0);
  for (int L = 1; L <= 4; ++L) {
    const MatD K = relu_ntk(A, A, L);
    for (Eigen::Index i = 0; i < A.rows(); ++i) {
      const double s = A.row(i).squaredNorm() / 7.0 + 1.0;
      double expect = s + L - 1;
      for (int h = 1; h <= L; ++h) expect += s + h - 1;
      EXPECT_NEAR(K(i, i), expect, 1e-12 * expect) << "depth " << L;
    }
  }
}

TEST(KernelRegression, ReluNtkOfOneLayerMatchesGaussianQuadrature) {
  // Θ = 2·E[relu(u)relu(u')] + Σ₁(a,a')·2·P(u>0, u'>0), (u, u') ~ N(0, Σ₁), the expectations by a
  // midpoint rule over (z₁, z₂) ∈ [−8, 8]² (not through the arc-cosine closed form).
  std::mt19937_64 rng(32);
  const MatD A = gaussian(4, 5, rng, 1.5);
  const MatD K = relu_ntk(A, A, 1);
  const int n = 1200;
  const double lo = -8.0, dz = 16.0 / n;
  for (Eigen::Index i = 0; i < A.rows(); ++i)
    for (Eigen::Index j = i + 1; j < A.rows(); ++j) {
      const double sii = A.row(i).squaredNorm() / 5 + 1, sjj = A.row(j).squaredNorm() / 5 + 1;
      const double sij = A.row(i).dot(A.row(j)) / 5 + 1, rho = sij / std::sqrt(sii * sjj);
      double e_rr = 0, e_mm = 0;
      for (int p = 0; p < n; ++p)
        for (int q = 0; q < n; ++q) {
          const double z1 = lo + (p + 0.5) * dz, z2 = lo + (q + 0.5) * dz;
          const double w = std::exp(-0.5 * (z1 * z1 + z2 * z2)) / (2 * M_PI) * dz * dz;
          const double u = std::sqrt(sii) * z1, up = std::sqrt(sjj) * (rho * z1 + std::sqrt(1 - rho * rho) * z2);
          e_rr += w * std::max(u, 0.0) * std::max(up, 0.0);
          e_mm += w * (u > 0 && up > 0);
        }
      EXPECT_NEAR(K(i, j), 2 * e_rr + sij * 2 * e_mm, 2e-3 * K(i, j)) << i << "," << j;
    }
}

TEST(KernelRegression, WideNetworkNtkConvergesToTheAnalyticKernel) {
  // The relative error of one network's empirical NTK falls like 1/√m (measured for depth 2: 0.19, 0.09,
  // 0.06 at m = 128, 512, 2048; 0.031 at 4096). Its RMS over seeds must halve from m = 128 to 2048 and
  // end below 0.08; the kernels of plausible mistakes (no bias in the hidden layers, or Θ_h·Ė_h
  // dropped) lie 0.37 and 0.19 away from the right one at depth 2.
  std::mt19937_64 rng(33);
  const MatD A = gaussian(5, 6, rng);
  for (int depth : {1, 2}) {
    const MatD K = relu_ntk(A, A, depth);
    std::vector<double> err;
    for (int m : {128, 512, 2048}) {
      double e2 = 0;
      const int seeds = 6;
      for (int s = 0; s < seeds; ++s) e2 += std::pow(rel_err(empirical_ntk(A, depth, m, rng), K), 2) / seeds;
      err.push_back(std::sqrt(e2));
    }
    EXPECT_LT(err[2], err[0] / 2.0) << "depth " << depth << ": " << err[0] << " " << err[1] << " " << err[2];
    EXPECT_LT(err[2], 0.08) << "depth " << depth << ": " << err[0] << " " << err[1] << " " << err[2];
  }
}

namespace {
// Two classes in D dimensions, 85 % / 15 %, means ±0.9 apart along every axis, unit noise, and a
// fraction `flip` of the training labels flipped: λ → 0 interpolates the flipped labels; a large λ
// degenerates to the kernel-weighted class mean, which (the kernel's bias term being shared by all
// samples) favours the majority class.
void two_classes(int n, int D, double flip, std::mt19937_64& rng, MatD& a, std::vector<int>& y) {
  std::bernoulli_distribution minority(0.15), flipped(flip);
  a = gaussian(n, D, rng);
  y.assign(static_cast<std::size_t>(n), 0);
  for (int i = 0; i < n; ++i) {
    const int c = minority(rng);
    a.row(i).array() += c ? 0.45 : -0.45;
    y[static_cast<std::size_t>(i)] = flipped(rng) ? 1 - c : c;
  }
}
}  // namespace

TEST(KernelRegression, ChoosesAnInteriorRidgeAndWarnsAtAnEdge) {
  for (std::uint64_t seed : {41u, 42u, 43u}) {
    std::mt19937_64 rng(seed);
    MatD tr, va, te;
    std::vector<int> ytr, yv, yt;
    two_classes(400, 20, 0.2, rng, tr, ytr);
    two_classes(600, 20, 0.0, rng, va, yv);
    two_classes(600, 20, 0.0, rng, te, yt);
    const KernelRegressionOptions o;
    const auto r = ntk_regression(tr, ytr, va, yv, te, yt, 2, o);
    ASSERT_EQ(r.val_acc_per_ratio.size(), o.ratios.size());
    EXPECT_GT(r.ratio, o.ratios.front()) << "seed " << seed;
    EXPECT_LT(r.ratio, o.ratios.back()) << "seed " << seed;
    EXPECT_TRUE(r.warning.empty()) << r.warning;
    EXPECT_DOUBLE_EQ(r.lambda, r.ratio * r.trace_per_sample);
    // The interior choice beats both ends of the grid on validation by a margin, not by a tie.
    EXPECT_GT(r.val_acc, r.val_acc_per_ratio.front() + 0.02) << "seed " << seed;
    EXPECT_GT(r.val_acc, r.val_acc_per_ratio.back() + 0.02) << "seed " << seed;
    EXPECT_GT(r.test_acc, 0.85) << "seed " << seed;
    // A grid of ridges all too large (each predicts mostly the majority class): the choice lands on an
    // edge and the result says so.
    const auto edge = ntk_regression(tr, ytr, va, yv, te, yt, 2, {{1e2, 1e3, 1e4}, 1});
    EXPECT_TRUE(edge.ratio == 1e2 || edge.ratio == 1e4) << edge.ratio;
    EXPECT_NE(edge.warning.find(edge.ratio == 1e2 ? "smallest" : "largest"), std::string::npos) << edge.warning;
    EXPECT_LT(edge.val_acc, r.val_acc - 0.02);
  }
}

TEST(KernelRegression, RefusesBadInputWithTheRule) {
  MatD a = MatD::Ones(3, 2);
  const std::vector<int> y{0, 1, 0};
  auto msg = [&](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(msg([&] { relu_ntk(a, MatD::Ones(3, 3)); }), "relu_ntk: feature dimensions differ");
  EXPECT_EQ(msg([&] { relu_ntk(a, a, 0); }), "relu_ntk: depth must be >= 1, got 0");
  EXPECT_EQ(msg([&] { ntk_regression(a, {0, 1}, a, y, a, y, 2); }),
            "ntk_regression: each feature matrix needs one label per row");
  EXPECT_EQ(msg([&] { ntk_regression(a, {0, 1, 2}, a, y, a, y, 2); }), "ntk_regression: label 2 outside [0, 2)");
  a(1, 1) = std::nan("");
  EXPECT_EQ(msg([&] { ntk_regression(a, y, MatD::Ones(3, 2), y, MatD::Ones(3, 2), y, 2); }),
            "ntk_regression: features must be finite");
}

namespace {
// 16 × 16 images of three classes: a bright bar (horizontal, vertical, diagonal) at a random offset
// on noise, intensities in [0, 1] times `gain`.
Dataset bars(int n, double gain, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 0.3);
  std::uniform_int_distribution<int> pos(3, 12), cls(0, 2);
  Dataset d;
  d.shape = Shape{1, 16, 16};
  d.num_classes = 3;
  d.x.resize(n, 256);
  for (int i = 0; i < n; ++i) {
    const int c = cls(rng), p = pos(rng);
    d.y.push_back(c);
    for (int r = 0; r < 16; ++r)
      for (int q = 0; q < 16; ++q) {
        const bool on = c == 0 ? r == p : c == 1 ? q == p : (r - q == p - 8);
        d.x(i, r * 16 + q) = static_cast<float>(gain * (on ? 0.7 + u(rng) : u(rng)));
      }
  }
  return d;
}

Splits bar_splits(double gain) { return {bars(150, gain, 1), bars(100, gain, 2), bars(100, gain, 3)}; }

KernelRegressionResult estimate_with_fitted_norm(const Splits& d, const std::string& norm) {
  StudentOptions o;
  o.kernels = 4;
  o.kernel_size = 5;
  o.pool = 4;
  o.hidden = 8;
  o.feature_norm = norm;
  OpticalStudent s(o, d.train.shape, d.train.num_classes);
  std::mt19937_64 rng(7);
  s.init(rng);
  s.fit_feature_norm(student_features(s, d.train.x, kFeatureNormSamples));
  return estimate_front_end(s, d, 150);
}
}  // namespace

TEST(KernelRegression, EstimateDoesNotDependOnFeatureUnits) {
  // The front-end is linear in the image, so images × 37 give features × 37; standardised, the
  // estimate must not move. Without standardisation (feature_norm "none") it does, so this can fail.
  const Splits one = bar_splits(1.0), big = bar_splits(37.0);
  for (const std::string norm : {"feature", "map"}) {
    const auto a = estimate_with_fitted_norm(one, norm), b = estimate_with_fitted_norm(big, norm);
    EXPECT_EQ(a.val_acc_per_ratio, b.val_acc_per_ratio) << norm;
    for (std::size_t k = 0; k < a.val_mse_per_ratio.size(); ++k)
      EXPECT_NEAR(a.val_mse_per_ratio[k], b.val_mse_per_ratio[k], 1e-7 * a.val_mse_per_ratio[k]) << norm << " " << k;
    EXPECT_EQ(a.ratio, b.ratio);
    EXPECT_EQ(a.test_acc, b.test_acc);
    EXPECT_GT(a.test_acc, 0.6) << norm << ": the bars are separable by a few 5 × 5 kernels";
  }
  const auto raw1 = estimate_with_fitted_norm(one, "none"), raw37 = estimate_with_fitted_norm(big, "none");
  double moved = 0;
  for (std::size_t k = 0; k < raw1.val_mse_per_ratio.size(); ++k)
    moved = std::max(moved, std::abs(raw1.val_mse_per_ratio[k] - raw37.val_mse_per_ratio[k]) / raw1.val_mse_per_ratio[k]);
  EXPECT_GT(moved, 1e-3) << "unstandardised features: the estimate should depend on their units";
  // The raw-pixel reference standardises its pixels the same way.
  const auto r1 = estimate_reference(one, 150), r37 = estimate_reference(big, 150);
  EXPECT_EQ(r1.val_acc_per_ratio, r37.val_acc_per_ratio);
  EXPECT_EQ(r1.test_acc, r37.test_acc);
  EXPECT_GT(r1.test_acc, 0.6);
}
