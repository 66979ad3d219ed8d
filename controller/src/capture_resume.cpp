// Captures a previous daemon left interrupted: their inputs rebuilt from the job's params (dataset
// slice or the run's source_inputs.npy) and the run continued, or the run marked failed with why.
#include <cstring>

#include "hilo/controller/capture.hpp"
#include "hilo/controller/storage.hpp"
#include "hilo/sim/npy.hpp"

namespace hilo::controller {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The inputs of the original request, from the job's params: re-read from the dataset (loading it if
// needed) or from the run's source_inputs.npy. Throws (DatasetError, StorageError, json errors) with why.
CaptureInputs rebuild_inputs(const JobRecord& rec, DatasetLibrary& datasets, const fs::path& run_dir) {
  const json& p = rec.params;
  CaptureInputs in;
  if (p.contains("dataset")) {
    const auto name = p["dataset"].get<std::string>();
    const auto split = p.value("split", std::string("train"));
    const auto start = p["start"].get<std::int64_t>(), count = p["count"].get<std::int64_t>();
    if (!datasets.knows(name)) throw DatasetError("dataset '" + name + "' is no longer known to the daemon");
    in.set = datasets.get(name, split);
    if (start < 0 || count < 1 || static_cast<std::size_t>(start + count) > in.set->count) {
      throw DatasetError("dataset '" + name + "' no longer holds images [" + std::to_string(start) + ", " +
                         std::to_string(start + count) + ")");
    }
    in.start = static_cast<std::size_t>(start);
    in.count = static_cast<std::size_t>(count);
    in.has_labels = true;
  } else if (fs::exists(run_dir / "manifest.json")) {
    const auto a = sim::read_npy(run_dir / "source_inputs.npy");
    if (a.dtype != sim::Dtype::u1 || a.shape.size() != 3) throw DatasetError("source_inputs.npy is not [n, h, w] uint8");
    auto set = std::make_shared<ImageSet>();
    set->count = a.shape[0];
    set->rows = a.shape[1];
    set->cols = a.shape[2];
    set->images.resize(a.bytes.size());
    std::memcpy(set->images.data(), a.bytes.data(), a.bytes.size());
    in.set = std::move(set);
    in.count = a.shape[0];
  } else {
    throw DatasetError("the job's inline inputs were never stored (it stopped before its run began)");
  }
  if (static_cast<std::int64_t>(in.count) != rec.total) {
    throw DatasetError("the inputs hold " + std::to_string(in.count) + " images, the job planned " + std::to_string(rec.total));
  }
  return in;
}

// Ends a run that cannot be continued: its manifest (if any) says failed with `err`, so that it never
// keeps saying running. Every record it lists stays readable. Best effort: a damaged run directory
// keeps its manifest, and the catalog carries the job's failure either way.
void fail_run(const fs::path& run_dir, const std::string& err) {
  if (!fs::exists(run_dir / "manifest.json")) return;
  try {
    RunWriter::reopen(run_dir).finish("failed", {{"error", err}});
  } catch (const std::exception&) {
    try {
      json m = read_manifest(run_dir);
      m["state"] = "failed";
      m["error"] = err;
      write_json_atomic(run_dir / "manifest.json", m);
    } catch (const std::exception&) {
    }
  }
}

}  // namespace

int resume_interrupted_captures(JobManager& jobs, Catalog& catalog, DatasetLibrary& datasets, Devices& devices,
                                const fs::path& data_dir, const CaptureOptions& defaults,
                                const std::function<double()>& monotonic_s, std::size_t max_jobs) {
  int queued = 0;
  for (JobRecord rec : catalog.jobs_in_state(JobState::interrupted)) {
    if (rec.kind != "capture") continue;
    if (jobs.active() >= max_jobs) {
      rec.error = resume_deferred_reason(max_jobs);
      catalog.update_job(rec);
      continue;
    }
    const fs::path run_dir = data_dir / rec.run_id;
    const json& p = rec.params;
    CaptureOptions opt = defaults;
    std::string why;
    try {
      if (p.contains("timeout_ms")) opt.grab_timeout = std::chrono::milliseconds(p["timeout_ms"].get<std::int64_t>());
      if (p.contains("scale")) opt.scale = p["scale"].get<int>();
      if (p.contains("chunk_records")) opt.chunk_records = p["chunk_records"].get<std::size_t>();
      opt.hdf5 = p.value("hdf5", false);  // the handler records the resolved choice in params
    } catch (const std::exception& e) {
      why = std::string("cannot resume: bad job parameters: ") + e.what();
    }
    // The inputs are rebuilt by the job (a dataset's first load takes seconds; start-up does not wait).
    JobManager::Work work = [why, opt, &datasets, &devices, run_dir, monotonic_s](JobControl& ctl) {
      std::string err = why;
      CaptureInputs in;
      if (err.empty()) {
        try {
          in = rebuild_inputs(ctl.record(), datasets, run_dir);
        } catch (const std::exception& e) {
          err = std::string("cannot resume: inputs unavailable: ") + e.what();
        }
      }
      if (!err.empty()) {
        fail_run(run_dir, err);
        return JobOutcome{JobState::failed, err};
      }
      return resume_capture(in, opt, devices, run_dir, ctl, monotonic_s);
    };
    if (jobs.resume(rec, std::move(work))) ++queued;
  }
  return queued;
}

}  // namespace hilo::controller
