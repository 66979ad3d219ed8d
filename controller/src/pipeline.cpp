#include "hilo/controller/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "hilo/calibration/drift.hpp"
#include "hilo/io/figures.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/drivers/sim_devices.hpp"
#include "hilo/io/file_io.hpp"
#include "hilo/io/options_json.hpp"
#include "hilo/sim/config.hpp"
#include "hilo/sim/npy.hpp"
#include "hilo/sim/slm_model.hpp"

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

// ------------------------------------------------------------------------------------------ helpers
namespace {

std::uint64_t stage_seed(std::uint64_t seed, std::uint64_t stage) { return seed * 1000003ULL + stage * 7919ULL + 17; }

json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return json::parse(in);
}

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

// A table rendered as an image (header row, then rows), black on white.
cv::Mat render_table(const std::string& title, const std::vector<std::vector<std::string>>& rows) {
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  const double scale = 0.5;
  const int pad = 10, row_h = 26;
  std::vector<int> widths;
  for (const auto& r : rows)
    for (std::size_t k = 0; k < r.size(); ++k) {
      int base = 0;
      const int w = cv::getTextSize(r[k], font, scale, 1, &base).width + 2 * pad;
      if (widths.size() <= k) widths.push_back(w);
      widths[k] = std::max(widths[k], w);
    }
  const int W = std::max(400, std::accumulate(widths.begin(), widths.end(), 0) + 2 * pad);
  const int H = int(rows.size() + 1) * row_h + 2 * pad + 10;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::putText(img, title, {pad, pad + 16}, font, 0.6, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const int y = pad + 10 + int(i + 1) * row_h;
    int x = pad;
    for (std::size_t k = 0; k < rows[i].size(); ++k) {
      cv::putText(img, rows[i][k], {x + pad / 2, y}, font, scale, cv::Scalar(0, 0, 0), i == 0 ? 2 : 1, cv::LINE_AA);
      x += widths[k];
    }
    if (i == 0) cv::line(img, {pad, y + 8}, {W - pad, y + 8}, cv::Scalar(0, 0, 0), 1);
  }
  return img;
}

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", 100.0 * v);
  return b;
}

calibration::ExperimentBench experiment_bench(PipelineBench& b) {
  calibration::ExperimentBench eb{b.input, b.element, b.camera};
  if (b.simulator) eb.install_fixed_mask = [sim = b.simulator](const sim::RArray& phase) { sim->set_element_phase(phase); };
  eb.now_s = b.now_s;
  eb.mutex = b.mutex;
  return eb;
}

struct Stopped {};

distill::OpticalStudent clone(const distill::OpticalStudent& s) { return distill::OpticalStudent::from_model(s.to_model({})); }

class Runner {
 public:
  Runner(const PipelineConfig& c, PipelineBench& b, fs::path dir, const PipelineControl& ctl)
      : c_(c), b_(b), dir_(std::move(dir)), ctl_(ctl) {}

  PipelineResult run();

 private:
  bool stop() const { return ctl_.stop_requested && ctl_.stop_requested(); }
  void log(const std::string& s) const {
    if (ctl_.log) ctl_.log(s);
  }
  void progress(const std::string& stage, std::int64_t d, std::int64_t t) const {
    if (ctl_.progress) ctl_.progress(stage, d, t);
  }
  void crash_point(std::string_view where) const {
    if (ctl_.after_write) ctl_.after_write(where);
  }
  distill::JobControl train_control(const std::string& stage) {
    distill::JobControl jc;
    jc.cancel = &cancel_;
    jc.on_progress = [this, stage](const distill::Progress& p) {
      if (stop()) cancel_ = true;
      progress(stage, std::int64_t(p.epoch - 1) * std::int64_t(p.steps) + std::int64_t(p.step),
               std::int64_t(p.epochs) * std::int64_t(p.steps));
    };
    jc.on_epoch = [this, stage](const distill::EpochRecord& e) {
      log(stage + ": epoch " + std::to_string(e.epoch) + " val " + pct(e.val_acc) + " %");
    };
    return jc;
  }

  void stage_teacher();
  void stage_student();
  void stage_deploy();
  json stage_profile(const std::string& name, int index);
  json write_report(const json& profiles);

  const PipelineConfig& c_;
  PipelineBench& b_;
  fs::path dir_;
  const PipelineControl& ctl_;
  std::atomic<bool> cancel_{false};
  distill::Splits data_;
  distill::Mat<float> test_x_;
  std::vector<int> test_y_;
  std::optional<distill::Sequential<float>> teacher_;
  std::optional<distill::OpticalStudent> student_, deployed_;
  std::optional<calibration::DesignModel> design_;
  calibration::Deployment deployment_;
  json teacher_info_, student_info_, deploy_info_;
};

