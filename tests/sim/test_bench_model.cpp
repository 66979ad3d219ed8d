#include "hilo/sim/bench_model.hpp"

#include <cmath>
#include <filesystem>
#include <numbers>

#include <gtest/gtest.h>

#include "hilo/sim/config.hpp"
#include "hilo/sim/imaging.hpp"
#include "hilo/sim/optics.hpp"

namespace fs = std::filesystem;
using namespace hilo::sim;

namespace {
fs::path configs_dir() { return HILO_CONFIGS_DIR; }

BenchOptions small_bench(ElementKind kind, const AsBuiltProfile& profile) {
  BenchOptions o;
  o.input = {12, 12, 2, 500.0};
  o.element.kind = kind;
  o.element.slm.rows = o.element.slm.cols = 32;
  o.element.slm.fringing_sigma_px = 0.0;
  o.camera.rows = o.camera.cols = 64;
  o.camera.exposure_ms = 10.0;
  o.camera.gain_e_per_count = 2.0;
  o.camera.bit_depth = 16;
  o.camera.full_well_e = 1e6;
  o.profile = profile;
  return o;
}
RArray test_input(int n) {
  RArray in = RArray::Zero(n, n);
  in.block(2, 3, 6, 2).setConstant(1.0);
  in.block(7, 2, 2, 8).setConstant(0.6);
  return in;
}
// A lens + grating phase: the PSF is a spot displaced by (3, −2) PSF samples.
RArray tilt_phase(int n) {
  RArray p(n, n);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) p(r, c) = 2 * std::numbers::pi * (3.0 * c / (2 * n) - 2.0 * r / (2 * n));
  return p;
}
AsBuiltProfile moderate() { return load_profile(configs_dir() / "profiles/moderate.yaml"); }
}  // namespace

TEST(SimulatedBench, IdealProfileFrameEqualsTheIdealModel) {
  for (ElementKind kind : {ElementKind::fabricated, ElementKind::slm}) {
    SimulatedBench bench(small_bench(kind, AsBuiltProfile{}));
    bench.set_input(test_input(12));
    bench.set_element_phase(tilt_phase(32));
    // Design and as-built PSFs agree (bit-exact for a fabricated mask; to rounding for an SLM, whose
    // fill factor scales the pupil amplitude).
    EXPECT_LT((bench.as_built_psf() - bench.design_psf()).abs().maxCoeff(), 1e-15);
    std::mt19937_64 rng(1);
    const RArray frame = bench.capture(5.0, rng);
    CameraOptions cam = bench.options().camera;
    cam.noise = SensorNoise::none();
    std::mt19937_64 rng2(1);
    const RArray model = CameraModel(cam).capture(bench.ideal_image().max(0.0), rng2);
    EXPECT_LE((frame - model).abs().maxCoeff(), kind == ElementKind::fabricated ? 0.0 : 1.0);
    EXPECT_GT(frame.maxCoeff(), 100.0);  // the test image is actually bright
  }
}

TEST(SimulatedBench, CoherentImageIsTheSquaredAmplitudeSumOverInputPixels) {
  // 4f correlator: the camera sees |U|², U(x) = Σ_p a_p·h(x − p), a_p = v_p·√(photons/m²) on each of the
  // input pixel's m × m camera pixels, h the Fourier-plane pupil's amplitude spread function (centre =
  // origin). Checked by direct summation against the bench's FFT convolution.
  BenchOptions o = small_bench(ElementKind::fabricated, AsBuiltProfile{});
  o.imaging = Imaging::coherent;
  SimulatedBench bench(o);
  const RArray in = test_input(12);
  bench.set_input(in);
  const RArray phase = tilt_phase(32);
  bench.set_element_phase(phase);
  const RArray pupil = circular_aperture(32, 32, 1.0, 16.0, 4);
  const CArray h = PupilPsf(32, 32, 2).asf(phase, pupil);
  EXPECT_LT((h.abs2() - bench.design_psf()).abs().maxCoeff(), 1e-15);
  const int m = o.input.camera_px_per_input_px, R = o.camera.rows, C = o.camera.cols;
  const auto [r0, c0] = bench.object_origin();
  const double amp = std::sqrt(o.input.photons_per_ms / (m * m));
  RArray expect = RArray::Zero(R, C);
  for (int y = 0; y < R; ++y)
    for (int x = 0; x < C; ++x) {
      cplx u = 0;
      for (int r = 0; r < 12 * m; ++r)
        for (int c = 0; c < 12 * m; ++c) {
          const int hr = y - (r0 + r) + int(h.rows()) / 2, hc = x - (c0 + c) + int(h.cols()) / 2;
          if (hr >= 0 && hc >= 0 && hr < h.rows() && hc < h.cols()) u += in(r / m, c / m) * amp * h(hr, hc);
        }
      expect(y, x) = std::norm(u);
    }
  const RArray img = bench.ideal_image();
  EXPECT_LT((img - expect).abs().maxCoeff(), 1e-9 * expect.maxCoeff());
  // The same input seen incoherently is a different image (interference is real).
  BenchOptions oi = o;
  oi.imaging = Imaging::incoherent;
  SimulatedBench inc(oi);
  inc.set_input(in);
  inc.set_element_phase(phase);
  EXPECT_GT((inc.ideal_image() - img).abs().maxCoeff(), 0.1 * img.maxCoeff());
  // As built on the ideal profile the frame is the ideal image through the camera.
  std::mt19937_64 rng(1);
  EXPECT_GT(bench.capture(0.0, rng).maxCoeff(), 100.0);
  // A coherent bench needs an element with a phase.
  BenchOptions bad = o;
  bad.element.kind = ElementKind::psf;
  EXPECT_NE(bad.validate().find("imaging coherent needs an element with a phase"), std::string::npos);
}

