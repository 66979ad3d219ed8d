#pragma once
// The loss objects of the student and of compensation (loop.hpp: Loss; the task loss is TaskLoss there).
// Notation: s = student logits of the batch (B × C), y = labels, t = teacher logits of the same rows,
// p^T = softmax(·/T), CE = mean softmax cross-entropy. Each loss adds weight · its value and
// weight · its gradient; the formulas below are before the weight. Teacher outputs are given for every
// row of the training set (evaluation mode, computed once by the caller) and picked by the batch's rows.
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "hilo/distill/loop.hpp"
#include "hilo/distill/ntk.hpp"
#include "hilo/distill/student.hpp"

namespace hilo::distill {

// Soft-label KD (Hinton): L = (1−α)·CE(s, y) + α·T²·KL(p_t^T ‖ p_s^T) (KL summed over classes, mean over
// rows); ∂/∂s = (1−α)·∂CE/∂s + α·T·(p_s^T − p_t^T)/B. teacher_logits: N × C, alive for the loop. The float
// student's logits (B × C) are taken to double for the loss and its gradient returned in float.
template <typename T>
class BasicKdLoss final : public Loss<T> {
 public:
  BasicKdLoss(const MatD& teacher_logits, double temperature, double alpha, double weight = 1.0)
      : t_(teacher_logits), T_(temperature), alpha_(alpha), w_(weight) {}
  std::string name() const override { return "kd"; }
  double weight() const override { return w_; }
  void add_output_terms(const Batch<T>& b, StepTerms<T>& t) override;

 private:
  const MatD& t_;
  double T_, alpha_, w_;
};
using KdLoss = BasicKdLoss<double>;

// Generalized distillation (Lopez-Paz): L = (1−λ)·CE(s, y) + λ·CE(p_t^T, p_s), the teacher's soft labels
// from the clean images; ∂/∂s = (1−λ)·∂CE/∂s + λ·(p_s − p_t^T)/B. (The student's degraded input is the
// student model's business: its forward adds the input noise.)
class GdLoss final : public Loss<double> {
 public:
  GdLoss(const MatD& teacher_logits, double temperature, double lambda, double weight = 1.0)
      : t_(teacher_logits), T_(temperature), lambda_(lambda), w_(weight) {}
  std::string name() const override { return "gd"; }
  double weight() const override { return w_; }
  void add_output_terms(const Batch<double>& b, StepTerms<double>& t) override;

 private:
  const MatD& t_;
  double T_, lambda_, w_;
};

// Shared classifier (Jang et al.): L = w·CE(head_T(P h + b_P), y) + μ·mean((P h + b_P − φ_T)²), h = the
// student's hidden features of the batch (student.hidden() after its training forward), φ_T the
// teacher's penultimate features (N × F), head_T the teacher's last linear layer (W: C × F, b: 1 × C).
// The projector (P: F × hidden, N(0, 1/hidden) from rng at construction; b_P = 0) is the loss's own
// parameters; ∂/∂h goes to the student's hidden layer (StepTerms::dhidden). weight() is w.
// Head frozen (adapt_head false): params() is the projector alone. Adaptive teaching (adapt_head true):
// W and b are trained too, by the student's term through the shared head plus the teacher's own task
// loss on the same batch, κ·CE(head_T(φ_T), y) (κ = keep_weight, the constraint that keeps the teacher's
// accuracy); params() appends "shared_head.w" and "shared_head.b", and per epoch
// extra["teacher_keep_ce"] is the mean of CE(head_T(φ_T), y) over the steps.
class SharedClassifierLoss final : public Loss<double> {
 public:
  SharedClassifierLoss(const OpticalStudent& student, const MatD& teacher_features, MatD head_w, MatD head_b,
                       double w, double mu, std::mt19937_64& rng, bool adapt_head = false, double keep_weight = 0.0);
  std::string name() const override { return "shared"; }
  double weight() const override { return w_; }
  void add_output_terms(const Batch<double>& b, StepTerms<double>& t) override;
  std::vector<Param<double>> params() override;
  void close_epoch(nlohmann::json& extra) override;
  // The shared path's logits of student hidden features h (n × hidden): head_T(P h + b_P).
  MatD student_logits(const MatD& h) const;
  // The (current) teacher head's logits of teacher penultimate features f (n × F): f Wᵀ + b.
  MatD teacher_logits(const MatD& f) const;
  // The shared path as one linear layer of the student's hidden features (it is linear in h):
  // W' = W P (C × hidden), b' = b_P Wᵀ + b (1 × C).
  std::pair<MatD, MatD> folded() const;

 private:
  const OpticalStudent& s_;
  const MatD& tf_;
  MatD head_w_, head_b_, pw_, pb_, gpw_, gpb_, ghw_, ghb_;
  double w_, mu_;
  bool adapt_;
  double keep_;
  EpochMean keep_ce_;
};

// NTK matching (Xiang et al.): L = d(Θ_T, Θ_S) for the step's pair of kernels; ∂/∂θ through
// BasicOpticalStudent<T>::ntk_backward. `kernels(b, Θ_T, Θ_S)` supplies the pair for step b, or returns
// false for a step without the term; it must compute Θ_S last, with the student's ntk() or
// ntk_at_features(), whose caches ntk_backward reads. Θ and d are double for either T.
// Per epoch: extra["ntk_distance"] = mean d over the steps with the term.
template <typename T>
class BasicNtkLoss final : public Loss<T> {
 public:
  using Kernels = std::function<bool(const Batch<T>& b, MatD& theta_t, MatD& theta_s)>;
  BasicNtkLoss(BasicOpticalStudent<T>& student, KernelDistance distance, double weight, Kernels kernels)
      : s_(student), d_(std::move(distance)), w_(weight), kernels_(std::move(kernels)) {}
  std::string name() const override { return "ntk"; }
  double weight() const override { return w_; }
  void add_parameter_terms(const Batch<T>& b, StepTerms<T>& t) override;
  void close_epoch(nlohmann::json& extra) override;

 private:
  BasicOpticalStudent<T>& s_;
  KernelDistance d_;
  double w_;
  Kernels kernels_;
  EpochMean distance_;
};
using NtkLoss = BasicNtkLoss<double>;

// L2-SP anchor: L = ½·‖θ − θ₀‖² over `params`, θ₀ their values at construction; ∂/∂θ = θ − θ₀.
class AnchorLoss final : public Loss<double> {
 public:
  AnchorLoss(std::vector<Param<double>> params, double weight);
  std::string name() const override { return "anchor"; }
  double weight() const override { return w_; }
  void add_parameter_terms(const Batch<double>& b, StepTerms<double>& t) override;

 private:
  std::vector<Param<double>> p_;
  std::vector<MatD> theta0_;
  double w_;
};

}  // namespace hilo::distill
