#pragma once
// The capture job: for each input image, place it on the input SLM, grab one camera frame, and store
// input, frame (and index/label for dataset inputs) in the run directory in chunks.
//
// Placement: drivers::place_pattern (drivers/placed_slm.hpp) at CaptureOptions::scale (0 = the largest
// integer magnification that fits), the rule the calibration probes and hilo-emulator share.
// Frames: every frame must have the first frame's size and type (CV_8U → "|u1", CV_16U → "<u2").
// A chunk is committed (durable, listed in the manifest, catalog progress updated) every
// chunk_records frames or chunk_seconds, whichever first, and when the job stops for any reason, so a
// stop or a device failure keeps every frame grabbed before it.
//
// Faults (after the drivers' own RetryPolicy): a frame is stored only under the input shown before it
// was triggered. Every frame is taken by one drivers::GatedGrabber (gated_grab.hpp: show, settle, grab,
// gate, re-show and re-grab), the same loop the calibration probes and the pipeline use, with the
// content check as its judge and the job's stop request as its stop check. The capture remembers the sequence number s of the last frame it received; after
// show(input k) the next frame must carry s + 1. A frame with a larger number (frames were lost: the
// one returned may have been exposed before the input settled) or a smaller or equal one (stale, out
// of order) is discarded, and the input is shown again and grabbed again. A transient device error
// (timeout, corrupt frame, write failure, disconnect) likewise re-shows and re-grabs. Each input gets
// max_input_attempts such cycles; then the job fails naming the input and the last cause. A
// non-transient error (invalid_argument, io) fails the job at once. The first frame of a job (or of a
// resumed job) has no predecessor and is accepted on its sequence number alone.
// Frame integrity by content (CaptureOptions::content, calibration/content_gate.hpp): a frame with an
// in-order counter and a post-settle timestamp can still show the previous input (a slow SLM). When the
// bench has a design (Devices::design), an SLM element whose levels are known (Devices::element_levels)
// and inputs of the design's input size, the capture first shows the input dark and grabs three reference
// frames, then checks each frame's change from the last accepted frame against the design model's
// predicted change (uncalibrated design model: hilod keeps no bench calibration between jobs). A stale
// frame is counted (content_rejects) and re-grabbed after showing the input again, which waits a full
// settle more; after content.max_regrabs rejections of one input the job fails naming the input and the
// correlation. A frame whose input is predicted to look like the previous one through the optics is
// accepted unproven and counted (content_undecidable). stats.content_check says whether the check ran
// and, when not, why ("the bench config has no design section", ...), so "0 rejects" never stands for
// "not checked".
// Counters (CaptureCounters) go to the job's stats, job.progress events and the Devices totals.
//
// Run documents (run_documents.hpp, docs/protocol.md): every execution of the loop publishes run.start
// (resumed: true when it continues a run), run.descriptor once the frame size is known, one run.event per
// durable chunk (its chunk files; after the run ends they are consolidated, see docs/storage.md) and
// run.stop on every exit, an escaping exception included.
//
// Restart (DESIGN §7): the manifest is the checkpoint. resume_capture() continues a run after its last
// listed chunk, with the inputs of the original request (re-read from the dataset, or from the run's
// sources/inputs.npy for inline inputs), so the finished run holds exactly the records an
// uninterrupted capture would have stored, in the same order. A job that cannot be continued (inputs
// gone or changed, different devices or placement, run directory damaged) ends failed with the reason.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "hilo/calibration/content_gate.hpp"
#include "hilo/controller/dataset.hpp"
#include "hilo/controller/jobs.hpp"
#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/gated_grab.hpp"
#include "hilo/drivers/retry.hpp"
#include "hilo/drivers/slm.hpp"

namespace hilo::controller {

// The show/grab/gate counters (drivers/gated_grab.hpp: the capture's GatedGrabber's, copied), the
// content check's (calibration/content_gate.hpp) plus what only a capture counts.
struct CaptureCounters : drivers::GrabCounters, calibration::ContentCounters {
  std::uint64_t frames_stored = 0;
  drivers::RetryCounters slm_driver, camera_driver;  // the drivers' retry counters accumulated meanwhile

