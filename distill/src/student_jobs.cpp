#include "hilo/distill/student_jobs.hpp"

#include <Eigen/Core>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <type_traits>

#include "hilo/distill/kernel_regression.hpp"
#include "hilo/distill/losses.hpp"
#include "hilo/io/file_io.hpp"
#include "hilo/io/options_json.hpp"
#include "hilo/distill/model_io.hpp"

namespace hilo::distill {
namespace fs = std::filesystem;

std::string SharedAdaptOptions::validate() const {
  if (!(lr_scale >= 0 && lr_scale <= 1))
    return "distill.shared_adapt.lr_scale must be in [0, 1], got " + std::to_string(lr_scale);
  if (!(keep_weight >= 0)) return "distill.shared_adapt.keep_weight must be >= 0, got " + std::to_string(keep_weight);
  return {};
}

std::string DistillOptions::validate() const {
  static const std::set<std::string> methods{"none", "kd", "gd", "shared", "ntkd"};
  if (!methods.count(method))
    return "distill.method must be one of none, kd, gd, shared, ntkd; got \"" + method + "\"";
  if (!(temperature > 0)) return "distill.temperature must be > 0";
  if (kd_alpha < 0 || kd_alpha > 1) return "distill.kd_alpha must be in [0, 1]";
  if (gd_lambda < 0 || gd_lambda > 1) return "distill.gd_lambda must be in [0, 1]";
  if (gd_input_noise < 0) return "distill.gd_input_noise must be >= 0";
  if (shared_weight < 0 || shared_feature_weight < 0) return "distill.shared_* weights must be >= 0";
  if (shared_test_head != "own" && shared_test_head != "shared")
    return "distill.shared_test_head must be \"own\" or \"shared\", got \"" + shared_test_head + "\"";
  if (shared_test_head == "shared" && method != "shared")
    return "distill.shared_test_head \"shared\" requires distill.method \"shared\", got \"" + method + "\"";
  if (auto e = shared_adapt.validate(); !e.empty()) return e;
  if (shared_adapt.enabled && method != "shared")
    return "distill.shared_adapt.enabled requires distill.method \"shared\", got \"" + method + "\"";
  if (shared_adapt.enabled && shared_test_head != "shared")
    return "distill.shared_adapt.enabled requires distill.shared_test_head \"shared\" (the adapted head is the one "
           "the student predicts with), got \"" + shared_test_head + "\"";
  if (ntk_alpha < 0 || ntk_beta < 0) return "distill.ntk_alpha and ntk_beta must be >= 0";
  if (ntk_subbatch < 2) return "distill.ntk_subbatch must be >= 2";
  if (ntk_every < 1) return "distill.ntk_every must be >= 1";
  if (ntk_cache_batches < 0) return "distill.ntk_cache_batches must be >= 0";
  if (ntk_teacher != "exact" && ntk_teacher != "probe")
    return "distill.ntk_teacher must be \"exact\" or \"probe\", got \"" + ntk_teacher + "\"";
  if (ntk_probes < 1) return "distill.ntk_probes must be >= 1";
  if (ntk_param_set != "all" && ntk_param_set != "optical" && ntk_param_set != "backend")
    return "distill.ntk_param_set must be \"all\", \"optical\" or \"backend\", got \"" + ntk_param_set + "\"";
  if (auto e = ntk_distance.validate(); !e.empty()) return e;
  if (precision != "float64" && precision != "float32")
    return "distill.precision must be \"float64\" or \"float32\", got \"" + precision + "\"";
  if (precision == "float32" && method != "none" && method != "kd" && method != "ntkd")
    return "distill.precision \"float32\" runs methods none, kd and ntkd; got method \"" + method + "\"";
  return {};
}

DistillOptions distill_options_from_json(const nlohmann::json& j) {
  DistillOptions d = io::read_valid_options<DistillOptions>(j, "distill");
  return d;
}

TrainOptions student_train_defaults() {
  TrainOptions o;
  // 30 epochs annealed with the inputs shifted by up to ±2 px (docs/distill.md, "Shifted inputs and a
  // teacher that sees them"): without shifts the student memorises the training digits by epoch 8.
  o.epochs = 30;
  o.augment.shift_px = 2;
  o.batch_size = 64;
  o.optimizer.kind = "adam";
  o.optimizer.lr = 1e-2;
  o.schedule = "cosine";
  return o;
}

DistillJob DistillJob::from_json(const nlohmann::json& j) {
  const std::string section = "distill job";
  DistillJob d = io::read_valid_options<DistillJob>(job_fields(j, "distill", section), section);
  return d;
}

std::string DistillJob::validate() const {
  if (teacher.empty() && distill.method != "none")
    return "distill job.teacher (path of a teacher model file) is required for method \"" + distill.method + "\"";
  if (auto e = data.validate(); !e.empty()) return e;
  if (auto e = student.validate(); !e.empty()) return e;
  if (auto e = distill.validate(); !e.empty()) return e;
  if (auto e = train.validate(); !e.empty()) return e;
  return {};
}

template <typename T>
MatD predict(BasicOpticalStudent<T>& s, const Mat<float>& x, int batch) {
  MatD out(x.rows(), s.classes());
  for (Eigen::Index i = 0; i < x.rows(); i += batch) {
    const Eigen::Index n = std::min<Eigen::Index>(batch, x.rows() - i);
    out.middleRows(i, n) = s.forward(x.middleRows(i, n).template cast<T>(), false).template cast<double>();
  }
  return out;
}
template MatD predict<double>(BasicOpticalStudent<double>&, const Mat<float>&, int);
template MatD predict<float>(BasicOpticalStudent<float>&, const Mat<float>&, int);

MatD student_features(OpticalStudent& s, const Mat<float>& x, Eigen::Index limit, int batch) {
  const Eigen::Index n = limit > 0 ? std::min(limit, x.rows()) : x.rows();
  MatD a(n, s.feature_dim());
  for (Eigen::Index i = 0; i < n; i += batch) {
    const Eigen::Index m = std::min<Eigen::Index>(batch, n - i);
    a.middleRows(i, m) = s.features(x.middleRows(i, m).cast<double>());
  }
  return a;
}

namespace {
using AugmentedHook = std::function<void(std::span<const int> rows, const MatD& x)>;

// The student as a loop's model: rows of the training split, the generalized-distillation input noise
// (x + σ_in·N(0,1), clipped at 0; σ_in = 0: none) and the camera noise, in that order, from the loop's rng.
// The input is prepared in double and handed to the student in its arithmetic T.
template <typename T>
class StudentModel final : public TrainModel<T> {
 public:
  // on_augmented (may be empty) sees each batch's rows and augmented images before any noise is added.
  StudentModel(BasicOpticalStudent<T>& s, const Dataset& train, double input_noise, const InputAugment& augment,
               AugmentedHook on_augmented)
      : s_(s), train_(train), input_noise_(input_noise), augment_(augment), on_augmented_(std::move(on_augmented)) {}
  std::vector<Param<T>> params() override { return s_.params(); }
  Mat<T> forward(std::span<const int> rows, std::mt19937_64& rng) override {
    MatD x = take(train_, rows).x.cast<double>();
    augment_inputs(x, train_.shape, augment_, rng);
    if (on_augmented_) on_augmented_(rows, x);
    if (input_noise_ > 0) x = x.unaryExpr([&](double v) { return std::max(0.0, v + input_noise_ * gauss_(rng)); });
    return s_.forward(x.template cast<T>(), true, &rng);
  }
  void backward(const StepTerms<T>& t) override {
    s_.backward(t.dlogits, t.dhidden.size() ? &t.dhidden : nullptr);
  }

