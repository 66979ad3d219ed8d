#pragma once
// The hybrid optical-digital student, templated on its arithmetic T: BasicOpticalStudent<double>
// (OpticalStudent, the default and the one the gradient checks use) and BasicOpticalStudent<float> (the
// float32 training path, distill.precision; as() converts between them). Parameters are stored in T;
// model files always hold them as float64. The NTK Θ_S and the G of ntk_backward are double in both.
//
//   x (B × Cin·H·W, intensity image in [0,1]; Cin channel planes, e.g. R, G, B)
//   └─ optical layer: Y_{c,k} = x_c ⋆ κ_k  (incoherent PSF convolution written as a cross-correlation,
//        "same" size, zero outside the image), K non-negative kernels κ_k of k×k. Per-channel optics:
//        each input channel is imaged on its own through the same element (three exposures, one per
//        colour, on a monochrome camera), giving M = Cin·K maps in channel-major order m = c·K + k;
//        for Cin = 1 this is the plain layer. The conv weight is κ placed block-diagonally
//        (expand_kernels), its gradient the sum of the channels' blocks (reduce_kernel_grad).
//   └─ front-end jitter (training only, optional; augment.hpp): per sample a random blur, pose (shift,
//        rotation, scale about the frame centre), gain and per-map dark offset of the maps
//   └─ camera noise (training only, optional): Y + √(max(Y,0)/s)·ε₁ + r·ε₂,  ε ~ N(0,1)
//        s = photons per unit signal (shot noise, Gaussian approximation of Poisson), r = read noise
//   └─ signing: "pairs": S_j = Y_{2j} − Y_{2j+1} (M/2 signed maps, subtracted digitally; K even, so a
//                        pair never mixes channels); "bias": S = Y (M non-negative maps; the first linear
//                        layer's bias supplies the offset)
//   └─ average pooling p×p → a (B × D), D = K'·(H/p)·(W/p)   [the "measured features"]
//   └─ standardisation: â = (a − μ) ⊙ σ⁻¹, a fixed offset μ and scale σ⁻¹ (1 × D each) estimated
//        from training features once before the backend trains (fit_feature_norm), not trained
//   └─ backend: z = â W1ᵀ + b1, h = ReLU(z), logits = h W2ᵀ + b2
//
// Kernel parameterisations:
//   "intensity": κ = softplus(ρ) or ρ² (option nonneg), ρ free (K × k²)
//   "phase":     a phase mask φ (canvas/psf_pad rows × cols) → PSF = psf_from_phase(φ, pupil, pad)
//                (hilo::sim) → kernel j = psf_gain · rot180(tile j of the PSF laid out by
//                sim::KernelTiling); the 180° rotation converts the PSF's true convolution into this
//                layer's cross-correlation. psf_gain = (#PSF samples)/k² unless given, so that a flat
//                PSF gives kernels summing to 1.
//   "fourier":   the 4f front-end (coherent input, Fourier-plane phase SLM, camera recording |U_out|²):
//                the phase φ as above → amplitude spread function h = asf(φ, pupil, pad) (hilo::sim,
//                |h|² = the phase parameterisation's PSF) → complex kernel j = √psf_gain · rot180(tile j
//                of h), and the optical layer becomes Y_{c,k} = |x_c ⋆ κ_k|² = (x_c ⋆ Re κ_k)² +
//                (x_c ⋆ Im κ_k)², x read as the field amplitude. kernels() then holds 2K rows: Re κ_k
//                in row 2k, Im κ_k in row 2k + 1. Its optical NTK is not implemented (Y is quadratic
//                in κ): ntk() takes the backend set only; gradients of every loss reach φ all the same.
// Phase grids: phase_rows × phase_cols (0: the tiling canvas / psf_pad); kernel j is cut from the PSF (or
// ASF) grid at centre + (kernel_origin(j) − canvas centre), the convention of calibration::cut_kernels,
// so a student on the bench's element grid and pupil ("circle": the bench's largest inscribed circle)
// realises on the bench exactly the kernels it trained with.
// Intensity and phase: all steps between κ and a are linear in κ for a fixed input (no noise), which
// the NTK code uses.
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/augment.hpp"
#include "hilo/distill/layers.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/sim/field.hpp"

