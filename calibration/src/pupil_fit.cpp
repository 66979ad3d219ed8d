#include "hilo/calibration/pupil_fit.hpp"

#include <cmath>
#include <numbers>
#include <set>
#include <sstream>
#include <stdexcept>

#include "hilo/sim/imaging.hpp"
#include "hilo/sim/optics.hpp"
#include "hilo/sim/slm_model.hpp"

namespace hilo::calibration {

namespace {
constexpr double kTwoPi = 2.0 * std::numbers::pi;

// The objective with its Zernike maps and PSF engine built once for a fit.
class Objective {
 public:
  Objective(const PupilFitProblem& p, const PupilFitOptions& o) : p_(p), o_(o), engine_(p.element_phase.rows(), p.element_phase.cols(), p.pad) {
    if (auto e = o.validate(); !e.empty()) throw std::invalid_argument("pupil fit: " + e);
    const auto R = p.element_phase.rows(), C = p.element_phase.cols();
    if (p.pupil_amplitude.rows() != R || p.pupil_amplitude.cols() != C)
      throw std::invalid_argument("pupil fit: element_phase and pupil_amplitude differ in shape");
    if (p.object.rows() != p.measured.rows() || p.object.cols() != p.measured.cols())
      throw std::invalid_argument("pupil fit: object and measured differ in shape");
    if (!(p.pupil_radius_px > 0)) throw std::invalid_argument("pupil fit: pupil_radius_px must be > 0");
    if ((p.pupil_amplitude < 0).any() || !(p.pupil_amplitude.square().sum() > 0))
      throw std::invalid_argument("pupil fit: the pupil is dark");
    mm_ = p.measured.square().sum();
    if (!(mm_ > 0) || !std::isfinite(mm_)) throw std::invalid_argument("pupil fit: the measured frame is dark or not finite");
    for (int j : o.noll) z_.push_back(sim::zernike_map(j, R, C, 1.0, p.pupil_radius_px));
  }
  int size() const { return int(z_.size()) + (o_.fit_phase_scale ? 1 : 0); }

  double operator()(const Eigen::VectorXd& x, Eigen::VectorXd* grad, double* scale = nullptr) const {
    if (x.size() != size()) throw std::invalid_argument("pupil fit: " + std::to_string(x.size()) + " parameters for " + std::to_string(size()));
    const double h = o_.fit_phase_scale ? x(size() - 1) : 0.0;
    RArray phi = (1.0 + h) * p_.element_phase;
    for (std::size_t j = 0; j < z_.size(); ++j) phi += (kTwoPi * x(Eigen::Index(j))) * z_[j];
    const RArray psf = engine_.psf(phi, p_.pupil_amplitude);
    const RArray I = sim::incoherent_image(p_.object, psf);
    const double mi = (p_.measured * I).sum(), ii = I.square().sum();
    if (!(ii > 0)) throw std::invalid_argument("pupil fit: the model image is dark (the probe misses the frame)");
    const double s = mi / ii;
    if (scale) *scale = s;
    const double L = 1.0 - mi * mi / (mm_ * ii);
    if (grad) {
      const RArray dI = (-2.0 * s / mm_) * (p_.measured - s * I);
      const RArray dpsf = sim::incoherent_image_psf_vjp(p_.object, psf.rows(), psf.cols(), dI);
      const RArray dphi = engine_.vjp(phi, p_.pupil_amplitude, dpsf);
      grad->resize(size());
      for (std::size_t j = 0; j < z_.size(); ++j) (*grad)(Eigen::Index(j)) = kTwoPi * (dphi * z_[j]).sum();
      if (o_.fit_phase_scale) (*grad)(size() - 1) = (dphi * p_.element_phase).sum();
    }
    return L;
  }

