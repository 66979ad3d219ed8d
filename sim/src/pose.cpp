#include "hilo/sim/pose.hpp"

#include <cmath>
#include <numbers>

namespace hilo::sim {

RArray warp_image(const RArray& in, const Pose& pose) {
  if (pose.is_identity_warp()) return in;
  const Eigen::Index R = in.rows(), C = in.cols();
  const double cx = double(C / 2), cy = double(R / 2);
  const double th = pose.rotation_deg * std::numbers::pi / 180.0, cs = std::cos(th), sn = std::sin(th);
  RArray out = RArray::Zero(R, C);
  auto at = [&](Eigen::Index r, Eigen::Index c) {
    return (r >= 0 && r < R && c >= 0 && c < C) ? in(r, c) : 0.0;
  };
  for (Eigen::Index r = 0; r < R; ++r)
    for (Eigen::Index c = 0; c < C; ++c) {
      // Inverse transform: p = R(−θ)(p' − t) / s.
      const double dx = (double(c) - cx - pose.shift_x_px) / pose.scale;
      const double dy = (double(r) - cy - pose.shift_y_px) / pose.scale;
      const double x = cs * dx + sn * dy + cx, y = -sn * dx + cs * dy + cy;
      const double fx = std::floor(x), fy = std::floor(y);
      const auto c0 = Eigen::Index(fx), r0 = Eigen::Index(fy);
      if (r0 < -1 || r0 >= R || c0 < -1 || c0 >= C) continue;
      const double ax = x - fx, ay = y - fy;
      out(r, c) = (1 - ay) * ((1 - ax) * at(r0, c0) + ax * at(r0, c0 + 1)) +
                  ay * ((1 - ax) * at(r0 + 1, c0) + ax * at(r0 + 1, c0 + 1));
    }
  return out;
}

}  // namespace hilo::sim