void Runner::stage_teacher() {
  const fs::path d = dir_ / "teacher", model = d / "teacher.hilo";
  if (!fs::exists(model)) {
    log("teacher: training on " + std::to_string(data_.train.size()) + " images");
    distill::TrainOptions t = c_.teacher_train;
    t.seed = stage_seed(c_.seed, 1);
    t.threads = c_.threads;
    auto net = distill::make_teacher(c_.teacher_arch, data_.train.shape, data_.train.num_classes);
    const auto h = distill::train_classifier(net, data_, t, train_control("teacher"));
    if (h.cancelled) throw Stopped{};
    fs::create_directories(d);
    io::write_json_atomic(d / "history.json", h.to_json());
    distill::write_model(model, distill::sequential_to_model(net, "teacher", {{"test_acc", h.test_acc}}));
  }
  teacher_ = distill::sequential_from_model<float>(distill::read_model(model));
  const json h = read_json(d / "history.json");
  teacher_info_ = {{"test_acc", h.at("test_acc")}, {"model", fs::relative(model, dir_).string()}};
  log("teacher: test accuracy " + pct(h.at("test_acc").get<double>()) + " %");
}

void Runner::stage_student() {
  const fs::path d = dir_ / "student", model = d / "student.hilo";
  if (!fs::exists(model)) {
    log("student: " + c_.distill.method + " on " + std::to_string(data_.train.size()) + " images");
    distill::TrainOptions t = c_.student_train;
    t.seed = stage_seed(c_.seed, 2);
    t.threads = c_.threads;
    distill::OpticalStudent s(c_.student, data_.train.shape, data_.train.num_classes);
    const auto h = distill::train_student(s, *teacher_, data_, c_.distill, t, train_control("student"));
    if (h.cancelled) throw Stopped{};
    fs::create_directories(d);
    io::write_json_atomic(d / "history.json", h.to_json());
    distill::write_model(model, s.to_model({{"test_acc", h.test_acc}, {"method", c_.distill.method}}));
  }
  student_ = distill::OpticalStudent::from_model(distill::read_model(model));
  const json h = read_json(d / "history.json");
  student_info_ = {{"test_acc", h.at("test_acc")}, {"method", c_.distill.method}, {"model", fs::relative(model, dir_).string()}};
  log("student: test accuracy (its own optical model) " + pct(h.at("test_acc").get<double>()) + " %");
}