 private:
  const PupilFitProblem& p_;
  const PupilFitOptions& o_;
  sim::PupilPsf engine_;
  double mm_ = 0;
  std::vector<RArray> z_;
};
}  // namespace

std::string PupilFitOptions::validate() const {
  if (noll.empty() && !fit_phase_scale) return "pupil_fit.noll must name at least one term (or fit_phase_scale)";
  std::set<int> seen;
  for (int j : noll) {
    if (j < 2 || j > 37) return "pupil_fit.noll entries must be in [2, 37], got " + std::to_string(j);
    if (!seen.insert(j).second) return "pupil_fit.noll must not repeat a term, got " + std::to_string(j) + " twice";
  }
  if (iterations < 1 || iterations > 100000)
    return "pupil_fit.iterations must be in [1, 100000], got " + std::to_string(iterations);
  if (!(learning_rate > 0)) return "pupil_fit.learning_rate must be > 0, got " + std::to_string(learning_rate);
  return {};
}

RArray zernike_phase(const std::map<int, double>& waves, Eigen::Index rows, Eigen::Index cols, double radius) {
  RArray a = RArray::Zero(rows, cols);
  for (const auto& [j, c] : waves)
    if (c != 0.0) a += (kTwoPi * c) * sim::zernike_map(j, rows, cols, 1.0, radius);
  return a;
}

RArray PupilFit::aberration(Eigen::Index rows, Eigen::Index cols, double radius) const {
  std::map<int, double> w;
  for (const auto& [j, c] : zernike_waves)
    if (j > 3) w[j] = c;
  return zernike_phase(w, rows, cols, radius);
}

nlohmann::json PupilFit::to_json() const {
  nlohmann::json z = nlohmann::json::object();
  for (const auto& [j, c] : zernike_waves) z[std::to_string(j)] = c;
  return {{"zernike_waves", z}, {"phase_scale", phase_scale}, {"loss_start", loss_start}, {"loss", loss},
          {"scale", scale}, {"iterations", iterations}};
}

double pupil_fit_objective(const PupilFitProblem& problem, const PupilFitOptions& options, const Eigen::VectorXd& params,
                           Eigen::VectorXd* gradient) {
  return Objective(problem, options)(params, gradient);
}

PupilFit fit_pupil_aberration(const PupilFitProblem& problem, const PupilFitOptions& options) {
  const Objective f(problem, options);
  const int n = f.size();
  Eigen::VectorXd x = Eigen::VectorXd::Zero(n), best = x, g, m1 = x, m2 = x;
  PupilFit r;
  r.loss_start = f(x, nullptr);
  double best_loss = r.loss_start;
  const double b1 = 0.9, b2 = 0.999;
  for (int it = 1; it <= options.iterations; ++it) {
    const double L = f(x, &g);
    if (L < best_loss) {
      best_loss = L;
      best = x;
    }
    // The step decays geometrically to a tenth of the start over the run, so the fit settles.
    const double lr = options.learning_rate * std::pow(0.1, double(it - 1) / options.iterations);
    m1 = b1 * m1 + (1 - b1) * g;
    m2 = b2 * m2 + (1 - b2) * g.cwiseAbs2();
    const Eigen::VectorXd mh = m1 / (1 - std::pow(b1, it)), vh = m2 / (1 - std::pow(b2, it));
    x -= lr * (mh.array() / (vh.array().sqrt() + 1e-30)).matrix();
    r.iterations = it;
  }
  if (const double L = f(x, nullptr); L < best_loss) {
    best_loss = L;
    best = x;
  }
  r.loss = f(best, nullptr, &r.scale);
  for (std::size_t j = 0; j < options.noll.size(); ++j) r.zernike_waves[options.noll[j]] = best(Eigen::Index(j));
  if (options.fit_phase_scale) r.phase_scale = 1.0 + best(n - 1);
  std::ostringstream rep;
  rep << "pupil fit: unexplained share " << r.loss_start << " → " << r.loss << " after " << r.iterations << " Adam steps;";
  for (const auto& [j, c] : r.zernike_waves) rep << " Z" << j << " " << c;
  if (options.fit_phase_scale) rep << "; phase scale " << r.phase_scale;
  r.report = rep.str();
  return r;
}

PupilFitProblem pupil_fit_problem(const sim::BenchOptions& design, const RArray& phase, const TileLocations& tiles,
                                  const TileLayout& layout) {
  const auto& e = design.element;
  if (e.kind == sim::ElementKind::psf) throw std::invalid_argument("pupil fit: the element is a given PSF, it has no pupil");
  PupilFitProblem p;
  if (e.kind == sim::ElementKind::slm) {
    const sim::SlmModel slm(e.slm);
    p.element_phase = slm.level_phase(slm.quantize(phase));
  } else {
    p.element_phase = phase;
  }
  const Eigen::Index R = p.element_phase.rows(), C = p.element_phase.cols();
  const double d = e.pupil_diameter_px > 0 ? e.pupil_diameter_px : double(std::min(R, C));
  p.pupil_radius_px = 0.5 * d;
  p.pupil_amplitude = sim::circular_aperture(R, C, 1.0, p.pupil_radius_px, 4);
  p.pad = e.psf_pad;
  p.measured = tiles.registered;
  p.object = probe_object(tiles, layout);
  return p;
}

RArray probe_object(const TileLocations& tiles, const TileLayout& layout) {
  RArray o = RArray::Zero(tiles.registered.rows(), tiles.registered.cols());
  const Eigen::Index sr = tiles.spot.rows(), sc = tiles.spot.cols();
  if (layout.object_row < 0 || layout.object_col < 0 || layout.object_row + sr > o.rows() || layout.object_col + sc > o.cols())
    throw std::invalid_argument("pupil fit: the probe does not fit the registered frame at the layout's object position");
  o.block(layout.object_row, layout.object_col, sr, sc) = tiles.spot;
  return o;
}

}  // namespace hilo::calibration