TEST(SimulatedBench, CoherentSlmBenchCarriesTheProfilesAberration) {
  BenchOptions o = small_bench(ElementKind::slm, moderate());
  o.imaging = Imaging::coherent;
  SimulatedBench bench(o);
  bench.set_input(test_input(12));
  bench.set_element_phase(tilt_phase(32));
  // |h|² of the realised modulation differs from the design's, and the frame follows the as-built ASF.
  EXPECT_GT((bench.as_built_psf() - bench.design_psf()).abs().maxCoeff(), 1e-3 * bench.design_psf().maxCoeff());
  EXPECT_NEAR(bench.as_built_psf().sum(), 1.0, 1e-12);
  EXPECT_GT((bench.as_built_image(0.0) - bench.ideal_image()).abs().maxCoeff(), 0.01 * bench.ideal_image().maxCoeff());
}

TEST(SimulatedBench, ModerateProfileChangesTheFrameDeterministically) {
  auto run = [](std::uint64_t profile_seed, std::uint64_t noise_seed) {
    AsBuiltProfile p = moderate();
    p.seed = profile_seed;
    SimulatedBench bench(small_bench(ElementKind::fabricated, p));
    bench.set_input(test_input(12));
    bench.set_element_phase(tilt_phase(32));
    std::mt19937_64 rng(noise_seed);
    return bench.capture(2.0, rng);
  };
  const RArray a = run(7, 1), b = run(7, 1), c = run(8, 1);
  EXPECT_EQ((a - b).abs().maxCoeff(), 0.0);
  EXPECT_GT((a - c).abs().maxCoeff(), 0.0);

  SimulatedBench ideal(small_bench(ElementKind::fabricated, AsBuiltProfile{}));
  ideal.set_input(test_input(12));
  ideal.set_element_phase(tilt_phase(32));
  std::mt19937_64 rng(1);
  const RArray i = ideal.capture(2.0, rng);
  // Relative L2 change of the frame: shift/rotation/defocus/gain together move it by tens of percent.
  const double rel = std::sqrt((a - 64.0 - i).square().sum() / i.square().sum());
  EXPECT_GT(rel, 0.1);
}

TEST(SimulatedBench, GroundTruthDescribesTheWarpAndGain) {
  AsBuiltProfile p;
  p.gain = 0.8;
  p.misalignment = {3.0, -2.0, 0.0, 1.0};
  BenchOptions o = small_bench(ElementKind::psf, p);
  SimulatedBench bench(o);
  RArray delta = RArray::Zero(5, 5);
  delta(2, 2) = 1.0;
  bench.set_psf(delta);
  bench.set_input(test_input(12));
  // With a delta PSF the ideal image is the object itself, and the as-built image is it shifted by
  // (3, −2) camera pixels and scaled by the gain.
  EXPECT_LT((bench.ideal_image() - bench.object()).abs().maxCoeff(), 1e-9);
  const RArray got = bench.as_built_image(0.0);
  const RArray& obj = bench.object();
  for (int r = 2; r < 62; ++r)
    for (int c = 0; c < 61; ++c) ASSERT_NEAR(got(r - 2, c + 3), 0.8 * obj(r, c), 1e-9);
  EXPECT_EQ(bench.true_pose(0.0).shift_x_px, 3.0);
  EXPECT_EQ(bench.true_gain(0.0), 0.8);
  // Photon budget: a unit input pixel sends photons_per_ms, spread over m² = 4 camera pixels.
  EXPECT_NEAR(obj.sum(), test_input(12).sum() * 500.0, 1e-9);
}

TEST(SimulatedBench, DarkLevelMatchesADarkFrame) {
  AsBuiltProfile p = moderate();
  p.sensor.hot_pixel_fraction = 0.0;
  SimulatedBench bench(small_bench(ElementKind::psf, p));
  bench.set_psf(RArray::Ones(1, 1));
  bench.set_input(RArray::Zero(12, 12));
  std::mt19937_64 rng(3);
  const RArray dark = bench.capture(0.0, rng);
  EXPECT_NEAR(dark.mean(), bench.dark_level_counts(), 0.2);
}

