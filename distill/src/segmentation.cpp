#include "hilo/distill/segmentation.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "hilo/distill/jobs.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/io/file_io.hpp"
#include "hilo/io/options_json.hpp"

namespace hilo::distill {
namespace fs = std::filesystem;

std::string SceneOptions::validate() const {
  if (canvas < 2) return "scenes.canvas must be >= 2, got " + std::to_string(canvas);
  if (digit_size < 1 || digit_size > canvas)
    return "scenes.digit_size must be in [1, canvas = " + std::to_string(canvas) + "], got " +
           std::to_string(digit_size);
  if (min_digits < 1 || max_digits < min_digits)
    return "scenes: need 1 <= min_digits <= max_digits, got " + std::to_string(min_digits) + " and " +
           std::to_string(max_digits);
  if (!(threshold > 0 && threshold < 1)) return "scenes.threshold must be in (0, 1)";
  if (train < 1 || validation < 1 || test < 1) return "scenes: train, validation and test must be >= 1";
  return {};
}

Scenes compose_scenes(const Dataset& digits, int n, const SceneOptions& o, std::mt19937_64& rng) {
  io::require_valid(o.validate());
  if (n < 0) throw std::invalid_argument("compose_scenes: n must be >= 0");
  if (digits.size() == 0) throw std::invalid_argument("compose_scenes: no digits to compose scenes from");
  const Shape in = digits.shape;
  if (in.c != 1 || in.h != in.w)
    throw std::invalid_argument("compose_scenes: digits must be grey and square, got " + std::to_string(in.c) + "×" +
                                std::to_string(in.h) + "×" + std::to_string(in.w));
  if (in.h % o.digit_size != 0)
    throw std::invalid_argument("compose_scenes: digit_size " + std::to_string(o.digit_size) +
                                " does not divide the digits' side " + std::to_string(in.h));
  const int S = o.canvas, d = o.digit_size, f = in.h / d;
  Scenes s;
  s.shape = {1, S, S};
  s.x = Mat<float>::Zero(n, S * S);
  s.labels = LabelMap::Constant(n, S * S, static_cast<std::uint8_t>(kSegBackground));
  std::uniform_int_distribution<int> count(o.min_digits, o.max_digits), pos(0, S - d);
  std::uniform_int_distribution<std::size_t> pick(0, digits.size() - 1);
  const float inv = 1.0f / static_cast<float>(f * f);
  for (int i = 0; i < n; ++i) {
    std::vector<std::pair<int, int>> boxes;
    const int want = count(rng);
    for (int k = 0; k < want; ++k) {
      const std::size_t idx = pick(rng);
      int r0 = -1, c0 = -1;
      for (int attempt = 0; attempt < 100 && r0 < 0; ++attempt) {
        const int r = pos(rng), c = pos(rng);
        const bool free = std::none_of(boxes.begin(), boxes.end(), [&](const auto& b) {
          return r < b.first + d && b.first < r + d && c < b.second + d && b.second < c + d;
        });
        if (free) r0 = r, c0 = c;
      }
      if (r0 < 0) continue;
      boxes.emplace_back(r0, c0);
      const auto label = static_cast<std::uint8_t>(digits.y[idx]);
      const float* src = digits.x.row(static_cast<Eigen::Index>(idx)).data();
      for (int y = 0; y < d; ++y)
        for (int x = 0; x < d; ++x) {
          float v = 0;
          for (int a = 0; a < f; ++a)
            for (int b = 0; b < f; ++b) v += src[(y * f + a) * in.w + x * f + b];
          v *= inv;
          const int p = (r0 + y) * S + c0 + x;
          s.x(i, p) = v;
          if (v >= o.threshold) s.labels(i, p) = label;
        }
    }
  }
  return s;
}

namespace {
LabelMap label_rows(const LabelMap& y, std::span<const int> rows) {
  LabelMap out(static_cast<Eigen::Index>(rows.size()), y.cols());
  for (std::size_t i = 0; i < rows.size(); ++i) out.row(static_cast<Eigen::Index>(i)) = y.row(rows[i]);
  return out;
}
}  // namespace

Scenes take(const Scenes& s, std::span<const int> rows) {
  Scenes out;
  out.shape = s.shape;
  out.x = take_rows(s.x, rows);
  out.labels = label_rows(s.labels, rows);
  return out;
}

// ---------------------------------------------------------------- per-pixel losses and metrics
namespace {
void check_pixels(Eigen::Index logit_cols, const LabelMap& labels, Eigen::Index rows, int classes, const char* what) {
  if (classes < 1 || labels.rows() != rows || logit_cols != labels.cols() * classes)
    throw std::invalid_argument(std::string(what) + ": logits " + std::to_string(rows) + " × " +
                                std::to_string(logit_cols) + " do not match labels " + std::to_string(labels.rows()) +
                                " × " + std::to_string(labels.cols()) + " with " + std::to_string(classes) +
                                " classes");
}
// Softmax over the classes of every pixel at temperature T: same layout as the logits.
template <typename T>
Mat<T> pixel_softmax(const Mat<T>& z, int C, Eigen::Index HW, double temperature) {
  Mat<T> p(z.rows(), z.cols());
  const T invT = static_cast<T>(1.0 / temperature);
  for (Eigen::Index b = 0; b < z.rows(); ++b)
    for (Eigen::Index q = 0; q < HW; ++q) {
      T m = -std::numeric_limits<T>::infinity();
      for (int c = 0; c < C; ++c) m = std::max(m, z(b, c * HW + q) * invT);
      T sum = 0;
      for (int c = 0; c < C; ++c) sum += (p(b, c * HW + q) = std::exp(z(b, c * HW + q) * invT - m));
      for (int c = 0; c < C; ++c) p(b, c * HW + q) /= sum;
    }
  return p;
}
}  // namespace

template <typename T>
double pixel_cross_entropy(const Mat<T>& logits, const LabelMap& labels, int classes, Mat<T>* dlogits) {
  check_pixels(logits.cols(), labels, logits.rows(), classes, "pixel_cross_entropy");
  const Eigen::Index HW = labels.cols();
  const Mat<T> p = pixel_softmax(logits, classes, HW, 1.0);
  double loss = 0;
  for (Eigen::Index b = 0; b < logits.rows(); ++b)
    for (Eigen::Index q = 0; q < HW; ++q)
      loss -= std::log(std::max(static_cast<double>(p(b, labels(b, q) * HW + q)), 1e-300));
  const double n = static_cast<double>(logits.rows() * HW);
  if (dlogits) {
    *dlogits = p;
    for (Eigen::Index b = 0; b < logits.rows(); ++b)
      for (Eigen::Index q = 0; q < HW; ++q) (*dlogits)(b, labels(b, q) * HW + q) -= T(1);
    *dlogits *= static_cast<T>(1.0 / n);
  }
  return loss / n;
}

template <typename T>
double pixel_kd(const Mat<T>& student, const Mat<T>& teacher, const LabelMap& labels, int classes,
                double temperature, double alpha, Mat<T>* dlogits) {
  check_pixels(student.cols(), labels, student.rows(), classes, "pixel_kd");
  if (teacher.rows() != student.rows() || teacher.cols() != student.cols())
    throw std::invalid_argument("pixel_kd: teacher and student logits differ in shape");
  if (!(temperature > 0) || !(alpha >= 0 && alpha <= 1))
    throw std::invalid_argument("pixel_kd: need temperature > 0 and alpha in [0, 1]");
  const Eigen::Index HW = labels.cols();
  Mat<T> dce;
  const double ce = pixel_cross_entropy(student, labels, classes, dlogits ? &dce : nullptr);
  const Mat<T> ps = pixel_softmax(student, classes, HW, temperature), pt = pixel_softmax(teacher, classes, HW, temperature);
  double kl = 0;
  for (Eigen::Index i = 0; i < ps.size(); ++i) {
    const double a = pt.data()[i], b = ps.data()[i];
    if (a > 0) kl += a * (std::log(a) - std::log(std::max(b, 1e-300)));
  }
  const double n = static_cast<double>(student.rows() * HW), t2 = temperature * temperature;
  if (dlogits) *dlogits = static_cast<T>(1 - alpha) * dce + static_cast<T>(alpha * temperature / n) * (ps - pt);
  return (1 - alpha) * ce + alpha * t2 * kl / n;
}

template <typename T>
LabelMap pixel_argmax(const Mat<T>& logits, int classes) {
  if (classes < 1 || logits.cols() % classes != 0)
    throw std::invalid_argument("pixel_argmax: " + std::to_string(logits.cols()) + " columns are not " +
                                std::to_string(classes) + " maps");
  const Eigen::Index HW = logits.cols() / classes;
  LabelMap out(logits.rows(), HW);
  for (Eigen::Index b = 0; b < logits.rows(); ++b)
    for (Eigen::Index q = 0; q < HW; ++q) {
      int best = 0;
      for (int c = 1; c < classes; ++c)
        if (logits(b, c * HW + q) > logits(b, best * HW + q)) best = c;
      out(b, q) = static_cast<std::uint8_t>(best);
    }
  return out;
}

nlohmann::json IouReport::to_json() const {
  nlohmann::json pc = nlohmann::json::array();
  for (double v : per_class) pc.push_back(std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v));
  return {{"mean_iou", mean_iou}, {"pixel_accuracy", pixel_accuracy}, {"per_class_iou", pc}};
}

