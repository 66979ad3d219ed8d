// The bench stage's twin hook: measured kernels, the digital twin, twin-calibrated re-fits, the guard.
#include "pipeline_twin.hpp"

#include <stdexcept>

#include <opencv2/core.hpp>

#include "hilo/io/figures.hpp"
#include "pipeline_timing.hpp"

namespace hilo::controller {

namespace fs = std::filesystem;
using nlohmann::json;
using distill::MatD;

namespace {

cv::Mat kernel_image(const MatD& w, Eigen::Index j, int s) {
  cv::Mat m(s, s, CV_64F);
  for (int r = 0; r < s * s; ++r) m.at<double>(r / s, r % s) = w(j, r);
  return m;
}

}  // namespace

TwinState measure_twin(calibration::Experiment& ex, const calibration::BenchCalibration& cal,
                       calibration::DesignModel& design, const calibration::Deployment& deployment,
                       const distill::OpticalStudent& deployed, const PipelineConfig& c, std::mt19937_64& rng,
                       const fs::path& dir, const std::string& stage) {
  calibration::CaptureFn capture = [&ex](const sim::RArray& in, int frames) { return ex.capture(in, frames); };
  auto mk = calibration::measure_kernels(capture, cal, design, deployment, c.kernels, rng);
  if (!mk) throw std::runtime_error(stage + ": kernel probes: " + mk.error().message);
  TwinState t;
  t.probe_frames = mk.value().frames;
  t.summary = {{"kernels", mk.value().summary()}};
  // Figure: designed (top row) and measured (bottom row) kernels on the support.
  const auto& k = mk.value();
  std::vector<cv::Mat> ims;
  std::vector<std::string> labels;
  for (int which = 0; which < 2; ++which)
    for (Eigen::Index j = 0; j < k.kernels.rows(); ++j) {
      ims.push_back(kernel_image(which == 0 ? k.design : k.kernels, j, k.support));
      labels.push_back(which == 0 ? "designed " + std::to_string(j)
                                  : "measured " + std::to_string(j) + " (r " + std::to_string(k.correlation[std::size_t(j)]).substr(0, 4) + ")");
    }
  io::ImageOptions ko;
  ko.scale = 10;
  ko.colorbar = false;
  io::write_png(dir / "kernels_designed_vs_measured.png", io::render_grid(ims, int(k.kernels.rows()), labels, ko));
  const calibration::TwinNoise noise = calibration::twin_noise(mk.value(), cal, c.frames);
  t.twin.emplace(std::move(mk.value()), design, deployment, noise, deployed);
  return t;
}

void check_and_extend_twin(TwinState& t, const distill::OpticalStudent& deployed, const distill::Splits& data,
                           const MatD& design_val_maps, const MatD& design_train_maps, const MatD& val_measured,
                           const PipelineConfig& c, std::mt19937_64& rng) {
  const MatD design_val = deployed.features_from_maps(design_val_maps);
  const MatD twin_val = t.twin->features(data.val.x, design_val);
  t.summary["residual"] = {{"images", val_measured.rows()},
                           {"split", "val"},
                           {"twin", calibration::relative_rms(twin_val, val_measured)},
                           {"design", calibration::relative_rms(design_val, val_measured)}};
  t.train = t.twin->features_from_design_maps(data.train.x, design_train_maps, c.twin.noise ? &rng : nullptr);
}

void twin_modes(const TwinState& t, const PipelineConfig& c, const TwinRefitInputs& in, const MatD& measured,
                const std::vector<std::size_t>& train_rows, std::uint64_t seed, json& row, const io::WorkControl& work,
                json& timings, std::map<std::string, distill::ModelFile>* models) {
  std::vector<int> sample_rows;
  const calibration::MeasuredSubset set =
      calibration::twin_training_set(t.train, in.data.train, measured, train_rows, c.twin, &sample_rows);
  std::optional<calibration::NtkGroups> groups;
  if (in.train_ntk_groups) groups = calibration::map_ntk_groups(*in.train_ntk_groups, sample_rows);
  std::uint64_t n = 0;
  for (const auto& [name, o] : {std::pair<std::string, const calibration::CompensationOptions*>{"twin_task", &c.twin_task},
                                {"twin_ntkd", &c.twin_ntkd}}) {
    std::mt19937_64 r(seed + n++);
    PartTimer part(timings, name);
    auto trial = calibration::compensate(in.deployed, set, in.teacher, *o, r, in.test_features, in.test_labels,
                                               &in.val_features, &in.data.val.y, work,
                                               groups && o->mode == calibration::CompensationMode::ntkd ? &*groups : nullptr);
    if (trial.report.stopped) return;
    row[name] = trial.test_accuracy;
    row[name + "_val"] = trial.val_accuracy;
    if (models) (*models)[name] = std::move(trial.model);
  }
}

void refit_cells(json& row, const std::string& mode, const calibration::CompensationTrial& t) {
  row[mode] = t.test_accuracy;
  row[mode + "_refit"] = t.refit_test_accuracy;
  row[mode + "_val"] = t.val_accuracy;
  row[mode + "_kept_none"] = t.kept_uncompensated;
}

void guard_row(json& row, double none_val, double none_test, const std::map<std::string, std::int64_t>& frames,
               std::int64_t guard_frames, double margin) {
  std::string best = "none";
  double best_val = none_val, best_test = none_test, bar = none_val + margin;
  json used = {{"guard", guard_frames}};
  for (const auto& [m, n] : frames) used[m] = n;
  for (const std::string m : {"task", "ntkd", "twin_task", "twin_ntkd", "element", "element_task", "element_ntkd",
                              "element_twin_task", "element_twin_ntkd", "physics_aware", "twin_trained"}) {
    if (!row.contains(m + "_val")) continue;
    const double v = row[m + "_val"].get<double>();
    if (v > bar) {  // beyond none's margin, then beyond the best mode so far
      best = m;
      best_val = bar = v;
      best_test = row.contains(m + "_refit") ? row[m + "_refit"].get<double>() : row[m].get<double>();
    }
  }
  row["guarded"] = best_test;
  row["guarded_mode"] = best;
  row["guarded_val"] = best_val;
  row["frames"] = used;
}

}  // namespace hilo::controller
