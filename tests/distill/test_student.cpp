// The optical student: backward and camera noise against finite differences, the closed-form NTK
// against the brute-force Jacobian product, and the second-order NTK gradient against finite
// differences of Σ G ⊙ Θ_S; the estimate job's reader (the estimate itself: test_kernel_regression.cpp).
#include <gtest/gtest.h>

#include <random>

#include "gradcheck.hpp"
#include "student_fixture.hpp"
#include "hilo/distill/kernel_regression.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/distill/student_jobs.hpp"

using namespace hilo::distill;
using hilo::distill::testing::numeric_grad;
using hilo::distill::testing::rel_err;
using hilo::distill::testing::expect_grads_match_fd;

namespace {
StudentOptions tiny(const std::string& param, const std::string& nonneg, const std::string& signing) {
  return hilo::distill::testing::tiny_student(param, nonneg, signing);
}

struct Case {
  std::string param, nonneg, signing, norm = "feature";
};
const std::vector<Case> kCases{{"intensity", "softplus", "pairs"},
                               {"intensity", "square", "bias", "map"},
                               {"phase", "softplus", "pairs"}};

MatD images(int n, std::mt19937_64& rng, int channels = 1) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  return MatD::NullaryExpr(n, channels * 36, [&] { return u(rng); });
}

// A tiny student of 6 × 6 images with `channels` channels, initialised and prepared for the checks.
OpticalStudent prepared(const StudentOptions& o, int channels, std::mt19937_64& rng) {
  OpticalStudent s(o, Shape{channels, 6, 6}, 3);
  s.init(rng);
  // A non-trivial standardisation (offset and scale far from 0 and 1), so every gradient check runs
  // through it.
  s.fit_feature_norm(s.features(images(16, rng, channels)));
  // Larger backend weights and biases so that ReLU masks vary across samples.
  s.w1() *= 3.0;
  s.b1() = MatD::Constant(1, 6, 0.02);
  return s;
}

OpticalStudent make(const Case& c, std::mt19937_64& rng) {
  StudentOptions o = tiny(c.param, c.nonneg, c.signing);
  o.feature_norm = c.norm;
  return prepared(o, 1, rng);
}

std::string name(const Case& c) { return c.param + "/" + c.nonneg + "/" + c.signing; }
}  // namespace

TEST(OpticalStudent, BackwardMatchesFiniteDifferences) {
  for (const auto& c : kCases) {
    std::mt19937_64 rng(11);
    OpticalStudent s = make(c, rng);
    const MatD x = images(3, rng);
    hilo::distill::testing::expect_backward_matches_fd(s, x, {0, 2, 1}, name(c));
  }
}

// Physics-aware training's backward through the model: feature_grad is dL/da of the last
// backend_forward at features a from anywhere (here perturbed, as a bench's would be), and
// kernel_grad_at(x, dL/da) is dL/dκ of the model path κ → features(x; κ) → that backend — the chain the
// physics-aware step takes with a measured forward. Both against central differences.
TEST(OpticalStudent, PhysicsAwareGradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(5);
  OpticalStudent s = make(kCases[0], rng);
  const MatD x = images(4, rng);
  const MatD G = hilo::distill::testing::randn(4, 3, rng);  // dL/dlogits of L = Σ G ⊙ logits
  MatD a = s.features(x) + hilo::distill::testing::randn(4, s.feature_dim(), rng, 0.01);
  auto loss_at = [&](const MatD& features) { return (s.backend_forward(features).array() * G.array()).sum(); };
  (void)s.backend_forward(a);
  const MatD da = s.feature_grad(G);
  EXPECT_LT(rel_err(da, numeric_grad(a, [&] { return loss_at(a); })), 1e-6);
  (void)s.backend_forward(s.features(x));
  const MatD dk = s.kernel_grad_at(x, s.feature_grad(G));
  MatD kappa = s.kernels();
  const MatD fd = numeric_grad(kappa, [&] {
    s.set_kernels(kappa);
    return loss_at(s.features(x));
  });
  s.set_kernels(kappa);
  EXPECT_LT(rel_err(dk, fd), 1e-5);
  EXPECT_GT(dk.norm(), 0.0);
  EXPECT_THROW((void)s.kernel_grad_at(x, da.topRows(2)), std::invalid_argument);
  EXPECT_THROW((void)s.feature_grad(G.topRows(2)), std::invalid_argument);
}