IouReport mean_iou(const LabelMap& predicted, const LabelMap& truth, int classes) {
  if (predicted.rows() != truth.rows() || predicted.cols() != truth.cols())
    throw std::invalid_argument("mean_iou: predicted and true label maps differ in shape");
  std::vector<double> tp(classes, 0), fp(classes, 0), fn(classes, 0);
  double correct = 0;
  for (Eigen::Index i = 0; i < truth.size(); ++i) {
    const int p = predicted.data()[i], t = truth.data()[i];
    if (p >= classes || t >= classes) throw std::invalid_argument("mean_iou: a label is not below the class count");
    if (p == t) {
      tp[t] += 1;
      correct += 1;
    } else {
      fp[p] += 1;
      fn[t] += 1;
    }
  }
  IouReport r;
  double sum = 0;
  int n = 0;
  for (int c = 0; c < classes; ++c) {
    const double u = tp[c] + fp[c] + fn[c];
    r.per_class.push_back(u > 0 ? tp[c] / u : std::numeric_limits<double>::quiet_NaN());
    if (u > 0) sum += tp[c] / u, ++n;
  }
  r.mean_iou = n ? sum / n : 0.0;
  r.pixel_accuracy = truth.size() ? correct / static_cast<double>(truth.size()) : 0.0;
  return r;
}