namespace hilo::distill {

struct CameraNoiseOptions {
  bool enabled = false;
  double photons_per_unit = 200.0;  // s: photo-electrons per unit of signal
  double read_noise = 0.02;         // r: in units of signal
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CameraNoiseOptions, enabled, photons_per_unit, read_noise)

struct StudentOptions {
  int kernels = 8;                            // K (even for "pairs")
  int kernel_size = 7;                        // k (odd)
  std::string parameterization = "intensity"; // "intensity" | "phase" | "fourier"
  std::string nonneg = "softplus";            // "softplus" | "square" (intensity only)
  std::string signing = "pairs";              // "pairs" | "bias"
  int pool = 4;                               // average pooling window p (divides H and W)
  int hidden = 256;                           // backend width
  CameraNoiseOptions noise{};
  AugmentOptions augment{};  // the bench's residual errors as training augmentation (off by default)
  // phase parameterisation
  int tile_columns = 4;
  int tile_gap = 2;
  int psf_pad = 2;
  double psf_gain = 0.0;  // 0: automatic (see above)
  int phase_rows = 0;     // phase grid (phase, fourier); 0 = canvas rows / psf_pad
  int phase_cols = 0;
  std::string pupil = "square";  // "square" (every phase sample open) | "circle" (the bench's pupil)
  // λ ≥ 0 (phase, fourier): backward() adds λ·∂(1 − η)/∂φ, η = tile_efficiency(), so that training
  // keeps the element's light in the kernel tiles (light outside them reaches the bench's maps as a
  // background the kernels do not model; for the coherent 4f bench it interferes with them).
  double tile_efficiency_weight = 0.0;
  // phase, fourier: how init() draws φ. "tiles": uniform random, then 100 Gerchberg–Saxton iterations
  // that put the pupil's light on the kernel tiles (sim::concentrate_phase; about 88 % of it on a 64 × 64
  // circular pupil with 8 tiles of 7 × 7, against 2 % for a random phase); "random": uniform only.
  std::string phase_init = "tiles";
  // How fit_feature_norm estimates μ and σ: "feature" (each of the D features its own), "map" (one μ, σ
  // per signed map, pooled over its (H/p)·(W/p) positions), "none" (identity: μ = 0, σ = 1).
  std::string feature_norm = "feature";
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StudentOptions, kernels, kernel_size, parameterization, nonneg, signing,
                                                pool, hidden, noise, augment, tile_columns, tile_gap, psf_pad, psf_gain,
                                                phase_rows, phase_cols, pupil, tile_efficiency_weight, phase_init,
                                                feature_norm)

// Which parameters a student NTK Θ_S is taken with respect to.
enum class ParamSet { all, optical, backend };
ParamSet param_set_from_string(const std::string& s);  // "all" | "optical" | "backend"
std::string to_string(ParamSet p);

template <typename T>
class BasicOpticalStudent {
 public:
  BasicOpticalStudent(const StudentOptions& o, Shape in, int classes);
  const StudentOptions& options() const { return o_; }
  Shape in_shape() const { return in_; }
  int classes() const { return classes_; }
  int feature_dim() const { return D_; }
  // Signed feature maps; feature j belongs to map j / (feature_dim() / feature_maps()) (map-major order).
  int feature_maps() const { return Kp_; }
  int optical_param_count() const { return static_cast<int>(rho_.size()); }

  // Random initialisation (kernels around a flat mean, He-normal backend).
  void init(std::mt19937_64& rng);

  // Logits. train && augment.enabled jitters the maps, then train && noise.enabled adds camera noise,
  // both drawn from *rng (must be non-null then; the jitter draws first, per sample).
  Mat<T> forward(const Mat<T>& x, bool train, std::mt19937_64* rng = nullptr);
  // Backward of the last forward: accumulates parameter gradients for dL/dlogits, plus optional
  // dL/dh (B × hidden) injected at the hidden layer (used by feature-space losses). Returns nothing:
  // the input image carries no parameters.
  void backward(const Mat<T>& dlogits, const Mat<T>* dhidden = nullptr);

  // Optical front-end alone (no noise): pooled features a (B × D). Calibration replaces this with
  // features measured on the bench and re-fits the backend alone (backend_forward / backend_backward).
  Mat<T> features(const Mat<T>& x);
  // backend_forward standardises a itself (â above); a are raw features, as features() returns them.
  Mat<T> backend_forward(const Mat<T>& a);  // caches for backend_backward; accumulates backend grads only
  void backend_backward(const Mat<T>& dlogits, const Mat<T>* dhidden = nullptr);
  const Mat<T>& hidden() const { return h_; }

