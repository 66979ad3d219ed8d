#include "hilo/sim/imaging.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "hilo/io/options_json.hpp"

namespace hilo::sim {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

std::string shape(const RArray& a) { return std::to_string(a.rows()) + "x" + std::to_string(a.cols()); }

Eigen::Index wrap(Eigen::Index i, Eigen::Index n) { return ((i % n) + n) % n; }

}  // namespace

// ------------------------------------------------------------------------------------ PupilPsf
PupilPsf::PupilPsf(Eigen::Index rows, Eigen::Index cols, int pad, Planning planning)
    : rows_(rows), cols_(cols), pad_(pad),
      fft_((require(pad >= 1, "PupilPsf: pad must be >= 1, got " + std::to_string(pad)),
            require(rows >= 1 && cols >= 1, "PupilPsf: rows and cols must be >= 1"), pad * rows),
           pad * cols, planning) {}

namespace {
CArray pupil_field(const RArray& phase, const RArray& amp, Eigen::Index pr, Eigen::Index pc, const char* what) {
  require(phase.rows() == amp.rows() && phase.cols() == amp.cols(),
          std::string(what) + ": phase is " + shape(phase) + " but pupil_amplitude is " + shape(amp));
  require((amp >= 0.0).all(), std::string(what) + ": pupil_amplitude must be >= 0");
  CArray e = CArray::Zero(pr, pc);
  for (Eigen::Index r = 0; r < phase.rows(); ++r)
    for (Eigen::Index c = 0; c < phase.cols(); ++c) e(r, c) = std::polar(amp(r, c), phase(r, c));
  return e;
}
}  // namespace

RArray PupilPsf::psf(const RArray& phase, const RArray& pupil_amplitude) const {
  require(phase.rows() == rows_ && phase.cols() == cols_,
          "PupilPsf::psf: phase is " + shape(phase) + ", expected " + std::to_string(rows_) + "x" + std::to_string(cols_));
  CArray e = pupil_field(phase, pupil_amplitude, fft_.rows(), fft_.cols(), "PupilPsf::psf");
  fft_.forward(e);
  RArray intensity = e.abs2();
  const double total = intensity.sum();
  require(total > 0.0, "PupilPsf::psf: the pupil transmits no light (sum of amplitude² is 0)");
  return fftshift(RArray(intensity / total));
}

RArray PupilPsf::vjp(const RArray& phase, const RArray& pupil_amplitude, const RArray& dL_dpsf) const {
  require(phase.rows() == rows_ && phase.cols() == cols_,
          "PupilPsf::vjp: phase is " + shape(phase) + ", expected " + std::to_string(rows_) + "x" + std::to_string(cols_));
  require(dL_dpsf.rows() == fft_.rows() && dL_dpsf.cols() == fft_.cols(),
          "PupilPsf::vjp: dL_dpsf is " + shape(dL_dpsf) + ", expected the PSF's shape " + std::to_string(fft_.rows()) +
              "x" + std::to_string(fft_.cols()));
  const CArray e = pupil_field(phase, pupil_amplitude, fft_.rows(), fft_.cols(), "PupilPsf::vjp");
  CArray f = e;
  fft_.forward(f);
  const RArray intensity = f.abs2();
  const double total = intensity.sum();
  require(total > 0.0, "PupilPsf::vjp: the pupil transmits no light (sum of amplitude² is 0)");
  // Through PSF = I / ΣI: ∂L/∂I_k = (g_k − Σ_j g_j PSF_j) / ΣI, with g taken back to the unshifted order.
  const RArray g = ifftshift(dL_dpsf);
  const double g_dot_psf = (g * intensity).sum() / total;
  const RArray g_tilde = (g - g_dot_psf) / total;
  // Through I = |F|², F = DFT(E), E = A e^{iφ}: ∂L/∂φ = 2 Im(conj(E) · N·IDFT(g̃ · F)).
  CArray b = f * g_tilde.cast<cplx>();
  fft_.inverse_unscaled(b);
  RArray grad(rows_, cols_);
  for (Eigen::Index r = 0; r < rows_; ++r)
    for (Eigen::Index c = 0; c < cols_; ++c) grad(r, c) = 2.0 * std::imag(std::conj(e(r, c)) * b(r, c));
  return grad;
}

