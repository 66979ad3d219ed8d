#pragma once
// The pose of a camera image: the misalignment (shift, rotation, scale) and brightness of the bench at
// one instant, and the warp it applies. Shared by the simulator (an as-built profile realises poses,
// as_built.hpp) and calibration (which measures them), so calibration needs none of the simulator's
// ground truth to speak of a pose.
//
// Convention: camera-grid transform about the frame centre (cols/2, rows/2), x = column, y = row
// (y points down): a point at ideal position (x, y) appears at
//   x' = s (x cos θ − y sin θ) + t_x,   y' = s (x sin θ + y cos θ) + t_y
// θ = rotation_deg (positive = clockwise as displayed), s = scale, t = shift in camera pixels.
#include "hilo/sim/field.hpp"

namespace hilo::sim {

// The camera-grid transform and brightness at one instant (see the header comment for the convention).
struct Pose {
  double shift_x_px = 0.0;
  double shift_y_px = 0.0;
  double rotation_deg = 0.0;
  double scale = 1.0;
  double gain = 1.0;

  bool is_identity_warp() const { return shift_x_px == 0 && shift_y_px == 0 && rotation_deg == 0 && scale == 1; }
};

// Bilinear warp of a camera-grid image by `pose` (ignoring pose.gain): out(p) = in(T⁻¹(p)), samples
// outside the input are 0. An identity pose returns `in` unchanged (bit-exact).
RArray warp_image(const RArray& in, const Pose& pose);
// The adjoint (transpose) of warp_image's linear map for the same pose: ⟨warp_image(a), b⟩ =
// ⟨a, warp_image_adjoint(b)⟩ for all a, b of one shape. Gradients through a warp use it.
RArray warp_image_adjoint(const RArray& dout, const Pose& pose);

}  // namespace hilo::sim