  // Feature standardisation. fit_feature_norm sets μ and σ⁻¹ from features a (n × D, n ≥ 2) by the
  // options' feature_norm: μ = mean, σ = sample standard deviation (population form), floored at
  // 1e-3 × the RMS of all σ so that a feature that never varies (a dark border) is not amplified
  // without bound; all-constant features give σ⁻¹ = 1. Calibration calls it again with measured
  // features, which absorbs gain and dark offsets of the bench. keep_function = true also rewrites
  // W1 and b1 so that the backend computes exactly the same logits for every input as before (used at
  // the end of training, so that the stored μ, σ describe the trained front-end's features and a later
  // re-estimate from measured features maps them back onto what the backend learned). Throws
  // std::invalid_argument for a wrong column count, fewer than 2 rows, or non-finite features.
  void fit_feature_norm(const Mat<T>& a, bool keep_function = false);
  const Mat<T>& feature_offset() const { return mu_; }      // μ, 1 × D
  const Mat<T>& feature_scale() const { return inv_sd_; }   // σ⁻¹, 1 × D
  // Sets μ and σ⁻¹ directly (1 × D each, finite, σ⁻¹ > 0); throws std::invalid_argument otherwise.
  void set_feature_norm(const Mat<T>& offset, const Mat<T>& scale);

  // The effective non-negative kernels κ (K × k²); row k in (ky, kx) order, cross-correlation weights.
  // fourier: the complex kernels as 2K rows (Re, Im) instead.
  Mat<T> kernels() const;
  // η: the fraction of the element's light inside the K kernel tiles, Σ_tiles PSF (|h|² for fourier;
  // the PSF has unit sum). phase and fourier only (std::logic_error otherwise).
  double tile_efficiency() const;
  // The phase grid's pupil amplitude (phase and fourier; empty for intensity).
  const MatD& pupil() const { return pupil_; }
  // Intensity parameterisation only: sets ρ so that the kernels become `kappa` (K × k², every value
  // > 0; values below 1e-12 are raised to it, softplus⁻¹ diverges at 0). Used by deploy, which replaces
  // the trained kernels by the ones the element actually realises. Throws std::invalid_argument for the
  // phase parameterisation, a wrong shape or a negative value.
  void set_kernels(const Mat<T>& kappa);
  // Physics-aware training (Wright et al. 2022: the forward pass on the hardware, the backward pass
  // through the model). feature_grad: dL/da (n × D, raw features) for dL/dlogits `dl` of the last
  // backend_forward (its â, z), through the standardisation; accumulates nothing. kernel_grad_at:
  // dL/dκ (K × k², the kernels() layout) of features(x) for that dL/da, through this model's optical
  // layer (no noise): a is linear in κ, so this is the model's Jacobian whatever produced the measured a.
  // Accumulates nothing; x: n × C·H·W, da: n × D (std::invalid_argument otherwise).
  Mat<T> feature_grad(const Mat<T>& dl) const;
  Mat<T> kernel_grad_at(const Mat<T>& x, const Mat<T>& da);
  // Feature maps Y (n × M·H·W, map-major, as the optical layer produces them) → features a
  // (n × D): the signing and pooling steps alone. Bench measurements enter the student here.
  Mat<T> features_from_maps(const Mat<T>& y) const { return pool_sign(y); }

  std::vector<Param<T>> params(ParamSet s = ParamSet::all);
  void zero_grad();
  std::size_t num_params(ParamSet s = ParamSet::all);

  // ---- NTK (evaluation mode: no noise) ----
  // Exact Θ_S (B × B) for batch x w.r.t. the parameter set, in closed form:
  //   backend: Θ = C·(h_i·h_j + 1) + (Σ_k m_ik m_jk ‖W2[:,k]‖²)·(a_i·a_j + 1)
  //   optical: Θ = Σ_c Σ_p d_p u_ic,p u_jc,p, u_ic = ∂f_c(x_i)/∂κ, d_p = (∂κ_p/∂ρ_p)² for the
  //            intensity parameterisation ("raw" space) and d = 1 in "kernel" space (always for phase:
  //            the NTK is then taken w.r.t. the kernel values the mask realises).
  // Caches what ntk_backward needs; a later forward() invalidates it.
  MatD ntk(const Mat<T>& x, ParamSet s, bool kernel_space = false);
  // Adds ∂/∂θ Σ_ij G_ij Θ_S(i,j) to the parameter gradients, for the batch of the last ntk() call,
  // treating ReLU masks as locally constant (exact almost everywhere). G is symmetrised first.
  void ntk_backward(const MatD& G);

  // Backend NTK at given raw features a (B × D) instead of the front-end's output (the measured
  // features of calibration): the backend part of ntk() above with â from a. Caches for
  // ntk_backward, which then adds gradients to the backend parameters only (a carries none).
  MatD ntk_at_features(const Mat<T>& a);

  // Model file (kind "student"): meta holds the options, arrays the parameters and
  // "backend.feature_offset" / "backend.feature_scale" (μ, σ⁻¹; files without them load as identity).
  ModelFile to_model(const nlohmann::json& extra_meta) const;
  static BasicOpticalStudent from_model(const ModelFile& m);
  nlohmann::json options_json() const;
  static StudentOptions options_from_json(const nlohmann::json& j);

