#pragma once
// Test adapter: the Slm and Camera interfaces over one sim::SimulatedBench, plus an ideal twin bench
// that serves as the predictor (the bench as designed). Frames are driven by the test: a grab renders
// one frame at the manual clock's time and advances the clock by the exposure; nothing runs on its own.
#include <memory>
#include <random>
#include <string>

#include <opencv2/core.hpp>

#include "hilo/calibration/probe.hpp"
#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/slm.hpp"
#include "hilo/sim/bench_model.hpp"
#include "hilo/sim/config.hpp"

namespace hilo::calibration::testing {

struct SimRig;

class SimInput final : public drivers::Slm {
 public:
  explicit SimInput(SimRig& rig) : rig_(rig) {}
  std::string name() const override { return "sim-input"; }
  int width_px() const override;
  int height_px() const override;
  double pixel_pitch_um() const override { return 8.0; }
  int bit_depth() const override { return 8; }
  double settle_time_ms() const override { return 0.0; }
  drivers::DeviceState state() const override { return drivers::DeviceState::ready; }
  drivers::DeviceStatus open() override { return std::nullopt; }
  void close() override {}
  drivers::DeviceStatus show(const cv::Mat& levels) override;
  int shows = 0;

 private:
  SimRig& rig_;
};

class SimElement final : public drivers::Slm {
 public:
  explicit SimElement(SimRig& rig) : rig_(rig) {}
  std::string name() const override { return "sim-element"; }
  int width_px() const override;
  int height_px() const override;
  double pixel_pitch_um() const override;
  int bit_depth() const override;
  double settle_time_ms() const override { return 0.0; }
  drivers::DeviceState state() const override { return drivers::DeviceState::ready; }
  drivers::DeviceStatus open() override { return std::nullopt; }
  void close() override {}
  drivers::DeviceStatus show(const cv::Mat& levels) override;

 private:
  SimRig& rig_;
};

class SimCamera final : public drivers::Camera {
 public:
  explicit SimCamera(SimRig& rig) : rig_(rig) {}
  std::string name() const override { return "sim-camera"; }
  int width_px() const override;
  int height_px() const override;
  drivers::DeviceState state() const override { return drivers::DeviceState::ready; }
  drivers::DeviceStatus open() override { return std::nullopt; }
  void close() override {}
  drivers::PixelFormat pixel_format() const override;
  drivers::DeviceStatus set_pixel_format(drivers::PixelFormat) override { return std::nullopt; }
  double exposure_ms() const override;
  drivers::DeviceStatus set_exposure_ms(double ms) override;
  double gain_db() const override { return 0.0; }
  drivers::DeviceStatus set_gain_db(double) override { return std::nullopt; }
  drivers::TriggerMode trigger_mode() const override { return drivers::TriggerMode::software; }
  drivers::DeviceStatus set_trigger_mode(drivers::TriggerMode) override { return std::nullopt; }
  drivers::DeviceResult<drivers::Frame> grab(std::chrono::milliseconds timeout) override;
  bool fail_next = false;  // the next grab times out (failure-path tests)

 private:
  SimRig& rig_;
  std::uint64_t seq_ = 0;
};

// Loads configs/sim.yaml (relative to the source tree, the tests' working directory) with the named
// profile from configs/profiles/, optionally re-seeded, and optionally another element kind.
sim::BenchOptions bench_options(const std::string& profile, std::uint64_t seed = 0,
                                sim::ElementKind kind = sim::ElementKind::slm);

struct SimRig {
  explicit SimRig(const sim::BenchOptions& options, std::uint64_t noise_seed = 7);

  sim::SimulatedBench bench;  // the "real" bench (as-built profile)
  sim::SimulatedBench twin;   // the bench as designed (ideal profile): the predictor
  std::unique_ptr<sim::CameraModel> camera_model;  // the bench camera at the current exposure
  double t_s = 0.0;
  std::mt19937_64 rng;
  SimInput input{*this};
  SimElement element{*this};
  SimCamera camera{*this};

  // Counts of the designed bench per ideal-image unit (photons / px / ms) at the current exposure.
  double counts_per_photon_rate() const;
  Predictor predictor();
  // Element phase (rad) on both benches (SLM: quantised through the LUT; fabricated: as fabricated).
  void set_element_phase(const sim::RArray& phase);
  void set_flat_element();
};

}  // namespace hilo::calibration::testing
