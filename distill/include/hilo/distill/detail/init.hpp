#pragma once
// Template bodies of init_he and copy_weights (included from layers.hpp).
#include <cmath>
#include <random>
#include <stdexcept>

namespace hilo::distill {

template <typename T, typename Rng>
void init_he(Sequential<T>& net, Rng& rng) {
  for (const auto& l : net.layers()) {
    for (auto& p : l->params()) {
      if (p.name == "weight") {
        const double fan_in = static_cast<double>(p.value->cols());
        std::normal_distribution<double> n(0.0, std::sqrt(2.0 / fan_in));
        for (Eigen::Index i = 0; i < p.value->size(); ++i) p.value->data()[i] = static_cast<T>(n(rng));
      } else if (p.name == "gamma") {
        p.value->setOnes();
      } else {
        p.value->setZero();
      }
    }
  }
}

template <typename To, typename From>
void copy_weights(Sequential<To>& dst, Sequential<From>& src) {
  if (dst.size() != src.size()) throw std::invalid_argument("copy_weights: layer counts differ");
  for (std::size_t i = 0; i < dst.size(); ++i) {
    auto dp = dst.layer(i).params(), sp = src.layer(i).params();
    auto db = dst.layer(i).buffers(), sb = src.layer(i).buffers();
    dp.insert(dp.end(), db.begin(), db.end());
    sp.insert(sp.end(), sb.begin(), sb.end());
    if (dp.size() != sp.size()) throw std::invalid_argument("copy_weights: parameter counts differ");
    for (std::size_t j = 0; j < dp.size(); ++j) {
      if (dp[j].value->rows() != sp[j].value->rows() || dp[j].value->cols() != sp[j].value->cols())
        throw std::invalid_argument("copy_weights: shape of " + dp[j].name + " differs");
      *dp[j].value = sp[j].value->template cast<To>();
    }
  }
}

}  // namespace hilo::distill
