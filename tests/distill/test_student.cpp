// The optical student: backward and camera noise against finite differences, the closed-form NTK
// against the brute-force Jacobian product, and the second-order NTK gradient against finite
// differences of Σ G ⊙ Θ_S; the estimate job's reader (the estimate itself: test_kernel_regression.cpp).
#include <gtest/gtest.h>

#include <random>

#include "gradcheck.hpp"
#include "hilo/distill/kernel_regression.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/distill/student_jobs.hpp"

using namespace hilo::distill;
using hilo::distill::testing::numeric_grad;
using hilo::distill::testing::rel_err;

namespace {
StudentOptions tiny(const std::string& param, const std::string& nonneg, const std::string& signing) {
  StudentOptions o;
  o.kernels = 4;
  o.kernel_size = 3;
  o.parameterization = param;
  o.nonneg = nonneg;
  o.signing = signing;
  o.pool = 2;
  o.hidden = 6;
  o.tile_columns = 2;
  o.tile_gap = 1;
  return o;
}

struct Case {
  std::string param, nonneg, signing, norm = "feature";
};
const std::vector<Case> kCases{{"intensity", "softplus", "pairs"},
                               {"intensity", "square", "bias", "map"},
                               {"phase", "softplus", "pairs"}};

MatD images(int n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  return MatD::NullaryExpr(n, 36, [&] { return u(rng); });
}

OpticalStudent make(const Case& c, std::mt19937_64& rng) {
  StudentOptions o = tiny(c.param, c.nonneg, c.signing);
  o.feature_norm = c.norm;
  OpticalStudent s(o, Shape{1, 6, 6}, 3);
  s.init(rng);
  // A non-trivial standardisation (offset and scale far from 0 and 1), so every gradient check runs
  // through it.
  s.fit_feature_norm(s.features(images(16, rng)));
  // Larger backend weights and biases so that ReLU masks vary across samples.
  s.w1() *= 3.0;
  s.b1() = MatD::Constant(1, 6, 0.02);
  return s;
}

std::string name(const Case& c) { return c.param + "/" + c.nonneg + "/" + c.signing; }
}  // namespace

TEST(OpticalStudent, BackwardMatchesFiniteDifferences) {
  for (const auto& c : kCases) {
    std::mt19937_64 rng(11);
    OpticalStudent s = make(c, rng);
    const MatD x = images(3, rng);
    const std::vector<int> y{0, 2, 1};
    auto loss = [&] { return softmax_cross_entropy<double>(s.forward(x, false), y, nullptr); };
    s.zero_grad();
    MatD dl;
    softmax_cross_entropy(s.forward(x, false), y, &dl);
    s.backward(dl);
    for (auto& p : s.params()) {
      const MatD g = *p.grad;
      EXPECT_LT(rel_err(g, numeric_grad(*p.value, loss)), 1e-4) << name(c) << " " << p.name;
    }
  }
}

TEST(OpticalStudent, CameraNoiseBackwardMatchesFiniteDifferencesForFixedNoise) {
  std::mt19937_64 rng(12);
  StudentOptions o = tiny("intensity", "softplus", "pairs");
  o.noise.enabled = true;
  o.noise.photons_per_unit = 50;
  o.noise.read_noise = 0.05;
  OpticalStudent s(o, Shape{1, 6, 6}, 3);
  s.init(rng);
  s.fit_feature_norm(s.features(images(16, rng)));
  const MatD x = images(3, rng);
  const std::vector<int> y{1, 0, 2};
  auto loss = [&] {
    std::mt19937_64 noise(99);  // the same noise sample at every evaluation
    return softmax_cross_entropy<double>(s.forward(x, true, &noise), y, nullptr);
  };
  std::mt19937_64 noise(99);
  s.zero_grad();
  MatD dl;
  const MatD noisy = s.forward(x, true, &noise);
  softmax_cross_entropy(noisy, y, &dl);
  s.backward(dl);
  EXPECT_GT((noisy - s.forward(x, false)).norm(), 1e-3);  // the noise is really there
  for (auto& p : s.params()) {
    const MatD g = *p.grad;
    EXPECT_LT(rel_err(g, numeric_grad(*p.value, loss)), 1e-4) << p.name;
  }
}

TEST(OpticalStudent, NoiseWithoutGeneratorIsAnError) {
  StudentOptions o = tiny("intensity", "softplus", "pairs");
  o.noise.enabled = true;
  OpticalStudent s(o, Shape{1, 6, 6}, 3);
  std::mt19937_64 rng(1);
  s.init(rng);
  EXPECT_THROW(s.forward(images(2, rng), true, nullptr), std::invalid_argument);
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
        for (auto& p : s.params()) {
          const MatD g = *p.grad;
          EXPECT_LT(rel_err(g, numeric_grad(*p.value, objective)), 1e-4)
              << name(c) << " set=" << to_string(set) << " kernel_space=" << ks << " " << p.name;
        }
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
    for (auto& p : s.params()) {
      const MatD g = *p.grad;
      EXPECT_LT(rel_err(g, numeric_grad(*p.value, objective)), 1e-4) << name(c) << " " << p.name;
    }
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
