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
//          (the closed form of OpticalStudent::ntk with the front-end replaced by the measurement, so the
//          measured features carry no gradient). d is a distill::KernelDistance; use "alignment" or
//          "trace_mse": the plain "mse" compares kernels of different scales and diverges.
// Optimiser: Adam at a constant learning rate over the backend parameters only, seeded batch order.
// The optical parameters (ρ or φ) are never written; refit_backend checks that they are bit-identical
// afterwards and reports it (CompensationReport::optical_unchanged).
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
  double lr = 1e-3;          // Adam, constant
  int batch = 32;
  int ntk_subbatch = 16;     // ntkd: samples per NTK group, [2, 1024]
  double alpha = 1.0;        // ntkd: CE weight
  double beta = 1.0;         // ntkd: NTK distance weight
  distill::KernelDistance distance{};  // ntkd: "alignment" (default) or "trace_mse"

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CompensationOptions, mode, epochs, lr, batch, ntk_subbatch, alpha, beta,
                                                distance)

struct CompensationEpoch {
  int epoch = 0;
  double loss = 0;          // mean over the epoch's steps of the full objective
  double ntk_distance = 0;  // ntkd: mean d(Θ_T, Θ_S) over the epoch's steps; 0 otherwise
  double accuracy = 0;      // of the backend on the whole measured set after the epoch
};

struct CompensationReport {
  CompensationMode mode = CompensationMode::none;
  double initial_loss = 0, initial_accuracy = 0;  // CE and accuracy on the measured set before fitting
  std::vector<CompensationEpoch> epochs;
  bool optical_unchanged = true;                   // optical parameters bit-identical before/after
};

// Re-fits student's backend on measured features (B × feature_dim) with labels (B). ntkd needs the
// teacher and the clean images (B rows, the same samples in the same order); other modes ignore them.
// Throws std::invalid_argument for invalid options, mismatched sizes, non-finite features, or ntkd
// without teacher/images. The optimiser state is local to the call.
CompensationReport refit_backend(distill::OpticalStudent& student, const distill::MatD& measured_features,
                                 const std::vector<int>& labels, distill::Sequential<float>* teacher,
                                 const distill::Mat<float>* clean_images, const CompensationOptions& options,
                                 std::mt19937_64& rng);

// Student NTK w.r.t. the backend parameters at features a (B × D), as above; leaves the backend caches
// at `a`. backend_ntk_backward adds ∂/∂θ_backend Σ_ij G_ij Θ_S(i,j) (G symmetrised) to the backend
// gradients for the features of the last backend_ntk call; ReLU masks are treated as locally constant.
distill::MatD backend_ntk(distill::OpticalStudent& student, const distill::MatD& a);
void backend_ntk_backward(distill::OpticalStudent& student, const distill::MatD& a, const distill::MatD& G);

}  // namespace hilo::calibration
