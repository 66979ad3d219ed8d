#pragma once
// Test bench for the calibration suites: the drivers' simulated backends (drivers::SimSlm as the input
// display, drivers::SimSlm as the element, drivers::SimCamera) over one sim::SimulatedBench with an
// as-built profile, on a ManualClock, plus what the drivers do not provide:
//   - an ideal twin bench (same config, ideal profile) that serves as the predictor (the bench as
//     designed), whose element follows every pattern shown on the real element (TwinnedElement);
//   - access to the real bench for ground truth (true_pose, true_gain, dark level, as-built PSF).
// Timing is the drivers' default model (SLM settle 10 ms, grab = exposure), so simulated time advances
// with every show and grab and drift acts as it would on the bench; nothing sleeps.
#include <memory>
#include <random>
#include <string>

#include "hilo/calibration/probe.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/drivers/clock.hpp"
#include "hilo/drivers/sim_devices.hpp"
#include "hilo/sim/bench_model.hpp"

namespace hilo::calibration::testing {

// An element SLM that shows every pattern on the real bench's element and on the twin's. Device
// errors are those of the real element; the twin's element never fails (no faults, no latency).
class TwinnedElement final : public drivers::Slm {
 public:
  TwinnedElement(sim::SimulatedBench& bench, sim::SimulatedBench& twin, drivers::Clock& clock,
                 drivers::Clock& twin_clock);
  std::string name() const override { return real_.name(); }
  int width_px() const override { return real_.width_px(); }
  int height_px() const override { return real_.height_px(); }
  double pixel_pitch_um() const override { return real_.pixel_pitch_um(); }
  int bit_depth() const override { return real_.bit_depth(); }
  double settle_time_ms() const override { return real_.settle_time_ms(); }
  drivers::DeviceState state() const override { return real_.state(); }
  drivers::DeviceStatus open() override;
  void close() override { real_.close(); }
  drivers::DeviceStatus show(const cv::Mat& levels) override;

 private:
  drivers::SimSlm real_, twin_;
};

// Loads configs/sim.yaml (relative to the source tree, the tests' working directory) with the named
// profile from configs/profiles/, optionally re-seeded, another element kind, another exposure (the
// simulated camera's exposure is fixed by the config, so a test that needs another builds another bench).
sim::BenchOptions bench_options(const std::string& profile, std::uint64_t seed = 0,
                                sim::ElementKind kind = sim::ElementKind::slm, double exposure_ms = 0.0);

struct SimRig {
  // Opens all devices. `camera_faults` injects faults into the camera (e.g. camera_timeout_rate = 1).
  explicit SimRig(const sim::BenchOptions& options, std::uint64_t noise_seed = 7,
                  drivers::FaultOptions camera_faults = {});

  drivers::ManualClock clock;
  drivers::ManualClock twin_clock;  // the twin's element settles on its own clock (takes no bench time)
  sim::SimulatedBench bench;        // the "real" bench (as-built profile): ground truth
  sim::SimulatedBench twin;         // the bench as designed (ideal profile): the predictor
  drivers::SimSlm input;
  drivers::SimCamera camera;
  std::unique_ptr<TwinnedElement> element;  // null for a fixed (fabricated) element

  double t_s() const { return clock.now_s(); }
  // Counts of the designed bench per ideal-image unit (photons / px / ms) at the configured exposure.
  double counts_per_photon_rate() const;
  // The design model: twin.ideal_image() of the input, in counts above dark.
  Predictor predictor();
  // Element phase (rad) on both benches directly (SLM: quantised through the LUT; fabricated: as
  // fabricated), the way the deploy job sets a fixed mask.
  void set_element_phase(const sim::RArray& phase);
  void set_flat_element();
};

// A student as training leaves it, without training: initialised from rng, its kernels smooth, centred
// Gaussian blobs of different widths and offsets (what the deploy and calibration suites deploy).
distill::OpticalStudent trained_like_student(std::mt19937_64& rng);

}  // namespace hilo::calibration::testing
