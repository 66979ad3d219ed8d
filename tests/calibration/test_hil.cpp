// Hardware in the loop: the design model, deploy of a student, features from maps, and the calibration
// sequence the pipeline runs, checked against the simulator's ground truth.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <stop_token>
#include <vector>

#include "hilo/calibration/hil.hpp"
#include "hilo/sim/imaging.hpp"
#include "sim_rig.hpp"

using namespace hilo;
using namespace hilo::calibration;
using hilo::calibration::testing::bench_options;
using hilo::calibration::testing::SimRig;
using hilo::calibration::testing::trained_like_student;

namespace {

distill::MatD random_images(int n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  distill::MatD x(n, 784);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = u(rng) < 0.3 ? u(rng) : 0.0;
  return x;
}

}  // namespace

TEST(Hil, SetKernelsRoundTrips) {
  std::mt19937_64 rng(1);
  auto s = trained_like_student(rng);
  const distill::MatD k = s.kernels();
  s.set_kernels(k);
  EXPECT_LT((s.kernels() - k).cwiseAbs().maxCoeff(), 1e-12);
  distill::MatD bad = k;
  bad(0, 0) = -1;
  EXPECT_THROW(s.set_kernels(bad), std::invalid_argument);
}

// The conventions between the student's cross-correlation maps and the bench's convolution image: with
// a PSF made of exactly the deployed tiles, the bench's maps are c · Y to rounding.
TEST(Hil, MapsOfATilesOnlyPsfEqualTheStudentsFeatures) {
  std::mt19937_64 rng(2);
  auto s = trained_like_student(rng);
  sim::BenchOptions o = bench_options("ideal");
  DesignModel design(o);
  const TileLayout layout = design.layout(s.options());
  // Tiles = rot180 of the student's kernels, placed at the layout offsets.
  const int K = s.options().kernels, k = s.options().kernel_size;
  std::vector<sim::RArray> tiles(K, sim::RArray(k, k));
  const distill::MatD kappa = s.kernels();
  for (int j = 0; j < K; ++j)
    for (int y = 0; y < k; ++y)
      for (int x = 0; x < k; ++x) tiles[j](k - 1 - y, k - 1 - x) = kappa(j, y * k + x);
  o.element.kind = sim::ElementKind::psf;
  sim::SimulatedBench bench(o);
  bench.set_psf(compose_psf(tiles, layout, 128, 128));
  const double counts = design.counts_per_psf_unit();
  const distill::MatD x = random_images(3, rng);
  const distill::MatD want = s.features(x);
  for (int i = 0; i < 3; ++i) {
    sim::RArray im(28, 28);
    for (int r = 0; r < 28; ++r)
      for (int c = 0; c < 28; ++c) im(r, c) = x(i, r * 28 + c);
    bench.set_input(im);
    const auto& co = bench.camera().options();
    const sim::RArray img = bench.ideal_image() * (co.exposure_ms * co.quantum_efficiency / co.gain_e_per_count);
    std::vector<sim::RArray> maps;
    for (int j = 0; j < K; ++j) {
      const auto org = layout.map_origin(j);
      maps.push_back(img.block(org.x(), org.y(), 28, 28));
    }
    // bench.set_psf normalises nothing: the PSF holds the kernels as given, so c = counts per PSF unit.
    const distill::MatD got = maps_to_features(maps, s, counts);
    EXPECT_LT((got.row(0) - want.row(i)).cwiseAbs().maxCoeff(), 1e-9 * want.row(i).cwiseAbs().maxCoeff() + 1e-12)
        << "image " << i;
  }
}

// Deploy by phase retrieval: smooth kernels are realised with high fidelity, the deployed kernels keep
// the trained total, and the design model's features track the student's with the deployed kernels.
TEST(Hil, DeployRealisesSmoothKernelsAndDesignFeaturesTrackTheStudent) {
  std::mt19937_64 rng(3);
  auto s = trained_like_student(rng);
  DesignModel design(bench_options("ideal"));
  PhaseRetrievalOptions po;
  const Deployment d = design_deployment(s, design, po, rng);
  EXPECT_GT(d.design.fidelity.mean_correlation, 0.85);
  EXPECT_NEAR(d.kernels.sum(), s.kernels().sum(), 1e-9 * s.kernels().sum());
  EXPECT_NEAR(d.counts_per_unit * d.kernel_scale, design.counts_per_psf_unit(), 1e-9 * design.counts_per_psf_unit());
  s.set_kernels(d.kernels);
  const distill::MatD x = random_images(20, rng);
  const distill::MatD a_student = s.features(x);
  std::vector<std::int64_t> reported;
  io::WorkControl work;
  work.progress = [&](std::int64_t n, std::int64_t t, std::string_view stage) {
    EXPECT_EQ(t, 20);
    EXPECT_EQ(stage, "design features");
    reported.push_back(n);
  };
  const distill::MatD a_design = design_features(design, d, s, x.cast<float>(), work);
  ASSERT_EQ(a_design.rows(), 20);
  EXPECT_EQ(reported, std::vector<std::int64_t>{20});
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_EQ(design_features(design, d, s, x.cast<float>(), {{}, stopped.get_token()}).rows(), 0)
      << "a stop requested before the first row measures none";
  // The light outside the kernel windows (≈ 83 % of it here) adds a background the 7 × 7 kernels do not
  // model; the features still correlate (measured 0.86; a layout or orientation error gives ≈ 0).
  const Eigen::VectorXd u = Eigen::Map<const Eigen::VectorXd>(a_student.data(), a_student.size());
  const Eigen::VectorXd v = Eigen::Map<const Eigen::VectorXd>(a_design.data(), a_design.size());
  const double corr = (u.array() - u.mean()).matrix().dot((v.array() - v.mean()).matrix()) /
                      std::sqrt((u.array() - u.mean()).square().sum() * (v.array() - v.mean()).square().sum());
  EXPECT_GT(corr, 0.8);
}

