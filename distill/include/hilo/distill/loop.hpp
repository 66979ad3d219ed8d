#pragma once
// The one training loop of hilo: the teacher, the student and compensation's backend re-fit all run it.
//
// A loop trains a model (TrainModel: its parameters, a training forward of chosen rows of the training
// set, a backward) on an objective that is a list of loss objects (Loss: task, KD, generalized, shared
// classifier, NTK matching, anchor). Per epoch it shuffles the row order with the caller's seeded rng,
// then per batch of rows:
//   zero the gradients → set the scheduled learning rate → model.forward(rows, rng) [the per-batch hook:
//   every draw of a batch (input noise, camera noise, augmentation) happens there, in a fixed order] →
//   each loss adds its output terms (value, ∂/∂logits, ∂/∂hidden) → model.backward → each loss adds its
//   parameter terms (value, ∂/∂θ straight into the gradients) → optimiser step.
// After each epoch: validation (the caller's function), the losses' per-epoch statistics into
// EpochRecord::extra, the record appended to the History (best_val_acc kept) and reported.
// Stop: ctl's stop token is polled before every step; a stopped loop returns History::cancelled = true.
//
// Reproducibility: the loop draws from rng only to shuffle (once per epoch, before the epoch's steps);
// the model and the losses draw in the order above. The same rng state, model and losses give
// bit-identical histories and weights.
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/layers.hpp"
#include "hilo/distill/optim.hpp"
#include "hilo/distill/train.hpp"

namespace hilo::distill {

// Rows `rows` of m, in that order.
template <typename T>
Mat<T> take_rows(const Mat<T>& m, std::span<const int> rows) {
  Mat<T> out(static_cast<Eigen::Index>(rows.size()), m.cols());
  for (std::size_t i = 0; i < rows.size(); ++i) out.row(static_cast<Eigen::Index>(i)) = m.row(rows[i]);
  return out;
}

// One step's batch as the losses see it.
template <typename T>
struct Batch {
  std::span<const int> rows;      // rows of the training set
  const std::vector<int>& labels; // their labels, in the same order
  const Mat<T>& logits;           // the model's training forward of these rows (B × classes)
  std::size_t step;               // global step t, from 0 over all epochs
  std::mt19937_64& rng;           // the loop's generator (for losses that draw, e.g. a probe NTK)
};

// What the losses of one step add up: the objective's value and its gradient w.r.t. the model's
// outputs. dlogits is empty until a loss adds to it; dhidden stays empty unless a loss acts on the
// model's hidden features (the shared classifier).
template <typename T>
struct StepTerms {
  double loss = 0;
  Mat<T> dlogits, dhidden;
  // dlogits += g (dlogits = g when still empty).
  void add_dlogits(const Mat<T>& g) {
    if (dlogits.size() == 0) dlogits = g;
    else dlogits += g;
  }
};

// One term of an objective. A loss adds its own weighted value and gradients (weight · L and
// weight · ∂L/∂·): a term's arithmetic stays in one place, in the order its formula states it.
template <typename T>
class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string name() const = 0;
  virtual double weight() const = 0;
  // Before the model's backward: adds to t.loss, t.dlogits and/or t.dhidden.
  virtual void add_output_terms(const Batch<T>& b, StepTerms<T>& t) {
    (void)b;
    (void)t;
  }
  // After the model's backward: adds to t.loss and straight into parameter gradients.
  virtual void add_parameter_terms(const Batch<T>& b, StepTerms<T>& t) {
    (void)b;
    (void)t;
  }
  // Trainable parameters the loss owns (the shared classifier's projector), optimised after the model's.
  virtual std::vector<Param<T>> params() { return {}; }
  // Per-epoch statistics (e.g. "ntk_distance") written into the epoch's extra; then reset.
  virtual void close_epoch(nlohmann::json& extra) { (void)extra; }
};

template <typename T>
using Losses = std::vector<std::unique_ptr<Loss<T>>>;