TEST(SimulatedBench, AberrationsAndFabricationErrorChangeTheAsBuiltPsf) {
  AsBuiltProfile p = moderate();
  SimulatedBench bench(small_bench(ElementKind::fabricated, p));
  bench.set_element_phase(tilt_phase(32));
  const RArray design = bench.design_psf();
  const RArray built = bench.as_built_psf();
  EXPECT_NEAR(design.sum(), 1.0, 1e-12);
  EXPECT_NEAR(built.sum(), 1.0, 1e-12);
  // Strehl-like ratio: the aberrated peak is lower.
  EXPECT_LT(built.maxCoeff(), 0.9 * design.maxCoeff());
  // The design PSF's peak sits where the grating puts it: (+3, −2) samples from the axis (32, 32).
  Eigen::Index r, c;
  design.maxCoeff(&r, &c);
  EXPECT_EQ(c, 32 + 3);
  EXPECT_EQ(r, 32 - 2);
}

TEST(SimulatedBench, SlmFringingLowersTheFirstOrderOfABlazedGrating) {
  // A blazed 4-pixel grating on the SLM: fringing smooths the flyback, sending light back to order 0.
  AsBuiltProfile p;
  BenchOptions o = small_bench(ElementKind::slm, p);
  o.element.slm.oversample = 4;
  RArray phase(32, 32);
  for (int r = 0; r < 32; ++r)
    for (int c = 0; c < 32; ++c) phase(r, c) = 2 * std::numbers::pi * (c % 4) / 4.0;
  auto first_order = [&](double sigma) {
    o.element.slm.fringing_sigma_px = sigma;
    SimulatedBench bench(o);
    bench.set_element_phase(phase);
    const RArray& psf = bench.as_built_psf();  // 256 x 256; period 16 samples → order +1 at 256/16 = 16
    return psf(128, 128 + 16);
  };
  const double sharp = first_order(0.0), smooth = first_order(0.5);
  EXPECT_GT(sharp, 0.1);  // the peak sample of order +1 holds a good share of the light
  EXPECT_LT(smooth, 0.9 * sharp) << "sharp " << sharp << ", smooth " << smooth;
}

// The bench caches the images before the warp (docs/sim.md): a frame after other inputs and an element
// change must be the frame a fresh bench gives for the same input, element, time and noise stream.
// (Its cost is measured in bench/sim: hilo-bench-sim's "Simulated bench capture" line.)
TEST(SimulatedBench, CachedImagesGiveTheFramesOfAFreshBench) {
  const BenchOptions o = load_bench(configs_dir() / "sim.yaml");
  RArray x(28, 28), phase(o.element.slm.rows, o.element.slm.cols);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = double(i % 29) / 28.0;
  for (Eigen::Index i = 0; i < phase.size(); ++i) phase.data()[i] = 0.01 * double(i % 97);
  const RArray flat = RArray::Zero(phase.rows(), phase.cols());

  const RArray y = RArray::Constant(28, 28, 0.3);
  const auto fresh_frame = [&](const RArray& element, const RArray& input) {
    SimulatedBench fresh(o);
    fresh.set_element_phase(element);
    fresh.set_input(input);
    std::mt19937_64 r(7);
    return fresh.capture(0.0, r);
  };
  const auto same = [](const RArray& a, const RArray& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() && (a == b).all();
  };

  SimulatedBench used(o);
  std::mt19937_64 rng(1);
  used.set_element_phase(flat);
  used.set_input(x);
  const RArray flat_frame = used.capture(0.0, rng);
  used.set_element_phase(phase);  // a new element with the input kept
  std::mt19937_64 r1(7);
  const RArray after_element = used.capture(0.0, r1);
  EXPECT_TRUE(same(after_element, fresh_frame(phase, x)));
  EXPECT_GT((after_element - flat_frame).abs().maxCoeff(), 10.0) << "the element change did not reach the frame";
  used.set_input(y);  // a new input with the element kept
  std::mt19937_64 r2(7);
  const RArray after_input = used.capture(0.0, r2);
  EXPECT_TRUE(same(after_input, fresh_frame(phase, y)));
  EXPECT_GT((after_input - after_element).abs().maxCoeff(), 10.0) << "the input change did not reach the frame";
}

TEST(SimulatedBench, RejectsMisuse) {
  SimulatedBench bench(small_bench(ElementKind::slm, AsBuiltProfile{}));
  std::mt19937_64 rng(1);
  EXPECT_THROW(bench.capture(0.0, rng), std::logic_error);
  EXPECT_THROW(bench.set_input(RArray::Zero(3, 3)), std::invalid_argument);
  EXPECT_THROW(bench.set_element_phase(RArray::Zero(31, 32)), std::invalid_argument);
  EXPECT_THROW(bench.set_psf(RArray::Ones(3, 3)), std::invalid_argument);
  BenchOptions o = small_bench(ElementKind::slm, AsBuiltProfile{});
  o.input.camera_px_per_input_px = 8;
  EXPECT_THROW(SimulatedBench{o}, ConfigError);
}
