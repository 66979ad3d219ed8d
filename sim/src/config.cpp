#include "hilo/sim/config.hpp"

#include <algorithm>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "hilo/io/options_json.hpp"

namespace hilo::sim {

namespace {

using io::edit_distance;

std::string line_of(const YAML::Node& n) {
  const auto m = n.Mark();
  return m.line >= 0 ? " (line " + std::to_string(m.line + 1) + ")" : "";
}

std::string kind_of(const YAML::Node& n) {
  if (n.IsMap()) return "a mapping";
  if (n.IsSequence()) return "a list";
  if (n.IsNull()) return "nothing";
  return "'" + n.Scalar() + "'";
}

// A YAML mapping being read: remembers which keys were asked for, so finish() can reject the rest.
class Map {
 public:
  Map(const YAML::Node& n, std::string path, const std::string& source)
      : node_(n), path_(std::move(path)), source_(source) {
    if (n && !n.IsNull() && !n.IsMap()) fail(path_ + " must be a mapping, got " + kind_of(n) + line_of(n));
  }

  [[noreturn]] void fail(const std::string& msg) const { throw ConfigError(source_ + ": " + msg); }
  std::string at(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }

  std::optional<YAML::Node> take(const std::string& key) {
    asked_.insert(key);
    if (!node_ || !node_.IsMap()) return std::nullopt;
    const YAML::Node& cn = node_;
    YAML::Node v = cn[key];
    if (!v) return std::nullopt;
    return v;
  }

  void get(const std::string& key, double& out) {
    if (auto v = take(key)) out = number(*v, at(key));
  }
  void get(const std::string& key, int& out) {
    if (auto v = take(key)) out = int(integer(*v, at(key), -2147483647LL, 2147483647LL));
  }
  void get(const std::string& key, std::uint64_t& out) {
    if (auto v = take(key)) out = std::uint64_t(integer(*v, at(key), 0, (1LL << 62)));
  }
  void get(const std::string& key, bool& out) {
    if (auto v = take(key)) {
      if (!v->IsScalar() || !YAML::convert<bool>::decode(*v, out))
        fail(at(key) + " must be true or false, got " + kind_of(*v) + line_of(*v));
    }
  }
  void get(const std::string& key, std::string& out) {
    if (auto v = take(key)) {
      if (!v->IsScalar()) fail(at(key) + " must be a string, got " + kind_of(*v) + line_of(*v));
      out = v->Scalar();
    }
  }
  Map sub(const std::string& key) {
    auto v = take(key);
    return Map(v ? *v : YAML::Node(), at(key), source_);
  }

  double number(const YAML::Node& v, const std::string& path) const {
    double d = 0.0;
    if (!v.IsScalar() || !YAML::convert<double>::decode(v, d))
      fail(path + " must be a number, got " + kind_of(v) + line_of(v));
    return d;
  }
  long long integer(const YAML::Node& v, const std::string& path, long long lo, long long hi) const {
    long long i = 0;
    if (!v.IsScalar() || !YAML::convert<long long>::decode(v, i))
      fail(path + " must be an integer, got " + kind_of(v) + line_of(v));
    if (i < lo || i > hi)
      fail(path + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
           std::to_string(i) + line_of(v));
    return i;
  }

  // Every key present must have been asked for.
  void finish() const {
    if (!node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      const std::string k = kv.first.Scalar();
      if (asked_.count(k)) continue;
      std::string best;
      std::size_t bd = 3;
      for (const auto& a : asked_)
        if (const auto d = edit_distance(k, a); d < bd) bd = d, best = a;
      fail("unknown key '" + at(k) + "'" +
           (best.empty() ? line_of(kv.first) : " (line " + std::to_string(kv.first.Mark().line + 1) +
                                                   "; did you mean '" + best + "'?)"));
    }
  }

