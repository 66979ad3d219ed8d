#include "hilo/controller/hdf5_run.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>

namespace hilo::controller {

namespace fs = std::filesystem;
using nlohmann::json;

#ifndef HILO_VERSION
#define HILO_VERSION "0"
#endif

std::string hdf5_creator() { return std::string("hilod ") + HILO_VERSION; }

namespace {

// HDF5 prints its error stack to stderr unless told otherwise; the daemon reports errors itself.
void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// The current error stack as "func: desc; func: desc" (outermost first), then cleared.
std::string error_stack() {
  std::string out;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        auto& s = *static_cast<std::string*>(data);
        s.insert(0, std::string(e->func_name ? e->func_name : "?") + ": " + (e->desc ? e->desc : "") + (s.empty() ? "" : "; "));
        return 0;
      },
      &out);
  H5Eclear2(H5E_DEFAULT);
  return out.empty() ? "no HDF5 error detail" : out;
}

[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw Hdf5Error(path.string() + ": " + what + " (" + error_stack() + ")");
}

// Owns one hid_t and closes it with the matching H5?close.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Handle() {
    if (id >= 0) close(id);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator hid_t() const { return id; }
};

hid_t file_type(const std::string& d) {
  if (d == "|u1" || d == "<u1") return H5T_STD_U8LE;
  if (d == "<u2") return H5T_STD_U16LE;
  if (d == "<u4") return H5T_STD_U32LE;
  if (d == "<i4") return H5T_STD_I32LE;
  if (d == "<i8") return H5T_STD_I64LE;
  if (d == "<f4") return H5T_IEEE_F32LE;
  if (d == "<f8") return H5T_IEEE_F64LE;
  return -1;
}

std::size_t dtype_bytes(const std::string& d) {
  if (d == "|u1" || d == "<u1") return 1;
  if (d == "<u2") return 2;
  if (d == "<u4" || d == "<i4" || d == "<f4") return 4;
  return 8;
}

hid_t file_access(const fs::path& path) {
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) fail(path, "file access properties");
  return fapl;
}

hid_t open_or_create_group(hid_t parent, const char* name, const fs::path& path) {
  const htri_t exists = H5Lexists(parent, name, H5P_DEFAULT);
  const hid_t g = exists > 0 ? H5Gopen2(parent, name, H5P_DEFAULT) : H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) fail(path, std::string("cannot open or create group '") + name + "'");
  return g;
}

void replace_attr(hid_t obj, const std::string& name, hid_t type, const void* value, const fs::path& path) {
  if (H5Aexists(obj, name.c_str()) > 0 && H5Adelete(obj, name.c_str()) < 0) fail(path, "cannot replace attribute '" + name + "'");
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (a < 0 || H5Awrite(a, type, value) < 0) fail(path, "cannot write attribute '" + name + "'");
}

void set_attr(hid_t obj, const std::string& name, const std::string& value, const fs::path& path) {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  const char* p = value.c_str();
  replace_attr(obj, name, t, &p, path);
}

// A JSON value as the closest attribute: string, int64, float64, bool as int64, anything else as JSON text.
void set_attr(hid_t obj, const std::string& name, const json& v, const fs::path& path) {
  if (v.is_string()) return set_attr(obj, name, v.get<std::string>(), path);
  if (v.is_number_integer() || v.is_boolean()) {
    const std::int64_t x = v.is_boolean() ? std::int64_t(v.get<bool>()) : v.get<std::int64_t>();
    return replace_attr(obj, name, H5T_NATIVE_INT64, &x, path);
  }
  if (v.is_number()) {
    const double x = v.get<double>();
    return replace_attr(obj, name, H5T_NATIVE_DOUBLE, &x, path);
  }
  set_attr(obj, name, v.dump(), path);
}

