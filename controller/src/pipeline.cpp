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
#include "hilo/drivers/placed_slm.hpp"
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

// ------------------------------------------------------------------------------------------- config
namespace {
calibration::CompensationOptions compensation_from_json(const json& j, calibration::CompensationOptions o,
                                                        const std::string& section) {
  const auto mode = o.mode;
  o = io::read_options(j, section, o);
  if (o.mode != mode) throw std::invalid_argument(section + ".mode must be \"" + calibration::to_string(mode) + "\"");
  return o;
}

// The pipeline config's JSON form, written once: the JSON pointer of every key and the member it holds.
// A struct member maps to a mapping (through the struct's own JSON form); `flat` merges a struct's keys
// into a section shared with other keys (deploy: the phase retrieval's keys and design_refit_epochs).
// to_json() and from_json() both walk this list, so a field cannot be written and not read back.
struct Flat {};
template <class C, class F>
void for_each_field(C& c, F&& f) {
  f("/data", c.data);
  f("/seed", c.seed);
  f("/threads", c.threads);
  f("/teacher/arch", c.teacher_arch);
  f("/teacher/train", c.teacher_train);
  f("/student/options", c.student);
  f("/student/distill", c.distill);
  f("/student/train", c.student_train);
  f("/deploy", c.retrieval, Flat{});
  f("/deploy/design_refit_epochs", c.design_refit_epochs);
  f("/bench/profiles", c.profiles);
  f("/bench/test_images", c.test_images);
  f("/bench/frames", c.frames);
  f("/bench/drift_every", c.drift_every);
  f("/bench/drift_action", c.drift_action);
  f("/bench/drift_shift_px", c.drift.shift_threshold_px);
  f("/bench/drift_gain", c.drift.gain_threshold);
  f("/measure/fractions", c.fractions);
  f("/measure/strategy", c.strategy);
  f("/compensation/task", c.task);
  f("/compensation/ntkd", c.ntkd);
}
}  // namespace

PipelineConfig PipelineConfig::defaults() {
  PipelineConfig c;
  c.teacher_train.epochs = 4;
  c.teacher_train.batch_size = 64;
  c.teacher_train.optimizer.kind = "adam";
  c.teacher_train.optimizer.lr = 0.002;
  c.student.noise.enabled = true;
  c.distill.method = "ntkd";
  c.distill.ntk_distance.kind = "alignment";
  c.distill.ntk_param_set = "all";
  c.distill.ntk_beta = 10.0;
  c.distill.ntk_subbatch = 32;
  c.distill.ntk_every = 2;
  c.student_train.epochs = 8;
  c.student_train.batch_size = 64;
  c.student_train.optimizer.kind = "adam";
  c.student_train.optimizer.lr = 0.003;
  c.profiles = {"mild", "moderate", "severe"};
  c.calibration.registration.frames = 4;
  c.calibration.tiles.frames = 16;
  c.task.mode = calibration::CompensationMode::task;
  c.task.epochs = 40;
  c.task.lr = 1e-3;
  // NTKD: trace-normalised distance, β = 10, groups of 16 — the best validation accuracy of the sweep
  // on the moderate profile (docs/pipeline.md, "Choosing the compensation settings"), tied with
  // alignment at β = 100 over groups of 64, which costs more.
  c.ntkd = c.task;
  c.ntkd.mode = calibration::CompensationMode::ntkd;
  c.ntkd.distance.kind = "trace_mse";
  c.ntkd.beta = 10.0;
  c.ntkd.ntk_subbatch = 16;
  return c;
}

PipelineConfig PipelineConfig::from_json(const json& j) {
  const json merged = io::merge_checked(j, defaults().to_json(), "pipeline");
  PipelineConfig c = defaults();
  for_each_field(c, [&](const char* ptr, auto& member, auto... flat) {
    try {
      merged.at(json::json_pointer(ptr)).get_to(member);
    } catch (const std::exception& e) {  // a json type error, or a name the field's parser refuses
      std::string key = std::string("pipeline") + ptr;
      std::replace(key.begin(), key.end(), '/', '.');
      throw std::invalid_argument(key + ": " + e.what());
    }
  });
  // The modes are fixed by the section; everything else of each is the user's.
  c.task = compensation_from_json(merged["compensation"]["task"], defaults().task, "pipeline.compensation.task");
  c.ntkd = compensation_from_json(merged["compensation"]["ntkd"], defaults().ntkd, "pipeline.compensation.ntkd");
  return c;
}