 private:
  YAML::Node node_;
  std::string path_;
  const std::string& source_;
  std::set<std::string> asked_;
};

// Throws ConfigError("<source>: <rule>") when opt.validate(path) names a broken rule.
template <typename T>
void validated(const T& opt, const std::string& path, const std::string& source) {
  detail::require_valid(opt.validate(path), source + ": ");
}

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ": YAML syntax error at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConfigError("cannot open config file '" + path.string() + "'");
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void read_noise(Map m, SensorNoise& n) {
  m.get("shot_noise", n.shot_noise);
  m.get("read_noise_e", n.read_noise_e);
  m.get("dark_offset_counts", n.dark_offset_counts);
  m.get("dark_current_e_per_s", n.dark_current_e_per_s);
  m.get("hot_pixel_fraction", n.hot_pixel_fraction);
  m.get("hot_pixel_e_per_s", n.hot_pixel_e_per_s);
  m.finish();
}

void read_camera(Map m, CameraOptions& c) {
  m.get("rows", c.rows);
  m.get("cols", c.cols);
  m.get("pixel_pitch_um", c.pixel_pitch_um);
  m.get("binning", c.binning);
  m.get("exposure_ms", c.exposure_ms);
  m.get("gain_e_per_count", c.gain_e_per_count);
  m.get("quantum_efficiency", c.quantum_efficiency);
  m.get("full_well_e", c.full_well_e);
  m.get("bit_depth", c.bit_depth);
  m.get("seed", c.seed);
  read_noise(m.sub("noise"), c.noise);
  m.finish();
}

void read_profile(Map m, AsBuiltProfile& p) {
  m.get("name", p.name);
  m.get("seed", p.seed);
  {
    Map b = m.sub("brightness");
    b.get("gain", p.gain);
    b.finish();
  }
  {
    Map a = m.sub("misalignment");
    a.get("shift_x_px", p.misalignment.shift_x_px);
    a.get("shift_y_px", p.misalignment.shift_y_px);
    a.get("rotation_deg", p.misalignment.rotation_deg);
    a.get("scale", p.misalignment.scale);
    a.finish();
  }
  {
    Map a = m.sub("aberrations");
    a.get("defocus_waves", p.aberrations.defocus_waves);
    if (auto z = a.take("zernike_waves"); z && !z->IsNull()) {
      const std::string zp = a.at("zernike_waves");
      if (!z->IsMap()) a.fail(zp + " must be a mapping of Noll index to waves, got " + kind_of(*z) + line_of(*z));
      for (const auto& kv : *z) {
        const int j = int(a.integer(kv.first, zp + " key", 2, 66));
        p.aberrations.zernike_waves[j] = a.number(kv.second, zp + "." + kv.first.Scalar());
      }
    }
    a.finish();
  }
  {
    Map f = m.sub("fabrication");
    f.get("phase_rms_rad", p.fabrication.phase_rms_rad);
    f.get("correlation_length_px", p.fabrication.correlation_length_px);
    f.get("height_error", p.fabrication.height_error);
    f.get("quantization_levels", p.fabrication.quantization_levels);
    f.finish();
  }
  read_noise(m.sub("sensor"), p.sensor);
  {
    Map d = m.sub("drift");
    d.get("shift_x_px_per_s", p.drift.shift_x_px_per_s);
    d.get("shift_y_px_per_s", p.drift.shift_y_px_per_s);
    d.get("gain_per_s", p.drift.gain_per_s);
    d.get("shift_walk_px_per_sqrt_s", p.drift.shift_walk_px_per_sqrt_s);
    d.get("gain_walk_per_sqrt_s", p.drift.gain_walk_per_sqrt_s);
    d.get("walk_step_s", p.drift.walk_step_s);
    d.finish();
  }
  m.finish();
}

void read_slm(Map m, SlmOptions& s) {
  m.get("rows", s.rows);
  m.get("cols", s.cols);
  m.get("pixel_pitch_um", s.pixel_pitch_um);
  m.get("fill_factor", s.fill_factor);
  m.get("bit_depth", s.bit_depth);
  m.get("fringing_sigma_px", s.fringing_sigma_px);
  m.get("oversample", s.oversample);
  if (auto l = m.take("lut_rad"); l && !l->IsNull()) {
    const std::string lp = m.at("lut_rad");
    if (!l->IsSequence()) m.fail(lp + " must be a list of phases in rad, got " + kind_of(*l) + line_of(*l));
    s.lut_rad.clear();
    for (std::size_t i = 0; i < l->size(); ++i)
      s.lut_rad.push_back(m.number((*l)[i], lp + "[" + std::to_string(i) + "]"));
  }
  m.finish();
}

// The single top-level section `key` of a document that may hold only that section.
YAML::Node only_section(const YAML::Node& doc, const std::string& key, const std::string& source) {
  Map top(doc, "", source);
  auto s = top.take(key);
  top.finish();
  if (!s) throw ConfigError(source + ": missing top-level key '" + key + "'");
  return *s;
}

}  // namespace

AsBuiltProfile parse_profile(const std::string& text, const std::string& source) {
  const YAML::Node doc = parse_yaml(text, source);
  AsBuiltProfile p;
  read_profile(Map(only_section(doc, "profile", source), "profile", source), p);
  validated(p, "profile", source);
  return p;
}

AsBuiltProfile load_profile(const std::filesystem::path& path) {
  return parse_profile(read_text(path), path.string());
}

CameraOptions parse_camera(const std::string& text, const std::string& source) {
  const YAML::Node doc = parse_yaml(text, source);
  CameraOptions c;
  if (doc.IsMap() && doc["profile"]) {
    const AsBuiltProfile p = parse_profile(text, source);
    c.noise = p.sensor;
    c.seed = p.seed;
  } else {
    read_camera(Map(only_section(doc, "camera", source), "camera", source), c);
  }
  validated(c, "camera", source);
  return c;
}

CameraOptions load_camera(const std::filesystem::path& path) {
  return parse_camera(read_text(path), path.string());
}

namespace {
// The optics of a bench (wavelength, input, element, camera): the keys `design:` and `simulator:` share.
void read_optics(Map& m, BenchOptions& o) {
  m.get("wavelength_nm", o.wavelength_nm);
  {
    std::string imaging = "incoherent";
    m.get("imaging", imaging);
    if (imaging == "incoherent") o.imaging = Imaging::incoherent;
    else if (imaging == "coherent") o.imaging = Imaging::coherent;
    else m.fail(m.at("imaging") + " must be one of incoherent, coherent, got '" + imaging + "'");
  }
  {
    Map in = m.sub("input");
    in.get("rows", o.input.rows);
    in.get("cols", o.input.cols);
    in.get("camera_px_per_input_px", o.input.camera_px_per_input_px);
    in.get("photons_per_ms", o.input.photons_per_ms);
    in.finish();
  }
  {
    Map e = m.sub("element");
    std::string kind = "slm";
    e.get("kind", kind);
    if (kind == "slm") o.element.kind = ElementKind::slm;
    else if (kind == "fabricated") o.element.kind = ElementKind::fabricated;
    else if (kind == "psf") o.element.kind = ElementKind::psf;
    else e.fail(e.at("kind") + " must be one of slm, fabricated, psf, got '" + kind + "'");
    read_slm(e.sub("slm"), o.element.slm);
    e.get("pupil_diameter_px", o.element.pupil_diameter_px);
    e.get("psf_pad", o.element.psf_pad);
    e.finish();
  }
  read_camera(m.sub("camera"), o.camera);
}
}  // namespace

BenchOptions parse_bench(const std::string& text, const std::string& source,
                         const std::filesystem::path& base_dir) {
  const YAML::Node doc = parse_yaml(text, source);
  if (!doc.IsMap()) throw ConfigError(source + ": a bench file must be a mapping, got " + kind_of(doc));
  if (!doc["simulator"]) throw ConfigError(source + ": missing top-level key 'simulator'");
  Map m(doc["simulator"], "simulator", source);
  BenchOptions o;
  read_optics(m, o);
  if (auto p = m.take("profile"); p && !p->IsNull()) {
    if (p->IsScalar()) {
      const std::filesystem::path file = base_dir / p->Scalar();
      try {
        o.profile = load_profile(file);
      } catch (const ConfigError& err) {
        throw ConfigError(source + ": simulator.profile: " + err.what());
      }
    } else {
      read_profile(Map(*p, "simulator.profile", source), o.profile);
    }
  }
  m.finish();
  validated(o, "simulator", source);
  return o;
}

std::optional<BenchOptions> parse_design(const std::string& text, const std::string& source) {
  const YAML::Node doc = parse_yaml(text, source);
  if (!doc.IsMap()) throw ConfigError(source + ": a bench file must be a mapping, got " + kind_of(doc));
  if (!doc["design"]) return std::nullopt;
  Map m(doc["design"], "design", source);
  BenchOptions o;
  read_optics(m, o);
  m.finish();
  validated(o, "design", source);
  return o;
}

BenchOptions load_bench(const std::filesystem::path& path) {
  return parse_bench(read_text(path), path.string(), path.parent_path());
}

}  // namespace hilo::sim