template <typename T>
MatD head_ntk(const Mat<T>& h, int classes, int hw) {
  const MatD a = h.template cast<double>();
  MatD theta = a * a.transpose();
  theta.array() += static_cast<double>(hw);
  return static_cast<double>(classes) * theta;
}

// ---------------------------------------------------------------- networks
std::string SegTeacherArch::validate() const {
  if (channels.empty()) return "teacher.channels must not be empty";
  for (int c : channels)
    if (c < 1) return "teacher.channels must be positive";
  return {};
}

Sequential<float> make_seg_teacher(const SegTeacherArch& a, Shape in, int classes) {
  io::require_valid(a.validate());
  const int down = 1 << a.channels.size();
  if (in.h % down != 0 || in.w % down != 0)
    throw std::invalid_argument("segmentation teacher: " + std::to_string(a.channels.size()) +
                                " pooling stages need the canvas divisible by " + std::to_string(down));
  Sequential<float> net(in);
  for (int c : a.channels) net.conv(c, 3, 1).batchnorm().relu().maxpool(2);
  net.conv(a.channels.back(), 3, 1).relu();
  for (auto it = a.channels.rbegin(); it != a.channels.rend(); ++it) net.upsample(2).conv(*it, 3, 1).relu();
  net.conv(classes, 1, 0);
  return net;
}

std::string SegStudentArch::validate() const {
  if (kernels < 1) return "student.kernels must be >= 1";
  if (kernel_size < 1 || kernel_size % 2 == 0) return "student.kernel_size must be odd and >= 1";
  if (pool < 1) return "student.pool must be >= 1";
  if (width < 1) return "student.width must be >= 1";
  return {};
}

