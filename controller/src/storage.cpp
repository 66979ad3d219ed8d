#include "hilo/controller/storage.hpp"

#include <fcntl.h>
#include <sqlite3.h>
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

// ---------------------------------------------------------------------------------------------- Catalog

namespace {
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
      throw StorageError(std::string("catalog: prepare failed: ") + sqlite3_errmsg(db));
    }
  }
  ~Stmt() { sqlite3_finalize(s); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(s, i, v); }
  void bind(int i, double v) { sqlite3_bind_double(s, i, v); }
  void bind(int i, const std::string& v) { sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  std::string text(int i) {
    const auto* p = sqlite3_column_text(s, i);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
};

void step_done(sqlite3* db, Stmt& st) {
  const int rc = sqlite3_step(st.s);
  if (rc != SQLITE_DONE) throw StorageError(std::string("catalog: write failed: ") + sqlite3_errmsg(db));
}

JobRecord read_job(Stmt& st) {
  JobRecord j;
  j.id = sqlite3_column_int64(st.s, 0);
  j.kind = st.text(1);
  j.run_id = st.text(2);
  j.state = job_state_from_string(st.text(3)).value_or(JobState::failed);
  j.done = sqlite3_column_int64(st.s, 4);
  j.total = sqlite3_column_int64(st.s, 5);
  j.error = st.text(6);
  j.created_s = sqlite3_column_double(st.s, 7);
  j.started_s = sqlite3_column_double(st.s, 8);
  j.finished_s = sqlite3_column_double(st.s, 9);
  j.params = json::parse(st.text(10), nullptr, false);
  if (j.params.is_discarded()) j.params = json::object();
  j.stats = json::parse(st.text(11), nullptr, false);
  if (j.stats.is_discarded() || !j.stats.is_object()) j.stats = json::object();
  return j;
}

RunRecord read_run(Stmt& st) {
  RunRecord r;
  r.id = st.text(0);
  r.kind = st.text(1);
  r.dir = st.text(2);
  r.created_s = sqlite3_column_double(st.s, 3);
  r.state = st.text(4);
  return r;
}

constexpr const char* kJobCols =
    "id, kind, run_id, state, done, total, error, created_s, started_s, finished_s, params, stats";
}  // namespace