json PipelineConfig::to_json() const {
  json j = json::object();
  for_each_field(*this, [&](const char* ptr, const auto& member, auto... flat) {
    if constexpr (sizeof...(flat) > 0) {
      j[json::json_pointer(ptr)].update(json(member));
    } else {
      j[json::json_pointer(ptr)] = member;
    }
  });
  return j;
}

std::string PipelineConfig::validate() const {
  try {
    data.validate();
    teacher_arch.validate();
    teacher_train.validate();
    student.validate();
    distill.validate();
    student_train.validate();
  } catch (const std::exception& e) {
    return e.what();
  }
  if (student.parameterization != "intensity") return "student.options.parameterization must be \"intensity\" (deployed by phase retrieval)";
  if (threads < 1 || threads > 64) return "threads must be in [1, 64], got " + std::to_string(threads);
  if (design_refit_epochs < 0) return "deploy.design_refit_epochs must be >= 0";
  if (test_images < 0) return "bench.test_images must be >= 0 (0 = all)";
  if (frames < 1 || frames > 64) return "bench.frames must be in [1, 64], got " + std::to_string(frames);
  if (drift_every < 10) return "bench.drift_every must be >= 10 images, got " + std::to_string(drift_every);
  if (drift_action != "update" && drift_action != "report") return "bench.drift_action must be \"update\" or \"report\", got \"" + drift_action + "\"";
  if (auto e = drift.validate(); !e.empty()) return "bench.drift: " + e;
  if (fractions.empty()) return "measure.fractions must not be empty";
  for (double f : fractions)
    if (!(f > 0 && f <= 1)) return "measure.fractions must be in (0, 1], got " + std::to_string(f);
  std::set<std::string> seen;
  for (const auto& p : profiles) {
    if (p.empty() || p.find('/') != std::string::npos || p.find("..") != std::string::npos)
      return "bench.profiles: '" + p + "' is not a profile name";
    if (!seen.insert(p).second) return "bench.profiles: '" + p + "' is listed twice";
  }
  for (const auto* o : {&task, &ntkd})
    if (auto e = o->validate(); !e.empty()) return "compensation: " + e;
  if (ntkd.mode != calibration::CompensationMode::ntkd || task.mode != calibration::CompensationMode::task)
    return "compensation modes are fixed: task and ntkd";
  if (auto e = retrieval.validate(); !e.empty()) return "deploy: " + e;
  if (auto e = calibration.validate(); !e.empty()) return "calibration: " + e;
  return {};
}

// ------------------------------------------------------------------------------------------ helpers
namespace {

std::uint64_t stage_seed(std::uint64_t seed, std::uint64_t stage) { return seed * 1000003ULL + stage * 7919ULL + 17; }

json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return json::parse(in);
}

void write_matrix(const fs::path& p, const MatD& m) {
  sim::write_npy(p, sim::make_npy<double>(std::span<const double>(m.data(), std::size_t(m.size())),
                                          {std::size_t(m.rows()), std::size_t(m.cols())}));
}

