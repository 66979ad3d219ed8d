#include "hilo/controller/jobs.hpp"

namespace hilo::controller {

using nlohmann::json;


void JobControl::progress(std::int64_t done, std::int64_t total) { m_.on_progress(*this, done, total); }

io::WorkControl JobControl::work() {
  return {[this](std::int64_t done, std::int64_t total, std::string_view) { progress(done, total); },
          stop_source_.get_token()};
}

void JobControl::request_stop(StopReason why) {
  StopReason expected = StopReason::none;
  stop_.compare_exchange_strong(expected, why);
  stop_source_.request_stop();
}
void JobControl::checkpoint(std::int64_t done) { m_.on_checkpoint(*this, done); }
void JobControl::set_stats(json stats) {
  std::lock_guard lk(m_.mu_);
  rec_.stats = std::move(stats);
}

void JobControl::event(const std::string& topic, json body) {
  body["job_id"] = rec_.id;
  body["run_id"] = rec_.run_id;
  if (m_.sink_) m_.sink_(topic, body);
}

double JobControl::now_s() const { return m_.clock_(); }

JobManager::JobManager(Catalog& catalog, EventSink sink, WallClock clock, double progress_interval_s)
    : catalog_(catalog), sink_(std::move(sink)), clock_(std::move(clock)), progress_interval_s_(progress_interval_s) {
  worker_ = std::thread([this] { worker_loop(); });
}

JobManager::~JobManager() { shutdown(); }

std::optional<JobRecord> JobManager::submit(const std::string& kind, json params, std::int64_t total,
                                            const std::function<Work(const JobRecord&)>& make_work) {
  std::unique_lock lk(mu_);
  if (!accepting_) return std::nullopt;
  JobRecord r;
  r.id = catalog_.next_job_id();
  r.kind = kind;
  r.created_s = clock_();
  r.run_id = format_utc(r.created_s, "%Y%m%dT%H%M%SZ") + "-" + kind + "-" + std::to_string(r.id);
  r.total = total;
  r.params = std::move(params);
  catalog_.insert_run(RunRecord{r.run_id, kind, r.run_id, r.created_s, "queued"});
  catalog_.insert_job(r);
  queue_.push_back(Entry{r, make_work(r)});
  lk.unlock();
  publish_state(r);
  cv_.notify_all();
  return r;
}

std::optional<JobRecord> JobManager::resume(JobRecord r, Work work) {
  std::unique_lock lk(mu_);
  if (!accepting_) return std::nullopt;
  r.state = JobState::queued;
  r.error.clear();
  r.finished_s = 0;
  catalog_.update_job(r);
  catalog_.set_run_state(r.run_id, "queued");
  queue_.push_back(Entry{r, std::move(work)});
  lk.unlock();
  publish_state(r);
  cv_.notify_all();
  return r;
}

std::optional<JobRecord> JobManager::get(std::int64_t id) {
  {
    std::lock_guard lk(mu_);
    if (running_ && running_->rec_.id == id) return running_->rec_;
    for (const auto& e : queue_) {
      if (e.rec.id == id) return e.rec;
    }
  }
  return catalog_.job(id);
}

std::vector<JobRecord> JobManager::list(int limit) {
  auto out = catalog_.jobs(limit);
  std::lock_guard lk(mu_);
  for (auto& r : out) {
    if (running_ && running_->rec_.id == r.id) r = running_->rec_;
  }
  return out;
}

std::optional<JobRecord> JobManager::cancel(std::int64_t id) {
  std::unique_lock lk(mu_);
  if (running_ && running_->rec_.id == id) {
    running_->request_stop(StopReason::cancel);
    return running_->rec_;
  }
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->rec.id == id) {
      JobRecord r = it->rec;
      queue_.erase(it);
      lk.unlock();
      r.state = JobState::cancelled;
      r.error = "cancelled before it started";
      r.finished_s = clock_();
      catalog_.update_job(r);
      catalog_.set_run_state(r.run_id, "cancelled");
      publish_state(r);
      cv_.notify_all();
      return r;
    }
  }
  lk.unlock();
  return catalog_.job(id);
}

