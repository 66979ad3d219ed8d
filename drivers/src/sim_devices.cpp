#include "hilo/drivers/sim_devices.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include <opencv2/core.hpp>

namespace hilo::drivers {

namespace {

std::string rate_rule(const char* field, double v) {
  if (v >= 0.0 && v <= 1.0) return {};
  std::ostringstream m;
  m << "faults." << field << " must be in [0, 1], got " << v;
  return m.str();
}

bool draw(std::mt19937_64& rng, double rate) {
  if (rate <= 0.0) return false;
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng) < rate;
}

std::chrono::microseconds us_of_ms(double ms) {
  return std::chrono::microseconds(static_cast<long long>(std::llround(ms * 1000.0)));
}

}  // namespace

std::string SimTiming::validate() const {
  std::ostringstream m;
  if (!(settle_time_ms >= 0.0)) m << "timing.settle_time_ms must be >= 0, got " << settle_time_ms;
  else if (!(frame_rate_hz >= 0.0)) m << "timing.frame_rate_hz must be >= 0, got " << frame_rate_hz;
  else if (!(readout_ms >= 0.0)) m << "timing.readout_ms must be >= 0, got " << readout_ms;
  return m.str();
}

std::string FaultOptions::validate() const {
  for (auto [field, v] : {std::pair{"camera_disconnect_rate", camera_disconnect_rate},
                          std::pair{"camera_timeout_rate", camera_timeout_rate},
                          std::pair{"corrupt_frame_rate", corrupt_frame_rate},
                          std::pair{"dropped_frame_rate", dropped_frame_rate},
                          std::pair{"slm_write_failure_rate", slm_write_failure_rate}})
    if (auto r = rate_rule(field, v); !r.empty()) return r;
  return {};
}

// ---- SimSlm ----

SimSlm::SimSlm(SimSlmRole role, sim::SimulatedBench& bench, Clock& clock, SimTiming timing, FaultOptions faults,
               std::string name)
    : role_(role), bench_(&bench), clock_(&clock), timing_(timing), faults_(faults), rng_(faults.seed),
      name_(name.empty() ? (role == SimSlmRole::input ? "sim-input" : "sim-element") : std::move(name)) {
  if (role_ == SimSlmRole::element && bench.options().element.kind != sim::ElementKind::slm)
    throw std::invalid_argument("slm '" + name_ + "': the simulated element is not an SLM (simulator.element.kind)");
}

int SimSlm::width_px() const {
  return role_ == SimSlmRole::input ? bench_->options().input.cols : bench_->options().element.slm.cols;
}
int SimSlm::height_px() const {
  return role_ == SimSlmRole::input ? bench_->options().input.rows : bench_->options().element.slm.rows;
}
double SimSlm::pixel_pitch_um() const {
  if (role_ == SimSlmRole::element) return bench_->options().element.slm.pixel_pitch_um;
  // An input pixel covers m camera pixels.
  const auto& o = bench_->options();
  return o.camera.pixel_pitch_um * o.input.camera_px_per_input_px;
}
int SimSlm::bit_depth() const {
  return role_ == SimSlmRole::input ? 8 : bench_->options().element.slm.bit_depth;
}

DeviceError SimSlm::error(DeviceErrc code, const std::string& what) const {
  return {code, "slm '" + name_ + "': " + what};
}

DeviceStatus SimSlm::open() {
  state_ = DeviceState::ready;
  return std::nullopt;
}
void SimSlm::close() { state_ = DeviceState::disconnected; }

DeviceStatus SimSlm::show(const cv::Mat& levels) {
  if (state_ == DeviceState::disconnected) return error(DeviceErrc::disconnected, "show on a closed device");
  const int depth = bit_depth();
  if (levels.type() != CV_8UC1 && levels.type() != CV_16UC1)
    return error(DeviceErrc::invalid_argument, "pattern must be CV_8UC1 or CV_16UC1");
  if (levels.cols != width_px() || levels.rows != height_px())
    return error(DeviceErrc::invalid_argument, "pattern is " + std::to_string(levels.cols) + "x" +
                                                   std::to_string(levels.rows) + ", the SLM is " +
                                                   std::to_string(width_px()) + "x" + std::to_string(height_px()));
  const int max_level = (1 << depth) - 1;
  if (levels.type() == CV_16UC1 || depth != 8) {
    double lo = 0.0, hi = 0.0;
    cv::minMaxLoc(levels, &lo, &hi);
    if (hi > max_level)
      return error(DeviceErrc::invalid_argument, "level " + std::to_string(static_cast<int>(hi)) +
                                                     " exceeds the bit depth " + std::to_string(depth));
  }
  if (draw(rng_, faults_.slm_write_failure_rate)) return error(DeviceErrc::write_failed, "injected write failure");
  state_ = DeviceState::busy;
  const int rows = levels.rows, cols = levels.cols;
  if (role_ == SimSlmRole::input) {
    sim::RArray intensity(rows, cols);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c)
        intensity(r, c) = (levels.type() == CV_8UC1 ? levels.at<std::uint8_t>(r, c) : levels.at<std::uint16_t>(r, c)) /
                          static_cast<double>(max_level);
    bench_->set_input(intensity);
  } else {
    sim::Levels l(rows, cols);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c)
        l(r, c) = levels.type() == CV_8UC1 ? levels.at<std::uint8_t>(r, c) : levels.at<std::uint16_t>(r, c);
    bench_->set_element_levels(l);
  }
  clock_->sleep_for(us_of_ms(timing_.settle_time_ms));
  ++shown_;
  state_ = DeviceState::ready;
  return std::nullopt;
}

