#pragma once
// The bench configuration: which backend plays each device role, with its options, the designed
// optics, and make_bench (the devices, unopened). Front ends open a bench with open_bench.hpp.
//
// YAML (configs/sim.yaml, configs/lab-example.yaml; schema in docs/devices.md):
//   roles:
//     input:   {backend: sim | display, ...backend options, retry: {...}}
//     element: {backend: sim | display | fixed, ...}
//     camera:  {backend: sim | opencv | genicam, ...}
//   design:    {...}   # the optics as designed (sim::parse_design); what the pipeline needs
//   simulator: {...}   # hilo::sim::load_bench; required when any role uses backend sim
//
// Parsing is strict: an unknown key, a wrong type or a value out of range throws sim::ConfigError whose
// message starts with the file and names the field, e.g.
//   "lab.yaml: roles.camera.exposure_ms must be > 0, got -1"
//   "lab.yaml: unknown key 'roles.camera.exposure' for backend genicam"
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "hilo/drivers/clock.hpp"
#include "hilo/drivers/display_slm.hpp"
#include "hilo/drivers/genicam_camera.hpp"
#include "hilo/drivers/opencv_camera.hpp"
#include "hilo/drivers/retry.hpp"
#include "hilo/drivers/sim_devices.hpp"
#include "hilo/sim/bench_model.hpp"

namespace hilo::drivers {

enum class SlmBackend { sim, display, fixed };
enum class CameraBackend { sim, opencv, genicam };

struct SlmRoleConfig {
  SlmBackend backend = SlmBackend::sim;
  DisplaySlmOptions display;  // backend display
  SimTiming timing;           // backend sim (settle_time_ms)
  FaultOptions faults;        // backend sim
  RetryPolicy retry;
};

struct CameraRoleConfig {
  CameraBackend backend = CameraBackend::sim;
  OpenCvCameraOptions opencv;
  GenicamCameraOptions genicam;
  SimTiming timing;            // backend sim
  FaultOptions faults;         // backend sim
  std::uint64_t noise_seed = 1;  // backend sim: sensor-noise generator
  RetryPolicy retry;
};

struct BenchConfig {
  SlmRoleConfig input;
  SlmRoleConfig element;
  CameraRoleConfig camera;
  std::optional<sim::BenchOptions> simulator;  // present iff the file has a `simulator:` section
  // The optics as designed, ideal profile: the `design:` section, or, in a file without one, the
  // `simulator:` section less its profile (the simulated bench is built as designed). Absent when the
  // file has neither: the bench then serves captures but not the pipeline.
  std::optional<sim::BenchOptions> design;
  bool has_hardware() const;  // any role not backed by the simulator
};

// `source` prefixes error messages; `base_dir` resolves the simulator's relative profile path.
BenchConfig parse_bench_config(const std::string& yaml_text, const std::string& source,
                               const std::filesystem::path& base_dir);
BenchConfig load_bench_config(const std::filesystem::path& path);

// The devices of one bench, owned here. `element` is null when the element is a fixed mask (backend
// fixed, or a simulated element of kind fabricated/psf): then the deploy job sets the simulated mask
// through `simulator->set_element_phase` / `set_psf`, or, on a real bench, there is nothing to drive.
// Every device is wrapped in its role's RetryPolicy; counters() of each wrapper are what the daemon
// reports per device (attempts, retries, failures, reconnects).
struct Bench {
  std::unique_ptr<sim::SimulatedBench> simulator;  // set when any role is simulated
  std::unique_ptr<RetryingSlm> input;
  std::unique_ptr<RetryingSlm> element;
  std::unique_ptr<RetryingCamera> camera;
};

// Builds (does not open) the devices over `clock`, which must outlive the bench: open_bench without
// the opening, for tests that drive each step. Throws sim::ConfigError when the configuration is
// inconsistent (a sim role without a simulator section).
Bench make_bench(const BenchConfig& config, Clock& clock);  // drivers/src/open_bench.cpp

}  // namespace hilo::drivers
