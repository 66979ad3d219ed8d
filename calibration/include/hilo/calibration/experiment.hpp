#pragma once
// The experiment on a deployed bench (DESIGN §2, §6): calibrate the bench for the deployed element,
// measure image sets through it with drift checks on a schedule, choose nested measured subsets, and
// re-fit the deployed student's backend on them (compensation), scored on the measured test set.
// The pipeline's profile stage and its daemon jobs (controller/) drive this; the compensation sweep
// re-runs the same fits on stored measurements without a device.
//
// Devices are borrowed (ExperimentBench) and must be open; every device call holds `mutex` when set.
// Device errors come back as values (drivers::DeviceResult) with the device's message; invalid options
// throw std::invalid_argument. Randomness only from the caller's generator, in a fixed order (the
// calibration, the drift reference, then each subset draw), so a seeded run is reproducible.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/calibration/compensation.hpp"
#include "hilo/calibration/content_gate.hpp"
#include "hilo/calibration/drift.hpp"
#include "hilo/calibration/saved.hpp"
#include "hilo/calibration/hil.hpp"
#include "hilo/calibration/subset.hpp"
#include "hilo/distill/data.hpp"
#include "hilo/distill/model_io.hpp"

namespace hilo::calibration {

struct ExperimentBench {
  drivers::Slm& input;
  drivers::Slm* element = nullptr;  // null: a fixed mask
  drivers::Camera& camera;
  // A fixed mask: installs the deployed phase on the bench (the simulator fabricates it); null when
  // there is nothing to drive. Unused with an element SLM.
  std::function<void(const RArray& phase_rad)> install_fixed_mask;
  std::function<double()> now_s;  // the devices' clock, seconds (drift checks); null: 0
  std::mutex* mutex = nullptr;
};

// How a set is measured: `frames` frames averaged per image; after every `drift_every` images (and at
// the end of each set) the drift probes are measured again (check_drift). Past a threshold the check
// is reported and, with drift_action "update", the measured pose and gain replace the calibration's
// for the images that follow ("report": reported only).
//
// Frame integrity by content (`content`, content_gate.hpp): once calibrate_bench has returned, every
// frame the experiment takes (the drift probes, the measured sets, the sample captures) is judged by
// the frame content check against the CALIBRATED design model: the design model with the element it
// holds, its image blurred by the registration's fitted blur, warped by the live pose and scaled by the
// live gain (drift updates included), so the frame's change from the last accepted frame of another
// input must follow that model's predicted change. The chain starts from the calibration's mean dark
// frame (prediction 0) and its temporal noise and continues from the calibration's last kept probe
// frame (what the input showed last, which a slow first frame still shows). A stale frame is counted (content_rejects) and re-grabbed
// after a full settle more; after content.max_regrabs stale frames of one input in a row the last one
// is stored unproven (content_undecidable; content.accept_unproven, the default here) or the
// measurement fails naming the correlation (accept_unproven false), and a set with more than
// max_unproven_fraction of its frames unproven fails. Rule before calibration: the check is OFF — the
// calibration's own probes (dark, registration, linearity, tiles) are gated by frame counter and
// timestamp only, because the pose, blur and gain the check needs are what they measure (the design
// model before registration is the capture's uncalibrated check, which the probes' flat/deployed
// element switches and unknown misalignment would make the pipeline's weakest link).
struct MeasureOptions {
  int frames = 1;         // [1, 64]
  int drift_every = 500;  // images, >= 10
  DriftOptions drift;
  std::string drift_action = "update";  // "update" or "report"
  // The content check after calibration (enabled by default; a frame still judged stale after
  // max_regrabs longer settles is stored unproven and counted, not a failed job).
  ContentGateOptions content{.accept_unproven = true};
  // The most frames of one measured set (its images × frames, drift probes not counted) that may be
  // stored unproven (content_undecidable), as a share in [0, 1]: the frame that makes the set's count
  // exceed floor(max_unproven_fraction × frames) fails the set (a GrabFailure, code corrupt_frame,
  // naming the share and the last verdict), so a stuck SLM (every frame unproven) stops the pipeline.
  // 1 turns the limit off. The main job's severe stage stored 27 frames unproven in all (README).
  double max_unproven_fraction = 0.1;

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};

struct ExperimentControl {
  // report(images measured so far by this Experiment, all sets together, that count plus the rest of
  // the current set, "measure"); a stop request ends the current set early.
  io::WorkControl work;
  std::function<void(const std::string&)> log;      // one line per notable event
  std::function<void(const nlohmann::json&)> on_drift;  // a drift check past its thresholds (as in drift_checks())
};

class Experiment {
 public:
  // `name` labels drift events ("profile" key). design, deployment and the deployed student must
  // outlive the Experiment.
  Experiment(ExperimentBench& bench, DesignModel& design, const Deployment& deployment,
             const distill::OpticalStudent& deployed, MeasureOptions options, ExperimentControl control,
             std::string name);

