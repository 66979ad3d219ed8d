#pragma once
// Deferral: routine inputs on the deployed (optical) model, exceptions to the digital teacher. The
// deployed model's confidence in an input is c = max_k softmax(z)_k of its logits z; an input with
// c < τ is deferred: its decision is the teacher's argmax on the clean digital input instead.
//
// The threshold is chosen where the teacher is not: on held-out data of the deployed model (the
// measured validation split on a bench), τ_r = the (k+1)-th smallest confidence there, k = ⌈r·N⌉, so
// that the k least confident of those inputs fall below it (k = N: τ just above the largest); inputs
// tied at τ are not deferred, so the realised share may be a little below r. Applied to unseen inputs (the test set) the realised share differs from r by sampling; both
// are reported. r = 0 gives τ = 0 (nothing deferred).
//
// All functions are pure; logits are N × C (C >= 2), labels in [0, C). Mismatched sizes, C < 2,
// non-finite logits or a rate outside [0, 1] throw std::invalid_argument naming the rule.
// This file is the one home of the rule: the pipeline report's curve (deferral_curve) and the daemon's
// `defer` command (decide) both take their decisions from decide().
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/layers.hpp"

namespace hilo::distill {

// c_i = max_k softmax(z_i)_k, in (1/C, 1].
std::vector<double> confidence(const MatD& logits);

// τ_r for each rate r on held-out logits (see above).
std::vector<double> deferral_thresholds(const MatD& heldout_logits, const std::vector<double>& rates);

struct DeferralPoint {
  double target_rate = 0;   // r
  double threshold = 0;     // τ_r
  double rate = 0;          // share of the evaluated inputs deferred
  double accuracy = 0;      // of the combined decisions
  double model_accuracy = 0;    // the deployed model alone on the inputs it kept (0 when none kept)
  double teacher_accuracy = 0;  // the teacher on the inputs it was handed (0 when none deferred)
  nlohmann::json to_json() const;
};

// The combined decisions at each threshold: per input the model's argmax, or the teacher's when deferred.
std::vector<DeferralPoint> deferral_curve(const MatD& model_logits, const MatD& teacher_logits, const std::vector<int>& labels,
                                          const std::vector<double>& rates, const std::vector<double>& thresholds);

// Which inputs a threshold defers (c < τ).
std::vector<bool> deferred(const MatD& logits, double threshold);

// The rule above in words, for reports and replies.
std::string_view deferral_rule();

// One input's outcome: the deployed model's class and confidence, whether it was deferred, and the
// teacher's class when the teacher's logits were given (-1 otherwise). decision() is the combined one:
// the teacher's class when deferred (-1 when deferred without teacher logits), else the model's.
struct DeferralDecision {
  int model_class = 0;
  double confidence = 0;
  bool deferred = false;
  int teacher_class = -1;
  int decision() const { return deferred ? teacher_class : model_class; }
};

// Per input, the rule at threshold τ (finite, >= 0; 0 defers nothing, > 1 everything). teacher_logits: null, or one row
// per input with the model's class count (else std::invalid_argument).
std::vector<DeferralDecision> decide(const MatD& model_logits, const MatD* teacher_logits, double threshold);

}  // namespace hilo::distill
