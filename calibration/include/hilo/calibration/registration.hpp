#pragma once
// Registration between the model's camera grid (where the bench as designed forms the image) and the
// real camera: the similarity transform (shift, rotation, scale) that the misaligned bench applies.
//
// Convention: sim::Pose, the same as the simulator's as-built misalignment (pose.hpp). For a frame
// of R × C pixels with centre c = (C/2, R/2) (integer division), x = column, y = row (down), a point at
// ideal position p appears at
//     T(p) = s · R(θ) · (p − c) + c + t,   R(θ) = [cos θ  −sin θ; sin θ  cos θ],
// θ = rotation_deg, s = scale, t = (shift_x_px, shift_y_px) in camera pixels. measured ≈ g · pred∘T⁻¹.
//
// Method (choice documented in docs/calibration.md, "Registration"): the element is put in a known
// state (an SLM shows a flat phase, so the PSF is a compact spot; a fixed mask is used as it is), a few
// random binary probe patterns are shown on the input, and the predictor renders what the designed bench
// would record for each. The pose is the least-squares fit of
//     measured_k(x) ≈ a · (pred_k ⊛ G_σ)(T⁻¹(x)) + b_k   (bilinear resampling, G_σ a Gaussian blur)
// over all probes and pixels: cv::phaseCorrelate gives the starting shift, then Levenberg–Marquardt
// refines (t_x, t_y, θ, log s, σ) with the photometric gain a and offsets b_k fitted jointly.
//
// Accuracy (simulator, sim.yaml bench, 3 seeds per profile; numbers in docs/calibration.md), worst
// displacement error over the feature-map area: ideal 0.000, mild ≤ 0.005, moderate ≤ 0.15 px;
// severe 0.5–0.9 px — it misses 0.2 px because its 0.6 waves of defocus are poorly described by a
// Gaussian blur and the misfit leaks into the scale. A uniform shift of the PSF itself (G-tilt of
// the as-built aberrations) is indistinguishable from a camera shift; it ends up in t.
#include <random>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "hilo/calibration/dark_flat.hpp"
#include "hilo/calibration/probe.hpp"
#include "hilo/drivers/device.hpp"
#include "hilo/sim/pose.hpp"

namespace hilo::calibration {

using sim::Pose;

// T(p) for a frame of rows × cols (see the header comment); p = (x, y).
Eigen::Vector2d apply_pose(const Pose& pose, const Eigen::Vector2d& p, Eigen::Index rows, Eigen::Index cols);
Eigen::Vector2d apply_inverse_pose(const Pose& pose, const Eigen::Vector2d& p, Eigen::Index rows,
                                   Eigen::Index cols);

// out(x) = in(T⁻¹(x)): what the misaligned bench makes of a designed image (bilinear, 0 outside).
RArray warp_forward(const RArray& in, const Pose& pose);
// out(x) = in(T(x)): a measured frame resampled back onto the design grid (bilinear, 0 outside).
RArray warp_back(const RArray& measured, const Pose& pose);

// Isotropic Gaussian blur of σ = |sigma_px| (identity below 1e-3 px), zero outside the frame.
RArray gaussian_blur(const RArray& in, double sigma_px);

// Largest |T_a(p) − T_b(p)| over the rectangle [x0, x0+w] × [y0, y0+h] (an affine difference is
// largest at a corner), pixels.
struct Rect {
  double x0 = 0, y0 = 0, w = 0, h = 0;
};
double max_displacement_px(const Pose& a, const Pose& b, const Rect& field, Eigen::Index rows, Eigen::Index cols);

struct PoseFitOptions {
  int max_iterations = 60;     // ≥ 1
  double tolerance_px = 1e-5;  // stop when the largest parameter step moves no point by more, > 0
  bool fit_rotation = true;
  bool fit_scale = true;
  bool coarse_phase_correlation = true;  // start from cv::phaseCorrelate's shift
  // Also fit an isotropic Gaussian blur σ of the prediction: the as-built PSF is wider than the designed
  // one (defocus, aberrations), and without this term the fit mistakes the wider image for a larger scale.
  bool fit_blur = true;
  double initial_blur_px = 1.0;  // > 0 (the blur gradient vanishes at σ = 0)

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};

struct PoseFit {
  Pose pose;                   // gain = photometric gain a
  std::vector<double> offset;  // b_k per image pair
  double blur_px = 0.0;        // fitted Gaussian blur σ (0 when not fitted)
  double rms_residual = 0.0;   // counts
  double correlation = 0.0;    // of measured with the fitted model, over all pixels
  int iterations = 0;
  bool converged = false;
  std::string report;
};

// Fits the pose between predicted (design grid) and measured images, pairs of equal size. Pure; throws
// std::invalid_argument for empty or mismatched inputs or invalid options.
PoseFit fit_pose(const std::vector<RArray>& measured, const std::vector<RArray>& predicted,
                 const PoseFitOptions& options = {}, const Pose& initial = {});

// The prediction as the registered bench records it: warp_forward(pred ⊛ G_σ, pose), σ = fit.blur_px.
RArray registered_model(const RArray& predicted, const PoseFit& fit);

struct RegistrationOptions {
  int probes = 3;          // random binary patterns, ≥ 1
  int frames = 8;          // averaged per probe, ≥ 1
  double fill = 0.5;       // probability an input pixel is on, (0, 1)
  double level = 0.8;      // intensity of an on pixel, (0, 1]
  PoseFitOptions fit;

  [[nodiscard]] std::string validate() const;
};

struct Registration {
  PoseFit fit;
  std::vector<RArray> probes;  // the input patterns shown
};

// Shows the probes, grabs, subtracts the dark frame and fits the pose against `predict`. The caller
// puts the element in the state `predict` models. Device errors come back as values.
drivers::DeviceResult<Registration> register_input_to_camera(ProbeRig& rig, const Predictor& predict,
                                                             const DarkFrame& dark,
                                                             const RegistrationOptions& options,
                                                             std::mt19937_64& rng);

}  // namespace hilo::calibration
