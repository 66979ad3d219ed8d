// Captures a previous daemon left interrupted: their inputs rebuilt from the job's params (dataset
// slice or the run's source_inputs.npy) and the run continued, or the run marked failed with why.
#include <cstring>

#include "capture_detail.hpp"
#include "hilo/controller/capture.hpp"
#include "hilo/controller/storage.hpp"
#include "hilo/io/options_json.hpp"
#include "hilo/sim/npy.hpp"

namespace hilo::controller {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace capture_detail;

namespace {

// The inputs of the original request, from the job's params: re-read from the dataset (loading it if
// needed) or from the run's source_inputs.npy. Throws (DatasetError, StorageError, json errors) with why.
CaptureInputs rebuild_inputs(const JobRecord& rec, DatasetLibrary& datasets, const fs::path& run_dir) {
  const json& p = rec.params;
  CaptureInputs in;
  if (p.contains("dataset")) {
    const auto name = datasets.key_of(p["dataset"]);
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

// What differs between a run's recorded placement/devices and the current ones ("" = nothing).
std::string bench_difference(const json& manifest, const json& placement, const json& devs) {
  for (const auto& [section, now] : {std::pair<const char*, const json&>{"placement", placement}, {"devices", devs}}) {
    const json was = manifest.value(section, json::object());
    for (const auto& [k, v] : now.items()) {
      if (!was.contains(k) || was[k] != v) {
        return std::string(section) + "." + k + " was " + (was.contains(k) ? was[k].dump() : "absent") + ", now " + v.dump();
      }
    }
  }
  return {};
}

}  // namespace

JobOutcome resume_capture(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices, const fs::path& run_dir,
                          JobControl& ctl, const std::function<double()>& monotonic_s) {
  if (auto e = opt.validate(); !e.empty()) return {JobState::failed, e};
  std::lock_guard dev_lock(devices.mutex);
  const JobRecord& rec = ctl.record();
  if (!fs::exists(run_dir / "manifest.json")) {
    // Stopped before its first manifest was written: the directory (if any) holds no record.
    std::error_code ec;
    fs::remove_all(run_dir, ec);
    json base = {{"run_id", rec.run_id}, {"kind", rec.kind}, {"job_id", rec.id}, {"created_s", rec.created_s},
                 {"params", rec.params}};
    return fresh_capture(in, opt, devices, run_dir, std::move(base), ctl, monotonic_s);
  }
  json manifest;
  try {
    manifest = read_manifest(run_dir);
  } catch (const StorageError& e) {
    return {JobState::failed, std::string("cannot resume: ") + e.what()};
  }
  const std::string state = manifest.value("state", "");
  const bool consolidated = manifest.contains("arrays") && !manifest["arrays"].empty();
  if (state != "running" && !(state == "interrupted" && !consolidated)) {
    // The previous process ended the run but stopped before the catalog said so: the manifest decides.
    const auto st = job_state_from_string(state);
    if (!st || !is_final(*st)) return {JobState::failed, "cannot resume: run manifest has state '" + state + "'"};
    ctl.checkpoint(manifest.value("records", std::int64_t{0}));
    if (*st == JobState::interrupted) return {JobState::failed, "cannot resume: the run was already consolidated as interrupted"};
    return {*st, manifest.value("error", std::string())};
  }
  std::optional<RunWriter> w;
  try {
    w.emplace(RunWriter::reopen(run_dir));
  } catch (const StorageError& e) {
    return {JobState::failed, std::string("cannot resume: ") + e.what()};
  }
  auto fail = [&](const std::string& why) -> JobOutcome {
    const std::string err = "cannot resume: " + why;
    w->finish("failed", {{"error", err}});  // keeps every listed record readable
    return {JobState::failed, err};
  };
  const int scale = resolved_scale(in, opt, devices.slm);
  if (auto d = bench_difference(manifest, placement_json(devices.slm, scale), devices_json(devices.slm, devices.camera));
      !d.empty()) {
    return fail("the bench changed since the job started: " + d);
  }
  if (w->records() > in.count) {
    return fail("the run holds " + std::to_string(w->records()) + " records, the job plans " + std::to_string(in.count));
  }
  // The inputs the run already holds must be those the job would show again (dataset files replaced?).
  if (!manifest["chunks"].empty()) {
    const auto& last = manifest["chunks"].back();
    try {
      const auto stored = sim::read_npy(run_dir / last["files"]["inputs"].get<std::string>());
      const std::size_t first = last["first"].get<std::size_t>(), n = in.set->rows * in.set->cols;
      if (stored.bytes.size() != last["count"].get<std::size_t>() * n ||
          std::memcmp(stored.bytes.data(), image_of(in, first), stored.bytes.size()) != 0) {
        return fail("the inputs differ from those the run stored (records " + std::to_string(first) + "..)");
      }
    } catch (const std::exception& e) {
      return fail(std::string("cannot read the stored inputs: ") + e.what());
    }
  }
  json base_stats = rec.stats.is_object() ? rec.stats : json::object();
  base_stats["resumes"] = base_stats.value("resumes", 0) + 1;
  json resumes = manifest.value("resumes", json::array());
  resumes.push_back({{"at_record", w->records()}});
  w->set("resumes", resumes);
  return capture_loop(in, opt, devices, *w, scale, ctl, monotonic_s, base_stats);
}


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
      if (p.contains("content_check")) opt.content = io::read_options(p["content_check"], "content_check", opt.content);
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
