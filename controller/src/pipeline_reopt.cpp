// The bench stage's "element re-optimised" part (pipeline.hpp, bench.reoptimise_element): the pupil
// aberration fitted to the tile probe of the stage's calibration, the element re-designed through it
// and shown on the element SLM, the backend re-fitted on design-model features of the new element (as
// deploy does, simulation only), the bench calibrated again for it and the test set (and, with
// `compensate`, the validation split and the largest subset for the task / NTKD re-fits) measured
// through it. Writes bench/<p>/element_reoptimised/ (phase.npy, test_features.npy, the PSF figure).
#include <opencv2/core.hpp>

#include "hilo/calibration/element_reopt.hpp"
#include "hilo/controller/pipeline_stages.hpp"
#include "hilo/io/figures.hpp"
#include "hilo/sim/npy.hpp"
#include "pipeline_timing.hpp"
#include "pipeline_twin.hpp"

namespace hilo::controller {

namespace fs = std::filesystem;
using nlohmann::json;
using distill::MatD;

namespace {
cv::Mat as_mat(const sim::RArray& a) {
  cv::Mat m(int(a.rows()), int(a.cols()), CV_64F);
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) m.at<double>(r, c) = a(r, c);
  return m;
}
json fidelity_json(const calibration::PsfComparison& c) {
  return {{"mean", c.mean_correlation}, {"min", c.min_correlation}, {"efficiency", c.efficiency}};
}
}  // namespace

