#include "sim_rig.hpp"

#include "hilo/calibration/probe.hpp"

namespace hilo::calibration::testing {

int SimInput::width_px() const { return rig_.bench.options().input.cols; }
int SimInput::height_px() const { return rig_.bench.options().input.rows; }
drivers::DeviceStatus SimInput::show(const cv::Mat& levels) {
  if (levels.rows != height_px() || levels.cols != width_px() || levels.type() != CV_8UC1)
    return drivers::DeviceError{drivers::DeviceErrc::invalid_argument, "sim-input: wrong pattern size or type"};
  const sim::RArray in = to_array(levels) / 255.0;
  rig_.bench.set_input(in);
  ++shows;
  return std::nullopt;
}

int SimElement::width_px() const { return rig_.bench.options().element.slm.cols; }
int SimElement::height_px() const { return rig_.bench.options().element.slm.rows; }
double SimElement::pixel_pitch_um() const { return rig_.bench.options().element.slm.pixel_pitch_um; }
int SimElement::bit_depth() const { return rig_.bench.options().element.slm.bit_depth; }
drivers::DeviceStatus SimElement::show(const cv::Mat& levels) {
  if (levels.rows != height_px() || levels.cols != width_px())
    return drivers::DeviceError{drivers::DeviceErrc::invalid_argument, "sim-element: wrong pattern size"};
  sim::Levels l(levels.rows, levels.cols);
  for (int r = 0; r < levels.rows; ++r)
    for (int c = 0; c < levels.cols; ++c)
      l(r, c) = levels.depth() == CV_8U ? levels.at<std::uint8_t>(r, c) : levels.at<std::uint16_t>(r, c);
  rig_.bench.set_element_levels(l);
  rig_.twin.set_element_levels(l);
  return std::nullopt;
}

int SimCamera::width_px() const { return rig_.camera_model->out_cols(); }
int SimCamera::height_px() const { return rig_.camera_model->out_rows(); }
drivers::PixelFormat SimCamera::pixel_format() const {
  const int b = rig_.camera_model->options().bit_depth;
  return b <= 8 ? drivers::PixelFormat::mono8 : b <= 12 ? drivers::PixelFormat::mono12 : drivers::PixelFormat::mono16;
}
double SimCamera::exposure_ms() const { return rig_.camera_model->options().exposure_ms; }
drivers::DeviceStatus SimCamera::set_exposure_ms(double ms) {
  auto o = rig_.camera_model->options();
  o.exposure_ms = ms;
  rig_.camera_model = std::make_unique<sim::CameraModel>(o);
  return std::nullopt;
}
drivers::DeviceResult<drivers::Frame> SimCamera::grab(std::chrono::milliseconds timeout) {
  if (fail_next) {
    fail_next = false;
    return drivers::DeviceError{drivers::DeviceErrc::timeout,
                                "camera 'sim-camera': grab timed out after " + std::to_string(timeout.count()) + " ms"};
  }
  const sim::RArray counts = rig_.camera_model->capture(rig_.bench.as_built_image(rig_.t_s), rig_.rng);
  drivers::Frame f;
  f.image = cv::Mat(int(counts.rows()), int(counts.cols()), CV_16UC1);
  for (int r = 0; r < f.image.rows; ++r)
    for (int c = 0; c < f.image.cols; ++c) f.image.at<std::uint16_t>(r, c) = std::uint16_t(counts(r, c));
  f.sequence = seq_++;
  f.timestamp_s = rig_.t_s;
  rig_.t_s += exposure_ms() * 1e-3;
  return f;
}

sim::BenchOptions bench_options(const std::string& profile, std::uint64_t seed, sim::ElementKind kind) {
  sim::BenchOptions o = sim::load_bench("configs/sim.yaml");
  o.profile = sim::load_profile("configs/profiles/" + profile + ".yaml");
  if (seed != 0) o.profile.seed = seed;
  o.element.kind = kind;
  return o;
}

namespace {
sim::BenchOptions ideal_of(sim::BenchOptions o) {
  o.profile = sim::AsBuiltProfile{};
  return o;
}
}  // namespace

SimRig::SimRig(const sim::BenchOptions& options, std::uint64_t noise_seed)
    : bench(options), twin(ideal_of(options)), rng(noise_seed) {
  camera_model = std::make_unique<sim::CameraModel>(bench.camera().options());
}

double SimRig::counts_per_photon_rate() const {
  const auto& c = camera_model->options();
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

}  // namespace hilo::calibration::testing
