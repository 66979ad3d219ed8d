#pragma once
// The tiny optical student the student tests share: 4 kernels of 3×3, pool 2, 6 hidden units, phase
// tiles in 2 columns with a 1-pixel gap (small enough for finite differences over every parameter).
#include <random>
#include <string>

#include "gradcheck.hpp"
#include "hilo/distill/data.hpp"
#include "hilo/distill/losses.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/distill/train.hpp"

namespace hilo::distill::testing {

inline StudentOptions tiny_student(const std::string& param, const std::string& nonneg, const std::string& signing) {
  StudentOptions o;
  o.kernels = 4;
  o.kernel_size = 3;
  o.parameterization = param;
  o.nonneg = nonneg;
  o.signing = signing;
  o.pool = 2;
  o.hidden = 6;
  o.tile_columns = 2;
  o.tile_gap = 1;
  return o;
}

// The evaluation-mode backward of the cross-entropy on (x, y) against central differences of every
// parameter.
inline void expect_backward_matches_fd(OpticalStudent& s, const MatD& x, const std::vector<int>& y, const std::string& label) {
  auto loss = [&] { return softmax_cross_entropy<double>(s.forward(x, false), y, nullptr); };
  s.zero_grad();
  MatD dl;
  softmax_cross_entropy(s.forward(x, false), y, &dl);
  s.backward(dl);
  expect_grads_match_fd(s.params(), loss, label);
}

// Two linearly separable blobs of 8×8 "images": bright top half vs bright bottom half; n training,
// n/4 validation and n/4 test images.
inline Splits toy_splits(int n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(0.0f, 0.5f);
  auto make = [&](int m) {
    Dataset d;
    d.shape = {1, 8, 8};
    d.num_classes = 2;
    d.x.resize(m, 64);
    for (int i = 0; i < m; ++i) {
      const int y = i % 2;
      d.y.push_back(y);
      for (int k = 0; k < 64; ++k) d.x(i, k) = u(rng) + ((k < 32) == (y == 0) ? 0.5f : 0.0f);
    }
    return d;
  };
  return {make(n), make(n / 4), make(n / 4)};
}

// A small He-initialised (untrained) teacher for the toy splits: one conv of 4 channels, 8 hidden units.
inline Sequential<float> toy_teacher(const Splits& s, std::mt19937_64& rng) {
  Sequential<float> teacher = make_teacher(TeacherArch{{4}, 8}, s.train.shape, s.train.num_classes);
  init_he(teacher, rng);
  return teacher;
}

}  // namespace hilo::distill::testing