json PipelineStages::reoptimised_element(const std::string& name, int index, calibration::ExperimentBench& eb,
                                         const calibration::BenchCalibrationResult& before, const distill::Dataset* sub,
                                         const std::vector<int>& sub_rows, const json& nested, std::mt19937_64& rng,
                                         json& timings, std::vector<std::map<std::string, distill::ModelFile>>* models) {
  const auto& o = c_.reoptimise_element;
  if (!o.enabled) return {{"skipped", "bench.reoptimise_element.enabled is false"}};
  if (b_.design.element.kind != sim::ElementKind::slm || !b_.element)
    return {{"skipped", "the element is a fixed mask: it cannot be rewritten on the bench"}};
  const std::string stage = "bench " + name + ": element re-optimised";
  const fs::path d = dir_ / "bench" / name / "element_reoptimised";
  fs::create_directories(d);
  auto fail = [&](const drivers::DeviceError& e) -> void { throw std::runtime_error(stage + ": " + e.message); };
  const auto& slm = b_.design.element.slm;
  const Eigen::Index PR = slm.rows * b_.design.element.psf_pad, PC = slm.cols * b_.design.element.psf_pad;
  const std::vector<sim::RArray> target = calibration::psf_tiles(*student_);
  const sim::RArray target_psf = calibration::compose_psf(target, deployment_.layout, PR, PC);
  json truth = json::object();
  if (b_.simulator) truth["before"] = fidelity_json(calibration::compare_psfs(target_psf, b_.simulator->as_built_psf(), deployment_.layout));

  // Fit, re-design, and the backend re-fitted on the new element's design-model features.
  std::optional<PartTimer> lap(std::in_place, timings, "reopt: pupil fit and phase retrieval");
  calibration::DesignModel design(b_.design);
  const auto re = calibration::reoptimise_element(*student_, design, deployment_, before.tiles, o, c_.retrieval, rng);
  log(stage + ": " + re.fit.report + "; " + re.deployment.design.report);
  sim::write_npy(d / "phase.npy", sim::from_rarray(re.deployment.design.phase));
  distill::OpticalStudent s = distill::OpticalStudent::from_model(deployed_->to_model({}));
  s.set_kernels(re.deployment.kernels);
  const io::WorkControl quiet{{}, ctl_.work.stop};
  lap.emplace(timings, "reopt: design features");
  const MatD maps_train = calibration::design_maps(design, re.deployment, s, data_.train.x, quiet, c_.threads);
  const MatD a_train = s.features_from_maps(maps_train);
  const MatD a_test = calibration::design_features(design, re.deployment, s, test_x_, quiet, c_.threads);
  if (stop()) throw StageStopped{};
  lap.emplace(timings, "reopt: design re-fit");
  if (c_.design_refit_epochs > 0) {
    calibration::CompensationOptions r;
    r.mode = calibration::CompensationMode::task;
    r.epochs = c_.design_refit_epochs;
    r.batch = 64;
    if (calibration::refit_backend(s, a_train, data_.train.y, nullptr, nullptr, r, rng, quiet).stopped) throw StageStopped{};
  }
  const double simulated = distill::accuracy(s.backend_forward(a_test), test_y_);

  // The new element on the bench: calibrated again (its registration sees the fitted aberration in the
  // flat element's PSF), then measured.
  calibration::ExperimentControl ec;
  ec.work = {{}, ctl_.work.stop};
  ec.log = [&](const std::string& line) { log(stage + ": " + line); };
  ec.on_drift = ctl_.on_drift;
  lap.emplace(timings, "reopt: calibrate");
  calibration::Experiment ex(eb, design, re.deployment, s, c_.measure_options(), ec, name + "/element_reoptimised");
  auto cal = ex.calibrate(c_.calibration, rng);
  if (!cal) fail(cal.error());
  // Saved as the stage's own calibration is: what turns a raw frame through the new element into
  // features (the daemon's defer with frames; the compensated model's meta points at it).
  calibration::save_calibration(d / "calibration", ex.saved_calibration(cal.value().summary));
  if (b_.simulator) truth["after"] = fidelity_json(calibration::compare_psfs(target_psf, b_.simulator->as_built_psf(), re.deployment.layout));
  auto measure = [&](const distill::Mat<float>& x) {
    auto m = ex.measure(x);
    if (!m) fail(m.error());
    if (stop()) throw StageStopped{};
    return m.value();
  };
  lap.emplace(timings, "reopt: measure test");
  const MatD A_test = measure(test_x_);
  calibration::write_features(d / "test_features.npy", A_test);
  distill::OpticalStudent none = distill::OpticalStudent::from_model(s.to_model({}));
  const MatD logits_none = none.backend_forward(A_test);
  json acc = {{"none", distill::accuracy(logits_none, test_y_)}};
  json rows = json::array();
  std::optional<TwinState> twin;
  json physics_aware = nullptr, twin_trained = nullptr;
  if (o.compensate && sub && teacher_) {
    // The guard's evidence for this element (its validation split), the measured subset for its re-fits
    // and, with bench.kernels, its own measured kernels and twin (the new element realises other kernels).
    std::mt19937_64 twin_rng(seed_of(SeedStream::reopt_twin, index));
    if (c_.kernels.enabled) {
      lap.emplace(timings, "reopt: kernel probes and twin");
      twin.emplace(measure_twin(ex, ex.saved_calibration({}).calibration, design, re.deployment, s, c_, twin_rng, d, stage));
    }
    lap.emplace(timings, "reopt: measure val and subset");
    const MatD A_val = measure(data_.val.x), A_sub = measure(sub->x);
    const MatD val_logits_none = none.backend_forward(A_val);
    const double val_none = distill::accuracy(val_logits_none, data_.val.y);
    acc["none_val"] = val_none;
    if (twin) {
      lap.emplace(timings, "reopt: twin residual and training features");
      const MatD maps_val = calibration::design_maps(design, re.deployment, s, data_.val.x, quiet, c_.threads);
      check_and_extend_twin(*twin, s, data_, maps_val, maps_train, A_val, c_, twin_rng);
      log(stage + ": twin: " + twin->summary["residual"].dump());
    }
    int step = 0, k = 0;
    json twin_parts = json::object();  // twin_modes' parts, filed as "reopt: twin_task" / "reopt: twin_ntkd"
    lap.emplace(timings, "reopt: re-fits");
    for (const auto& n : nested) {
      const auto pick = n.at("indices").get<std::vector<std::size_t>>();
      const auto part = calibration::take_rows(A_sub, *sub, pick);
      json row = {{"fraction", n.at("fraction")}, {"measured", pick.size()}};
      std::map<std::string, distill::ModelFile> mine;
      mine["none"] = s.to_model({});
      for (const auto* m : {&c_.task, &c_.ntkd}) {
        std::mt19937_64 r2(seed_of(SeedStream::reopt_refit, index, step++));
        auto t = calibration::compensate(s, part, *teacher_, *m, r2, A_test, test_y_, &A_val, &data_.val.y, quiet);
        if (t.report.stopped) throw StageStopped{};
        calibration::guard_against_none(t, val_none, logits_none, test_y_);
        const std::string mode = calibration::to_string(m->mode);
        refit_cells(row, mode, t);
        mine[mode] = std::move(t.model);
      }
      if (twin) {
        std::vector<std::size_t> train_rows;
        for (auto p : pick) train_rows.push_back(std::size_t(sub_rows.at(p)));
        const calibration::NtkGroups* groups = c_.twin.shared_ntk_groups ? &train_ntk_groups() : nullptr;
        twin_modes(*twin, c_, {s, *teacher_, data_, A_test, test_y_, A_val, groups}, part.features, train_rows,
                   twin_seed(SeedStream::reopt_twin_refit, index, 2 * k + 2), row, quiet, twin_parts, &mine);
        if (stop()) throw StageStopped{};
      }
      if (models) models->push_back(std::move(mine));
      rows.push_back(row);
      ++k;
    }
    for (const auto& [part, t] : twin_parts.items()) timings["reopt: " + part] = t;
    if (o.physics_aware.enabled && !rows.empty()) {
      lap.emplace(timings, "reopt: physics-aware");
      const auto pick = nested.back().at("indices").get<std::vector<std::size_t>>();
      physics_aware = trained_element("physics_aware", name, index, eb, design, re.deployment, s, ex.saved_calibration({}),
                                      distill::take(*sub, std::vector<int>(pick.begin(), pick.end())), rows.back(),
                                      models ? &models->back()["physics_aware"] : nullptr);
      physics_aware["fraction"] = nested.back().at("fraction");
      physics_aware["measured"] = pick.size();
    }
    if (o.twin_train.enabled && !rows.empty()) {  // no measured images: one result for every fraction's row
      lap.emplace(timings, "reopt: twin-trained");
      json cells = json::object();
      distill::ModelFile trained;
      twin_trained = trained_element("twin_trained", name, index, eb, design, re.deployment, s, ex.saved_calibration({}),
                                     data_.train, cells, &trained);
      for (std::size_t k = 0; k < rows.size(); ++k) {
        rows[k].update(cells);
        if (models) (*models)[k]["twin_trained"] = trained;
      }
    }
  }
  acc["fractions"] = rows;
  lap.emplace(timings, "reopt: fidelity and figure");

  // Kernel fidelity to the trained kernels: design model, tile probe measured before and after.
  const auto measured_before = calibration::measured_kernel_fidelity(before.tiles, target, deployment_.layout, PR, PC);
  const auto measured_after = calibration::measured_kernel_fidelity(cal.value().tiles, target, re.deployment.layout, PR, PC);
  const sim::RArray target_probe = sim::incoherent_image(calibration::probe_object(before.tiles, deployment_.layout), target_psf);
  io::ImageOptions po;
  po.scale = 3;
  io::write_png(d / "psf_designed_before_after.png",
                io::render_grid({as_mat(calibration::probe_window(target_probe, before.tiles, deployment_.layout, PR, PC)),
                                 as_mat(calibration::probe_window(before.tiles.registered, before.tiles, deployment_.layout, PR, PC)),
                                 as_mat(calibration::probe_window(cal.value().tiles.registered, cal.value().tiles, re.deployment.layout, PR, PC))},
                                3, {"designed (trained kernels)", "measured, deployed element", "measured, re-optimised element"}, po));
  json res = {{"pupil_fit", re.fit.to_json()},
              {"kernel_correlation",
               {{"design_before", fidelity_json(deployment_.design.fidelity)},
                {"design_after", fidelity_json(re.deployment.design.fidelity)},
                {"measured_before", fidelity_json(measured_before)},
                {"measured_after", fidelity_json(measured_after)}}},
              {"simulated_acc", simulated},
              {"accuracy", acc},
              {"calibration", cal.value().summary},
              {"counts_per_unit", re.deployment.counts_per_unit},
              {"bench_frames", {{"calibration", ex.calibration_frames()}, {"total", ex.frame_log().size()},
                                {"kernel_probes", twin ? twin->probe_frames : 0},
                                {"val", acc.contains("none_val") ? std::int64_t(data_.val.size()) * c_.frames : 0},
                                {"extra_for_fit", 0}}},
              {"twin", twin ? twin->summary : json(nullptr)},
              {"physics_aware", physics_aware},
              {"twin_trained", twin_trained},
              {"frame_integrity", ex.frame_integrity()},
              {"figure", "element_reoptimised/psf_designed_before_after.png"}};
  if (b_.simulator) {
    const auto& ab = b_.simulator->as_built().profile().aberrations;
    json w = json::object();
    for (const auto& [j, c] : ab.zernike_waves) w[std::to_string(j)] = c;
    w["4"] = (w.contains("4") ? w["4"].get<double>() : 0.0) + ab.defocus_waves;
    truth["zernike_waves"] = w;
    res["ground_truth"] = truth;
  }
  lap.reset();
  log(stage + ": none " + pct(acc["none"].get<double>()) + " %, measured kernel correlation " +
      std::to_string(measured_before.mean_correlation) + " -> " + std::to_string(measured_after.mean_correlation));
  return res;
}