namespace {
// A training forward (noise and/or augmentation drawn from a generator seeded with `seed` at every
// evaluation, so the draws are fixed) against finite differences of every parameter; `min_change`:
// how far the training logits must differ from the evaluation ones (the draws are really there).
void expect_training_backward_matches_fd(OpticalStudent& s, const MatD& x, const std::vector<int>& y, std::uint64_t seed,
                                         double min_change, const std::string& label) {
  auto loss = [&] {
    std::mt19937_64 draws(seed);
    return softmax_cross_entropy<double>(s.forward(x, true, &draws), y, nullptr);
  };
  std::mt19937_64 draws(seed);
  s.zero_grad();
  MatD dl;
  const MatD logits = s.forward(x, true, &draws);
  softmax_cross_entropy(logits, y, &dl);
  s.backward(dl);
  EXPECT_GT((logits - s.forward(x, false)).norm(), min_change) << label;
  expect_grads_match_fd(s.params(), loss, label);
}
}  // namespace

TEST(OpticalStudent, CameraNoiseBackwardMatchesFiniteDifferencesForFixedNoise) {
  std::mt19937_64 rng(12);
  StudentOptions o = tiny("intensity", "softplus", "pairs");
  o.noise.enabled = true;
  o.noise.photons_per_unit = 50;
  o.noise.read_noise = 0.05;
  OpticalStudent s(o, Shape{1, 6, 6}, 3);
  s.init(rng);
  s.fit_feature_norm(s.features(images(16, rng)));
  expect_training_backward_matches_fd(s, images(3, rng), {1, 0, 2}, 99, 1e-3, "noise");
}

TEST(OpticalStudent, NoiseWithoutGeneratorIsAnError) {
  StudentOptions o = tiny("intensity", "softplus", "pairs");
  o.noise.enabled = true;
  OpticalStudent s(o, Shape{1, 6, 6}, 3);
  std::mt19937_64 rng(1);
  s.init(rng);
  EXPECT_THROW(s.forward(images(2, rng), true, nullptr), std::invalid_argument);
}

namespace {
// Errors far above the defaults, so that every step of the jitter changes the features.
AugmentOptions strong_jitter() {
  AugmentOptions a;
  a.enabled = true;
  a.shift_px = 0.7;
  a.rotation_deg = 4.0;
  a.scale = 0.04;
  a.defocus_px = 0.8;
  a.gain = 0.1;
  a.dark = 0.01;
  return a;
}
}  // namespace

TEST(OpticalStudent, AugmentBackwardMatchesFiniteDifferencesForFixedDraws) {
  for (const auto& c : kCases) {
    for (const bool noise : {false, true}) {
      std::mt19937_64 rng(13);
      StudentOptions o = tiny(c.param, c.nonneg, c.signing);
      o.feature_norm = c.norm;
      o.augment = strong_jitter();
      o.noise.enabled = noise;
      o.noise.photons_per_unit = 50;
      OpticalStudent s(o, Shape{1, 6, 6}, 3);
      s.init(rng);
      s.fit_feature_norm(s.features(images(16, rng)));
      s.w1() *= 3.0;
      expect_training_backward_matches_fd(s, images(3, rng), {2, 0, 1}, 77, 1e-2,
                                          name(c) + (noise ? " + noise" : ""));
    }
  }
}