CArray PupilPsf::asf(const RArray& phase, const RArray& pupil_amplitude) const {
  require(phase.rows() == rows_ && phase.cols() == cols_,
          "PupilPsf::asf: phase is " + shape(phase) + ", expected " + std::to_string(rows_) + "x" + std::to_string(cols_));
  CArray e = pupil_field(phase, pupil_amplitude, fft_.rows(), fft_.cols(), "PupilPsf::asf");
  fft_.forward(e);
  const double total = e.abs2().sum();
  require(total > 0.0, "PupilPsf::asf: the pupil transmits no light (sum of amplitude² is 0)");
  return fftshift(CArray(e / std::sqrt(total)));
}

RArray PupilPsf::asf_vjp(const RArray& phase, const RArray& pupil_amplitude, const CArray& dL_dasf) const {
  require(phase.rows() == rows_ && phase.cols() == cols_,
          "PupilPsf::asf_vjp: phase is " + shape(phase) + ", expected " + std::to_string(rows_) + "x" + std::to_string(cols_));
  require(dL_dasf.rows() == fft_.rows() && dL_dasf.cols() == fft_.cols(),
          "PupilPsf::asf_vjp: dL_dasf is " + std::to_string(dL_dasf.rows()) + "x" + std::to_string(dL_dasf.cols()) +
              ", expected the ASF's shape " + std::to_string(fft_.rows()) + "x" + std::to_string(fft_.cols()));
  const CArray e = pupil_field(phase, pupil_amplitude, fft_.rows(), fft_.cols(), "PupilPsf::asf_vjp");
  const double total = fft_.rows() * fft_.cols() * e.abs2().sum();  // ΣI by Parseval
  require(total > 0.0, "PupilPsf::asf_vjp: the pupil transmits no light (sum of amplitude² is 0)");
  // dL = Σ Re(conj(g)·dh), dh = S(DFT(i E dφ))/√ΣI  ⇒  ∂L/∂φ = Im(conj(E) · N·IDFT(S⁻¹(g)/√ΣI)).
  CArray b = ifftshift(dL_dasf) / std::sqrt(total);
  fft_.inverse_unscaled(b);
  RArray grad(rows_, cols_);
  for (Eigen::Index r = 0; r < rows_; ++r)
    for (Eigen::Index c = 0; c < cols_; ++c) grad(r, c) = std::imag(std::conj(e(r, c)) * b(r, c));
  return grad;
}

RArray concentrate_phase(const RArray& phase, const RArray& amp, int pad, const RArray& window, int iterations) {
  require(iterations >= 0, "concentrate_phase: iterations must be >= 0, got " + std::to_string(iterations));
  require(pad >= 1, "concentrate_phase: pad must be >= 1, got " + std::to_string(pad));
  const Eigen::Index R = phase.rows(), C = phase.cols();
  require(window.rows() == pad * R && window.cols() == pad * C,
          "concentrate_phase: window is " + shape(window) + ", expected the PSF grid " + std::to_string(pad * R) + "x" +
              std::to_string(pad * C));
  const RArray keep = ifftshift(RArray((window > 0.0).cast<double>()));
  const Fft2 fft(pad * R, pad * C);
  RArray phi = phase;
  for (int it = 0; it < iterations; ++it) {
    CArray e = pupil_field(phi, amp, pad * R, pad * C, "concentrate_phase");
    fft.forward(e);
    e *= keep.cast<cplx>();
    fft.inverse(e);
    for (Eigen::Index r = 0; r < R; ++r)
      for (Eigen::Index c = 0; c < C; ++c)
        if (std::abs(e(r, c)) > 0) phi(r, c) = std::arg(e(r, c));
  }
  return phi;
}

