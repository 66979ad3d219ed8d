#include "hilo/controller/pipeline_stages.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "hilo/calibration/drift.hpp"
#include "hilo/calibration/saved.hpp"
#include "hilo/io/figures.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/drivers/placed_slm.hpp"
#include "hilo/drivers/sim_devices.hpp"
#include "hilo/io/file_io.hpp"
#include "hilo/io/options_json.hpp"
#include "hilo/sim/config.hpp"
#include "hilo/sim/npy.hpp"
#include "hilo/sim/slm_model.hpp"
#include "pipeline_deferral.hpp"
#include "pipeline_timing.hpp"
#include "pipeline_twin.hpp"

namespace hilo::controller {

using io::ImageOptions;
using io::LinePlotOptions;
using io::Series;
using io::render_confusion_matrix;
using io::render_grid;
using io::render_image;
using io::render_line_plot;
using io::write_png;

namespace fs = std::filesystem;
using nlohmann::json;
using distill::MatD;

namespace {

cv::Mat confusion(const MatD& logits, const std::vector<int>& y, int classes) {
  cv::Mat c = cv::Mat::zeros(classes, classes, CV_32S);
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    Eigen::Index p = 0;
    logits.row(i).maxCoeff(&p);
    c.at<int>(y[std::size_t(i)], int(p)) += 1;
  }
  return c;
}

json mat_json(const cv::Mat& c) {
  json rows = json::array();
  for (int r = 0; r < c.rows; ++r) {
    json row = json::array();
    for (int k = 0; k < c.cols; ++k) row.push_back(c.at<int>(r, k));
    rows.push_back(row);
  }
  return rows;
}

cv::Mat to_cv(const sim::RArray& a) {
  cv::Mat m(int(a.rows()), int(a.cols()), CV_64F);
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) m.at<double>(r, c) = a(r, c);
  return m;
}

sim::RArray input_image(const distill::Mat<float>& x, Eigen::Index i, int rows, int cols) {
  sim::RArray im(rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) im(r, c) = std::clamp(double(x(i, r * cols + c)), 0.0, 1.0);
  return im;
}

distill::OpticalStudent clone(const distill::OpticalStudent& s) { return distill::OpticalStudent::from_model(s.to_model({})); }

}  // namespace

calibration::ExperimentBench experiment_bench(PipelineBench& b, drivers::Slm& input) {
  calibration::ExperimentBench eb{input, b.element, b.camera};
  if (b.simulator) eb.install_fixed_mask = [sim = b.simulator](const sim::RArray& phase) { sim->set_element_phase(phase); };
  eb.now_s = b.now_s;
  eb.mutex = b.mutex;
  return eb;
}

json read_json_file(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return json::parse(in);
}

std::uint64_t PipelineStages::seed_of(SeedStream s, int profile, int step, std::uint64_t offset) {
  const std::uint64_t v = stage_seed(c_.seed, stream_stage(s, profile, step)) + offset;
  seeds_.push_back({{"stream", seed_stream_info(s).name}, {"profile", profile}, {"step", step}, {"offset", offset}, {"seed", v}});
  return v;
}

std::uint64_t PipelineStages::twin_seed(SeedStream stream, int profile, int step) {
  (void)seed_of(stream, profile, step, 1);  // twin_modes: twin_ntkd draws from seed + 1
  return seed_of(stream, profile, step);
}

PipelineStages::PipelineStages(const PipelineConfig& c, PipelineBench& b, fs::path dir, const PipelineControl& ctl)
    : c_(c), b_(b), dir_(std::move(dir)), ctl_(ctl) {
  if (auto e = c_.validate(); !e.empty()) throw std::invalid_argument("pipeline: " + e);
}

const MatD& PipelineStages::teacher_train_logits() {
  if (!teacher_train_logits_) teacher_train_logits_ = distill::predict(*teacher_, data_.train.x).cast<double>();
  return *teacher_train_logits_;
}

const MatD& PipelineStages::teacher_test_logits() {
  if (!teacher_test_logits_) teacher_test_logits_ = distill::predict(*teacher_, test_x_).cast<double>();
  return *teacher_test_logits_;
}

const MatD& PipelineStages::design_train_maps() {
  if (!design_train_maps_) design_train_maps_ = calibration::design_maps(*design_, deployment_, *deployed_, data_.train.x, {}, c_.threads);
  return *design_train_maps_;
}