TEST(FrontEndJitter, TransposeIsExactAndEachErrorDoesWhatItSays) {
  hilo::sim::KernelTiling t;
  t.count = 4;
  t.kernel_size = 3;
  t.tile_columns = 2;
  t.gap = 1;
  t.object_rows = 12;
  t.object_cols = 12;
  const Eigen::Index HW = 144;
  std::mt19937_64 rng(21);
  std::normal_distribution<double> n(0.0, 1.0);
  // Transpose: ⟨apply(y) − apply(0), m⟩ = ⟨y, apply_t(m)⟩ for random y, m (apply(0) = the dark offsets).
  {
    FrontEndJitter j(strong_jitter(), t);
    j.draw(3, rng);
    const MatD y = MatD::NullaryExpr(3, 4 * HW, [&] { return n(rng); });
    const MatD m = MatD::NullaryExpr(3, 4 * HW, [&] { return n(rng); });
    const double lhs = (j.apply(y) - j.apply(MatD::Zero(3, 4 * HW))).cwiseProduct(m).sum();
    EXPECT_NEAR(lhs, y.cwiseProduct(j.apply_t(m)).sum(), 1e-10 * std::abs(lhs));
    EXPECT_THROW(j.apply(MatD::Zero(2, 4 * HW)), std::invalid_argument);  // 2 samples, 3 drawn
  }
  // A centred Gaussian blob per map: measure centroid, spread and sum of each jittered map.
  MatD blob(1, 4 * HW);
  for (int k = 0; k < 4; ++k)
    for (int r = 0; r < 12; ++r)
      for (int c = 0; c < 12; ++c)
        blob(0, k * HW + r * 12 + c) = std::exp(-0.5 * ((r - 6) * (r - 6) + (c - 6) * (c - 6)) / 1.5);
  struct Moments {
    double sum, x, y, var;
  };
  auto moments = [&](const MatD& m, int k) {
    Moments o{0, 0, 0, 0};
    for (int r = 0; r < 12; ++r)
      for (int c = 0; c < 12; ++c) {
        const double v = m(0, k * HW + r * 12 + c);
        o.sum += v, o.x += v * (c - 6), o.y += v * (r - 6), o.var += v * ((c - 6) * (c - 6) + (r - 6) * (r - 6));
      }
    o.x /= o.sum, o.y /= o.sum, o.var /= o.sum;
    return o;
  };
  const Moments ref = moments(blob, 0);
  auto only = [](auto set) {
    AugmentOptions a;
    a.enabled = true;
    a.shift_px = a.rotation_deg = a.scale = a.defocus_px = a.gain = a.dark = 0.0;
    set(a);
    return a;
  };
  {  // shift: every map moves by the drawn shift
    FrontEndJitter j(only([](AugmentOptions& a) { a.shift_px = 0.5; }), t);
    j.draw(1, rng);
    const auto& p = j.draws()[0].pose;
    const MatD out = j.apply(blob);
    for (int k = 0; k < 4; ++k) {
      EXPECT_NEAR(moments(out, k).x, p.shift_x_px, 0.01);
      EXPECT_NEAR(moments(out, k).y, p.shift_y_px, 0.01);
    }
  }
  {  // scale about the frame centre: map k moves by (s − 1)·c_k, c_k its centre's offset from the frame centre
    FrontEndJitter j(only([](AugmentOptions& a) { a.scale = 0.03; }), t);
    do j.draw(1, rng);
    while (std::abs(j.draws()[0].pose.scale - 1) < 0.005);  // maps 15 px apart then move ≥ 0.075 px apart
    const double s = j.draws()[0].pose.scale;
    const MatD out = j.apply(blob);
    for (int k = 0; k < 4; ++k) {
      const auto [r0, c0] = t.map_origin(k);
      const double cx = double(c0 + 6) - double(t.canvas_cols() / 2), cy = double(r0 + 6) - double(t.canvas_rows() / 2);
      // Bilinear resampling at a scaled grid aliases the interpolant's kinks: centroids within 10 %.
      EXPECT_NEAR(moments(out, k).x, (s - 1) * cx, 0.1 * std::abs((s - 1) * cx)) << k;
      EXPECT_NEAR(moments(out, k).y, (s - 1) * cy, 0.1 * std::abs((s - 1) * cy)) << k;
    }
  }
  {  // defocus: the blob's variance grows by 2·b² (a Gaussian blur of σ = b in x and y), its sum is kept
    FrontEndJitter j(only([](AugmentOptions& a) { a.defocus_px = 0.8; }), t);
    j.draw(1, rng);
    const double b = j.draws()[0].blur_px;
    ASSERT_GT(b, 0.5);  // below ~0.5 px the discrete taps' variance falls short of b²
    const Moments m = moments(j.apply(blob), 2);
    EXPECT_NEAR(m.var, ref.var + 2 * b * b, 0.02 * ref.var);
    EXPECT_NEAR(m.sum, ref.sum, 1e-3 * ref.sum);
  }
  {  // gain and dark: M = g·Y + d_k
    FrontEndJitter j(only([](AugmentOptions& a) { a.gain = 0.05, a.dark = 0.01; }), t);
    j.draw(1, rng);
    const auto& d = j.draws()[0];
    const MatD out = j.apply(blob);
    for (int k = 0; k < 4; ++k)
      EXPECT_LT(((out.middleCols(k * HW, HW) - d.pose.gain * blob.middleCols(k * HW, HW)).array() - d.dark[k]).abs().maxCoeff(),
                1e-15);
    EXPECT_NE(d.dark[0], d.dark[1]);
  }
}