RArray psf_from_phase(const RArray& phase, const RArray& pupil_amplitude, int pad) {
  return PupilPsf(phase.rows(), phase.cols(), pad).psf(phase, pupil_amplitude);
}

RArray psf_from_phase_vjp(const RArray& phase, const RArray& pupil_amplitude, const RArray& dL_dpsf, int pad) {
  return PupilPsf(phase.rows(), phase.cols(), pad).vjp(phase, pupil_amplitude, dL_dpsf);
}

double psf_sample_pitch(double wavelength_m, double focal_m, Eigen::Index n_padded, double pupil_pitch_m) {
  return wavelength_m * focal_m / (double(n_padded) * pupil_pitch_m);
}

// ----------------------------------------------------------------------------- IncoherentImager
struct IncoherentImager::Impl {
  Eigen::Index rows, cols;    // object
  Eigen::Index prow, pcol;    // psf
  Eigen::Index mrow, mcol;    // padded FFT grid
  RealFft2 fft;
  CArray psf_spectrum;        // r2c of the psf at the top-left of the padded grid

  Impl(Eigen::Index r, Eigen::Index c, const RArray& psf, Planning planning)
      : rows(r), cols(c), prow(psf.rows()), pcol(psf.cols()),
        mrow(next_fast_size(r + psf.rows() - 1)), mcol(next_fast_size(c + psf.cols() - 1)),
        fft(mrow, mcol, planning) {
    RArray p = RArray::Zero(mrow, mcol);
    p.topLeftCorner(prow, pcol) = psf;
    fft.forward(p, psf_spectrum);
  }

  // Circular correlation/convolution of `a` (placed top-left) with the cached psf on the padded grid.
  RArray transform(const RArray& a, bool conjugate) const {
    RArray w = RArray::Zero(mrow, mcol);
    w.topLeftCorner(a.rows(), a.cols()) = a;
    CArray spec;
    fft.forward(w, spec);
    if (conjugate)
      spec *= psf_spectrum.conjugate();
    else
      spec *= psf_spectrum;
    fft.inverse(std::move(spec), w);
    return w;
  }
};

IncoherentImager::IncoherentImager(Eigen::Index object_rows, Eigen::Index object_cols, const RArray& psf,
                                   Planning planning) {
  require(object_rows >= 1 && object_cols >= 1, "IncoherentImager: object rows and cols must be >= 1");
  require(psf.rows() >= 1 && psf.cols() >= 1, "IncoherentImager: psf must not be empty");
  impl_ = std::make_unique<Impl>(object_rows, object_cols, psf, planning);
}

IncoherentImager::~IncoherentImager() = default;
IncoherentImager::IncoherentImager(IncoherentImager&&) noexcept = default;
IncoherentImager& IncoherentImager::operator=(IncoherentImager&&) noexcept = default;
Eigen::Index IncoherentImager::padded_rows() const { return impl_->mrow; }
Eigen::Index IncoherentImager::padded_cols() const { return impl_->mcol; }

RArray IncoherentImager::image(const RArray& object) const {
  const Impl& p = *impl_;
  require(object.rows() == p.rows && object.cols() == p.cols,
          "IncoherentImager::image: object is " + shape(object) + ", imager built for " + std::to_string(p.rows) + "x" +
              std::to_string(p.cols));
  // Full linear convolution sits at [0, rows + prow − 1); "same" output starts at the psf centre.
  return p.transform(object, false).block(p.prow / 2, p.pcol / 2, p.rows, p.cols);
}