Sequential<float> make_seg_student(const SegStudentArch& a, Shape in, int classes) {
  io::require_valid(a.validate());
  if (in.h % a.pool != 0 || in.w % a.pool != 0)
    throw std::invalid_argument("segmentation student: pool " + std::to_string(a.pool) + " does not divide the canvas " +
                                std::to_string(in.h) + "×" + std::to_string(in.w));
  Sequential<float> net(in);
  net.nonneg_conv(a.kernels, a.kernel_size, a.kernel_size / 2);
  if (a.pool > 1) net.avgpool(a.pool);
  net.batchnorm().conv(a.width, 3, 1).relu().conv(a.width, 3, 1).relu();
  if (a.pool > 1) net.upsample(a.pool);
  net.conv(a.width, 3, 1).relu().conv(classes, 1, 0);
  return net;
}

// ---------------------------------------------------------------- training pieces
template <typename T>
Mat<T> SegModel<T>::forward(std::span<const int> rows, std::mt19937_64&) {
  return net_.forward(take_rows(x_, rows), true);
}

template <typename T>
double SegModel<T>::batch_accuracy(const Mat<T>& logits, const Batch<T>& b) {
  const LabelMap p = pixel_argmax(logits, classes_);
  double hit = 0;
  for (std::size_t i = 0; i < b.rows.size(); ++i)
    hit += (p.row(static_cast<Eigen::Index>(i)).array() == labels_.row(b.rows[i]).array()).count();
  return hit / static_cast<double>(p.size());
}

template <typename T>
std::vector<Mat<T>*> SegModel<T>::state() {
  return net_.state();
}

namespace {
// The last layer must be the per-pixel classifier: a 1 × 1 convolution.
template <typename T>
void require_head(const Sequential<T>& net, const char* who) {
  if (net.size() == 0 || net.layers().back()->type() != "conv2d" || net.layers().back()->config().at("k") != 1)
    throw std::invalid_argument(std::string("HeadNtkLoss: the ") + who + " must end in a 1×1 convolution");
}
}  // namespace

template <typename T>
void PixelTaskLoss<T>::add_output_terms(const Batch<T>& b, StepTerms<T>& t) {
  Mat<T> d;
  const double ce = pixel_cross_entropy(b.logits, label_rows(y_, b.rows), c_, &d);
  t.add_dlogits(static_cast<T>(w_) * d);
  t.loss += w_ * ce;
}

template <typename T>
void PixelKdLoss<T>::add_output_terms(const Batch<T>& b, StepTerms<T>& t) {
  Mat<T> d;
  const double l = pixel_kd(b.logits, take_rows(t_, b.rows), label_rows(y_, b.rows), c_, T_, alpha_, &d);
  t.add_dlogits(static_cast<T>(w_) * d);
  t.loss += w_ * l;
}

template <typename T>
HeadNtkLoss<T>::HeadNtkLoss(Sequential<T>& student, Sequential<T>& teacher, const Mat<T>& x, KernelDistance distance,
                            double weight, int rows)
    : s_(student), t_(teacher), x_(x), d_(std::move(distance)), w_(weight), rows_(rows) {
  io::require_valid(d_.validate());
  require_head(student, "student");
  require_head(teacher, "teacher");
  if (student.out_shape() != teacher.out_shape())
    throw std::invalid_argument("HeadNtkLoss: teacher and student outputs differ in shape");
  if (rows < 2) throw std::invalid_argument("HeadNtkLoss: the NTK batch needs at least 2 rows");
  if (!(weight >= 0)) throw std::invalid_argument("HeadNtkLoss: weight must be >= 0");
}