TEST(OpticalStudent, AugmentIsOffByDefaultAndOnlyInTraining) {
  EXPECT_FALSE(StudentOptions{}.augment.enabled);
  std::mt19937_64 rng(3);
  StudentOptions o = tiny("intensity", "softplus", "pairs");
  OpticalStudent plain(o, Shape{1, 6, 6}, 3);
  plain.init(rng);
  o.augment = strong_jitter();
  OpticalStudent aug(o, Shape{1, 6, 6}, 3);
  const auto from = plain.params(), to = aug.params();
  for (std::size_t i = 0; i < from.size(); ++i) *to[i].value = *from[i].value;
  const MatD x = images(4, rng);
  // Evaluation, features and the NTK see the ideal front-end; a training forward without noise or
  // augmentation draws nothing.
  EXPECT_EQ((aug.forward(x, false) - plain.forward(x, false)).norm(), 0.0);
  EXPECT_EQ((aug.features(x) - plain.features(x)).norm(), 0.0);
  EXPECT_EQ((aug.ntk(x, ParamSet::all) - plain.ntk(x, ParamSet::all)).norm(), 0.0);
  std::mt19937_64 g1(9), g2(9);
  plain.forward(x, true, &g1);
  EXPECT_TRUE(g1 == g2);
  EXPECT_GT((aug.forward(x, true, &g1) - plain.forward(x, false)).norm(), 1e-3);
  EXPECT_THROW(aug.forward(x, true, nullptr), std::invalid_argument);
  // The options travel with the model file.
  const OpticalStudent back = OpticalStudent::from_model(aug.to_model({}));
  EXPECT_TRUE(back.options().augment.enabled);
  EXPECT_EQ(back.options().augment.rotation_deg, 4.0);
}

TEST(OpticalStudent, ValidateNamesTheRule) {
  StudentOptions o;
  o.kernels = 7;  // odd with pairs
  {
    const std::string e = o.validate();
    EXPECT_NE(e.find("student.kernels must be even"), std::string::npos);
  }
  o = StudentOptions{};
  o.parameterization = "hologram";
  EXPECT_NE(o.validate(), "");
  o = StudentOptions{};
  o.augment.shift_px = -0.1;
  EXPECT_EQ(o.validate().rfind("student.augment.shift_px must be a finite σ >= 0, got -0.1", 0), 0u) << o.validate();
  o = StudentOptions{};
  o.augment.gain = 0.5;
  EXPECT_NE(o.validate().find("student.augment.gain must be <= 0.3"), std::string::npos);
  // Read from JSON once, next to the struct: unknown keys are refused with the path.
  EXPECT_TRUE(OpticalStudent::options_from_json({{"augment", {{"enabled", true}, {"defocus_px", 1.0}}}}).augment.enabled);
  EXPECT_ANY_THROW(OpticalStudent::options_from_json({{"augment", {{"defocus_waves", 1.0}}}}));
}

namespace {
// Brute-force Θ_S = Σ_c J_c J_cᵀ from one backward pass per (sample, class).
MatD brute_ntk(OpticalStudent& s, const MatD& x, ParamSet set, bool kernel_space) {
  const Eigen::Index B = x.rows();
  const int C = s.classes();
  std::vector<MatD> rows;
  for (Eigen::Index i = 0; i < B; ++i)
    for (int c = 0; c < C; ++c) {
      s.zero_grad();
      s.forward(x, false);
      MatD dl = MatD::Zero(B, C);
      dl(i, c) = 1.0;
      s.backward(dl);
      std::vector<double> g;
      for (auto& p : s.params(set)) {
        MatD v = *p.grad;
        if (kernel_space && p.name == "optical.rho")  // ∂f/∂κ = (∂f/∂ρ) / σ'(ρ), softplus: σ' = sigmoid
          v = v.cwiseQuotient(p.value->unaryExpr([](double r) { return 1.0 / (1.0 + std::exp(-r)); }));
        g.insert(g.end(), v.data(), v.data() + v.size());
      }
      rows.push_back(Eigen::Map<MatD>(g.data(), 1, static_cast<Eigen::Index>(g.size())));
    }
  MatD theta = MatD::Zero(B, B);
  for (int c = 0; c < C; ++c)
    for (Eigen::Index i = 0; i < B; ++i)
      for (Eigen::Index j = 0; j < B; ++j) theta(i, j) += rows[i * C + c].cwiseProduct(rows[j * C + c]).sum();
  return theta;
}
}  // namespace

TEST(OpticalStudent, ClosedFormNtkMatchesBruteForceJacobian) {
  for (const auto& c : kCases) {
    if (c.param == "phase") continue;  // phase: kernel-space NTK, checked below
    for (ParamSet set : {ParamSet::all, ParamSet::optical, ParamSet::backend})
      for (bool ks : {false, true}) {
        if (ks && c.nonneg != "softplus") continue;
        std::mt19937_64 rng(13);
        OpticalStudent s = make(c, rng);
        const MatD x = images(4, rng);
        const MatD closed = s.ntk(x, set, ks);
        const MatD brute = brute_ntk(s, x, set, ks);
        EXPECT_LT(rel_err(closed, brute), 1e-10) << name(c) << " " << to_string(set) << " kernel_space=" << ks;
      }
  }
}

