#pragma once
// Small robust statistics shared by the calibration sources (internal).
#include <algorithm>
#include <cmath>
#include <vector>

#include "hilo/sim/field.hpp"

namespace hilo::calibration::detail {

inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  const auto mid = v.begin() + std::ptrdiff_t(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  if (v.size() % 2 == 1) return *mid;
  const double hi = *mid;
  const double lo = *std::max_element(v.begin(), mid);
  return 0.5 * (lo + hi);
}

// 1.4826 · median |v − median(v)|: the standard deviation of Gaussian data, robust to outliers.
inline double robust_sigma(const std::vector<double>& v, double centre) {
  std::vector<double> d(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) d[i] = std::abs(v[i] - centre);
  return 1.4826 * median(std::move(d));
}

// Pearson correlation of two arrays of the same shape (0 when either is constant).
inline double pearson(const sim::RArray& a, const sim::RArray& b) {
  const sim::RArray x = a - a.mean(), y = b - b.mean();
  const double d = std::sqrt(x.square().sum() * y.square().sum());
  return d > 0 ? (x * y).sum() / d : 0.0;
}

}  // namespace hilo::calibration::detail
