#pragma once
// The bench stage's twin hook (internal to the pipeline stages): measured kernels, the digital twin, the
// twin-calibrated re-fits and the guard over every mode (calibration/measured_kernels.hpp, twin.hpp).
// What each function leaves in the row / result JSON is listed with it; docs/pipeline.md explains it.
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/calibration/experiment.hpp"
#include "hilo/calibration/twin.hpp"
#include "hilo/controller/pipeline.hpp"

namespace hilo::controller {

// The experiment's view of the pipeline's bench, with `input` (the bench's input placed at the design's
// input resolution, drivers::PlacedSlm) in place of the raw input SLM.
calibration::ExperimentBench experiment_bench(PipelineBench& b, drivers::Slm& input);

struct TwinState {
  std::optional<calibration::Twin> twin;
  distill::MatD train;          // twin features of the whole training split (noise drawn with TwinMix::noise)
  nlohmann::json summary;       // {"kernels": MeasuredKernels::summary(), "residual": {...}}
  int probe_frames = 0;         // bench frames the kernel probes took
};

// Right after the calibration: shows the kernel probes through `ex` (Experiment::capture), fits the
// measured kernels, builds the twin (noise model from `cal`, the design's camera and c.frames) and
// writes kernels_designed_vs_measured.png into `dir`. Draws only from `rng`. Device errors throw
// std::runtime_error naming `stage`.
TwinState measure_twin(calibration::Experiment& ex, const calibration::BenchCalibration& cal,
                       calibration::DesignModel& design, const calibration::Deployment& deployment,
                       const distill::OpticalStudent& deployed, const PipelineConfig& c, std::mt19937_64& rng,
                       const std::filesystem::path& dir, const std::string& stage);

// After the measured validation split: the twin's prediction error on it (images it never saw) beside
// the design model's: summary["residual"] = {"images", "twin", "design"} (relative_rms of features),
// then the twin features of the training split. design_val / design_train: the design model's maps of
// the validation and training splits for the deployed element (calibration::design_maps).
void check_and_extend_twin(TwinState& t, const distill::OpticalStudent& deployed, const distill::Splits& data,
                           const distill::MatD& design_val, const distill::MatD& design_train,
                           const distill::MatD& val_measured, const PipelineConfig& c, std::mt19937_64& rng);

// The twin modes for one fraction: row["twin_task"], row["twin_ntkd"] (test accuracy), "<mode>_val".
// measured: the fraction's measured rows; train_rows: their indices into the training split. Each re-fit's
// time is added to timings["twin_task"] / ["twin_ntkd"] (pipeline_timing.hpp).
struct TwinRefitInputs {
  const distill::OpticalStudent& deployed;
  distill::Sequential<float>& teacher;
  const distill::Splits& data;
  const distill::MatD& test_features;
  const std::vector<int>& test_labels;
  const distill::MatD& val_features;
  // twin_ntkd's NTK groups over the training split (compensation.twin.shared_ntk_groups), null: drawn
  // per re-fit.
  const calibration::NtkGroups* train_ntk_groups = nullptr;
};
void twin_modes(const TwinState& t, const PipelineConfig& c, const TwinRefitInputs& in, const distill::MatD& measured,
                const std::vector<std::size_t>& train_rows, std::uint64_t seed, nlohmann::json& row,
                const io::WorkControl& work, nlohmann::json& timings,
                std::map<std::string, distill::ModelFile>* models = nullptr);

// A backend re-fit's cells of a row (after calibration::guard_against_none): row[mode] (the guarded test
// accuracy), "<mode>_refit" (the re-fit's own), "<mode>_val", "<mode>_kept_none".
void refit_cells(nlohmann::json& row, const std::string& mode, const calibration::CompensationTrial& t);

// The guard over every mode of a row: the highest accuracy on the measured validation split among the
// modes present ("<mode>_val"), in the order task, ntkd, twin_task, twin_ntkd, element, element_task,
// element_ntkd, element_twin_task, element_twin_ntkd, physics_aware, twin_trained (ties keep the
// earlier), when it beats none's (none_val) by more than `margin`; else none. So the guarded cell is
// never chosen against "none" without evidence beyond the noise of the highest of several scores. The element modes
// are the re-optimised element (bench.reoptimise_element) alone and with its re-fits, validated on the
// split measured through that element; physics_aware is that element fine-tuned on the bench
// (calibration/physics_aware.hpp) and twin_trained that element trained through its model
// (calibration::twin_train), each validated on the split measured through its own phase. Sets row["guarded"] (its test accuracy: none_test for none,
// "<mode>_refit" or "<mode>" for the others), row["guarded_mode"], row["guarded_val"] and
// row["frames"] = `frames` (bench frames each mode used beyond the uncompensated bench) with
// "guard": the validation frames the choice used.
void guard_row(nlohmann::json& row, double none_val, double none_test, const std::map<std::string, std::int64_t>& frames,
               std::int64_t guard_frames, double margin);

}  // namespace hilo::controller
