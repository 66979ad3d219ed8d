#pragma once
// Simulated backends: an input SLM/display, an element SLM and a camera over one shared
// hilo::sim::SimulatedBench, so the whole pipeline runs without hardware.
//
// Roles (DESIGN §3):
//   SimSlm role input    amplitude/intensity display: levels l of bit depth b become the bench input
//                        intensity l / (2^b − 1); size = simulator.input rows × cols.
//   SimSlm role element  phase SLM: levels go to SimulatedBench::set_element_levels (LUT, fringing and
//                        the as-built errors apply there); size, pitch, bit depth = simulator.element.slm.
//   A fixed fabricated mask (simulator.element.kind fabricated) is not an Slm: the deploy job sets its
//   phase once through SimulatedBench::set_element_phase.
//   SimCamera            grab() = SimulatedBench::capture(clock.now_s(), rng): counts of the camera
//                        model as CV_16UC1 (mono12 for bit depth ≤ 12, mono16 above) or CV_8UC1 when
//                        the sensor is 8-bit. Exposure and gain are those of simulator.camera: the
//                        bench fixes them at construction, so setting another value is refused with
//                        invalid_argument (the daemon adjusts them in the bench config instead).
//
// Timing model, all on the injected Clock (a ManualClock in tests, so nothing sleeps):
//   show()  waits settle_time_ms after the pattern is applied;
//   grab()  a frame starts no earlier than one frame period (1 / frame_rate_hz; 0 = no limit) after the
//           previous one, then takes exposure_ms + readout_ms; timestamp_s = clock time at readout end.
// SimTiming::fast() is the as-fast-as-possible mode: every latency 0.
//
// Faults, injected at seeded rates (all 0 by default): per grab, in this order of draws — disconnect
// (state disconnected; every call fails with disconnected until open()), timeout (waits the timeout on
// the clock, no frame consumed), corrupt (a frame is consumed: sequence advances, corrupt_frame
// returned), drop (one frame is lost: the sequence skips a number, the next frame is returned); per
// show, write failure (write_failed, pattern not applied). The devices share nothing but the bench:
// one thread drives them (the bench is not thread-safe).
#include <cstdint>
#include <random>
#include <string>

#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/clock.hpp"
#include "hilo/drivers/slm.hpp"
#include "hilo/sim/bench_model.hpp"

namespace hilo::drivers {

struct SimTiming {
  double settle_time_ms = 10.0;  // SLM settle after show()
  double frame_rate_hz = 0.0;    // camera frame-rate limit; 0 = none
  double readout_ms = 0.0;       // camera readout after the exposure
  bool apply_exposure = true;    // grab() waits the exposure time

  static SimTiming fast() { return {0.0, 0.0, 0.0, false}; }
  // Empty when valid, else the violated rule, e.g. "timing.frame_rate_hz must be >= 0, got -1".
  [[nodiscard]] std::string validate() const;
};

struct FaultOptions {
  std::uint64_t seed = 1;
  double camera_disconnect_rate = 0.0;  // per grab
  double camera_timeout_rate = 0.0;     // per grab
  double corrupt_frame_rate = 0.0;      // per grab
  double dropped_frame_rate = 0.0;      // per grab
  double slm_write_failure_rate = 0.0;  // per show

  [[nodiscard]] std::string validate() const;  // "faults.camera_timeout_rate must be in [0, 1], got 2"
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FaultOptions, seed, camera_disconnect_rate, camera_timeout_rate,
                                                corrupt_frame_rate, dropped_frame_rate, slm_write_failure_rate)

enum class SimSlmRole { input, element };

class SimSlm final : public Slm {
 public:
  // The bench and clock must outlive the device. Throws std::invalid_argument for role element on a
  // bench whose element is not an SLM.
  SimSlm(SimSlmRole role, sim::SimulatedBench& bench, Clock& clock, SimTiming timing = {},
         FaultOptions faults = {}, std::string name = "");

  std::string name() const override { return name_; }
  int width_px() const override;
  int height_px() const override;
  double pixel_pitch_um() const override;
  int bit_depth() const override;
  double settle_time_ms() const override { return timing_.settle_time_ms; }
  DeviceState state() const override { return state_; }
  DeviceStatus open() override;
  void close() override;
  DeviceStatus show(const cv::Mat& levels) override;

  std::uint64_t patterns_shown() const { return shown_; }

 private:
  DeviceError error(DeviceErrc code, const std::string& what) const;
  SimSlmRole role_;
  sim::SimulatedBench* bench_;
  Clock* clock_;
  SimTiming timing_;
  FaultOptions faults_;
  std::mt19937_64 rng_;
  std::string name_;
  DeviceState state_ = DeviceState::disconnected;
  std::uint64_t shown_ = 0;
};

class SimCamera final : public Camera {
 public:
  // The bench and clock must outlive the device. `noise_rng` draws the sensor noise, the fault
  // draws use their own generator seeded with faults.seed.
  SimCamera(sim::SimulatedBench& bench, Clock& clock, std::uint64_t noise_seed, SimTiming timing = {},
            FaultOptions faults = {}, std::string name = "sim-camera");

  std::string name() const override { return name_; }
  int width_px() const override;
  int height_px() const override;
  DeviceState state() const override { return state_; }
  DeviceStatus open() override;
  void close() override;
  PixelFormat pixel_format() const override { return format_; }
  DeviceStatus set_pixel_format(PixelFormat f) override;
  double exposure_ms() const override;
  DeviceStatus set_exposure_ms(double ms) override;
  double gain_db() const override { return 0.0; }
  DeviceStatus set_gain_db(double db) override;
  TriggerMode trigger_mode() const override { return trigger_; }
  DeviceStatus set_trigger_mode(TriggerMode m) override;
  DeviceResult<Frame> grab(std::chrono::milliseconds timeout) override;
  // Restarts the sensor-noise and fault generators (noise_seed, faults.seed) so a simulation can be
  // repeated exactly; frame sequence numbers keep counting.
  void reseed(std::uint64_t noise_seed);

 private:
  DeviceError error(DeviceErrc code, const std::string& what) const;
  sim::SimulatedBench* bench_;
  Clock* clock_;
  std::mt19937_64 noise_rng_;
  SimTiming timing_;
  FaultOptions faults_;
  std::mt19937_64 fault_rng_;
  std::string name_;
  PixelFormat format_;
  TriggerMode trigger_ = TriggerMode::software;
  DeviceState state_ = DeviceState::disconnected;
  std::uint64_t next_sequence_ = 0;
  double last_frame_start_s_ = -1e300;
};

}  // namespace hilo::drivers