// Every attribute and group of the layout but the datasets, from `manifest`.
void write_metadata(hid_t file, const fs::path& path, const json& m) {
  set_attr(file, "NX_class", std::string("NXroot"), path);
  set_attr(file, "creator", hdf5_creator(), path);
  set_attr(file, "file_name", path.filename().string(), path);
  set_attr(file, "default", std::string("entry"), path);
  Handle entry(open_or_create_group(file, "entry", path), H5Gclose);
  set_attr(entry, "NX_class", std::string("NXentry"), path);
  set_attr(entry, "default", std::string("data"), path);
  for (const char* k : {"run_id", "kind", "state"}) set_attr(entry, k, m.value(k, std::string()), path);
  set_attr(entry, "start_time", m.contains("created_s") && m["created_s"].is_number() ? format_utc(m["created_s"].get<double>(), "%Y-%m-%dT%H:%M:%SZ") : "",
           path);
  set_attr(entry, "manifest", m.dump(-1, ' ', false, json::error_handler_t::replace), path);
  {
    Handle data(open_or_create_group(entry, "data", path), H5Gclose);
    set_attr(data, "NX_class", std::string("NXdata"), path);
    set_attr(data, "signal", std::string("frames"), path);
  }
  Handle inst(open_or_create_group(entry, "instrument", path), H5Gclose);
  set_attr(inst, "NX_class", std::string("NXinstrument"), path);
  const json devs = m.value("devices", json::object()), place = m.value("placement", json::object());
  json camera = json::object(), input = json::object(), element = m.value("element", json::object());
  if (devs.contains("camera")) camera["name"] = devs["camera"];
  for (const char* k : {"exposure_ms", "gain_db"}) if (devs.contains(k)) camera[k] = devs[k];
  if (m.contains("frame") && m["frame"].is_object()) {
    for (const auto& [k, v] : m["frame"].items()) camera["frame_" + k] = v;
  }
  if (devs.contains("slm")) input["name"] = devs["slm"];
  for (const auto& [k, v] : place.items()) input[k] = v;
  for (const auto& [name, cls, desc] : {std::tuple<const char*, const char*, const json&>{"camera", "NXdetector", camera},
                                        {"input_slm", "NXcollection", input},
                                        {"element_slm", "NXcollection", element}}) {
    if (!desc.is_object() || desc.empty()) continue;
    Handle g(open_or_create_group(inst, name, path), H5Gclose);
    set_attr(g, "NX_class", std::string(cls), path);
    for (const auto& [k, v] : desc.items()) set_attr(g, k, v, path);
  }
  if (m.contains("calibration") && m["calibration"].is_object() && !m["calibration"].empty()) {
    Handle cal(open_or_create_group(entry, "calibration", path), H5Gclose);
    set_attr(cal, "NX_class", std::string("NXcollection"), path);
    for (const auto& [k, v] : m["calibration"].items()) set_attr(cal, k, v, path);
  }
}

std::pair<std::string, std::string> units_and_name(const std::string& array) {
  if (array == "frames") return {"counts", "camera frame"};
  if (array == "inputs") return {"levels", "input image as shown before placement on the SLM"};
  if (array == "indices") return {"", "dataset index of the input"};
  if (array == "labels") return {"", "dataset label of the input"};
  return {"", array};
}

}  // namespace

Hdf5RunWriter Hdf5RunWriter::create(const fs::path& path, const json& manifest) {
  silence_hdf5();
  Hdf5RunWriter w;
  w.path_ = path;
  Handle fapl(file_access(path), H5Pclose);
  w.file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (w.file_ < 0) fail(path, "cannot create the HDF5 file");
  write_metadata(w.file_, path, manifest);
  if (H5Fflush(w.file_, H5F_SCOPE_GLOBAL) < 0) fail(path, "cannot flush");
  return w;
}

void Hdf5RunWriter::append(const std::vector<RunWriter::Array>& arrays, std::size_t records) {
  if (records == 0) return;
  if (file_ < 0) throw Hdf5Error(path_.string() + ": the file is closed");
  for (const auto& a : arrays) {
    std::size_t per = dtype_bytes(a.dtype);
    for (std::size_t i = 1; i < a.shape.size(); ++i) per *= a.shape[i];
    if (file_type(a.dtype) < 0) throw Hdf5Error(path_.string() + ": array '" + a.name + "' has dtype '" + a.dtype + "', which has no HDF5 type here");
    if (a.shape.empty() || a.shape[0] != records || a.bytes.size() != per * records) {
      throw Hdf5Error(path_.string() + ": array '" + a.name + "' does not hold " + std::to_string(records) + " records of its shape");
    }
  }
  if (datasets_.empty()) {
    std::vector<const RunWriter::Array*> order;
    for (const auto& a : arrays) order.push_back(&a);
    std::stable_partition(order.begin(), order.end(), [](const auto* a) { return a->name != "frames"; });
    Handle data(H5Gopen2(file_, "/entry/data", H5P_DEFAULT), H5Gclose);
    if (data < 0) fail(path_, "no group /entry/data");
    for (const auto* a : order) {
      Dataset d{a->name, a->dtype, std::vector<std::size_t>(a->shape.begin() + 1, a->shape.end()), -1};
      const int rank = static_cast<int>(a->shape.size());
      std::vector<hsize_t> dims(a->shape.begin(), a->shape.end()), maxdims = dims, chunk = dims;
      dims[0] = 0;
      maxdims[0] = H5S_UNLIMITED;
      chunk[0] = 1;
      for (auto& c : chunk) c = std::max<hsize_t>(c, 1);
      Handle space(H5Screate_simple(rank, dims.data(), maxdims.data()), H5Sclose);
      Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
      if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk.data()) < 0) fail(path_, "dataset '" + a->name + "' properties");
      d.id = H5Dcreate2(data, a->name.c_str(), file_type(a->dtype), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      if (d.id < 0) fail(path_, "cannot create dataset '" + a->name + "'");
      datasets_.push_back(std::move(d));
      const auto [units, long_name] = units_and_name(a->name);
      set_attr(datasets_.back().id, "units", units, path_);
      set_attr(datasets_.back().id, "long_name", long_name, path_);
    }
    if (H5Fstart_swmr_write(file_) < 0) fail(path_, "cannot start SWMR writing");
    swmr_ = true;
  }
  if (arrays.size() != datasets_.size()) {
    throw Hdf5Error(path_.string() + ": a chunk brings " + std::to_string(arrays.size()) + " arrays, the file holds " +
                    std::to_string(datasets_.size()));
  }
  for (const auto& d : datasets_) {
    const auto it = std::find_if(arrays.begin(), arrays.end(), [&](const auto& a) { return a.name == d.name; });
    if (it == arrays.end() || it->dtype != d.dtype ||
        !std::equal(it->shape.begin() + 1, it->shape.end(), d.record_shape.begin(), d.record_shape.end())) {
      throw Hdf5Error(path_.string() + ": array '" + d.name + "' is missing from the chunk or differs in dtype or record shape");
    }
  }
  for (const auto& d : datasets_) {
    const auto& a = *std::find_if(arrays.begin(), arrays.end(), [&](const auto& x) { return x.name == d.name; });
    const int rank = static_cast<int>(a.shape.size());
    std::vector<hsize_t> size(a.shape.begin(), a.shape.end()), start(rank, 0), count(a.shape.begin(), a.shape.end());
    size[0] = records_ + records;
    start[0] = records_;
    if (H5Dset_extent(d.id, size.data()) < 0) fail(path_, "cannot extend dataset '" + d.name + "'");
    Handle fspace(H5Dget_space(d.id), H5Sclose);
    Handle mspace(H5Screate_simple(rank, count.data(), nullptr), H5Sclose);
    if (fspace < 0 || mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
        H5Dwrite(d.id, file_type(d.dtype), mspace, fspace, H5P_DEFAULT, a.bytes.data()) < 0) {
      fail(path_, "cannot write records " + std::to_string(records_) + ".. of '" + d.name + "'");
    }
    if (H5Dflush(d.id) < 0) fail(path_, "cannot flush dataset '" + d.name + "'");
  }
  records_ += records;
}