// ---- SimCamera ----

void SimCamera::reseed(std::uint64_t noise_seed) {
  noise_rng_.seed(noise_seed);
  fault_rng_.seed(faults_.seed);
  last_frame_start_s_ = -1e300;
}

SimCamera::SimCamera(sim::SimulatedBench& bench, Clock& clock, std::uint64_t noise_seed, SimTiming timing,
                     FaultOptions faults, std::string name)
    : bench_(&bench), clock_(&clock), noise_rng_(noise_seed), timing_(timing), faults_(faults),
      fault_rng_(faults.seed), name_(std::move(name)) {
  const int b = bench.options().camera.bit_depth;
  format_ = b <= 8 ? PixelFormat::mono8 : (b <= 12 ? PixelFormat::mono12 : PixelFormat::mono16);
}

int SimCamera::width_px() const { return bench_->camera().out_cols(); }
int SimCamera::height_px() const { return bench_->camera().out_rows(); }
double SimCamera::exposure_ms() const { return bench_->options().camera.exposure_ms; }

DeviceError SimCamera::error(DeviceErrc code, const std::string& what) const {
  return {code, "camera '" + name_ + "': " + what};
}

DeviceStatus SimCamera::open() {
  state_ = DeviceState::ready;
  return std::nullopt;
}
void SimCamera::close() { state_ = DeviceState::disconnected; }

DeviceStatus SimCamera::set_pixel_format(PixelFormat f) {
  if (f != format_)
    return error(DeviceErrc::invalid_argument, "the simulated sensor is " + std::string(to_string(format_)) +
                                                   " (simulator.camera.bit_depth); " + std::string(to_string(f)) +
                                                   " is not offered");
  return std::nullopt;
}

DeviceStatus SimCamera::set_exposure_ms(double ms) {
  if (ms != exposure_ms())
    return error(DeviceErrc::invalid_argument, "exposure is fixed by simulator.camera.exposure_ms (" +
                                                   std::to_string(exposure_ms()) + " ms)");
  return std::nullopt;
}

DeviceStatus SimCamera::set_gain_db(double db) {
  if (db != 0.0)
    return error(DeviceErrc::invalid_argument, "gain is fixed by simulator.camera.gain_e_per_count (0 dB here)");
  return std::nullopt;
}

DeviceStatus SimCamera::set_trigger_mode(TriggerMode m) {
  trigger_ = m;  // both modes: a frame is computed on demand
  return std::nullopt;
}

DeviceResult<Frame> SimCamera::grab(std::chrono::milliseconds timeout) {
  if (state_ == DeviceState::disconnected) return error(DeviceErrc::disconnected, "grab on a closed or lost device");
  if (draw(fault_rng_, faults_.camera_disconnect_rate)) {
    state_ = DeviceState::disconnected;
    return error(DeviceErrc::disconnected, "injected disconnect");
  }
  if (draw(fault_rng_, faults_.camera_timeout_rate)) {
    clock_->sleep_for(timeout);
    return error(DeviceErrc::timeout, "grab timed out after " + std::to_string(timeout.count()) + " ms (injected)");
  }
  const bool corrupt = draw(fault_rng_, faults_.corrupt_frame_rate);
  if (draw(fault_rng_, faults_.dropped_frame_rate)) ++next_sequence_;  // a frame lost on the way

  state_ = DeviceState::busy;
  if (timing_.frame_rate_hz > 0.0) {
    const double earliest = last_frame_start_s_ + 1.0 / timing_.frame_rate_hz;
    const double wait_s = earliest - clock_->now_s();
    if (wait_s > 0.0) clock_->sleep_for(std::chrono::microseconds(std::llround(wait_s * 1e6)));
  }
  last_frame_start_s_ = clock_->now_s();
  clock_->sleep_for(us_of_ms((timing_.apply_exposure ? exposure_ms() : 0.0) + timing_.readout_ms));
  const std::uint64_t seq = next_sequence_++;
  if (corrupt) {
    state_ = DeviceState::ready;
    return error(DeviceErrc::corrupt_frame, "frame " + std::to_string(seq) + " failed its integrity check (injected)");
  }
  sim::RArray counts;
  try {
    counts = bench_->capture(last_frame_start_s_, noise_rng_);
  } catch (const std::logic_error& e) {
    state_ = DeviceState::ready;
    return error(DeviceErrc::invalid_argument, std::string("cannot capture: ") + e.what());
  }
  Frame f;
  const int type = format_ == PixelFormat::mono8 ? CV_8UC1 : CV_16UC1;
  f.image.create(static_cast<int>(counts.rows()), static_cast<int>(counts.cols()), type);
  for (int r = 0; r < f.image.rows; ++r)
    for (int c = 0; c < f.image.cols; ++c) {
      if (type == CV_8UC1) f.image.at<std::uint8_t>(r, c) = static_cast<std::uint8_t>(counts(r, c));
      else f.image.at<std::uint16_t>(r, c) = static_cast<std::uint16_t>(counts(r, c));
    }
  f.sequence = seq;
  f.timestamp_s = clock_->now_s();
  state_ = DeviceState::ready;
  return f;
}

}  // namespace hilo::drivers