TEST(OpticalStudent, NtkParameterGradientMatchesFiniteDifferences) {
  for (const auto& c : kCases)
    for (ParamSet set : {ParamSet::all, ParamSet::optical, ParamSet::backend})
      for (bool ks : {false, true}) {
        if (ks && c.param == "phase") continue;  // phase always uses the kernel space
        std::mt19937_64 rng(14);
        OpticalStudent s = make(c, rng);
        const MatD x = images(4, rng);
        std::normal_distribution<double> n(0.0, 1.0);
        const MatD G = MatD::NullaryExpr(4, 4, [&] { return n(rng); });  // deliberately not symmetric
        auto objective = [&] { return s.ntk(x, set, ks).cwiseProduct(G).sum(); };
        s.zero_grad();
        s.ntk(x, set, ks);
        s.ntk_backward(G);
        expect_grads_match_fd(s.params(), objective,
                              name(c) + " set=" + to_string(set) + " kernel_space=" + std::to_string(ks));
      }
}

// The backend NTK at given features (calibration's measured features) is the student's own backend
// NTK at its ideal features, and its gradient (backend parameters only) matches central differences.
TEST(OpticalStudent, NtkAtFeaturesMatchesNtkAndFiniteDifferences) {
  for (const auto& c : kCases) {
    std::mt19937_64 rng(16);
    OpticalStudent s = make(c, rng);
    const MatD x = images(5, rng);
    const MatD a = s.features(x);
    const MatD ref = s.ntk(x, ParamSet::backend);
    EXPECT_LT(rel_err(s.ntk_at_features(a), ref), 1e-12) << name(c);
    std::normal_distribution<double> n(0.0, 1.0);
    const MatD G = MatD::NullaryExpr(5, 5, [&] { return n(rng); });
    auto objective = [&] { return s.ntk_at_features(a).cwiseProduct(G).sum(); };
    s.zero_grad();
    s.ntk_at_features(a);
    s.ntk_backward(G);
    expect_grads_match_fd(s.params(), objective, name(c));
  }
}

TEST(OpticalStudent, FeatureNormStandardisesPerFeatureOrPerMap) {
  std::mt19937_64 rng(17);
  for (const std::string norm : {"feature", "map"}) {
    StudentOptions o = tiny("intensity", "softplus", "pairs");
    o.feature_norm = norm;
    OpticalStudent s(o, Shape{1, 6, 6}, 3);
    s.init(rng);
    const MatD a = s.features(images(200, rng));
    s.fit_feature_norm(a);
    const MatD z = (a.rowwise() - s.feature_offset().row(0)).array().rowwise() * s.feature_scale().row(0).array();
    const int per = s.feature_dim() / 2;  // two signed maps of 3×3
    for (int j = 0; j < 2; ++j) {
      const MatD zj = z.middleCols(j * per, per);
      if (norm == "feature") {
        EXPECT_LT(zj.colwise().mean().cwiseAbs().maxCoeff(), 1e-12);
        EXPECT_LT(((zj.colwise().squaredNorm() / 200.0).array() - 1.0).abs().maxCoeff(), 1e-9);
      } else {
        EXPECT_NEAR(zj.mean(), 0.0, 1e-12);
        EXPECT_NEAR(zj.squaredNorm() / zj.size(), 1.0, 1e-9);
        EXPECT_EQ(s.feature_scale().middleCols(j * per, per).minCoeff(), s.feature_scale().middleCols(j * per, per).maxCoeff());
      }
    }
  }
}

// At the end of training the statistics are refreshed without changing the function; afterwards a gain
// and a dark offset on the features are undone exactly by re-estimating from the distorted features.
TEST(OpticalStudent, FeatureNormKeepsFunctionAndAbsorbsGainAndDark) {
  std::mt19937_64 rng(18);
  OpticalStudent s(tiny("intensity", "softplus", "pairs"), Shape{1, 6, 6}, 3);
  s.init(rng);
  const MatD x = images(50, rng);
  const MatD before = s.forward(x, false);
  s.fit_feature_norm(s.features(x), true);
  EXPECT_GT((s.feature_scale().array() - 1.0).abs().maxCoeff(), 0.5);  // really rescaled
  EXPECT_LT(rel_err(s.forward(x, false), before), 1e-12);
  const MatD a = s.features(x);
  const MatD distorted = (0.7 * a).array() + 0.05;
  s.fit_feature_norm(distorted);
  EXPECT_LT(rel_err(s.backend_forward(distorted), before), 1e-10);
}