RArray IncoherentImager::adjoint(const RArray& dL_dimage) const {
  const Impl& p = *impl_;
  require(dL_dimage.rows() == p.rows && dL_dimage.cols() == p.cols,
          "IncoherentImager::adjoint: dL_dimage is " + shape(dL_dimage) + ", expected the object's shape");
  // ∂L/∂object(s) = Σ_r g(r) psf(r + p/2 − s) = corr(s − p/2), corr(t) = Σ_n g(n) psf(n − t).
  const RArray corr = p.transform(dL_dimage, true);
  RArray out(p.rows, p.cols);
  for (Eigen::Index r = 0; r < p.rows; ++r)
    for (Eigen::Index c = 0; c < p.cols; ++c) out(r, c) = corr(wrap(r - p.prow / 2, p.mrow), wrap(c - p.pcol / 2, p.mcol));
  return out;
}

RArray incoherent_image(const RArray& object, const RArray& psf) {
  return IncoherentImager(object.rows(), object.cols(), psf).image(object);
}

RArray incoherent_image_psf_vjp(const RArray& object, Eigen::Index psf_rows, Eigen::Index psf_cols,
                                const RArray& dL_dimage) {
  require(psf_rows >= 1 && psf_cols >= 1, "incoherent_image_psf_vjp: psf must not be empty");
  require(dL_dimage.rows() == object.rows() && dL_dimage.cols() == object.cols(),
          "incoherent_image_psf_vjp: dL_dimage is " + shape(dL_dimage) + " but object is " + shape(object));
  // ∂L/∂psf(i) = Σ_r g(r) object(r − u), u = i − p/2: the correlation of g with the object at lag u,
  // computed on a grid large enough that no lag wraps onto another.
  const Eigen::Index mr = next_fast_size(object.rows() + psf_rows - 1);
  const Eigen::Index mc = next_fast_size(object.cols() + psf_cols - 1);
  RealFft2 fft(mr, mc);
  RArray g = RArray::Zero(mr, mc), o = RArray::Zero(mr, mc);
  g.topLeftCorner(object.rows(), object.cols()) = dL_dimage;
  o.topLeftCorner(object.rows(), object.cols()) = object;
  CArray G, O;
  fft.forward(g, G);
  fft.forward(o, O);
  G *= O.conjugate();
  RArray corr;
  fft.inverse(std::move(G), corr);
  RArray out(psf_rows, psf_cols);
  for (Eigen::Index i = 0; i < psf_rows; ++i)
    for (Eigen::Index j = 0; j < psf_cols; ++j) out(i, j) = corr(wrap(i - psf_rows / 2, mr), wrap(j - psf_cols / 2, mc));
  return out;
}

// --------------------------------------------------------------------------------- KernelTiling
std::string KernelTiling::validate() const {
  if (!(count >= 1)) return "tiling.count must be >= 1, got " + std::to_string(count);
  if (!(kernel_size >= 1 && kernel_size % 2 == 1))
    return "tiling.kernel_size must be odd and >= 1, got " + std::to_string(kernel_size);
  if (!(tile_columns >= 1)) return "tiling.tile_columns must be >= 1, got " + std::to_string(tile_columns);
  if (!(gap >= 0)) return "tiling.gap must be >= 0, got " + std::to_string(gap);
  if (!(object_rows >= 1 && object_cols >= 1)) return "tiling.object_rows and object_cols must be >= 1";
  for (int j = 0; j < count; ++j) {
    const auto [r, c] = kernel_origin(j);
    if (!(r >= 0 && c >= 0 && r + kernel_size <= canvas_rows() && c + kernel_size <= canvas_cols()))
      return "tiling: kernel " + std::to_string(j) + " falls outside the canvas PSF (object too small for kernel_size)";
  }
  return {};
}

std::pair<Eigen::Index, Eigen::Index> KernelTiling::map_origin(int j) const {
  const Eigen::Index a = j / tile_columns, b = j % tile_columns;
  const Eigen::Index margin = (kernel_size - 1) / 2 + gap / 2;
  return {a * pitch_rows() + margin, b * pitch_cols() + margin};
}

std::pair<Eigen::Index, Eigen::Index> KernelTiling::object_origin() const {
  return {(canvas_rows() - object_rows) / 2, (canvas_cols() - object_cols) / 2};
}

