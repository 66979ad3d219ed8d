#include "hilo/calibration/subset.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace hilo::calibration {

std::string to_string(SubsetStrategy s) {
  switch (s) {
    case SubsetStrategy::random: return "random";
    case SubsetStrategy::class_balanced: return "class_balanced";
    case SubsetStrategy::coverage: return "coverage";
    case SubsetStrategy::uncertainty: return "uncertainty";
  }
  return "?";
}

SubsetStrategy parse_subset_strategy(const std::string& name) {
  for (auto s : {SubsetStrategy::random, SubsetStrategy::class_balanced, SubsetStrategy::coverage, SubsetStrategy::uncertainty})
    if (to_string(s) == name) return s;
  throw std::invalid_argument("subset.strategy must be one of random, class_balanced, coverage, uncertainty, got '" + name + "'");
}

std::string SubsetOptions::validate() const {
  if (!(fraction > 0.0 && fraction <= 1.0)) return "subset.fraction must be in (0, 1], got " + std::to_string(fraction);
  return {};
}

std::size_t subset_size(std::size_t n, double fraction) {
  if (n == 0) throw std::invalid_argument("subset: the training set must not be empty");
  if (!(fraction > 0.0 && fraction <= 1.0))
    throw std::invalid_argument("subset.fraction must be in (0, 1], got " + std::to_string(fraction));
  const auto m = static_cast<std::size_t>(std::llround(fraction * double(n)));
  return std::clamp<std::size_t>(m, 1, n);
}

namespace {

void check_m(std::size_t n, std::size_t m) {
  if (n == 0) throw std::invalid_argument("subset: the training set must not be empty");
  if (m < 1 || m > n)
    throw std::invalid_argument("subset: the subset size must be in [1, " + std::to_string(n) + "], got " +
                                std::to_string(m));
}

// First m entries of v become a uniform draw without replacement (partial Fisher–Yates).
void partial_shuffle(std::vector<std::size_t>& v, std::size_t m, std::mt19937_64& rng) {
  for (std::size_t i = 0; i < m; ++i) {
    std::uniform_int_distribution<std::size_t> pick(i, v.size() - 1);
    std::swap(v[i], v[pick(rng)]);
  }
}

}  // namespace

std::vector<std::size_t> select_random(std::size_t n, std::size_t m, std::mt19937_64& rng) {
  check_m(n, m);
  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  partial_shuffle(idx, m, rng);
  idx.resize(m);
  std::sort(idx.begin(), idx.end());
  return idx;
}

std::vector<std::size_t> class_quotas(const std::vector<int>& labels, std::size_t m) {
  check_m(labels.size(), m);
  int top = 0;
  for (int l : labels) {
    if (l < 0) throw std::invalid_argument("subset: labels must be >= 0, got " + std::to_string(l));
    top = std::max(top, l);
  }
  std::vector<std::size_t> avail(std::size_t(top) + 1, 0), quota(avail.size(), 0);
  for (int l : labels) ++avail[std::size_t(l)];
  std::size_t remaining = m;
  while (remaining > 0) {
    std::vector<std::size_t> open;  // classes with room, ascending label
    for (std::size_t c = 0; c < avail.size(); ++c)
      if (quota[c] < avail[c]) open.push_back(c);
    const std::size_t share = remaining / open.size();  // open is never empty: m ≤ n
    if (share == 0) {
      for (std::size_t i = 0; i < remaining; ++i) ++quota[open[i]];
      break;
    }
    for (std::size_t c : open) {
      const std::size_t add = std::min(share, avail[c] - quota[c]);
      quota[c] += add;
      remaining -= add;
    }
  }
  return quota;
}