template <typename T>
double HeadNtkLoss<T>::value(const Mat<T>& xs, bool grad) {
  const Shape o = s_.out_shape();
  const int hw = o.h * o.w;
  const Mat<T> ht = t_.forward_range(xs, 0, t_.size() - 1, false);
  const Mat<T> hs = s_.forward_range(xs, 0, s_.size() - 1, false);
  const MatD theta_t = head_ntk(ht, o.c, hw), theta_s = head_ntk(hs, o.c, hw);
  const double d = d_.value(theta_t, theta_s);
  if (grad) {
    const MatD g = d_.grad(theta_t, theta_s);
    const MatD dh = (w_ * o.c) * (g + g.transpose()) * hs.template cast<double>();
    s_.backward_range(dh.template cast<T>(), 0, s_.size() - 1);
  }
  return d;
}

template <typename T>
void HeadNtkLoss<T>::add_parameter_terms(const Batch<T>& b, StepTerms<T>& t) {
  const auto n = std::min<std::size_t>(static_cast<std::size_t>(rows_), b.rows.size());
  if (n < 2) return;
  const double d = value(take_rows(x_, b.rows.first(n)), true);
  t.loss += w_ * d;
  distance_.add(d);
}

template <typename T>
void HeadNtkLoss<T>::close_epoch(nlohmann::json& extra) {
  distance_.close(extra, "ntk_distance");
}

#define HILO_INST(T)                                                                                          \
  template double pixel_cross_entropy<T>(const Mat<T>&, const LabelMap&, int, Mat<T>*);                     \
  template double pixel_kd<T>(const Mat<T>&, const Mat<T>&, const LabelMap&, int, double, double, Mat<T>*); \
  template LabelMap pixel_argmax<T>(const Mat<T>&, int);                                                    \
  template MatD head_ntk<T>(const Mat<T>&, int, int);                                                       \
  template class SegModel<T>;                                                                               \
  template class PixelTaskLoss<T>;                                                                          \
  template class PixelKdLoss<T>;                                                                            \
  template class HeadNtkLoss<T>;
HILO_INST(float)
HILO_INST(double)
#undef HILO_INST

// ---------------------------------------------------------------- the job
SegmentJob SegmentJob::from_json(const nlohmann::json& j) {
  const std::string section = "segment job";
  return io::read_valid_options<SegmentJob>(job_fields(j, "segment", section), section);
}

std::string SegmentJob::validate() const {
  if (auto e = data.validate(); !e.empty()) return e;
  if (auto e = scenes.validate(); !e.empty()) return e;
  if (auto e = teacher.validate(); !e.empty()) return e;
  if (auto e = teacher_train.validate(); !e.empty()) return "teacher_train: " + e;
  if (auto e = student.validate(); !e.empty()) return e;
  if (auto e = student_train.validate(); !e.empty()) return "student_train: " + e;
  if (methods.empty()) return "methods must not be empty";
  for (const auto& m : methods)
    if (m != "none" && m != "kd" && m != "ntkd") return "methods: unknown method '" + m + "' (none, kd, ntkd)";
  if (!(kd.temperature > 0)) return "kd.temperature must be > 0";
  if (!(kd.alpha >= 0 && kd.alpha <= 1)) return "kd.alpha must be in [0, 1]";
  if (!(ntkd.weight >= 0)) return "ntkd.weight must be >= 0";
  if (ntkd.rows < 2) return "ntkd.rows must be >= 2";
  if (auto e = KernelDistance{ntkd.distance}.validate(); !e.empty()) return "ntkd.distance: " + e;
  if (seeds.empty()) return "seeds must not be empty";
  if (out_dir.empty()) return "out_dir must not be empty";
  return {};
}