 private:
  BasicOpticalStudent<T>& s_;
  const Dataset& train_;
  double input_noise_;
  InputAugment augment_;
  AugmentedHook on_augmented_;
  std::normal_distribution<double> gauss_{0.0, 1.0};
};

// Student logits through the shared path: the student's hidden features (evaluation forward), then the
// projector and the teacher's (current) head.
MatD predict_shared(OpticalStudent& s, const SharedClassifierLoss& shared, const Mat<float>& x) {
  MatD out(x.rows(), s.classes());
  for (Eigen::Index i = 0; i < x.rows(); i += kEvalBatch) {
    const Eigen::Index n = std::min<Eigen::Index>(kEvalBatch, x.rows() - i);
    (void)s.forward(x.middleRows(i, n).cast<double>(), false);
    out.middleRows(i, n) = shared.student_logits(s.hidden());
  }
  return out;
}

// The teacher's own accuracy through its head as the shared classifier holds it (adapted or not): the
// penultimate features of the validation and test splits are computed once (the body never changes).
class SharedAdaptReport {
 public:
  SharedAdaptReport() = default;
  SharedAdaptReport(Sequential<float>& teacher, const Splits& data, std::size_t head, const SharedClassifierLoss& l)
      : val_(features(teacher, data.val, head)), test_(features(teacher, data.test, head)) {
    val0_ = acc(l, val_);
    test0_ = acc(l, test_);
  }
  double teacher_test_acc(const SharedClassifierLoss& l) const { return acc(l, test_); }
  // summary: teacher_{val,test}_acc_{before,after} (NaN for an empty split).
  void summarise(const SharedClassifierLoss& l, nlohmann::json& summary) const {
    summary["teacher_val_acc_before"] = val0_;
    summary["teacher_val_acc_after"] = acc(l, val_);
    summary["teacher_test_acc_before"] = test0_;
    summary["teacher_test_acc_after"] = acc(l, test_);
  }