// A 4f (fourier) student deployed by its own phase onto a coherent bench: for a point input the design
// model's maps inside the kernel's reach are exactly the student's |x ⋆ κ|² (a point meets only its own
// tile there; stray light of the ASF reaches other positions only), the realised kernels are the
// student's |κ|², and every mismatch between student and bench is refused with what to change.
TEST(Hil, FourierStudentDeployedByItsOwnPhaseIsTheCoherentDesignModel) {
  std::mt19937_64 rng(6);
  sim::BenchOptions o = bench_options("ideal");
  o.imaging = sim::Imaging::coherent;
  o.element.kind = sim::ElementKind::fabricated;  // no LUT: the design shows the student's phase exactly
  distill::StudentOptions so;
  so.parameterization = "fourier";
  so.phase_rows = so.phase_cols = 64;
  so.pupil = "circle";
  so.pool = 1;
  so.signing = "bias";
  distill::OpticalStudent s(so, distill::Shape{1, 28, 28}, 10);
  s.init(rng);
  DesignModel design(o);
  const Deployment d = deploy_own_phase(s, design);
  EXPECT_GT(d.design.fidelity.mean_correlation, 1 - 1e-9);
  EXPECT_LT((d.kernels - s.intensity_kernels()).cwiseAbs().maxCoeff(), 1e-12 * s.intensity_kernels().maxCoeff());
  EXPECT_NEAR(d.counts_per_unit * s.options().psf_gain, design.counts_per_psf_unit(), 1e-9 * design.counts_per_psf_unit());
  for (auto [pr, pc] : {std::pair{14, 14}, {3, 25}}) {
    distill::MatD x = distill::MatD::Zero(1, 784);
    x(0, pr * 28 + pc) = 0.8;
    const distill::MatD want = s.features(x);
    const distill::MatD got = design_features(design, d, s, x.cast<float>());
    double err = 0, peak = 0;
    for (int j = 0; j < so.kernels; ++j)
      for (int r = std::max(0, pr - 3); r <= std::min(27, pr + 3); ++r)
        for (int c = std::max(0, pc - 3); c <= std::min(27, pc + 3); ++c) {
          const Eigen::Index i = (j * 28 + r) * 28 + c;
          err = std::max(err, std::abs(got(0, i) - want(0, i)));
          peak = std::max(peak, want(0, i));
        }
    EXPECT_LT(err, 1e-6 * peak) << "point at " << pr << ", " << pc;
    EXPECT_GT(peak, 0.0);
  }
  auto refusal = [&](distill::StudentOptions bad, sim::BenchOptions bench) {
    try {
      distill::OpticalStudent b(bad, distill::Shape{1, 28, 28}, 10);
      DesignModel m(bench);
      (void)deploy_own_phase(b, m);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  sim::BenchOptions incoherent = o;
  incoherent.imaging = sim::Imaging::incoherent;
  EXPECT_EQ(refusal(so, incoherent), "deploy: a fourier (4f) student needs a coherent bench (imaging: coherent)");
  distill::StudentOptions wrong_grid = so;
  wrong_grid.phase_rows = 48;
  EXPECT_NE(refusal(wrong_grid, o).find("the student's phase grid (48 x 64, psf_pad 2) must be the element's (64 x 64"),
            std::string::npos);
  distill::StudentOptions square = so;
  square.pupil = "square";
  EXPECT_NE(refusal(square, o).find("pupil differs from the element's"), std::string::npos);
  distill::StudentOptions intensity;
  EXPECT_NE(refusal(intensity, o).find("deployed by phase retrieval"), std::string::npos);
}

// design_maps on several threads (the other threads predict with clones of the model) gives the maps of
// one thread bit for bit, with the pupil aberration and the element the model holds; a stop requested
// part-way keeps an unbroken prefix of rows that equals the full result's.
TEST(Hil, DesignMapsOnThreadsEqualOneThreadAndAStopKeepsAPrefix) {
  std::mt19937_64 rng(5);
  auto s = trained_like_student(rng);
  DesignModel design(bench_options("ideal"));
  const Deployment d = design_deployment(s, design, PhaseRetrievalOptions{}, rng);
  const auto& slm = design.options().element.slm;
  design.set_pupil_aberration(0.3 * RArray::Random(slm.rows, slm.cols));
  design.set_element_phase(d.design.phase);
  s.set_kernels(d.kernels);
  const distill::Mat<float> x = random_images(23, rng).cast<float>();
  const distill::MatD one = design_maps(design, d, s, x);
  for (int threads : {2, 3, 40}) EXPECT_TRUE(design_maps(design, d, s, x, {}, threads) == one) << threads << " threads";
  DesignModel flat(bench_options("ideal"));
  EXPECT_FALSE(design_maps(flat, d, s, x, {}, 2) == one) << "the comparison sees the element";
  EXPECT_THROW(design_maps(design, d, s, x, {}, 0), std::invalid_argument);
  const distill::Mat<float> wide = distill::Mat<float>::Zero(3, x.cols() + 1);
  try {
    (void)design_maps(design, d, s, wide, {}, 2);
    ADD_FAILURE() << "images of the wrong size were accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("785 pixels for a student input of 28 x 28"), std::string::npos) << e.what();
  }
  // A worker's exception (the bench model refuses a non-finite pixel) reaches the caller once the threads
  // have joined; it used to end the process (std::terminate).
  distill::Mat<float> broken = x;
  broken.bottomRows(x.rows() - 1).col(5).setConstant(std::numeric_limits<float>::quiet_NaN());
  for (int threads : {1, 3}) EXPECT_THROW(design_maps(design, d, s, broken, {}, threads), std::invalid_argument) << threads;
  // The first progress report (after about 100 rows) requests the stop.
  std::stop_source stop;
  io::WorkControl work;
  work.stop = stop.get_token();
  work.progress = [&](std::int64_t, std::int64_t, std::string_view) { stop.request_stop(); };
  const distill::Mat<float> big = random_images(230, rng).cast<float>();
  const distill::MatD all = design_maps(design, d, s, big, {}, 2);
  const distill::MatD part = design_maps(design, d, s, big, work, 2);
  EXPECT_GE(part.rows(), 100) << "rows finished before the stop are kept";
  EXPECT_LT(part.rows(), big.rows());
  EXPECT_TRUE(part == all.topRows(part.rows()));
}

// The calibration sequence of the pipeline on the moderate profile: registration within 0.2 px of the
// truth over the feature field, gain within 2 %, and measured features closer to the design model's
// than features cut without registration and gain correction (measured: 1.19 vs 1.40; most of what
// remains is the moderate profile's kernel error, which only the backend re-fit can absorb).
TEST(Hil, CalibrateBenchOnModerateProfileMatchesGroundTruth) {
  std::mt19937_64 rng(4);
  auto s = trained_like_student(rng);
  const auto opts = bench_options("moderate");
  SimRig rig(opts);
  DesignModel design(opts);
  const Deployment d = design_deployment(s, design, PhaseRetrievalOptions{}, rng);
  s.set_kernels(d.kernels);
  ProbeRig probe(rig.input, rig.camera);
  const sim::SlmModel slm(opts.element.slm);
  ShowElementFn show = [&](const sim::RArray& phase) { return deploy_phase(*rig.element, phase, slm); };
  BenchCalibrationOptions co;
  auto r = calibrate_bench(probe, design, d, show, co, rng);
  ASSERT_TRUE(r) << r.error().message;
  const auto& cal = r.value().calibration;
  const sim::Pose truth = rig.bench.true_pose(rig.t_s());
  const Rect field{58, 58 - 36, 28, 28 + 72};  // the feature maps' rows of the camera, roughly
  EXPECT_LT(max_displacement_px(cal.pose, truth, field, 144, 144), 0.2);
  EXPECT_NEAR(cal.gain, truth.gain, 0.02 * truth.gain);
  EXPECT_EQ(int(cal.tiles.size()), s.options().kernels);

  const distill::MatD x = random_images(10, rng);
  const distill::MatD a_design = design_features(design, d, s, x.cast<float>());
  auto m = measure_features(probe, cal, ExtractOptions{}, d, s, x.cast<float>(), 4);
  ASSERT_TRUE(m) << m.error().message;
  ExtractOptions raw;
  raw.correct_registration = false;
  raw.correct_gain = false;
  auto m_raw = measure_features(probe, cal, raw, d, s, x.cast<float>(), 4);
  ASSERT_TRUE(m_raw);
  const double e_cal = (m.value() - a_design).norm(), e_raw = (m_raw.value() - a_design).norm();
  EXPECT_LT(e_cal, 0.95 * e_raw) << "calibrated " << e_cal << " vs raw " << e_raw;
}
