#include "hilo/sim/propagation.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace hilo::sim {
namespace {

constexpr double kPi = std::numbers::pi;

void check_geometry(const char* what, Eigen::Index rows, Eigen::Index cols, double pitch_m,
                    double wavelength_m, double z_m) {
  const std::string w(what);
  if (rows < 1 || cols < 1)
    throw std::invalid_argument(w + ": rows and cols must be >= 1, got " + std::to_string(rows) + "x" +
                                std::to_string(cols));
  if (!(pitch_m > 0.0) || !std::isfinite(pitch_m))
    throw std::invalid_argument(w + ": pitch_m must be finite and > 0, got " + std::to_string(pitch_m));
  if (!(wavelength_m > 0.0) || !std::isfinite(wavelength_m))
    throw std::invalid_argument(w + ": wavelength_m must be finite and > 0, got " +
                                std::to_string(wavelength_m));
  if (!std::isfinite(z_m)) throw std::invalid_argument(w + ": z_m must be finite");
}

// The machinery a transfer-function propagator shares: working grid, plan, H, embed/crop.
struct TransferPropagator {
  Eigen::Index rows, cols;  // field shape
  Eigen::Index wr, wc;      // working (maybe padded) shape
  Eigen::Index off_r, off_c;
  double pitch_m, wavelength_m, z_m;
  Fft2 fft;
  CArray H;  // unshifted, on the working grid

  TransferPropagator(Eigen::Index r, Eigen::Index c, double pitch, double wl, double z, const PropagationOptions& o)
      : rows(r),
        cols(c),
        wr(o.pad ? 2 * r : r),
        wc(o.pad ? 2 * c : c),
        off_r(o.pad ? wr / 2 - r / 2 : 0),
        off_c(o.pad ? wc / 2 - c / 2 : 0),
        pitch_m(pitch),
        wavelength_m(wl),
        z_m(z),
        fft(wr, wc, o.planning) {}

  void apply(CArray& u) const {
    if (u.rows() != rows || u.cols() != cols)
      throw std::invalid_argument("propagator: array is " + std::to_string(u.rows()) + "x" +
                                  std::to_string(u.cols()) + ", propagator built for " +
                                  std::to_string(rows) + "x" + std::to_string(cols));
    const double scale = 1.0 / double(wr * wc);
    if (wr == rows && wc == cols) {
      fft.forward(u);
      u *= H * scale;
      fft.inverse_unscaled(u);
      return;
    }
    CArray w = CArray::Zero(wr, wc);
    w.block(off_r, off_c, rows, cols) = u;
    fft.forward(w);
    w *= H * scale;
    fft.inverse_unscaled(w);
    u = w.block(off_r, off_c, rows, cols);
  }

  Field propagate(const Field& in) const {
    if (std::abs(in.pitch_m - pitch_m) > 1e-12 * pitch_m ||
        std::abs(in.wavelength_m - wavelength_m) > 1e-12 * wavelength_m)
      throw std::invalid_argument("propagator: field pitch/wavelength (" + std::to_string(in.pitch_m) + " m, " +
                                  std::to_string(in.wavelength_m) + " m) differ from the propagator's (" +
                                  std::to_string(pitch_m) + " m, " + std::to_string(wavelength_m) + " m)");
    Field out{in.u, in.pitch_m, in.wavelength_m};
    apply(out.u);
    return out;
  }
};

}  // namespace

// ------------------------------------------------------------------------------ AngularSpectrum
struct AngularSpectrum::Impl : TransferPropagator {
  using TransferPropagator::TransferPropagator;
};

AngularSpectrum::AngularSpectrum(Eigen::Index rows, Eigen::Index cols, double pitch_m, double wavelength_m,
                                 double z_m, PropagationOptions options) {
  check_geometry("AngularSpectrum", rows, cols, pitch_m, wavelength_m, z_m);
  impl_ = std::make_unique<Impl>(rows, cols, pitch_m, wavelength_m, z_m, options);
  Impl& p = *impl_;
  const Eigen::ArrayXd fx = fft_frequencies(p.wc, pitch_m);
  const Eigen::ArrayXd fy = fft_frequencies(p.wr, pitch_m);
  const double inv_l2 = 1.0 / (wavelength_m * wavelength_m);
  // Matsushima & Shimobaba's limit per axis on the working grid.
  const double dnu_x = 1.0 / (double(p.wc) * pitch_m), dnu_y = 1.0 / (double(p.wr) * pitch_m);
  const double lim_x = options.band_limit ? 1.0 / (wavelength_m * std::sqrt(std::pow(2 * dnu_x * z_m, 2) + 1))
                                          : INFINITY;
  const double lim_y = options.band_limit ? 1.0 / (wavelength_m * std::sqrt(std::pow(2 * dnu_y * z_m, 2) + 1))
                                          : INFINITY;
  p.H.resize(p.wr, p.wc);
  for (Eigen::Index r = 0; r < p.wr; ++r) {
    for (Eigen::Index c = 0; c < p.wc; ++c) {
      const double arg = inv_l2 - fx[c] * fx[c] - fy[r] * fy[r];
      const bool inside = std::abs(fx[c]) < lim_x && std::abs(fy[r]) < lim_y && arg > 0.0;
      p.H(r, c) = inside ? std::polar(1.0, 2 * kPi * z_m * std::sqrt(arg)) : cplx(0.0, 0.0);
    }
  }
}

