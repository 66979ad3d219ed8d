#include "hilo/drivers/open_bench.hpp"

#include "hilo/sim/config_error.hpp"

namespace hilo::drivers {

using sim::ConfigError;

namespace {
// The devices of `config` over `clock`, each wrapped in its role's RetryPolicy, unopened.
Bench build(const BenchConfig& config, Clock& clock, const DeviceFactory& factory) {
  Bench b;
  if (config.simulator) b.simulator = std::make_unique<sim::SimulatedBench>(*config.simulator);
  auto make_slm = [&](const SlmRoleConfig& r, const char* role) -> std::unique_ptr<RetryingSlm> {
    std::unique_ptr<Slm> dev = factory.slm(r, role, clock, b.simulator.get());
    if (!dev) return nullptr;
    return std::make_unique<RetryingSlm>(std::move(dev), r.retry, clock);
  };
  b.input = make_slm(config.input, "input");
  if (!b.input) throw ConfigError("roles.input: the input must be a device (sim or display)");
  b.element = make_slm(config.element, "element");
  b.camera = std::make_unique<RetryingCamera>(factory.camera(config.camera, clock, b.simulator.get()),
                                              config.camera.retry, clock);
  return b;
}

sim::SimulatedBench& need_sim(sim::SimulatedBench* s, const std::string& role) {
  if (!s) throw ConfigError("roles." + role + " uses backend sim without a simulator section");
  return *s;
}

cv::Mat zeros_for(const Slm& s) {
  return cv::Mat::zeros(s.height_px(), s.width_px(), s.bit_depth() > 8 ? CV_16UC1 : CV_8UC1);
}
}  // namespace

DeviceFactory real_backends() {
  DeviceFactory f;
  f.slm = [](const SlmRoleConfig& r, const std::string& role, Clock& clock,
             sim::SimulatedBench* simulator) -> std::unique_ptr<Slm> {
    switch (r.backend) {
      case SlmBackend::sim: {
        sim::SimulatedBench& s = need_sim(simulator, role);
        const SimSlmRole sim_role = role == "element" ? SimSlmRole::element : SimSlmRole::input;
        if (sim_role == SimSlmRole::element && s.options().element.kind != sim::ElementKind::slm)
          return nullptr;  // a simulated fixed mask
        return std::make_unique<SimSlm>(sim_role, s, clock, r.timing, r.faults);
      }
      case SlmBackend::display: return std::make_unique<DisplaySlm>(r.display, clock);
      case SlmBackend::fixed: return nullptr;
    }
    return nullptr;
  };
  f.camera = [](const CameraRoleConfig& c, Clock& clock, sim::SimulatedBench* simulator) -> std::unique_ptr<Camera> {
    switch (c.backend) {
      case CameraBackend::sim:
        return std::make_unique<SimCamera>(need_sim(simulator, "camera"), clock, c.noise_seed, c.timing, c.faults);
      case CameraBackend::opencv: return std::make_unique<OpenCvCamera>(c.opencv);
      case CameraBackend::genicam: return std::make_unique<GenicamCamera>(c.genicam);
    }
    return nullptr;
  };
  return f;
}

Bench make_bench(const BenchConfig& config, Clock& clock) { return build(config, clock, real_backends()); }

std::unique_ptr<OpenBench> open_bench(const BenchConfig& config, const OpenOptions& options,
                                      const DeviceFactory& factory) {
  if (options.virtual_time && config.has_hardware())
    throw ConfigError("virtual time needs every role simulated; this bench has hardware roles, which run on the "
                      "steady clock");
  auto ob = std::make_unique<OpenBench>();
  if (options.virtual_time) {
    auto manual = std::make_unique<ManualClock>();
    ob->virtual_clock = manual.get();
    ob->clock = std::move(manual);
  } else {
    ob->clock = std::make_unique<SteadyClock>();
  }
  Bench b = build(config, *ob->clock, factory);
  ob->simulator = std::move(b.simulator);
  ob->input = std::move(b.input);
  ob->element = std::move(b.element);
  ob->camera = std::move(b.camera);
  ob->sim_camera = dynamic_cast<SimCamera*>(&ob->camera->inner());
  ob->input_retries = &ob->input->counters();
  ob->element_retries = ob->element ? &ob->element->counters() : nullptr;
  ob->camera_retries = &ob->camera->counters();

  // The element first (captures work before any deploy job), then the input dark (a grab before any
  // capture records the dark frame), then the camera.
  if (ob->element) {
    if (auto e = ob->element->open()) throw BenchOpenError("element", "cannot open the element SLM: " + e->message);
    const cv::Mat levels = options.element_levels.empty() ? zeros_for(*ob->element) : options.element_levels;
    if (auto e = ob->element->show(levels))
      throw BenchOpenError("element", "cannot show the element's start pattern: " + e->message);
  }
  if (auto e = ob->input->open()) throw BenchOpenError("input", "cannot open the input SLM: " + e->message);
  if (auto e = ob->input->show(zeros_for(*ob->input)))
    throw BenchOpenError("input", "cannot show the dark input pattern: " + e->message);
  if (auto e = ob->camera->open()) throw BenchOpenError("camera", "cannot open the camera: " + e->message);
  return ob;
}

}  // namespace hilo::drivers
