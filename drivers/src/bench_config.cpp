#include "hilo/drivers/bench_config.hpp"

#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "hilo/io/yaml_options.hpp"
#include "hilo/sim/config.hpp"
#include "hilo/sim/config_error.hpp"

namespace hilo::drivers {

namespace {

using sim::ConfigError;

// A role's mapping is read in one go through io::read_options (read_options_at): unknown keys with a
// suggestion, wrong types, each with the key's line. Only `backend` is looked at first, to choose the
// struct; a value rule broken (validate()) is re-rooted at the role.
struct Role {
  YAML::Node node;
  std::string path;    // "roles.camera"
  std::string source;  // the file, prefixing every message

  [[noreturn]] void fail(const std::string& what) const { throw ConfigError(source + ": " + what); }

  std::string backend() const {
    const YAML::Node v = node["backend"];
    if (!v) return "";
    if (!v.IsScalar()) fail(path + ".backend must be a string");
    return v.Scalar();
  }

  // An options validate() message, re-rooted at this role: "display.monitor must ..." with prefix
  // "display" → "roles.element.monitor must ..."; `sub` names a nested mapping ("faults").
  void check(const std::string& rule, const std::string& prefix, const std::string& sub = "") const {
    if (rule.empty()) return;
    const std::string at = sub.empty() ? path : path + "." + sub;
    if (rule.rfind(prefix + ".", 0) == 0) fail(at + "." + rule.substr(prefix.size() + 1));
    fail(at + ": " + rule);
  }
};

// T from the role's mapping through io::read_options, less the keys handled elsewhere.
template <class T>
T read_options_at(const Role& r, const T& defaults, std::initializer_list<const char*> handled_elsewhere = {}) {
  io::KeyLines lines;
  if (r.node.Mark().line >= 0) lines[r.path] = r.node.Mark().line + 1;  // errors about the mapping as a whole
  nlohmann::json j = io::yaml_to_json(r.node, &lines, r.path);
  for (const char* k : handled_elsewhere) j.erase(k);
  try {
    return io::read_yaml_options<T>(j, lines, r.path, defaults);
  } catch (const io::OptionsError& e) {
    r.fail(e.what());
  }
}

// The keys of a role with nothing else to set (an element of backend fixed).
struct RoleKeys {
  std::string backend;
  RetryPolicy retry;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RoleKeys, backend, retry)

// The role's `retry` mapping (defaults when absent), for roles whose other keys are a device's options.
RetryPolicy read_retry(const Role& r) {
  const YAML::Node n = r.node["retry"];
  if (!n) return {};
  const Role rr{n, r.path + ".retry", r.source};
  if (!n.IsMap()) rr.fail(rr.path + " must be a mapping");
  return read_options_at(rr, RetryPolicy{});
}

// The mapping of a role whose backend is sim, as the bench file writes it: SimTiming's keys
// that apply to the device, its faults and its retry policy.
struct SimSlmRole {
  std::string backend = "sim";
  double settle_time_ms = SimTiming{}.settle_time_ms;
  FaultOptions faults;
  RetryPolicy retry;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SimSlmRole, backend, settle_time_ms, faults, retry)

struct SimCameraRole {
  std::string backend = "sim";
  double frame_rate_hz = SimTiming{}.frame_rate_hz;
  double readout_ms = SimTiming{}.readout_ms;
  bool wait_exposure = SimTiming{}.apply_exposure;  // grab() waits the exposure time
  std::uint64_t noise_seed = 1;
  FaultOptions faults;
  RetryPolicy retry;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SimCameraRole, backend, frame_rate_hz, readout_ms, wait_exposure,
                                                noise_seed, faults, retry)

void check_sim_role(const Role& r, const SimTiming& t, const FaultOptions& f) {
  r.check(t.validate(), "timing");
  r.check(f.validate(), "faults", "faults");
}

Role role_at(const YAML::Node& node, std::string path, std::string source) {
  Role r{node, std::move(path), std::move(source)};
  if (!node || !node.IsMap()) r.fail(r.path + " must be a mapping with a 'backend' key");
  return r;
}

SlmRoleConfig read_slm_role(const YAML::Node& node, const std::string& role, const std::string& source) {
  const Role r = role_at(node, "roles." + role, source);
  SlmRoleConfig c;
  const std::string backend = r.backend();
  if (backend == "sim") {
    const auto k = read_options_at(r, SimSlmRole{});
    c.backend = SlmBackend::sim;
    c.timing.settle_time_ms = k.settle_time_ms;
    c.faults = k.faults;
    c.retry = k.retry;
    check_sim_role(r, c.timing, c.faults);
  } else if (backend == "display") {
    c.backend = SlmBackend::display;
    DisplaySlmOptions defaults;
    defaults.name = role;
    c.display = read_options_at(r, defaults, {"backend", "retry"});
    r.check(c.display.validate(), "display");
    c.retry = read_retry(r);
  } else if (backend == "fixed" && role == "element") {
    c.backend = SlmBackend::fixed;
    c.retry = read_options_at(r, RoleKeys{}).retry;
  } else {
    r.fail(r.path + ".backend must be " + std::string(role == "element" ? "sim, display or fixed" : "sim or display") +
           ", got '" + backend + "'");
  }
  r.check(c.retry.validate(), "retry", "retry");
  return c;
}

CameraRoleConfig read_camera_role(const YAML::Node& node, const std::string& source) {
  const Role r = role_at(node, "roles.camera", source);
  CameraRoleConfig c;
  const std::string backend = r.backend();
  if (backend == "sim") {
    const auto k = read_options_at(r, SimCameraRole{});
    c.backend = CameraBackend::sim;
    c.timing = {SimTiming{}.settle_time_ms, k.frame_rate_hz, k.readout_ms, k.wait_exposure};
    c.faults = k.faults;
    c.noise_seed = k.noise_seed;
    c.retry = k.retry;
    check_sim_role(r, c.timing, c.faults);
  } else if (backend == "opencv") {
    c.backend = CameraBackend::opencv;
    OpenCvCameraOptions defaults;
    defaults.name = "camera";
    c.opencv = read_options_at(r, defaults, {"backend", "retry"});
    r.check(c.opencv.validate(), "opencv");
    c.retry = read_retry(r);
  } else if (backend == "genicam") {
    c.backend = CameraBackend::genicam;
    GenicamCameraOptions defaults;
    defaults.name = "camera";
    c.genicam = read_options_at(r, defaults, {"backend", "retry"});
    r.check(c.genicam.validate(), "genicam");
    c.retry = read_retry(r);
  } else {
    r.fail("roles.camera.backend must be sim, opencv or genicam, got '" + backend + "'");
  }
  r.check(c.retry.validate(), "retry", "retry");
  return c;
}

}  // namespace

BenchConfig parse_bench_config(const std::string& yaml_text, const std::string& source,
                               const std::filesystem::path& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ": YAML syntax error: " + e.what());
  }
  if (!root || !root.IsMap()) throw ConfigError(source + ": a bench file is a mapping with a 'roles' section");
  const YAML::Node roles = root["roles"];
  if (!roles || !roles.IsMap()) throw ConfigError(source + ": roles must be a mapping with input, element and camera");
  for (const auto& kv : roles) {
    const std::string k = kv.first.as<std::string>();
    if (k != "input" && k != "element" && k != "camera")
      throw ConfigError(source + ": unknown key 'roles." + k + "' (roles are input, element, camera)");
  }
  for (const char* role : {"input", "element", "camera"})
    if (!roles[role]) throw ConfigError(source + ": roles." + role + " is missing");
  BenchConfig c;
  c.input = read_slm_role(roles["input"], "input", source);
  c.element = read_slm_role(roles["element"], "element", source);
  c.camera = read_camera_role(roles["camera"], source);
  if (root["simulator"]) c.simulator = sim::parse_bench(yaml_text, source, base_dir);
  c.design = sim::parse_design(yaml_text, source);
  if (!c.design && c.simulator) {
    c.design = *c.simulator;
    c.design->profile = sim::AsBuiltProfile{};
  }
  const bool needs_sim = c.input.backend == SlmBackend::sim || c.element.backend == SlmBackend::sim ||
                         c.camera.backend == CameraBackend::sim;
  if (needs_sim && !c.simulator)
    throw ConfigError(source + ": a role uses backend sim, so the file needs a 'simulator' section");
  return c;
}

bool BenchConfig::has_hardware() const {
  return input.backend != SlmBackend::sim || (element.backend != SlmBackend::sim && element.backend != SlmBackend::fixed) ||
         camera.backend != CameraBackend::sim;
}

BenchConfig load_bench_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path.string() + ": cannot open the bench file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_bench_config(text.str(), path.string(), path.parent_path());
}

}  // namespace hilo::drivers
