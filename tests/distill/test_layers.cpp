// Layers, losses, optimisers and the digital NTK: analytic gradients against finite differences,
// exact NTK against the full Jacobian.
#include <gtest/gtest.h>

#include <random>

#include "gradcheck.hpp"
#include "hilo/distill/layers.hpp"
#include "hilo/distill/ntk.hpp"
#include "hilo/distill/optim.hpp"

using namespace hilo::distill;
using hilo::distill::testing::check_layer;
using hilo::distill::testing::numeric_grad;
using hilo::distill::testing::randn;
using hilo::distill::testing::rel_err;


TEST(Conv2d, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(1);
  for (int pad : {0, 1, 2}) {
    Conv2d<double> c(Shape{2, 6, 5}, 3, 3, pad);
    c.weight() = randn(3, 18, rng);
    c.bias() = randn(1, 3, rng);
    check_layer(c, randn(3, 60, rng), true, rng);
  }
}

TEST(Linear, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(2);
  Linear<double> l(7, 4);
  l.weight() = randn(4, 7, rng);
  l.bias() = randn(1, 4, rng);
  check_layer(l, randn(5, 7, rng), true, rng);
}

TEST(ReLU, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(3);
  ReLU<double> r(Shape{2, 3, 3});
  check_layer(r, randn(4, 18, rng), true, rng);
}

TEST(Pool2d, MaxAndAverageBackwardMatchFiniteDifferences) {
  std::mt19937_64 rng(4);
  Pool2d<double> mx(Shape{2, 4, 6}, 2, Pool2d<double>::Kind::max);
  check_layer(mx, randn(3, 48, rng), true, rng);
  Pool2d<double> av(Shape{2, 4, 6}, 2, Pool2d<double>::Kind::avg);
  check_layer(av, randn(3, 48, rng), true, rng);
}

TEST(Pool2d, RejectsWindowThatDoesNotDivide) {
  EXPECT_THROW(Pool2d<double>(Shape{1, 5, 4}, 2, Pool2d<double>::Kind::max), std::invalid_argument);
}

TEST(BatchNorm, TrainAndEvalBackwardMatchFiniteDifferences) {
  std::mt19937_64 rng(5);
  BatchNorm<double> bn(Shape{3, 2, 2});
  bn.params()[0].value->setConstant(1.3);
  bn.params()[1].value->setConstant(-0.2);
  check_layer(bn, randn(5, 12, rng, 2.0), true, rng);
  check_layer(bn, randn(5, 12, rng, 2.0), false, rng);
}

TEST(SoftmaxCrossEntropy, GradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(6);
  MatD z = randn(4, 5, rng, 2.0);
  const std::vector<int> y{0, 3, 4, 1};
  MatD dz;
  softmax_cross_entropy(z, y, &dz);
  EXPECT_LT(rel_err(dz, numeric_grad(z, [&] { return softmax_cross_entropy<double>(z, y, nullptr); })), 1e-6);
}

namespace {
Sequential<double> small_teacher(std::mt19937_64& rng) {
  Sequential<double> net(Shape{1, 6, 6});
  net.conv(3, 3, 1).batchnorm().relu().maxpool(2).conv(4, 3, 1).relu().avgpool(3).linear(5).batchnorm().relu().linear(3);
  init_he(net, rng);
  // Non-trivial batch-norm state so evaluation mode is not the identity.
  for (std::size_t i = 0; i < net.size(); ++i)
    for (auto& b : net.layer(i).buffers()) b.value->setConstant(b.name == "running_var" ? 1.7 : 0.1);
  return net;
}
}  // namespace

TEST(Sequential, WholeNetworkGradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(7);
  Sequential<double> net = small_teacher(rng);
  const MatD x = randn(4, 36, rng);
  const std::vector<int> y{0, 1, 2, 1};
  auto loss = [&] { return softmax_cross_entropy<double>(net.forward(x, true), y, nullptr); };
  net.zero_grad();
  MatD dz;
  softmax_cross_entropy(net.forward(x, true), y, &dz);
  net.backward(dz);
  for (auto& p : net.params()) {
    const MatD g = *p.grad;
    const MatD n = numeric_grad(*p.value, loss);
    // Biases feeding a training-mode batch norm have an exactly zero gradient (the normalisation
    // removes any constant shift); compare those in absolute terms.
    if (g.norm() < 1e-12 && n.norm() < 1e-8) continue;
    EXPECT_LT(rel_err(g, n), 1e-4) << p.name;
  }
}

