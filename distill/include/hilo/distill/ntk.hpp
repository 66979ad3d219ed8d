#pragma once
// Empirical neural tangent kernels of digital networks, kernel distances for NTKD, and the random-probe
// estimator.
//
//   Θ(x_i, x_j) = Σ_p Σ_c ∂f_c(x_i)/∂θ_p · ∂f_c(x_j)/∂θ_p        (B × B, f = logits)
//
// Networks are evaluated in evaluation mode (batch norm with running statistics), so each sample's
// output depends on its own input only and Θ is well defined per pair.
#include <cstdint>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "hilo/distill/layers.hpp"

namespace hilo::distill {

// Exact Θ by per-layer Gram products: per class c, an input-gradient-only backward
// (Layer::backward_input) of dy = e_c on every row; linear layers add (δ δᵀ) ⊙ (A Aᵀ) + δ δᵀ, conv and
// batch-norm layers G Gᵀ of their per-sample gradients (B × P_l, formed one layer at a time). Memory
// O(B·max_l P_l + B²), never B·C·P. Leaves the network's parameter gradients zeroed.
template <typename T>
MatD ntk_exact(Sequential<T>& net, const Mat<T>& x);

// Reference: the full Jacobian J ((B·C) × P in T, one single-sample backward per (sample, class)) and
// Σ_c J_c J_cᵀ. Memory B·C·P·sizeof(T): for tests and the benchmark only.
template <typename T>
MatD ntk_naive(Sequential<T>& net, const Mat<T>& x);

// Random-probe estimate: Θ̂ = (1/R) Σ_r (J v_r)(J v_r)ᵀ summed over classes, v_r ~ N(0, I_P), with
// J v_r from central differences (f(θ+εv) − f(θ−εv))/(2ε). Unbiased up to the O(ε²) difference error;
// per entry Var[Θ̂_ij] = (1/R)·(‖K_ij‖_F² + tr(K_ii K_jj)), K_ij = J_i J_jᵀ (C × C), i.e. relative
// standard error ≈ √(2/R) on the diagonal. Costs 2R forward passes and no backward pass.
// Runs in double on a copy of the network. eps is relative to the parameter norm / √P.
template <typename T>
MatD ntk_probe(Sequential<T>& net, const Mat<T>& x, int probes, std::mt19937_64& rng, double eps = 1e-3);

// Distances between teacher and student kernels for NTKD, and their gradient w.r.t. Θ_S.
//   "mse":        d = (1/B²) Σ (Θ_S − Θ_T)²                            (as published)
//   "trace_mse":  d = (1/B²) Σ (Θ_S/τ_S − Θ_T/τ_T)²,  τ = tr Θ / B       (scale-free)
//   "alignment":  d = 1 − ⟨Θ_T, Θ_S⟩_F / (‖Θ_T‖_F ‖Θ_S‖_F)              (scale-free, in [0, 2])
//   "cka":        the alignment of the centred kernels K̃ = H K H, H = I − 11ᵀ/B (centred kernel
//                 alignment, Cortes et al. 2012): blind to a constant added to every entry (an output
//                 offset common to all samples), which dominates the plain alignment of two NTKs whose
//                 entries are all positive; scale-free, in [0, 2]; ∂d/∂Θ_S = H (∂alignment/∂K̃_S) H.
//                 Undefined (NaN) when a centred kernel is 0, e.g. for B = 1.
struct KernelDistance {
  std::string kind = "alignment";
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
  double value(const MatD& teacher, const MatD& student) const;
  MatD grad(const MatD& teacher, const MatD& student) const;  // ∂d/∂Θ_S
};
// JSON form: the kind's name ("alignment").
inline void to_json(nlohmann::json& j, const KernelDistance& d) { j = d.kind; }
inline void from_json(const nlohmann::json& j, KernelDistance& d) { d.kind = j.get<std::string>(); }

}  // namespace hilo::distill