namespace {
IouReport iou_of(Sequential<float>& net, const Scenes& s) {
  return mean_iou(pixel_argmax(predict(net, s.x), kSegClasses), s.labels, kSegClasses);
}
double miou_of(Sequential<float>& net, const Scenes& s) { return iou_of(net, s).mean_iou; }

struct RunOut {
  History history;
  double seconds = 0;
};

// Trains `net` on the training scenes by `losses` with the options' loop; per epoch the validation mIoU
// (the convergence rule's measure) and the test mIoU (report only).
RunOut train_seg(Sequential<float>& net, SegModel<float>& model, const Losses<float>& losses, const Scenes& train,
                 const Scenes& val, const Scenes& test, const TrainOptions& o, const std::string& name,
                 std::mt19937_64& rng, const JobControl& ctl) {
  LoopOptions lo = loop_options(o, name);
  lo.epoch_extra = [&](nlohmann::json& extra) { extra["test_miou"] = miou_of(net, test); };
  const std::vector<int> rows(train.size(), 0);  // one entry per scene: the losses read the label maps
  const auto t0 = std::chrono::steady_clock::now();
  RunOut r;
  r.history = train_loop<float>(model, losses, rows, lo, rng, [&] { return miou_of(net, val); }, ctl);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

nlohmann::json run_json(Sequential<float>& net, const Scenes& test, const RunOut& r) {
  nlohmann::json j = iou_of(net, test).to_json();
  nlohmann::json val = nlohmann::json::array(), tst = nlohmann::json::array(), secs = nlohmann::json::array();
  double cum = 0;
  for (const auto& e : r.history.epochs) {
    val.push_back(e.val_acc);
    tst.push_back(e.extra.value("test_miou", std::numeric_limits<double>::quiet_NaN()));
    cum += e.seconds;
    secs.push_back(cum);
  }
  j["epochs_run"] = r.history.epochs.size();
  j["best_epoch"] = r.history.best_epoch;
  j["stop_reason"] = r.history.stop_reason;
  j["train_seconds"] = r.seconds;
  j["val_miou_per_epoch"] = val;
  j["test_miou_per_epoch"] = tst;
  j["cumulative_seconds_per_epoch"] = secs;
  j["num_params"] = net.num_params();
  if (!r.history.epochs.empty() && r.history.epochs.back().extra.contains("ntk_distance")) {
    nlohmann::json d = nlohmann::json::array();
    for (const auto& e : r.history.epochs) d.push_back(e.extra.value("ntk_distance", 0.0));
    j["ntk_distance_per_epoch"] = d;
  }
  return j;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}
double sd_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}
}  // namespace