// The convergence rule copies state() at the best epoch and writes it back at the end: that must bring
// back the evaluation-mode function, batch-norm running statistics included.
TEST(Sequential, RestoringStateRestoresTheEvaluationFunction) {
  std::mt19937_64 rng(8);
  Sequential<double> net = small_teacher(rng);
  const MatD x = randn(6, 36, rng);
  const MatD before = net.forward(x, false);
  std::vector<MatD> saved;
  for (auto* m : net.state()) saved.push_back(*m);
  // A training forward moves the running statistics; a step moves the weights.
  net.forward(randn(6, 36, rng, 3.0), true);
  for (auto& p : net.params()) *p.value += randn(p.value->rows(), p.value->cols(), rng, 0.1);
  ASSERT_GT((net.forward(x, false) - before).norm(), 1e-3);
  auto s = net.state();
  ASSERT_EQ(s.size(), saved.size());
  for (std::size_t i = 0; i < s.size(); ++i) *s[i] = saved[i];
  EXPECT_LT((net.forward(x, false) - before).norm(), 1e-12);
}

TEST(Optimizer, AdamAndSgdMinimiseAQuadratic) {
  for (std::string kind : {"adam", "sgd"}) {
    MatD w = MatD::Constant(1, 3, 5.0), g = MatD::Zero(1, 3);
    OptimizerOptions o;
    o.kind = kind;
    o.lr = kind == "adam" ? 0.1 : 0.05;
    Optimizer<double> opt({{"w", &w, &g}}, o);
    const MatD target = (MatD(1, 3) << 1.0, -2.0, 0.5).finished();
    for (int i = 0; i < 500; ++i) {
      g = 2.0 * (w - target);
      opt.step();
    }
    EXPECT_LT((w - target).norm(), 1e-2) << kind;
  }
}

TEST(Optimizer, FirstAdamStepHasLengthLr) {
  MatD w = MatD::Zero(1, 2), g = (MatD(1, 2) << 3.0, -0.01).finished();
  OptimizerOptions o;
  o.lr = 0.01;
  Optimizer<double> opt({{"w", &w, &g}}, o);
  opt.step();  // m̂ = g, v̂ = g² → step = lr·sign(g)
  EXPECT_NEAR(w(0, 0), -0.01, 1e-6);
  EXPECT_NEAR(w(0, 1), 0.01, 1e-5);
}

TEST(Optimizer, ValidateNamesTheRule) {
  OptimizerOptions o;
  o.lr = -1;
  {
    const std::string e = o.validate();
    EXPECT_NE(e.find("optimizer.lr"), std::string::npos);
  }
}

TEST(Ntk, ExactMatchesFullJacobianProduct) {
  std::mt19937_64 rng(8);
  Sequential<double> net = small_teacher(rng);
  const MatD x = randn(5, 36, rng);
  const MatD exact = ntk_exact(net, x), naive = ntk_naive(net, x);
  EXPECT_LT(rel_err(exact, naive), 1e-10);
  EXPECT_LT(rel_err(exact, exact.transpose()), 1e-12);
  EXPECT_GT(exact.diagonal().minCoeff(), 0.0);
}

// The formula ntk_exact used before the input-only backward: one full backward (parameter gradients
// included) per class c with dy = e_c on every row, each layer's Gram product added on the way down.
MatD ntk_per_class(Sequential<double>& net, const MatD& x) {
  const MatD out = net.forward(x, false);
  MatD theta = MatD::Zero(x.rows(), x.rows());
  for (Eigen::Index c = 0; c < out.cols(); ++c) {
    MatD g = MatD::Zero(x.rows(), out.cols());
    g.col(c).setOnes();
    for (std::size_t l = net.size(); l-- > 0;) {
      net.layer(l).ntk_accumulate(g, theta);
      if (l > 0) g = net.layer(l).backward(g);
    }
  }
  net.zero_grad();
  return theta;
}

TEST(Ntk, InputOnlyBackwardMatchesThePerClassFormulaWithFullBackward) {
  std::mt19937_64 rng(10);
  Sequential<double> net = small_teacher(rng);
  for (int B : {5, 50}) {
    const MatD x = randn(B, 36, rng);
    const MatD exact = ntk_exact(net, x), old = ntk_per_class(net, x);
    EXPECT_LT(rel_err(exact, old), 1e-12) << "batch " << B;
    EXPECT_LT(rel_err(exact, ntk_naive(net, x)), 1e-10) << "batch " << B;
    for (auto& p : net.params()) EXPECT_EQ(p.grad->squaredNorm(), 0.0) << p.name;
  }
}

