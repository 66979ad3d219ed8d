#include "hilo/calibration/hil.hpp"

#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "hilo/sim/imaging.hpp"
#include "hilo/sim/optics.hpp"

namespace hilo::calibration {

namespace {
sim::BenchOptions designed(sim::BenchOptions o) {
  o.profile = sim::AsBuiltProfile{};
  return o;
}

sim::KernelTiling tiling_of(const distill::StudentOptions& s, Eigen::Index rows, Eigen::Index cols) {
  sim::KernelTiling t;
  t.count = s.kernels;
  t.kernel_size = s.kernel_size;
  t.tile_columns = s.tile_columns;
  t.gap = s.tile_gap;
  t.object_rows = rows;
  t.object_cols = cols;
  return t;
}
}  // namespace

DesignModel::DesignModel(sim::BenchOptions bench) : twin_(designed(std::move(bench))) {
  if (options().element.kind == sim::ElementKind::psf)
    throw std::invalid_argument("design model: the element must be an SLM or a fabricated mask, not a given PSF");
  if (options().element.kind == sim::ElementKind::slm && options().element.slm.oversample != 1)
    throw std::invalid_argument("design model: deploy needs element.slm.oversample = 1 (phase per SLM pixel)");
  set_flat_element();
}

void DesignModel::set_element_phase(const RArray& phase_rad) {
  twin_.set_element_phase(aberration_.size() > 0 ? RArray(phase_rad + aberration_) : phase_rad);
  element_ = phase_rad;
}

void DesignModel::set_element_levels(const sim::Levels& levels) {
  if (aberration_.size() > 0) throw std::logic_error("design model: element levels cannot carry the pupil aberration; set a phase");
  twin_.set_element_levels(levels);
  element_ = levels;
}

DesignModel DesignModel::clone() const {
  DesignModel c(options());
  c.aberration_ = aberration_;
  if (const auto* phase = std::get_if<RArray>(&element_))
    c.set_element_phase(*phase);
  else
    c.set_element_levels(std::get<sim::Levels>(element_));
  return c;
}

void DesignModel::set_pupil_aberration(const RArray& phase_rad) {
  const auto& s = options().element.slm;
  if (phase_rad.size() > 0 && (phase_rad.rows() != s.rows || phase_rad.cols() != s.cols))
    throw std::invalid_argument("design model: the pupil aberration must be " + std::to_string(s.rows) + " x " +
                                std::to_string(s.cols) + ", got " + std::to_string(phase_rad.rows()) + " x " +
                                std::to_string(phase_rad.cols()));
  aberration_ = phase_rad;
}

void DesignModel::set_flat_element() {
  const auto& s = options().element.slm;
  set_element_phase(RArray::Zero(s.rows, s.cols));
}

double DesignModel::counts_per_psf_unit() const {
  const auto& c = twin_.camera().options();
  return options().input.photons_per_ms / double(options().input.camera_px_per_input_px * options().input.camera_px_per_input_px) *
         c.exposure_ms * c.quantum_efficiency * double(c.binning * c.binning) / c.gain_e_per_count;
}

RArray DesignModel::predict(const RArray& input_intensity) {
  twin_.set_input(input_intensity);
  const auto& c = twin_.camera().options();
  return twin_.ideal_image() * (c.exposure_ms * c.quantum_efficiency * double(c.binning * c.binning) / c.gain_e_per_count);
}

Predictor DesignModel::predictor() {
  return [this](const RArray& in) { return predict(in); };
}

RArray DesignModel::pupil_amplitude() const {
  const auto& s = options().element.slm;
  const double d = options().element.pupil_diameter_px > 0 ? options().element.pupil_diameter_px : double(std::min(s.rows, s.cols));
  return sim::circular_aperture(s.rows, s.cols, 1.0, 0.5 * d, 4);
}

TileLayout DesignModel::layout(const distill::StudentOptions& student) const {
  if (options().input.camera_px_per_input_px != 1 || options().camera.binning != 1)
    throw std::invalid_argument("design model: the tile layout needs unit magnification and no binning");
  const auto [r0, c0] = twin_.object_origin();
  TileLayout l = tile_layout(tiling_of(student, options().input.rows, options().input.cols), r0, c0);
  if (auto e = l.validate(options().camera.rows, options().camera.cols); !e.empty())
    throw std::invalid_argument("design model: " + e);
  return l;
}

std::vector<RArray> tiles_from_kernels(const distill::MatD& kappa, int k) {
  if (kappa.cols() != k * k) throw std::invalid_argument("tiles_from_kernels: kernels must have k² = " + std::to_string(k * k) + " columns");
  // Student kernels are cross-correlation weights; the PSF tile is the convolution kernel: rot180.
  std::vector<RArray> tiles(std::size_t(kappa.rows()));
  for (Eigen::Index j = 0; j < kappa.rows(); ++j) {
    tiles[std::size_t(j)].resize(k, k);
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) tiles[std::size_t(j)](k - 1 - ky, k - 1 - kx) = kappa(j, ky * k + kx);
  }
  return tiles;
}

