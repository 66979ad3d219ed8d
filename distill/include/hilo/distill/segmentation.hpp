#pragma once
// Semantic segmentation on scenes composed from digits: the per-pixel task of the method family
// (Xiang et al. apply NTKD to segmentation as well as classification).
//
//   scene:   an S × S canvas with 1..n digits (each resized from its 28 × 28 image by area averaging),
//            placed at random where their boxes do not overlap; pixel label = the digit's class (0–9)
//            where the digit's resized value is ≥ threshold, else background (class 10).
//   models:  Sequential networks whose output is C = 11 logit maps of S × S (channel-major per row,
//            B × C·S²) and whose last layer is a 1 × 1 convolution (the per-pixel classifier).
//            Teacher: a conv encoder (two 2 × 2 max-pools) and a nearest-upsampling conv decoder.
//            Student: the incoherent optical layer (NonnegConv2d: K non-negative k × k kernels, "same"
//            maps; the camera records them), average pooling p × p (the camera's binning), batch norm and
//            a small conv decoder with upsampling back to S × S (the up-convolution backend).
//   metric:  mean IoU over the C classes from the confusion matrix of all test pixels:
//            IoU_c = TP_c / (TP_c + FP_c + FN_c), classes with an empty union left out of the mean.
//   methods: "none" (per-pixel cross-entropy), "kd" (per-pixel soft labels, Hinton, averaged over
//            pixels), "ntkd" (task loss + NTK matching). The NTK here is taken w.r.t. the last layer, the
//            1 × 1 classifier (weight C × F, bias C), over all C·S² outputs:
//                Θ(x_i, x_j) = C·(⟨h_i, h_j⟩ + S²),   h = that layer's input (F·S² values)
//            for teacher and student alike; the student's h depends on every earlier parameter, and the
//            matching loss d(Θ_T, Θ_S) reaches them through the ordinary backward of
//            ∂d/∂h_S = C·(G + Gᵀ)·h_S, G = ∂d/∂Θ_S. (The full NTK of C·S² = 11,264 outputs would need one
//            backward pass per output.)
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/data.hpp"
#include "hilo/distill/layers.hpp"
#include "hilo/distill/loop.hpp"
#include "hilo/distill/ntk.hpp"
#include "hilo/distill/train.hpp"

