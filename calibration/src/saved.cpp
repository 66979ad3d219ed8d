// Saving and loading a bench calibration (saved.hpp).
#include "hilo/calibration/saved.hpp"

#include <fstream>
#include <stdexcept>

#include "hilo/io/file_io.hpp"
#include "hilo/sim/npy.hpp"

namespace hilo::calibration {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "hilo-calibration";
constexpr int kVersion = 1;

json pose_to_json(const sim::Pose& p) {
  return {{"shift_x_px", p.shift_x_px}, {"shift_y_px", p.shift_y_px}, {"rotation_deg", p.rotation_deg},
          {"scale", p.scale}, {"gain", p.gain}};
}
sim::Pose pose_from_json(const json& j) {
  sim::Pose p;
  p.shift_x_px = j.at("shift_x_px").get<double>();
  p.shift_y_px = j.at("shift_y_px").get<double>();
  p.rotation_deg = j.at("rotation_deg").get<double>();
  p.scale = j.at("scale").get<double>();
  p.gain = j.at("gain").get<double>();
  return p;
}

void write_stack(const fs::path& file, const std::vector<RArray>& images) {
  const std::size_t n = images.size();
  const std::size_t r = n ? std::size_t(images[0].rows()) : 0, c = n ? std::size_t(images[0].cols()) : 0;
  std::vector<double> all;
  all.reserve(n * r * c);
  for (const auto& im : images) {
    if (std::size_t(im.rows()) != r || std::size_t(im.cols()) != c)
      throw std::invalid_argument("save_calibration: " + file.filename().string() + ": images of different sizes");
    all.insert(all.end(), im.data(), im.data() + im.size());
  }
  sim::write_npy(file, sim::make_npy<double>(std::span<const double>(all), {n, r, c}));
}

std::vector<RArray> read_stack(const fs::path& file) {
  const sim::NpyArray a = sim::read_npy(file);
  if (a.shape.size() != 3) throw std::runtime_error(file.string() + ": expected a 3-d array (n × rows × cols)");
  const std::vector<double> v = sim::as_doubles(a, file.string());
  const auto n = a.shape[0], r = a.shape[1], c = a.shape[2];
  std::vector<RArray> out;
  for (std::size_t k = 0; k < n; ++k)
    out.push_back(Eigen::Map<const RArray>(v.data() + k * r * c, Eigen::Index(r), Eigen::Index(c)));
  return out;
}

RArray read_image(const fs::path& file) { return sim::to_rarray(sim::read_npy(file), file.string()); }

}  // namespace

void save_calibration(const fs::path& dir, const SavedCalibration& s) {
  fs::create_directories(dir);
  const BenchCalibration& c = s.calibration;
  sim::write_npy(dir / "dark.npy", sim::from_rarray(c.dark.dark));
  sim::write_npy(dir / "hot.npy", sim::from_rarray(c.dark.hot));
  const bool flat = c.flat.flat.size() > 0;
  if (flat) {
    sim::write_npy(dir / "flat.npy", sim::from_rarray(c.flat.flat));
    sim::write_npy(dir / "flat_measured.npy", sim::from_rarray(c.flat.measured));
  }
  write_stack(dir / "drift_probes.npy", s.drift_reference.probes);
  write_stack(dir / "drift_frames.npy", s.drift_reference.frames);
  json offsets = json::array(), tiles = json::array();
  for (const auto& o : c.layout.offset) offsets.push_back({o.x(), o.y()});
  for (const auto& t : c.tiles)
    tiles.push_back({{"shift", {t.shift.x(), t.shift.y()}}, {"correlation", t.correlation}, {"energy", t.energy}});
  const json j = {
      {"format", kFormat},
      {"version", kVersion},
      {"pose", pose_to_json(c.pose)},
      {"gain", c.gain},
      {"blur_px", s.blur_px},
      {"calibrated_at_s", s.calibrated_at_s},
      {"dark", {{"level", c.dark.level}, {"sigma", c.dark.sigma}, {"temporal_noise", c.dark.temporal_noise},
                {"hot_count", c.dark.hot_count}}},
      {"flat", flat ? json{{"brightness", c.flat.brightness}, {"pixels", c.flat.pixels}} : json(nullptr)},
      {"layout", {{"kernel_size", c.layout.kernel_size}, {"map_rows", c.layout.map_rows}, {"map_cols", c.layout.map_cols},
                  {"object_row", c.layout.object_row}, {"object_col", c.layout.object_col}, {"offset", offsets}}},
      {"tiles", tiles},
      {"drift_reference", {{"pose", pose_to_json(s.drift_reference.pose)}, {"t0_s", s.drift_reference.t0_s}}},
      {"summary", s.summary}};
  io::write_json_atomic(dir / "calibration.json", j);
}