std::vector<std::size_t> select_class_balanced(const std::vector<int>& labels, std::size_t m, std::mt19937_64& rng) {
  const std::vector<std::size_t> quota = class_quotas(labels, m);
  std::vector<std::vector<std::size_t>> members(quota.size());
  for (std::size_t i = 0; i < labels.size(); ++i) members[std::size_t(labels[i])].push_back(i);
  std::vector<std::size_t> out;
  out.reserve(m);
  for (std::size_t c = 0; c < quota.size(); ++c) {  // classes in ascending order: the draws are reproducible
    partial_shuffle(members[c], quota[c], rng);
    out.insert(out.end(), members[c].begin(), members[c].begin() + std::ptrdiff_t(quota[c]));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::size_t> select_k_center(const Eigen::Ref<const Eigen::MatrixXd>& features, std::size_t m,
                                         std::mt19937_64& rng) {
  const auto n = std::size_t(features.rows());
  check_m(n, m);
  if (!features.allFinite()) throw std::invalid_argument("subset: features must be finite");
  std::uniform_int_distribution<std::size_t> first(0, n - 1);
  std::vector<std::size_t> chosen{first(rng)};
  Eigen::VectorXd d2 = (features.rowwise() - features.row(Eigen::Index(chosen[0]))).rowwise().squaredNorm();
  while (chosen.size() < m) {
    Eigen::Index far = 0;
    d2.maxCoeff(&far);  // the first maximum: ties go to the lowest index
    chosen.push_back(std::size_t(far));
    d2 = d2.cwiseMin((features.rowwise() - features.row(far)).rowwise().squaredNorm());
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

std::vector<std::size_t> select_uncertain(const std::vector<int>& labels, const Eigen::Ref<const Eigen::MatrixXd>& logits,
                                          std::size_t m, std::mt19937_64& rng) {
  const std::vector<std::size_t> quota = class_quotas(labels, m);
  if (std::size_t(logits.rows()) != labels.size() || logits.cols() < 2)
    throw std::invalid_argument("subset: uncertainty needs one row of at least 2 teacher outputs per sample (" +
                                std::to_string(labels.size()) + "), got " + std::to_string(logits.rows()) + " x " +
                                std::to_string(logits.cols()));
  if (!logits.allFinite()) throw std::invalid_argument("subset: features must be finite");
  const double floor = 0.05 * std::log(double(logits.cols()));
  std::vector<std::vector<std::pair<double, std::size_t>>> keyed(quota.size());
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const Eigen::RowVectorXd z = logits.row(Eigen::Index(i)).array() - logits.row(Eigen::Index(i)).maxCoeff();
    const Eigen::RowVectorXd p = z.array().exp() / z.array().exp().sum();
    double h = 0;
    for (Eigen::Index c = 0; c < p.size(); ++c)
      if (p[c] > 0) h -= p[c] * std::log(p[c]);
    // log of the Efraimidis–Spirakis key u^(1/w): larger is chosen first.
    const double key = std::log(std::max(u(rng), 1e-300)) / (h + floor);
    keyed[std::size_t(labels[i])].push_back({key, i});
  }
  std::vector<std::size_t> out;
  out.reserve(m);
  for (std::size_t c = 0; c < quota.size(); ++c) {
    auto& k = keyed[c];
    std::partial_sort(k.begin(), k.begin() + std::ptrdiff_t(quota[c]), k.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (std::size_t j = 0; j < quota[c]; ++j) out.push_back(k[j].second);
  }
  std::sort(out.begin(), out.end());
  return out;
}

double covering_radius(const Eigen::Ref<const Eigen::MatrixXd>& features, const std::vector<std::size_t>& chosen) {
  if (chosen.empty()) throw std::invalid_argument("covering_radius: no centres");
  Eigen::VectorXd d2 = Eigen::VectorXd::Constant(features.rows(), std::numeric_limits<double>::infinity());
  for (std::size_t c : chosen) {
    if (c >= std::size_t(features.rows()))
      throw std::invalid_argument("covering_radius: centre " + std::to_string(c) + " out of range");
    d2 = d2.cwiseMin((features.rowwise() - features.row(Eigen::Index(c))).rowwise().squaredNorm());
  }
  return std::sqrt(d2.maxCoeff());
}

std::vector<std::size_t> select_subset(const SubsetOptions& options, const std::vector<int>& labels,
                                       const Eigen::Ref<const Eigen::MatrixXd>& features, std::mt19937_64& rng) {
  if (const auto e = options.validate(); !e.empty()) throw std::invalid_argument(e);
  const std::size_t n = labels.size();
  const std::size_t m = subset_size(n, options.fraction);
  switch (options.strategy) {
    case SubsetStrategy::random: return select_random(n, m, rng);
    case SubsetStrategy::class_balanced: return select_class_balanced(labels, m, rng);
    case SubsetStrategy::coverage:
      if (std::size_t(features.rows()) != n)
        throw std::invalid_argument("subset: coverage needs one feature row per sample (" + std::to_string(n) +
                                    "), got " + std::to_string(features.rows()));
      return select_k_center(features, m, rng);
    case SubsetStrategy::uncertainty: return select_uncertain(labels, features, m, rng);
  }
  throw std::invalid_argument("subset: unknown strategy");
}

}  // namespace hilo::calibration