  // Installs a fixed mask (no element SLM), runs calibrate_bench (registration with a flat element SLM
  // when there is one) with the content check off, then turns the calibrated content check on (see
  // MeasureOptions) and takes the drift reference right after it.
  drivers::DeviceResult<BenchCalibrationResult> calibrate(BenchCalibrationOptions options, std::mt19937_64& rng);

  // Instead of calibrate(): measures with a calibration saved earlier (saved.hpp). Installs the deployed
  // element (fixed mask: installs it; element SLM: shows the deployed phase), takes `saved` as the
  // calibration, grabs one frame of a dark input (the content check's starting picture; it counts as a
  // calibration frame), turns the calibrated content check on and runs a drift check against the saved drift
  // reference at once, so a bench that moved since the calibration is updated (drift_action "update")
  // or reported before any image is measured. Throws std::invalid_argument when the saved calibration
  // does not fit this camera.
  drivers::DeviceStatus adopt(const SavedCalibration& saved);
  // The live calibration as a saved object (after calibrate() or adopt(); the calibration as calibrated,
  // not as drift updates left it). `summary` goes into it unchanged. Throws std::logic_error before.
  SavedCalibration saved_calibration(nlohmann::json summary) const;

  // Features of each row of x (N × H·W in [0, 1]) measured through the bench with the live calibration,
  // in chunks of drift_every with a drift check after each. calibrate() first. A true stop() ends it
  // early with fewer rows than x. max_unproven_fraction: this set's limit instead of the options' (a set
  // measured on purpose through a calibration the bench has drifted from, whose model predicts its frames
  // wrongly, passes 1).
  drivers::DeviceResult<distill::MatD> measure(const distill::Mat<float>& x,
                                               std::optional<double> max_unproven_fraction = std::nullopt);

  // A drift check now, outside measure()'s schedule (a drift re-compensation's trigger and the drift it
  // reports): appended to drift_checks() and acted on as measure()'s checks are (drift_action,
  // on_drift). calibrate() or adopt() first (std::logic_error before).
  drivers::DeviceStatus check_drift();

  // One frame (counts) of an input image averaged over `frames`, with the bench lock held.
  drivers::DeviceResult<RArray> capture(const RArray& input, int frames);

  // Every drift check so far: {"t_s", "measured_images", "displacement_px", "gain_change", "exceeded",
  // "message"} and, when exceeded, "action" and "profile".
  const nlohmann::json& drift_checks() const { return drift_checks_; }
  std::int64_t measured() const { return measured_; }
  // Frame integrity over every frame this Experiment took (calibration probes, drift checks, measured
  // sets, captures): gate rejections, re-grabs and device errors (drivers/gated_grab.hpp).
  const drivers::GrabCounters& frame_counters() const { return rig_.counters(); }
  // What the content check did (frames after calibration only).
  const ContentCounters& content_counters() const { return content_counters_; }
  // frame_counters() and content_counters() as one JSON object (GrabCounters::to_json plus
  // content_rejects and content_undecidable) and "content_check": {"active": true, "model",
  // "options", "dark_noise_counts"} or {"active": false, "reason"}, "frames_kept" and
  // "calibration_frames" (frame_log()) — the report's profiles[].frame_integrity.
  nlohmann::json frame_integrity() const;
  // The devices' time when calibrate_bench ended (before the drift reference), seconds.
  double calibrated_at_s() const { return calibrated_at_s_; }

