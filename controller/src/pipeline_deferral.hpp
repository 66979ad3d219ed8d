#pragma once
// The bench stage's deferral study (docs/pipeline.md, "Deferral"): the deployed model hands its least
// confident test inputs to the digital teacher (distill/deferral.hpp) at rates 0–30 %. Thresholds come
// from each model's logits on the measured validation split when it was measured (a rule a lab can
// deploy: τ fixed before the test set is seen); without one (the evaluate job) from the test logits
// themselves, which makes the curve descriptive (the realised rate then equals the target exactly).
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/layers.hpp"

namespace hilo::controller {

struct DeferralModel {
  std::string name;          // "none", "ntkd f = 10 %", ...
  distill::MatD test_logits;  // the model on the measured test features
  distill::MatD val_logits;   // on the measured validation features; empty: thresholds from the test logits
};

// {"rule", "rates", "teacher_accuracy", "models": [{"name", "threshold_source", "points": [DeferralPoint]}]}
// and the figure `png` (combined test accuracy against the realised deferral rate, one line per model,
// the teacher alone as a flat line). Throws std::invalid_argument for mismatched sizes.
nlohmann::json deferral_study(const std::vector<DeferralModel>& models, const distill::MatD& teacher_test_logits,
                              const std::vector<int>& test_labels, const std::filesystem::path& png, const std::string& title);

}  // namespace hilo::controller