const MatD& PipelineStages::design_val_maps() {
  if (!design_val_maps_) design_val_maps_ = calibration::design_maps(*design_, deployment_, *deployed_, data_.val.x, {}, c_.threads);
  return *design_val_maps_;
}

const calibration::NtkGroups& PipelineStages::train_ntk_groups() {
  if (!train_ntk_groups_) {
    std::mt19937_64 rng(seed_of(SeedStream::ntk_groups));
    bool stopped = false;
    auto g = calibration::teacher_ntk_groups(*teacher_, data_.train.x, c_.twin_ntkd.ntk_subbatch, rng, {{}, ctl_.work.stop}, &stopped);
    if (stopped) throw StageStopped{};
    train_ntk_groups_ = std::move(g);
  }
  return *train_ntk_groups_;
}

void PipelineStages::deploy() {
  const fs::path d = dir_ / "deploy", model = d / "student.hilo", info = d / "deployment.json";
  design_.emplace(b_.design);
  std::mt19937_64 rng(seed_of(SeedStream::deploy));
  progress("deploy", 0, 4);
  const bool own_phase = student_->options().parameterization != "intensity";
  deployment_ = own_phase ? calibration::deploy_own_phase(*student_, *design_)
                          : calibration::design_deployment(*student_, *design_, c_.retrieval, rng);
  log("deploy: element designed, kernel correlation " + std::to_string(deployment_.design.fidelity.mean_correlation) +
      ", efficiency " + std::to_string(deployment_.design.fidelity.efficiency));
  if (!fs::exists(model)) {
    fs::create_directories(d);
    sim::write_npy(d / "phase.npy", sim::from_rarray(deployment_.design.phase));
    written("deploy.phase.npy");
    distill::OpticalStudent s = clone(*student_);
    if (!own_phase) s.set_kernels(deployment_.kernels);  // a phase student keeps its phase: the element shows it
    progress("deploy", 1, 4);
    const io::WorkControl features{[&](std::int64_t n, std::int64_t t, std::string_view) {
                                     progress("deploy: design features", n, t);
                                   },
                                   ctl_.work.stop};
    MatD maps = calibration::design_maps(*design_, deployment_, s, data_.train.x, features, c_.threads);
    if (stop()) throw StageStopped{};
    const MatD a_train = s.features_from_maps(maps);
    design_train_maps_ = std::move(maps);
    const MatD a_test = calibration::design_features(*design_, deployment_, s, test_x_, {{}, ctl_.work.stop}, c_.threads);
    if (stop()) throw StageStopped{};
    const double before = distill::accuracy(s.backend_forward(a_test), test_y_);
    calibration::CompensationReport rep;
    if (c_.design_refit_epochs > 0) {
      calibration::CompensationOptions o;
      o.mode = calibration::CompensationMode::task;
      o.epochs = c_.design_refit_epochs;
      o.batch = 64;
      rep = calibration::refit_backend(s, a_train, data_.train.y, nullptr, nullptr, o, rng, {{}, ctl_.work.stop});
      if (rep.stopped) throw StageStopped{};
    }
    const double after = distill::accuracy(s.backend_forward(a_test), test_y_);
    json j = {{"kernel_correlation_mean", deployment_.design.fidelity.mean_correlation},
              {"kernel_correlation_min", deployment_.design.fidelity.min_correlation},
              {"efficiency", deployment_.design.fidelity.efficiency},
              {"kernel_scale", deployment_.kernel_scale},
              {"counts_per_unit", deployment_.counts_per_unit},
              {"simulated_acc_before_refit", before},
              {"simulated_acc", after},
              {"refit_epochs", c_.design_refit_epochs}};
    // Figures: student kernels vs realised kernels, design PSF.
    const int K = s.options().kernels, k = s.options().kernel_size;
    std::vector<cv::Mat> ks;
    std::vector<std::string> labels;
    const MatD want = student_->intensity_kernels();
    for (int which = 0; which < 2; ++which)
      for (int jx = 0; jx < K; ++jx) {
        cv::Mat m(k, k, CV_64F);
        for (int r = 0; r < k * k; ++r) m.at<double>(r / k, r % k) = which == 0 ? want(jx, r) : deployment_.kernels(jx, r);
        ks.push_back(m);
        labels.push_back((which == 0 ? "trained " : "realised ") + std::to_string(jx));
      }
    ImageOptions ko;
    ko.scale = 12;
    ko.colorbar = false;
    write_png(d / "kernels.png", render_grid(ks, K, labels, ko));
    written("deploy.kernels.png");
    ImageOptions po;
    po.scale = 3;
    po.title = "design PSF (unit sum)";
    write_png(d / "design_psf.png", render_image(to_cv(deployment_.design.psf), po));
    written("deploy.design_psf.png");
    io::write_json_atomic(info, j);
    written("deploy.deployment.json");
    // The model is the stage's "done" marker (see above), so it is written last: a crash before it
    // leaves a stage that runs again; after it, every file the stage reads back exists.
    distill::write_model(model, s.to_model({{"deployed", true}}));
    written("deploy.student.hilo");
  }
  deployed_ = distill::OpticalStudent::from_model(distill::read_model(model));
  deploy_info_ = read_json_file(info);
  progress("deploy", 4, 4);
  log("deploy: simulated accuracy of the deployed design " + pct(deploy_info_.at("simulated_acc").get<double>()) + " %");
}

