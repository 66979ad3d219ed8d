#include "hilo/drivers/bench_config.hpp"

#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

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

  int get_int(const std::string& key, int fallback) {
    seen_.insert(key);
    const YAML::Node v = node_[key];
    if (!v) return fallback;
    try {
      return v.as<int>();
    } catch (const YAML::Exception&) {
      fail(path_ + "." + key + " must be an integer, got '" + v.as<std::string>("?") + "'");
    }
  }

  YAML::Node get_map(const std::string& key) {
    seen_.insert(key);
    const YAML::Node v = node_[key];
    if (v && !v.IsMap()) fail(path_ + "." + key + " must be a mapping");
    return v;
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

RetryPolicy read_retry(RoleReader& r) {
  RetryPolicy p;
  const YAML::Node n = r.get_map("retry");
  if (!n) return p;
  RoleReader rr(n, r.path() + ".retry", r.source());
  p.max_attempts = rr.get_int("max_attempts", p.max_attempts);
  p.initial_backoff_ms = rr.get_double("initial_backoff_ms", p.initial_backoff_ms);
  p.backoff_factor = rr.get_double("backoff_factor", p.backoff_factor);
  p.max_backoff_ms = rr.get_double("max_backoff_ms", p.max_backoff_ms);
  rr.reject_unknown("retry");
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
  FaultOptions f;
  const YAML::Node n = r.get_map("faults");
  if (!n) return f;
  RoleReader fr(n, r.path() + ".faults", r.source());
  f.seed = static_cast<std::uint64_t>(fr.get_double("seed", static_cast<double>(f.seed)));
  f.camera_disconnect_rate = fr.get_double("camera_disconnect_rate", 0.0);
  f.camera_timeout_rate = fr.get_double("camera_timeout_rate", 0.0);
  f.corrupt_frame_rate = fr.get_double("corrupt_frame_rate", 0.0);
  f.dropped_frame_rate = fr.get_double("dropped_frame_rate", 0.0);
  f.slm_write_failure_rate = fr.get_double("slm_write_failure_rate", 0.0);
  fr.reject_unknown("faults");
  fr.check(f.validate(), "faults");
  return f;
}

PixelFormat read_pixel_format(RoleReader& r, PixelFormat fallback) {
  const std::string s = r.get_string("pixel_format", std::string(to_string(fallback)));
  if (s == "mono8") return PixelFormat::mono8;
  if (s == "mono12") return PixelFormat::mono12;
  if (s == "mono16") return PixelFormat::mono16;
  r.fail(r.path() + ".pixel_format must be mono8, mono12 or mono16, got '" + s + "'");
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
    DisplaySlmOptions& d = c.display;
    d.name = r.get_string("name", role);
    d.display = r.get_string("display", "");
    d.screen = r.get_int("screen", d.screen);
    d.monitor = r.get_int("monitor", d.monitor);
    d.width_px = r.get_int("width_px", d.width_px);
    d.height_px = r.get_int("height_px", d.height_px);
    d.pixel_pitch_um = r.get_double("pixel_pitch_um", d.pixel_pitch_um);
    d.settle_time_ms = r.get_double("settle_time_ms", d.settle_time_ms);
    r.check(d.validate(), "display");
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
    c.noise_seed = static_cast<std::uint64_t>(r.get_double("noise_seed", 1.0));
  } else if (backend == "opencv") {
    c.backend = CameraBackend::opencv;
    OpenCvCameraOptions& o = c.opencv;
    o.name = r.get_string("name", "camera");
    o.source = r.get_string("source", "");
    o.pixel_format = read_pixel_format(r, o.pixel_format);
    r.check(o.validate(), "opencv");
  } else if (backend == "genicam") {
    c.backend = CameraBackend::genicam;
    GenicamCameraOptions& g = c.genicam;
    g.name = r.get_string("name", "camera");
    g.device_id = r.get_string("device_id", "");
    g.address = r.get_string("address", "");
    g.interface_address = r.get_string("interface_address", g.interface_address);
    g.pixel_format = read_pixel_format(r, g.pixel_format);
    g.exposure_ms = r.get_double("exposure_ms", g.exposure_ms);
    g.gain_db = r.get_double("gain_db", g.gain_db);
    g.frame_rate_hz = r.get_double("frame_rate_hz", g.frame_rate_hz);
    g.buffer_count = r.get_int("buffer_count", g.buffer_count);
    const std::string trig = r.get_string("trigger", "free_run");
    if (trig == "free_run") g.trigger = TriggerMode::free_run;
    else if (trig == "software") g.trigger = TriggerMode::software;
    else r.fail("roles.camera.trigger must be free_run or software, got '" + trig + "'");
    r.check(g.validate(), "genicam");
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
