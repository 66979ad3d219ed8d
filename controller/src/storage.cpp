#include "hilo/controller/storage.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>

#include "hilo/io/file_io.hpp"
#include "hilo/sim/npy.hpp"

namespace hilo::controller {

namespace fs = std::filesystem;
using nlohmann::json;

void fsync_dir(const fs::path& dir) {
  try {
    io::fsync_directory(dir);
  } catch (const io::FileError& e) {
    throw StorageError(e.what());
  }
}

namespace {

void write_file_atomic(const fs::path& path, const void* data, std::size_t size) {
  try {
    io::write_file_atomic(path, std::span<const std::byte>(static_cast<const std::byte*>(data), size));
  } catch (const io::FileError& e) {
    throw StorageError(e.what());
  }
}

sim::Dtype to_sim_dtype(const std::string& d) {
  if (d == "|u1" || d == "<u1") return sim::Dtype::u1;
  if (d == "<u2") return sim::Dtype::u2;
  if (d == "<u4") return sim::Dtype::u4;
  if (d == "<i4") return sim::Dtype::i4;
  if (d == "<i8") return sim::Dtype::i8;
  if (d == "<f4") return sim::Dtype::f4;
  if (d == "<f8") return sim::Dtype::f8;
  throw StorageError("storage: dtype '" + d + "' cannot be stored");
}

}  // namespace

void write_array(const fs::path& path, const RunWriter::Array& a) {
  sim::NpyArray n;
  n.dtype = to_sim_dtype(a.dtype);
  n.shape = a.shape;
  n.bytes.resize(a.bytes.size());
  std::memcpy(n.bytes.data(), a.bytes.data(), a.bytes.size());
  try {
    sim::write_npy(path, n);
  } catch (const sim::NpyError& e) {
    throw StorageError(e.what());
  }
}

std::string format_utc(double unix_s, const char* strftime_format) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  return std::string(buf, std::strftime(buf, sizeof buf, strftime_format, &tm));
}

void write_json_atomic(const fs::path& path, const json& j) {
  try {
    io::write_json_atomic(path, j);
  } catch (const io::FileError& e) {
    throw StorageError(e.what());
  }
}

std::string_view to_string(JobState s) {
  switch (s) {
    case JobState::queued: return "queued";
    case JobState::running: return "running";
    case JobState::done: return "done";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
    case JobState::interrupted: return "interrupted";
  }
  return "failed";
}

std::optional<JobState> job_state_from_string(std::string_view s) {
  for (JobState j : {JobState::queued, JobState::running, JobState::done, JobState::failed, JobState::cancelled,
                     JobState::interrupted}) {
    if (to_string(j) == s) return j;
  }
  return std::nullopt;
}

bool is_final(JobState s) { return s != JobState::queued && s != JobState::running; }

json JobRecord::to_json() const {
  return {{"job_id", id},       {"kind", kind},          {"run_id", run_id},         {"state", std::string(to_string(state))},
          {"done", done},       {"total", total},        {"error", error},           {"created_s", created_s},
          {"started_s", started_s}, {"finished_s", finished_s}, {"params", params}, {"stats", stats}};
}

json RunRecord::to_json() const {
  return {{"run_id", id}, {"kind", kind}, {"dir", dir}, {"created_s", created_s}, {"state", state}};
}

// -------------------------------------------------------------------------------------------- RunWriter

RunWriter::RunWriter(fs::path dir, json base_manifest) : dir_(std::move(dir)), manifest_(std::move(base_manifest)) {
  if (fs::exists(dir_)) throw StorageError(dir_.string() + ": run directory already exists");
  std::error_code ec;
  fs::create_directories(dir_ / "chunks", ec);
  if (ec) throw StorageError(dir_.string() + ": cannot create run directory: " + ec.message());
  fsync_dir(dir_.parent_path());
  manifest_["format"] = "hilo.run";
  manifest_["format_version"] = 1;
  manifest_["state"] = "running";
  manifest_["records"] = 0;
  manifest_["chunks"] = json::array();
  manifest_["arrays"] = json::object();
  manifest_["previews"] = json::array();
  write_manifest();
}

RunWriter RunWriter::reopen(fs::path dir) {
  RunWriter w;
  w.dir_ = std::move(dir);
  w.manifest_ = read_manifest(w.dir_);
  const std::string state = w.manifest_.value("state", "");
  const bool consolidated = w.manifest_.contains("arrays") && !w.manifest_["arrays"].empty();
  if (state != "running" && !(state == "interrupted" && !consolidated)) {
    throw StorageError(w.dir_.string() + ": the run has ended (state '" + state + "')");
  }
  if (!w.manifest_.contains("chunks") || !w.manifest_["chunks"].is_array()) {
    throw StorageError(w.dir_.string() + ": manifest lists no chunks array");
  }
  std::set<std::string> listed;
  std::size_t records = 0, next_index = 0;
  for (const auto& c : w.manifest_["chunks"]) {
    if (c.value("first", std::size_t{0}) != records) {
      throw StorageError(w.dir_.string() + ": chunk " + c.value("index", json(0)).dump() + " does not start at record " +
                         std::to_string(records));
    }
    records += c.value("count", std::size_t{0});
    next_index = std::max(next_index, c.value("index", std::size_t{0}) + 1);
    for (const auto& [_, f] : c["files"].items()) {
      const std::string rel = f.get<std::string>();
      if (!fs::is_regular_file(w.dir_ / rel)) throw StorageError(w.dir_.string() + ": listed chunk file " + rel + " is missing");
      listed.insert(fs::path(rel).filename().string());
    }
  }
  if (records != w.manifest_.value("records", std::size_t{0})) {
    throw StorageError(w.dir_.string() + ": manifest records differ from the sum of its chunks");
  }
  w.records_ = records;
  w.chunk_index_ = next_index;
  std::error_code ec;
  fs::create_directories(w.dir_ / "chunks", ec);
  for (const auto& sub : {w.dir_, w.dir_ / "chunks"}) {
    for (const auto& e : fs::directory_iterator(sub, ec)) {
      const std::string name = e.path().filename().string();
      const bool tmp = name.size() > 4 && name.ends_with(".tmp");
      const bool orphan_chunk = sub == w.dir_ / "chunks" && !listed.count(name);
      if (tmp || orphan_chunk) fs::remove(e.path(), ec);
    }
  }
  fsync_dir(w.dir_ / "chunks");
  w.manifest_["state"] = "running";
  w.write_manifest();
  return w;
}