json PipelineStages::bench(const std::string& name, int index, bool compensate, const fs::path& calibration) {
  const fs::path d = dir_ / "bench" / name, result = d / "result.json";
  if (fs::exists(result)) return read_json_file(result);
  fs::create_directories(d);
  const std::string stage = "bench " + name;
  json& tm = timings_["bench"][name];  // this stage's parts (pipeline_timing.hpp), also in timings.json
  tm = json::object();
  if (b_.reset_simulator) {
    const auto profile = b_.load_profile(name);
    b_.reset_simulator(profile, seed_of(SeedStream::simulator, index));
  }
  std::mt19937_64 rng(seed_of(SeedStream::bench, index));
  auto throw_dev = [&](const drivers::DeviceError& e) { throw std::runtime_error(stage + ": " + e.message); };
  auto now = [&] { return b_.now_s ? b_.now_s() : 0.0; };

  // Measure the test set, the validation split and the largest subset, in that order.
  const double fmax = *std::max_element(c_.fractions.begin(), c_.fractions.end());
  calibration::SubsetOptions so;
  so.strategy = c_.strategy;
  so.fraction = fmax;
  std::int64_t total = 0;
  calibration::ExperimentControl ec;
  ec.work = {[&](std::int64_t n, std::int64_t, std::string_view) { progress(stage, n, total); }, ctl_.work.stop};
  ec.log = [&](const std::string& line) { log(stage + ": " + line); };
  ec.on_drift = ctl_.on_drift;
  // Probes and inputs are drawn at the design's input resolution; a display input with more pixels
  // shows them magnified and centred, as the capture places its inputs.
  drivers::PlacedSlm input(b_.input, b_.design.input.rows, b_.design.input.cols);
  calibration::ExperimentBench eb = experiment_bench(b_, input);
  calibration::Experiment ex(eb, *design_, deployment_, *deployed_, c_.measure_options(), ec, name);

  progress(stage, 0, 100);
  // The calibration: run here and saved as bench/<name>/calibration/, or adopted from a saved one.
  std::optional<calibration::BenchCalibrationResult> fresh;
  json cal_summary;
  std::optional<PartTimer> lap(std::in_place, tm, "calibrate");
  if (calibration.empty()) {
    auto cal = ex.calibrate(c_.calibration, rng);
    if (!cal) throw_dev(cal.error());
    fresh = std::move(cal.value());
    cal_summary = fresh->summary;
    calibration::save_calibration(d / "calibration", ex.saved_calibration(cal_summary));
    written("bench/calibration");
    log(stage + ": calibrated: " + cal_summary.dump());
  } else {
    const auto saved = calibration::load_calibration(calibration);
    if (auto e = ex.adopt(saved)) throw_dev(*e);
    cal_summary = saved.summary;
    log(stage + ": calibration adopted from " + calibration.string() + "; drift check: " + ex.drift_checks().back().dump());
  }
  std::optional<sim::Pose> truth_at_calibration;
  if (b_.simulator) truth_at_calibration = b_.simulator->true_pose(ex.calibrated_at_s());
  // Twin hook (pipeline_twin.cpp): the measured kernels are taken right after the test set, on a
  // generator of their own, so the stage's other draws and its test features (the frames before them)
  // are those of a run without them — the evaluate job measures the test set exactly as this stage does.
  std::optional<TwinState> twin;
  std::mt19937_64 twin_rng(seed_of(SeedStream::twin, index));

  std::vector<int> idx;
  distill::Dataset sub;
  lap.emplace(tm, "select subset");
  if (compensate) {
    if (!teacher_) throw std::logic_error("PipelineStages::bench: compensation needs the teacher");
    const auto chosen = calibration::select_subset(so, data_.train.y, teacher_train_logits(), rng);
    idx.assign(chosen.begin(), chosen.end());
    sub = distill::take(data_.train, idx);
  }
  total = std::int64_t(test_x_.rows()) + (compensate ? std::int64_t(data_.val.size() + sub.size()) : 0);
  auto measure = [&](const distill::Mat<float>& x) {
    auto r = ex.measure(x);
    if (!r) throw_dev(r.error());
    if (stop()) throw StageStopped{};
    return r.value();
  };
  // The test set (evaluation), the validation split (held out from every fit; the compensation sweep
  // selects its settings on it, docs/pipeline.md), and the measured training subset.
  lap.emplace(tm, "measure test");
  const MatD A_test = measure(test_x_);
  calibration::write_features(d / "test_features.npy", A_test);
  MatD A_val, A_sub;
  if (compensate && c_.kernels.enabled) {
    lap.emplace(tm, "twin: kernel probes and fit");
    twin.emplace(measure_twin(ex, ex.saved_calibration({}).calibration, *design_, deployment_, *deployed_, c_, twin_rng, d, stage));
    log(stage + ": measured kernels: " + twin->summary["kernels"].dump());
  }
  if (compensate) {
    lap.emplace(tm, "measure val and subset");
    A_val = measure(data_.val.x);
    A_sub = measure(sub.x);
    calibration::write_features(d / "val_features.npy", A_val);
    calibration::write_features(d / "subset_features.npy", A_sub);
    if (twin) {  // twin hook: its error on the measured validation split, then the training split's twin features
      lap.emplace(tm, "twin: residual and training features");
      check_and_extend_twin(*twin, *deployed_, data_, design_val_maps(), design_train_maps(), A_val, c_, twin_rng);
      log(stage + ": twin: " + twin->summary["residual"].dump());
    }
  }
  lap.emplace(tm, "sample frames");
  // Sample frames.
  std::vector<cv::Mat> frames;
  std::vector<std::string> frame_labels;
  for (int i = 0; i < std::min<int>(4, int(test_x_.rows())); ++i) {
    auto f = ex.capture(input_image(test_x_, i, data_.train.shape.h, data_.train.shape.w), 1);
    if (!f) throw_dev(f.error());
    cv::Mat shown;  // the input, enlarged to about the frame's size so both read at the same scale
    const cv::Mat in = to_cv(input_image(test_x_, i, data_.train.shape.h, data_.train.shape.w));
    const int up = std::max(1, int(f.value().rows()) / std::max(1, in.rows));
    cv::resize(in, shown, {}, up, up, cv::INTER_NEAREST);
    frames.push_back(shown);
    frame_labels.push_back("input " + std::to_string(i));
    frames.push_back(to_cv(f.value()));
    frame_labels.push_back("camera frame " + std::to_string(i));
  }

  lap.reset();
  // Compensation.
  const int C = data_.train.num_classes;
  json acc = json::object(), conf = json::object(), curves = json::object();
  distill::OpticalStudent none = clone(*deployed_);
  const MatD logits_none = none.backend_forward(A_test);
  acc["none"] = distill::accuracy(logits_none, test_y_);
  conf["none"] = mat_json(confusion(logits_none, test_y_, C));
  std::vector<double> fr = compensate ? c_.fractions : std::vector<double>{};
  std::sort(fr.begin(), fr.end(), std::greater<>());
  json rows = json::array(), nested = json::array();
  std::vector<std::map<std::string, distill::ModelFile>> fraction_models;  // per row: each re-fit's student
  int step = 0;
  const int steps = int(fr.size()) * 2;
  // The guard's reference: the deployed backend on the measured validation split.
  const MatD val_logits_none = compensate ? none.backend_forward(A_val) : MatD();
  const double val_none = compensate ? distill::accuracy(val_logits_none, data_.val.y) : 0.0;
  std::optional<DeferralModel> best_refit;  // the mode that validates best at fmax (deferral study)
  double best_val = 0.0;
  acc["none_val"] = val_none;
  const MatD sub_space = compensate ? MatD(distill::predict(*teacher_, sub.x).cast<double>()) : MatD();
  for (double f : fr) {
    // Nested subsets: the smaller fraction is chosen within the largest one by the same strategy.
    const auto pick = calibration::nested_subset(c_.strategy, f, fmax, sub.y, sub_space, rng);
    nested.push_back({{"fraction", f}, {"indices", pick}});
    const calibration::MeasuredSubset part = calibration::take_rows(A_sub, sub, pick);
    json row = {{"fraction", f}, {"measured", pick.size()}};
    std::map<std::string, distill::ModelFile> models;  // each re-fit's student, for the guard's winner
    for (const auto* o : {&c_.task, &c_.ntkd}) {
      if (stop()) throw StageStopped{};
      std::mt19937_64 r2(seed_of(SeedStream::refit, index, step));
      PartTimer refit(tm, "refit " + calibration::to_string(o->mode));
      auto t = calibration::compensate(*deployed_, part, *teacher_, *o, r2, A_test, test_y_, &A_val, &data_.val.y,
                                       {{}, ctl_.work.stop});
      if (t.report.stopped) throw StageStopped{};
      calibration::guard_against_none(t, val_none, logits_none, test_y_);
      const std::string mode = calibration::to_string(o->mode);
      refit_cells(row, mode, t);
      models[mode] = std::move(t.model);
      if (f >= fmax) {
        if (!best_refit || t.val_accuracy > best_val)
          best_refit = DeferralModel{mode + " f = " + pct(f) + " %", t.test_logits, t.kept_uncompensated ? val_logits_none : t.val_logits};
        best_val = std::max(best_val, t.val_accuracy);
        conf[mode] = mat_json(confusion(t.test_logits, test_y_, C));
        json c = json::array();
        for (const auto& e : t.report.epochs) c.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"ntk_distance", e.ntk_distance}, {"train_acc", e.accuracy}});
        curves[mode] = c;
      }
      ++step;
      progress(stage + ": compensate", step, steps);
    }
    if (twin) {  // twin hook: the twin-calibrated re-fits of this fraction
      std::vector<std::size_t> train_rows;
      for (auto p : pick) train_rows.push_back(std::size_t(idx[p]));
      const calibration::NtkGroups* groups = nullptr;
      if (c_.twin.shared_ntk_groups) {
        PartTimer t(tm, "twin: teacher NTK groups");
        groups = &train_ntk_groups();
      }
      twin_modes(*twin, c_, {*deployed_, *teacher_, data_, A_test, test_y_, A_val, groups}, part.features, train_rows,
                 twin_seed(SeedStream::twin_refit, index, step), row, {{}, ctl_.work.stop}, tm, &models);
      if (stop()) throw StageStopped{};
    }
    fraction_models.push_back(std::move(models));
    rows.push_back(row);
  }
  // The sweep re-fits on exactly these subsets.
  if (compensate)
    io::write_json_atomic(d / "nested_subsets.json", {{"strategy", calibration::to_string(c_.strategy)}, {"fractions", nested}});
  json res = {{"profile", name},
              {"calibration", cal_summary},
              {"calibration_source", calibration.empty() ? json("calibration (this stage)") : json(calibration.string())},
              {"test_images", test_x_.rows()},
              {"subset", compensate ? json{{"strategy", calibration::to_string(c_.strategy)}, {"fraction", fmax}, {"count", sub.size()}, {"indices", idx}}
                                    : json(nullptr)},
              {"accuracy", acc},
              {"confusion", conf},
              {"compensation_curves", curves},
              {"frame_integrity", ex.frame_integrity()},
              {"twin", twin ? twin->summary : json(nullptr)},
              {"drift", {{"checks", ex.drift_checks()}, {"action", c_.drift_action},
                         {"shift_threshold_px", c_.drift.shift_threshold_px}, {"gain_threshold", c_.drift.gain_threshold}}}};
  lap.emplace(tm, "deferral");
  if (teacher_) {  // deferral to the teacher (pipeline_deferral.hpp)
    std::vector<DeferralModel> dm{{"none", logits_none, val_logits_none}};
    if (best_refit) dm.push_back(*best_refit);
    res["deferral"] = deferral_study(dm, teacher_test_logits(), test_y_, d / "deferral.png", name + ": deferral to the teacher");
  }
  // ---- drift re-compensation (pipeline_recomp.cpp): after every cell above, before the element re-optimisation
  if (c_.recompensate.enabled && twin) {
    lap.emplace(tm, "recompensate: drift check");
    if (auto e = ex.check_drift()) throw_dev(*e);
    const json checks = ex.drift_checks();
    const auto hit = std::find_if(checks.begin(), checks.end(), [](const json& c) { return c.value("exceeded", false); });
    lap.reset();
    if (hit == checks.end()) {
      res["recompensation"] = {{"triggered", false}, {"checks", checks.size()}, {"reason", "no drift check passed its thresholds"}};
    } else {
      res["recompensation"] = recompensate(name, index, eb, ex, {&A_sub, idx, c_.drift_action == "update"}, *hit, d / "recompensation", tm);
      res["recompensation"]["triggered"] = true;
    }
    res["drift"]["checks"] = ex.drift_checks();
  }
  calibration::write_frame_log(d / "frame_log.npy", ex.frame_log());
  // ---- element re-optimised (pipeline_reopt.cpp): after everything above, so those cells are unchanged
  lap.reset();
  std::vector<std::map<std::string, distill::ModelFile>> element_models;
  if (fresh)
    res["element_reoptimised"] = reoptimised_element(name, index, eb, *fresh, compensate ? &sub : nullptr, idx, nested, rng,
                                                     tm, &element_models);
  // ---- the guard over every mode of both elements, and the model it chose per fraction
  for (std::size_t k = 0; k < rows.size(); ++k) {
    json& row = rows[k];
    const double f = row["fraction"].get<double>();
    const json* er = res.contains("element_reoptimised") ? &res["element_reoptimised"] : nullptr;
    const bool element = er && k < element_models.size() && er->at("accuracy").contains("none_val");
    std::map<std::string, std::int64_t> frames = {{"none", 0}};
    const std::int64_t measured_frames = row["measured"].get<std::int64_t>() * c_.frames;
    for (const char* m : {"task", "ntkd"}) frames[m] = measured_frames;
    if (twin)
      for (const char* m : {"twin_task", "twin_ntkd"}) frames[m] = measured_frames + twin->probe_frames;
    std::int64_t guard_frames = std::int64_t(A_val.rows()) * c_.frames;
    if (element) {
      const json& ea = er->at("accuracy");
      const json& eframes = er->at("bench_frames");
      const json& erow = ea.at("fractions").at(k);
      const std::int64_t cal_frames = eframes.at("calibration").get<std::int64_t>();
      row["element"] = ea.at("none");
      row["element_val"] = ea.at("none_val");
      frames["element"] = cal_frames;
      for (const std::string m : {"task", "ntkd", "twin_task", "twin_ntkd"}) {
        if (!erow.contains(m + "_val")) continue;
        row["element_" + m] = erow.contains(m + "_refit") ? erow[m + "_refit"] : erow[m];
        row["element_" + m + "_val"] = erow[m + "_val"];
        frames["element_" + m] = cal_frames + measured_frames +
                                 (m.rfind("twin_", 0) == 0 ? eframes.at("kernel_probes").get<std::int64_t>() : 0);
      }
      guard_frames += eframes.at("val").get<std::int64_t>();
      // The new element's phase trained further, each measured through its own phase: physics-aware
      // fine-tuning (the smallest fraction) and training through its model (every fraction, no
      // training frames).
      for (const std::string m : {"physics_aware", "twin_trained"}) {
        if (!erow.contains(m + "_val")) continue;
        row[m] = erow[m];
        row[m + "_val"] = erow[m + "_val"];
        frames[m] = cal_frames + er->at(m).at("bench_frames").at("training").get<std::int64_t>();
        guard_frames += std::int64_t(data_.val.size()) * c_.frames;
      }
    }
    guard_row(row, val_none, acc["none"].get<double>(), frames, guard_frames, c_.guard_margin);
    {  // The model the guard chose, ready to deploy (or to `defer`): the deployed student when it kept none.
      const std::string chosen = row["guarded_mode"].get<std::string>();
      const bool own_phase = chosen == "physics_aware" || chosen == "twin_trained";  // phase.npy in its folder
      const bool on_element = chosen.rfind("element", 0) == 0 || own_phase;
      distill::ModelFile m;
      if (chosen == "none") m = deployed_->to_model({});
      else if (own_phase) m = std::move(element_models[k].at(chosen));
      else if (on_element) m = std::move(element_models[k].at(chosen == "element" ? "none" : chosen.substr(8)));
      else m = std::move(fraction_models[k].at(chosen));
      // How a raw frame of this bench becomes the model's features (the daemon's defer with frames): the
      // saved calibration of the element the model goes with (relative to the model's folder unless the
      // stage adopted one from elsewhere) and the counts per unit of its deployment.
      const fs::path cal_dir = on_element ? fs::path("../element_reoptimised/calibration")
                               : calibration.empty() ? fs::path("../calibration") : fs::absolute(calibration);
      m.meta["bench"] = {{"calibration", cal_dir.string()},
                         {"counts_per_unit", on_element ? er->at("counts_per_unit").get<double>() : deployment_.counts_per_unit},
                         {"frames", c_.frames}};
      m.meta["compensated"] = {{"profile", name}, {"fraction", f}, {"mode", chosen}, {"measured", row["measured"]},
                               {"guarded_val", row["guarded_val"]}, {"guarded_test", row["guarded"]},
                               {"element_phase", own_phase ? "bench/" + name + "/element_reoptimised/" + chosen + "/phase.npy"
                                                : on_element ? "bench/" + name + "/element_reoptimised/phase.npy"
                                                             : "deploy/phase.npy"}};
      char file[48];
      std::snprintf(file, sizeof file, "compensated/f%g.hilo", 100.0 * f);
      distill::write_model(d / file, m);  // makes compensated/
      row["guarded_model"] = file;
    }
    log(stage + ": f = " + pct(f) + " %: task " + pct(row["task"].get<double>()) + " %, ntkd " + pct(row["ntkd"].get<double>()) +
        " %" + (twin ? ", twin task " + pct(row["twin_task"].get<double>()) + " %, twin ntkd " + pct(row["twin_ntkd"].get<double>()) + " %" : "") +
        (element ? ", element " + pct(row["element"].get<double>()) + " %" : "") +
        "; guarded: " + row["guarded_mode"].get<std::string>() + " " + pct(row["guarded"].get<double>()) + " %");
  }
  acc["fractions"] = rows;
  res["accuracy"] = acc;
  // ----
  if (ex.frame_counters().regrabs > 0)
    log(stage + ": frame integrity (rejected frames re-grabbed): " + ex.frame_integrity().dump());
  if (truth_at_calibration) {
    // The simulator's true pose when the calibration ended (what the registration measured) and at the
    // end of the stage (after the drift).
    auto pose_json = [](const sim::Pose& tp) {
      return json{{"shift_x_px", tp.shift_x_px}, {"shift_y_px", tp.shift_y_px}, {"rotation_deg", tp.rotation_deg},
                  {"scale", tp.scale}, {"gain", tp.gain}};
    };
    res["ground_truth"] = pose_json(*truth_at_calibration);
    res["ground_truth_at_end"] = pose_json(b_.simulator->true_pose(now()));
  }
  lap.emplace(tm, "figures");
  // Figures.
  if (fresh) {  // an adopted calibration's PSF figure is in the run that calibrated
    const auto& tl = fresh->tiles;
    ImageOptions po;
    po.scale = 3;
    write_png(d / "psf_designed_vs_measured.png",
              render_grid({to_cv(tl.predicted), to_cv(tl.registered)}, 2, {"designed (probe spot through the design PSF)", "measured (registered, dark-corrected)"}, po));
  }
  ImageOptions fo;
  fo.scale = 2;
  fo.colorbar = false;
  write_png(d / "frames.png", render_grid(frames, 4, frame_labels, fo));
  for (const char* m : {"none", "task", "ntkd"}) {
    if (!conf.contains(m)) continue;
    cv::Mat cm(C, C, CV_32S);
    for (int r = 0; r < C; ++r)
      for (int k = 0; k < C; ++k) cm.at<int>(r, k) = conf[m][r][k].get<int>();
    write_png(d / (std::string("confusion_") + m + ".png"),
              render_confusion_matrix(cm, {}, name + ": " + m + (std::string(m) == "none" ? "" : " (f = " + pct(fmax) + " %)"), 36));
  }
  lap.reset();
  io::write_json_atomic(d / "timings.json", tm);
  io::write_json_atomic(result, res);
  progress(stage, total, total);
  return res;
}

}  // namespace hilo::controller