MatD read_matrix(const fs::path& p) {
  const auto a = sim::read_npy(p);
  if (a.shape.size() != 2) throw std::runtime_error(p.string() + ": expected a 2-D array");
  const auto v = sim::as_doubles(a, p.string());
  MatD m(Eigen::Index(a.shape[0]), Eigen::Index(a.shape[1]));
  std::copy(v.begin(), v.end(), m.data());
  return m;
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

// Runs f with the bench mutex held (when there is one).
template <typename F>
auto with_bench(PipelineBench& b, F&& f) {
  if (b.mutex) {
    std::lock_guard lk(*b.mutex);
    return f();
  }
  return f();
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
  // Probes and inputs are drawn at the design's input resolution; a display input with more pixels
  // shows them magnified and centred, as the capture places its inputs.
  drivers::PlacedSlm input(b_.input, b_.design.input.rows, b_.design.input.cols);
  calibration::ProbeRig rig(input, b_.camera);
  const sim::SlmModel slm_model(b_.design.element.slm);
  calibration::ShowElementFn show = [&](const sim::RArray& phase) -> drivers::DeviceStatus {
    if (b_.element) return calibration::deploy_phase(*b_.element, phase, slm_model);
    if (b_.simulator) b_.simulator->set_element_phase(phase);
    return std::nullopt;
  };
  auto cal_opt = c_.calibration;
  cal_opt.flat_element_for_registration = b_.element != nullptr;
  if (!b_.element) show(deployment_.design.phase);
  auto throw_dev = [&](const drivers::DeviceError& e) { throw std::runtime_error(stage + ": " + e.message); };
  progress(stage, 0, 100);
  auto cal = with_bench(b_, [&] { return calibration::calibrate_bench(rig, *design_, deployment_, show, cal_opt, rng); });
  if (!cal) throw_dev(cal.error());
  const auto& bc = cal.value().calibration;
  std::optional<sim::Pose> truth_at_calibration;
  if (b_.simulator) truth_at_calibration = b_.simulator->true_pose(b_.now_s ? b_.now_s() : 0.0);
  log(stage + ": calibrated: " + cal.value().summary.dump());
  // Drift reference right after calibration, checked again at the end.
  const calibration::DriftOptions& drift_opt = c_.drift;
  auto now = [&] { return b_.now_s ? b_.now_s() : 0.0; };
  auto dref = with_bench(b_, [&] { return calibration::capture_drift_reference(rig, bc.dark, bc.pose, now(), drift_opt, rng); });
  if (!dref) throw_dev(dref.error());

  // Measure the test set and the largest subset.
  const double fmax = *std::max_element(c_.fractions.begin(), c_.fractions.end());
  calibration::SubsetOptions so;
  so.strategy = c_.strategy;
  so.fraction = fmax;
  const MatD teacher_space = distill::predict(*teacher_, data_.train.x).cast<double>();
  const auto chosen = calibration::select_subset(so, data_.train.y, teacher_space, rng);
  std::vector<int> idx(chosen.begin(), chosen.end());
  const distill::Dataset sub = distill::take(data_.train, idx);
  const std::int64_t total = std::int64_t(test_x_.rows() + data_.val.size() + sub.size());
  calibration::ExtractOptions ex;
  auto stop_fn = [this] { return stop(); };
  std::int64_t offset = 0;
  calibration::BenchCalibration live = bc;  // the calibration as drift updates leave it
  json drift_checks = json::array();
  auto check_drift_now = [&] {
    auto r = with_bench(b_, [&] { return calibration::check_drift(rig, dref.value(), live.dark, now(), c_.drift); });
    if (!r) throw_dev(r.error());
    const auto& dr = r.value();
    json j = {{"t_s", dr.t_s}, {"measured_images", offset}, {"displacement_px", dr.displacement_px},
              {"gain_change", dr.gain_change}, {"exceeded", dr.exceeded}, {"message", dr.message}};
    if (dr.exceeded) {
      j["action"] = c_.drift_action;
      j["profile"] = name;
      if (c_.drift_action == "update") {
        live.pose = dr.updated_pose;
        live.gain = bc.gain * dr.updated_pose.gain / std::max(1e-12, dref.value().pose.gain);
      }
      log(stage + ": " + dr.message + (c_.drift_action == "update" ? " (calibration updated)" : ""));
      if (ctl_.on_drift) ctl_.on_drift(j);
    }
    drift_checks.push_back(j);
  };
  auto measure = [&](const distill::Mat<float>& x) {
    MatD out(x.rows(), deployed_->feature_dim());
    for (Eigen::Index s0 = 0; s0 < x.rows(); s0 += c_.drift_every) {
      const Eigen::Index m = std::min<Eigen::Index>(c_.drift_every, x.rows() - s0);
      const distill::Mat<float> part = x.middleRows(s0, m);
      auto r = with_bench(b_, [&] {
        return calibration::measure_features(rig, live, ex, deployment_, *deployed_, part, c_.frames,
                                             [&](std::size_t n, std::size_t) { progress(stage, offset + std::int64_t(n), total); },
                                             stop_fn);
      });
      if (!r) throw_dev(r.error());
      if (stop()) throw Stopped{};
      out.middleRows(s0, m) = r.value();
      offset += m;
      check_drift_now();
    }
    return out;
  };
  // The test set (evaluation), the validation split (held out from every fit; the compensation sweep
  // selects its settings on it, docs/pipeline.md), and the measured training subset.
  const MatD A_test = measure(test_x_);
  const MatD A_val = measure(data_.val.x);
  const MatD A_sub = measure(sub.x);
  write_matrix(d / "test_features.npy", A_test);
  write_matrix(d / "val_features.npy", A_val);
  write_matrix(d / "subset_features.npy", A_sub);
  // Sample frames and the end-of-run drift check.
  std::vector<cv::Mat> frames;
  std::vector<std::string> frame_labels;
  for (int i = 0; i < std::min<int>(4, int(test_x_.rows())); ++i) {
    auto f = with_bench(b_, [&] { return rig.capture(input_image(test_x_, i, data_.train.shape.h, data_.train.shape.w), 1); });
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
  json rows = json::array();
  int step = 0;
  const int steps = int(fr.size()) * 2;
  for (double f : fr) {
    // Nested subsets: the smaller fraction is chosen within the largest one by the same strategy.
    std::vector<std::size_t> pick;
    if (f >= fmax) {
      pick.resize(sub.size());
      std::iota(pick.begin(), pick.end(), std::size_t{0});
    } else {
      calibration::SubsetOptions s2 = so;
      s2.fraction = std::min(1.0, f / fmax);
      const MatD sub_space = distill::predict(*teacher_, sub.x).cast<double>();
      pick = calibration::select_subset(s2, sub.y, sub_space, rng);
    }
    std::vector<int> pi(pick.begin(), pick.end());
    MatD a(Eigen::Index(pi.size()), A_sub.cols());
    for (std::size_t i = 0; i < pi.size(); ++i) a.row(Eigen::Index(i)) = A_sub.row(pi[i]);
    const distill::Dataset part = distill::take(sub, pi);
    json row = {{"fraction", f}, {"measured", pi.size()}};
    for (const auto* o : {&c_.task, &c_.ntkd}) {
      if (stop()) throw Stopped{};
      distill::OpticalStudent s = clone(*deployed_);
      std::mt19937_64 r2(stage_seed(c_.seed, 300 + std::uint64_t(index) * 10 + std::uint64_t(step)));
      const auto rep = calibration::refit_backend(s, a, part.y, &*teacher_, &part.x, *o, r2);
      const MatD lg = s.backend_forward(A_test);
      const std::string mode = calibration::to_string(o->mode);
      row[mode] = distill::accuracy(lg, test_y_);
      if (f >= fmax) {
        conf[mode] = mat_json(confusion(lg, test_y_, C));
        json c = json::array();
        for (const auto& e : rep.epochs) c.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"ntk_distance", e.ntk_distance}, {"train_acc", e.accuracy}});
        curves[mode] = c;
      }
      ++step;
      progress(stage + ": compensate", step, steps);
    }
    log(stage + ": f = " + pct(f) + " %: task " + pct(row["task"].get<double>()) + " %, ntkd " + pct(row["ntkd"].get<double>()) + " %");
    rows.push_back(row);
  }
  acc["fractions"] = rows;
  json res = {{"profile", name},
              {"calibration", cal.value().summary},
              {"test_images", test_x_.rows()},
              {"subset", {{"strategy", calibration::to_string(c_.strategy)}, {"fraction", fmax}, {"count", sub.size()}, {"indices", idx}}},
              {"accuracy", acc},
              {"confusion", conf},
              {"compensation_curves", curves},
              {"drift", {{"checks", drift_checks}, {"action", c_.drift_action},
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

SweepEntry sweep_entry_from_json(const std::string& name, const json& j) {
  SweepEntry e;
  e.name = name;
  e.options.mode = calibration::parse_compensation_mode(j.value("mode", std::string("ntkd")));
  e.options = compensation_from_json(j, e.options, "sweep." + name);
  if (auto err = e.options.validate(); !err.empty()) throw std::invalid_argument("sweep." + name + ": " + err);
  return e;
}

json sweep_compensation(const fs::path& run_dir, const std::string& profile, const std::vector<SweepEntry>& grid,
                        const std::vector<std::uint64_t>& seeds, const std::vector<double>& fractions,
                        const std::function<void(const std::string&)>& log) {
  const json cfg = read_json(run_dir / "config.json");
  const PipelineConfig c = PipelineConfig::from_json(cfg);
  Eigen::setNbThreads(c.threads);
  const fs::path d = run_dir / "bench" / profile;
  const json res = read_json(d / "result.json");
  const distill::Splits data = distill::load_splits(c.data);
  auto teacher = distill::sequential_from_model<float>(distill::read_model(run_dir / "teacher" / "teacher.hilo"));
  const auto deployed = distill::OpticalStudent::from_model(distill::read_model(run_dir / "deploy" / "student.hilo"));
  const MatD A_test = read_matrix(d / "test_features.npy"), A_sub = read_matrix(d / "subset_features.npy");
  const MatD A_val = read_matrix(d / "val_features.npy");
  const auto test = distill::head(data.test, std::size_t(A_test.rows()));
  const std::vector<int> idx = res.at("subset").at("indices").get<std::vector<int>>();
  const distill::Dataset sub = distill::take(data.train, idx);
  const double fmax = res.at("subset").at("fraction").get<double>();
  json rows = json::array();
  for (const auto& fr : res.at("accuracy").at("fractions")) {
    const double f = fr.at("fraction").get<double>();
    if (!fractions.empty() && std::find(fractions.begin(), fractions.end(), f) == fractions.end()) continue;
    // The same nested subset the run used: re-drawn from its generator state is not reproducible here,
    // so the sweep takes a class-balanced subset of the stored one for f < fmax with a fixed seed.
    std::vector<std::size_t> pick(sub.size());
    std::iota(pick.begin(), pick.end(), std::size_t{0});
    if (f < fmax) {
      std::mt19937_64 r(12345);
      pick = calibration::select_class_balanced(sub.y, calibration::subset_size(sub.size(), f / fmax), r);
    }
    std::vector<int> pi(pick.begin(), pick.end());
    MatD a(Eigen::Index(pi.size()), A_sub.cols());
    for (std::size_t i = 0; i < pi.size(); ++i) a.row(Eigen::Index(i)) = A_sub.row(pi[i]);
    const distill::Dataset part = distill::take(sub, pi);
    for (const auto& g : grid)
      for (auto seed : seeds) {
        distill::OpticalStudent s = clone(deployed);
        std::mt19937_64 r2(seed);
        const auto rep = calibration::refit_backend(s, a, part.y, &teacher, &part.x, g.options, r2);
        const double acc = distill::accuracy(s.backend_forward(A_test), test.y);
        const double val = distill::accuracy(s.backend_forward(A_val), data.val.y);
        json row = {{"name", g.name}, {"fraction", f}, {"seed", seed}, {"val_accuracy", val}, {"accuracy", acc},
                    {"final_ntk_distance", rep.epochs.empty() ? 0.0 : rep.epochs.back().ntk_distance},
                    {"final_train_acc", rep.epochs.empty() ? 0.0 : rep.epochs.back().accuracy}};
        if (log) log(row.dump());
        rows.push_back(row);
      }
  }
  return {{"profile", profile}, {"none", res.at("accuracy").at("none")}, {"rows", rows}};
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