TEST(OpticalStudent, FeatureNormRoundTripsAndOldFilesLoadAsIdentity) {
  std::mt19937_64 rng(19);
  OpticalStudent s(tiny("intensity", "softplus", "pairs"), Shape{1, 6, 6}, 3);
  s.init(rng);
  const MatD x = images(20, rng);
  s.fit_feature_norm(s.features(x));
  ModelFile m = s.to_model({});
  OpticalStudent r = OpticalStudent::from_model(m);
  EXPECT_EQ(r.feature_offset(), s.feature_offset());
  EXPECT_EQ(r.feature_scale(), s.feature_scale());
  EXPECT_EQ(r.forward(x, false), s.forward(x, false));
  std::erase_if(m.arrays, [](const NamedArray& a) { return a.name.rfind("backend.feature_", 0) == 0; });
  OpticalStudent old = OpticalStudent::from_model(m);
  EXPECT_TRUE(old.feature_offset().isZero());
  EXPECT_TRUE((old.feature_scale().array() == 1.0).all());

  EXPECT_THROW(s.fit_feature_norm(MatD::Zero(1, s.feature_dim())), std::invalid_argument);
  EXPECT_THROW(s.fit_feature_norm(MatD::Zero(4, s.feature_dim() + 1)), std::invalid_argument);
  MatD bad = s.features(x);
  bad(0, 0) = std::nan("");
  EXPECT_THROW(s.fit_feature_norm(bad), std::invalid_argument);
  EXPECT_THROW(s.set_feature_norm(s.feature_offset(), MatD::Zero(1, s.feature_dim())), std::invalid_argument);
  StudentOptions o = tiny("intensity", "softplus", "pairs");
  o.feature_norm = "global";
  EXPECT_NE(o.validate().find("student.feature_norm must be"), std::string::npos) << o.validate();
  // A feature that never varies (dark border) is floored, not amplified without bound.
  MatD flat = s.features(x);
  flat.col(0).setConstant(0.25);
  s.fit_feature_norm(flat);
  EXPECT_TRUE(s.feature_scale().allFinite());
  EXPECT_LE(s.feature_scale()(0, 0), 1e3 * s.feature_scale().rightCols(s.feature_dim() - 1).maxCoeff());
}

TEST(OpticalStudent, PhaseKernelsAreNonNegativeTilesOfOnePsf) {
  std::mt19937_64 rng(15);
  OpticalStudent s = make(kCases[2], rng);
  const MatD k = s.kernels();
  EXPECT_GE(k.minCoeff(), 0.0);
  EXPECT_GT(k.maxCoeff(), 0.0);
  // A different phase gives different kernels: the mask really drives them.
  s.raw_optical().array() += MatD::Random(s.raw_optical().rows(), s.raw_optical().cols()).array();
  s.features(images(1, rng));
  EXPECT_GT((s.kernels() - k).norm(), 1e-6);
}

// ---------------------------------------------------------------- the 4f (fourier) front-end

namespace {
OpticalStudent make_fourier(int channels, const std::string& signing, std::mt19937_64& rng) {
  return prepared(tiny("fourier", "softplus", signing), channels, rng);
}
}  // namespace

// Y_{c,k} = |x_c ⋆ κ_k|² with κ_k = Re (row 2k) + i·Im (row 2k + 1) of kernels(), by direct sums.
TEST(FourierStudent, MapsAreSquaredMagnitudesOfComplexCorrelations) {
  for (int channels : {1, 3}) {
    std::mt19937_64 rng(21);
    OpticalStudent s = make_fourier(channels, "bias", rng);
    const MatD x = images(2, rng, channels);
    const MatD a = s.features(x);
    const MatD kap = s.kernels();
    ASSERT_EQ(kap.rows(), 8);
    // Recompute the pooled bias-signed features: map (c, k), pool 2 over 6 × 6.
    MatD expect = MatD::Zero(2, s.feature_dim());
    for (int n = 0; n < 2; ++n)
      for (int c = 0; c < channels; ++c)
        for (int k = 0; k < 4; ++k)
          for (int r = 0; r < 6; ++r)
            for (int q = 0; q < 6; ++q) {
              std::complex<double> v = 0;
              for (int ky = 0; ky < 3; ++ky)
                for (int kx = 0; kx < 3; ++kx) {
                  const int rr = r + ky - 1, qq = q + kx - 1;
                  if (rr < 0 || qq < 0 || rr >= 6 || qq >= 6) continue;
                  v += x(n, c * 36 + rr * 6 + qq) * std::complex<double>(kap(2 * k, ky * 3 + kx), kap(2 * k + 1, ky * 3 + kx));
                }
              expect(n, (c * 4 + k) * 9 + (r / 2) * 3 + q / 2) += std::norm(v) / 4.0;
            }
    EXPECT_LT(rel_err(a, expect), 1e-12) << channels << " channels";
    // The kernels are tiles of one amplitude spread function: Σ over all tiles of |κ|² is at most
    // psf_gain (Σ|h|² = 1 over the whole grid) and the phase really drives them.
    EXPECT_LE(kap.squaredNorm(), s.options().psf_gain * (1 + 1e-12));
    s.raw_optical().array() += 0.5;
    s.raw_optical()(0, 0) += 1.0;
    (void)s.features(x);
    EXPECT_GT((s.kernels() - kap).norm(), 1e-6);
  }
}

