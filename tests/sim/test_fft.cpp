#include "hilo/sim/fft.hpp"

#include <cmath>
#include <numbers>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace hilo::sim {
namespace {

CArray random_complex(Eigen::Index rows, Eigen::Index cols, std::mt19937_64& rng) {
  std::normal_distribution<double> n(0.0, 1.0);
  CArray a(rows, cols);
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = {n(rng), n(rng)};
  return a;
}

CArray naive_dft(const CArray& a) {
  const Eigen::Index R = a.rows(), C = a.cols();
  CArray out(R, C);
  for (Eigen::Index k = 0; k < R; ++k)
    for (Eigen::Index l = 0; l < C; ++l) {
      cplx s = 0;
      for (Eigen::Index r = 0; r < R; ++r)
        for (Eigen::Index c = 0; c < C; ++c)
          s += a(r, c) * std::polar(1.0, -2 * std::numbers::pi * (double(k * r) / R + double(l * c) / C));
      out(k, l) = s;
    }
  return out;
}

double rel_err(const CArray& a, const CArray& b) { return (a - b).matrix().norm() / b.matrix().norm(); }

TEST(Fft2, ForwardMatchesDirectDftOnOddAndEvenSizes) {
  std::mt19937_64 rng(1);
  for (auto [r, c] : {std::pair{6, 5}, {4, 4}, {7, 3}, {1, 9}}) {
    const CArray a = random_complex(r, c, rng);
    EXPECT_LT(rel_err(Fft2(r, c).forward_copy(a), naive_dft(a)), 1e-12) << r << "x" << c;
  }
}

TEST(Fft2, InverseUndoesForwardOverSeveralSizes) {
  std::mt19937_64 rng(2);
  for (auto [r, c] : {std::pair{1, 1}, {7, 5}, {16, 16}, {30, 18}, {64, 63}}) {
    const CArray a = random_complex(r, c, rng);
    const Fft2 fft(r, c);
    CArray b = a;
    fft.forward(b);
    fft.inverse(b);
    EXPECT_LT(rel_err(b, a), 1e-13) << r << "x" << c;
    CArray d = fft.forward_copy(a);
    fft.inverse_unscaled(d);
    EXPECT_LT(rel_err(d / double(r * c), a), 1e-13);
  }
}

TEST(Fft2, MeasuredPlanGivesTheSameTransform) {
  std::mt19937_64 rng(3);
  const CArray a = random_complex(32, 24, rng);
  EXPECT_LT(rel_err(Fft2(32, 24, Planning::measure).forward_copy(a), Fft2(32, 24).forward_copy(a)), 1e-13);
}

TEST(Fft2, RejectsEmptySize) { EXPECT_THROW(Fft2(0, 4), std::invalid_argument); }

TEST(Fft2, ConcurrentExecutionAndPlanningMatchSerialResults) {
  std::mt19937_64 rng(4);
  const Fft2 shared(48, 40);
  std::vector<CArray> inputs, expected;
  for (int t = 0; t < 6; ++t) {
    inputs.push_back(random_complex(48, 40, rng));
    expected.push_back(shared.forward_copy(inputs.back()));
  }
  std::vector<CArray> got(inputs.size());
  std::vector<double> own_plan_err(inputs.size(), 1.0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < inputs.size(); ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) got[t] = shared.forward_copy(inputs[t]);
      // Each thread also plans its own transforms concurrently with the others.
      const Fft2 own(48, 40, t % 2 ? Planning::measure : Planning::estimate);
      own_plan_err[t] = rel_err(own.forward_copy(inputs[t]), expected[t]);
    });
  for (auto& th : threads) th.join();
  for (std::size_t t = 0; t < inputs.size(); ++t) {
    EXPECT_EQ((got[t] - expected[t]).abs().maxCoeff(), 0.0) << "thread " << t;
    EXPECT_LT(own_plan_err[t], 1e-13);
  }
}

TEST(RealFft2, MatchesComplexTransformAndRoundTrips) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n(0.0, 1.0);
  for (auto [r, c] : {std::pair{8, 8}, {9, 7}, {12, 10}, {1, 5}}) {
    RArray x(r, c);
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = n(rng);
    const RealFft2 rfft(r, c);
    CArray X;
    rfft.forward(x, X);
    ASSERT_EQ(X.cols(), c / 2 + 1);
    const CArray full = Fft2(r, c).forward_copy(x.cast<cplx>());
    EXPECT_LT(rel_err(X, CArray(full.leftCols(c / 2 + 1))), 1e-13) << r << "x" << c;
    RArray back;
    rfft.inverse(X, back);
    EXPECT_LT((back - x).matrix().norm() / x.matrix().norm(), 1e-13);
  }
}

TEST(FftShift, MovesZeroFrequencyToCentreForOddAndEvenSizes) {
  for (Eigen::Index n : {1, 4, 5, 6, 7}) {
    RArray a(n, n + 1);
    for (Eigen::Index r = 0; r < n; ++r)
      for (Eigen::Index c = 0; c < n + 1; ++c) a(r, c) = double(100 * r + c);
    const RArray s = fftshift(a);
    EXPECT_EQ(s(n / 2, (n + 1) / 2), 0.0);  // numpy: fftshift puts index 0 at n//2
    // numpy.fft.fftshift of [0..n-1] is [ceil(n/2) .. n-1, 0 .. ceil(n/2)-1]
    EXPECT_EQ(s(0, 0), double(100 * ((n + 1) / 2 % n) + (n + 2) / 2 % (n + 1)));
    EXPECT_TRUE((ifftshift(s) == a).all()) << n;
    const CArray ca = a.cast<cplx>();
    EXPECT_TRUE((fftshift(ifftshift(ca)) == ca).all());
  }
}

TEST(FftFrequencies, FollowNumpyFftfreq) {
  const Eigen::ArrayXd f5 = fft_frequencies(5, 0.5);  // numpy.fft.fftfreq(5, 0.5)
  const double e5[] = {0.0, 0.4, 0.8, -0.8, -0.4};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(f5[i], e5[i], 1e-15);
  const Eigen::ArrayXd f4 = fft_frequencies(4, 1.0);
  const double e4[] = {0.0, 0.25, -0.5, -0.25};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f4[i], e4[i], 1e-15);
}

TEST(NextFastSize, ReturnsSmallest7SmoothSize) {
  EXPECT_EQ(next_fast_size(1), 1);
  EXPECT_EQ(next_fast_size(11), 12);
  EXPECT_EQ(next_fast_size(97), 98);
  EXPECT_EQ(next_fast_size(1025), 1029);
  EXPECT_EQ(next_fast_size(512), 512);
}

}  // namespace
}  // namespace hilo::sim
