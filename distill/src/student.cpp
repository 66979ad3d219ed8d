#include "hilo/distill/student.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include <boost/random/normal_distribution.hpp>

#include "hilo/io/options_json.hpp"
#include "hilo/sim/imaging.hpp"
#include "hilo/sim/optics.hpp"

namespace hilo::distill {

std::string CameraNoiseOptions::validate() const {
  if (!(photons_per_unit > 0))
    return "student.noise.photons_per_unit must be > 0, got " + std::to_string(photons_per_unit);
  if (read_noise < 0) return "student.noise.read_noise must be >= 0, got " + std::to_string(read_noise);
  return {};
}

std::string StudentOptions::validate() const {
  if (kernels < 1) return "student.kernels must be >= 1, got " + std::to_string(kernels);
  if (kernel_size < 1 || kernel_size % 2 == 0)
    return "student.kernel_size must be odd and >= 1, got " + std::to_string(kernel_size);
  if (parameterization != "intensity" && parameterization != "phase" && parameterization != "fourier")
    return "student.parameterization must be \"intensity\", \"phase\" or \"fourier\", got \"" + parameterization + "\"";
  if (phase_rows < 0 || phase_cols < 0) return "student.phase_rows and phase_cols must be >= 0 (0 = automatic)";
  if (!(tile_efficiency_weight >= 0)) return "student.tile_efficiency_weight must be >= 0";
  if (phase_init != "tiles" && phase_init != "random")
    return "student.phase_init must be \"tiles\" or \"random\", got \"" + phase_init + "\"";
  if (tile_efficiency_weight > 0 && parameterization == "intensity")
    return "student.tile_efficiency_weight needs a phase or fourier student (an intensity student has no element light to keep)";
  if (pupil != "square" && pupil != "circle")
    return "student.pupil must be \"square\" or \"circle\", got \"" + pupil + "\"";
  if (nonneg != "softplus" && nonneg != "square")
    return "student.nonneg must be \"softplus\" or \"square\", got \"" + nonneg + "\"";
  if (signing != "pairs" && signing != "bias")
    return "student.signing must be \"pairs\" or \"bias\", got \"" + signing + "\"";
  if (signing == "pairs" && kernels % 2 != 0)
    return "student.kernels must be even when student.signing is \"pairs\", got " + std::to_string(kernels);
  if (pool < 1) return "student.pool must be >= 1";
  if (hidden < 1) return "student.hidden must be >= 1";
  if (psf_pad < 1) return "student.psf_pad must be >= 1";
  if (psf_gain < 0) return "student.psf_gain must be >= 0 (0 = automatic)";
  if (feature_norm != "feature" && feature_norm != "map" && feature_norm != "none")
    return "student.feature_norm must be \"feature\", \"map\" or \"none\", got \"" + feature_norm + "\"";
  if (auto e = noise.validate(); !e.empty()) return e;
  if (auto e = augment.validate(); !e.empty()) return e;
  return {};
}

ParamSet param_set_from_string(const std::string& s) {
  if (s == "all") return ParamSet::all;
  if (s == "optical") return ParamSet::optical;
  if (s == "backend") return ParamSet::backend;
  throw std::invalid_argument("NTK parameter set must be \"all\", \"optical\" or \"backend\", got \"" + s + "\"");
}
std::string to_string(ParamSet p) {
  return p == ParamSet::all ? "all" : p == ParamSet::optical ? "optical" : "backend";
}

namespace {
double softplus(double r) { return r > 30 ? r : std::log1p(std::exp(r)); }
double sigmoid(double r) { return 1.0 / (1.0 + std::exp(-r)); }

// A matrix in double (a reference, no copy, when it is double already) and back to T: the sim/ physics,
// the front-end jitter and the statistics of fit_feature_norm work in double for both arithmetics.
template <typename T>
decltype(auto) as_double(const Mat<T>& m) {
  if constexpr (std::is_same_v<T, double>) return (m);
  else return MatD(m.template cast<double>());
}
template <typename T>
Mat<T> from_double(MatD m) {
  if constexpr (std::is_same_v<T, double>) return m;
  else return m.template cast<T>();
}

sim::KernelTiling tiling_of(const StudentOptions& o, Shape in) {
  sim::KernelTiling t;
  t.count = o.kernels;
  t.kernel_size = o.kernel_size;
  t.tile_columns = o.tile_columns;
  t.gap = o.tile_gap;
  t.object_rows = in.h;
  t.object_cols = in.w;
  io::require_valid(t.validate());
  return t;
}
}  // namespace

template <typename T>
BasicOpticalStudent<T>::BasicOpticalStudent(const StudentOptions& o, Shape in, int classes) : o_(o), in_(in), classes_(classes) {
  io::require_valid(o_.validate());
  if (in.c < 1) throw std::invalid_argument("student: the input needs at least one channel");
  if (in.c > 1 && o_.augment.enabled)
    throw std::invalid_argument("student.augment (front-end jitter) needs single-channel input; the input has " +
                                std::to_string(in.c) + " channels");
  if (in.h % o_.pool != 0 || in.w % o_.pool != 0)
    throw std::invalid_argument("student.pool must divide the image size " + std::to_string(in.h) + "x" + std::to_string(in.w));
  M_ = in.c * o_.kernels;
  Kp_ = o_.signing == "pairs" ? M_ / 2 : M_;
  D_ = Kp_ * (in.h / o_.pool) * (in.w / o_.pool);
  const int k2 = o_.kernel_size * o_.kernel_size;
  conv_ = std::make_unique<Conv2d<T>>(in, coherent() ? 2 * M_ : M_, o_.kernel_size, o_.kernel_size / 2);
  if (o_.parameterization == "intensity") {
    rho_ = Mat<T>::Zero(o_.kernels, k2);
  } else {
    const auto t = tiling_of(o_, in);
    if (o_.phase_rows == 0 && o_.phase_cols == 0 && (t.canvas_rows() % o_.psf_pad != 0 || t.canvas_cols() % o_.psf_pad != 0))
      throw std::invalid_argument("student.psf_pad must divide the PSF canvas " + std::to_string(t.canvas_rows()) + "x" +
                                  std::to_string(t.canvas_cols()));
    rho_ = Mat<T>::Zero(o_.phase_rows > 0 ? o_.phase_rows : t.canvas_rows() / o_.psf_pad,
                        o_.phase_cols > 0 ? o_.phase_cols : t.canvas_cols() / o_.psf_pad);
    const Eigen::Index R = rho_.rows(), C = rho_.cols();
    pupil_ = o_.pupil == "circle" ? MatD(sim::circular_aperture(R, C, 1.0, 0.5 * double(std::min(R, C)), 4).matrix())
                                  : MatD::Ones(R, C);
    for (int j = 0; j < o_.kernels; ++j) {
      const auto [r0, c0] = tile_origin(j);
      if (r0 < 0 || c0 < 0 || r0 + o_.kernel_size > o_.psf_pad * R || c0 + o_.kernel_size > o_.psf_pad * C)
        throw std::invalid_argument("student: kernel " + std::to_string(j) + " falls outside the " +
                                    std::to_string(o_.psf_pad * R) + "x" + std::to_string(o_.psf_pad * C) +
                                    " PSF grid of the phase (phase_rows/phase_cols too small for the tiling)");
    }
    if (o_.psf_gain == 0) o_.psf_gain = static_cast<double>(o_.psf_pad * R * o_.psf_pad * C) / k2;
  }
  grho_ = Mat<T>::Zero(rho_.rows(), rho_.cols());
  w1_ = Mat<T>::Zero(o_.hidden, D_);
  b1_ = Mat<T>::Zero(1, o_.hidden);
  w2_ = Mat<T>::Zero(classes, o_.hidden);
  b2_ = Mat<T>::Zero(1, classes);
  gw1_ = w1_;
  gb1_ = b1_;
  gw2_ = w2_;
  gb2_ = b2_;
  mu_ = Mat<T>::Zero(1, D_);
  inv_sd_ = Mat<T>::Ones(1, D_);
  if (o_.augment.enabled) jitter_.emplace(o_.augment, tiling_of(o_, in_));
  refresh_kernels();
}

template <typename T>
void BasicOpticalStudent<T>::fit_feature_norm(const Mat<T>& a, bool keep_function) {
  const Mat<T> mu0 = mu_, s0 = inv_sd_;
  fit_feature_norm_stats(a);
  if (!keep_function) return;
  // â_old = (a − μ0)⊙s0 = â_new⊙(s0/s1) + (μ1 − μ0)⊙s0, so W1' = W1·diag(s0/s1), b1' = b1 + ((μ1 − μ0)⊙s0)W1ᵀ.
  b1_ += ((mu_ - mu0).cwiseProduct(s0)) * w1_.transpose();
  w1_.array().rowwise() *= (s0.array() / inv_sd_.array()).row(0);
}

template <typename T>
void BasicOpticalStudent<T>::fit_feature_norm_stats(const Mat<T>& a) {
  if (a.cols() != D_)
    throw std::invalid_argument("student.fit_feature_norm: features must have " + std::to_string(D_) + " columns, got " +
                                std::to_string(a.cols()));
  if (a.rows() < 2) throw std::invalid_argument("student.fit_feature_norm: needs at least 2 samples");
  if (!a.allFinite()) throw std::invalid_argument("student.fit_feature_norm: features must be finite");
  if (o_.feature_norm == "none") {
    mu_ = Mat<T>::Zero(1, D_);
    inv_sd_ = Mat<T>::Ones(1, D_);
    return;
  }
  const auto& ad = as_double(a);
  const double n = static_cast<double>(a.rows());
  MatD mean = ad.colwise().mean();
  MatD var = (ad.rowwise() - mean.row(0)).colwise().squaredNorm() / n;
  if (o_.feature_norm == "map") {
    const Eigen::Index per = D_ / Kp_;
    for (int j = 0; j < Kp_; ++j) {
      // Pooled over the map's positions: E[(a − μ_map)²] = mean of (var_p + (μ_p − μ_map)²).
      const double m = mean.row(0).segment(j * per, per).mean();
      const double v = (var.row(0).segment(j * per, per).array() + (mean.row(0).segment(j * per, per).array() - m).square()).mean();
      mean.row(0).segment(j * per, per).setConstant(m);
      var.row(0).segment(j * per, per).setConstant(v);
    }
  }
  const double rms = std::sqrt(var.mean());
  mu_ = from_double<T>(mean);
  if (!(rms > 0)) {
    inv_sd_ = Mat<T>::Ones(1, D_);
    return;
  }
  const double floor = 1e-3 * rms;
  inv_sd_ = from_double<T>(var.unaryExpr([&](double v) { return 1.0 / std::max(std::sqrt(v), floor); }));
}

template <typename T>
void BasicOpticalStudent<T>::set_feature_norm(const Mat<T>& offset, const Mat<T>& scale) {
  if (offset.rows() != 1 || offset.cols() != D_ || scale.rows() != 1 || scale.cols() != D_)
    throw std::invalid_argument("student.set_feature_norm: offset and scale must be 1 x " + std::to_string(D_));
  if (!offset.allFinite() || !scale.allFinite() || (scale.array() <= 0).any())
    throw std::invalid_argument("student.set_feature_norm: offset and scale must be finite, scale > 0");
  mu_ = offset;
  inv_sd_ = scale;
}

template <typename T>
void BasicOpticalStudent<T>::init(std::mt19937_64& rng) {
  std::normal_distribution<double> n(0.0, 1.0);
  if (o_.parameterization == "intensity") {
    // Kernels of mean ≈ 1/k² (an image-preserving blur in total power), 50 % random variation.
    const double k2 = o_.kernel_size * o_.kernel_size;
    const double target = 1.0 / k2;
    for (Eigen::Index i = 0; i < rho_.size(); ++i) {
      const double kv = target * std::max(0.05, 1.0 + 0.5 * n(rng));
      rho_.data()[i] = o_.nonneg == "square" ? std::sqrt(kv) : std::log(std::expm1(kv));
    }
  } else {
    std::uniform_real_distribution<double> u(-M_PI, M_PI);
    for (Eigen::Index i = 0; i < rho_.size(); ++i) rho_.data()[i] = u(rng);
    if (o_.phase_init == "tiles")
      rho_ = from_double<T>(sim::concentrate_phase(as_double(rho_).array(), pupil_.array(), o_.psf_pad, tile_window(), 100).matrix());
  }
  refresh_kernels();
  // Feature scale: a is ~ mean image intensity × kernel sum; He init for the backend.
  const double s1 = std::sqrt(2.0 / D_), s2 = std::sqrt(2.0 / o_.hidden);
  for (Eigen::Index i = 0; i < w1_.size(); ++i) w1_.data()[i] = s1 * n(rng);
  for (Eigen::Index i = 0; i < w2_.size(); ++i) w2_.data()[i] = s2 * n(rng);
  b1_.setZero();
  b2_.setZero();
}

template <typename T>
std::pair<Eigen::Index, Eigen::Index> BasicOpticalStudent<T>::tile_origin(int j) const {
  const auto t = tiling_of(o_, in_);
  const auto [r0, c0] = t.kernel_origin(j);
  return {o_.psf_pad * rho_.rows() / 2 + r0 - t.canvas_rows() / 2, o_.psf_pad * rho_.cols() / 2 + c0 - t.canvas_cols() / 2};
}

template <typename T>
sim::RArray BasicOpticalStudent<T>::tile_window() const {
  sim::RArray window = sim::RArray::Zero(o_.psf_pad * rho_.rows(), o_.psf_pad * rho_.cols());
  for (int j = 0; j < o_.kernels; ++j) {
    const auto [r0, c0] = tile_origin(j);
    window.block(r0, c0, o_.kernel_size, o_.kernel_size) = 1.0;
  }
  return window;
}

template <typename T>
void BasicOpticalStudent<T>::refresh_kernels() {
  const int K = o_.kernels, k = o_.kernel_size;
  if (o_.parameterization == "intensity") {
    kappa_ = rho_.unaryExpr([&](T r) { return static_cast<T>(o_.nonneg == "square" ? r * r : softplus(r)); });
  } else if (coherent()) {
    const sim::PupilPsf model(rho_.rows(), rho_.cols(), o_.psf_pad);
    const sim::CArray h = model.asf(as_double(rho_).array(), pupil_.array());
    const double g = std::sqrt(o_.psf_gain);
    kappa_.resize(2 * K, k * k);
    for (int j = 0; j < K; ++j) {
      const auto [r0, c0] = tile_origin(j);
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx) {
          const sim::cplx v = h(r0 + k - 1 - ky, c0 + k - 1 - kx);
          kappa_(2 * j, ky * k + kx) = static_cast<T>(g * v.real());
          kappa_(2 * j + 1, ky * k + kx) = static_cast<T>(g * v.imag());
        }
    }
  } else {
    const sim::RArray psf = sim::psf_from_phase(as_double(rho_).array(), pupil_.array(), o_.psf_pad);
    kappa_.resize(K, k * k);
    for (int j = 0; j < K; ++j) {
      const auto [r0, c0] = tile_origin(j);
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx)
          kappa_(j, ky * k + kx) = static_cast<T>(o_.psf_gain * psf(r0 + k - 1 - ky, c0 + k - 1 - kx));
    }
  }
  conv_->weight() = expand_kernels(kappa_);
  conv_->bias().setZero();
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::expand_kernels(const Mat<T>& kappa) const {
  if (in_.c == 1) return kappa;
  const Eigen::Index K = kappa.rows(), k2 = o_.kernel_size * o_.kernel_size;  // K: 2K rows for fourier
  Mat<T> w = Mat<T>::Zero(in_.c * K, in_.c * k2);
  for (int c = 0; c < in_.c; ++c) w.block(c * K, c * k2, K, k2) = kappa;
  return w;
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::reduce_kernel_grad(const Mat<T>& gw) const {
  if (in_.c == 1) return gw;
  const Eigen::Index K = gw.rows() / in_.c, k2 = o_.kernel_size * o_.kernel_size;
  Mat<T> g = Mat<T>::Zero(K, k2);
  for (int c = 0; c < in_.c; ++c) g += gw.block(c * K, c * k2, K, k2);
  return g;
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::kernels() const { return kappa_; }

template <typename T>
double BasicOpticalStudent<T>::tile_efficiency() const {
  if (o_.parameterization == "intensity") throw std::logic_error("student.tile_efficiency: an intensity student has no element");
  return (sim::psf_from_phase(as_double(rho_).array(), pupil_.array(), o_.psf_pad) * tile_window()).sum();
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::intensity_kernels() const {
  if (!coherent()) return kappa_;
  Mat<T> k(o_.kernels, kappa_.cols());
  for (int j = 0; j < o_.kernels; ++j) k.row(j) = kappa_.row(2 * j).array().square() + kappa_.row(2 * j + 1).array().square();
  return k;
}

template <typename T>
void BasicOpticalStudent<T>::set_kernels(const Mat<T>& kappa) {
  if (o_.parameterization != "intensity")
    throw std::invalid_argument("student.set_kernels: only the intensity parameterisation stores kernels directly");
  if (kappa.rows() != rho_.rows() || kappa.cols() != rho_.cols())
    throw std::invalid_argument("student.set_kernels: kernels must be " + std::to_string(rho_.rows()) + " x " +
                                std::to_string(rho_.cols()));
  if ((kappa.array() < 0).any() || !kappa.allFinite())
    throw std::invalid_argument("student.set_kernels: kernels must be finite and >= 0");
  for (Eigen::Index i = 0; i < kappa.size(); ++i) {
    const double kv = std::max<double>(kappa.data()[i], 1e-12);
    rho_.data()[i] = static_cast<T>(o_.nonneg == "square" ? std::sqrt(kv)
                                                          : (kv > 30 ? kv + std::log1p(-std::exp(-kv)) : std::log(std::expm1(kv))));
  }
  refresh_kernels();
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::kernel_grad_to_raw(const Mat<T>& dk) const {
  if (o_.parameterization == "intensity") {
    if (o_.nonneg == "square") return (T(2) * rho_.array() * dk.array()).matrix();
    return (rho_.unaryExpr([](T r) { return static_cast<T>(sigmoid(r)); }).array() * dk.array()).matrix();
  }
  const int K = o_.kernels, k = o_.kernel_size;
  const Eigen::Index PR = o_.psf_pad * rho_.rows(), PC = o_.psf_pad * rho_.cols();
  if (coherent()) {
    sim::CArray dh = sim::CArray::Zero(PR, PC);
    const double g = std::sqrt(o_.psf_gain);
    for (int j = 0; j < K; ++j) {
      const auto [r0, c0] = tile_origin(j);
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx)
          dh(r0 + k - 1 - ky, c0 + k - 1 - kx) += g * sim::cplx(dk(2 * j, ky * k + kx), dk(2 * j + 1, ky * k + kx));
    }
    return from_double<T>(sim::PupilPsf(rho_.rows(), rho_.cols(), o_.psf_pad).asf_vjp(as_double(rho_).array(), pupil_.array(), dh).matrix());
  }
  sim::RArray dpsf = sim::RArray::Zero(PR, PC);
  for (int j = 0; j < K; ++j) {
    const auto [r0, c0] = tile_origin(j);
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) dpsf(r0 + k - 1 - ky, c0 + k - 1 - kx) += o_.psf_gain * dk(j, ky * k + kx);
  }
  return from_double<T>(sim::psf_from_phase_vjp(as_double(rho_).array(), pupil_.array(), dpsf, o_.psf_pad).matrix());
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::kernel_deriv_sq() const {
  if (o_.nonneg == "square") return (T(4) * rho_.array().square()).matrix();
  return rho_.unaryExpr([](T r) { return static_cast<T>(sigmoid(r) * sigmoid(r)); });
}
template <typename T>
Mat<T> BasicOpticalStudent<T>::kernel_deriv_sq_grad() const {
  if (o_.nonneg == "square") return (T(8) * rho_.array()).matrix();
  return rho_.unaryExpr([](T r) {
    const double s = sigmoid(r);
    return static_cast<T>(2.0 * s * s * (1.0 - s));
  });
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::pool_sign(const Mat<T>& y) const {
  const int H = in_.h, W = in_.w, p = o_.pool, Ho = H / p, Wo = W / p;
  const bool pairs = o_.signing == "pairs";
  Mat<T> a = Mat<T>::Zero(y.rows(), D_);
  const T inv = T(1) / static_cast<T>(p * p);
  for (Eigen::Index n = 0; n < y.rows(); ++n)
    for (int k = 0; k < M_; ++k) {
      const int j = pairs ? k / 2 : k;
      const T sgn = (pairs && k % 2 == 1) ? -inv : inv;
      const T* src = y.row(n).data() + k * H * W;
      T* dst = a.row(n).data() + j * Ho * Wo;
      for (int r = 0; r < H; ++r)
        for (int c = 0; c < W; ++c) dst[(r / p) * Wo + c / p] += sgn * src[r * W + c];
    }
  return a;
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::pool_sign_t(const Mat<T>& da) const {
  const int H = in_.h, W = in_.w, p = o_.pool, Ho = H / p, Wo = W / p;
  const bool pairs = o_.signing == "pairs";
  Mat<T> y(da.rows(), static_cast<Eigen::Index>(M_) * H * W);
  const T inv = T(1) / static_cast<T>(p * p);
  for (Eigen::Index n = 0; n < da.rows(); ++n)
    for (int k = 0; k < M_; ++k) {
      const int j = pairs ? k / 2 : k;
      const T sgn = (pairs && k % 2 == 1) ? -inv : inv;
      const T* src = da.row(n).data() + j * Ho * Wo;
      T* dst = y.row(n).data() + k * H * W;
      for (int r = 0; r < H; ++r)
        for (int c = 0; c < W; ++c) dst[r * W + c] = sgn * src[(r / p) * Wo + c / p];
    }
  return y;
}

template <typename T>
void BasicOpticalStudent<T>::front_forward(const Mat<T>& x) {
  refresh_kernels();
  if (!coherent()) {
    y_ = conv_->forward(x, false);
    return;
  }
  // Conv channel 2m is Re, 2m + 1 Im of map m (expand_kernels keeps kernels()' row order per channel).
  q_ = conv_->forward(x, false);
  const Eigen::Index HW = Eigen::Index(in_.h) * in_.w;
  y_.resize(x.rows(), M_ * HW);
  for (Eigen::Index n = 0; n < x.rows(); ++n)
    for (int m = 0; m < M_; ++m) {
      const auto re = q_.row(n).segment((2 * m) * HW, HW).array(), im = q_.row(n).segment((2 * m + 1) * HW, HW).array();
      y_.row(n).segment(m * HW, HW) = (re.square() + im.square()).matrix();
    }
}

template <typename T>
void BasicOpticalStudent<T>::conv_backward(const Mat<T>& dy) {
  conv_->grad_weight().setZero();
  if (!coherent()) {
    conv_->backward_params(dy);
    return;
  }
  const Eigen::Index HW = Eigen::Index(in_.h) * in_.w;
  Mat<T> dq(q_.rows(), q_.cols());
  for (Eigen::Index n = 0; n < q_.rows(); ++n)
    for (int m = 0; m < M_; ++m)
      for (int part = 0; part < 2; ++part)
        dq.row(n).segment((2 * m + part) * HW, HW) =
            (T(2) * q_.row(n).segment((2 * m + part) * HW, HW).array() * dy.row(n).segment(m * HW, HW).array()).matrix();
  conv_->backward_params(dq);
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::features(const Mat<T>& x) {
  front_forward(x);
  noisy_ = jittered_ = false;
  return pool_sign(y_);
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::backend_forward(const Mat<T>& a) {
  if (a.cols() != D_) throw std::invalid_argument("student backend: features must have " + std::to_string(D_) + " columns");
  a_ = (a.rowwise() - mu_.row(0)).array().rowwise() * inv_sd_.row(0).array();
  z_ = a_ * w1_.transpose();
  z_.rowwise() += b1_.row(0);
  h_ = z_.cwiseMax(T(0));
  Mat<T> logits = h_ * w2_.transpose();
  logits.rowwise() += b2_.row(0);
  return logits;
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::forward(const Mat<T>& x, bool train, std::mt19937_64* rng) {
  front_forward(x);
  noisy_ = train && o_.noise.enabled;
  jittered_ = train && jitter_.has_value();
  if ((noisy_ || jittered_) && !rng)
    throw std::invalid_argument("student.forward: camera noise and augmentation need a random generator");
  Mat<T> y = y_;
  if (jittered_) {
    jitter_->draw(y.rows(), *rng);
    y = from_double<T>(jitter_->apply(as_double(y)));
  }
  if (noisy_) {
    // Boost's ziggurat sampler: the draws were ~18 % of a noisy training step with std's (two per pixel
    // and map; docs/distill.md, "Float32 student and the NTKD step").
    boost::random::normal_distribution<double> n(0.0, 1.0);
    const double s = o_.noise.photons_per_unit, r = o_.noise.read_noise, floor = 1e-8;
    noise_deriv_.resize(y.rows(), y.cols());
    for (Eigen::Index i = 0; i < y.size(); ++i) {
      const double v = y.data()[i], e1 = n(*rng), e2 = n(*rng);
      const double vc = std::max(v, floor);
      y.data()[i] = static_cast<T>(v + std::sqrt(vc / s) * e1 + r * e2);
      noise_deriv_.data()[i] = static_cast<T>(1.0 + (v > floor ? e1 / (2.0 * std::sqrt(vc * s)) : 0.0));
    }
  }
  return backend_forward(pool_sign(y));
}

template <typename T>
void BasicOpticalStudent<T>::backend_backward(const Mat<T>& dl, const Mat<T>* dh_extra) {
  gw2_.noalias() += dl.transpose() * h_;
  gb2_ += dl.colwise().sum();
  Mat<T> dh = dl * w2_;
  if (dh_extra) dh += *dh_extra;
  const Mat<T> dz = dh.cwiseProduct((z_.array() > T(0)).template cast<T>().matrix());
  gw1_.noalias() += dz.transpose() * a_;
  gb1_ += dz.colwise().sum();
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::feature_grad(const Mat<T>& dl, const Mat<T>* dh_extra) const {
  Mat<T> dh = dl * w2_;
  if (dh_extra) dh += *dh_extra;
  const Mat<T> dz = dh.cwiseProduct((z_.array() > T(0)).template cast<T>().matrix());
  Mat<T> da = dz * w1_;
  da.array().rowwise() *= inv_sd_.row(0).array();
  return da;
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::feature_grad(const Mat<T>& dl) const {
  if (dl.rows() != z_.rows() || dl.cols() != classes_)
    throw std::invalid_argument("student.feature_grad: dL/dlogits must be the last backend_forward's " +
                                std::to_string(z_.rows()) + " x " + std::to_string(classes_));
  return feature_grad(dl, nullptr);
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::kernel_grad_at(const Mat<T>& x, const Mat<T>& da) {
  if (x.cols() != in_.size() || da.cols() != D_ || da.rows() != x.rows())
    throw std::invalid_argument("student.kernel_grad_at: x must be n x " + std::to_string(in_.size()) + " and da n x " +
                                std::to_string(D_));
  front_forward(x);
  conv_backward(pool_sign_t(da));
  return reduce_kernel_grad(conv_->grad_weight());
}

template <typename T>
void BasicOpticalStudent<T>::backward(const Mat<T>& dl, const Mat<T>* dh_extra) {
  backend_backward(dl, dh_extra);
  Mat<T> dy = pool_sign_t(feature_grad(dl, dh_extra));
  if (noisy_) dy.array() *= noise_deriv_.array();
  if (jittered_) dy = from_double<T>(jitter_->apply_t(as_double(dy)));
  conv_backward(dy);
  grho_ += kernel_grad_to_raw(reduce_kernel_grad(conv_->grad_weight()));
  if (o_.tile_efficiency_weight > 0) {
    // ∂(λ(1 − η))/∂PSF = −λ on the tile windows (|h|² = PSF for fourier, so one path serves both).
    const sim::RArray dpsf = -o_.tile_efficiency_weight * tile_window();
    grho_ += from_double<T>(sim::psf_from_phase_vjp(as_double(rho_).array(), pupil_.array(), dpsf, o_.psf_pad).matrix());
  }
}

template <typename T>
std::vector<Param<T>> BasicOpticalStudent<T>::params(ParamSet s) {
  std::vector<Param<T>> p;
  if (s != ParamSet::backend) p.push_back({optical_param_name(), &rho_, &grho_});
  if (s != ParamSet::optical) {
    p.push_back({"backend.w1", &w1_, &gw1_});
    p.push_back({"backend.b1", &b1_, &gb1_});
    p.push_back({"backend.w2", &w2_, &gw2_});
    p.push_back({"backend.b2", &b2_, &gb2_});
  }
  return p;
}

template <typename T>
void BasicOpticalStudent<T>::zero_grad() {
  for (auto& p : params()) p.grad->setZero();
}

template <typename T>
std::size_t BasicOpticalStudent<T>::num_params(ParamSet s) {
  std::size_t n = 0;
  for (auto& p : params(s)) n += static_cast<std::size_t>(p.value->size());
  return n;
}

// ------------------------------------------------------------------ model files
template <typename T>
nlohmann::json BasicOpticalStudent<T>::options_json() const { return o_; }

template <typename T>
StudentOptions BasicOpticalStudent<T>::options_from_json(const nlohmann::json& j) {
  StudentOptions o = io::read_valid_options<StudentOptions>(j, "student");
  return o;
}

template <typename T>
ModelFile BasicOpticalStudent<T>::to_model(const nlohmann::json& extra) const {
  ModelFile m;
  m.kind = "student";
  m.meta = extra;
  m.meta["student"] = options_json();
  m.meta["in"] = {in_.c, in_.h, in_.w};
  m.meta["classes"] = classes_;
  auto f64 = [](const std::string& name, const Mat<T>& v) { return to_array(name, as_double(v)); };
  m.arrays.push_back(f64(optical_param_name(), rho_));
  m.arrays.push_back(f64("optical.kernels", kappa_));
  m.arrays.push_back(f64("backend.w1", w1_));
  m.arrays.push_back(f64("backend.b1", b1_));
  m.arrays.push_back(f64("backend.w2", w2_));
  m.arrays.push_back(f64("backend.b2", b2_));
  m.arrays.push_back(f64("backend.feature_offset", mu_));
  m.arrays.push_back(f64("backend.feature_scale", inv_sd_));
  for (auto& a : m.arrays) a.f64 = true;
  return m;
}

template <typename T>
BasicOpticalStudent<T> BasicOpticalStudent<T>::from_model(const ModelFile& m) {
  if (m.kind != "student") throw ModelFileError("model file kind is '" + m.kind + "', expected 'student'");
  const auto in = m.meta.at("in");
  BasicOpticalStudent s(options_from_json(m.meta.at("student")), Shape{in.at(0), in.at(1), in.at(2)}, m.meta.at("classes"));
  s.rho_ = from_array<T>(m.at(s.optical_param_name()), s.rho_.rows(), s.rho_.cols());
  s.w1_ = from_array<T>(m.at("backend.w1"), s.w1_.rows(), s.w1_.cols());
  s.b1_ = from_array<T>(m.at("backend.b1"), 1, s.b1_.cols());
  s.w2_ = from_array<T>(m.at("backend.w2"), s.w2_.rows(), s.w2_.cols());
  s.b2_ = from_array<T>(m.at("backend.b2"), 1, s.b2_.cols());
  if (m.has("backend.feature_offset") || m.has("backend.feature_scale"))  // older files: identity
    s.set_feature_norm(from_array<T>(m.at("backend.feature_offset"), 1, s.D_),
                       from_array<T>(m.at("backend.feature_scale"), 1, s.D_));
  s.refresh_kernels();
  return s;
}

template class BasicOpticalStudent<double>;
template class BasicOpticalStudent<float>;

}  // namespace hilo::distill