SegmentResult run_segment(const SegmentJob& job, const JobControl& ctl, const ImageDecoder& decode) {
  io::require_valid(job.validate());
  const Splits sp = load_splits(job.data, decode);
  if (sp.train.num_classes != 10 || sp.val.size() == 0 || sp.test.size() == 0)
    throw std::invalid_argument("segment job: needs a 10-class digit dataset with validation and test splits");
  std::mt19937_64 scene_rng(job.teacher_train.seed);
  const Scenes train = compose_scenes(sp.train, job.scenes.train, job.scenes, scene_rng);
  const Scenes val = compose_scenes(sp.val, job.scenes.validation, job.scenes, scene_rng);
  const Scenes test = compose_scenes(sp.test, job.scenes.test, job.scenes, scene_rng);
  fs::create_directories(job.out_dir);

  SegmentResult res;
  nlohmann::json& rep = res.report;
  rep["command"] = "segment";
  rep["data"] = job.data.name;
  rep["scenes"] = job.scenes;
  double bg = 0;
  for (Eigen::Index i = 0; i < train.labels.size(); ++i) bg += train.labels.data()[i] == kSegBackground;
  rep["background_fraction"] = bg / static_cast<double>(train.labels.size());
  rep["cancelled"] = false;
  const int ex = std::min<int>(8, static_cast<int>(test.size()));
  std::vector<int> ex_rows(ex);
  for (int i = 0; i < ex; ++i) ex_rows[i] = i;
  res.examples = take(test, ex_rows);

  // ---- teacher
  Sequential<float> teacher = make_seg_teacher(job.teacher, train.shape, kSegClasses);
  {
    std::mt19937_64 rng(job.teacher_train.seed);
    init_he(teacher, rng);
    SegModel<float> model(teacher, train.x, train.labels, kSegClasses);
    Losses<float> losses;
    losses.push_back(std::make_unique<PixelTaskLoss<float>>(train.labels, kSegClasses));
    const RunOut r = train_seg(teacher, model, losses, train, val, test, job.teacher_train, "segment-teacher", rng, ctl);
    rep["teacher"] = run_json(teacher, test, r);
    if (r.history.cancelled) {
      rep["cancelled"] = true;
      return res;
    }
    write_model(fs::path(job.out_dir) / "teacher.hilo",
                sequential_to_model(teacher, "segmentation-teacher", {{"scenes", job.scenes}}));
  }
  res.predictions.emplace_back("teacher", pixel_argmax(predict(teacher, res.examples.x), kSegClasses));
  const Mat<float> teacher_logits = predict(teacher, train.x);

  // ---- students: every method from the same initialisation per seed
  nlohmann::json runs = nlohmann::json::object();
  for (const auto& method : job.methods) {
    for (std::uint64_t seed : job.seeds) {
      Sequential<float> net = make_seg_student(job.student, train.shape, kSegClasses);
      std::mt19937_64 rng(seed);
      init_he(net, rng);
      init_optical(net, rng);
      SegModel<float> model(net, train.x, train.labels, kSegClasses);
      Losses<float> losses;
      if (method == "kd")
        losses.push_back(std::make_unique<PixelKdLoss<float>>(teacher_logits, train.labels, kSegClasses,
                                                              job.kd.temperature, job.kd.alpha));
      else
        losses.push_back(std::make_unique<PixelTaskLoss<float>>(train.labels, kSegClasses));
      if (method == "ntkd")
        losses.push_back(std::make_unique<HeadNtkLoss<float>>(net, teacher, train.x, KernelDistance{job.ntkd.distance},
                                                              job.ntkd.weight, job.ntkd.rows));
      TrainOptions o = job.student_train;
      o.seed = seed;
      const RunOut r = train_seg(net, model, losses, train, val, test, o, "segment-" + method, rng, ctl);
      runs[method][std::to_string(seed)] = run_json(net, test, r);
      if (r.history.cancelled) {
        rep["cancelled"] = true;
        rep["runs"] = runs;
        return res;
      }
      write_model(fs::path(job.out_dir) / ("student_" + method + "_seed" + std::to_string(seed) + ".hilo"),
                  sequential_to_model(net, "segmentation-student", {{"method", method}, {"seed", seed}}));
      if (seed == job.seeds.front())
        res.predictions.emplace_back(method, pixel_argmax(predict(net, res.examples.x), kSegClasses));
    }
  }
  rep["runs"] = runs;

  // ---- summary: at convergence (each run's best validation epoch), at equal epochs, at equal time
  nlohmann::json summary = nlohmann::json::object();
  for (const auto& method : job.methods) {
    std::vector<double> conv, eq_epoch, eq_time, epochs, secs;
    for (std::uint64_t seed : job.seeds) {
      const auto& r = runs[method][std::to_string(seed)];
      const auto& base = runs[job.methods.front()][std::to_string(seed)];
      conv.push_back(r["mean_iou"]);
      epochs.push_back(r["epochs_run"]);
      secs.push_back(r["train_seconds"]);
      // equal epochs: the test mIoU after as many epochs as the shortest run of this seed
      std::size_t e_min = std::numeric_limits<std::size_t>::max();
      for (const auto& m : job.methods) e_min = std::min<std::size_t>(e_min, runs[m][std::to_string(seed)]["epochs_run"]);
      eq_epoch.push_back(r["test_miou_per_epoch"][e_min - 1]);
      // equal time: the last epoch finished within the first method's training time (of epochs' seconds)
      const double budget = base["cumulative_seconds_per_epoch"].back();
      std::size_t k = 0;
      while (k + 1 < r["cumulative_seconds_per_epoch"].size() && r["cumulative_seconds_per_epoch"][k + 1] <= budget) ++k;
      eq_time.push_back(r["test_miou_per_epoch"][k]);
    }
    summary[method] = {{"mean_iou", mean_of(conv)},      {"mean_iou_sd", sd_of(conv)},
                       {"equal_epoch_miou", mean_of(eq_epoch)}, {"equal_time_miou", mean_of(eq_time)},
                       {"epochs", mean_of(epochs)},       {"train_seconds", mean_of(secs)},
                       {"per_seed_miou", conv}};
  }
  rep["summary"] = summary;
  rep["equal_time_reference"] = job.methods.front();
  io::write_json_atomic(fs::path(job.out_dir) / "report.json", rep);
  return res;
}

}  // namespace hilo::distill