Catalog::Catalog(const fs::path& db_path) {
  if (sqlite3_open_v2(db_path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StorageError(db_path.string() + ": cannot open catalog: " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec(
        "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, dir TEXT NOT NULL, "
        "created_s REAL NOT NULL, state TEXT NOT NULL)");
    exec(
        "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, run_id TEXT NOT NULL, "
        "state TEXT NOT NULL CHECK (state IN ('queued','running','done','failed','cancelled','interrupted')), "
        "done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', "
        "created_s REAL NOT NULL, started_s REAL NOT NULL DEFAULT 0, finished_s REAL NOT NULL DEFAULT 0, "
        "params TEXT NOT NULL DEFAULT '{}')");
    exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    // Schema 2 added jobs.stats; a catalog of schema 1 gains the column (default '{}').
    bool has_stats = false;
    {
      Stmt st(db_, "PRAGMA table_info(jobs)");
      while (sqlite3_step(st.s) == SQLITE_ROW) has_stats = has_stats || st.text(1) == "stats";
    }
    if (!has_stats) exec("ALTER TABLE jobs ADD COLUMN stats TEXT NOT NULL DEFAULT '{}'");
    exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '2')");
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Catalog::~Catalog() {
  if (db_) sqlite3_close(db_);
}

void Catalog::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw StorageError("catalog: " + msg + " (in: " + sql.substr(0, 60) + ")");
  }
}

std::string Catalog::journal_mode() {
  std::lock_guard lk(mu_);
  Stmt st(db_, "PRAGMA journal_mode");
  if (sqlite3_step(st.s) != SQLITE_ROW) return "";
  return st.text(0);
}

std::int64_t Catalog::next_job_id() {
  std::lock_guard lk(mu_);
  Stmt st(db_, "SELECT COALESCE(MAX(id), 0) + 1 FROM jobs");
  if (sqlite3_step(st.s) != SQLITE_ROW) throw StorageError(std::string("catalog: ") + sqlite3_errmsg(db_));
  return sqlite3_column_int64(st.s, 0);
}

void Catalog::insert_job(const JobRecord& j) {
  std::lock_guard lk(mu_);
  Stmt st(db_, "INSERT INTO jobs (id, kind, run_id, state, done, total, error, created_s, started_s, finished_s, params, "
               "stats) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
  st.bind(1, j.id);
  st.bind(2, j.kind);
  st.bind(3, j.run_id);
  st.bind(4, std::string(to_string(j.state)));
  st.bind(5, j.done);
  st.bind(6, j.total);
  st.bind(7, j.error);
  st.bind(8, j.created_s);
  st.bind(9, j.started_s);
  st.bind(10, j.finished_s);
  st.bind(11, j.params.dump());
  st.bind(12, j.stats.dump());
  step_done(db_, st);
}

void Catalog::update_job(const JobRecord& j) {
  std::lock_guard lk(mu_);
  Stmt st(db_, "UPDATE jobs SET state=?, done=?, total=?, error=?, started_s=?, finished_s=?, stats=? WHERE id=?");
  st.bind(1, std::string(to_string(j.state)));
  st.bind(2, j.done);
  st.bind(3, j.total);
  st.bind(4, j.error);
  st.bind(5, j.started_s);
  st.bind(6, j.finished_s);
  st.bind(7, j.stats.dump());
  st.bind(8, j.id);
  step_done(db_, st);
}

std::optional<JobRecord> Catalog::job(std::int64_t id) {
  std::lock_guard lk(mu_);
  Stmt st(db_, (std::string("SELECT ") + kJobCols + " FROM jobs WHERE id=?").c_str());
  st.bind(1, id);
  if (sqlite3_step(st.s) != SQLITE_ROW) return std::nullopt;
  return read_job(st);
}

std::vector<JobRecord> Catalog::jobs(int limit) {
  std::lock_guard lk(mu_);
  Stmt st(db_, (std::string("SELECT ") + kJobCols + " FROM jobs ORDER BY id DESC LIMIT ?").c_str());
  st.bind(1, static_cast<std::int64_t>(limit));
  std::vector<JobRecord> out;
  while (sqlite3_step(st.s) == SQLITE_ROW) out.push_back(read_job(st));
  return out;
}

std::map<std::string, std::int64_t> Catalog::job_counts() {
  std::map<std::string, std::int64_t> out;
  for (auto s : {JobState::queued, JobState::running, JobState::done, JobState::failed, JobState::cancelled,
                 JobState::interrupted}) {
    out[std::string(to_string(s))] = 0;
  }
  std::lock_guard lk(mu_);
  Stmt st(db_, "SELECT state, COUNT(*) FROM jobs GROUP BY state");
  while (sqlite3_step(st.s) == SQLITE_ROW) out[st.text(0)] = sqlite3_column_int64(st.s, 1);
  return out;
}

std::vector<JobRecord> Catalog::jobs_in_state(JobState s) {
  std::lock_guard lk(mu_);
  Stmt st(db_, (std::string("SELECT ") + kJobCols + " FROM jobs WHERE state=? ORDER BY id ASC").c_str());
  st.bind(1, std::string(to_string(s)));
  std::vector<JobRecord> out;
  while (sqlite3_step(st.s) == SQLITE_ROW) out.push_back(read_job(st));
  return out;
}

void Catalog::insert_run(const RunRecord& r) {
  std::lock_guard lk(mu_);
  Stmt st(db_, "INSERT INTO runs (id, kind, dir, created_s, state) VALUES (?,?,?,?,?)");
  st.bind(1, r.id);
  st.bind(2, r.kind);
  st.bind(3, r.dir);
  st.bind(4, r.created_s);
  st.bind(5, r.state);
  step_done(db_, st);
}

void Catalog::set_run_state(const std::string& id, const std::string& state) {
  std::lock_guard lk(mu_);
  Stmt st(db_, "UPDATE runs SET state=? WHERE id=?");
  st.bind(1, state);
  st.bind(2, id);
  step_done(db_, st);
}

std::optional<RunRecord> Catalog::run(const std::string& id) {
  std::lock_guard lk(mu_);
  Stmt st(db_, "SELECT id, kind, dir, created_s, state FROM runs WHERE id=?");
  st.bind(1, id);
  if (sqlite3_step(st.s) != SQLITE_ROW) return std::nullopt;
  return read_run(st);
}

std::vector<RunRecord> Catalog::runs(int limit) {
  std::lock_guard lk(mu_);
  Stmt st(db_, "SELECT id, kind, dir, created_s, state FROM runs ORDER BY created_s DESC, id DESC LIMIT ?");
  st.bind(1, static_cast<std::int64_t>(limit));
  std::vector<RunRecord> out;
  while (sqlite3_step(st.s) == SQLITE_ROW) out.push_back(read_run(st));
  return out;
}

int Catalog::mark_unfinished_interrupted(double now_s) {
  std::lock_guard lk(mu_);
  exec("BEGIN IMMEDIATE");
  try {
    {
      Stmt st(db_, "UPDATE runs SET state='interrupted' WHERE id IN "
                   "(SELECT run_id FROM jobs WHERE state IN ('queued','running'))");
      step_done(db_, st);
    }
    Stmt st(db_, "UPDATE jobs SET state='interrupted', finished_s=?, "
                 "error=CASE WHEN error='' THEN 'daemon stopped before the job finished' ELSE error END "
                 "WHERE state IN ('queued','running')");
    st.bind(1, now_s);
    step_done(db_, st);
    const int n = sqlite3_changes(db_);
    exec("COMMIT");
    return n;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
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
