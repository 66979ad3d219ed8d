// The optical student on multi-channel (RGB) input: per-channel optics, each channel imaged through the
// same kernels (student.hpp). Its features are the single-channel student's features of each channel,
// concatenated; its parameter gradients, its closed-form NTK and the NTK's gradient match finite
// differences and a brute-force Jacobian.
#include <gtest/gtest.h>

#include "gradcheck.hpp"
#include "student_fixture.hpp"
#include "hilo/distill/losses.hpp"
#include "hilo/distill/student.hpp"

using namespace hilo::distill;
using namespace hilo::distill::testing;

namespace {

StudentOptions tiny(const std::string& param, const std::string& signing) { return tiny_student(param, "softplus", signing); }

MatD rgb_images(int n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  return MatD::NullaryExpr(n, 3 * 16, [&] { return u(rng); });
}

OpticalStudent make(const std::string& param, const std::string& signing, std::mt19937_64& rng) {
  OpticalStudent s(tiny(param, signing), Shape{3, 4, 4}, 3);
  s.init(rng);
  s.fit_feature_norm(s.features(rgb_images(16, rng)));
  s.w1() *= 3.0;
  s.b1() = MatD::Constant(1, 6, 0.02);
  return s;
}

const std::vector<std::pair<std::string, std::string>> kCases{{"intensity", "pairs"}, {"intensity", "bias"}, {"phase", "pairs"}};

}  // namespace

TEST(RgbStudent, FeaturesAreEachChannelsGreyFeaturesConcatenated) {
  for (const auto& [param, signing] : kCases) {
    std::mt19937_64 rng(3);
    StudentOptions o = tiny(param, signing);
    OpticalStudent rgb(o, Shape{3, 4, 4}, 3), grey(o, Shape{1, 4, 4}, 3);
    rgb.init(rng);
    grey.raw_optical() = rgb.raw_optical();
    const MatD x = rgb_images(2, rng);
    const MatD a = rgb.features(x);
    const int per = grey.feature_dim();
    ASSERT_EQ(rgb.feature_dim(), 3 * per);
    EXPECT_EQ(rgb.feature_maps(), 3 * grey.feature_maps());
    for (int c = 0; c < 3; ++c) {
      const MatD ac = grey.features(x.middleCols(c * 16, 16));
      EXPECT_LT((a.middleCols(c * per, per) - ac).norm(), 1e-12 * (1 + ac.norm())) << param << "/" << signing << " channel " << c;
    }
    EXPECT_TRUE(rgb.kernels().isApprox(grey.kernels()));
  }
}

TEST(RgbStudent, BackwardMatchesFiniteDifferences) {
  for (const auto& [param, signing] : kCases) {
    std::mt19937_64 rng(11);
    OpticalStudent s = make(param, signing, rng);
    const MatD x = rgb_images(3, rng);
    expect_backward_matches_fd(s, x, {0, 2, 1}, param + "/" + signing);
  }
}

TEST(RgbStudent, ClosedFormNtkMatchesPerSampleGradients) {
  for (const auto& [param, signing] : kCases) {
    if (param == "phase") continue;  // the phase student's NTK is in kernel space, not in its parameters
    std::mt19937_64 rng(13);
    OpticalStudent s = make(param, signing, rng);
    const MatD x = rgb_images(4, rng);
    for (ParamSet set : {ParamSet::all, ParamSet::optical}) {
      const MatD closed = s.ntk(x, set);
      // Θ_ij = Σ_c ∂f_c(x_i)/∂θ · ∂f_c(x_j)/∂θ from one backward per (sample, class).
      std::vector<std::vector<Eigen::VectorXd>> g(4);
      for (int i = 0; i < 4; ++i)
        for (int c = 0; c < s.classes(); ++c) {
          s.zero_grad();
          s.forward(x.row(i), false);
          MatD onehot = MatD::Zero(1, s.classes());
          onehot(0, c) = 1;
          s.backward(onehot);
          Eigen::VectorXd v(s.num_params(set));
          Eigen::Index off = 0;
          for (auto& p : s.params(set)) {
            v.segment(off, p.grad->size()) = Eigen::Map<const Eigen::VectorXd>(p.grad->data(), p.grad->size());
            off += p.grad->size();
          }
          g[i].push_back(v);
        }
      MatD brute(4, 4);
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          double t = 0;
          for (int c = 0; c < s.classes(); ++c) t += g[i][c].dot(g[j][c]);
          brute(i, j) = t;
        }
      EXPECT_LT(rel_err(closed, brute), 1e-10) << param << "/" << signing << " " << to_string(set);
    }
  }
}

TEST(RgbStudent, NtkParameterGradientMatchesFiniteDifferences) {
  for (const auto& [param, signing] : kCases)
    for (ParamSet set : {ParamSet::all, ParamSet::optical}) {
      std::mt19937_64 rng(14);
      OpticalStudent s = make(param, signing, rng);
      const MatD x = rgb_images(4, rng);
      const MatD G = randn(4, 4, rng);
      auto objective = [&] { return s.ntk(x, set).cwiseProduct(G).sum(); };
      s.zero_grad();
      s.ntk(x, set);
      s.ntk_backward(G);
      expect_grads_match_fd(s.params(), objective, param + "/" + signing + " " + to_string(set));
    }
}

TEST(RgbStudent, ModelFileKeepsTheChannelsAndAugmentIsRefused) {
  std::mt19937_64 rng(5);
  OpticalStudent s = make("intensity", "pairs", rng);
  OpticalStudent back = OpticalStudent::from_model(s.to_model({}));
  EXPECT_EQ(back.in_shape(), (Shape{3, 4, 4}));
  const MatD x = rgb_images(2, rng);
  EXPECT_TRUE(back.forward(x, false).isApprox(s.forward(x, false)));
  StudentOptions o = tiny("intensity", "pairs");
  o.augment.enabled = true;
  try {
    OpticalStudent bad(o, Shape{3, 4, 4}, 3);
    ADD_FAILURE() << "augment accepted on RGB input";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("single-channel"), std::string::npos) << e.what();
  }
}