// The per-epoch mean of a value a loss records once per step, for its close_epoch.
class EpochMean {
 public:
  void add(double v) {
    sum_ += v;
    ++n_;
  }
  // extra[key] = the mean of the values added since the last close (nothing when none was); then resets.
  void close(nlohmann::json& extra, const char* key) {
    if (n_) extra[key] = sum_ / n_;
    sum_ = 0;
    n_ = 0;
  }

 private:
  double sum_ = 0;
  int n_ = 0;
};

// Task loss: weight · CE(logits, labels) (mean softmax cross-entropy).
template <typename T>
class TaskLoss final : public Loss<T> {
 public:
  explicit TaskLoss(double weight = 1.0) : w_(weight) {}
  std::string name() const override { return "task"; }
  double weight() const override { return w_; }
  void add_output_terms(const Batch<T>& b, StepTerms<T>& t) override;

 private:
  double w_;
};

// What a loop trains. The parameters returned must stay valid for the whole loop.
template <typename T>
class TrainModel {
 public:
  virtual ~TrainModel() = default;
  virtual std::vector<Param<T>> params() = 0;
  // The per-batch hook: the training forward of training rows `rows` → logits (B × classes). Every draw
  // a batch needs (input noise, camera noise, augmentation) comes from rng, here.
  virtual Mat<T> forward(std::span<const int> rows, std::mt19937_64& rng) = 0;
  // Backward of the last forward: accumulates parameter gradients from t.dlogits (and t.dhidden when
  // not empty).
  virtual void backward(const StepTerms<T>& t) = 0;
  // The training accuracy of one step's batch, for the epoch's train_acc. Default: the fraction of rows
  // whose argmax is the row's label (classification); a per-pixel model counts pixels instead.
  virtual double batch_accuracy(const Mat<T>& logits, const Batch<T>& b) { return accuracy(logits, b.labels); }
  // Everything the trained function depends on that training changes: what the convergence rule copies at
  // the best epoch and restores at the end. Default: the parameters' values; a model with other state
  // that training moves (batch-norm running statistics) adds it.
  virtual std::vector<Mat<T>*> state() {
    std::vector<Mat<T>*> s;
    for (auto& p : params()) s.push_back(p.value);
    return s;
  }
};

struct LoopOptions {
  std::string job;                  // the stage name progress reports ("train-teacher", "distill", …)
  int epochs = 1;                   // >= 0
  int batch_size = 64;              // >= 1
  bool partial_batch = false;       // false: the last N mod batch rows of an epoch are left out
  OptimizerOptions optimizer{};     // its lr is the base rate of the schedule
  std::string schedule = "cosine";  // as TrainOptions::schedule
  std::vector<double> lr_scale;     // per parameter (model's, then the losses'), in [0, 1]; empty: all 1
  EarlyStop early_stop{};           // the convergence rule (train.hpp); epochs is then the cap
  // Called after each epoch's validation, before the record is closed: adds report-only entries to the
  // epoch's extra (e.g. the test accuracy of TrainOptions::log_test_acc); its time is left out of
  // EpochRecord::seconds (which holds the epoch's training steps and validation). May be empty.
  std::function<void(nlohmann::json& extra)> epoch_extra;
};

// The loop options of TrainOptions (epochs, batch, optimiser, schedule, convergence rule) under the stage
// name `job`.
LoopOptions loop_options(const TrainOptions& o, std::string job);

// Trains `model` on the objective Σ losses over the training rows 0..labels.size()−1 (labels[i] the
// label of row i). `validate` (may be empty: 0) gives the validation accuracy after each epoch.
// With o.early_stop on, stops by that rule and leaves model.state() as it was after the best epoch
// (History::stop_reason, stopped_epoch, best_epoch say what happened; a cancelled loop keeps the
// current state). Returns the History (test_acc left NaN). Throws std::invalid_argument for epochs < 0,
// batch < 1, an lr_scale of the wrong length or outside [0, 1], no losses, an invalid early_stop, or
// early_stop on without `validate`.
template <typename T>
History train_loop(TrainModel<T>& model, const Losses<T>& losses, const std::vector<int>& labels, const LoopOptions& o,
                   std::mt19937_64& rng, const std::function<double()>& validate, const JobControl& ctl);

}  // namespace hilo::distill
