#pragma once
// Incoherent imaging through a phase element: the point-spread function of a pupil with a phase mask,
// its vector-Jacobian product (for gradient-based design), image formation by convolution, the layout
// of K convolution kernels as tiles of one PSF, and polychromatic PSFs.
//
// Arrays follow field.hpp: row-major, centred grids, sample (rows/2, cols/2) is the optical axis.
// Shape mismatches throw std::invalid_argument naming the arrays; options carry validate() ("" when
// valid, else the violated rule); functions given invalid options throw that rule as std::invalid_argument.
#include <memory>
#include <utility>
#include <vector>

#include "hilo/sim/fft.hpp"
#include "hilo/sim/field.hpp"

namespace hilo::sim {

// ---------------------------------------------------------------------------------------------------
// Point-spread function of a pupil (Fraunhofer / focal plane of a lens).
//
//   E = A · e^{iφ} embedded in the top-left of a zero (pad·rows) × (pad·cols) grid
//   I = |DFT(E)|², fftshifted so that the optical axis (zero frequency) is sample (pad·rows/2, pad·cols/2)
//   PSF = I / Σ I                                          (unit sum; Σ I = N_pad · Σ A² by Parseval)
// phase φ (rad) and pupil amplitude A ≥ 0 are rows × cols; the result is (pad·rows) × (pad·cols).
// The embedding position only adds a linear phase to DFT(E), so it does not change the PSF.
// Physical sampling: with pupil sample pitch Δx, wavelength λ and focal length f, PSF sample (r, c) lies
// at ((c − pad·cols/2)·δ, (r − pad·rows/2)·δ) in the focal plane, δ = λ f / (pad·cols·Δx)
// (psf_sample_pitch). pad ≥ 2 samples the PSF at or above the Nyquist rate of an intensity.
// Throws std::invalid_argument if Σ A² == 0, shapes differ, or pad < 1.
//
// Vector-Jacobian product: given g = ∂L/∂PSF (same shape as the PSF) for any scalar loss L, returns
// ∂L/∂φ (rows × cols):
//   g̃ = (g − Σ_k g_k PSF_k) / Σ I            (chain rule through the normalisation)
//   B = N_pad · IDFT(ifftshift(g̃) · DFT(E))
//   ∂L/∂φ = 2 · Im(conj(E) · B)   cropped to the pupil
// Because Σ I does not depend on φ (Parseval, |E| = A), the normalisation term Σ g_k PSF_k contributes
// exactly zero to ∂L/∂φ; it is kept for clarity, so ∂L/∂φ equals the gradient of the unnormalised
// intensity scaled by 1/Σ I. Verified against central finite differences in the tests.
//
// PupilPsf caches the FFT plan for one shape and is safe to use from several threads at once.
class PupilPsf {
 public:
  PupilPsf(Eigen::Index rows, Eigen::Index cols, int pad = 2, Planning planning = Planning::estimate);
  RArray psf(const RArray& phase, const RArray& pupil_amplitude) const;
  RArray vjp(const RArray& phase, const RArray& pupil_amplitude, const RArray& dL_dpsf) const;
  // Coherent imaging (a 4f correlator whose Fourier-plane filter is this pupil, or any coherent imager):
  // the amplitude spread function h = fftshift(DFT(E)) / √ΣI, so that |h|² = psf() and Σ|h|² = 1; the
  // image of a coherent object field U is U ⊛ h. asf_vjp: given g = ∂L/∂Re h + i·∂L/∂Im h (h's shape),
  // returns ∂L/∂φ = Im(conj(E) · N·IDFT(ifftshift(g) / √ΣI))   (ΣI does not depend on φ).
  CArray asf(const RArray& phase, const RArray& pupil_amplitude) const;
  RArray asf_vjp(const RArray& phase, const RArray& pupil_amplitude, const CArray& dL_dasf) const;
  Eigen::Index rows() const { return rows_; }
  Eigen::Index cols() const { return cols_; }
  int pad() const { return pad_; }