void Runner::stage_deploy() {
  const fs::path d = dir_ / "deploy", model = d / "student.hilo", info = d / "deployment.json";
  design_.emplace(b_.design);
  std::mt19937_64 rng(stage_seed(c_.seed, 3));
  progress("deploy", 0, 4);
  deployment_ = calibration::design_deployment(*student_, *design_, c_.retrieval, rng);
  log("deploy: element designed, kernel correlation " + std::to_string(deployment_.design.fidelity.mean_correlation) +
      ", efficiency " + std::to_string(deployment_.design.fidelity.efficiency));
  if (!fs::exists(model)) {
    fs::create_directories(d);
    sim::write_npy(d / "phase.npy", sim::from_rarray(deployment_.design.phase));
    crash_point("deploy.phase.npy");
    distill::OpticalStudent s = clone(*student_);
    s.set_kernels(deployment_.kernels);
    progress("deploy", 1, 4);
    auto stop_fn = [this] { return stop(); };
    const MatD a_train = calibration::design_features(*design_, deployment_, s, data_.train.x,
                                                      [&](std::size_t n, std::size_t t) { progress("deploy: design features", std::int64_t(n), std::int64_t(t)); },
                                                      stop_fn);
    if (stop()) throw Stopped{};
    const MatD a_test = calibration::design_features(*design_, deployment_, s, test_x_, {}, stop_fn);
    if (stop()) throw Stopped{};
    const double before = distill::accuracy(s.backend_forward(a_test), test_y_);
    calibration::CompensationReport rep;
    if (c_.design_refit_epochs > 0) {
      calibration::CompensationOptions o;
      o.mode = calibration::CompensationMode::task;
      o.epochs = c_.design_refit_epochs;
      o.batch = 64;
      o.lr = 1e-3;
      rep = calibration::refit_backend(s, a_train, data_.train.y, nullptr, nullptr, o, rng);
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
    const MatD want = student_->kernels();
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
    crash_point("deploy.kernels.png");
    ImageOptions po;
    po.scale = 3;
    po.title = "design PSF (unit sum)";
    write_png(d / "design_psf.png", render_image(to_cv(deployment_.design.psf), po));
    crash_point("deploy.design_psf.png");
    io::write_json_atomic(info, j);
    crash_point("deploy.deployment.json");
    // The model is the stage's "done" marker (see above), so it is written last: a crash before it
    // leaves a stage that runs again; after it, every file the stage reads back exists.
    distill::write_model(model, s.to_model({{"deployed", true}}));
    crash_point("deploy.student.hilo");
  }
  deployed_ = distill::OpticalStudent::from_model(distill::read_model(model));
  deploy_info_ = read_json(info);
  progress("deploy", 4, 4);
  log("deploy: simulated accuracy of the deployed design " + pct(deploy_info_.at("simulated_acc").get<double>()) + " %");
}

json Runner::stage_profile(const std::string& name, int index) {
  const fs::path d = dir_ / "bench" / name, result = d / "result.json";
  if (fs::exists(result)) return read_json(result);
  fs::create_directories(d);
  const std::string stage = "bench " + name;
  if (b_.reset_simulator) {
    const auto profile = b_.load_profile(name);
    b_.reset_simulator(profile, stage_seed(c_.seed, 100 + std::uint64_t(index)));
  }
  std::mt19937_64 rng(stage_seed(c_.seed, 200 + std::uint64_t(index)));
  auto throw_dev = [&](const drivers::DeviceError& e) { throw std::runtime_error(stage + ": " + e.message); };
  auto now = [&] { return b_.now_s ? b_.now_s() : 0.0; };

  // Measure the test set, the validation split and the largest subset, in that order.
  const double fmax = *std::max_element(c_.fractions.begin(), c_.fractions.end());
  calibration::SubsetOptions so;
  so.strategy = c_.strategy;
  so.fraction = fmax;
  std::int64_t total = 0;
  calibration::ExperimentControl ec;
  ec.progress = [&](std::int64_t n) { progress(stage, n, total); };
  ec.stop = [this] { return stop(); };
  ec.log = [&](const std::string& line) { log(stage + ": " + line); };
  ec.on_drift = ctl_.on_drift;
  calibration::ExperimentBench eb = experiment_bench(b_);
  calibration::Experiment ex(eb, *design_, deployment_, *deployed_, c_.measure_options(), ec, name);

  progress(stage, 0, 100);
  auto cal = ex.calibrate(c_.calibration, rng);
  if (!cal) throw_dev(cal.error());
  std::optional<sim::Pose> truth_at_calibration;
  if (b_.simulator) truth_at_calibration = b_.simulator->true_pose(ex.calibrated_at_s());
  log(stage + ": calibrated: " + cal.value().summary.dump());

  const MatD teacher_space = distill::predict(*teacher_, data_.train.x).cast<double>();
  const auto chosen = calibration::select_subset(so, data_.train.y, teacher_space, rng);
  std::vector<int> idx(chosen.begin(), chosen.end());
  const distill::Dataset sub = distill::take(data_.train, idx);
  total = std::int64_t(test_x_.rows() + data_.val.size() + sub.size());
  auto measure = [&](const distill::Mat<float>& x) {
    auto r = ex.measure(x);
    if (!r) throw_dev(r.error());
    if (stop()) throw Stopped{};
    return r.value();
  };
  // The test set (evaluation), the validation split (held out from every fit; the compensation sweep
  // selects its settings on it, docs/pipeline.md), and the measured training subset.
  const MatD A_test = measure(test_x_);
  const MatD A_val = measure(data_.val.x);
  const MatD A_sub = measure(sub.x);
  calibration::write_features(d / "test_features.npy", A_test);
  calibration::write_features(d / "val_features.npy", A_val);
  calibration::write_features(d / "subset_features.npy", A_sub);
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

  // Compensation.
  const int C = data_.train.num_classes;
  json acc = json::object(), conf = json::object(), curves = json::object();
  distill::OpticalStudent none = clone(*deployed_);
  const MatD logits_none = none.backend_forward(A_test);
  acc["none"] = distill::accuracy(logits_none, test_y_);
  conf["none"] = mat_json(confusion(logits_none, test_y_, C));
  std::vector<double> fr = c_.fractions;
  std::sort(fr.begin(), fr.end(), std::greater<>());
  json rows = json::array(), nested = json::array();
  int step = 0;
  const int steps = int(fr.size()) * 2;
  const MatD sub_space = distill::predict(*teacher_, sub.x).cast<double>();
  for (double f : fr) {
    // Nested subsets: the smaller fraction is chosen within the largest one by the same strategy.
    const auto pick = calibration::nested_subset(c_.strategy, f, fmax, sub.y, sub_space, rng);
    nested.push_back({{"fraction", f}, {"indices", pick}});
    const calibration::MeasuredSubset part = calibration::take_rows(A_sub, sub, pick);
    json row = {{"fraction", f}, {"measured", pick.size()}};
    for (const auto* o : {&c_.task, &c_.ntkd}) {
      if (stop()) throw Stopped{};
      std::mt19937_64 r2(stage_seed(c_.seed, 300 + std::uint64_t(index) * 10 + std::uint64_t(step)));
      const auto t = calibration::compensate(*deployed_, part, *teacher_, *o, r2, A_test, test_y_);
      const std::string mode = calibration::to_string(o->mode);
      row[mode] = t.test_accuracy;
      if (f >= fmax) {
        conf[mode] = mat_json(confusion(t.test_logits, test_y_, C));
        json c = json::array();
        for (const auto& e : t.report.epochs) c.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"ntk_distance", e.ntk_distance}, {"train_acc", e.accuracy}});
        curves[mode] = c;
      }
      ++step;
      progress(stage + ": compensate", step, steps);
    }
    log(stage + ": f = " + pct(f) + " %: task " + pct(row["task"].get<double>()) + " %, ntkd " + pct(row["ntkd"].get<double>()) + " %");
    rows.push_back(row);
  }
  // The sweep re-fits on exactly these subsets.
  io::write_json_atomic(d / "nested_subsets.json", {{"strategy", calibration::to_string(c_.strategy)}, {"fractions", nested}});
  acc["fractions"] = rows;
  json res = {{"profile", name},
              {"calibration", cal.value().summary},
              {"test_images", test_x_.rows()},
              {"subset", {{"strategy", calibration::to_string(c_.strategy)}, {"fraction", fmax}, {"count", sub.size()}, {"indices", idx}}},
              {"accuracy", acc},
              {"confusion", conf},
              {"compensation_curves", curves},
              {"drift", {{"checks", ex.drift_checks()}, {"action", c_.drift_action},
                         {"shift_threshold_px", c_.drift.shift_threshold_px}, {"gain_threshold", c_.drift.gain_threshold}}}};
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
  // Figures.
  const auto& tl = cal.value().tiles;
  ImageOptions po;
  po.scale = 3;
  write_png(d / "psf_designed_vs_measured.png",
            render_grid({to_cv(tl.predicted), to_cv(tl.registered)}, 2, {"designed (probe spot through the design PSF)", "measured (registered, dark-corrected)"}, po));
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
  io::write_json_atomic(result, res);
  progress(stage, total, total);
  return res;
}

}  // namespace

