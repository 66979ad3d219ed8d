#include "hilo/drivers/bench_config.hpp"

#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "hilo/io/yaml_options.hpp"
#include "hilo/sim/config.hpp"
#include "hilo/sim/config_error.hpp"

namespace hilo::drivers {

namespace {

using sim::ConfigError;

// Reads one role mapping, checking keys against what its backend accepts.
class RoleReader {
 public:
  RoleReader(const YAML::Node& node, std::string path, std::string source)
      : node_(node), path_(std::move(path)), source_(std::move(source)) {
    if (!node_ || !node_.IsMap()) fail(path_ + " must be a mapping with a 'backend' key");
  }

  [[noreturn]] void fail(const std::string& what) const { throw ConfigError(source_ + ": " + what); }

  std::string backend() {
    return get_string("backend", "");
  }

  std::string get_string(const std::string& key, const std::string& fallback) {
    seen_.insert(key);
    const YAML::Node v = node_[key];
    if (!v) return fallback;
    if (!v.IsScalar()) fail(path_ + "." + key + " must be a string");
    return v.as<std::string>();
  }

  double get_double(const std::string& key, double fallback) {
    seen_.insert(key);
    const YAML::Node v = node_[key];
    if (!v) return fallback;
    try {
      return v.as<double>();
    } catch (const YAML::Exception&) {
      fail(path_ + "." + key + " must be a number, got '" + v.as<std::string>("?") + "'");
    }
  }

  std::uint64_t get_seed(const std::string& key, std::uint64_t fallback) {
    seen_.insert(key);
    const YAML::Node v = node_[key];
    if (!v) return fallback;
    std::uint64_t u = 0;
    if (!v.IsScalar() || !YAML::convert<std::uint64_t>::decode(v, u))
      fail(path_ + "." + key + " must be a non-negative integer, got '" + v.as<std::string>("?") + "'");
    return u;
  }

  YAML::Node get_map(const std::string& key) {
    seen_.insert(key);
    const YAML::Node v = node_[key];
    if (v && !v.IsMap()) fail(path_ + "." + key + " must be a mapping");
    return v;
  }

  // The whole mapping was read elsewhere (read_options_at), which refused unknown keys itself.
  void accept_all() {
    for (const auto& kv : node_) seen_.insert(kv.first.as<std::string>());
  }

  // After every accepted key was read: anything else is an error.
  void reject_unknown(const std::string& backend) const {
    for (const auto& kv : node_) {
      const std::string k = kv.first.as<std::string>();
      if (!seen_.count(k)) fail("unknown key '" + path_ + "." + k + "' for backend " + backend);
    }
  }

  // An options validate() message, re-rooted at this role: "display.monitor must ..." →
  // "roles.element.monitor must ...".
  void check(const std::string& rule, const std::string& prefix) const {
    if (rule.empty()) return;
    std::string m = rule;
    if (m.rfind(prefix + ".", 0) == 0) m = path_ + "." + m.substr(prefix.size() + 1);
    else m = path_ + ": " + m;
    fail(m);
  }

  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }

 private:
  YAML::Node node_;
  std::string path_;
  std::string source_;
  std::set<std::string> seen_;
};

// A backend's options struct from its mapping through io::read_options (unknown keys with a
// suggestion, wrong types, each with the key's line), less the keys the role reader handles itself.
template <class T>
T read_options_at(const YAML::Node& node, const std::string& path, const std::string& source, const T& defaults,
                  std::initializer_list<const char*> handled_elsewhere = {}) {
  io::KeyLines lines;
  if (node.Mark().line >= 0) lines[path] = node.Mark().line + 1;  // errors about the mapping as a whole
  nlohmann::json j = io::yaml_to_json(node, &lines, path);
  for (const char* k : handled_elsewhere) j.erase(k);
  try {
    return io::read_yaml_options<T>(j, lines, path, defaults);
  } catch (const io::OptionsError& e) {
    throw ConfigError(source + ": " + e.what());
  }
}

RetryPolicy read_retry(RoleReader& r) {
  const YAML::Node n = r.get_map("retry");
  if (!n) return RetryPolicy{};
  const RoleReader rr(n, r.path() + ".retry", r.source());
  const auto p = read_options_at(n, rr.path(), r.source(), RetryPolicy{});
  rr.check(p.validate(), "retry");
  return p;
}

SimTiming read_timing(RoleReader& r, bool camera) {
  SimTiming t;
  if (camera) {
    t.frame_rate_hz = r.get_double("frame_rate_hz", t.frame_rate_hz);
    t.readout_ms = r.get_double("readout_ms", t.readout_ms);
    const std::string wait = r.get_string("wait_exposure", "true");
    if (wait != "true" && wait != "false") r.fail(r.path() + ".wait_exposure must be true or false, got '" + wait + "'");
    t.apply_exposure = wait == "true";
  } else {
    t.settle_time_ms = r.get_double("settle_time_ms", t.settle_time_ms);
  }
  r.check(t.validate(), "timing");
  return t;
}

FaultOptions read_faults(RoleReader& r) {
  const YAML::Node n = r.get_map("faults");
  if (!n) return FaultOptions{};
  const RoleReader fr(n, r.path() + ".faults", r.source());
  const auto f = read_options_at(n, fr.path(), r.source(), FaultOptions{});
  fr.check(f.validate(), "faults");
  return f;
}

SlmRoleConfig read_slm_role(const YAML::Node& node, const std::string& role, const std::string& source) {
  RoleReader r(node, "roles." + role, source);
  SlmRoleConfig c;
  const std::string backend = r.backend();
  if (backend == "sim") {
    c.backend = SlmBackend::sim;
    c.timing = read_timing(r, false);
    c.faults = read_faults(r);
  } else if (backend == "display") {
    c.backend = SlmBackend::display;
    DisplaySlmOptions defaults;
    defaults.name = role;
    c.display = read_options_at(node, r.path(), source, defaults, {"backend", "retry"});
    r.accept_all();
    r.check(c.display.validate(), "display");
  } else if (backend == "fixed" && role == "element") {
    c.backend = SlmBackend::fixed;
  } else {
    r.fail("roles." + role + ".backend must be " + std::string(role == "element" ? "sim, display or fixed" : "sim or display") +
           ", got '" + backend + "'");
  }
  c.retry = read_retry(r);
  r.reject_unknown(backend);
  return c;
}

CameraRoleConfig read_camera_role(const YAML::Node& node, const std::string& source) {
  RoleReader r(node, "roles.camera", source);
  CameraRoleConfig c;
  const std::string backend = r.backend();
  if (backend == "sim") {
    c.backend = CameraBackend::sim;
    c.timing = read_timing(r, true);
    c.faults = read_faults(r);
    c.noise_seed = r.get_seed("noise_seed", 1);
  } else if (backend == "opencv") {
    c.backend = CameraBackend::opencv;
    OpenCvCameraOptions defaults;
    defaults.name = "camera";
    c.opencv = read_options_at(node, r.path(), source, defaults, {"backend", "retry"});
    r.accept_all();
    r.check(c.opencv.validate(), "opencv");
  } else if (backend == "genicam") {
    c.backend = CameraBackend::genicam;
    GenicamCameraOptions defaults;
    defaults.name = "camera";
    c.genicam = read_options_at(node, r.path(), source, defaults, {"backend", "retry"});
    r.accept_all();
    r.check(c.genicam.validate(), "genicam");
  } else {
    r.fail("roles.camera.backend must be sim, opencv or genicam, got '" + backend + "'");
  }
  c.retry = read_retry(r);
  r.reject_unknown(backend);
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
