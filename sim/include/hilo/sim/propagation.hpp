#pragma once
// Free-space propagation of a monochromatic scalar Field (field.hpp): band-limited angular spectrum,
// Fresnel transfer function and Fraunhofer.
//
// Sampling: a Field of rows × cols samples at pitch Δx (metres), centred grid (sample (r, c) at
// x = (c − cols/2)Δx, y = (r − rows/2)Δx). Spatial frequencies are those of the DFT of the (padded)
// grid: ν = k / (N Δx) (fft.hpp, fft_frequencies). Angular spectrum and Fresnel TF keep the pitch and the
// grid; Fraunhofer changes the pitch to λz/(NΔx).
//
// Reusable propagators precompute the transfer function and the FFT plan for one grid, pitch,
// wavelength and distance; propagate() is const and safe to call from several threads at once.
// Mismatched fields (shape, pitch or wavelength differing from the propagator's) and invalid geometry
// (sizes < 1, pitch or wavelength ≤ 0, non-finite z) throw std::invalid_argument naming the rule.
#include <memory>

#include "hilo/sim/fft.hpp"
#include "hilo/sim/field.hpp"

namespace hilo::sim {

struct PropagationOptions {
  // Zero-pad to a 2·rows × 2·cols grid before transforming and crop the centre back afterwards, so that
  // light leaving the window is lost instead of wrapping round to the opposite edge (linear rather than
  // circular convolution with the propagation kernel).
  bool pad = true;
  // Angular spectrum only: zero frequencies beyond Matsushima & Shimobaba's limit
  //   ν_lim = 1 / (λ √((2 Δν z)² + 1)),  Δν = 1/(N Δx) on the (padded) grid, applied per axis,
  // which removes the aliased part of the sampled transfer function at large z. Evanescent components
  // (ν_x² + ν_y² > 1/λ²) are always zeroed.
  bool band_limit = true;
  Planning planning = Planning::estimate;
};

// Band-limited angular spectrum (Matsushima & Shimobaba 2009):
//   U(z) = F⁻¹{ F{U(0)} · H },  H(ν_x, ν_y) = exp(i 2π z √(1/λ² − ν_x² − ν_y²))  inside the band,
// 0 outside. Exact (non-paraxial) within the band; z may be negative (back-propagation), and
// propagating by z then −z returns a field whose spectrum lies within the band unchanged.
// Energy Σ|U|²Δx² is conserved except for what is removed outside the band or leaves the window.
class AngularSpectrum {
 public:
  // Throws std::invalid_argument for rows/cols < 1, pitch_m ≤ 0, wavelength_m ≤ 0 or non-finite z_m.
  AngularSpectrum(Eigen::Index rows, Eigen::Index cols, double pitch_m, double wavelength_m, double z_m,
                  PropagationOptions options = {});
  ~AngularSpectrum();
  AngularSpectrum(AngularSpectrum&&) noexcept;
  AngularSpectrum& operator=(AngularSpectrum&&) noexcept;

  Field propagate(const Field& in) const;
  // In place on a bare array of the propagator's shape (pitch and wavelength are the caller's promise).
  void apply(CArray& u) const;

  // Transfer function on the working (padded if options.pad) grid, unshifted (index 0 = DC).
  const CArray& transfer_function() const;
  double z_m() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Fresnel transfer-function propagation (paraxial):
//   H(ν_x, ν_y) = exp(i k z) · exp(−i π λ z (ν_x² + ν_y²)).
// Accurate where the paraxial approximation holds (ν λ ≪ 1). The sampled chirp is free of aliasing for
// Δx ≥ λ|z|/(N Δx), i.e. |z| ≤ N Δx² / λ with N the working-grid size; beyond that it aliases (no band
// limit is applied; options.band_limit is ignored). z may be negative.
class FresnelTransfer {
 public:
  FresnelTransfer(Eigen::Index rows, Eigen::Index cols, double pitch_m, double wavelength_m, double z_m,
                  PropagationOptions options = {});
  ~FresnelTransfer();
  FresnelTransfer(FresnelTransfer&&) noexcept;
  FresnelTransfer& operator=(FresnelTransfer&&) noexcept;

  Field propagate(const Field& in) const;
  void apply(CArray& u) const;
  const CArray& transfer_function() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Convenience: build a propagator (Planning::estimate) and apply it once.
Field propagate_angular_spectrum(const Field& in, double z_m, PropagationOptions options = {});
Field propagate_fresnel(const Field& in, double z_m, PropagationOptions options = {});

// Fraunhofer (far field) propagation by one FFT, z_m > 0:
//   U(x₂, y₂) = e^{ikz} / (iλz) · exp(i k (x₂² + y₂²) / 2z) · Δx² · Σ U(x₁, y₁) e^{−i2π(x₁x₂ + y₁y₂)/(λz)}
// Output: same rows × cols, centred grid, pitch λz/(N Δx) — which differs between axes unless
// rows == cols, so the grid must be square (throws std::invalid_argument otherwise).
// Energy Σ|U|²·pitch² is conserved exactly (Parseval).
// include_quadratic_phase = false drops exp(ikz)·exp(ik r₂²/2z) (intensity is unchanged), which is the
// field in the back focal plane of a lens of focal length z illuminated at its front focal plane.
Field propagate_fraunhofer(const Field& in, double z_m, bool include_quadratic_phase = true);

// Output sample pitch of propagate_fraunhofer: λ z / (n Δx).
double fraunhofer_pitch(Eigen::Index n, double pitch_m, double wavelength_m, double z_m);

}  // namespace hilo::sim