std::pair<Eigen::Index, Eigen::Index> KernelTiling::kernel_origin(int j) const {
  // A PSF sample at centre + d moves the image by d; kernel j's centre goes where it moves the object
  // origin to map_origin(j).
  const auto [mr, mc] = map_origin(j);
  const auto [orr, oc] = object_origin();
  return {canvas_rows() / 2 + mr - orr - kernel_size / 2, canvas_cols() / 2 + mc - oc - kernel_size / 2};
}

RArray KernelTiling::embed(const RArray& object) const {
  io::require_valid(validate());
  require(object.rows() == object_rows && object.cols() == object_cols,
          "KernelTiling::embed: object is " + shape(object) + ", tiling expects " + std::to_string(object_rows) + "x" +
              std::to_string(object_cols));
  RArray canvas = RArray::Zero(canvas_rows(), canvas_cols());
  const auto [r, c] = object_origin();
  canvas.block(r, c, object_rows, object_cols) = object;
  return canvas;
}

RArray KernelTiling::compose(const std::vector<RArray>& kernels) const {
  io::require_valid(validate());
  require(kernels.size() == std::size_t(count), "KernelTiling::compose: got " + std::to_string(kernels.size()) +
                                                     " kernels, tiling.count is " + std::to_string(count));
  RArray psf = RArray::Zero(canvas_rows(), canvas_cols());
  for (int j = 0; j < count; ++j) {
    const RArray& k = kernels[std::size_t(j)];
    require(k.rows() == kernel_size && k.cols() == kernel_size,
            "KernelTiling::compose: kernel " + std::to_string(j) + " is " + shape(k) + ", expected kernel_size² " +
                std::to_string(kernel_size) + "x" + std::to_string(kernel_size));
    require((k >= 0.0).all(), "KernelTiling::compose: kernel " + std::to_string(j) +
                                  " has negative entries (an intensity PSF cannot; use signed pairs)");
    const auto [r, c] = kernel_origin(j);
    psf.block(r, c, kernel_size, kernel_size) = k;
  }
  return psf;
}

std::vector<RArray> KernelTiling::crop(const RArray& image) const {
  io::require_valid(validate());
  require(image.rows() == canvas_rows() && image.cols() == canvas_cols(),
          "KernelTiling::crop: image is " + shape(image) + ", canvas is " + std::to_string(canvas_rows()) + "x" +
              std::to_string(canvas_cols()));
  std::vector<RArray> maps;
  for (int j = 0; j < count; ++j) {
    const auto [r, c] = map_origin(j);
    maps.emplace_back(image.block(r, c, object_rows, object_cols));
  }
  return maps;
}

std::vector<RArray> KernelTiling::decompose(const RArray& dL_dpsf) const {
  io::require_valid(validate());
  require(dL_dpsf.rows() == canvas_rows() && dL_dpsf.cols() == canvas_cols(),
          "KernelTiling::decompose: dL_dpsf is " + shape(dL_dpsf) + ", expected the canvas shape");
  std::vector<RArray> out;
  for (int j = 0; j < count; ++j) {
    const auto [r, c] = kernel_origin(j);
    out.emplace_back(dL_dpsf.block(r, c, kernel_size, kernel_size));
  }
  return out;
}

RArray KernelTiling::uncrop(const std::vector<RArray>& dL_dmaps) const {
  io::require_valid(validate());
  require(dL_dmaps.size() == std::size_t(count), "KernelTiling::uncrop: expected tiling.count maps");
  RArray out = RArray::Zero(canvas_rows(), canvas_cols());
  for (int j = 0; j < count; ++j) {
    const RArray& m = dL_dmaps[std::size_t(j)];
    require(m.rows() == object_rows && m.cols() == object_cols, "KernelTiling::uncrop: map " + std::to_string(j) +
                                                                    " is " + shape(m) + ", expected the object's shape");
    const auto [r, c] = map_origin(j);
    out.block(r, c, object_rows, object_cols) = m;
  }
  return out;
}

