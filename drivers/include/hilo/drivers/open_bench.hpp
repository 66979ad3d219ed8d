#pragma once
// The one way to open a bench: a BenchConfig becomes the clock, the devices (each wrapped in its role's
// RetryPolicy), their retry counters and the device mutex, with the devices opened, the input showing
// dark and the element showing its start pattern. hilod, hilo-pipeline and the tests all use it.
//
// Clocks: a config with any hardware role (BenchConfig::has_hardware) runs on a SteadyClock, so the
// SLMs' settle times and the retry back-offs are waited for in wall time. A ManualClock (virtual time:
// settle and exposure pass without waiting, a resumed pipeline reproduces the uninterrupted run) exists
// only when every role is simulated and OpenOptions::virtual_time asks for it; asking for it on a
// hardware config throws sim::ConfigError.
//
// Failure: a device that cannot be opened or cannot show its start pattern throws BenchOpenError,
// whose message names the role and the device ("cannot open the camera: genicam camera 'X': ...").
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include <opencv2/core.hpp>

#include "hilo/drivers/bench_config.hpp"

namespace hilo::drivers {

struct OpenOptions {
  bool virtual_time = false;
  // Levels shown on the element SLM once it is open (CV_8UC1 or CV_16UC1, the element's size); empty:
  // a flat pattern (all zeros, the open aperture).
  cv::Mat element_levels;
};

class BenchOpenError : public std::runtime_error {
 public:
  BenchOpenError(std::string role, const std::string& what) : std::runtime_error(what), role_(std::move(role)) {}
  const std::string& role() const { return role_; }  // "input", "element" or "camera"

 private:
  std::string role_;
};

// An opened bench. Not movable (the devices hold references to the clock); owned through unique_ptr.
// `input` and `camera` are never null; `element` is null for a fixed mask (see Bench).
struct OpenBench {
  std::unique_ptr<Clock> clock;
  ManualClock* virtual_clock = nullptr;  // == clock.get() with virtual time, else null
  std::unique_ptr<sim::SimulatedBench> simulator;  // set when any role is simulated
  std::unique_ptr<RetryingSlm> input;
  std::unique_ptr<RetryingSlm> element;
  std::unique_ptr<RetryingCamera> camera;
  SimCamera* sim_camera = nullptr;  // the camera's backend when it is the simulator's
  // The retry counters per device (attempts, retries, failures, reconnects); element's null without one.
  const RetryCounters* input_retries = nullptr;
  const RetryCounters* element_retries = nullptr;
  const RetryCounters* camera_retries = nullptr;
  // Held around every use of the devices by whoever drives them (captures, the pipeline, status).
  std::mutex mutex;

  OpenBench() = default;
  OpenBench(const OpenBench&) = delete;
  OpenBench& operator=(const OpenBench&) = delete;
};

// Makes one unopened backend device for a role. The default (real_backends()) builds the backends the
// config names; tests pass stubs that behave like hardware.
struct DeviceFactory {
  // role: "input" or "element". Returns null for a fixed element (nothing to drive).
  std::function<std::unique_ptr<Slm>(const SlmRoleConfig&, const std::string& role, Clock&, sim::SimulatedBench*)> slm;
  std::function<std::unique_ptr<Camera>(const CameraRoleConfig&, Clock&, sim::SimulatedBench*)> camera;
};
DeviceFactory real_backends();

// Opens the bench of `config`. Throws sim::ConfigError (virtual time on hardware, a sim role without a
// simulator section) or BenchOpenError (a device that is not there or refuses its start pattern).
std::unique_ptr<OpenBench> open_bench(const BenchConfig& config, const OpenOptions& options = {},
                                      const DeviceFactory& factory = real_backends());

}  // namespace hilo::drivers
