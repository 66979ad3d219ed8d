#pragma once
// The stages of the pipeline (pipeline.hpp lists what each leaves in the run directory), one
// implementation each, shared by the pipeline job and the daemon's deploy, calibrate and evaluate jobs.
// A stage whose output exists in the run directory is loaded, not run again. Each stage draws from
// generators seeded by (config.seed, stage), so a stage run inside the pipeline and the same stage run
// as a job of its own on the same inputs write the same files.
// Stop: a stage that sees control.stop_requested() throws StageStopped (files of completed stages stay);
// device faults and missing inputs throw std::runtime_error, invalid settings std::invalid_argument.
#include <atomic>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/controller/pipeline.hpp"
#include "hilo/distill/train.hpp"

namespace hilo::controller {

struct StageStopped {};

// A JSON file of a run; throws std::runtime_error naming the file when it cannot be read.
nlohmann::json read_json_file(const std::filesystem::path& file);

// A fraction as the report prints it: 100 · v with two decimals ("12.34").
std::string pct(double v);

class PipelineStages {
 public:
  // The config, bench and control are borrowed for the object's life. Throws std::invalid_argument for
  // an invalid config.
  PipelineStages(const PipelineConfig& config, PipelineBench& bench, std::filesystem::path run_dir,
                 const PipelineControl& control);

  bool stop() const { return ctl_.work.stop_requested(); }
  void log(const std::string& s) const {
    if (ctl_.log) ctl_.log(s);
  }
  void progress(const std::string& stage, std::int64_t d, std::int64_t t) const {
    ctl_.work.report(d, t, stage);
  }

  // The dataset splits of config.data and the head of the test split (bench.test_images); writes
  // config.json. First, before any stage.
  void load_data();
  // teacher/: trains the teacher, or loads it. use_teacher: a teacher model from elsewhere instead.
  void teacher();
  void use_teacher(const std::filesystem::path& model);
  // student/: distils the student from the teacher, or loads it. use_student: a trained student from
  // elsewhere instead, copied to student/student.hilo so the run directory holds its inputs.
  void student();
  void use_student(const std::filesystem::path& model);
  // deploy/: designs the element for the student (needs student() or use_student()).
  void deploy();
  // bench/<name>/result.json: calibration, the measured test set and the deployed student's accuracy on
  // it; with `compensate` also the validation split and the largest measured subset, and the backend
  // re-fits (task, NTKD) on the nested subsets (needs the teacher). `index` seeds the stage (the
  // profile's position in config.profiles). Simulator: installs the named profile first.
  // The calibration is saved as bench/<name>/calibration/ (calibration/saved.hpp); with `calibration`
  // (a directory holding a saved one) it is adopted instead of run: the stage then starts with a drift
  // check against the saved reference (Experiment::adopt). A saved calibration that cannot be read or
  // does not fit the bench throws std::runtime_error / std::invalid_argument.
  nlohmann::json bench(const std::string& name, int index, bool compensate = true,
                       const std::filesystem::path& calibration = {});
  // The generator seed of `step` of stream s in the profile stage `profile` (pipeline_seeds.hpp), plus
  // `offset`; every one is recorded in seeds(). Throws std::out_of_range outside the stream's block.
  std::uint64_t seed_of(SeedStream s, int profile = 0, int step = 0, std::uint64_t offset = 0);
  // Every generator seed this object drew, in order: [{"stream", "profile", "step", "offset", "seed"}]
  // (report.json "seeds"; a stage loaded from its files draws none).
  const nlohmann::json& seeds() const { return seeds_; }
  // The drift re-compensation of a finished run's profile stage (the daemon's recompensate job; needs
  // load_data, the teacher and deploy() with the run's student): adopts the run's saved calibration of
  // bench/<name>/ (its drift check against the saved reference is the trigger and the drift reported),
  // then recompensate() below with the run's measured subset. Writes recompensation/<name>/ in this
  // object's run directory (event.json, calibration/, student.hilo, frame_log.npy, the kernels figure).
  // Throws std::invalid_argument when the run's stage has no twin (bench.kernels was off), and
  // std::runtime_error for missing or inconsistent files or a device fault.
  nlohmann::json recompensate_run(const std::filesystem::path& run, const std::string& name, int index);
  // report.json and its figures over the profiles' results (after every stage above).
  nlohmann::json report(const nlohmann::json& profiles);

  const nlohmann::json& deploy_info() const { return deploy_info_; }
  // Wall and CPU seconds of what this object ran (controller/src/pipeline_timing.hpp): the job adds its
  // stages under "stages"; bench() puts its parts under "bench"/<name> (and in bench/<name>/timings.json);
  // report() writes the whole as report.json "timings". A stage loaded from its files is not timed.
  nlohmann::json& timings() { return timings_; }

