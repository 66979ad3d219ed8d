#pragma once
// Thin optical elements on a centred sample grid: lenses, apertures, Zernike pupil aberrations and the
// coherent 4f correlator.
//
// Grid convention (field.hpp): sample (r, c) of a rows × cols array at pitch Δx sits at
// x = (c − cols/2)·Δx, y = (r − rows/2)·Δx (integer division), so the optical axis is sample
// (rows/2, cols/2) for even and odd sizes. All lengths are metres; phases radians.
// Invalid arguments (non-positive sizes, pitches, radii, focal lengths, Noll index < 1) throw
// std::invalid_argument naming the rule.
#include <utility>

#include "hilo/sim/fft.hpp"
#include "hilo/sim/field.hpp"

namespace hilo::sim {

// Coordinates x (columns) and y (rows) of every sample, in metres.
RArray grid_x(Eigen::Index rows, Eigen::Index cols, double pitch_m);
RArray grid_y(Eigen::Index rows, Eigen::Index cols, double pitch_m);

// Thin lens transmittance t(x, y) = exp(−i k (x² + y²) / 2f), k = 2π/λ. f > 0 converges, f < 0 diverges.
// The sampled phase aliases where its local frequency r/(λf) exceeds 1/(2Δx), i.e. for
// r > λ f / (2Δx); the function does not check this.
CArray thin_lens(Eigen::Index rows, Eigen::Index cols, double pitch_m, double wavelength_m, double focal_m);
// Multiplies field.u by thin_lens of the field's own grid and wavelength.
void apply_thin_lens(Field& field, double focal_m);

// Aperture transmittances in [0, 1]. supersample = 1 gives a hard edge (a sample is 1 if its centre is
// inside); supersample = s > 1 gives each sample the fraction of an s × s grid of sub-sample points
// inside the shape (area coverage, so the edge is anti-aliased and the total transmitted area converges
// to the analytic area as O(1/s²) for smooth edges).
RArray circular_aperture(Eigen::Index rows, Eigen::Index cols, double pitch_m, double radius_m,
                         int supersample = 1);
// Full widths: |x| ≤ width_m/2 and |y| ≤ height_m/2.
RArray rectangular_aperture(Eigen::Index rows, Eigen::Index cols, double pitch_m, double width_m,
                            double height_m, int supersample = 1);

// Zernike polynomials, Noll (1976) ordering and normalisation: j = 1 piston, 2 tilt x, 3 tilt y,
// 4 defocus, 5–6 astigmatism, 7–8 coma, 9-10 trefoil, 11 spherical, ...
//   Z_j(ρ, θ) = √(n+1) R_n^m(ρ)            (m = 0)
//             = √(2(n+1)) R_n^m(ρ) cos(mθ)  (m ≠ 0, j even)
//             = √(2(n+1)) R_n^m(ρ) sin(mθ)  (m ≠ 0, j odd)
// orthonormal on the unit disk: (1/π) ∫∫_{ρ≤1} Z_i Z_j ρ dρ dθ = δ_ij.
std::pair<int, int> noll_to_nm(int j);  // (n, m) with m ≥ 0; sign decided by parity of j as above
double zernike(int j, double rho, double theta);  // any ρ (the polynomial is evaluated as is)
// Z_j sampled on the grid, pupil radius radius_m about the optical axis; 0 outside the pupil (ρ > 1).
RArray zernike_map(int j, Eigen::Index rows, Eigen::Index cols, double pitch_m, double radius_m);

// Coherent 4f correlator with two identical lenses of focal length f (input at the front focal plane
// of lens 1, filter in the common Fourier plane, output at the back focal plane of lens 2):
//   U_F(u) = 1/(iλf) · Û_in(u/(λf)),       Fourier-plane pitch Δu = λ f / (N Δx)
//   U_out(x) = 1/(iλf) · F{U_F · H}(x/(λf)) = −F⁻¹{F{U_in} · H}(−x)
// i.e. the filtered image, inverted through the optical axis (x → −x, y → −y), with the global factor −1
// the two 1/(iλf) produce. Output pitch = input pitch. With H ≡ 1 the output is −U_in(−x, −y) exactly.
// The filter H is a rows × cols array on the Fourier-plane grid, centred like any hilo grid (sample
// (rows/2, cols/2) is the optical axis, frequency 0). Transforms are circular (no padding): the input
// should be zero near the edges if H spreads it.
class FourFCorrelator {
 public:
  FourFCorrelator(Eigen::Index rows, Eigen::Index cols, double pitch_m, double wavelength_m, double focal_m,
                  Planning planning = Planning::estimate);

  double fourier_plane_pitch_m() const;  // λ f / (N Δx) along x (cols); rows use rows in place of N
  // Throws std::invalid_argument if in or H do not match the correlator's grid/wavelength.
  Field apply(const Field& in, const CArray& H) const;

 private:
  Eigen::Index rows_, cols_;
  double pitch_m_, wavelength_m_, focal_m_;
  Fft2 fft_;
};

// Mirror an array through the optical axis sample (rows/2, cols/2):
//   out(r, c) = a((2·(rows/2) − r) mod rows, (2·(cols/2) − c) mod cols).
// For odd sizes this is a plain flip; for even sizes the first row/column (x = −N/2·Δx, whose mirror
// image lies off the grid) maps to itself, as the DFT's periodic x → −x does.
CArray invert_through_axis(const CArray& a);
RArray invert_through_axis(const RArray& a);

}  // namespace hilo::sim