void Hdf5RunWriter::update_metadata(const json& manifest) {
  if (file_ < 0) throw Hdf5Error(path_.string() + ": the file is closed");
  write_metadata(file_, path_, manifest);
  if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) fail(path_, "cannot flush");
}

void Hdf5RunWriter::finish(const json& manifest) {
  update_metadata(manifest);
  for (auto& d : datasets_) {
    if (d.id >= 0 && H5Dclose(d.id) < 0) fail(path_, "cannot close dataset '" + d.name + "'");
    d.id = -1;
  }
  const hid_t f = file_;
  file_ = -1;
  if (H5Fclose(f) < 0) fail(path_, "cannot close");
  close();
  // libhdf5 does not fsync; the file must be durable before a manifest lists it as complete.
  const int fd = ::open(path_.c_str(), O_RDONLY);
  const bool synced = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!synced) throw Hdf5Error(path_.string() + ": cannot fsync");
}

void Hdf5RunWriter::close() noexcept {
  for (auto& d : datasets_) {
    if (d.id >= 0) H5Dclose(d.id);
    d.id = -1;
  }
  datasets_.clear();
  if (file_ >= 0) H5Fclose(file_);
  file_ = -1;
  swmr_ = false;
}

Hdf5RunWriter::Hdf5RunWriter(Hdf5RunWriter&& o) noexcept
    : path_(std::move(o.path_)), file_(o.file_), datasets_(std::move(o.datasets_)), records_(o.records_), swmr_(o.swmr_) {
  o.file_ = -1;
  o.datasets_.clear();
}

Hdf5RunWriter& Hdf5RunWriter::operator=(Hdf5RunWriter&& o) noexcept {
  if (this != &o) {
    close();
    path_ = std::move(o.path_);
    file_ = o.file_;
    datasets_ = std::move(o.datasets_);
    records_ = o.records_;
    swmr_ = o.swmr_;
    o.file_ = -1;
    o.datasets_.clear();
  }
  return *this;
}

Hdf5RunWriter::~Hdf5RunWriter() { close(); }

Hdf5RunWriter hdf5_from_run(const fs::path& path, const fs::path& run_dir, const json& manifest) {
  std::vector<std::string> names;
  if (manifest.contains("arrays") && manifest["arrays"].is_object() && !manifest["arrays"].empty()) {
    for (const auto& [k, _] : manifest["arrays"].items()) names.push_back(k);
  } else if (manifest.contains("chunks") && manifest["chunks"].is_array() && !manifest["chunks"].empty()) {
    for (const auto& [k, _] : manifest["chunks"][0]["files"].items()) names.push_back(k);
  }
  std::vector<RunWriter::Array> arrays;
  std::size_t records = 0;
  for (const auto& n : names) {
    auto a = load_run_array(run_dir, manifest, n);
    if (!a) continue;
    if (!arrays.empty() && (a->shape.empty() || a->shape[0] != records)) {
      throw StorageError(run_dir.string() + ": array '" + n + "' holds a different number of records than '" + arrays[0].name + "'");
    }
    records = a->shape.empty() ? 0 : a->shape[0];
    arrays.push_back({n, a->dtype, a->shape, std::move(a->bytes)});
  }
  auto w = Hdf5RunWriter::create(path, manifest);
  w.append(arrays, records);
  return w;
}

}  // namespace hilo::controller