  // Every frame this Experiment kept, in order: the camera's frame sequence number, the CRC-32 (zlib,
  // drivers::pattern_crc32) of the frame's bytes and of the input levels it is filed under (design
  // input rows × cols, row-major). The first calibration_frames() are the calibration's probes (not
  // content-checked); the rest came after it (drift probes, measured sets, captures). A lab or a test
  // joins them with a camera's own record (the emulator's frame log has the same three keys).
  struct FrameRecord {
    std::uint64_t sequence = 0;
    std::uint32_t frame_crc32 = 0, input_crc32 = 0;
  };
  const std::vector<FrameRecord>& frame_log() const { return frame_log_; }
  std::size_t calibration_frames() const { return calibration_frames_; }

 private:
  template <typename F>
  auto locked(F&& f);
  drivers::DeviceStatus check_drift_now();
  void start_content_check(double blur_px);  // after calibrate_bench: the calibrated content check

  ExperimentBench& bench_;
  DesignModel& design_;
  const Deployment& deployment_;
  const distill::OpticalStudent& deployed_;
  MeasureOptions opt_;
  ExperimentControl ctl_;
  std::string name_;
  ProbeRig rig_;
  BenchCalibration calibrated_, live_;  // as calibrated; as drift updates leave it
  std::optional<ContentGate> content_;  // the calibrated content check; empty before calibration or off
  ContentCounters content_counters_;
  // The set measure() is taking: its frames, and how many of them were stored unproven so far.
  struct SetCount {
    std::int64_t frames = 0, unproven = 0;
    bool counting = false;  // inside measure_features (its drift probes are not the set's frames)
    double max_unproven_fraction = 0.1;  // this set's limit (MeasureOptions, or measure()'s override)
  };
  std::optional<SetCount> set_;
  nlohmann::json content_status_;
  std::optional<DriftReference> reference_;
  nlohmann::json drift_checks_ = nlohmann::json::array();
  std::int64_t measured_ = 0;
  double calibrated_at_s_ = 0.0;
  double blur_px_ = 0.0;  // the registration's fitted blur
  std::vector<FrameRecord> frame_log_;
  std::size_t calibration_frames_ = 0;
  struct Kept {
    cv::Mat image;
    RArray intensity;
  };
  std::optional<Kept> last_kept_;  // the last frame the rig kept and what it was filed under
};

// Experiment::frame_log() on disk: an N × 3 float64 .npy, columns sequence, frame_crc32, input_crc32
// (integers below 2^53, exact in float64).
void write_frame_log(const std::filesystem::path& file, const std::vector<Experiment::FrameRecord>& log);

// Measured features on disk: a 2-D float64 .npy, one row per image (what the pipeline stores and the
// sweep reads back). read_features throws std::runtime_error naming the file for another shape.
void write_features(const std::filesystem::path& file, const distill::MatD& features);
distill::MatD read_features(const std::filesystem::path& file);

// A measured training subset: its features (rows of the measured set) and the samples they belong to.
struct MeasuredSubset {
  distill::MatD features;  // n × feature_dim
  distill::Dataset samples;
};
// The rows `pick` (indices into both) of a measured set.
MeasuredSubset take_rows(const distill::MatD& features, const distill::Dataset& samples, const std::vector<std::size_t>& pick);

// The subset measured for fraction f within the one measured for fmax (nested): all of it for
// f >= fmax, else `strategy` with fraction f / fmax over the measured samples' labels and `features`
// (the teacher's outputs on them; coverage only).
std::vector<std::size_t> nested_subset(SubsetStrategy strategy, double f, double fmax, const std::vector<int>& labels,
                                       const Eigen::Ref<const Eigen::MatrixXd>& features, std::mt19937_64& rng);

// One compensation: a copy of the deployed student with its backend re-fitted on the subset
// (refit_backend, with ntk_groups when given), scored on measured test features.
struct CompensationTrial {
  CompensationReport report;
  distill::MatD test_logits;
  double test_accuracy = 0;
  double val_accuracy = 0;  // when validation features were given, else 0
  distill::MatD val_logits;  // when validation features were given (the re-fit's, also after the guard)
  bool kept_uncompensated = false;  // guard_against_none replaced the re-fit by the deployed backend
  double refit_test_accuracy = 0;   // guard_against_none: the re-fit's own test accuracy
  distill::ModelFile model;         // the re-fitted student (OpticalStudent::to_model, meta "refit": the mode),
                                    // kept whatever the guard decides
};
CompensationTrial compensate(const distill::OpticalStudent& deployed, const MeasuredSubset& subset,
                             distill::Sequential<float>& teacher, const CompensationOptions& options, std::mt19937_64& rng,
                             const distill::MatD& test_features, const std::vector<int>& test_labels,
                             const distill::MatD* val_features = nullptr, const std::vector<int>* val_labels = nullptr,
                             const io::WorkControl& work = {}, const NtkGroups* ntk_groups = nullptr);

// Held-out guard (DESIGN §6: compensation never makes the bench worse): keeps the re-fitted backend only
// when its accuracy on the measured validation split (t.val_accuracy: compensate() was given validation
// features) is above none_val_accuracy, the deployed backend's on the same features; otherwise (ties
// included: the deployed backend is not changed without evidence) test_logits and test_accuracy become
// the deployed backend's (none_test_logits) and kept_uncompensated is set. refit_test_accuracy keeps
// the re-fit's own figure either way.
void guard_against_none(CompensationTrial& t, double none_val_accuracy, const distill::MatD& none_test_logits,
                        const std::vector<int>& test_labels);

// A finished profile stage's stored measurements (directory with result.json, test_features.npy,
// val_features.npy, subset_features.npy): the measured test rows with their samples (the first rows of
// data.test), the validation split's rows, the measured training subset with its samples, and fmax, the
// fraction that subset is of the training split. Throws std::runtime_error for missing files or stored
// rows that do not match the dataset.
struct StoredMeasurements {
  nlohmann::json result;  // result.json
  distill::MatD test, val, subset;
  distill::Dataset test_samples, subset_samples;
  double fmax = 0;
};
StoredMeasurements read_stored_measurements(const std::filesystem::path& profile_dir, const distill::Splits& data);

// Compensation sweep on a finished profile stage's stored measurements (directory `profile_dir` with
// result.json, test_features.npy, val_features.npy, subset_features.npy and, from runs that wrote it,
// nested_subsets.json): for each fraction of the run (all, or those in `fractions`) the nested subset
// the run used (runs without nested_subsets.json: a class-balanced draw of seed 12345 from the stored
// subset), then compensate() with every entry of `grid` and every seed. No device is touched.
// Returns {"profile", "none", "rows": [{"name", "fraction", "seed", "val_accuracy", "accuracy",
// "final_ntk_distance", "final_train_acc"}...]}. Throws std::runtime_error for missing or inconsistent files.
struct SweepEntry {
  std::string name;
  CompensationOptions options;
};
// An entry from its JSON form (CompensationOptions keys; mode defaults to "ntkd"); throws
// std::invalid_argument naming "sweep.<name>" and the rule.
SweepEntry sweep_entry_from_json(const std::string& name, const nlohmann::json& j);
struct SweepInputs {
  const distill::Splits& data;  // the run's dataset splits
  distill::Sequential<float>& teacher;
  const distill::OpticalStudent& deployed;
};
nlohmann::json sweep_compensation(const std::filesystem::path& profile_dir, const std::string& profile, const SweepInputs& in,
                                  const std::vector<SweepEntry>& grid, const std::vector<std::uint64_t>& seeds,
                                  const std::vector<double>& fractions = {},
                                  const std::function<void(const std::string&)>& log = {});

}  // namespace hilo::calibration