 private:
  struct Features {
    MatD f;
    std::vector<int> y;
  };
  static Features features(Sequential<float>& teacher, const Dataset& d, std::size_t head) {
    Features out{MatD(d.x.rows(), teacher.layer(head).params()[0].value->cols()), d.y};
    for (Eigen::Index i = 0; i < d.x.rows(); i += kEvalBatch) {
      const Eigen::Index n = std::min<Eigen::Index>(kEvalBatch, d.x.rows() - i);
      out.f.middleRows(i, n) = teacher.forward_range(d.x.middleRows(i, n), 0, head, false).cast<double>();
    }
    return out;
  }
  static double acc(const SharedClassifierLoss& l, const Features& s) {
    return s.y.empty() ? std::nan("") : accuracy(l.teacher_logits(s.f), s.y);
  }
  Features val_, test_;
  double val0_ = 0, test0_ = 0;
};

// train_student's loop in the student's arithmetic T, from the initialised and standardised student:
// teacher outputs, the method's losses, train_loop. Only double runs kd, gd and shared
// (DistillOptions::validate).
template <typename T>
History fit_student(BasicOpticalStudent<T>& student, Sequential<float>& teacher, const Splits& data,
                    const DistillOptions& d, const TrainOptions& o, const JobControl& ctl, std::mt19937_64& rng) {
  const int C = student.classes();
  const std::size_t N = data.train.size();
  const bool use_kd = d.method == "kd" || (d.method == "ntkd" && d.ntk_with_kd);
  const bool need_logits = use_kd || d.method == "gd", need_feat = d.method == "shared";
  // Teacher outputs on the clean training images, once, and only those the method reads — unless every
  // step recomputes its rows on the augmented images (on_augmented below) before any loss reads them.
  const bool per_step = (need_logits || need_feat) && o.augment.enabled() && d.teacher_on_augmented;
  MatD t_logits, t_feat;
  const std::size_t head = teacher.size() - 1;
  if (need_logits) t_logits.resize(static_cast<Eigen::Index>(N), C);
  if (need_feat) t_feat.resize(static_cast<Eigen::Index>(N), teacher.layer(head).params()[0].value->cols());
  if ((need_logits || need_feat) && !per_step) {
    for (Eigen::Index i = 0; i < static_cast<Eigen::Index>(N); i += kEvalBatch) {
      const Eigen::Index n = std::min<Eigen::Index>(kEvalBatch, static_cast<Eigen::Index>(N) - i);
      const Mat<float> f = teacher.forward_range(data.train.x.middleRows(i, n), 0, head, false);
      if (need_feat) t_feat.middleRows(i, n) = f.cast<double>();
      if (need_logits) t_logits.middleRows(i, n) = teacher.forward_range(f, head, teacher.size(), false).cast<double>();
    }
  }
  // With input augmentation and distill.teacher_on_augmented, the teacher's outputs for a batch's rows are
  // recomputed on the same augmented images the student sees (function matching), before the losses read them.
  AugmentedHook on_augmented;
  if (per_step)
    on_augmented = [&](std::span<const int> rows, const MatD& x) {
      const Mat<float> f = teacher.forward_range(x.cast<float>(), 0, head, false);
      const Mat<float> z = need_logits ? teacher.forward_range(f, head, teacher.size(), false) : Mat<float>();
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto r = static_cast<Eigen::Index>(i);
        if (need_feat) t_feat.row(rows[i]) = f.row(r).cast<double>();
        if (need_logits) t_logits.row(rows[i]) = z.row(r).cast<double>();
      }
    };
  // The objective (student_jobs.hpp): NTKD scales its task or KD term by α.
  const double task_weight = d.method == "ntkd" ? d.ntk_alpha : 1.0;
  Losses<T> losses;
  SharedClassifierLoss* shared = nullptr;  // the shared-classifier term, when the method has one
  if constexpr (std::is_same_v<T, double>) {
    if (use_kd) losses.push_back(std::make_unique<KdLoss>(t_logits, d.temperature, d.kd_alpha, task_weight));
    else if (d.method == "gd") losses.push_back(std::make_unique<GdLoss>(t_logits, d.temperature, d.gd_lambda));
    else losses.push_back(std::make_unique<TaskLoss<double>>(task_weight));
    if (d.method == "shared") {
      auto hp = teacher.layer(head).params();
      auto sl = std::make_unique<SharedClassifierLoss>(student, t_feat, hp[0].value->cast<double>(),
                                                       hp[1].value->cast<double>(), d.shared_weight,
                                                       d.shared_feature_weight, rng, d.shared_adapt.enabled,
                                                       d.shared_adapt.keep_weight);
      shared = sl.get();
      losses.push_back(std::move(sl));
    }
  } else {
    if (use_kd) losses.push_back(std::make_unique<BasicKdLoss<T>>(t_logits, d.temperature, d.kd_alpha, task_weight));
    else losses.push_back(std::make_unique<TaskLoss<T>>(task_weight));
  }
  // NTK term: Θ_T on cached sub-batches (drawn and computed once) or on the head of the current batch.
  auto teacher_ntk = [&](const Mat<float>& xs) {
    return d.ntk_teacher == "probe" ? ntk_probe(teacher, xs, d.ntk_probes, rng) : ntk_exact(teacher, xs);
  };
  const ParamSet pset = param_set_from_string(d.ntk_param_set);
  std::vector<std::vector<int>> ntk_batches;
  std::vector<MatD> ntk_teacher;
  if (d.method == "ntkd" && d.ntk_cache_batches > 0) {
    std::vector<int> all(N);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    for (int b = 0; b < d.ntk_cache_batches; ++b) {
      std::vector<int> idx;
      for (int k = 0; k < d.ntk_subbatch; ++k) idx.push_back(all[(static_cast<std::size_t>(b) * d.ntk_subbatch + k) % N]);
      ntk_batches.push_back(idx);
      ntk_teacher.push_back(teacher_ntk(take(data.train, idx).x));
    }
  }
  if (d.method == "ntkd" && d.ntk_beta > 0) {
    const auto every = static_cast<std::size_t>(d.ntk_every);
    losses.push_back(std::make_unique<BasicNtkLoss<T>>(
        student, d.ntk_distance, d.ntk_beta, [&, every](const Batch<T>& b, MatD& theta_t, MatD& theta_s) {
          if (b.step % every != 0) return false;
          Mat<T> xs;
          if (!ntk_batches.empty()) {
            const std::size_t k = b.step / every % ntk_batches.size();
            xs = take(data.train, ntk_batches[k]).x.template cast<T>();
            theta_t = ntk_teacher[k];
          } else {
            const std::size_t nb = std::min<std::size_t>(static_cast<std::size_t>(d.ntk_subbatch), b.rows.size());
            const Dataset sb = take(data.train, b.rows.first(nb));
            xs = sb.x.template cast<T>();
            theta_t = teacher_ntk(sb.x);
          }
          theta_s = student.ntk(xs, pset, d.ntk_kernel_space);
          return true;
        }));
  }
  StudentModel<T> model(student, data.train, d.method == "gd" ? d.gd_input_noise : 0.0, o.augment, on_augmented);
  LoopOptions lo = loop_options(o, "distill");
  // The logits the student is judged by: its own head, or with shared_test_head "shared" the shared path.
  std::function<MatD(const Mat<float>&)> judged = [&](const Mat<float>& x) { return predict(student, x); };
  SharedAdaptReport adapt;
  if constexpr (std::is_same_v<T, double>) {
    if (shared && d.shared_test_head == "shared") {
      judged = [&student, shared](const Mat<float>& x) { return predict_shared(student, *shared, x); };
      adapt = SharedAdaptReport(teacher, data, head, *shared);
    }
    if (shared && d.shared_adapt.enabled) {
      lo.lr_scale.assign(student.params().size() + 2, 1.0);  // the student's parameters, the projector
      lo.lr_scale.insert(lo.lr_scale.end(), 2, d.shared_adapt.lr_scale);  // the teacher's head
    }
  }
  if (o.log_test_acc && data.test.size())
    lo.epoch_extra = [&](nlohmann::json& extra) {
      extra["test_acc"] = accuracy(judged(data.test.x), data.test.y);
      if (shared && d.shared_adapt.enabled) extra["teacher_test_acc"] = adapt.teacher_test_acc(*shared);
    };
  std::function<double()> validate;
  if (data.val.size()) validate = [&] { return accuracy(judged(data.val.x), data.val.y); };
  History h = train_loop<T>(model, losses, data.train.y, lo, rng, validate, ctl);
  if constexpr (std::is_same_v<T, double>) {
    if (shared && d.shared_test_head == "shared" && !h.cancelled) {
      if (data.test.size()) h.summary["own_head_test_acc"] = accuracy(predict(student, data.test.x), data.test.y);
      adapt.summarise(*shared, h.summary);
      auto [w2, b2] = shared->folded();
      student.w2() = w2;
      student.b2() = b2;
    }
  }
  return h;
}
}  // namespace