distill::MatD kernels_from_tiles(const std::vector<RArray>& tiles, double scale) {
  const Eigen::Index k = tiles.empty() ? 0 : tiles[0].rows();
  distill::MatD kappa(Eigen::Index(tiles.size()), k * k);
  for (std::size_t j = 0; j < tiles.size(); ++j) {
    if (tiles[j].rows() != k || tiles[j].cols() != k) throw std::invalid_argument("kernels_from_tiles: tiles must be square and of one size");
    for (Eigen::Index ky = 0; ky < k; ++ky)
      for (Eigen::Index kx = 0; kx < k; ++kx) kappa(Eigen::Index(j), ky * k + kx) = scale * tiles[j](k - 1 - ky, k - 1 - kx);
  }
  return kappa;
}

std::vector<RArray> psf_tiles(const distill::OpticalStudent& student) {
  return tiles_from_kernels(student.kernels(), student.options().kernel_size);
}

Deployment design_deployment(const distill::OpticalStudent& student, DesignModel& design,
                             const PhaseRetrievalOptions& options, std::mt19937_64& rng) {
  const auto& so = student.options();
  if (so.parameterization != "intensity")
    throw std::invalid_argument("deploy: only intensity-parameterised students are deployed by phase retrieval");
  if (student.in_shape().h != design.options().input.rows || student.in_shape().w != design.options().input.cols)
    throw std::invalid_argument("deploy: the student's input size differs from the bench's input device");
  Deployment d;
  d.layout = design.layout(so);
  const distill::MatD kappa = student.kernels();
  d.design = retrieve_phase(psf_tiles(student), d.layout, design.pupil_amplitude(), design.psf_pad(), options, rng,
                            design.pupil_aberration());
  design.set_element_phase(d.design.phase);
  // The realised tiles are those of the design model's PSF (for an SLM: after LUT quantisation).
  const std::vector<RArray> got = cut_kernels(design.psf(), d.layout);
  double sum_got = 0;
  for (const auto& t : got) sum_got += t.sum();
  if (!(sum_got > 0)) throw std::runtime_error("deploy: the designed element puts no light into the kernel windows");
  d.kernel_scale = kappa.sum() / sum_got;
  d.kernels = kernels_from_tiles(got, d.kernel_scale);
  d.counts_per_unit = design.counts_per_psf_unit() / d.kernel_scale;
  return d;
}

Deployment deploy_own_phase(const distill::OpticalStudent& student, DesignModel& design) {
  const auto& so = student.options();
  const auto& bo = design.options();
  if (so.parameterization == "intensity")
    throw std::invalid_argument("deploy: an intensity student is deployed by phase retrieval, not by its own phase");
  const bool coherent = so.parameterization == "fourier";
  if (coherent != (bo.imaging == sim::Imaging::coherent))
    throw std::invalid_argument(coherent ? "deploy: a fourier (4f) student needs a coherent bench (imaging: coherent)"
                                         : "deploy: a phase student needs an incoherent bench (imaging: incoherent)");
  if (student.in_shape().h != bo.input.rows || student.in_shape().w != bo.input.cols)
    throw std::invalid_argument("deploy: the student's input size differs from the bench's input device");
  if (bo.element.kind == sim::ElementKind::slm && bo.element.slm.oversample != 1)
    throw std::invalid_argument("deploy: a phase student is shown pixel for pixel; element.slm.oversample must be 1");
  if (design.pupil_aberration().size() > 0)
    throw std::invalid_argument("deploy: a phase student is deployed by its own phase; a pupil aberration cannot be pre-compensated");
  const RArray A = design.pupil_amplitude();
  const distill::MatD& P = student.pupil();
  if (P.rows() != A.rows() || P.cols() != A.cols() || so.psf_pad != design.psf_pad())
    throw std::invalid_argument("deploy: the student's phase grid (" + std::to_string(P.rows()) + " x " + std::to_string(P.cols()) +
                                ", psf_pad " + std::to_string(so.psf_pad) + ") must be the element's (" + std::to_string(A.rows()) +
                                " x " + std::to_string(A.cols()) + ", psf_pad " + std::to_string(design.psf_pad()) +
                                "): set student phase_rows, phase_cols and psf_pad");
  if ((P.array() - A).abs().maxCoeff() > 1e-12)
    throw std::invalid_argument("deploy: the student's pupil differs from the element's: set student pupil \"circle\" and "
                                "element.pupil_diameter_px 0");
  Deployment d;
  d.layout = design.layout(so);
  const RArray phase = wrapped_phase(student.raw_optical().array());
  d.design.phase = phase;
  d.design.target = sim::psf_from_phase(phase, A, so.psf_pad);
  design.set_element_phase(phase);
  d.design.psf = design.psf();
  d.design.fidelity = compare_psfs(d.design.target, d.design.psf, d.layout);
  d.design.report = "own phase of the " + so.parameterization + " student (no retrieval)";
  d.kernel_scale = so.psf_gain;
  d.kernels = kernels_from_tiles(cut_kernels(d.design.psf, d.layout), d.kernel_scale);
  d.counts_per_unit = design.counts_per_psf_unit() / d.kernel_scale;
  return d;
}

