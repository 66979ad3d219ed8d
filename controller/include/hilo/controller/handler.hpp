#pragma once
// Command handling: handle(request, context) → reply. No socket I/O happens here; the context carries
// the devices, job manager, catalog and datasets, so tests drive it with test doubles.
// Every failure becomes an error reply with a stable code; handle() never throws (an unexpected
// exception becomes "internal").
// Security: a command needing a role above the caller's is refused with forbidden (security.hpp);
// path arguments are confined to data_dir (forbidden_path); a command that starts a job calls
// check_job_limit() first (too_many_jobs beyond limits.max_jobs queued + running).
//
// Commands (docs/protocol.md has an example exchange for each):
//   ping, version, devices.list, devices.status, devices.configure, slm.show, camera.grab, capture,
//   pipeline, train-teacher, distill, deploy, calibrate, evaluate, jobs.list, jobs.status, jobs.cancel, runs.list, runs.get, runs.export,
//   daemon.stats, shutdown
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "hilo/controller/capture.hpp"
#include "hilo/controller/dataset.hpp"
#include "hilo/controller/jobs.hpp"
#include "hilo/controller/pipeline.hpp"
#include "hilo/controller/protocol.hpp"
#include "hilo/controller/security.hpp"
#include "hilo/controller/storage.hpp"

namespace hilo::controller {

struct Context {
  Devices& devices;
  JobManager& jobs;
  Catalog& catalog;
  DatasetLibrary& datasets;
  std::filesystem::path data_dir;
  Limits limits;
  CaptureOptions capture_defaults;
  std::function<double()> monotonic_s;  // for chunk timing in jobs
  std::string daemon_version = "0.1.0";
  bool shutting_down = false;  // set by the daemon; new jobs are refused with shutting_down
  // The bench as the pipeline sees it (null when the bench config has no simulator section, which
  // holds the designed optics): the pipeline command answers not_supported then.
  PipelineBench* pipeline = nullptr;
  // The socket loop's counters as daemon.stats reports them (Daemon sets it; null without one, then
  // daemon.stats reports jobs and devices only). Called on the thread that calls handle().
  std::function<nlohmann::json()> daemon_counters;
};

// The job that runs (or resumes, same run directory) the pipeline; used by the pipeline command and by
// the daemon at start for pipelines a previous process left interrupted.
JobManager::Work pipeline_work(const PipelineConfig& config, PipelineBench& bench, const std::filesystem::path& run_dir);
// Queues every interrupted pipeline, deploy, calibrate, evaluate, train-teacher and distill job again
// (captures: resume_interrupted_captures), oldest first, while fewer than `max_jobs` jobs are queued or
// running (the rest stay interrupted, see jobs.hpp); returns how many. Each job's work is rebuilt from
// its stored parameters the way its command built it: the stages load what their run directory already
// holds and run the rest; training jobs start again from their first epoch (no mid-training
// checkpoint). A job whose parameters or inputs no longer hold, or that needs a design model `bench`
// (null: none) does not have, is queued to fail at once with "cannot resume: <reason>".
int resume_interrupted_jobs(JobManager& jobs, Catalog& catalog, PipelineBench* bench,
                            const std::filesystem::path& data_dir, std::size_t max_jobs);

std::vector<std::string_view> command_names();

// A device's description and state as devices.list / devices.status report it. Reads the device's
// getters only (no lock taken), so the live view may call them while a job drives the devices.
nlohmann::json slm_json(drivers::Slm& s);
nlohmann::json camera_json(drivers::Camera& c);

// role: what the caller authenticated as (control when the daemon runs without CurveZMQ).
Reply handle(const Request& req, Context& ctx, Role role = Role::control);
// Commands whose handling is computation, not a change of the daemon's state: `defer` (the student's
// and the teacher's forward passes over up to 65,536 inputs). The daemon runs their handle() on its
// compute thread, one at a time in arrival order, so the I/O thread keeps answering other requests
// meanwhile; their handlers read only the request and ctx.data_dir, which nothing changes while serving.
bool runs_off_io_thread(std::string_view cmd);
// parse() then handle(); the reply to anything a client can send.
Reply handle_frames(std::span<const std::string> frames, Context& ctx, Role role = Role::control);

// too_many_jobs when ctx.limits.max_jobs jobs are queued or running, else nullopt.
std::optional<Reply> check_job_limit(const Request& req, Context& ctx);

}  // namespace hilo::controller