TEST(FourierStudent, BackwardMatchesFiniteDifferences) {
  for (int channels : {1, 3})
    for (const std::string signing : {"pairs", "bias"}) {
      std::mt19937_64 rng(22);
      OpticalStudent s = make_fourier(channels, signing, rng);
      const MatD x = images(3, rng, channels);
      hilo::distill::testing::expect_backward_matches_fd(s, x, {0, 2, 1},
                                                         "fourier/" + signing + "/" + std::to_string(channels));
    }
}

// With tile_efficiency_weight λ, backward() is the gradient of CE + λ(1 − η) (η: the light in the tiles),
// for phase and fourier students; an intensity student refuses the option.
TEST(FourierStudent, TileEfficiencyTermMatchesFiniteDifferences) {
  for (const std::string param : {"phase", "fourier"}) {
    std::mt19937_64 rng(25);
    StudentOptions o = tiny(param, "softplus", "pairs");
    o.tile_efficiency_weight = 0.7;
    OpticalStudent s(o, Shape{1, 6, 6}, 3);
    s.init(rng);
    s.fit_feature_norm(s.features(images(16, rng)));
    const MatD x = images(3, rng);
    const std::vector<int> y{0, 2, 1};
    auto loss = [&] { return softmax_cross_entropy<double>(s.forward(x, false), y, nullptr) + 0.7 * (1 - s.tile_efficiency()); };
    s.zero_grad();
    MatD dl;
    softmax_cross_entropy(s.forward(x, false), y, &dl);
    s.backward(dl);
    expect_grads_match_fd(s.params(), loss, param + " with the tile-efficiency term");
    EXPECT_GT(s.tile_efficiency(), 0.0);
    EXPECT_LT(s.tile_efficiency(), 1.0);
  }
  // init's phase_init "tiles" starts with the element's light on the tiles, "random" does not.
  for (const std::string param : {"phase", "fourier"}) {
    StudentOptions o = tiny(param, "softplus", "pairs");
    o.phase_rows = o.phase_cols = 16;
    o.pupil = "circle";
    std::mt19937_64 r1(26), r2(26);
    OpticalStudent tiles(o, Shape{1, 6, 6}, 3);
    tiles.init(r1);
    o.phase_init = "random";
    OpticalStudent random(o, Shape{1, 6, 6}, 3);
    random.init(r2);
    EXPECT_LT(random.tile_efficiency(), 0.2) << param;
    EXPECT_GT(tiles.tile_efficiency(), 0.6) << param;
  }
  StudentOptions bad = tiny("intensity", "softplus", "pairs");
  bad.tile_efficiency_weight = 1;
  EXPECT_EQ(bad.validate().rfind("student.tile_efficiency_weight needs a phase or fourier student", 0), 0u);
}

// NTKD on a 4f student matches the backend NTK; its gradient still reaches the phase (through the
// features) and matches central differences. The optical NTK is refused with the rule.
TEST(FourierStudent, BackendNtkGradientMatchesFiniteDifferencesAndOpticalNtkIsRefused) {
  std::mt19937_64 rng(23);
  OpticalStudent s = make_fourier(1, "pairs", rng);
  const MatD x = images(4, rng);
  std::normal_distribution<double> n(0.0, 1.0);
  const MatD G = MatD::NullaryExpr(4, 4, [&] { return n(rng); });
  auto objective = [&] { return s.ntk(x, ParamSet::backend).cwiseProduct(G).sum(); };
  s.zero_grad();
  s.ntk(x, ParamSet::backend);
  s.ntk_backward(G);
  EXPECT_GT(s.params()[0].grad->norm(), 0.0);
  expect_grads_match_fd(s.params(), objective, "fourier backend NTK");
  for (ParamSet set : {ParamSet::all, ParamSet::optical}) {
    try {
      s.ntk(x, set);
      ADD_FAILURE() << "optical NTK of a fourier student accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("no optical NTK"), std::string::npos) << e.what();
    }
  }
}

