#pragma once
// Optimisers over a fixed list of parameters (the list passed to the constructor must stay valid and
// in the same order for every step()). Each step reads p.grad and updates p.value in place.
// lr_scale (optional, one per parameter, in [0, 1]): parameter i moves at lr · lr_scale[i] (0 freezes
// it: step() leaves it alone; zero_grad() still clears its gradient).
//   SGD with momentum (torch convention): v ← μ·v + g + wd·θ;  θ ← θ − lr·v
//   Adam (Kingma & Ba): m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
//                       θ ← θ − lr · m̂ / (√v̂ + ε), m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ); L2 wd added to g.
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/layers.hpp"
#include "hilo/io/options_json.hpp"

namespace hilo::distill {

struct OptimizerOptions {
  std::string kind = "adam";  // "adam" | "sgd"
  double lr = 1e-3;
  double momentum = 0.9;      // sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam
  double weight_decay = 0.0;
  [[nodiscard]] std::string validate() const {  // "" when valid, else the violated rule
    if (kind != "adam" && kind != "sgd")
      return "optimizer.kind must be \"adam\" or \"sgd\", got \"" + kind + "\"";
    if (!(lr > 0)) return "optimizer.lr must be > 0, got " + std::to_string(lr);
    if (momentum < 0 || momentum >= 1)
      return "optimizer.momentum must be in [0, 1), got " + std::to_string(momentum);
    if (beta1 < 0 || beta1 >= 1 || beta2 < 0 || beta2 >= 1)
      return "optimizer.beta1 and beta2 must be in [0, 1)";
    if (weight_decay < 0) return "optimizer.weight_decay must be >= 0";
    return {};
  }
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(OptimizerOptions, kind, lr, momentum, beta1, beta2, eps, weight_decay)

template <typename T>
class Optimizer {
 public:
  Optimizer(std::vector<Param<T>> params, OptimizerOptions o, std::vector<double> lr_scale = {})
      : p_(std::move(params)), o_(o), scale_(std::move(lr_scale)) {
    io::require_valid(o_.validate());
    if (scale_.empty()) scale_.assign(p_.size(), 1.0);
    if (scale_.size() != p_.size())
      throw std::invalid_argument("optimizer: " + std::to_string(scale_.size()) + " learning-rate scales for " +
                                  std::to_string(p_.size()) + " parameters");
    for (double s : scale_)
      if (!(s >= 0 && s <= 1)) throw std::invalid_argument("optimizer: learning-rate scales must be in [0, 1]");
    for (auto& p : p_) {
      m_.push_back(Mat<T>::Zero(p.value->rows(), p.value->cols()));
      v_.push_back(Mat<T>::Zero(p.value->rows(), p.value->cols()));
    }
  }
  void set_lr(double lr) { o_.lr = lr; }
  double lr() const { return o_.lr; }
  void zero_grad() {
    for (auto& p : p_) p.grad->setZero();
  }
  void step() {
    ++t_;
    const T wd = static_cast<T>(o_.weight_decay);
    for (std::size_t i = 0; i < p_.size(); ++i) {
      if (scale_[i] == 0) continue;
      const T lr = static_cast<T>(scale_[i] == 1 ? o_.lr : o_.lr * scale_[i]);
      Mat<T> g = *p_[i].grad;
      if (wd > 0) g += wd * *p_[i].value;
      if (o_.kind == "sgd") {
        m_[i] = static_cast<T>(o_.momentum) * m_[i] + g;
        *p_[i].value -= lr * m_[i];
      } else {
        const T b1 = static_cast<T>(o_.beta1), b2 = static_cast<T>(o_.beta2);
        m_[i] = b1 * m_[i] + (T(1) - b1) * g;
        v_[i] = b2 * v_[i] + (T(1) - b2) * g.cwiseAbs2();
        const T c1 = T(1) - static_cast<T>(std::pow(o_.beta1, t_));
        const T c2 = T(1) - static_cast<T>(std::pow(o_.beta2, t_));
        p_[i].value->array() -=
            lr * (m_[i].array() / c1) / ((v_[i].array() / c2).sqrt() + static_cast<T>(o_.eps));
      }
    }
  }

 private:
  std::vector<Param<T>> p_;
  OptimizerOptions o_;
  std::vector<double> scale_;
  std::vector<Mat<T>> m_, v_;
  long t_ = 0;
};

}  // namespace hilo::distill
