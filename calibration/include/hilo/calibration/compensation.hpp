#pragma once
// Compensation (DESIGN §6): with the optical element fixed, re-fit only the student's digital backend on
// features measured through the bench for a subset of the training set, so that the backend learns the
// as-built front-end (misalignment, aberrations, gain, noise) instead of the designed one.
//
// Modes (CompensationOptions::mode); a = measured features (B × D), y = labels, s = backend(a):
//   none:  nothing is fitted; the report holds the loss and accuracy of the current backend.
//   task:  L = CE(s, y)
//   ntkd:  L = α·CE(s, y) + β·d(Θ_T, Θ_S) on one NTK group per step, where
//          Θ_T = teacher NTK of the clean images of those rows (ntk_exact) and
//          Θ_S = student NTK w.r.t. the backend parameters at the measured features:
//            Θ_S = C·(H Hᵀ + 1) + (M S Mᵀ) ⊙ (A Aᵀ + 1),  H = ReLU(A W1ᵀ + b1), M = 1[z > 0],
//            S = diag(‖W2[:,k]‖²)
//          (OpticalStudent::ntk_at_features: the student's own closed form with the front-end replaced
//          by the measurement, so the measured features carry no gradient; A is standardised by the
//          student's μ, σ). d is a distill::KernelDistance; use "alignment", "cka"
//          or "trace_mse": the plain "mse" compares kernels of different scales and diverges.
// Standardisation: in task and ntkd modes with refit_feature_norm, the student's feature offset and
// scale (OpticalStudent::fit_feature_norm) are first re-estimated from the measured features, which
// maps a gain or dark-offset error of the bench back onto the feature statistics the backend was
// trained on; the fit then starts from there. Mode none leaves them (it is the uncompensated bench).
// refit_norm picks the estimate (n measured samples, μ₀, σ₀ the deployed student's statistics):
//   "map":     per signed map j one gain g_j and offset o_j: μ = g_j·μ₀ + o_j, σ = g_j·σ₀, with o_j, g_j
//              matching the map's pooled mean and variance (over samples and positions) of the
//              measurement to those of μ₀, σ₀. 2 numbers per map, so it is stable at a few dozen samples
//              and absorbs gain and dark errors, not the per-position changes of a misalignment.
//   "feature": per-feature mean and standard deviation of the measurement, each shrunk toward the
//              "map" estimate with weight n₀/(n + n₀), n₀ = refit_norm_prior (0: the raw per-feature
//              estimate; large n₀ tends to "map").
// Anchor (task, ntkd): anchor > 0 adds (anchor/2)·‖θ − θ₀‖² to L, θ₀ = the backend parameters at the
// start of the fit (the deployed backend), which keeps a fit on few samples near what was learned in
// simulation (L2-SP) instead of a plain weight decay toward 0.
// Optimiser: Adam at a constant learning rate over the backend parameters only, seeded batch order
// (distill::train_loop with the last short batch kept; the loss objects TaskLoss, NtkLoss, AnchorLoss).
// w1_lr_scale < 1 slows the first layer's weights W1 alone (b1, W2, b2 keep lr; 0 freezes W1). A
// backend on raw features moved W1's column j at a rate ∝ σ_j; this option tests whether that slower
// first layer is what made raw-feature compensation better from few samples. Measured: it is not (every
// value < 1 validates worse on the severe profile at f = 2 %; docs/distill.md, "The severe profile at
// f = 2 %"), so the default stays 1.
// NTK groups: the measured set is split once (seeded) into groups of ntk_subbatch samples and each
// group's Θ_T is computed once (it depends only on the clean images); step t uses group t mod G.
// Cost: G teacher NTKs up front, then O(b²·hidden) per step.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/layers.hpp"
#include "hilo/distill/ntk.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/io/progress.hpp"