 private:
  distill::JobControl train_control(const std::string& stage);
  // bench(): the element re-optimised after the stage's calibration `before` (pipeline_reopt.cpp;
  // bench.reoptimise_element). `sub`: the measured subset (null without compensation), `sub_rows` its
  // rows in the training split, `nested` the stage's nested subsets ({"fraction", "indices"}). The
  // result's "element_reoptimised" entry; with `compensate`, its accuracy.fractions rows hold the
  // element's re-fits with their validation accuracies (the guard's evidence, as the stage's rows), and
  // `models` gets one map per nested subset: "none" (the element's own backend) and each re-fit's student.
  nlohmann::json reoptimised_element(const std::string& name, int index, calibration::ExperimentBench& eb,
                                     const calibration::BenchCalibrationResult& before, const distill::Dataset* sub,
                                     const std::vector<int>& sub_rows, const nlohmann::json& nested,
                                     std::mt19937_64& rng, nlohmann::json& timings,
                                     std::vector<std::map<std::string, distill::ModelFile>>* models);
  // The re-optimised element's phase and backend trained further (pipeline_reopt.cpp), from `start` (the
  // element's student) and deployment's phase: mode "physics_aware" on the bench with the images of
  // `part` (calibration::physics_aware; every step re-adopts `saved` with its phase shown), mode
  // "twin_trained" through the design model with the fitted aberration on `part` (calibration::twin_train,
  // no bench frames). Then the validation split and the test set measured through the result:
  // cells[mode], cells[mode + "_val"], *model_out (may be null). Returns the result's entry (options,
  // history, bench frames, frame integrity, rms phase change) and writes element_reoptimised/<mode>/
  // (phase.npy, test_features.npy).
  nlohmann::json trained_element(const std::string& mode, const std::string& name, int index,
                                 calibration::ExperimentBench& eb, calibration::DesignModel& design,
                                 const calibration::Deployment& deployment, const distill::OpticalStudent& start,
                                 const calibration::SavedCalibration& saved, const distill::Dataset& part,
                                 nlohmann::json& cells, distill::ModelFile* model_out);
  // Drift re-compensation (pipeline_recomp.cpp, RecompensationOptions): the first holdout_images test
  // images through `stale` (the calibration in use) and the deployed backend; a new calibration (a second
  // Experiment on eb), kernel probes and the twin on it; the holdout again; the backend re-fitted on the
  // twin's features of the training split with `measured`'s rows (their indices into the training split)
  // unless bench.drift_recompensate.measured_rows is "exclude". Writes event.json (returned),
  // calibration/, student.hilo (the re-fitted model), frame_log.npy and kernels_designed_vs_measured.png
  // into `out`. `trigger`: what started it (a drift check past its thresholds, or a request).
  struct MeasuredFraction {
    const distill::MatD* features = nullptr;  // null or empty: none measured
    std::vector<int> rows;
    bool drift_updated = true;  // measured with drift_action "update" (measured_rows "auto" keeps them then)
  };
  nlohmann::json recompensate(const std::string& name, int index, calibration::ExperimentBench& eb,
                              calibration::Experiment& stale, const MeasuredFraction& measured, const nlohmann::json& trigger,
                              const std::filesystem::path& out, nlohmann::json& timings);
  void written(std::string_view where) const {
    if (ctl_.after_write) ctl_.after_write(where);
  }

  // A twin re-fit pair's seed from `stream` (twin_refit or reopt_twin_refit); its seed + 1 (twin_modes'
  // twin_ntkd) is recorded too.
  std::uint64_t twin_seed(SeedStream stream, int profile, int step);
  nlohmann::json seeds_ = nlohmann::json::array();
  const PipelineConfig& c_;
  PipelineBench& b_;
  std::filesystem::path dir_;
  const PipelineControl& ctl_;
  distill::Splits data_;
  distill::Mat<float> test_x_;
  std::vector<int> test_y_;
  std::optional<distill::Sequential<float>> teacher_;
  std::optional<distill::OpticalStudent> student_, deployed_;
  std::optional<calibration::DesignModel> design_;
  calibration::Deployment deployment_;
  nlohmann::json teacher_info_, student_info_, deploy_info_, timings_ = nlohmann::json::object();
  // Computed once per job and reused by every bench stage, which would otherwise compute them again with
  // the same inputs: the teacher's logits of the training split (subset choice) and of the test images
  // (deferral), and the design model's maps (calibration::design_maps) of the training and validation
  // splits for the deployed element (deploy's design re-fit, the twin's features and its residual);
  // design_ holds that element from deploy() on. The training maps take 8·K·H·W bytes per image
  // (350 MB for 7,000 MNIST images and 8 kernels).
  std::optional<distill::MatD> teacher_train_logits_, teacher_test_logits_, design_train_maps_, design_val_maps_;
  const distill::MatD& teacher_train_logits();
  const distill::MatD& teacher_test_logits();
  const distill::MatD& design_train_maps();
  const distill::MatD& design_val_maps();
  // The twin NTKD's NTK groups over the training split with the teacher's Θ_T of each, drawn once per job
  // (compensation.twin.shared_ntk_groups; calibration::teacher_ntk_groups). Throws StageStopped on a stop.
  std::optional<calibration::NtkGroups> train_ntk_groups_;
  const calibration::NtkGroups& train_ntk_groups();
};

}  // namespace hilo::controller
