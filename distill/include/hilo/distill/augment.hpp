#pragma once
// Front-end jitter: the bench's residual errors as training augmentation ("vaccinated" training,
// Mengu et al. 2020), applied by the optical student to its feature maps Y (before camera noise).
//
// Per training sample i, drawn from the caller's generator (normal ε, half-normal |ε|):
//   blur      b_i = defocus_px·|ε|          Gaussian blur of σ = b_i camera px on every map (defocus:
//                                            incoherent imaging convolves the PSF, hence each kernel,
//                                            with the blur; zero outside the map)
//   pose      t_i = shift_px·(ε, ε), θ_i = rotation_deg·ε, s_i = 1 + scale·ε, a camera-grid transform
//             about the frame centre (sim::Pose convention). Map k sits at offset c_k from the frame
//             centre (sim::KernelTiling of the student's tile layout), so it moves by
//             u' = s_i R(θ_i) u + t_i + (s_i R(θ_i) − I) c_k about its own centre: a rotation or scale
//             error shifts the two maps of a pair differently. Bilinear, zero outside the map
//             (sim::warp_image).
//   gain      g_i = 1 + gain·ε              one brightness factor for all maps of the sample
//   dark      d_ik = dark·ε                 an additive offset per map, units of signal
// So M_ik = g_i · warp_ik(blur_i(Y_ik)) + d_ik. Every step is linear in Y for fixed draws; apply_t is
// the exact transpose (used by the student's backward), so gradients are exact for the drawn errors.
// Only training forwards jitter; evaluation, features() and the NTK see the ideal front-end.
//
// Magnitudes (AugmentOptions defaults; docs/distill.md, "Robust students"): what calibration leaves of
// the profiles' errors, not the raw errors it corrects. Registration's worst displacement over the
// feature-map area is 0.005 / 0.1–0.14 / 0.5–0.9 px on mild / moderate / severe (docs/calibration.md),
// so shift σ 0.3 px, rotation σ 0.2° and scale σ 0.3 % (0.15 px each at the outer tiles, 50 px from the
// centre); defocus 0.03 / 0.08 / 0.2 waves RMS blurs a point over ≈ 1 / 6 / 16 px, so a blur σ of up to
// ≈ 1.5 px (half-normal of scale 0.7 px) spans mild and moderate, not severe; gain σ 3 % and a dark
// residual of 0.002 (≈ 1.5 % of the mean map level) after the dark, flat and linearity calibrations.
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/layers.hpp"
#include "hilo/sim/imaging.hpp"
#include "hilo/sim/pose.hpp"

namespace hilo::distill {

struct AugmentOptions {
  bool enabled = false;
  double shift_px = 0.3;      // σ of the lateral shift, x and y each, camera px
  double rotation_deg = 0.2;  // σ of the rotation about the frame centre, degrees
  double scale = 0.003;       // σ of the relative scale error
  double defocus_px = 0.7;    // scale of the half-normal blur σ, camera px
  double gain = 0.03;         // σ of the relative gain
  double dark = 0.002;        // σ of the per-map offset, units of signal
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AugmentOptions, enabled, shift_px, rotation_deg, scale, defocus_px, gain,
                                                dark)

// The errors drawn for one sample.
struct FrontEndDraw {
  double blur_px = 0.0;
  sim::Pose pose;              // shift, rotation, scale about the frame centre; pose.gain = g_i
  std::vector<double> dark;    // d_ik, one per map
};

class FrontEndJitter {
 public:
  // layout: the K maps' tile layout (object size = the map size). Throws std::invalid_argument when
  // the options are invalid.
  FrontEndJitter(const AugmentOptions& options, const sim::KernelTiling& layout);

  // Draws n samples' errors from rng (replacing the previous draws).
  void draw(Eigen::Index n, std::mt19937_64& rng);
  const std::vector<FrontEndDraw>& draws() const { return draws_; }

  // y: n × K·H·W maps (kernel-major, as the optical layer produces them), n = the drawn count.
  // apply: M above; apply_t: the transpose of the linear part (dark offsets carry no gradient).
  // Throw std::invalid_argument for a shape that does not match the draws and the layout.
  MatD apply(const MatD& y) const;
  MatD apply_t(const MatD& dm) const;

 private:
  sim::Pose map_pose(const FrontEndDraw& d, int k) const;
  void check(const MatD& y) const;
  AugmentOptions o_;
  sim::KernelTiling layout_;
  std::vector<FrontEndDraw> draws_;
};

}  // namespace hilo::distill
