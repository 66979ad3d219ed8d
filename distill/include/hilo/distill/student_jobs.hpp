#pragma once
// Distillation losses and the `distill` job: training the optical student against a trained teacher.
//
// Methods (DistillOptions::method); CE = softmax cross-entropy with the labels, s/t = student/teacher
// logits, p^T = softmax(·/T):
//   "none":   L = CE(s)
//   "kd":     L = (1−α)·CE(s) + α·T²·KL(p_t^T ‖ p_s^T)                                  (Hinton)
//   "gd":     L = (1−λ)·CE(s) + λ·CE(p_t^T, p_s)  — the teacher sees the clean image x* (privileged),
//             the student sees x = x* + σ_in·N(0,1) (clipped at 0) and its camera noise   (Lopez-Paz)
//   "shared": L = CE(s) + w·CE(head_T(P h + b_P)) + μ·mean((P h + b_P − φ_T)²): a projector P maps the
//             student's hidden features h into the teacher's penultimate space φ_T and feeds the
//             teacher's last layer head_T; P is trained with the student, head_T frozen unless
//             shared_adapt (then + κ·CE(head_T(φ_T)) and head_T trained: adaptive teaching)  (Jang et al.)
//   "ntkd":   L = α·[CE(s) or the KD loss if ntkd.with_kd] + β·d(Θ_T, Θ_S) on an NTK sub-batch
//             (see ntk.hpp for d; Θ_S w.r.t. ntkd.param_set)                              (Xiang et al.)
// Teacher logits and penultimate features are computed once for the whole training set (evaluation mode).
// Θ_T cost: one teacher NTK (C batched backward passes on the sub-batch) per use. With
// ntkd.cache_batches = M > 0, M fixed sub-batches are drawn once and their Θ_T precomputed; training
// cycles through them (the NTK term then sees M·subbatch distinct images). With M = 0, Θ_T is computed
// on the first `subbatch` images of the current batch, every `every` steps.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/jobs.hpp"
#include "hilo/distill/kernel_regression.hpp"
#include "hilo/distill/ntk.hpp"
#include "hilo/distill/student.hpp"