namespace hilo::calibration {

enum class CompensationMode { none, task, ntkd };
std::string to_string(CompensationMode m);
CompensationMode parse_compensation_mode(const std::string& name);  // throws std::invalid_argument
// JSON form: the mode's name ("task").
inline void to_json(nlohmann::json& j, CompensationMode m) { j = to_string(m); }
inline void from_json(const nlohmann::json& j, CompensationMode& m) { m = parse_compensation_mode(j.get<std::string>()); }

struct CompensationOptions {
  CompensationMode mode = CompensationMode::task;
  int epochs = 20;
  double lr = 3e-3;          // Adam, constant (tuned on validation: docs/distill.md, "Learning rates")
  int batch = 32;
  int ntk_subbatch = 16;     // ntkd: samples per NTK group, [2, 1024]
  double alpha = 1.0;        // ntkd: CE weight
  double beta = 1.0;         // ntkd: NTK distance weight
  distill::KernelDistance distance{};  // ntkd: "alignment" (default), "cka" or "trace_mse"
  bool refit_feature_norm = true;      // task, ntkd: re-estimate the feature standardisation first
  std::string refit_norm = "feature";  // "feature" | "map" (see above)
  double refit_norm_prior = 0.0;       // "feature": shrinkage pseudo-count n₀ >= 0 (samples)
  double anchor = 0.0;                 // task, ntkd: L2 pull toward the starting backend, >= 0
  double w1_lr_scale = 1.0;            // task, ntkd: Adam rate of W1 = lr · w1_lr_scale, in [0, 1] (see above)

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CompensationOptions, mode, epochs, lr, batch, ntk_subbatch, alpha, beta,
                                                distance, refit_feature_norm, refit_norm,
                                                refit_norm_prior, anchor, w1_lr_scale)

struct CompensationEpoch {
  int epoch = 0;
  double loss = 0;          // mean over the epoch's steps of the full objective
  double ntk_distance = 0;  // ntkd: mean d(Θ_T, Θ_S) over the epoch's steps; 0 otherwise
  double accuracy = 0;      // of the backend on the whole measured set after the epoch
};

struct CompensationReport {
  CompensationMode mode = CompensationMode::none;
  double initial_loss = 0, initial_accuracy = 0;  // CE and accuracy on the measured set before fitting
  double normalized_accuracy = 0;                  // after re-estimating the standardisation, before fitting
  std::vector<CompensationEpoch> epochs;
  bool optical_unchanged = true;                   // optical parameters bit-identical before/after
  bool stopped = false;  // a stop request ended the fit before its last epoch (the backend is part-fitted)
};

// Re-fits student's backend on measured features (B × feature_dim) with labels (B). ntkd needs the
// teacher and the clean images (B rows, the same samples in the same order); other modes ignore them.
// Throws std::invalid_argument for invalid options, mismatched sizes, non-finite features, or ntkd
// without teacher/images. The optimiser state is local to the call. Stop: work.stop is polled before every
// step (the teacher's NTK groups are computed first); a stopped fit returns with report.stopped set.
// work.progress is not called (the caller's stage reports its own progress).
// The re-estimated standardisation described above (μ, σ⁻¹, each 1 × D) from measured features a
// (n × D, n >= 2, finite; checked by the caller), without changing student.
void estimate_feature_norm(const distill::OpticalStudent& student, const distill::MatD& a,
                           const CompensationOptions& options, distill::MatD& offset, distill::MatD& scale);

// NTKD's teacher side, computed ahead: groups of rows of a set and the teacher's NTK Θ_T of each group's
// clean images (distill::ntk_exact, |g| × |g|). Step t of an NTKD re-fit matches the student's NTK on
// group t mod G to Θ_T of that group.
struct NtkGroups {
  std::vector<std::vector<int>> rows;  // row indices into the set, >= 2 per group
  std::vector<distill::MatD> teacher;  // Θ_T of each group, same order
};
// The set's rows (clean: n × H·W) shuffled with rng and cut into groups of group_size (a last group of
// fewer than 2 rows is dropped), with Θ_T of each. A stop request (polled before each group) returns
// the groups done so far with `stopped` set. This is what refit_backend computes for itself when it is
// given no groups; a job that re-fits many sets over the same images (the pipeline's twin modes: the
// whole training split for every fraction and profile) computes it once over the images and maps the
// groups to each set's rows, instead of computing Θ_T again per re-fit.
NtkGroups teacher_ntk_groups(distill::Sequential<float>& teacher, const distill::Mat<float>& clean, int group_size,
                             std::mt19937_64& rng, const io::WorkControl& work = {}, bool* stopped = nullptr);

// ntk_groups (ntkd only; null: refit_backend draws teacher_ntk_groups(teacher, clean_images,
// ntk_subbatch, rng) itself): groups over the rows of measured_features with their Θ_T; throws
// std::invalid_argument for a row outside the set, a group of fewer than 2 rows or a Θ_T of the wrong size.
CompensationReport refit_backend(distill::OpticalStudent& student, const distill::MatD& measured_features,
                                 const std::vector<int>& labels, distill::Sequential<float>* teacher,
                                 const distill::Mat<float>* clean_images, const CompensationOptions& options,
                                 std::mt19937_64& rng, const io::WorkControl& work = {},
                                 const NtkGroups* ntk_groups = nullptr);

}  // namespace hilo::calibration