TEST(Layers, BackwardInputIsTheInputGradientOfEachStackAndTouchesNoParameter) {
  std::mt19937_64 rng(11);
  Sequential<double> net = small_teacher(rng);
  const int B = 3;
  const MatD x = randn(B, 36, rng);
  MatD h = x;
  for (std::size_t l = 0; l < net.size(); ++l) {
    Layer<double>& layer = net.layer(l);
    const MatD hin = h;
    h = layer.forward(hin, false);
    const MatD dy = randn(2 * B, h.cols(), rng);
    net.zero_grad();
    const MatD stacked = layer.backward_input(dy);
    for (auto& p : layer.params()) EXPECT_EQ(p.grad->squaredNorm(), 0.0) << layer.type() << " " << p.name;
    ASSERT_EQ(stacked.rows(), 2 * B);
    for (int s = 0; s < 2; ++s) {
      layer.forward(hin, false);
      const MatD one = layer.backward(dy.middleRows(s * B, B));
      EXPECT_LT(rel_err(stacked.middleRows(s * B, B), one), 1e-14) << layer.type() << " stack " << s;
    }
    // ntk_accumulate of the stacked cotangent: the sum of each stack's Gram products.
    MatD both = MatD::Zero(B, B), each = MatD::Zero(B, B);
    layer.forward(hin, false);
    layer.ntk_accumulate(dy, both);
    for (int s = 0; s < 2; ++s) layer.ntk_accumulate(dy.middleRows(s * B, B), each);
    EXPECT_LT((both - each).norm(), 1e-12 * (1 + each.norm())) << layer.type();
    EXPECT_THROW(layer.backward_input(randn(B + 1, h.cols(), rng)), std::logic_error) << layer.type();
  }
}

TEST(BatchNorm, BackwardInputRefusesATrainingModeForward) {
  std::mt19937_64 rng(12);
  BatchNorm<double> bn(Shape{2, 3, 3});
  bn.forward(randn(4, 18, rng), true);
  EXPECT_THROW(bn.backward_input(randn(4, 18, rng)), std::logic_error);
  bn.forward(randn(4, 18, rng), false);
  EXPECT_NO_THROW(bn.backward_input(randn(8, 18, rng)));
}

TEST(Ntk, ProbeEstimatorConvergesToExact) {
  std::mt19937_64 rng(9);
  Sequential<double> net = small_teacher(rng);
  const MatD x = randn(4, 36, rng);
  const MatD exact = ntk_exact(net, x);
  const MatD few = ntk_probe(net, x, 20, rng), many = ntk_probe(net, x, 2000, rng);
  // Relative standard error ~ √(2/R): 0.32 for 20 probes, 0.032 for 2000.
  EXPECT_LT(rel_err(many, exact), 0.1);
  EXPECT_GT(rel_err(few, exact), rel_err(many, exact) * 0.5);
}

TEST(KernelDistance, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(10);
  const MatD a = randn(5, 5, rng), b = randn(5, 5, rng);
  const MatD T = a * a.transpose() * 100.0;
  MatD S = b * b.transpose();
  for (std::string kind : {"mse", "trace_mse", "alignment", "cka"}) {
    KernelDistance d{kind};
    const MatD g = d.grad(T, S);
    EXPECT_LT(rel_err(g, numeric_grad(S, [&] { return d.value(T, S); })), 1e-6) << kind;
  }
  KernelDistance al{"alignment"};
  EXPECT_NEAR(al.value(T, 3.0 * T), 0.0, 1e-12);
  KernelDistance tm{"trace_mse"};
  EXPECT_NEAR(tm.value(T, 0.01 * T), 0.0, 1e-12);
  EXPECT_NE(KernelDistance{"l1"}.validate(), "");
}

// CKA against its definition with H built as a matrix, its gradient on several batch sizes, and what
// centring buys: a constant added to every entry of Θ_S moves the plain alignment, not CKA.
TEST(KernelDistance, CenteredAlignmentIsBlindToAConstantOffsetAndHasTheRightGradient) {
  std::mt19937_64 rng(12);
  const KernelDistance cka{"cka"}, al{"alignment"};
  for (int B : {3, 6, 11}) {
    const MatD a = randn(B, B, rng), b = randn(B, B, rng);
    const MatD T = a * a.transpose() * 50.0, S = b * b.transpose();
    const MatD H = MatD::Identity(B, B) - MatD::Constant(B, B, 1.0 / B);
    const MatD Tc = H * T * H, Sc = H * S * H;
    EXPECT_NEAR(cka.value(T, S), 1.0 - Tc.cwiseProduct(Sc).sum() / (Tc.norm() * Sc.norm()), 1e-12) << B;
    MatD Sv = S;
    EXPECT_LT(rel_err(cka.grad(T, S), numeric_grad(Sv, [&] { return cka.value(T, Sv); })), 1e-6) << B;
    const MatD offset = S + MatD::Constant(B, B, 10.0 * S.norm());
    EXPECT_NEAR(cka.value(T, offset), cka.value(T, S), 1e-9) << B;
    EXPECT_GT(std::abs(al.value(T, offset) - al.value(T, S)), 1e-3) << B;
    EXPECT_NEAR(cka.value(T, 0.01 * T + MatD::Constant(B, B, 3.0)), 0.0, 1e-12) << B;
    EXPECT_NEAR(cka.grad(T, S).rowwise().sum().norm(), 0.0, 1e-12) << "the gradient lies in the centred space";
  }
}
