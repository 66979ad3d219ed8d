#include "hilo/calibration/deploy.hpp"

#include <cmath>
#include <numbers>
#include <sstream>
#include <stdexcept>

#include "hilo/sim/fft.hpp"
#include "hilo/sim/imaging.hpp"
#include "stats.hpp"

namespace hilo::calibration {

using sim::CArray;

namespace {
constexpr double kTwoPi = 2.0 * std::numbers::pi;
using detail::pearson;

double window_energy(const RArray& psf, const TileLayout& l) {
  double s = 0;
  for (const auto& k : cut_kernels(psf, l)) s += k.sum();
  return s;
}

// Circular shift so that sample (rows/2, cols/2) moves to (0, 0) (ifftshift) or back (fftshift).
CArray shift_half(const CArray& a, bool inverse) {
  const Eigen::Index R = a.rows(), C = a.cols();
  const Eigen::Index sr = inverse ? R - R / 2 : R / 2, sc = inverse ? C - C / 2 : C / 2;
  CArray out(R, C);
  for (Eigen::Index r = 0; r < R; ++r)
    for (Eigen::Index c = 0; c < C; ++c) out((r + sr) % R, (c + sc) % C) = a(r, c);
  return out;
}
}  // namespace

std::string PhaseRetrievalOptions::validate() const {
  if (gs_iterations < 0) return "deploy.gs_iterations must be >= 0, got " + std::to_string(gs_iterations);
  if (adam_iterations < 0) return "deploy.adam_iterations must be >= 0, got " + std::to_string(adam_iterations);
  if (!(learning_rate > 0)) return "deploy.learning_rate must be > 0, got " + std::to_string(learning_rate);
  return {};
}

RArray wrapped_phase(const RArray& phase) {
  return phase.unaryExpr([](double p) {
    const double w = std::fmod(p, kTwoPi);
    return w < 0 ? w + kTwoPi : w;
  });
}

PsfComparison compare_psfs(const RArray& reference, const RArray& other, const TileLayout& l) {
  if (reference.rows() != other.rows() || reference.cols() != other.cols())
    throw std::invalid_argument("compare_psfs: the PSFs differ in shape");
  PsfComparison c;
  const auto kr = cut_kernels(reference, l), ko = cut_kernels(other, l);
  c.min_correlation = 1.0;
  for (int j = 0; j < l.count(); ++j) {
    c.correlation.push_back(pearson(kr[j], ko[j]));
    c.mean_correlation += c.correlation.back() / l.count();
    c.min_correlation = std::min(c.min_correlation, c.correlation.back());
  }
  c.efficiency = window_energy(other, l) / other.sum();
  c.reference_efficiency = window_energy(reference, l) / reference.sum();
  return c;
}

PhaseDesign retrieve_phase(const std::vector<RArray>& kernels, const TileLayout& l, const RArray& A, int pad,
                           const PhaseRetrievalOptions& options, std::mt19937_64& rng, const RArray& aberration) {
  if (const auto e = options.validate(); !e.empty()) throw std::invalid_argument(e);
  if (aberration.size() > 0 && (aberration.rows() != A.rows() || aberration.cols() != A.cols()))
    throw std::invalid_argument("retrieve_phase: the aberration differs in shape from the pupil");
  const RArray a = aberration.size() > 0 ? aberration : RArray(RArray::Zero(A.rows(), A.cols()));
  if (pad < 1) throw std::invalid_argument("retrieve_phase: pad must be >= 1");
  if ((A < 0).any() || A.square().sum() <= 0) throw std::invalid_argument("retrieve_phase: the pupil is dark");
  const Eigen::Index R = A.rows(), C = A.cols(), PR = pad * R, PC = pad * C;
  PhaseDesign d;
  d.target = compose_psf(kernels, l, PR, PC);
  const double ts = d.target.sum();
  if (!(ts > 0)) throw std::invalid_argument("retrieve_phase: the kernels are all zero");
  d.target /= ts;
  const RArray& T = d.target;
  const double TT = T.square().sum();

  std::uniform_real_distribution<double> u(0.0, kTwoPi);
  RArray phi(R, C);
  for (Eigen::Index i = 0; i < phi.size(); ++i) phi.data()[i] = u(rng);

  // Gerchberg–Saxton between the pupil (amplitude A) and the focal plane (amplitude √T).
  const sim::Fft2 fft(PR, PC);
  const RArray focal_amp = T.sqrt();
  for (int it = 0; it < options.gs_iterations; ++it) {
    CArray E = CArray::Zero(PR, PC);
    for (Eigen::Index r = 0; r < R; ++r)
      for (Eigen::Index c = 0; c < C; ++c) E(r, c) = A(r, c) * std::polar(1.0, phi(r, c) + a(r, c));
    fft.forward(E);
    CArray F = shift_half(E, false);
    for (Eigen::Index i = 0; i < F.size(); ++i) {
      const double m = std::abs(F.data()[i]);
      F.data()[i] = m > 0 ? focal_amp.data()[i] * F.data()[i] / m : sim::cplx(focal_amp.data()[i], 0.0);
    }
    E = shift_half(F, true);
    fft.inverse(E);
    for (Eigen::Index r = 0; r < R; ++r)
      for (Eigen::Index c = 0; c < C; ++c) phi(r, c) = std::arg(E(r, c)) - a(r, c);
  }

  // Adam on L(φ) = ‖P‖² − ⟨P,T⟩²/‖T‖².
  const sim::PupilPsf engine(R, C, pad);
  auto loss_grad = [&](const RArray& ph, RArray* grad) {
    const RArray P = engine.psf(ph + a, A);
    const double PT = (P * T).sum();
    const double L = P.square().sum() - PT * PT / TT;
    if (grad) *grad = engine.vjp(ph + a, A, 2.0 * P - (2.0 * PT / TT) * T);
    return L;
  };
  RArray m1 = RArray::Zero(R, C), m2 = RArray::Zero(R, C), g;
  const double b1 = 0.9, b2 = 0.999, eps = 1e-12;
  double L0 = loss_grad(phi, nullptr);
  for (int it = 1; it <= options.adam_iterations; ++it) {
    loss_grad(phi, &g);
    m1 = b1 * m1 + (1 - b1) * g;
    m2 = b2 * m2 + (1 - b2) * g.square();
    const RArray mh = m1 / (1 - std::pow(b1, it)), vh = m2 / (1 - std::pow(b2, it));
    phi -= options.learning_rate * mh / (vh.sqrt() + eps);
  }
  phi = wrapped_phase(phi);
  d.phase = phi;
  d.psf = engine.psf(phi + a, A);
  d.loss = loss_grad(phi, nullptr);
  d.fidelity = compare_psfs(T, d.psf, l);
  std::ostringstream rep;
  rep << "loss " << L0 << " after Gerchberg-Saxton, " << d.loss << " after " << options.adam_iterations
      << " Adam steps; kernel correlation mean " << d.fidelity.mean_correlation << ", min "
      << d.fidelity.min_correlation << "; efficiency " << d.fidelity.efficiency;
  d.report = rep.str();
  return d;
}

cv::Mat phase_to_levels(const RArray& phase, const sim::SlmModel& slm) {
  const sim::Levels lv = slm.quantize(phase);
  const bool wide = slm.options().bit_depth > 8;
  cv::Mat m(int(lv.rows()), int(lv.cols()), wide ? CV_16UC1 : CV_8UC1);
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) {
      if (wide)
        m.at<std::uint16_t>(r, c) = lv(r, c);
      else
        m.at<std::uint8_t>(r, c) = std::uint8_t(lv(r, c));
    }
  return m;
}

drivers::DeviceStatus deploy_phase(drivers::Slm& element, const RArray& phase, const sim::SlmModel& slm) {
  if (element.width_px() != slm.options().cols || element.height_px() != slm.options().rows)
    return drivers::DeviceError{drivers::DeviceErrc::invalid_argument,
                                "slm '" + element.name() + "': the element model is " +
                                    std::to_string(slm.options().rows) + " x " + std::to_string(slm.options().cols) +
                                    ", the device " + std::to_string(element.height_px()) + " x " +
                                    std::to_string(element.width_px())};
  return element.show(phase_to_levels(phase, slm));
}

}  // namespace hilo::calibration