History train_student(OpticalStudent& student, Sequential<float>& teacher, const Splits& data, const DistillOptions& d,
                      const TrainOptions& o, const JobControl& ctl) {
  io::require_valid(d.validate());
  io::require_valid(o.validate());
  std::mt19937_64 rng(o.seed);
  student.init(rng);
  student.fit_feature_norm(student_features(student, data.train.x, kFeatureNormSamples));
  History h;
  if (d.precision == "float32") {
    // Trained in float from the double initialisation; the model returns to double (model files, the
    // final standardisation and the test pass below).
    BasicOpticalStudent<float> sf = student.as<float>();
    h = fit_student(sf, teacher, data, d, o, ctl, rng);
    student = sf.as<double>();
  } else {
    h = fit_student(student, teacher, data, d, o, ctl, rng);
  }
  if (h.cancelled) return h;
  // Standardisation of the trained front-end's features, the backend's function unchanged.
  student.fit_feature_norm(student_features(student, data.train.x, kFeatureNormSamples), true);
  if (data.test.size()) h.test_acc = accuracy(predict(student, data.test.x), data.test.y);
  if (h.summary.contains("own_head_test_acc")) h.summary["shared_head_test_acc"] = h.test_acc;
  return h;
}

JobResult run_distill(const DistillJob& job, const JobControl& ctl, const ImageDecoder& decode) {
  io::require_valid(job.validate());
  const Splits s = load_splits(job.data, decode);
  // Method none never reads the teacher: an empty network stands in when no file is given.
  Sequential<float> teacher = job.teacher.empty() ? Sequential<float>(s.train.shape)
                                                       : sequential_from_model<float>(read_model(job.teacher));
  if (teacher.in_shape() != s.train.shape) throw std::invalid_argument("distill job: teacher input shape differs from the data");
  OpticalStudent student(job.student, s.train.shape, s.train.num_classes);
  JobResult r;
  r.history = train_student(student, teacher, s, job.distill, job.train, ctl);
  fs::create_directories(job.out_dir);
  r.model_path = fs::path(job.out_dir) / "student.hilo";
  r.history_path = fs::path(job.out_dir) / "history.json";
  nlohmann::json meta = {{"data", job.data.name}, {"method", job.distill.method}, {"test_acc", r.history.test_acc},
                         {"teacher", job.teacher}};
  // backend.w2 / b2 are then the shared path folded (the projector and the teacher's head, adapted or not).
  if (job.distill.shared_test_head == "shared")
    meta.update({{"shared_test_head", "shared"}, {"shared_adapt", job.distill.shared_adapt}});
  if (!r.history.cancelled) write_model(r.model_path, student.to_model(meta));
  nlohmann::json hj = r.history.to_json();
  hj["command"] = "distill";
  hj["data"] = job.data.name;
  hj["method"] = job.distill.method;
  hj["num_params"] = student.num_params();
  hj["student"] = student.options_json();
  io::write_json_atomic(r.history_path, hj);
  return r;
}

