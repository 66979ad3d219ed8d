// The catalog of jobs and runs: one SQLite database in WAL mode (docs/storage.md).
#include <sqlite3.h>

#include <set>

#include "hilo/controller/storage.hpp"

namespace hilo::controller {

namespace fs = std::filesystem;
using nlohmann::json;

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

}  // namespace hilo::controller
