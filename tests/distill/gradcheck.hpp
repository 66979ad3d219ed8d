#pragma once
// Finite-difference helpers shared by the distill tests (double precision, central differences).
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "hilo/distill/layers.hpp"

namespace hilo::distill::testing {

// r × c matrix of N(0, s²) draws from rng.
inline MatD randn(Eigen::Index r, Eigen::Index c, std::mt19937_64& rng, double s = 1.0) {
  std::normal_distribution<double> n(0.0, s);
  return MatD::NullaryExpr(r, c, [&] { return n(rng); });
}

// Relative error ‖a − n‖ / max(‖a‖, ‖n‖, tiny) between analytic and numeric gradients.
inline double rel_err(const MatD& a, const MatD& n) {
  const double den = std::max({a.norm(), n.norm(), 1e-300});
  return (a - n).norm() / den;
}

// Central-difference gradient of f with respect to every entry of m (each entry restored afterwards).
inline MatD numeric_grad(MatD& m, const std::function<double()>& f, double h = 1e-6) {
  MatD g(m.rows(), m.cols());
  for (Eigen::Index i = 0; i < m.size(); ++i) {
    const double v = m.data()[i];
    m.data()[i] = v + h;
    const double fp = f();
    m.data()[i] = v - h;
    const double fm = f();
    m.data()[i] = v;
    g.data()[i] = (fp - fm) / (2 * h);
  }
  return g;
}

// Each parameter's analytic gradient (already in *p.grad) against central differences of f; relative
// error below tol, failures labelled with `label` and the parameter's name.
inline void expect_grads_match_fd(const std::vector<Param<double>>& params, const std::function<double()>& f,
                                  const std::string& label, double tol = 1e-4) {
  for (const auto& p : params) {
    const MatD g = *p.grad;
    EXPECT_LT(rel_err(g, numeric_grad(*p.value, f)), tol) << label << " " << p.name;
  }
}

// Checks dL/dx and dL/dθ of L = Σ R ⊙ layer(x) for one layer, R drawn from rng.
inline void check_layer(Layer<double>& layer, MatD x, bool train, std::mt19937_64& rng, double tol = 1e-4) {
  const MatD y0 = layer.forward(x, train);
  const MatD R = randn(y0.rows(), y0.cols(), rng);
  auto loss = [&] { return layer.forward(x, train).cwiseProduct(R).sum(); };
  for (auto& p : layer.params()) p.grad->setZero();
  layer.forward(x, train);
  const MatD dx = layer.backward(R);
  EXPECT_LT(rel_err(dx, numeric_grad(x, loss)), tol) << layer.type() << " input gradient";
  for (auto& p : layer.params()) {
    const MatD g = *p.grad;
    EXPECT_LT(rel_err(g, numeric_grad(*p.value, loss)), tol) << layer.type() << " " << p.name;
  }
}

}  // namespace hilo::distill::testing