namespace hilo::distill {

// Adaptive teaching in the shared-classifier mode (Jang et al. 2024): the teacher's head (its last linear
// layer, W and b) is trained during distillation, by the gradient of the student's term through the shared
// head plus the constraint κ·CE(head_T(φ_T), y), the teacher's own task loss on the same batch (κ =
// keep_weight). The teacher's body stays frozen: the student's path never passes it (the projector maps
// into the space after the teacher's last hidden block), so only the constraint would move it.
struct SharedAdaptOptions {
  bool enabled = false;
  double lr_scale = 1.0;     // the head's learning rate over the student's, in [0, 1] (0: frozen, for checks)
  double keep_weight = 1.0;  // κ >= 0
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SharedAdaptOptions, enabled, lr_scale, keep_weight)

struct DistillOptions {
  std::string method = "none";  // none | kd | gd | shared | ntkd
  double temperature = 4.0;     // kd, gd, and ntkd.with_kd
  double kd_alpha = 0.5;        // kd weight α
  double gd_lambda = 0.5;       // gd weight λ
  double gd_input_noise = 0.1;  // σ_in of the student's degraded input (gd only)
  double shared_weight = 1.0;   // w
  double shared_feature_weight = 0.1;  // μ
  // Which head the shared-classifier student predicts with after training: "own" (its backend's last
  // layer, trained by CE; the default) or "shared" (the projector and the teacher's head, folded into the
  // backend's last layer at the end: W2 = W P, b2 = b_P Wᵀ + b, exact since both are linear; validation and
  // log_test_acc then read the shared path every epoch).
  std::string shared_test_head = "own";
  SharedAdaptOptions shared_adapt{};  // requires method "shared" and shared_test_head "shared"
  double ntk_alpha = 1.0;
  double ntk_beta = 1.0;
  KernelDistance ntk_distance{};
  std::string ntk_param_set = "all";  // all | optical | backend
  bool ntk_kernel_space = false;      // optical NTK w.r.t. κ instead of the raw parameters
  int ntk_subbatch = 32;
  int ntk_every = 1;
  int ntk_cache_batches = 0;
  bool ntk_with_kd = false;
  std::string ntk_teacher = "exact";  // "exact" | "probe" (ntk_probe with ntk_probes probes, for large teachers)
  int ntk_probes = 64;
  // With train.augment on: true, the teacher outputs KD, GD and the shared classifier read are those of
  // the augmented image the student sees in that step (computed per batch, "function matching"); false,
  // those of the clean image, computed once. No effect without augmentation.
  bool teacher_on_augmented = true;
  // The student's arithmetic while it trains: "float64" (BasicOpticalStudent<double>, the default) or
  // "float32" (BasicOpticalStudent<float>: forward, backward, Θ_S and its gradient, the optimiser; Θ_T,
  // the kernel distance and the input preparation stay double). float32 starts from the same double
  // initialisation and returns to double after training (the model file, the final standardisation and
  // the test accuracy are double). It runs methods none and ntkd without ntk_with_kd.
  std::string precision = "float64";
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DistillOptions, method, temperature, kd_alpha, gd_lambda, gd_input_noise,
                                                shared_weight, shared_feature_weight, shared_test_head,
                                                shared_adapt, ntk_alpha, ntk_beta, ntk_distance,
                                                ntk_param_set, ntk_kernel_space, ntk_subbatch, ntk_every,
                                                ntk_cache_batches, ntk_with_kd, ntk_teacher, ntk_probes,
                                                teacher_on_augmented, precision)
DistillOptions distill_options_from_json(const nlohmann::json& j);

// The student's training defaults (a distill job's "train" section is read on top of these): Adam,
// cosine schedule, batch 64, the learning rate and epochs tuned on validation with standardised
// features (docs/distill.md, "Learning rates").
TrainOptions student_train_defaults();

// {"command": "distill", "teacher": "<teacher.hilo>", "data": {...}, "student": {...},
//  "distill": {...}, "train": {...}, "out_dir": "..."}. "teacher" may be left out for method "none".
struct DistillJob {
  std::string teacher;  // path of the teacher's model file (required unless distill.method is "none")
  DataOptions data;
  StudentOptions student;
  DistillOptions distill;
  TrainOptions train = student_train_defaults();
  std::string out_dir = "runs/distill";
  static DistillJob from_json(const nlohmann::json& j);
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DistillJob, teacher, data, student, distill, train, out_dir)

// Training images whose features set the student's standardisation before training.
inline constexpr Eigen::Index kFeatureNormSamples = 5000;

// Student logits in evaluation mode, in chunks (in the student's arithmetic T; returned as double).
template <typename T>
MatD predict(BasicOpticalStudent<T>& s, const Mat<float>& x, int batch = kEvalBatch);
// Front-end features a (n × D, no noise) of the first `limit` rows of x (all when limit ≤ 0), in chunks.
MatD student_features(OpticalStudent& s, const Mat<float>& x, Eigen::Index limit = 0, int batch = kEvalBatch);

// Trains a student on prepared splits against a loaded teacher (float): train_loop (loop.hpp) with the
// method's loss objects (losses.hpp). The library entry point for callers that already hold data and
// teacher (the daemon, tests). Draw order from train.seed: init, [projector | NTK cache], then per epoch
// the shuffle and per step input noise (gd), camera noise, probe NTK.
History train_student(OpticalStudent& student, Sequential<float>& teacher, const Splits& data, const DistillOptions& d,
                      const TrainOptions& o, const JobControl& ctl);

// Loads data and teacher, trains, writes <out_dir>/student.hilo and <out_dir>/history.json. `decode`
// as in run_train_teacher (png-folder datasets).
JobResult run_distill(const DistillJob& job, const JobControl& ctl, const ImageDecoder& decode = {});

// NTK kernel-regression estimate for a front-end design (see kernel_regression.hpp):
// {"command": "estimate", "data": {...}, "student": {...} | "student_model": "<student.hilo>",
//  "seed": 1, "n_train": 3000, "regression": {"ratios": [...], "depth": 1}, "reference": false,
//  "out_dir": "..."}. from_json reads like the other jobs (unknown keys refused with a suggestion, wrong
// types naming the key, then validate()).
struct EstimateJob {
  DataOptions data;
  StudentOptions student;     // the front-end when no model file is given
  std::string student_model;  // a trained student's model file; "" = student's random initialisation
  std::uint64_t seed = 1;     // that initialisation
  int n_train = 3000;         // training images for the kernel regression, >= 10
  KernelRegressionOptions regression{};
  bool reference = false;     // also the reference on raw pixels (same n_train and regression options)
  std::string out_dir;        // "" = write nothing
  static EstimateJob from_json(const nlohmann::json& j);
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EstimateJob, data, student, student_model, seed, n_train, regression,
                                                reference, out_dir)

// Without a model file the front-end is the student's random initialisation for `seed` (a random-PSF
// design), standardised as training would (fit_feature_norm on the first kFeatureNormSamples training
// images); a model file's front-end keeps its stored standardisation. Writes <out_dir>/estimate.json
// when out_dir is set and returns its content: the chosen ratio and λ, validation accuracy per ratio,
// test accuracy, an edge warning, and under "reference" the raw-pixel reference when asked for.
// `decode` as in run_train_teacher (png-folder datasets).
nlohmann::json run_estimate(const EstimateJob& job, const ImageDecoder& decode = {});

}  // namespace hilo::distill
