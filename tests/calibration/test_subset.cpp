#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "hilo/calibration/subset.hpp"

namespace hilo::calibration {
namespace {

std::vector<std::size_t> per_class(const std::vector<int>& labels, const std::vector<std::size_t>& chosen, int classes) {
  std::vector<std::size_t> n(std::size_t(classes), 0);
  for (std::size_t i : chosen) ++n[std::size_t(labels[i])];
  return n;
}

void expect_valid_subset(const std::vector<std::size_t>& s, std::size_t n, std::size_t m) {
  ASSERT_EQ(s.size(), m);
  EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
  EXPECT_EQ(std::set<std::size_t>(s.begin(), s.end()).size(), m) << "indices must be distinct";
  EXPECT_LT(s.back(), n);
}

TEST(SubsetSize, IsTheRoundedFractionAndAtLeastOne) {
  EXPECT_EQ(subset_size(1000, 0.1), 100u);
  EXPECT_EQ(subset_size(60000, 0.1), 6000u);
  EXPECT_EQ(subset_size(7, 1.0), 7u);
  EXPECT_EQ(subset_size(10, 0.26), 3u);
  EXPECT_EQ(subset_size(10, 1e-6), 1u);
}

TEST(SubsetSize, RejectsFractionsOutsideTheUnitIntervalAndEmptySets) {
  for (double f : {0.0, -0.1, 1.5, std::nan("")}) EXPECT_THROW(subset_size(10, f), std::invalid_argument) << f;
  EXPECT_THROW(subset_size(0, 0.5), std::invalid_argument);
  SubsetOptions o;
  o.fraction = 0.0;
  EXPECT_EQ(o.validate(), "subset.fraction must be in (0, 1], got 0.000000");
  o.fraction = 1.0;
  EXPECT_EQ(o.validate(), "");
  std::mt19937_64 rng(1);
  EXPECT_THROW(select_random(10, 11, rng), std::invalid_argument);
  EXPECT_THROW(select_random(10, 0, rng), std::invalid_argument);
}

TEST(SubsetStrategyName, RoundTripsAndRejectsUnknownNames) {
  for (auto s : {SubsetStrategy::random, SubsetStrategy::class_balanced, SubsetStrategy::coverage, SubsetStrategy::uncertainty})
    EXPECT_EQ(parse_subset_strategy(to_string(s)), s);
  EXPECT_THROW(parse_subset_strategy("balanced"), std::invalid_argument);
}

TEST(RandomSubset, HasExactSizeDistinctIndicesAndIsDeterministicPerSeed) {
  std::mt19937_64 a(4), b(4), c(5);
  const auto sa = select_random(500, 50, a), sb = select_random(500, 50, b), sc = select_random(500, 50, c);
  expect_valid_subset(sa, 500, 50);
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  std::mt19937_64 d(1);
  const auto all = select_random(9, 9, d);
  EXPECT_EQ(all, (std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(ClassBalancedSubset, QuotasAreExactAndTheRemainderGoesToTheLowestLabels) {
  std::vector<int> labels;
  for (int i = 0; i < 1000; ++i) labels.push_back(i % 10);
  EXPECT_EQ(class_quotas(labels, 95), (std::vector<std::size_t>{10, 10, 10, 10, 10, 9, 9, 9, 9, 9}));
  std::mt19937_64 rng(3);
  const auto s = select_class_balanced(labels, 95, rng);
  expect_valid_subset(s, 1000, 95);
  EXPECT_EQ(per_class(labels, s, 10), class_quotas(labels, 95));
}

TEST(ClassBalancedSubset, ASmallClassGivesAllItHasAndTheOthersShareTheShortfall) {
  std::vector<int> labels(3, 0);
  for (int c = 1; c <= 3; ++c) labels.insert(labels.end(), 50, c);
  // 40 over 4 classes: class 0 has only 3, the 37 left go 13/12/12 (remainder to the lowest label).
  EXPECT_EQ(class_quotas(labels, 40), (std::vector<std::size_t>{3, 13, 12, 12}));
  // Labels need not be contiguous: an absent class gets nothing.
  EXPECT_EQ(class_quotas({0, 0, 2, 2, 2, 2}, 3), (std::vector<std::size_t>{2, 0, 1}));
  std::mt19937_64 rng(8);
  const auto s = select_class_balanced(labels, 40, rng);
  expect_valid_subset(s, labels.size(), 40);
  EXPECT_EQ(per_class(labels, s, 4), class_quotas(labels, 40));
  EXPECT_THROW(class_quotas({0, -1}, 1), std::invalid_argument);
}

TEST(ClassBalancedSubset, IsDeterministicPerSeed) {
  std::vector<int> labels;
  std::mt19937_64 g(1);
  for (int i = 0; i < 300; ++i) labels.push_back(int(g() % 7));
  std::mt19937_64 a(2), b(2), c(3);
  const auto sa = select_class_balanced(labels, 30, a);
  EXPECT_EQ(sa, select_class_balanced(labels, 30, b));
  EXPECT_NE(sa, select_class_balanced(labels, 30, c));
}

Eigen::MatrixXd random_points(int n, int d, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  Eigen::MatrixXd x(n, d);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = u(rng);
  return x;
}

// Optimal m-center radius by enumerating every m-subset (n small).
double optimal_radius(const Eigen::MatrixXd& x, std::size_t m) {
  const auto n = std::size_t(x.rows());
  std::vector<bool> pick(n, false);
  std::fill(pick.end() - std::ptrdiff_t(m), pick.end(), true);
  double best = std::numeric_limits<double>::infinity();
  do {
    std::vector<std::size_t> s;
    for (std::size_t i = 0; i < n; ++i)
      if (pick[i]) s.push_back(i);
    best = std::min(best, covering_radius(x, s));
  } while (std::next_permutation(pick.begin(), pick.end()));
  return best;
}

TEST(KCenterSubset, CoveringRadiusIsWithinTwiceTheOptimumOnBruteForceableCases) {
  std::mt19937_64 gen(17);
  double worst_ratio = 0;
  for (int trial = 0; trial < 30; ++trial) {
    const int n = 9 + trial % 4, d = 1 + trial % 3;
    const std::size_t m = 2 + std::size_t(trial % 3);
    const Eigen::MatrixXd x = random_points(n, d, gen);
    const double opt = optimal_radius(x, m);
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
      std::mt19937_64 rng(seed);
      const auto s = select_k_center(x, m, rng);
      expect_valid_subset(s, std::size_t(n), m);
      const double r = covering_radius(x, s);
      EXPECT_GE(r, opt - 1e-12);  // the enumeration really is the optimum
      EXPECT_LE(r, 2 * opt + 1e-12) << "trial " << trial << " seed " << seed;
      worst_ratio = std::max(worst_ratio, r / opt);
    }
  }
  std::printf("k-center / optimal covering radius, worst over 120 cases: %.3f\n", worst_ratio);
}

TEST(KCenterSubset, CoversClusteredDataBetterThanRandomSelection) {
  // One large cluster of 500 and nine small ones of 10, well separated in 5-D: a random 10-subset
  // lands mostly in the large cluster and leaves small ones uncovered; farthest-point traversal takes
  // one sample per cluster.
  std::mt19937_64 gen(5);
  std::normal_distribution<double> noise(0.0, 0.05);
  std::uniform_real_distribution<double> u(0.0, 10.0);
  std::vector<Eigen::VectorXd> centres(10, Eigen::VectorXd(5));
  for (auto& c : centres)
    for (int k = 0; k < 5; ++k) c[k] = u(gen);
  Eigen::MatrixXd x(590, 5);
  for (int i = 0; i < 590; ++i) {
    const int cl = i < 500 ? 0 : 1 + (i - 500) / 10;
    for (int k = 0; k < 5; ++k) x(i, k) = centres[std::size_t(cl)][k] + noise(gen);
  }
  double best_random = std::numeric_limits<double>::infinity(), worst_kcenter = 0;
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 a(seed), b(seed);
    worst_kcenter = std::max(worst_kcenter, covering_radius(x, select_k_center(x, 10, a)));
    best_random = std::min(best_random, covering_radius(x, select_random(590, 10, b)));
  }
  std::printf("covering radius over 20 seeds: k-center worst %.3f, random best %.3f\n", worst_kcenter, best_random);
  EXPECT_LT(worst_kcenter, 0.5);  // within-cluster scale: 0.05 · √5 per axis spread, a few sigma
  EXPECT_LT(worst_kcenter, 0.25 * best_random);
}

TEST(KCenterSubset, IsDeterministicPerSeedAndStartsFromTheSeededDraw) {
  std::mt19937_64 gen(2);
  const Eigen::MatrixXd x = random_points(200, 3, gen);
  std::mt19937_64 a(9), b(9), c(10);
  const auto sa = select_k_center(x, 20, a);
  EXPECT_EQ(sa, select_k_center(x, 20, b));
  EXPECT_NE(sa, select_k_center(x, 20, c));
  Eigen::MatrixXd bad = x;
  bad(3, 1) = std::nan("");
  EXPECT_THROW(select_k_center(bad, 5, a), std::invalid_argument);
}

// The teacher's uncertain samples are drawn far more often than its confident ones, every class keeps its
// exact quota (even a class whose samples are all confident), and a seed names one subset.
TEST(UncertainSubset, FavoursHighEntropySamplesWithinExactClassQuotas) {
  const int n = 400, classes = 4;
  std::vector<int> labels;
  Eigen::MatrixXd logits = Eigen::MatrixXd::Zero(n, classes);  // uniform: entropy ln 4
  for (int i = 0; i < n; ++i) {
    labels.push_back((i / 2) % classes);  // each class holds even and odd i
    // Every other sample of classes 0-2 and every sample of class 3 confident: logit 20 on its class.
    if (i % 2 == 1 || labels.back() == 3) logits(i, labels.back()) = 20.0;
  }
  std::size_t uncertain = 0, picked = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const auto chosen = select_uncertain(labels, logits, 40, rng);
    expect_valid_subset(chosen, n, 40);
    EXPECT_EQ(per_class(labels, chosen, classes), (std::vector<std::size_t>{10, 10, 10, 10}));
    for (std::size_t i : chosen)
      if (labels[i] != 3) {
        ++picked;
        uncertain += (i % 2 == 0);
      }
  }
  // Weights ln 4 + 0.05 ln 4 against 0.05 ln 4 (21:1), 50 of each kind per class, 10 picked: about 95 % of
  // the picks of classes 0-2 are uncertain samples (a uniform draw: 50 %).
  EXPECT_GT(double(uncertain) / double(picked), 0.9) << uncertain << " of " << picked;
  std::mt19937_64 a(7), b(7), c(8);
  EXPECT_EQ(select_uncertain(labels, logits, 40, a), select_uncertain(labels, logits, 40, b));
  EXPECT_NE(select_uncertain(labels, logits, 40, b), select_uncertain(labels, logits, 40, c));
  Eigen::MatrixXd bad = logits;
  bad(3, 1) = std::nan("");
  EXPECT_THROW(select_uncertain(labels, bad, 40, a), std::invalid_argument);
}

TEST(SelectSubset, DispatchesOnTheStrategyAndChecksTheFeatureRows) {
  std::vector<int> labels;
  for (int i = 0; i < 200; ++i) labels.push_back(i % 4);
  std::mt19937_64 gen(3);
  const Eigen::MatrixXd x = random_points(200, 6, gen);
  for (auto s : {SubsetStrategy::random, SubsetStrategy::class_balanced, SubsetStrategy::coverage, SubsetStrategy::uncertainty}) {
    std::mt19937_64 rng(1);
    const auto chosen = select_subset({s, 0.1}, labels, x, rng);
    expect_valid_subset(chosen, 200, 20);
    if (s == SubsetStrategy::class_balanced || s == SubsetStrategy::uncertainty)
      EXPECT_EQ(per_class(labels, chosen, 4), (std::vector<std::size_t>{5, 5, 5, 5}));
  }
  std::mt19937_64 rng(1);
  EXPECT_THROW(select_subset({SubsetStrategy::coverage, 0.1}, labels, x.topRows(199), rng), std::invalid_argument);
  EXPECT_THROW(select_subset({SubsetStrategy::uncertainty, 0.1}, labels, x.topRows(199), rng), std::invalid_argument);
  EXPECT_THROW(select_subset({SubsetStrategy::uncertainty, 0.1}, labels, x.leftCols(1), rng), std::invalid_argument);
  EXPECT_NO_THROW(select_subset({SubsetStrategy::random, 0.1}, labels, Eigen::MatrixXd(), rng));
  EXPECT_THROW(select_subset({SubsetStrategy::random, 1.01}, labels, x, rng), std::invalid_argument);
}

}  // namespace
}  // namespace hilo::calibration