distill::MatD maps_to_features(const std::vector<RArray>& maps, const distill::OpticalStudent& student,
                               double counts_per_unit) {
  const auto in = student.in_shape();
  const int K = student.options().kernels;
  if (int(maps.size()) != K) throw std::invalid_argument("maps_to_features: " + std::to_string(maps.size()) + " maps for " + std::to_string(K) + " kernels");
  if (!(counts_per_unit > 0)) throw std::invalid_argument("maps_to_features: counts_per_unit must be > 0");
  distill::MatD y(1, K * in.h * in.w);
  for (int j = 0; j < K; ++j) {
    if (maps[j].rows() != in.h || maps[j].cols() != in.w) throw std::invalid_argument("maps_to_features: map size differs from the student's input");
    for (int r = 0; r < in.h; ++r)
      for (int c = 0; c < in.w; ++c) y(0, (j * in.h + r) * in.w + c) = maps[j](r, c) / counts_per_unit;
  }
  return student.features_from_maps(y);
}

namespace {
RArray image_of(const distill::Mat<float>& x, Eigen::Index i, int rows, int cols) {
  RArray im(rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) im(r, c) = std::clamp(double(x(i, r * cols + c)), 0.0, 1.0);
  return im;
}
}  // namespace

distill::MatD design_maps(DesignModel& design, const Deployment& deployment, const distill::OpticalStudent& student,
                          const distill::Mat<float>& x, const io::WorkControl& work, int threads) {
  const auto in = student.in_shape();
  const int K = deployment.layout.count();
  if (K != student.options().kernels)
    throw std::invalid_argument("design_maps: " + std::to_string(K) + " layout windows for " + std::to_string(student.options().kernels) + " kernels");
  if (!(deployment.counts_per_unit > 0)) throw std::invalid_argument("design_maps: counts_per_unit must be > 0");
  if (threads < 1) throw std::invalid_argument("design_maps: threads must be >= 1, got " + std::to_string(threads));
  const Eigen::Index HW = Eigen::Index(in.h) * in.w, N = x.rows();
  if (x.cols() != HW)
    throw std::invalid_argument("design_maps: images of " + std::to_string(x.cols()) + " pixels for a student input of " +
                                std::to_string(in.h) + " x " + std::to_string(in.w));
  distill::MatD y(N, K * HW);
  // Rows are handed out one at a time; done[n] marks a finished row, so a stop keeps the unbroken prefix.
  // The first exception of any thread (a prediction, a progress callback) stops the others and is
  // rethrown here once they have joined.
  std::vector<char> done(std::size_t(N), 0);
  std::atomic<Eigen::Index> next{0}, finished{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto run = [&](DesignModel& model, bool reporter) noexcept {
    try {
      Eigen::Index reported = 0;
      for (Eigen::Index n; (n = next++) < N;) {
        if (failed || work.stop_requested()) break;
        const RArray img = model.predict(image_of(x, n, in.h, in.w));
        double* row = y.row(n).data();
        for (int j = 0; j < K; ++j) {
          const auto o = deployment.layout.map_origin(j);
          for (int r = 0; r < in.h; ++r)
            for (int c = 0; c < in.w; ++c) row[j * HW + r * in.w + c] = img(o.x() + r, o.y() + c) / deployment.counts_per_unit;
        }
        done[std::size_t(n)] = 1;
        const Eigen::Index f = ++finished;
        if (reporter && f / 100 > reported / 100 && f < N) {
          work.report(f, N, "design features");
          reported = f;
        }
      }
    } catch (...) {
      const std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  {
    std::vector<DesignModel> clones;
    const int extra = int(std::min<Eigen::Index>(threads - 1, std::max<Eigen::Index>(N - 1, 0)));
    for (int t = 0; t < extra; ++t) clones.push_back(design.clone());
    std::vector<std::jthread> workers;
    for (auto& c : clones) workers.emplace_back([&run, &c] { run(c, false); });
    run(design, true);
  }  // the workers join here
  if (error) std::rethrow_exception(error);
  Eigen::Index n = 0;
  while (n < N && done[std::size_t(n)]) ++n;
  if (n > 0 && (n == N || n % 100 != 0)) work.report(n, N, "design features");
  y.conservativeResize(n, Eigen::NoChange);
  return y;
}

distill::MatD design_features(DesignModel& design, const Deployment& deployment, const distill::OpticalStudent& student,
                              const distill::Mat<float>& x, const io::WorkControl& work, int threads) {
  return student.features_from_maps(design_maps(design, deployment, student, x, work, threads));
}

drivers::DeviceResult<distill::MatD> measure_features(ProbeRig& rig, const BenchCalibration& calibration,
                                                      const ExtractOptions& extract, const Deployment& deployment,
                                                      const distill::OpticalStudent& student,
                                                      const distill::Mat<float>& x, int frames,
                                                      const io::WorkControl& work) {
  const auto in = student.in_shape();
  distill::MatD a(x.rows(), student.feature_dim());
  Eigen::Index n = 0;
  for (; n < x.rows(); ++n) {
    if (work.stop_requested()) break;
    auto f = rig.capture(image_of(x, n, in.h, in.w), frames);
    if (!f) return f.error();
    a.row(n) = maps_to_features(extract_features(f.value(), calibration, extract), student, deployment.counts_per_unit);
    if ((n + 1) % 50 == 0 || n + 1 == x.rows()) work.report(n + 1, x.rows(), "measure");
  }
  a.conservativeResize(n, Eigen::NoChange);
  return a;
}

std::string BenchCalibrationOptions::validate() const {
  for (const std::string& e : {dark.validate(), registration.validate(), linearity.validate(), tiles.validate()})
    if (!e.empty()) return e;
  return {};
}

drivers::DeviceResult<BenchCalibrationResult> calibrate_bench(ProbeRig& rig, DesignModel& design,
                                                              const Deployment& deployment,
                                                              const ShowElementFn& show_element,
                                                              const BenchCalibrationOptions& options,
                                                              std::mt19937_64& rng) {
  if (auto e = options.validate(); !e.empty()) throw std::invalid_argument("calibration: " + e);
  BenchCalibrationResult r;
  const auto& slm = design.options().element.slm;
  if (options.flat_element_for_registration) {
    if (auto e = show_element(RArray::Zero(slm.rows, slm.cols))) return *e;
    design.set_flat_element();
  }
  auto dark = measure_dark(rig, options.dark);
  if (!dark) return dark.error();
  r.calibration.dark = dark.value();
  auto reg = register_input_to_camera(rig, design.predictor(), r.calibration.dark, options.registration, rng);
  if (!reg) return reg.error();
  r.registration = reg.value();
  auto lin = measure_linearity(rig, design.predictor(), r.calibration.dark, r.registration.fit, options.linearity);
  if (!lin) return lin.error();
  r.linearity = lin.value();
  if (options.flat_element_for_registration) {
    if (auto e = show_element(deployment.design.phase)) return *e;
  }
  design.set_element_phase(deployment.design.phase);
  auto tiles = locate_tiles(rig, design.predictor(), r.calibration.dark, r.registration.fit.pose, deployment.layout,
                            options.tiles);
  if (!tiles) return tiles.error();
  r.tiles = tiles.value();
  r.calibration.pose = r.registration.fit.pose;
  r.calibration.gain = r.linearity.gain > 0 ? r.linearity.gain : r.registration.fit.pose.gain;
  r.calibration.layout = deployment.layout;
  r.calibration.tiles = r.tiles.tiles;
  const auto& p = r.calibration.pose;
  nlohmann::json tiles_j = nlohmann::json::array();
  for (const auto& t : r.tiles.tiles)
    tiles_j.push_back({{"shift_x_px", t.shift.x()}, {"shift_y_px", t.shift.y()}, {"correlation", t.correlation}, {"energy", t.energy}});
  r.summary = {{"dark_level_counts", r.calibration.dark.level},
               {"hot_pixels", r.calibration.dark.hot_count},
               {"registration",
                {{"shift_x_px", p.shift_x_px}, {"shift_y_px", p.shift_y_px}, {"rotation_deg", p.rotation_deg},
                 {"scale", p.scale}, {"gain", p.gain}, {"blur_px", r.registration.fit.blur_px},
                 {"correlation", r.registration.fit.correlation}, {"converged", r.registration.fit.converged}}},
               {"gain", r.calibration.gain},
               {"nonlinearity", r.linearity.nonlinearity},
               {"tiles", tiles_j}};
  return r;
}

}  // namespace hilo::calibration
