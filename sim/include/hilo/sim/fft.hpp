#pragma once
// Planned 2-D discrete Fourier transforms on row-major arrays (FFTW3 underneath).
//
// Conventions (the same as numpy.fft):
//   forward:  X[k, l] = Σ_{r,c} x[r, c] · exp(−2πi (k r / rows + l c / cols))      (unnormalised)
//   inverse:  x[r, c] = (1 / (rows·cols)) Σ_{k,l} X[k, l] · exp(+2πi (k r / rows + l c / cols))
// so inverse(forward(x)) == x to rounding. Index 0 is zero frequency; fftshift moves it to
// (rows/2, cols/2) (integer division), which is the centre of a hilo Field grid (field.hpp).
//
// Thread safety: a plan is made once, in the constructor, under a process-wide mutex (FFTW's planner is
// not re-entrant). Executing is const and may run concurrently from any number of threads on different
// arrays: it uses FFTW's new-array execute functions, copying through an aligned scratch buffer only
// when the caller's array has an alignment the plan was not made for.
//
// Planning cost: Planning::estimate (default) costs milliseconds at most; it is FFTW_ESTIMATE with
// FFTW_UNALIGNED, because plain FFTW_ESTIMATE chose plans 5–8× slower on the development machine
// (bench/sim prints the three variants). Planning::measure (FFTW_MEASURE) times candidate algorithms —
// about 0.4 s at 256², seconds at 2048² — and may run somewhat faster afterwards. FFTW remembers what it
// measured for the life of the process (its "wisdom"), so a later measured plan of that size is cheap.
#include <memory>

#include "hilo/sim/field.hpp"

namespace hilo::sim {

enum class Planning { estimate, measure };

// Complex-to-complex 2-D transform of a fixed rows × cols size.
class Fft2 {
 public:
  // Throws std::invalid_argument if rows or cols < 1, std::runtime_error if FFTW cannot plan.
  Fft2(Eigen::Index rows, Eigen::Index cols, Planning planning = Planning::estimate);
  ~Fft2();
  Fft2(Fft2&&) noexcept;
  Fft2& operator=(Fft2&&) noexcept;
  Fft2(const Fft2&) = delete;
  Fft2& operator=(const Fft2&) = delete;

  Eigen::Index rows() const { return rows_; }
  Eigen::Index cols() const { return cols_; }

  // In place. The array must be rows() × cols() (asserted).
  void forward(CArray& a) const;
  void inverse(CArray& a) const;  // includes the 1/(rows·cols) factor
  // The inverse without the 1/(rows·cols) factor, for callers that fold it into another multiply.
  void inverse_unscaled(CArray& a) const;

  // Out of place convenience.
  CArray forward_copy(const CArray& a) const;
  CArray inverse_copy(const CArray& a) const;

 private:
  struct Plans;
  Eigen::Index rows_ = 0, cols_ = 0;
  std::unique_ptr<Plans> plans_;
};

// Real-to-complex 2-D transform of a real rows × cols array: the non-redundant half spectrum,
// rows × (cols/2 + 1), equal to the first cols/2+1 columns of Fft2::forward of the same data.
// inverse_real reconstructs the real array (normalised, so inverse_real(forward_real(x)) == x).
// Same thread-safety and planning rules as Fft2.
class RealFft2 {
 public:
  RealFft2(Eigen::Index rows, Eigen::Index cols, Planning planning = Planning::estimate);
  ~RealFft2();
  RealFft2(RealFft2&&) noexcept;
  RealFft2& operator=(RealFft2&&) noexcept;
  RealFft2(const RealFft2&) = delete;
  RealFft2& operator=(const RealFft2&) = delete;

  Eigen::Index rows() const { return rows_; }
  Eigen::Index cols() const { return cols_; }
  Eigen::Index spectrum_cols() const { return cols_ / 2 + 1; }

  // x: rows × cols → X: rows × (cols/2 + 1). X is resized if needed.
  void forward(const RArray& x, CArray& X) const;
  // X: rows × (cols/2 + 1) → x: rows × cols. X is taken by value because c2r transforms overwrite
  // their input.
  void inverse(CArray X, RArray& x) const;

 private:
  struct Plans;
  Eigen::Index rows_ = 0, cols_ = 0;
  std::unique_ptr<Plans> plans_;
};

// Free functions that plan with Planning::estimate on each call: for one-off use, not inner loops.
CArray fft2(const CArray& a);
CArray ifft2(const CArray& a);

// Move the zero-frequency sample from index 0 to index n/2 along both axes (numpy.fft.fftshift), and
// back (ifftshift). Correct for odd and even sizes: ifftshift(fftshift(a)) == a always.
CArray fftshift(const CArray& a);
CArray ifftshift(const CArray& a);
RArray fftshift(const RArray& a);
RArray ifftshift(const RArray& a);

// Spatial frequencies (cycles per metre) of an n-point DFT at sample pitch d: numpy.fft.fftfreq, i.e.
// k/(n d) for k < (n+1)/2, else (k − n)/(n d). Returned unshifted (index 0 = zero frequency).
Eigen::ArrayXd fft_frequencies(Eigen::Index n, double pitch);

// Smallest size ≥ n whose only prime factors are 2, 3, 5, 7 (sizes FFTW transforms fastest).
Eigen::Index next_fast_size(Eigen::Index n);

}  // namespace hilo::sim