  void add(const CaptureCounters& o);
  nlohmann::json to_json() const;
};

// The devices the daemon drives. `mutex` is held by whoever uses them: a job for its whole run, a
// device command for its duration (commands use try_lock and answer busy).
struct Devices {
  drivers::Slm& slm;        // the input
  drivers::Camera& camera;
  // The device mutex (drivers::OpenBench::mutex in hilod): every user of the devices holds it, the
  // pipeline included. Borrowed; outlives the Devices.
  std::mutex& mutex;
  drivers::Slm* element = nullptr;  // the element SLM; null for a fixed mask or a bench without one
  // The drivers' retry counters (OpenBench::input_retries/camera_retries) when the devices have them.
  // Read only by whoever holds `mutex`.
  const drivers::RetryCounters* slm_retries = nullptr;
  const drivers::RetryCounters* camera_retries = nullptr;
  // The bench config file the devices were opened from ("" = not from a file); run.start names it.
  std::string bench_config;
  // What the capture's content check models (see "Frame integrity by content" above): the bench's design
  // optics (null: the config has no design section, the check is off) and the levels the element SLM
  // shows now (null: a fixed mask or no element, the check is off). Borrowed; called with `mutex` held.
  const sim::BenchOptions* design = nullptr;
  std::function<cv::Mat()> element_levels;

  // Totals over every capture since the daemon started, the running one included; thread-safe
  // (devices.status reads them while a job runs).
  nlohmann::json counters_json() const;
  void set_job_counters(const CaptureCounters& so_far);  // the running capture's counters
  void end_job_counters();                              // folds them into the totals

  // Internal to the functions above (public only so that Devices stays an aggregate).
  mutable std::mutex counters_mu_;
  CaptureCounters totals_, job_;
};

struct CaptureOptions {
  std::size_t chunk_records = 100;
  double chunk_seconds = 1.0;
  std::chrono::milliseconds grab_timeout{1000};
  int scale = 0;              // 0 = largest integer factor that fits
  std::size_t previews = 16;  // frames/inputs shown in the preview PNGs (0 = none)
  int max_input_attempts = 10;  // show + grab cycles per input before the job fails
  // Also write the run as run.h5 (hdf5_run.hpp), live in SWMR mode, each chunk after its .npy files
  // are durable. The .npy run stays the checkpoint: an HDF5 failure stops only the HDF5 writing and is
  // reported in the manifest and stats ("hdf5": {"file", "complete": false, "records", "error"}). A
  // resumed capture rebuilds run.h5 from the .npy chunks before it continues.
  bool hdf5 = false;
  // The content check (request key "content_check": {enabled, min_correlation, blur_px, min_snr,
  // max_regrabs}).
  calibration::ContentGateOptions content;

  [[nodiscard]] std::string validate() const;
};

// Inputs: `count` images of rows×cols uint8 starting at images[0]; labels/indices optional (empty or
// one per image). Owned through shared_ptr so a dataset's cache can be shared without copying.
struct CaptureInputs {
  std::shared_ptr<const ImageSet> set;
  std::size_t start = 0;  // first image of `set` to show
  std::size_t count = 0;
  bool has_labels = false;
};

// Runs the capture into a new run directory. Locks devices.mutex for the whole run.
JobOutcome run_capture(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices,
                       const std::filesystem::path& run_dir, nlohmann::json manifest_base, JobControl& ctl,
                       const std::function<double()>& monotonic_s);

// Continues the capture in the existing run directory `run_dir` (see Restart above). Locks
// devices.mutex for the whole run.
JobOutcome resume_capture(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices,
                          const std::filesystem::path& run_dir, JobControl& ctl,
                          const std::function<double()>& monotonic_s);

// Queues every capture job the catalog holds as interrupted (left by a crash or a stop of a previous
// process) to continue where its run stopped, oldest first, while fewer than `max_jobs` jobs are queued
// or running (the rest stay interrupted, see jobs.hpp). Inputs and options come from the job's params
// (the request's arguments) and `defaults`; the job itself rebuilds the inputs (a dataset is loaded on
// the worker, not by the caller). A job whose inputs cannot be rebuilt still runs and ends failed with
// a reason starting "cannot resume:", and so does its run's manifest. Returns the number queued.
int resume_interrupted_captures(JobManager& jobs, Catalog& catalog, DatasetLibrary& datasets, Devices& devices,
                                const std::filesystem::path& data_dir, const CaptureOptions& defaults,
                                const std::function<double()>& monotonic_s, std::size_t max_jobs);

}  // namespace hilo::controller