EstimateJob EstimateJob::from_json(const nlohmann::json& j) {
  const std::string section = "estimate job";
  return io::read_valid_options<EstimateJob>(job_fields(j, "estimate", section), section);
}

std::string EstimateJob::validate() const {
  if (n_train < 10) return "estimate.n_train must be >= 10, got " + std::to_string(n_train);
  return io::first_broken({data.validate(), student.validate(), regression.validate()});
}

nlohmann::json run_estimate(const EstimateJob& job, const ImageDecoder& decode) {
  io::require_valid(job.validate());
  const Splits s = load_splits(job.data, decode);
  std::mt19937_64 rng(job.seed);
  const bool trained = !job.student_model.empty();
  OpticalStudent st = trained ? OpticalStudent::from_model(read_model(job.student_model))
                              : OpticalStudent(job.student, s.train.shape, s.train.num_classes);
  if (!trained) {
    st.init(rng);
    st.fit_feature_norm(student_features(st, s.train.x, kFeatureNormSamples));
  }
  const auto r = estimate_front_end(st, s, job.n_train, job.regression);
  nlohmann::json out = r.to_json();
  out.update({{"command", "estimate"}, {"data", job.data.name}, {"n_train", job.n_train},
              {"ratios", job.regression.ratios}, {"depth", job.regression.depth},
              {"front_end", trained ? "trained" : "random"}, {"kernels", st.options().kernels},
              {"kernel", "infinite-width ReLU NTK (depth " + std::to_string(job.regression.depth) +
                             ") on the standardised front-end features"}});
  if (job.reference) out["reference"] = estimate_reference(s, job.n_train, job.regression).to_json();
  if (!job.out_dir.empty()) {
    const fs::path dir = job.out_dir;
    fs::create_directories(dir);
    io::write_json_atomic(dir / "estimate.json", out);
  }
  return out;
}

}  // namespace hilo::distill