SavedCalibration load_calibration(const fs::path& dir) {
  const fs::path file = dir / "calibration.json";
  if (!fs::exists(file)) throw std::runtime_error(file.string() + ": no saved calibration (calibration.json missing)");
  json j;
  try {
    std::ifstream in(file);
    j = json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(file.string() + ": unreadable: " + e.what());
  }
  if (j.value("format", "") != kFormat || j.value("version", 0) != kVersion)
    throw std::runtime_error(file.string() + ": not a " + kFormat + " version " + std::to_string(kVersion) + " file");
  SavedCalibration s;
  BenchCalibration& c = s.calibration;
  try {
    c.pose = pose_from_json(j.at("pose"));
    c.gain = j.at("gain").get<double>();
    s.blur_px = j.at("blur_px").get<double>();
    s.calibrated_at_s = j.at("calibrated_at_s").get<double>();
    const json& d = j.at("dark");
    c.dark.level = d.at("level").get<double>();
    c.dark.sigma = d.at("sigma").get<double>();
    c.dark.temporal_noise = d.at("temporal_noise").get<double>();
    c.dark.hot_count = d.at("hot_count").get<int>();
    const json& l = j.at("layout");
    c.layout.kernel_size = l.at("kernel_size").get<int>();
    c.layout.map_rows = l.at("map_rows").get<Eigen::Index>();
    c.layout.map_cols = l.at("map_cols").get<Eigen::Index>();
    c.layout.object_row = l.at("object_row").get<Eigen::Index>();
    c.layout.object_col = l.at("object_col").get<Eigen::Index>();
    for (const auto& o : l.at("offset")) c.layout.offset.emplace_back(o.at(0).get<int>(), o.at(1).get<int>());
    for (const auto& t : j.at("tiles"))
      c.tiles.push_back({{t.at("shift").at(0).get<double>(), t.at("shift").at(1).get<double>()},
                         t.at("correlation").get<double>(), t.at("energy").get<double>()});
    s.drift_reference.pose = pose_from_json(j.at("drift_reference").at("pose"));
    s.drift_reference.t0_s = j.at("drift_reference").at("t0_s").get<double>();
    s.summary = j.value("summary", json::object());
    if (!j.at("flat").is_null()) {
      c.flat.brightness = j["flat"].at("brightness").get<double>();
      c.flat.pixels = j["flat"].at("pixels").get<int>();
    }
  } catch (const json::exception& e) {
    throw std::runtime_error(file.string() + ": " + e.what());
  }
  c.dark.dark = read_image(dir / "dark.npy");
  c.dark.hot = read_image(dir / "hot.npy");
  if (!j.at("flat").is_null()) {
    c.flat.flat = read_image(dir / "flat.npy");
    c.flat.measured = read_image(dir / "flat_measured.npy");
  }
  s.drift_reference.probes = read_stack(dir / "drift_probes.npy");
  s.drift_reference.frames = read_stack(dir / "drift_frames.npy");
  const auto rows = c.dark.dark.rows(), cols = c.dark.dark.cols();
  auto same = [&](const RArray& a) { return a.rows() == rows && a.cols() == cols; };
  bool ok = same(c.dark.hot) && (c.flat.flat.size() == 0 || (same(c.flat.flat) && same(c.flat.measured))) &&
            s.drift_reference.probes.size() == s.drift_reference.frames.size();
  for (const auto& f : s.drift_reference.frames) ok = ok && same(f);
  if (!ok) throw std::runtime_error(dir.string() + ": the saved arrays' shapes disagree with dark.npy (" +
                                    std::to_string(rows) + " × " + std::to_string(cols) + ")");
  if (auto e = c.validate(rows, cols); !e.empty()) throw std::runtime_error(file.string() + ": " + e);
  return s;
}

}  // namespace hilo::calibration
