#include "hilo/sim/bench_model.hpp"

#include <cmath>
#include <stdexcept>

#include "hilo/io/options_json.hpp"
#include "hilo/sim/config_error.hpp"
#include "hilo/sim/imaging.hpp"
#include "hilo/sim/optics.hpp"

namespace hilo::sim {

std::string InputOptions::validate(const std::string& path) const {
  using namespace detail;
  return io::first_broken({range_rule(path + ".rows", rows, 1, 4096), range_rule(path + ".cols", cols, 1, 4096),
                           range_rule(path + ".camera_px_per_input_px", camera_px_per_input_px, 1, 64),
                           range_rule(path + ".photons_per_ms", photons_per_ms, 0.0, 1e12)});
}

std::string ElementOptions::validate(const std::string& path) const {
  using namespace detail;
  if (auto e = slm.validate(path + ".slm"); !e.empty()) return e;
  const double max_d = double(std::min(slm.rows, slm.cols) * (kind == ElementKind::slm ? slm.oversample : 1));
  return io::first_broken({range_rule(path + ".pupil_diameter_px", pupil_diameter_px, 0.0, max_d),
                           range_rule(path + ".psf_pad", psf_pad, 1, 8)});
}

std::string BenchOptions::validate(const std::string& path) const {
  using namespace detail;
  if (auto e = io::first_broken({range_rule(path + ".wavelength_nm", wavelength_nm, 200.0, 20000.0),
                                 input.validate(path + ".input"), element.validate(path + ".element"),
                                 camera.validate(path + ".camera"), profile.validate(path + ".profile")});
      !e.empty())
    return e;
  if (imaging == Imaging::coherent && element.kind == ElementKind::psf)
    return path + ".imaging coherent needs an element with a phase (kind slm or fabricated), got kind psf";
  const int m = input.camera_px_per_input_px;
  if (input.rows * m > camera.rows || input.cols * m > camera.cols)
    return path + ".input (" + std::to_string(input.rows) + " x " + std::to_string(input.cols) + " px at " +
           std::to_string(m) + " camera px per input px) must fit on " + path + ".camera (" +
           std::to_string(camera.rows) + " x " + std::to_string(camera.cols) + ")";
  return {};
}

namespace {
CameraOptions bench_camera(const BenchOptions& o) {
  CameraOptions c = o.camera;
  c.noise = o.profile.sensor;
  c.seed = o.profile.seed;
  return c;
}
}  // namespace

SimulatedBench::SimulatedBench(BenchOptions options)
    : opt_((detail::require_valid(options.validate()), std::move(options))),
      as_built_(std::make_unique<AsBuilt>(opt_.profile)),
      camera_(bench_camera(opt_)),
      slm_(opt_.element.slm) {}

SimulatedBench::~SimulatedBench() = default;
SimulatedBench::SimulatedBench(SimulatedBench&&) noexcept = default;
SimulatedBench& SimulatedBench::operator=(SimulatedBench&&) noexcept = default;

Eigen::Index SimulatedBench::element_rows() const {
  return opt_.element.slm.rows * (opt_.element.kind == ElementKind::slm ? opt_.element.slm.oversample : 1);
}
Eigen::Index SimulatedBench::element_cols() const {
  return opt_.element.slm.cols * (opt_.element.kind == ElementKind::slm ? opt_.element.slm.oversample : 1);
}

std::pair<int, int> SimulatedBench::object_origin() const {
  const int m = opt_.input.camera_px_per_input_px;
  return {(opt_.camera.rows - opt_.input.rows * m) / 2, (opt_.camera.cols - opt_.input.cols * m) / 2};
}

void SimulatedBench::set_input(const RArray& in) {
  if (in.rows() != opt_.input.rows || in.cols() != opt_.input.cols)
    throw std::invalid_argument("bench input must be " + std::to_string(opt_.input.rows) + " x " +
                                std::to_string(opt_.input.cols) + ", got " + std::to_string(in.rows()) +
                                " x " + std::to_string(in.cols()));
  if (!in.isFinite().all() || (in < 0.0).any())
    throw std::invalid_argument("bench input intensity must be finite and >= 0");
  const int m = opt_.input.camera_px_per_input_px;
  const auto [r0, c0] = object_origin();
  object_ = RArray::Zero(opt_.camera.rows, opt_.camera.cols);
  const double per_px = opt_.imaging == Imaging::coherent ? std::sqrt(opt_.input.photons_per_ms / double(m * m))
                                                           : opt_.input.photons_per_ms / double(m * m);
  for (Eigen::Index r = 0; r < in.rows(); ++r)
    for (Eigen::Index c = 0; c < in.cols(); ++c)
      object_.block(r0 + r * m, c0 + c * m, m, m).setConstant(in(r, c) * per_px);
  have_input_ = true;
  ideal_cache_.reset();
  as_built_cache_.reset();
}

void SimulatedBench::set_element_phase(const RArray& phase) {
  const auto& s = opt_.element.slm;
  if (opt_.element.kind == ElementKind::psf)
    throw std::invalid_argument("set_element_phase: the bench element is a given PSF (kind psf)");
  if (phase.rows() != s.rows || phase.cols() != s.cols)
    throw std::invalid_argument("element phase must be " + std::to_string(s.rows) + " x " +
                                std::to_string(s.cols) + ", got " + std::to_string(phase.rows()) + " x " +
                                std::to_string(phase.cols()));
  if (!phase.isFinite().all()) throw std::invalid_argument("element phase must be finite");
  if (opt_.element.kind == ElementKind::slm) {
    set_element_levels(slm_.quantize(phase));
    return;
  }
  design_phase_ = phase;
  have_element_ = true;
  invalidate_psfs();
}

void SimulatedBench::set_element_levels(const Levels& levels) {
  if (opt_.element.kind != ElementKind::slm)
    throw std::invalid_argument("set_element_levels: the bench element is not an SLM (kind slm)");
  const RArray lp = slm_.level_phase(levels);  // validates shape and range
  const int s = opt_.element.slm.oversample;
  design_phase_.resize(lp.rows() * s, lp.cols() * s);
  for (Eigen::Index r = 0; r < design_phase_.rows(); ++r)
    for (Eigen::Index c = 0; c < design_phase_.cols(); ++c) design_phase_(r, c) = lp(r / s, c / s);
  levels_ = levels;
  have_element_ = true;
  invalidate_psfs();
}

void SimulatedBench::set_psf(const RArray& psf) {
  if (opt_.element.kind != ElementKind::psf)
    throw std::invalid_argument("set_psf: the bench element is not a given PSF (kind psf)");
  if (psf.size() == 0 || !psf.isFinite().all() || (psf < 0.0).any())
    throw std::invalid_argument("set_psf: the PSF must be non-empty, finite and >= 0");
  given_psf_ = psf;
  have_element_ = true;
  invalidate_psfs();
}

void SimulatedBench::set_profile(const AsBuiltProfile& profile) {
  detail::require_valid(profile.validate());
  opt_.profile = profile;
  as_built_ = std::make_unique<AsBuilt>(profile);
  camera_ = CameraModel(bench_camera(opt_));
  invalidate_psfs();
}

void SimulatedBench::set_camera_settings(double exposure_ms, double gain_e_per_count) {
  if (exposure_ms == opt_.camera.exposure_ms && gain_e_per_count == opt_.camera.gain_e_per_count) return;
  BenchOptions next = opt_;
  next.camera.exposure_ms = exposure_ms;
  next.camera.gain_e_per_count = gain_e_per_count;
  camera_ = CameraModel(bench_camera(next));  // validates before anything changes
  opt_ = std::move(next);
}

void SimulatedBench::invalidate_psfs() {
  psfs_valid_ = false;
  design_imager_.reset();
  as_built_imager_.reset();
  design_imager_im_.reset();
  as_built_imager_im_.reset();
  ideal_cache_.reset();
  as_built_cache_.reset();
}

RArray SimulatedBench::pupil_amplitude() const {
  const Eigen::Index R = element_rows(), C = element_cols();
  const double d = opt_.element.pupil_diameter_px > 0 ? opt_.element.pupil_diameter_px : double(std::min(R, C));
  return circular_aperture(R, C, 1.0, 0.5 * d, 4);
}

void SimulatedBench::ensure_psfs() {
  if (psfs_valid_) return;
  if (!have_element_) throw std::logic_error("SimulatedBench: no element set (set_element_phase/levels/psf)");
  const auto kind = opt_.element.kind;
  if (kind == ElementKind::psf) {
    design_psf_ = as_built_psf_ = given_psf_;
  } else {
    const RArray A = pupil_amplitude();
    const PupilPsf engine(A.rows(), A.cols(), opt_.element.psf_pad);
    const double d = opt_.element.pupil_diameter_px > 0 ? opt_.element.pupil_diameter_px
                                                        : double(std::min(A.rows(), A.cols()));
    const RArray aberr = as_built_->pupil_phase(A.rows(), A.cols(), 0.5 * d);
    RArray built_amp = A, built_phase;
    if (kind == ElementKind::slm) {
      built_amp = A * slm_.modulation(*levels_).abs();
      built_phase = slm_.realised_phase(*levels_) + aberr;
    } else {
      built_phase = as_built_->fabricate(design_phase_) + aberr;
    }
    if (opt_.imaging == Imaging::coherent) {
      const CArray hd = engine.asf(design_phase_, A), hb = engine.asf(built_phase, built_amp);
      design_psf_ = hd.abs2();
      as_built_psf_ = hb.abs2();
      const auto R = opt_.camera.rows, C = opt_.camera.cols;
      design_imager_ = std::make_unique<IncoherentImager>(R, C, RArray(hd.real()));
      design_imager_im_ = std::make_unique<IncoherentImager>(R, C, RArray(hd.imag()));
      as_built_imager_ = std::make_unique<IncoherentImager>(R, C, RArray(hb.real()));
      as_built_imager_im_ = std::make_unique<IncoherentImager>(R, C, RArray(hb.imag()));
      psfs_valid_ = true;
      return;
    }
    design_psf_ = engine.psf(design_phase_, A);
    as_built_psf_ = engine.psf(built_phase, built_amp);
  }
  design_imager_ = std::make_unique<IncoherentImager>(opt_.camera.rows, opt_.camera.cols, design_psf_);
  as_built_imager_ = std::make_unique<IncoherentImager>(opt_.camera.rows, opt_.camera.cols, as_built_psf_);
  psfs_valid_ = true;
}

RArray SimulatedBench::coherent_image(const IncoherentImager& re, const IncoherentImager& im) const {
  // U ⊛ h for a real object amplitude U: Re = U ⊛ Re h, Im = U ⊛ Im h.
  return re.image(object_).square() + im.image(object_).square();
}

const RArray& SimulatedBench::design_psf() {
  ensure_psfs();
  return design_psf_;
}
const RArray& SimulatedBench::as_built_psf() {
  ensure_psfs();
  return as_built_psf_;
}

RArray SimulatedBench::ideal_image() {
  if (!have_input_) throw std::logic_error("SimulatedBench: no input set (set_input)");
  ensure_psfs();
  if (!ideal_cache_)
    ideal_cache_ = design_imager_im_ ? coherent_image(*design_imager_, *design_imager_im_) : design_imager_->image(object_);
  return *ideal_cache_;
}

RArray SimulatedBench::pre_warp_image() {
  if (!have_input_) throw std::logic_error("SimulatedBench: no input set (set_input)");
  ensure_psfs();
  if (!as_built_cache_)
    as_built_cache_ = as_built_imager_im_ ? coherent_image(*as_built_imager_, *as_built_imager_im_)
                                         : as_built_imager_->image(object_);
  return *as_built_cache_;
}

RArray SimulatedBench::as_built_image(double t_s) {
  const Pose pose = as_built_->pose_at(t_s);
  RArray img = warp_image(pre_warp_image(), pose);
  if (pose.gain != 1.0) img *= pose.gain;
  // The FFT convolution leaves rounding-level negatives where the image is dark.
  return img.max(0.0);
}

RArray SimulatedBench::capture(double t_s, std::mt19937_64& rng) {
  return camera_.capture(as_built_image(t_s), rng);
}

double SimulatedBench::dark_level_counts() const {
  const auto& c = camera_.options();
  const double e = c.noise.dark_current_e_per_s * c.exposure_ms * 1e-3 * c.binning * c.binning;
  return c.noise.dark_offset_counts + e / c.gain_e_per_count;
}

}  // namespace hilo::sim