std::vector<std::vector<std::string>> report_accuracy_rows(const json& report) {
  const double sim_acc = report.at("deploy").at("simulated_acc").get<double>();
  std::vector<std::vector<std::string>> rows{{"profile", "f %", "measured", "simulated %", "bench: none %", "task %", "NTKD %", "recovered (NTKD)"}};
  for (const auto& p : report.at("profiles")) {
    const double none = p.at("accuracy").at("none").get<double>();
    for (const auto& r : p.at("accuracy").at("fractions")) {
      const double nt = r.at("ntkd").get<double>();
      const double rec = sim_acc - none > 1e-9 ? (nt - none) / (sim_acc - none) : 0.0;
      rows.push_back({p.at("profile").get<std::string>(), pct(r.at("fraction").get<double>()), std::to_string(r.at("measured").get<int>()),
                      pct(sim_acc), pct(none), pct(r.at("task").get<double>()), pct(nt), pct(rec) + " %"});
    }
  }
  return rows;
}

namespace {

json Runner::write_report(const json& profiles) {
  const auto rows = report_accuracy_rows({{"deploy", deploy_info_}, {"profiles", profiles}});
  write_png(dir_ / "accuracy_table.png", render_table("hilo pipeline: test accuracy (" + c_.data.name + ")", rows));
  // Learning curves of the trained networks.
  std::vector<Series> series;
  for (const auto& [who, file] : {std::pair<std::string, fs::path>{"teacher", dir_ / "teacher" / "history.json"},
                                  {"student", dir_ / "student" / "history.json"}}) {
    const json h = read_json(file);
    Series s;
    s.label = who + " val";
    for (const auto& e : h["epochs"]) {
      s.x.push_back(e["epoch"].get<double>());
      s.y.push_back(e["val_acc"].get<double>());
    }
    series.push_back(s);
  }
  LinePlotOptions lo;
  lo.title = "validation accuracy";
  lo.x_label = "epoch";
  lo.y_label = "accuracy";
  write_png(dir_ / "learning_curves.png", render_line_plot(series, lo));
  json rep = {{"config", c_.to_json()},
              {"dataset", {{"name", c_.data.name}, {"train", data_.train.size()}, {"val", data_.val.size()}, {"test", test_y_.size()}}},
              {"teacher", teacher_info_},
              {"student", student_info_},
              {"deploy", deploy_info_},
              {"profiles", profiles},
              {"figures", {"accuracy_table.png", "learning_curves.png", "deploy/kernels.png", "deploy/design_psf.png"}}};
  io::write_json_atomic(dir_ / "report.json", rep);
  return rep;
}

PipelineResult Runner::run() {
  if (auto e = c_.validate(); !e.empty()) throw std::invalid_argument("pipeline: " + e);
  if (!c_.profiles.empty() && !b_.reset_simulator)
    throw std::invalid_argument("pipeline: bench.profiles needs the simulator (this bench is hardware; leave profiles empty)");
  fs::create_directories(dir_);
  // Eigen's products run on `threads` threads everywhere in the pipeline (training sets its own too);
  // more threads than free cores make OpenMP's barriers spin against each other.
  Eigen::setNbThreads(c_.threads);
  PipelineResult out;
  try {
    progress("data", 0, 1);
    data_ = distill::load_splits(c_.data);
    const auto nt = c_.test_images > 0 ? std::min<std::size_t>(std::size_t(c_.test_images), data_.test.size()) : data_.test.size();
    const auto th = distill::head(data_.test, nt);
    test_x_ = th.x;
    test_y_ = th.y;
    io::write_json_atomic(dir_ / "config.json", c_.to_json());
    stage_teacher();
    if (stop()) throw Stopped{};
    stage_student();
    if (stop()) throw Stopped{};
    stage_deploy();
    json profiles = json::array();
    const std::vector<std::string> names = c_.profiles.empty() ? std::vector<std::string>{"bench"} : c_.profiles;
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (stop()) throw Stopped{};
      profiles.push_back(stage_profile(names[i], int(i)));
    }
    out.report = write_report(profiles);
    out.completed = true;
  } catch (const Stopped&) {
    log("pipeline: stopped; completed stages are kept in " + dir_.string());
    out.completed = false;
  }
  return out;
}

}  // namespace