void RunWriter::add_source(const Array& a) {
  write_array(dir_ / (a.name + ".npy"), a);
  if (!manifest_.contains("sources")) manifest_["sources"] = json::object();
  manifest_["sources"][a.name] = {{"file", a.name + ".npy"}, {"dtype", a.dtype}, {"shape", a.shape}};
  write_manifest();
}

void RunWriter::stop_interrupted(const json& extra) {
  manifest_["state"] = "interrupted";
  for (const auto& [k, v] : extra.items()) manifest_[k] = v;
  write_manifest();
}

void RunWriter::set(const std::string& key, json value) {
  manifest_[key] = std::move(value);
  write_manifest();
}

void RunWriter::write_manifest() { write_json_atomic(dir_ / "manifest.json", manifest_); }

void RunWriter::append_chunk(const std::vector<Array>& arrays, std::size_t records) {
  if (records == 0) return;
  json files = json::object();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06zu", chunk_index_);
  for (const auto& a : arrays) {
    if (a.shape.empty() || a.shape[0] != records) {
      throw StorageError("storage: array '" + a.name + "' does not have " + std::to_string(records) + " records");
    }
    const std::string rel = "chunks/" + a.name + "_" + buf + ".npy";
    write_array(dir_ / rel, a);
    files[a.name] = rel;
  }
  fsync_dir(dir_ / "chunks");
  manifest_["chunks"].push_back({{"index", chunk_index_}, {"first", records_}, {"count", records}, {"files", files}});
  records_ += records;
  ++chunk_index_;
  manifest_["records"] = records_;
  write_manifest();
}

void RunWriter::add_preview(const std::string& file_name, const std::vector<std::uint8_t>& png_bytes) {
  write_file_atomic(dir_ / file_name, png_bytes.data(), png_bytes.size());
  manifest_["previews"].push_back(file_name);
  write_manifest();
}

void RunWriter::finish(const std::string& final_state, const json& extra) {
  // Consolidate chunk files per array name.
  json arrays = json::object();
  if (!manifest_["chunks"].empty()) {
    for (const auto& [name, _] : manifest_["chunks"][0]["files"].items()) {
      auto a = load_run_array(dir_, manifest_, name);
      if (!a) continue;
      RunWriter::Array out{name, a->dtype, a->shape, std::move(a->bytes)};
      write_array(dir_ / (name + ".npy"), out);
      arrays[name] = {{"file", name + ".npy"}, {"dtype", out.dtype}, {"shape", out.shape}};
    }
  }
  const json old_chunks = manifest_["chunks"];
  manifest_["arrays"] = arrays;
  manifest_["chunks"] = json::array();
  manifest_["state"] = final_state;
  for (const auto& [k, v] : extra.items()) manifest_[k] = v;
  write_manifest();
  // Only now that the manifest names the consolidated files are the chunks garbage.
  std::error_code ec;
  for (const auto& c : old_chunks) {
    for (const auto& [_, f] : c["files"].items()) fs::remove(dir_ / f.get<std::string>(), ec);
  }
  fs::remove(dir_ / "chunks", ec);
}

json read_manifest(const fs::path& run_dir) {
  std::ifstream in(run_dir / "manifest.json");
  if (!in) throw StorageError((run_dir / "manifest.json").string() + ": cannot open");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw StorageError((run_dir / "manifest.json").string() + ": not a JSON object");
  return j;
}

std::optional<LoadedArray> load_run_array(const fs::path& run_dir, const json& manifest, const std::string& name) {
  auto load = [&](const std::string& rel) {
    try {
      return sim::read_npy(run_dir / rel);
    } catch (const sim::NpyError& e) {
      throw StorageError(e.what());
    }
  };
  if (manifest.contains("arrays") && manifest["arrays"].contains(name)) {
    const auto n = load(manifest["arrays"][name]["file"].get<std::string>());
    LoadedArray out{sim::dtype_descr(n.dtype), n.shape, std::string(reinterpret_cast<const char*>(n.bytes.data()), n.bytes.size())};
    return out;
  }
  if (!manifest.contains("chunks") || manifest["chunks"].empty()) return std::nullopt;
  std::optional<LoadedArray> out;
  for (const auto& c : manifest["chunks"]) {
    if (!c["files"].contains(name)) return std::nullopt;
    const auto n = load(c["files"][name].get<std::string>());
    if (!out) {
      out = LoadedArray{sim::dtype_descr(n.dtype), n.shape, {}};
      out->shape[0] = 0;
    } else if (sim::dtype_descr(n.dtype) != out->dtype || n.shape.size() != out->shape.size() ||
               !std::equal(n.shape.begin() + 1, n.shape.end(), out->shape.begin() + 1)) {
      throw StorageError(run_dir.string() + ": chunks of '" + name + "' differ in dtype or shape");
    }
    out->shape[0] += n.shape.empty() ? 0 : n.shape[0];
    out->bytes.append(reinterpret_cast<const char*>(n.bytes.data()), n.bytes.size());
  }
  return out;
}

}  // namespace hilo::controller