namespace hilo::distill {

// Per-pixel labels, one row per scene (B × S²), values in [0, classes).
using LabelMap = Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline constexpr int kSegBackground = 10;  // the background class of digit scenes
inline constexpr int kSegClasses = 11;     // digits 0–9 and background

struct SceneOptions {
  int canvas = 32;        // S
  int digit_size = 14;    // the resized digit's side; must divide the source images' side
  int min_digits = 1;
  int max_digits = 3;
  double threshold = 0.3; // resized value at or above which a pixel takes its digit's class
  int train = 6000, validation = 1000, test = 1000;  // scenes per split
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SceneOptions, canvas, digit_size, min_digits, max_digits, threshold,
                                                train, validation, test)

struct Scenes {
  Shape shape;       // {1, S, S}
  Mat<float> x;      // n × S², values in [0, 1]
  LabelMap labels;   // n × S²
  std::size_t size() const { return static_cast<std::size_t>(x.rows()); }
};

// n scenes drawn from `digits` (grey, square images, 10 classes). A digit whose box finds no free place in
// 100 draws is left out, so a crowded canvas holds fewer digits than drawn. Throws std::invalid_argument
// for invalid options, colour or non-square digits, a digit side digit_size does not divide, a digit
// larger than the canvas, or an empty digit set.
Scenes compose_scenes(const Dataset& digits, int n, const SceneOptions& o, std::mt19937_64& rng);
// Rows `rows` of s.
Scenes take(const Scenes& s, std::span<const int> rows);

// Mean per-pixel softmax cross-entropy over every pixel of the batch; logits B × C·HW (channel-major),
// labels B × HW. dlogits (optional) gets ∂/∂logits, already divided by the B·HW pixels.
template <typename T>
double pixel_cross_entropy(const Mat<T>& logits, const LabelMap& labels, int classes, Mat<T>* dlogits);
// Per-pixel soft-label KD: (1−α)·CE(s, y) + α·T²·mean over pixels of KL(p_t^T ‖ p_s^T), p^T the softmax
// over the C classes of one pixel at temperature T; gradient (optional) as above.
template <typename T>
double pixel_kd(const Mat<T>& student, const Mat<T>& teacher, const LabelMap& labels, int classes,
                double temperature, double alpha, Mat<T>* dlogits);
// The class of every pixel (argmax over the C maps): B × HW.
template <typename T>
LabelMap pixel_argmax(const Mat<T>& logits, int classes);

struct IouReport {
  std::vector<double> per_class;  // NaN where the class's union is empty
  double mean_iou = 0;            // over classes with a non-empty union
  double pixel_accuracy = 0;
  nlohmann::json to_json() const;
};
// From predicted and true label maps of the same shape (std::invalid_argument otherwise).
IouReport mean_iou(const LabelMap& predicted, const LabelMap& truth, int classes);

// The last-layer NTK: h (B × F·HW) the input of a final 1 × 1 convolution with `classes` outputs;
// Θ = classes·(h hᵀ + HW).
template <typename T>
MatD head_ntk(const Mat<T>& h, int classes, int hw);

// Networks of this file. The teacher: for each c of `channels`: conv3×3 → batch norm → ReLU → maxpool 2;
// then conv3×3(channels.back()) → ReLU; then per pooling stage: upsample 2 → conv3×3 → ReLU (widths in
// reverse); finally conv1×1(classes).
struct SegTeacherArch {
  std::vector<int> channels{16, 32};
  [[nodiscard]] std::string validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SegTeacherArch, channels)
Sequential<float> make_seg_teacher(const SegTeacherArch& a, Shape in, int classes);

// The student: nonneg_conv(kernels, kernel_size, "same") → avgpool(pool) → batch norm → conv3×3(width) →
// ReLU → conv3×3(width) → ReLU → upsample(pool) → conv3×3(width) → ReLU → conv1×1(classes).
struct SegStudentArch {
  int kernels = 8;
  int kernel_size = 7;  // odd
  int pool = 2;         // divides the canvas
  int width = 16;
  [[nodiscard]] std::string validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SegStudentArch, kernels, kernel_size, pool, width)
Sequential<float> make_seg_student(const SegStudentArch& a, Shape in, int classes);

// A Sequential trained on scenes by train_loop: forward of the scenes' rows in training mode, per-pixel
// training accuracy, state = parameters and batch-norm statistics.
template <typename T>
class SegModel final : public TrainModel<T> {
 public:
  SegModel(Sequential<T>& net, const Mat<T>& x, const LabelMap& labels, int classes)
      : net_(net), x_(x), labels_(labels), classes_(classes) {}
  std::vector<Param<T>> params() override { return net_.params(); }
  Mat<T> forward(std::span<const int> rows, std::mt19937_64& rng) override;
  void backward(const StepTerms<T>& t) override { net_.backward(t.dlogits); }
  double batch_accuracy(const Mat<T>& logits, const Batch<T>& b) override;
  std::vector<Mat<T>*> state() override;

 private:
  Sequential<T>& net_;
  const Mat<T>& x_;
  const LabelMap& labels_;
  int classes_;
};

// weight · pixel_cross_entropy of the batch's rows of `labels`.
template <typename T>
class PixelTaskLoss final : public Loss<T> {
 public:
  PixelTaskLoss(const LabelMap& labels, int classes, double weight = 1.0) : y_(labels), c_(classes), w_(weight) {}
  std::string name() const override { return "task"; }
  double weight() const override { return w_; }
  void add_output_terms(const Batch<T>& b, StepTerms<T>& t) override;

 private:
  const LabelMap& y_;
  int c_;
  double w_;
};

// weight · pixel_kd against the teacher's logits of the same rows (N × C·HW, evaluation mode).
template <typename T>
class PixelKdLoss final : public Loss<T> {
 public:
  PixelKdLoss(const Mat<T>& teacher_logits, const LabelMap& labels, int classes, double temperature, double alpha,
              double weight = 1.0)
      : t_(teacher_logits), y_(labels), c_(classes), T_(temperature), alpha_(alpha), w_(weight) {}
  std::string name() const override { return "kd"; }
  double weight() const override { return w_; }
  void add_output_terms(const Batch<T>& b, StepTerms<T>& t) override;