json PipelineStages::trained_element(const std::string& mode, const std::string& name, int index,
                                     calibration::ExperimentBench& eb, calibration::DesignModel& design,
                                     const calibration::Deployment& deployment, const distill::OpticalStudent& start,
                                     const calibration::SavedCalibration& saved, const distill::Dataset& part, json& cells,
                                     distill::ModelFile* model_out) {
  const bool on_bench = mode == "physics_aware";
  const std::string stage = "bench " + name + ": " + (on_bench ? "physics-aware" : "twin-trained");
  const fs::path d = dir_ / "bench" / name / "element_reoptimised" / mode;
  fs::create_directories(d);
  calibration::ExperimentControl ec;
  ec.work = {{}, ctl_.work.stop};
  ec.log = [&](const std::string& line) { log(stage + ": " + line); };
  ec.on_drift = ctl_.on_drift;
  // Each phase goes on the element through a new Experiment on the element's calibration (adopt: shows
  // the phase, one dark frame, a drift check), whose content check predicts frames with that phase.
  std::int64_t frames = 0;
  json integrity = json::array();
  auto through = [&](const calibration::RArray& phase, auto&& use) {
    calibration::DesignModel dm = design.clone();
    dm.set_element_phase(phase);
    calibration::Deployment dep = deployment;
    dep.design.phase = phase;
    calibration::Experiment e(eb, dm, dep, start, c_.measure_options(), ec, name + "/" + mode);
    if (auto err = e.adopt(saved)) return drivers::DeviceResult<json>(*err);
    auto r = use(e);
    frames += std::int64_t(e.frame_log().size());
    integrity.push_back(e.frame_integrity());
    return r;
  };
  const calibration::ElementModel model{design.pupil_amplitude(), design.pupil_aberration(), design.psf_pad(), deployment.layout,
                                        deployment.kernel_scale};
  const io::WorkControl work{{}, ctl_.work.stop};
  std::optional<calibration::PhysicsAwareResult> trained;
  json options;
  if (on_bench) {
    const auto& o = c_.reoptimise_element.physics_aware;
    options = o;
    calibration::BenchForward bench = [&](const calibration::RArray& phase, const distill::Mat<float>& x) {
      distill::MatD a;
      auto m = through(phase, [&](calibration::Experiment& e) -> drivers::DeviceResult<json> {
        auto v = e.measure(x);
        if (!v) return v.error();
        a = std::move(v.value());
        return json(nullptr);
      });
      if (!m) return drivers::DeviceResult<distill::MatD>(m.error());
      return drivers::DeviceResult<distill::MatD>(std::move(a));
    };
    std::mt19937_64 rng(seed_of(SeedStream::physics_aware, index));
    trained.emplace(calibration::physics_aware(start, deployment.design.phase, model, part.x, part.y, o, bench, rng, work));
  } else {
    const auto& o = c_.reoptimise_element.twin_train;
    options = o;
    std::mt19937_64 rng(seed_of(SeedStream::twin_train, index));
    trained.emplace(calibration::twin_train(start, deployment.design.phase, model, part.x, part.y, o, rng, work));
  }
  calibration::PhysicsAwareResult& r = *trained;
  if (r.stopped || stop()) throw StageStopped{};
  const std::int64_t training_frames = frames;
  // The trained element on the bench: the guard's validation split and the test set.
  distill::MatD A_val, A_test;
  auto ev = through(r.phase, [&](calibration::Experiment& e) -> drivers::DeviceResult<json> {
    auto v = e.measure(data_.val.x);
    if (!v) return v.error();
    auto t = e.measure(test_x_);
    if (!t) return t.error();
    A_val = std::move(v.value());
    A_test = std::move(t.value());
    return json(nullptr);
  });
  if (!ev) throw std::runtime_error(stage + ": " + ev.error().message);
  if (stop()) throw StageStopped{};
  sim::write_npy(d / "phase.npy", sim::from_rarray(r.phase));
  calibration::write_features(d / "test_features.npy", A_test);
  // Its own model's accuracy on the test set (the kernels κ(φ) of the model with the fitted aberration).
  const double model_acc = distill::accuracy(r.student.backend_forward(r.student.features(test_x_.cast<double>())), test_y_);
  cells[mode] = distill::accuracy(r.student.backend_forward(A_test), test_y_);
  cells[mode + "_val"] = distill::accuracy(r.student.backend_forward(A_val), data_.val.y);
  if (model_out) *model_out = r.student.to_model({});  // bench() adds where its phase is
  log(stage + ": " + pct(cells[mode].get<double>()) + " % on the test set (" + pct(model_acc) + " % in its model) after " + std::to_string(r.history.size()) +
      " steps, " + std::to_string(training_frames) + " bench frames");
  return {{"options", options},
          {"trained_on", part.size()},
          {"model_test_acc", model_acc},
          {"history", r.history},
          {"images_measured", r.images_measured},
          {"bench_frames", {{"training", training_frames}, {"evaluation", frames - training_frames}, {"total", frames}}},
          {"frame_integrity", integrity.empty() ? json(nullptr) : integrity.back()},
          {"phase_change_rms_rad", std::sqrt((r.phase - deployment.design.phase).square().mean())}};
}

}  // namespace hilo::controller
