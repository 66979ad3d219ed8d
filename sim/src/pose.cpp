#include "hilo/sim/pose.hpp"

#include <cmath>
#include <numbers>

namespace hilo::sim {

namespace {
// Visits every output pixel (r, c) of an R × C warp with the four bilinear taps it reads from the input:
// tap(r, c, r_in, c_in, weight) for in-range taps only (samples outside the input are 0).
template <class Tap>
void for_each_bilinear_tap(Eigen::Index R, Eigen::Index C, const Pose& pose, Tap&& tap) {
  const double cx = double(C / 2), cy = double(R / 2);
  const double th = pose.rotation_deg * std::numbers::pi / 180.0, cs = std::cos(th), sn = std::sin(th);
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
      const double w[4] = {(1 - ay) * (1 - ax), (1 - ay) * ax, ay * (1 - ax), ay * ax};
      const Eigen::Index rr[4] = {r0, r0, r0 + 1, r0 + 1}, cc[4] = {c0, c0 + 1, c0, c0 + 1};
      for (int k = 0; k < 4; ++k)
        if (rr[k] >= 0 && rr[k] < R && cc[k] >= 0 && cc[k] < C) tap(r, c, rr[k], cc[k], w[k]);
    }
}
}  // namespace

RArray warp_image(const RArray& in, const Pose& pose) {
  if (pose.is_identity_warp()) return in;
  RArray out = RArray::Zero(in.rows(), in.cols());
  for_each_bilinear_tap(in.rows(), in.cols(), pose, [&](Eigen::Index r, Eigen::Index c, Eigen::Index ri, Eigen::Index ci,
                                                         double w) { out(r, c) += w * in(ri, ci); });
  return out;
}

RArray warp_image_adjoint(const RArray& dout, const Pose& pose) {
  if (pose.is_identity_warp()) return dout;
  RArray din = RArray::Zero(dout.rows(), dout.cols());
  for_each_bilinear_tap(dout.rows(), dout.cols(), pose, [&](Eigen::Index r, Eigen::Index c, Eigen::Index ri,
                                                            Eigen::Index ci, double w) { din(ri, ci) += w * dout(r, c); });
  return din;
}

}  // namespace hilo::sim
