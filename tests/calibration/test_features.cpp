#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "hilo/calibration/deploy.hpp"
#include "hilo/calibration/features.hpp"
#include "hilo/calibration/linearity.hpp"
#include "hilo/calibration/registration.hpp"
#include "hilo/sim/imaging.hpp"
#include "hilo/sim/optics.hpp"
#include "sim_rig.hpp"

namespace hilo::calibration {
namespace {

using testing::SimRig;
using testing::bench_options;

double rel_rms(const std::vector<RArray>& a, const std::vector<RArray>& b) {
  double num = 0, den = 0;
  for (std::size_t j = 0; j < a.size(); ++j) {
    num += (a[j] - b[j]).square().sum();
    den += b[j].square().sum();
  }
  return std::sqrt(num / den);
}

std::vector<RArray> crop(const RArray& img, const TileLayout& l) {
  std::vector<RArray> maps;
  for (int j = 0; j < l.count(); ++j) maps.emplace_back(img.block(l.map_origin(j).x(), l.map_origin(j).y(), l.map_rows, l.map_cols));
  return maps;
}

struct Outcome {
  double corrected_vs_ideal, raw_vs_ideal, corrected_vs_truth, raw_vs_truth, rounding;
};

// Calibrate (dark, registration with a flat element, gain), deploy a retrieved element, show a test
// image and compare the extracted maps with the ideal model's and with the as-built truth's.
Outcome run(const char* profile) {
  SimRig rig(bench_options(profile));
  rig.set_flat_element();
  ProbeRig probe(rig.input, rig.camera);
  BenchCalibration cal;
  cal.dark = measure_dark(probe).value();
  std::mt19937_64 rng(1);
  const PoseFit fit = register_input_to_camera(probe, rig.predictor(), cal.dark, {}, rng).value().fit;
  cal.pose = fit.pose;
  cal.gain = measure_linearity(probe, rig.predictor(), cal.dark, fit).value().gain;
  const auto [r0, c0] = rig.bench.object_origin();
  cal.layout = tile_layout(sim::KernelTiling{}, r0, c0);
  std::vector<RArray> kernels;
  std::uniform_real_distribution<double> u(0, 1);
  for (int j = 0; j < 8; ++j) {
    RArray k(7, 7);
    for (Eigen::Index i = 0; i < k.size(); ++i) k.data()[i] = u(rng);
    kernels.push_back(k);
  }
  const PhaseDesign d = retrieve_phase(kernels, cal.layout, sim::circular_aperture(64, 64, 1.0, 32.0, 4), 2,
                                       {60, 150, 0.05}, rng);
  EXPECT_FALSE(deploy_phase(*rig.element, d.phase, sim::SlmModel(rig.bench.options().element.slm)));
  // A test image: a random smooth blob pattern in [0, 1].
  RArray image = RArray::Zero(28, 28);
  for (int b = 0; b < 6; ++b) {
    const double x0 = 4 + 20 * u(rng), y0 = 4 + 20 * u(rng);
    for (int r = 0; r < 28; ++r)
      for (int c = 0; c < 28; ++c) image(r, c) += std::exp(-((c - x0) * (c - x0) + (r - y0) * (r - y0)) / 8.0);
  }
  image = (image / image.maxCoeff()).min(1.0);
  const RArray frame = probe.capture(image, 4).value();
  const auto ideal = crop(rig.predictor()(image), cal.layout);
  // As-built truth: the as-built PSF's image on the design grid, in predictor units (gain removed).
  const auto truth =
      crop(sim::incoherent_image(rig.bench.object(), rig.bench.as_built_psf()) * rig.counts_per_photon_rate(), cal.layout);
  const auto corrected = extract_features(frame, cal);
  ExtractOptions raw_opt;
  raw_opt.correct_registration = false;
  raw_opt.correct_gain = false;
  const auto raw = extract_features(frame, cal, raw_opt);
  double s2 = 0, n = 0;
  for (const auto& m : truth) s2 += m.square().sum(), n += double(m.size());
  // ADC rounding: 1/√12 count rms, over 4 averaged frames it does not average out on a noiseless sensor.
  const double rounding = (1.0 / std::sqrt(12.0)) / std::sqrt(s2 / n);
  Outcome o{rel_rms(corrected, ideal), rel_rms(raw, ideal), rel_rms(corrected, truth), rel_rms(raw, truth), rounding};
  std::printf("[%s] relative rms error of the maps: corrected vs ideal %.4f, raw vs ideal %.4f; corrected vs as-built "
              "truth %.4f, raw vs truth %.4f; ADC rounding level %.4f\n",
              profile, o.corrected_vs_ideal, o.raw_vs_ideal, o.corrected_vs_truth, o.raw_vs_truth, o.rounding);
  return o;
}

TEST(Features, IdealProfileGivesTheIdealModelsMapsToAdcRounding) {
  const Outcome o = run("ideal");
  // Noiseless sensor: against the as-built truth only ADC rounding is left; against the ideal model
  // also the element's SLM fringing (part of the bench, not of the profile).
  EXPECT_LT(o.corrected_vs_truth, 1.2 * o.rounding);
  EXPECT_LT(o.corrected_vs_ideal, 1.2 * o.rounding + 0.01);
}

TEST(Features, RegistrationBringsModerateMapsMuchCloserToTruth) {
  const Outcome o = run("moderate");
  EXPECT_LT(o.corrected_vs_truth, 0.5 * o.raw_vs_truth);
  EXPECT_LT(o.corrected_vs_ideal, o.raw_vs_ideal);
}

TEST(Features, RejectsACalibrationThatDoesNotFitTheFrame) {
  BenchCalibration cal;
  cal.dark.dark = RArray::Zero(10, 10);
  cal.layout.offset = {{0, 0}};
  EXPECT_THROW(extract_features(RArray::Zero(20, 20), cal), std::invalid_argument);
}

}  // namespace
}  // namespace hilo::calibration
