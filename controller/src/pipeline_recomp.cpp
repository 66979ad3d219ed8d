// Drift re-compensation from the twin (pipeline.hpp, RecompensationOptions; docs/pipeline.md, "Drift
// re-compensation"): the bench calibrated again, the twin rebuilt from kernel probes on the new
// calibration, the backend re-fitted on twin features of the training split — without measuring the
// training fraction again. Used by the bench stage (bench.drift_recompensate) and by the daemon's
// recompensate job on a finished run (recompensate_run).
#include <algorithm>

#include "hilo/calibration/saved.hpp"
#include "hilo/controller/pipeline_stages.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/drivers/placed_slm.hpp"
#include "hilo/io/file_io.hpp"
#include "pipeline_timing.hpp"
#include "pipeline_twin.hpp"

namespace hilo::controller {

namespace fs = std::filesystem;
using nlohmann::json;
using distill::MatD;

json PipelineStages::recompensate(const std::string& name, int index, calibration::ExperimentBench& eb,
                                  calibration::Experiment& stale, const MeasuredFraction& measured, const json& trigger,
                                  const fs::path& out, json& timings) {
  if (!teacher_ || !deployed_ || !design_) throw std::logic_error("PipelineStages::recompensate: needs the teacher and the deployment");
  const auto& o = c_.recompensate;
  const std::string stage = "bench " + name + ": recompensate";
  auto fail = [&](const drivers::DeviceError& e) -> void { throw std::runtime_error(stage + ": " + e.message); };
  fs::create_directories(out);
  std::mt19937_64 rng(seed_of(SeedStream::recompensation, index));
  const io::WorkControl quiet{{}, ctl_.work.stop};
  const Eigen::Index H = std::min<Eigen::Index>(o.holdout_images, test_x_.rows());
  const distill::Mat<float> x_hold = test_x_.topRows(H);
  const std::vector<int> y_hold(test_y_.begin(), test_y_.begin() + H);
  const json drift = stale.drift_checks().empty() ? json(nullptr) : stale.drift_checks().back();
  log(stage + ": " + (trigger.contains("message") ? trigger["message"].get<std::string>() : trigger.dump()));
  progress(stage, 0, 5);

  // Before: the holdout through the calibration in use (the stale one), scored by the deployed backend.
  // The content check judges its frames against that calibration's model, which the drift has made
  // wrong: frames it cannot prove are stored and counted (frame_integrity_stale), not a failed set.
  std::optional<PartTimer> lap(std::in_place, timings, "recompensate: holdout, stale calibration");
  const std::size_t stale_frames0 = stale.frame_log().size();
  const auto unproven0 = stale.content_counters().content_undecidable;
  auto before = stale.measure(x_hold, 1.0);
  if (!before) fail(before.error());
  if (stop()) throw StageStopped{};
  const std::size_t stale_frames = stale.frame_log().size() - stale_frames0;
  const auto stale_unproven = stale.content_counters().content_undecidable - unproven0;
  const double acc_before = distill::accuracy(deployed_->backend_forward(before.value()), y_hold);
  progress(stage, 1, 5);

  // The bench calibrated again and the twin rebuilt on the new calibration.
  calibration::ExperimentControl ec;
  ec.work = quiet;
  ec.log = [&](const std::string& line) { log(stage + ": " + line); };
  ec.on_drift = ctl_.on_drift;
  lap.emplace(timings, "recompensate: calibrate");
  calibration::Experiment ex(eb, *design_, deployment_, *deployed_, c_.measure_options(), ec, name + "/recompensation");
  auto cal = ex.calibrate(c_.calibration, rng);
  if (!cal) fail(cal.error());
  calibration::save_calibration(out / "calibration", ex.saved_calibration(cal.value().summary));
  progress(stage, 2, 5);
  lap.emplace(timings, "recompensate: kernel probes and twin");
  TwinState twin = measure_twin(ex, ex.saved_calibration({}).calibration, *design_, deployment_, *deployed_, c_, rng, out, stage);
  lap.emplace(timings, "recompensate: holdout, new calibration");
  auto after = ex.measure(x_hold);
  if (!after) fail(after.error());
  if (stop()) throw StageStopped{};
  const MatD& A_hold = after.value();
  const double acc_recalibrated = distill::accuracy(deployed_->backend_forward(A_hold), y_hold);
  progress(stage, 3, 5);

  // The backend re-fitted on the new twin's features of the whole training split; the measured rows
  // (features in calibrated units, which the new calibration maps the bench to again) kept or left out.
  lap.emplace(timings, "recompensate: twin features");
  const MatD twin_train = twin.twin->features_from_design_maps(data_.train.x, design_train_maps(), c_.twin.noise ? &rng : nullptr);
  const double residual_hold = calibration::relative_rms(twin.twin->features(x_hold), A_hold);
  const bool wanted = o.measured_rows == "keep" || (o.measured_rows == "auto" && measured.drift_updated);
  const bool keep = wanted && measured.features && measured.features->rows() > 0;
  calibration::MeasuredSubset set;
  std::vector<int> sample_rows;
  if (keep) {
    std::vector<std::size_t> rows(measured.rows.begin(), measured.rows.end());
    set = calibration::twin_training_set(twin_train, data_.train, *measured.features, rows, c_.twin, &sample_rows);
  } else {
    set = {twin_train, data_.train};
    sample_rows.resize(data_.train.size());
    for (std::size_t i = 0; i < sample_rows.size(); ++i) sample_rows[i] = int(i);
  }
  const bool ntkd = o.refit == "twin_ntkd";
  const calibration::CompensationOptions& ro = ntkd ? c_.twin_ntkd : c_.twin_task;
  std::optional<calibration::NtkGroups> groups;
  if (ntkd && c_.twin.shared_ntk_groups) groups = calibration::map_ntk_groups(train_ntk_groups(), sample_rows);
  lap.emplace(timings, "recompensate: re-fit");
  progress(stage, 4, 5);
  distill::OpticalStudent s = distill::OpticalStudent::from_model(deployed_->to_model({}));
  const auto rep = calibration::refit_backend(s, set.features, set.samples.y, &*teacher_, &set.samples.x, ro, rng, quiet,
                                              groups ? &*groups : nullptr);
  if (rep.stopped) throw StageStopped{};
  const double acc_after = distill::accuracy(s.backend_forward(A_hold), y_hold);
  distill::write_model(out / "student.hilo", s.to_model({{"recompensated", true}, {"refit", o.refit}}));
  calibration::write_frame_log(out / "frame_log.npy", ex.frame_log());
  lap.reset();

  const std::int64_t new_frames = std::int64_t(ex.frame_log().size());
  json event = {
      {"profile", name},
      {"t_s", b_.now_s ? b_.now_s() : 0.0},
      {"trigger", trigger},
      {"drift", drift},
      {"holdout_images", H},
      {"accuracy", {{"before", acc_before}, {"recalibrated", acc_recalibrated}, {"after", acc_after}}},
      {"refit", o.refit},
      {"measured_rows", keep ? "keep" : "exclude"},
      {"measured_images", keep ? measured.features->rows() : 0},
      {"twin", {{"kernels", twin.summary["kernels"]}, {"residual_holdout", residual_hold}}},
      {"calibration", cal.value().summary},
      {"frames", {{"holdout_stale", stale_frames},
                  {"calibration", ex.calibration_frames()},
                  {"kernel_probes", twin.probe_frames},
                  {"after_calibration", new_frames - std::int64_t(ex.calibration_frames())},
                  {"total", std::int64_t(stale_frames) + new_frames}}},
      {"frame_integrity", ex.frame_integrity()},
      {"holdout_stale_unproven_frames", stale_unproven},
      {"model", fs::relative(out / "student.hilo", dir_).string()}};
  io::write_json_atomic(out / "event.json", event);
  log(stage + ": holdout of " + std::to_string(H) + " images: before " + pct(acc_before) + " %, recalibrated " +
      pct(acc_recalibrated) + " %, re-fitted on the new twin " + pct(acc_after) + " % (" +
      std::to_string(event["frames"]["total"].get<std::int64_t>()) + " frames)");
  progress(stage, 5, 5);
  return event;
}

json PipelineStages::recompensate_run(const fs::path& run, const std::string& name, int index) {
  const fs::path pd = run / "bench" / name;
  const json result = read_json_file(pd / "result.json");
  if (result.value("twin", json(nullptr)).is_null())
    throw std::invalid_argument("recompensate: " + pd.string() + " has no twin (its bench.kernels was off), so there is nothing to rebuild it from");
  const auto saved = calibration::load_calibration(pd / "calibration");
  const MatD A_sub = calibration::read_features(pd / "subset_features.npy");
  const auto idx = result.at("subset").at("indices").get<std::vector<int>>();
  if (std::size_t(A_sub.rows()) != idx.size())
    throw std::runtime_error("recompensate: " + pd.string() + ": subset_features.npy has " + std::to_string(A_sub.rows()) +
                             " rows for " + std::to_string(idx.size()) + " subset indices");
  for (int i : idx)
    if (i < 0 || std::size_t(i) >= data_.train.size())
      throw std::runtime_error("recompensate: " + pd.string() + ": subset index " + std::to_string(i) + " is outside the training split");
  const std::string stage = "bench " + name + ": recompensate";
  calibration::ExperimentControl ec;
  ec.work = {{}, ctl_.work.stop};
  ec.log = [&](const std::string& line) { log(stage + ": " + line); };
  ec.on_drift = ctl_.on_drift;
  drivers::PlacedSlm input(b_.input, b_.design.input.rows, b_.design.input.cols);
  calibration::ExperimentBench eb = experiment_bench(b_, input);
  // The run's calibration adopted as it stands (stale): adopt() checks the drift against its reference.
  calibration::Experiment stale(eb, *design_, deployment_, *deployed_, c_.measure_options(), ec, name);
  if (auto e = stale.adopt(saved)) throw std::runtime_error(stage + ": " + e->message);
  json trigger = stale.drift_checks().back();
  trigger["request"] = "recompensate job on " + pd.string();
  json timings = json::object();
  // How the run measured its subset decides "auto", whatever this job's own drift_action.
  const json run_config = read_json_file(run / "config.json");
  const bool updated = run_config.value("/bench/drift_action"_json_pointer, std::string("update")) == "update";
  MeasuredFraction m{&A_sub, idx, updated};
  json event = recompensate(name, index, eb, stale, m, trigger, dir_ / "recompensation" / name, timings);
  event["source_run"] = run.string();
  event["timings"] = timings;
  io::write_json_atomic(dir_ / "recompensation" / name / "event.json", event);
  return event;
}

}  // namespace hilo::controller