 private:
  Eigen::Index rows_, cols_;
  int pad_;
  Fft2 fft_;
};

RArray psf_from_phase(const RArray& phase, const RArray& pupil_amplitude, int pad = 2);
RArray psf_from_phase_vjp(const RArray& phase, const RArray& pupil_amplitude, const RArray& dL_dpsf,
                          int pad = 2);

// Gerchberg–Saxton towards a window: a pupil phase (rows × cols, from `phase`) whose focal field puts as
// much light as it can on the samples where `window` (pad·rows × pad·cols, PSF grid, centred) is > 0,
// with any amplitude and phase there: each iteration keeps the focal field on the window, zeroes it
// elsewhere, and keeps the phase of the pupil field it transforms back to. The light on the window
// (Σ_window PSF) does not decrease from one iteration to the next. Throws std::invalid_argument for
// shapes that do not match or iterations < 0.
RArray concentrate_phase(const RArray& phase, const RArray& pupil_amplitude, int pad, const RArray& window, int iterations);

// Focal-plane sample pitch λ f / (n_padded · Δx) of a PSF computed on an n_padded-sample grid.
double psf_sample_pitch(double wavelength_m, double focal_m, Eigen::Index n_padded, double pupil_pitch_m);

// ---------------------------------------------------------------------------------------------------
// Incoherent image formation: image = object ⊛ PSF (linear, not circular, convolution), output the same
// size as the object ("same" mode), the PSF's centre sample (psf.rows()/2, psf.cols()/2) acting as the
// origin:
//   image(r, c) = Σ_{i,j} object(r − i + psf.rows()/2, c − j + psf.cols()/2) · psf(i, j)
// with the object zero outside its bounds. A PSF that is 1 at its centre and 0 elsewhere is the
// identity. Computed by real FFTs on a grid padded to next_fast_size(object + psf − 1) per axis, so no
// light wraps around. Units: the image has the object's units times the PSF's (a unit-sum PSF conserves
// total power when the PSF lies fully inside the image).
RArray incoherent_image(const RArray& object, const RArray& psf);

// Caches the PSF's transform and the plans for repeated images of one object size; image() is const and
// safe to call concurrently.
class IncoherentImager {
 public:
  IncoherentImager(Eigen::Index object_rows, Eigen::Index object_cols, const RArray& psf,
                   Planning planning = Planning::estimate);
  ~IncoherentImager();
  IncoherentImager(IncoherentImager&&) noexcept;
  IncoherentImager& operator=(IncoherentImager&&) noexcept;

  RArray image(const RArray& object) const;
  // Adjoint of image() with respect to the object: ∂L/∂object given ∂L/∂image (correlation with the
  // PSF), for back-propagating through a fixed PSF.
  RArray adjoint(const RArray& dL_dimage) const;

  Eigen::Index padded_rows() const;  // size of the FFT grid actually used
  Eigen::Index padded_cols() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Gradient of L with respect to the PSF for image = incoherent_image(object, psf), given ∂L/∂image:
//   ∂L/∂psf(i, j) = Σ_{r,c} ∂L/∂image(r, c) · object(r − i + psf.rows()/2, c − j + psf.cols()/2)
// Returned with psf's shape.
RArray incoherent_image_psf_vjp(const RArray& object, Eigen::Index psf_rows, Eigen::Index psf_cols,
                                const RArray& dL_dimage);

// ---------------------------------------------------------------------------------------------------
// K kernels of k × k laid out as tiles of one PSF so that one exposure holds K feature maps side by side.
//
// Assumes unit magnification with the camera grid equal to the object grid (one object sample per camera
// pixel); resample beforehand otherwise. The object (object_rows × object_cols) sits centred on a canvas
// of canvas_rows() × canvas_cols() samples (embed()). Feature map j is the "same"-size true convolution
// object ⊛ kernel_j (kernel_j(k/2, k/2) is its centre; pass a kernel rotated by 180° to realise a CNN's
// cross-correlation weights). Tiles are placed row-major on a grid of tile_columns columns; tile pitch
//   pitch_rows = object_rows + kernel_size − 1 + gap,  pitch_cols = object_cols + kernel_size − 1 + gap
// so the full support of neighbouring feature maps (object + k − 1) never overlaps, and `gap` samples of
// guard band separate them. Feature map j's top-left sample on the canvas is map_origin(j).
// compose() writes kernel j into a canvas-sized PSF at the displacement that moves the centred object to
// map_origin(j); imaging embed(object) with that PSF (incoherent_image) and crop()ing returns the K maps.
struct KernelTiling {
  int count = 8;        // K ≥ 1
  int kernel_size = 7;  // k, odd ≥ 1
  int tile_columns = 4; // tiles per row, ≥ 1
  int gap = 2;          // guard samples between feature maps, ≥ 0
  Eigen::Index object_rows = 28;
  Eigen::Index object_cols = 28;

  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
  int tile_rows() const { return (count + tile_columns - 1) / tile_columns; }
  Eigen::Index pitch_rows() const { return object_rows + kernel_size - 1 + gap; }
  Eigen::Index pitch_cols() const { return object_cols + kernel_size - 1 + gap; }
  Eigen::Index canvas_rows() const { return tile_rows() * pitch_rows(); }
  Eigen::Index canvas_cols() const { return tile_columns * pitch_cols(); }