json sweep_compensation(const fs::path& run_dir, const std::string& profile, const std::vector<SweepEntry>& grid,
                        const std::vector<std::uint64_t>& seeds, const std::vector<double>& fractions,
                        const std::function<void(const std::string&)>& log) {
  const PipelineConfig c = PipelineConfig::from_json(read_json(run_dir / "config.json"));
  Eigen::setNbThreads(c.threads);
  const distill::Splits data = distill::load_splits(c.data);
  auto teacher = distill::sequential_from_model<float>(distill::read_model(run_dir / "teacher" / "teacher.hilo"));
  const auto deployed = distill::OpticalStudent::from_model(distill::read_model(run_dir / "deploy" / "student.hilo"));
  return calibration::sweep_compensation(run_dir / "bench" / profile, profile, {data, teacher, deployed}, grid, seeds,
                                         fractions, log);
}

PipelineBench pipeline_bench(drivers::OpenBench& bench, const drivers::BenchConfig& config, const fs::path& config_path) {
  if (!config.design)
    throw std::invalid_argument(config_path.string() + ": the pipeline needs a `design:` section (the optics as designed)");
  PipelineBench b{*bench.input, bench.element.get(), *bench.camera, *config.design};
  b.mutex = &bench.mutex;
  b.now_s = [clock = bench.clock.get()] { return clock->now_s(); };
  if (bench.simulator) {
    b.simulator = bench.simulator.get();
    const fs::path dir = config_path.parent_path();
    b.load_profile = [dir](const std::string& name) { return sim::load_profile(dir / "profiles" / (name + ".yaml")); };
    b.reset_simulator = [sim = bench.simulator.get(), sim_cam = bench.sim_camera,
                         virtual_clock = bench.virtual_clock](const sim::AsBuiltProfile& p, std::uint64_t seed) {
      sim->set_profile(p);
      if (sim_cam) sim_cam->reseed(seed);
      if (virtual_clock) virtual_clock->rewind_to(0.0);
    };
  }
  return b;
}

PipelineResult run_pipeline(const PipelineConfig& config, PipelineBench& bench, const fs::path& run_dir,
                            const PipelineControl& control) {
  Runner r(config, bench, run_dir, control);
  return r.run();
}

}  // namespace hilo::controller
