#include "hilo/distill/deferral.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace hilo::distill {

namespace {

void check_logits(const MatD& z, const char* what) {
  if (z.cols() < 2) throw std::invalid_argument(std::string(what) + ": logits need at least 2 classes, got " + std::to_string(z.cols()));
  if (!z.allFinite()) throw std::invalid_argument(std::string(what) + ": logits must be finite");
}

void check_rate(double r) {
  if (!(r >= 0.0 && r <= 1.0)) throw std::invalid_argument("deferral: rate must be in [0, 1], got " + std::to_string(r));
}

int argmax(const MatD& z, Eigen::Index i) {
  Eigen::Index k = 0;
  z.row(i).maxCoeff(&k);
  return int(k);
}

}  // namespace

std::vector<double> confidence(const MatD& z) {
  check_logits(z, "confidence");
  std::vector<double> c(std::size_t(z.rows()));
  for (Eigen::Index i = 0; i < z.rows(); ++i) {
    const double m = z.row(i).maxCoeff();
    c[std::size_t(i)] = 1.0 / (z.row(i).array() - m).exp().sum();  // the largest softmax entry
  }
  return c;
}

std::vector<double> deferral_thresholds(const MatD& heldout, const std::vector<double>& rates) {
  std::vector<double> c = confidence(heldout);
  if (c.empty()) throw std::invalid_argument("deferral: no held-out inputs");
  std::sort(c.begin(), c.end());
  std::vector<double> t;
  for (double r : rates) {
    check_rate(r);
    const auto k = std::size_t(std::ceil(r * double(c.size()) - 1e-9));
    t.push_back(k == 0 ? 0.0 : k >= c.size() ? std::nextafter(c.back(), 2.0) : c[k]);
  }
  return t;
}

std::vector<bool> deferred(const MatD& logits, double threshold) {
  std::vector<bool> d;
  for (const auto& x : decide(logits, nullptr, threshold)) d.push_back(x.deferred);
  return d;
}

std::string_view deferral_rule() {
  return "defer when the deployed model's largest softmax probability max_k softmax(z)_k is below the threshold; "
         "a deferred input takes the teacher's class on the clean input";
}

std::vector<DeferralDecision> decide(const MatD& model, const MatD* teacher, double threshold) {
  if (!(threshold >= 0.0 && std::isfinite(threshold)))
    throw std::invalid_argument("deferral: threshold must be finite and >= 0, got " + std::to_string(threshold));
  const std::vector<double> c = confidence(model);
  if (teacher) {
    check_logits(*teacher, "deferral (teacher)");
    if (teacher->rows() != model.rows() || teacher->cols() != model.cols())
      throw std::invalid_argument("deferral: model logits " + std::to_string(model.rows()) + " x " + std::to_string(model.cols()) +
                                  " and teacher logits " + std::to_string(teacher->rows()) + " x " +
                                  std::to_string(teacher->cols()) + " must agree");
  }
  std::vector<DeferralDecision> out(c.size());
  for (std::size_t i = 0; i < c.size(); ++i) {
    const auto r = Eigen::Index(i);
    out[i] = {argmax(model, r), c[i], c[i] < threshold, teacher ? argmax(*teacher, r) : -1};
  }
  return out;
}

std::vector<DeferralPoint> deferral_curve(const MatD& model, const MatD& teacher, const std::vector<int>& labels,
                                          const std::vector<double>& rates, const std::vector<double>& thresholds) {
  check_logits(teacher, "deferral (teacher)");
  check_logits(model, "deferral (model)");
  if (model.rows() != teacher.rows() || model.cols() != teacher.cols() || std::size_t(model.rows()) != labels.size())
    throw std::invalid_argument("deferral: model logits " + std::to_string(model.rows()) + " x " + std::to_string(model.cols()) +
                                ", teacher logits " + std::to_string(teacher.rows()) + " x " + std::to_string(teacher.cols()) +
                                " and " + std::to_string(labels.size()) + " labels must agree");
  if (rates.size() != thresholds.size()) throw std::invalid_argument("deferral: one threshold per rate");
  for (int y : labels)
    if (y < 0 || y >= model.cols()) throw std::invalid_argument("deferral: label " + std::to_string(y) + " out of range");
  std::vector<DeferralPoint> out;
  for (std::size_t j = 0; j < rates.size(); ++j) {
    check_rate(rates[j]);
    const std::vector<DeferralDecision> d = decide(model, &teacher, thresholds[j]);
    std::size_t n_def = 0, ok = 0, ok_model = 0, ok_teacher = 0;
    for (std::size_t i = 0; i < d.size(); ++i) {
      const bool to_teacher = d[i].deferred;
      const bool right = d[i].decision() == labels[i];
      ok += right;
      if (to_teacher) {
        ++n_def;
        ok_teacher += right;
      } else {
        ok_model += right;
      }
    }
    const double n = double(labels.size());
    const std::size_t kept = labels.size() - n_def;
    out.push_back({rates[j], thresholds[j], n > 0 ? double(n_def) / n : 0.0, n > 0 ? double(ok) / n : 0.0,
                   kept ? double(ok_model) / double(kept) : 0.0, n_def ? double(ok_teacher) / double(n_def) : 0.0});
  }
  return out;
}

nlohmann::json DeferralPoint::to_json() const {
  return {{"target_rate", target_rate}, {"threshold", threshold}, {"rate", rate}, {"accuracy", accuracy},
          {"model_accuracy", model_accuracy}, {"teacher_accuracy", teacher_accuracy}};
}

}  // namespace hilo::distill
