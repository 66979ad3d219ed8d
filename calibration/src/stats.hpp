#pragma once
// Small robust statistics shared by the calibration sources (internal).
#include <algorithm>
#include <cmath>
#include <vector>

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

}  // namespace hilo::calibration::detail
