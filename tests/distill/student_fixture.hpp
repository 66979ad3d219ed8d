#pragma once
// The tiny optical student the student tests share: 4 kernels of 3×3, pool 2, 6 hidden units, phase
// tiles in 2 columns with a 1-pixel gap (small enough for finite differences over every parameter).
#include <string>

#include "gradcheck.hpp"
#include "hilo/distill/losses.hpp"
#include "hilo/distill/student.hpp"

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

}  // namespace hilo::distill::testing