TEST(FourierStudent, ModelFileRoundTripsAndCirclePupilAndPhaseGridAreHonoured) {
  std::mt19937_64 rng(24);
  OpticalStudent s = make_fourier(1, "pairs", rng);
  const MatD x = images(3, rng);
  OpticalStudent b = OpticalStudent::from_model(s.to_model({}));
  EXPECT_LT(rel_err(b.forward(x, false), s.forward(x, false)), 1e-14);
  // A larger phase grid with a circular pupil: the pupil is the bench's inscribed circle, the kernels
  // still tiles of one ASF; a grid too small for the tiling is refused.
  StudentOptions o = tiny("fourier", "softplus", "pairs");
  o.phase_rows = o.phase_cols = 16;
  o.pupil = "circle";
  OpticalStudent c(o, Shape{1, 6, 6}, 3);
  EXPECT_EQ(c.pupil().rows(), 16);
  EXPECT_EQ(c.pupil()(0, 0), 0.0);
  EXPECT_EQ(c.pupil()(8, 8), 1.0);
  o.phase_rows = o.phase_cols = 4;
  try {
    OpticalStudent small(o, Shape{1, 6, 6}, 3);
    ADD_FAILURE() << "phase grid too small accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("falls outside the 8x8 PSF grid"), std::string::npos) << e.what();
  }
  o.pupil = "hexagon";
  EXPECT_EQ(o.validate(), "student.pupil must be \"square\" or \"circle\", got \"hexagon\"");
  o.pupil = "circle";
  o.phase_init = "zeros";
  EXPECT_EQ(o.validate(), "student.phase_init must be \"tiles\" or \"random\", got \"zeros\"");
  o.phase_init = "tiles";
  o.tile_efficiency_weight = -1;
  EXPECT_EQ(o.validate(), "student.tile_efficiency_weight must be >= 0");
}

// ---------------------------------------------------------------- the estimate job

namespace {
std::string estimate_error(const nlohmann::json& j) {
  try {
    (void)EstimateJob::from_json(j);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}
}  // namespace

// Regression: the estimate job's keys were checked by hand: no suggestion for a misspelt key, a wrong
// type surfaced as a bare JSON error, and its fields were read one by one.
TEST(EstimateJob, ReadsLikeTheOtherJobs) {
  EXPECT_EQ(estimate_error({{"command", "estimate"}, {"n_trian", 100}}),
            "estimate job: unknown key 'n_trian'; did you mean 'n_train'?");
  EXPECT_NE(estimate_error({{"n_train", "many"}}).find("estimate job.n_train"), std::string::npos)
      << estimate_error({{"n_train", "many"}});
  EXPECT_EQ(estimate_error({{"n_train", 5}}), "estimate.n_train must be >= 10, got 5");
  EXPECT_EQ(estimate_error({{"regression", {{"ratios", {1e-3, -1.0}}}}}), "kernel_regression.ratios must all be > 0");
  EXPECT_EQ(estimate_error({{"regression", {{"ratios", {1.0, 0.1}}}}}),
            "kernel_regression.ratios must be strictly increasing");
  EXPECT_EQ(estimate_error({{"regression", {{"depth", 0}}}}), "kernel_regression.depth must be in [1, 10], got 0");
  EXPECT_EQ(estimate_error({{"student", {{"kernels", 7}}}}).rfind("student.kernels must be even", 0), 0u);
  EXPECT_EQ(estimate_error({{"command", "distill"}}), "estimate job.command must be \"estimate\", got \"distill\"");
  const nlohmann::json given = {{"data", {{"name", "mnist"}}}, {"student_model", "s.hilo"}, {"seed", 9},
                                {"n_train", 500},          {"regression", {{"ratios", {0.1, 1.0}}, {"depth", 2}}},
                                {"reference", true},       {"out_dir", "e"}};
  const EstimateJob job = EstimateJob::from_json(given);
  EXPECT_EQ(job.data.name, "mnist");
  EXPECT_EQ(job.student_model, "s.hilo");
  EXPECT_EQ(job.seed, 9u);
  EXPECT_EQ(job.n_train, 500);
  EXPECT_EQ(job.regression.ratios, (std::vector<double>{0.1, 1.0}));
  EXPECT_EQ(job.regression.depth, 2);
  EXPECT_TRUE(job.reference);
  EXPECT_EQ(job.out_dir, "e");
  EXPECT_EQ(nlohmann::json(EstimateJob::from_json(nlohmann::json(job))), nlohmann::json(job)) << "round trip";
}