// --------------------------------------------------------------------------------- polychromatic
std::string PolychromaticOptions::validate() const {
  if (!(design_wavelength_m > 0.0)) return "polychromatic.design_wavelength_m must be > 0";
  if (!(focal_m > 0.0)) return "polychromatic.focal_m must be > 0";
  if (!(pupil_pitch_m > 0.0)) return "polychromatic.pupil_pitch_m must be > 0";
  if (!(camera_pitch_m > 0.0)) return "polychromatic.camera_pitch_m must be > 0";
  if (!(out_rows >= 1 && out_cols >= 1)) return "polychromatic.out_rows and out_cols must be >= 1";
  if (!(pad >= 1)) return "polychromatic.pad must be >= 1, got " + std::to_string(pad);
  return {};
}

RArray resample_centered(const RArray& in, double in_pitch_m, double out_pitch_m, Eigen::Index out_rows,
                         Eigen::Index out_cols) {
  require(in_pitch_m > 0.0 && out_pitch_m > 0.0, "resample_centered: pitches must be > 0");
  const double ratio = out_pitch_m / in_pitch_m;
  const Eigen::Index R = in.rows(), C = in.cols();
  auto at = [&](Eigen::Index r, Eigen::Index c) { return (r >= 0 && r < R && c >= 0 && c < C) ? in(r, c) : 0.0; };
  RArray out(out_rows, out_cols);
  for (Eigen::Index r = 0; r < out_rows; ++r) {
    const double y = double(r - out_rows / 2) * ratio + double(R / 2);
    const double y0 = std::floor(y), fy = y - y0;
    for (Eigen::Index c = 0; c < out_cols; ++c) {
      const double x = double(c - out_cols / 2) * ratio + double(C / 2);
      const double x0 = std::floor(x), fx = x - x0;
      const auto ir = Eigen::Index(y0), ic = Eigen::Index(x0);
      out(r, c) = (1 - fy) * ((1 - fx) * at(ir, ic) + fx * at(ir, ic + 1)) +
                  fy * ((1 - fx) * at(ir + 1, ic) + fx * at(ir + 1, ic + 1));
    }
  }
  return out;
}

RArray polychromatic_psf(const RArray& design_phase, const RArray& pupil_amplitude,
                         const std::vector<SpectralSample>& spectrum, const PolychromaticOptions& options) {
  io::require_valid(options.validate());
  require(!spectrum.empty(), "polychromatic_psf: spectrum is empty");
  require(design_phase.rows() == design_phase.cols(),
          "polychromatic_psf: the pupil must be square (one focal-plane pitch per wavelength), got " + shape(design_phase));
  double total_weight = 0.0;
  for (const auto& s : spectrum) {
    require(s.wavelength_m > 0.0, "polychromatic_psf: every wavelength_m must be > 0");
    require(s.weight >= 0.0, "polychromatic_psf: weights must be >= 0");
    total_weight += s.weight;
  }
  require(total_weight > 0.0, "polychromatic_psf: the weights sum to 0");
  const PupilPsf model(design_phase.rows(), design_phase.cols(), options.pad);
  RArray out = RArray::Zero(options.out_rows, options.out_cols);
  for (const auto& s : spectrum) {
    if (s.weight == 0.0) continue;
    const double scale = options.phase_scales_with_wavelength ? options.design_wavelength_m / s.wavelength_m : 1.0;
    const RArray psf = model.psf(design_phase * scale, pupil_amplitude);
    const double pitch = psf_sample_pitch(s.wavelength_m, options.focal_m, model.cols() * options.pad, options.pupil_pitch_m);
    RArray on_camera = resample_centered(psf, pitch, options.camera_pitch_m, options.out_rows, options.out_cols);
    const double sum = on_camera.sum();
    require(sum > 0.0, "polychromatic_psf: the PSF at " + std::to_string(s.wavelength_m) + " m misses the camera grid");
    out += (s.weight / total_weight) * on_camera / sum;
  }
  return out;
}

}  // namespace hilo::sim