  Mat<T>& w1() { return w1_; }
  Mat<T>& b1() { return b1_; }
  Mat<T>& w2() { return w2_; }
  Mat<T>& b2() { return b2_; }
  Mat<T>& raw_optical() { return rho_; }  // ρ (intensity) or φ (phase, fourier), the optical parameters
  const Mat<T>& raw_optical() const { return rho_; }
  // The non-negative kernels the optical layer's maps respond to as intensities: kernels() for intensity
  // and phase, |κ_k|² = Re² + Im² (K × k²) for fourier (what a point input images to).
  Mat<T> intensity_kernels() const;

  // The same student in arithmetic U: options, shapes, parameters and standardisation (rounded to U when
  // U is narrower); caches and gradients are not carried over.
  template <typename U>
  BasicOpticalStudent<U> as() const {
    BasicOpticalStudent<U> s(o_, in_, classes_);
    s.rho_ = rho_.template cast<U>();
    s.w1_ = w1_.template cast<U>();
    s.b1_ = b1_.template cast<U>();
    s.w2_ = w2_.template cast<U>();
    s.b2_ = b2_.template cast<U>();
    s.mu_ = mu_.template cast<U>();
    s.inv_sd_ = inv_sd_.template cast<U>();
    s.refresh_kernels();
    return s;
  }

 private:
  template <typename U>
  friend class BasicOpticalStudent;
  Mat<T> feature_grad(const Mat<T>& dl, const Mat<T>* dh_extra) const;  // dL/da of the last backend_forward
  // Kernel from raw parameters, and its chain rule: dρ from dκ.
  void refresh_kernels();
  Mat<T> kernel_grad_to_raw(const Mat<T>& dkappa) const;
  // κ (K × k²) → the conv weight (M × Cin·k², block-diagonal over channels) and its adjoint.
  Mat<T> expand_kernels(const Mat<T>& kappa) const;
  Mat<T> reduce_kernel_grad(const Mat<T>& gw) const;
  Mat<T> kernel_deriv_sq() const;   // (∂κ/∂ρ)² elementwise (intensity only)
  Mat<T> kernel_deriv_sq_grad() const;  // d/dρ of (∂κ/∂ρ)²
  // Linear map Y (n × K·H·W) → a (n × D) and its transpose.
  Mat<T> pool_sign(const Mat<T>& y) const;
  Mat<T> pool_sign_t(const Mat<T>& da) const;
  // Front-end forward into caches (cols_, y_; fourier also q_), no noise.
  void front_forward(const Mat<T>& x);
  // dL/dY of the last front_forward → the conv weight's gradient (through Y = |q|² for fourier).
  void conv_backward(const Mat<T>& dy);
  bool coherent() const { return o_.parameterization == "fourier"; }
  // Top-left of kernel j's tile on the phase model's PSF/ASF grid.
  std::pair<Eigen::Index, Eigen::Index> tile_origin(int j) const;
  // The PSF grid with 1 on the K kernel tiles, 0 elsewhere (the tiles never overlap).
  sim::RArray tile_window() const;
  // The optical parameters' name in params() and model files.
  const char* optical_param_name() const { return o_.parameterization == "intensity" ? "optical.rho" : "optical.phase"; }
  // Backend part of Θ_S from the caches of the last backend_forward.
  Mat<T> backend_ntk_term() const;
  void fit_feature_norm_stats(const Mat<T>& a);

  StudentOptions o_;
  Shape in_;
  int classes_, M_ = 0, Kp_ = 0, D_ = 0;  // M_: maps (Cin·K)
  Mat<T> rho_, grho_;   // optical parameters and gradient
  Mat<T> kappa_;        // K × k²
  Mat<T> w1_, b1_, w2_, b2_, gw1_, gb1_, gw2_, gb2_;
  Mat<T> mu_, inv_sd_;  // feature standardisation, 1 × D
  std::unique_ptr<Conv2d<T>> conv_;
  // phase parameterisation
  MatD pupil_;  // the phase parameterisation's pupil, double for sim/
  // caches of the last forward
  Mat<T> y_, q_, a_, z_, h_, noise_deriv_;  // q_: fourier's complex maps (Re, Im interleaved per map)
  bool noisy_ = false, jittered_ = false;
  std::optional<FrontEndJitter> jitter_;  // set when augment.enabled
  // NTK caches
  ParamSet ntk_set_ = ParamSet::all;
  bool ntk_kernel_space_ = false;
  bool ntk_measured_ = false;  // last NTK taken at given features (ntk_at_features): no front-end
  Mat<T> ntk_u_;  // B × (C·K·k²)
};

using OpticalStudent = BasicOpticalStudent<double>;

}  // namespace hilo::distill