  std::pair<Eigen::Index, Eigen::Index> map_origin(int j) const;    // top-left of feature map j on canvas
  std::pair<Eigen::Index, Eigen::Index> object_origin() const;      // top-left of the embedded object
  std::pair<Eigen::Index, Eigen::Index> kernel_origin(int j) const;  // top-left of kernel j in the PSF

  RArray embed(const RArray& object) const;                  // object → canvas (zeros around)
  RArray compose(const std::vector<RArray>& kernels) const;  // K kernels (k × k, ≥ 0) → canvas PSF
  std::vector<RArray> crop(const RArray& image) const;       // canvas image → K maps of object size
  // Adjoint pairs for gradients: decompose(g) = ∂L/∂kernels from ∂L/∂PSF; uncrop(maps) = ∂L/∂image.
  std::vector<RArray> decompose(const RArray& dL_dpsf) const;
  RArray uncrop(const std::vector<RArray>& dL_dmaps) const;
};

// ---------------------------------------------------------------------------------------------------
// Polychromatic PSF: Σ_λ w_λ · PSF_λ on one common camera grid.
//
// For each wavelength λ the element's phase is φ_λ = φ_design · (λ_design / λ) when
// phase_scales_with_wavelength (a fixed optical path difference, dispersion of the material ignored),
// else φ unchanged (an SLM recalibrated per colour). PSF_λ = psf_from_phase(φ_λ, A, pad), whose focal-plane
// pitch δ_λ = λ f / (pad·cols·Δx) scales with λ. Each PSF_λ is resampled onto the camera grid
// (out_rows × out_cols at camera_pitch_m, optical axis at (out_rows/2, out_cols/2)) by bilinear
// interpolation of the intensity density about the optical axis (samples outside PSF_λ's grid are 0),
// then renormalised to unit sum before weighting; the result is divided by Σ w, so it has unit sum.
// This bilinear resampling is accurate when camera_pitch_m ≥ δ_λ (the PSF is oversampled relative to
// the camera); for a coarser PSF grid raise pad. Throws std::invalid_argument for an empty spectrum,
// negative weights, zero weight sum or non-positive lengths.
struct SpectralSample {
  double wavelength_m = 0.0;
  double weight = 1.0;
};

struct PolychromaticOptions {
  double design_wavelength_m = 532e-9;
  double focal_m = 0.05;
  double pupil_pitch_m = 8e-6;
  double camera_pitch_m = 5e-6;
  Eigen::Index out_rows = 64;
  Eigen::Index out_cols = 64;
  int pad = 2;
  bool phase_scales_with_wavelength = true;

  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};

RArray polychromatic_psf(const RArray& design_phase, const RArray& pupil_amplitude,
                         const std::vector<SpectralSample>& spectrum, const PolychromaticOptions& options);

// Bilinear resampling of a centred image from in_pitch to out_pitch about the optical axis (sample
// (rows/2, cols/2) of both grids); samples outside the input are 0. Values are interpolated, not
// integrated: the caller renormalises if it needs conserved sums.
RArray resample_centered(const RArray& in, double in_pitch_m, double out_pitch_m, Eigen::Index out_rows,
                         Eigen::Index out_cols);

}  // namespace hilo::sim
