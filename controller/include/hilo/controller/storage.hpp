#pragma once
// Run storage (docs/storage.md): one directory per run under the data directory, holding .npy arrays,
// PNG previews and manifest.json, plus a SQLite catalog (catalog.sqlite, WAL mode, synchronous=FULL)
// of runs and jobs.
//
// Crash safety: every file is written to "<name>.tmp", fsynced, renamed over its final name, and the
// directory is fsynced; the manifest is rewritten the same way after the arrays it lists are durable,
// so whatever a manifest lists is complete. Catalog rows are committed in their own transactions.
// All classes here are safe to call from several threads (one internal mutex each).
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

struct sqlite3;

namespace hilo::controller {

class StorageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes `j` (pretty-printed) to `path` atomically: tmp file, fsync, rename, fsync of the directory.
void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& j);
// fsync of a directory, so that renames and new entries in it are durable.
void fsync_dir(const std::filesystem::path& dir);

// Unix time `unix_s` (seconds, truncated) as UTC text through strftime: "%Y%m%dT%H%M%SZ" for run ids,
// "%Y-%m-%dT%H:%M:%SZ" for ISO 8601. Empty when the result would exceed 63 characters.
std::string format_utc(double unix_s, const char* strftime_format);

enum class JobState { queued, running, done, failed, cancelled, interrupted };
std::string_view to_string(JobState s);
std::optional<JobState> job_state_from_string(std::string_view s);
bool is_final(JobState s);  // done, failed, cancelled, interrupted

struct JobRecord {
  std::int64_t id = 0;
  std::string kind;    // "capture"
  std::string run_id;  // the run the job writes into
  JobState state = JobState::queued;
  std::int64_t done = 0;   // units completed (frames for capture)
  std::int64_t total = 0;  // units planned
  std::string error;       // for failed (and a reason for interrupted/cancelled)
  double created_s = 0, started_s = 0, finished_s = 0;  // Unix time; 0 = not yet
  nlohmann::json params = nlohmann::json::object();
  // Counters the job reports (capture: fault and retry counters, resumes; docs/storage.md).
  nlohmann::json stats = nlohmann::json::object();

  nlohmann::json to_json() const;
};

struct RunRecord {
  std::string id;  // "YYYYMMDDTHHMMSSZ-<kind>-<job id>"
  std::string kind;
  std::string dir;  // relative to the data directory
  double created_s = 0;
  std::string state;  // mirrors the job: running/done/failed/cancelled/interrupted

  nlohmann::json to_json() const;
};

// The SQLite catalog. Opening creates the schema if needed and sets WAL mode.
class Catalog {
 public:
  explicit Catalog(const std::filesystem::path& db_path);  // throws StorageError
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  std::int64_t next_job_id();  // max(id)+1 over the catalog
  void insert_job(const JobRecord& j);
  void update_job(const JobRecord& j);  // state, progress, error, timestamps
  std::optional<JobRecord> job(std::int64_t id);
  std::vector<JobRecord> jobs(int limit = 1000);  // newest first
  std::vector<JobRecord> jobs_in_state(JobState s);  // oldest first
  std::map<std::string, std::int64_t> job_counts();  // jobs per state name, every state present (0 if none)

  void insert_run(const RunRecord& r);
  void set_run_state(const std::string& id, const std::string& state);
  std::optional<RunRecord> run(const std::string& id);
  std::vector<RunRecord> runs(int limit = 1000);  // newest first

  // Marks jobs left queued/running by a previous process as interrupted ("daemon stopped before the
  // job finished") and their runs likewise. Returns how many jobs it marked.
  int mark_unfinished_interrupted(double now_s);

  std::string journal_mode();  // "wal" once open

 private:
  void exec(const std::string& sql);
  std::mutex mu_;
  sqlite3* db_ = nullptr;
};

// Writes one run directory. Arrays are appended in chunks (each chunk one .npy per array name, e.g.
// chunks/frames_000003.npy); after each chunk the manifest is rewritten to list it, so a crash loses at
// most the chunk being written. finish() consolidates the chunks into one file per name
// (frames.npy, ...), rewrites the manifest to list those, then removes the chunk files.
class RunWriter {
 public:
  // Creates `dir` (must not exist) and writes the first manifest: base + {"state": "running", "chunks": []}.
  RunWriter(std::filesystem::path dir, nlohmann::json base_manifest);
  // Continues a run a previous process left "running" (a crash) or "interrupted" with its chunks not
  // consolidated (a stop; see stop_interrupted()): the records are those
  // its manifest lists; files the manifest does not list (a chunk written but never listed, *.tmp) are
  // removed, so the next chunk continues exactly after the last listed one. Throws StorageError when
  // the directory has no readable manifest, the run has ended, or a listed chunk file is missing.
  static RunWriter reopen(std::filesystem::path dir);

  struct Array {
    std::string name;    // file stem, [a-z0-9_]+
    std::string dtype;   // numpy descr: "|u1", "<u2", "<i8"
    std::vector<std::size_t> shape;  // first axis = records in this chunk
    std::string bytes;
  };
  // Appends one chunk holding `records` records of each array (all arrays share the first axis).
  void append_chunk(const std::vector<Array>& arrays, std::size_t records);
  std::size_t records() const { return records_; }

  // Marks the run "interrupted" without consolidating, so that reopen() can continue it; `extra` keys
  // are written into the manifest.
  void stop_interrupted(const nlohmann::json& extra);
  // Consolidates, writes `extra` keys into the manifest with state = final_state.
  void finish(const std::string& final_state, const nlohmann::json& extra);
  // Writes a PNG next to the manifest and lists it under "previews".
  void add_preview(const std::string& file_name, const std::vector<std::uint8_t>& png_bytes);
  // Writes `<a.name>.npy` next to the manifest and lists it under "sources" (data the run needs to be
  // continued, e.g. the inline inputs of a capture).
  void add_source(const Array& a);
  // Sets manifest[key] = value and rewrites the manifest.
  void set(const std::string& key, nlohmann::json value);

  const nlohmann::json& manifest() const { return manifest_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  RunWriter() = default;
  void write_manifest();
  std::filesystem::path dir_;
  nlohmann::json manifest_;
  std::size_t records_ = 0;
  std::size_t chunk_index_ = 0;
};

// Writes `a` as the .npy file `path`, atomically (tmp, fsync, rename). Throws StorageError for a dtype
// .npy files of hilo cannot hold ("|u1", "<u1", "<u2", "<u4", "<i4", "<i8", "<f4", "<f8" can) or an
// I/O failure.
void write_array(const std::filesystem::path& path, const RunWriter::Array& a);

// Reads a run's manifest and loads one listed array (consolidated or concatenated chunks) as raw bytes.
struct LoadedArray {
  std::string dtype;
  std::vector<std::size_t> shape;
  std::string bytes;
};
nlohmann::json read_manifest(const std::filesystem::path& run_dir);
std::optional<LoadedArray> load_run_array(const std::filesystem::path& run_dir, const nlohmann::json& manifest,
                                          const std::string& name);

}  // namespace hilo::controller