AngularSpectrum::~AngularSpectrum() = default;
AngularSpectrum::AngularSpectrum(AngularSpectrum&&) noexcept = default;
AngularSpectrum& AngularSpectrum::operator=(AngularSpectrum&&) noexcept = default;
Field AngularSpectrum::propagate(const Field& in) const { return impl_->propagate(in); }
void AngularSpectrum::apply(CArray& u) const { impl_->apply(u); }
const CArray& AngularSpectrum::transfer_function() const { return impl_->H; }
double AngularSpectrum::z_m() const { return impl_->z_m; }

// ------------------------------------------------------------------------------ FresnelTransfer
struct FresnelTransfer::Impl : TransferPropagator {
  using TransferPropagator::TransferPropagator;
};

FresnelTransfer::FresnelTransfer(Eigen::Index rows, Eigen::Index cols, double pitch_m, double wavelength_m,
                                 double z_m, PropagationOptions options) {
  check_geometry("FresnelTransfer", rows, cols, pitch_m, wavelength_m, z_m);
  impl_ = std::make_unique<Impl>(rows, cols, pitch_m, wavelength_m, z_m, options);
  Impl& p = *impl_;
  const Eigen::ArrayXd fx = fft_frequencies(p.wc, pitch_m);
  const Eigen::ArrayXd fy = fft_frequencies(p.wr, pitch_m);
  const double kz = 2 * kPi / wavelength_m * z_m;
  p.H.resize(p.wr, p.wc);
  for (Eigen::Index r = 0; r < p.wr; ++r)
    for (Eigen::Index c = 0; c < p.wc; ++c)
      p.H(r, c) = std::polar(1.0, kz - kPi * wavelength_m * z_m * (fx[c] * fx[c] + fy[r] * fy[r]));
}

FresnelTransfer::~FresnelTransfer() = default;
FresnelTransfer::FresnelTransfer(FresnelTransfer&&) noexcept = default;
FresnelTransfer& FresnelTransfer::operator=(FresnelTransfer&&) noexcept = default;
Field FresnelTransfer::propagate(const Field& in) const { return impl_->propagate(in); }
void FresnelTransfer::apply(CArray& u) const { impl_->apply(u); }
const CArray& FresnelTransfer::transfer_function() const { return impl_->H; }

// ------------------------------------------------------------------------------ free functions
Field propagate_angular_spectrum(const Field& in, double z_m, PropagationOptions options) {
  return AngularSpectrum(in.u.rows(), in.u.cols(), in.pitch_m, in.wavelength_m, z_m, options).propagate(in);
}

Field propagate_fresnel(const Field& in, double z_m, PropagationOptions options) {
  return FresnelTransfer(in.u.rows(), in.u.cols(), in.pitch_m, in.wavelength_m, z_m, options).propagate(in);
}

double fraunhofer_pitch(Eigen::Index n, double pitch_m, double wavelength_m, double z_m) {
  return wavelength_m * z_m / (double(n) * pitch_m);
}

Field propagate_fraunhofer(const Field& in, double z_m, bool include_quadratic_phase) {
  const Eigen::Index n = in.u.rows();
  check_geometry("propagate_fraunhofer", n, in.u.cols(), in.pitch_m, in.wavelength_m, z_m);
  if (in.u.cols() != n)
    throw std::invalid_argument("propagate_fraunhofer: grid must be square (the output pitch λz/(NΔx) "
                                "would differ between axes), got " +
                                std::to_string(n) + "x" + std::to_string(in.u.cols()));
  if (!(z_m > 0.0)) throw std::invalid_argument("propagate_fraunhofer: z_m must be > 0");
  const double lambda = in.wavelength_m, dx = in.pitch_m;
  const double dx2 = fraunhofer_pitch(n, dx, lambda, z_m);
  const double k = 2 * kPi / lambda;

  CArray w = ifftshift(in.u);
  Fft2(n, n).forward(w);
  Field out{fftshift(w), dx2, lambda};
  // 1/(iλz) · Δx² (the Riemann-sum measure), times the quadratic phase if requested.
  const cplx scale = dx * dx / (cplx(0.0, 1.0) * lambda * z_m);
  for (Eigen::Index r = 0; r < n; ++r) {
    const double y = double(r - n / 2) * dx2;
    for (Eigen::Index c = 0; c < n; ++c) {
      const double x = double(c - n / 2) * dx2;
      const cplx phase = include_quadratic_phase ? std::polar(1.0, k * z_m + k * (x * x + y * y) / (2 * z_m))
                                                 : cplx(1.0, 0.0);
      out.u(r, c) *= scale * phase;
    }
  }
  return out;
}

}  // namespace hilo::sim
