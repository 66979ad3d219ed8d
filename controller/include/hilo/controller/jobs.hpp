#pragma once
// Job manager: jobs run one at a time on a worker thread owned by the manager, in submission order.
// Every state change is committed to the catalog and published through the EventSink as "job.state";
// progress is published as "job.progress" (at most every progress_interval_s, and always at the end).
//
// Stopping: cancel(id) removes a queued job (→ cancelled) or asks the running one to stop
// (JobControl::stop_requested() becomes true; its work returns and the job ends cancelled).
// shutdown() stops accepting, marks queued jobs interrupted, asks the running job to stop and joins
// the worker; a job stopped that way ends interrupted. Work must poll stop_requested() between units.
// Work that throws ends failed with the exception's message.
// Restart: resume() queues a job a previous process left interrupted (see capture.hpp for the capture).
// Resumed jobs count against limits.max_jobs like any other: at start, interrupted jobs are resumed
// (captures, then pipelines, stage and training jobs, each oldest first) while fewer than max_jobs are queued or running; the excess stay interrupted (their
// error says so) and the next start resumes them.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/controller/storage.hpp"
#include "hilo/io/progress.hpp"

namespace hilo::controller {

// Receives events from any thread; must be thread-safe (the daemon posts them to its io_context).
using EventSink = std::function<void(const std::string& topic, const nlohmann::json& body)>;
// Unix time in seconds (injected so tests control it).
using WallClock = std::function<double()>;

enum class StopReason { none, cancel, shutdown };

// The error an interrupted job keeps when a start did not resume it for limits.max_jobs.
std::string resume_deferred_reason(std::size_t max_jobs);

class JobControl {
 public:
  bool stop_requested() const { return stop_.load() != StopReason::none; }
  // The job's progress and stop in the shape every layer takes (io/progress.hpp): report() is
  // progress(done, total) (the stage goes to the caller's own stats), the token is stopped when
  // stop_requested() becomes true.
  io::WorkControl work();
  StopReason stop_reason() const { return stop_.load(); }
  // Units done so far (in memory + event, rate limited).
  void progress(std::int64_t done, std::int64_t total);
  // Units durably stored: also committed to the catalog (with the stats last set).
  void checkpoint(std::int64_t done);
  // The job's counters (JobRecord::stats): visible in jobs.status at once, carried by job.progress
  // events, committed with the next checkpoint and the final state.
  void set_stats(nlohmann::json stats);
  const JobRecord& record() const { return rec_; }
  // Publishes a job-specific event (e.g. "bench.drift"); job_id and run_id are added to the body.
  void event(const std::string& topic, nlohmann::json body);
  // The job manager's wall clock (Unix seconds), for timestamps in the job's documents.
  double now_s() const;

 private:
  friend class JobManager;
  JobControl(class JobManager& m, JobRecord rec) : m_(m), rec_(std::move(rec)) {}
  JobManager& m_;
  JobRecord rec_;
  std::atomic<StopReason> stop_{StopReason::none};
  std::stop_source stop_source_;
  void request_stop(StopReason why);
  double last_event_s_ = -1e300;
};

struct JobOutcome {
  JobState state = JobState::done;  // done, failed, cancelled, interrupted (the manager fixes up cancel/shutdown)
  std::string error;
};

class JobManager {
 public:
  using Work = std::function<JobOutcome(JobControl&)>;

  JobManager(Catalog& catalog, EventSink sink, WallClock clock, double progress_interval_s = 0.1);
  ~JobManager();  // shutdown()
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Allocates a job id and a run id "<UTC yyyymmddThhmmssZ>-<kind>-<job id>", records both (queued /
  // "queued"), and queues make_work(record)'s work. nullopt when no longer accepting (after shutdown()).
  std::optional<JobRecord> submit(const std::string& kind, nlohmann::json params, std::int64_t total,
                                  const std::function<Work(const JobRecord&)>& make_work);

  // Queues an existing job again (a job a previous daemon process left interrupted), keeping its id and
  // run id: state → queued in the catalog, then it runs like any other. nullopt when not accepting.
  std::optional<JobRecord> resume(JobRecord rec, Work work);

  std::optional<JobRecord> get(std::int64_t id);  // live state for active jobs, else the catalog's
  std::vector<JobRecord> list(int limit = 1000);
  // The record after the request: queued → cancelled at once; running → still running, stop requested;
  // final → unchanged. nullopt if unknown.
  std::optional<JobRecord> cancel(std::int64_t id);
  bool busy();          // a job is queued or running
  std::size_t active();  // jobs queued or running (what limits.max_jobs bounds)
  bool accepting() const { return accepting_.load(); }
  void shutdown();      // idempotent
  // Blocks until no job is queued or running (tests and the benchmark).
  void wait_idle();

 private:
  friend class JobControl;
  struct Entry {
    JobRecord rec;
    Work work;
  };
  void worker_loop();
  void publish_state(const JobRecord& r);
  void on_progress(JobControl& c, std::int64_t done, std::int64_t total);
  void on_checkpoint(JobControl& c, std::int64_t done);

  Catalog& catalog_;
  EventSink sink_;
  WallClock clock_;
  double progress_interval_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> queue_;
  JobControl* running_ = nullptr;  // guarded by mu_
  std::atomic<bool> accepting_{true};
  bool stop_worker_ = false;
  std::thread worker_;
};

}  // namespace hilo::controller