std::string resume_deferred_reason(std::size_t max_jobs) {
  return "not resumed at start: limits.max_jobs (" + std::to_string(max_jobs) +
         ") jobs were already queued or running; a later start resumes it";
}

std::size_t JobManager::active() {
  std::lock_guard lk(mu_);
  return queue_.size() + (running_ != nullptr ? 1 : 0);
}

bool JobManager::busy() {
  std::lock_guard lk(mu_);
  return running_ != nullptr || !queue_.empty();
}

void JobManager::wait_idle() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return running_ == nullptr && queue_.empty(); });
}

void JobManager::shutdown() {
  std::deque<Entry> dropped;
  {
    std::lock_guard lk(mu_);
    accepting_ = false;
    stop_worker_ = true;
    dropped.swap(queue_);
    if (running_) running_->request_stop(StopReason::shutdown);
  }
  cv_.notify_all();
  for (auto& e : dropped) {
    e.rec.state = JobState::interrupted;
    e.rec.error = "daemon shut down before the job started";
    e.rec.finished_s = clock_();
    catalog_.update_job(e.rec);
    catalog_.set_run_state(e.rec.run_id, "interrupted");
    publish_state(e.rec);
  }
  if (worker_.joinable()) worker_.join();
}

void JobManager::publish_state(const JobRecord& r) {
  if (sink_) sink_("job.state", r.to_json());
}

void JobManager::on_progress(JobControl& c, std::int64_t done, std::int64_t total) {
  {
    std::lock_guard lk(mu_);
    c.rec_.done = done;
    c.rec_.total = total;
  }
  const double now = clock_();
  if (done == total || now - c.last_event_s_ >= progress_interval_s_) {
    c.last_event_s_ = now;
    if (sink_) {
      json stats;
      {
        std::lock_guard lk(mu_);
        stats = c.rec_.stats;
      }
      sink_("job.progress", {{"job_id", c.rec_.id}, {"run_id", c.rec_.run_id}, {"done", done}, {"total", total},
                             {"fraction", total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0},
                             {"stats", std::move(stats)}});
    }
  }
}

void JobManager::on_checkpoint(JobControl& c, std::int64_t done) {
  JobRecord snapshot;
  {
    std::lock_guard lk(mu_);
    c.rec_.done = done;
    snapshot = c.rec_;
  }
  catalog_.update_job(snapshot);
}

void JobManager::worker_loop() {
  for (;;) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return stop_worker_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_worker_ and nothing left
    Entry e = std::move(queue_.front());
    queue_.pop_front();
    JobControl ctl(*this, e.rec);
    ctl.rec_.state = JobState::running;
    ctl.rec_.started_s = clock_();
    running_ = &ctl;
    if (stop_worker_) ctl.request_stop(StopReason::shutdown);
    const JobRecord started = ctl.rec_;
    lk.unlock();

    JobOutcome out;
    try {
      catalog_.update_job(started);
      catalog_.set_run_state(started.run_id, "running");
      publish_state(started);
      out = e.work(ctl);
    } catch (const std::exception& ex) {
      out = {JobState::failed, ex.what()};
    } catch (...) {
      out = {JobState::failed, "unknown exception"};
    }
    if (out.state == JobState::cancelled || out.state == JobState::interrupted) {
      // The work stopped because it was asked to; the reason decides which.
      out.state = ctl.stop_reason() == StopReason::shutdown ? JobState::interrupted : JobState::cancelled;
      if (out.error.empty()) {
        out.error = out.state == JobState::interrupted ? "daemon shut down during the job" : "cancelled by request";
      }
    }
    lk.lock();
    ctl.rec_.state = out.state;
    ctl.rec_.error = out.error;
    ctl.rec_.finished_s = clock_();
    const JobRecord fin = ctl.rec_;
    lk.unlock();
    try {
      catalog_.update_job(fin);
      catalog_.set_run_state(fin.run_id, std::string(to_string(fin.state)));
    } catch (const std::exception&) {
      // The catalog is unwritable (disk full); the next start marks the job interrupted.
    }
    publish_state(fin);
    lk.lock();
    running_ = nullptr;
    lk.unlock();
    cv_.notify_all();
  }
}

}  // namespace hilo::controller
