#include "sim_rig.hpp"

#include <cmath>
#include <stdexcept>

#include "hilo/sim/config.hpp"

namespace hilo::calibration::testing {

TwinnedElement::TwinnedElement(sim::SimulatedBench& bench, sim::SimulatedBench& twin, drivers::Clock& clock,
                               drivers::Clock& twin_clock)
    : real_(drivers::SimSlmRole::element, bench, clock),
      twin_(drivers::SimSlmRole::element, twin, twin_clock, drivers::SimTiming::fast()) {}

drivers::DeviceStatus TwinnedElement::open() {
  if (auto e = twin_.open()) return e;
  return real_.open();
}

drivers::DeviceStatus TwinnedElement::show(const cv::Mat& levels) {
  if (auto e = real_.show(levels)) return e;
  return twin_.show(levels);
}

sim::BenchOptions bench_options(const std::string& profile, std::uint64_t seed, sim::ElementKind kind,
                                double exposure_ms) {
  sim::BenchOptions o = sim::load_bench("configs/sim.yaml");
  o.profile = sim::load_profile("configs/profiles/" + profile + ".yaml");
  if (seed != 0) o.profile.seed = seed;
  o.element.kind = kind;
  if (exposure_ms > 0.0) o.camera.exposure_ms = exposure_ms;
  return o;
}

namespace {
sim::BenchOptions ideal_of(sim::BenchOptions o) {
  o.profile = sim::AsBuiltProfile{};
  return o;
}
void must(const drivers::DeviceStatus& s) {
  if (s) throw std::runtime_error("sim rig: " + s->message);
}
}  // namespace

SimRig::SimRig(const sim::BenchOptions& options, std::uint64_t noise_seed, drivers::FaultOptions camera_faults)
    : bench(options),
      twin(ideal_of(options)),
      input(drivers::SimSlmRole::input, bench, clock),
      camera(bench, clock, noise_seed, {}, camera_faults) {
  if (options.element.kind == sim::ElementKind::slm)
    element = std::make_unique<TwinnedElement>(bench, twin, clock, twin_clock);
  must(input.open());
  must(camera.open());
  if (element) must(element->open());
}

double SimRig::counts_per_photon_rate() const {
  const auto& c = bench.camera().options();
  return c.exposure_ms * c.quantum_efficiency * double(c.binning * c.binning) / c.gain_e_per_count;
}

Predictor SimRig::predictor() {
  return [this](const sim::RArray& intensity) {
    twin.set_input(intensity);
    return sim::RArray(twin.ideal_image() * counts_per_photon_rate());
  };
}

void SimRig::set_element_phase(const sim::RArray& phase) {
  bench.set_element_phase(phase);
  twin.set_element_phase(phase);
}

void SimRig::set_flat_element() {
  const auto& s = bench.options().element.slm;
  set_element_phase(sim::RArray::Zero(s.rows, s.cols));
}

distill::OpticalStudent trained_like_student(std::mt19937_64& rng) {
  distill::StudentOptions so;
  distill::OpticalStudent s(so, distill::Shape{1, 28, 28}, 10);
  s.init(rng);
  // Smooth, centred kernels (what training produces): Gaussian blobs of different widths and offsets.
  const int K = so.kernels, k = so.kernel_size;
  distill::MatD kappa(K, k * k);
  for (int j = 0; j < K; ++j) {
    const double sx = 0.8 + 0.25 * j, cx = 3 + (j % 3) - 1, cy = 3 - (j % 2);
    for (int y = 0; y < k; ++y)
      for (int x = 0; x < k; ++x)
        kappa(j, y * k + x) = 0.05 * std::exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (2 * sx * sx)) + 1e-4;
  }
  s.set_kernels(kappa);
  return s;
}

}  // namespace hilo::calibration::testing
