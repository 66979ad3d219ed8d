#pragma once
// Which training samples are measured through the bench: a fraction f of the training set, chosen by
// a strategy (DESIGN §6). Pure functions over labels and feature matrices; randomness only from the
// caller's seeded generator, so a (strategy, f, seed) triple names one subset.
//
// Size: m = max(1, round(f · n)) for n samples, f ∈ (0, 1] (subset_size).
// Strategies:
//   random          m distinct indices, uniform without replacement (partial Fisher–Yates).
//   class_balanced  exact per-class quotas: m is shared equally among the classes present; a class with
//                   fewer samples than its share gives all it has and the shortfall is shared among the
//                   others (water-filling), and the remainder of the equal division goes one each to the
//                   classes with room left in ascending label order. Classes with room therefore get
//                   quotas that differ by at most 1. Within a class the samples are drawn uniformly.
//   coverage        k-center greedy (farthest-point traversal, Gonzalez 1985) on the rows of a feature
//                   matrix (the teacher's features of the training images): the first centre is a
//                   seeded uniform draw, each next one is the sample farthest (Euclidean) from the
//                   centres chosen so far, ties to the lowest index. Its covering radius
//                   max_i min_c ‖x_i − x_c‖ is at most 2× the optimum for m centres. Cost O(n · m · D)
//                   time, O(n) extra memory.
//   uncertainty     the teacher's uncertain samples, class by class: the per-class quotas of
//                   class_balanced, and within a class a seeded draw without replacement with weight
//                   w_i = H_i + 0.05·ln C, H_i the entropy (nats) of softmax(features row i) — the teacher's
//                   outputs (logits) — and C the number of columns (Efraimidis–Spirakis keys u_i^(1/w_i),
//                   the m_c largest). Confident samples (H ≈ 0) keep a small weight, so a class with few
//                   uncertain samples still fills its quota. Active learning's classic signal: does
//                   measuring the images the teacher finds hard calibrate the bench better than a
//                   balanced random draw? (Measured: docs/calibration.md, "Which images to measure".)
// Results are sorted ascending (the order in which a capture job would walk the dataset).
// Invalid arguments (f outside (0, 1], negative labels, a feature matrix whose row count is not n,
// non-finite features, an empty set) throw std::invalid_argument naming the rule.
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

namespace hilo::calibration {

enum class SubsetStrategy { random, class_balanced, coverage, uncertainty };

// "random", "class_balanced", "coverage", "uncertainty"; parse throws std::invalid_argument for another name.
std::string to_string(SubsetStrategy s);
SubsetStrategy parse_subset_strategy(const std::string& name);
// JSON form: the strategy's name ("class_balanced").
inline void to_json(nlohmann::json& j, SubsetStrategy s) { j = to_string(s); }
inline void from_json(const nlohmann::json& j, SubsetStrategy& s) { s = parse_subset_strategy(j.get<std::string>()); }

struct SubsetOptions {
  SubsetStrategy strategy = SubsetStrategy::class_balanced;
  double fraction = 0.1;  // f, (0, 1]

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};

// m = max(1, round(f · n)); throws for n = 0 or f outside (0, 1].
std::size_t subset_size(std::size_t n, double fraction);

std::vector<std::size_t> select_random(std::size_t n, std::size_t m, std::mt19937_64& rng);

// Per-class quotas for m samples (see above): quota[c] for c = 0 … max label. Pure, deterministic.
std::vector<std::size_t> class_quotas(const std::vector<int>& labels, std::size_t m);
std::vector<std::size_t> select_class_balanced(const std::vector<int>& labels, std::size_t m, std::mt19937_64& rng);

// features: n × D, one sample per row.
std::vector<std::size_t> select_k_center(const Eigen::Ref<const Eigen::MatrixXd>& features, std::size_t m,
                                         std::mt19937_64& rng);
// logits: n × C, one sample per row (the teacher's outputs), C >= 2.
std::vector<std::size_t> select_uncertain(const std::vector<int>& labels, const Eigen::Ref<const Eigen::MatrixXd>& logits,
                                          std::size_t m, std::mt19937_64& rng);
// max over rows of the distance to the nearest chosen row; throws for an empty or out-of-range choice.
double covering_radius(const Eigen::Ref<const Eigen::MatrixXd>& features, const std::vector<std::size_t>& chosen);

// The strategy of `options` over a training set of labels.size() samples. `features` is needed by
// coverage and uncertainty only (n × D, the teacher's outputs; may be empty otherwise).
std::vector<std::size_t> select_subset(const SubsetOptions& options, const std::vector<int>& labels,
                                       const Eigen::Ref<const Eigen::MatrixXd>& features, std::mt19937_64& rng);

}  // namespace hilo::calibration