 private:
  const Mat<T>& t_;
  const LabelMap& y_;
  int c_;
  double T_, alpha_, w_;
};

// NTK matching with the last-layer NTK (above): per step, on the first `rows` rows of the batch, both
// networks in evaluation mode, L = weight · d(Θ_T, Θ_S); its gradient reaches every student parameter
// before the last layer through the student's backward. Both networks must end in conv1×1(classes)
// (std::invalid_argument otherwise). Per epoch: extra["ntk_distance"], the mean d.
template <typename T>
class HeadNtkLoss final : public Loss<T> {
 public:
  HeadNtkLoss(Sequential<T>& student, Sequential<T>& teacher, const Mat<T>& x, KernelDistance distance,
              double weight, int rows);
  std::string name() const override { return "ntk"; }
  double weight() const override { return w_; }
  void add_parameter_terms(const Batch<T>& b, StepTerms<T>& t) override;
  void close_epoch(nlohmann::json& extra) override;
  // d(Θ_T, Θ_S) on scenes xs, accumulating weight · ∂d/∂θ into the student's gradients when `grad`.
  double value(const Mat<T>& xs, bool grad);

 private:
  Sequential<T>& s_;
  Sequential<T>& t_;
  const Mat<T>& x_;
  KernelDistance d_;
  double w_;
  int rows_;
  EpochMean distance_;
};

// ---- the job: hilo-train segment <config>
struct SegKdOptions {
  double temperature = 2.0;
  double alpha = 0.5;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SegKdOptions, temperature, alpha)
struct SegNtkOptions {
  double weight = 1.0;
  std::string distance = "cka";
  int rows = 16;  // NTK batch: the first rows of each step's batch
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SegNtkOptions, weight, distance, rows)

// {"command": "segment", "data": {...}, "scenes": {...}, "teacher": {...}, "teacher_train": {...},
//  "student": {...}, "student_train": {...}, "methods": ["none", "kd", "ntkd"], "kd": {...}, "ntkd": {...},
//  "seeds": [1, 2, 3], "out_dir": "..."}
// The teacher trains once (teacher_train.seed); every method trains a student per seed from the same
// initialisation (paired seeds: the seed sets the student's initialisation and batch order). Scenes are
// drawn once from data's splits (train scenes from the training digits, validation and test scenes from
// the validation and test digits) with the teacher's seed.
struct SegmentJob {
  DataOptions data;
  SceneOptions scenes;
  SegTeacherArch teacher;
  TrainOptions teacher_train;
  SegStudentArch student;
  TrainOptions student_train;
  std::vector<std::string> methods{"none", "kd", "ntkd"};
  SegKdOptions kd;
  SegNtkOptions ntkd;
  std::vector<std::uint64_t> seeds{1};
  std::string out_dir = "runs/segment";
  static SegmentJob from_json(const nlohmann::json& j);
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SegmentJob, data, scenes, teacher, teacher_train, student,
                                                student_train, methods, kd, ntkd, seeds, out_dir)

struct SegmentResult {
  // mIoU per class and mean, pixel accuracy, epochs and training seconds, per-epoch validation and test
  // mIoU of every run, the means over seeds, and the equal-epoch and equal-time comparisons.
  nlohmann::json report;
  Scenes examples;  // the first test scenes, for the figure
  std::vector<std::pair<std::string, LabelMap>> predictions;  // "teacher", then each method (first seed)
};
// Runs the job: writes teacher.hilo, student_<method>_seed<s>.hilo and report.json into out_dir (the
// caller draws the figures from the result). Cancellation stops after the current run, with
// report["cancelled"] = true.
SegmentResult run_segment(const SegmentJob& job, const JobControl& ctl, const ImageDecoder& decode = {});

}  // namespace hilo::distill
