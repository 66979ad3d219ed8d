// The optical student's empirical NTK (student.hpp): exact Θ over a parameter set from per-layer Gram
// products, the backend-only Θ at given features (compensation's), and the gradient of a loss on Θ
// with respect to the parameters (second order, through the same products). Kept apart from the
// forward and backward passes in student.cpp, which it uses through the class's members only.
#include <cmath>

#include "hilo/distill/student.hpp"

namespace hilo::distill {
namespace {
template <typename T>
using RowT = Eigen::Matrix<T, 1, Eigen::Dynamic>;
}  // namespace

template <typename T>
MatD BasicOpticalStudent<T>::ntk(const Mat<T>& x, ParamSet s, bool kernel_space) {
  if (coherent() && s != ParamSet::backend)
    throw std::invalid_argument("student.ntk: the fourier (4f) front-end has no optical NTK (Y = |x ⋆ κ|² is quadratic "
                                "in κ); take the NTK w.r.t. the backend (ntk_param_set: backend)");
  if (o_.parameterization == "phase") kernel_space = true;
  ntk_set_ = s;
  ntk_kernel_space_ = kernel_space;
  ntk_measured_ = false;
  backend_forward(features(x));
  const Eigen::Index B = x.rows();
  const int C = classes_, P = o_.kernels * o_.kernel_size * o_.kernel_size, HW = in_.h * in_.w;
  Mat<T> theta = s != ParamSet::optical ? backend_ntk_term() : Mat<T>::Zero(B, B);
  const Mat<T> M = (z_.array() > T(0)).template cast<T>().matrix();
  if (s != ParamSet::backend) {
    // v_ic = σ⁻¹ ⊙ W1ᵀ (m_i ⊙ W2[c,:]) = ∂f_c(x_i)/∂a for all (i, c): rows i·C + c.
    Mat<T> v(B * C, D_);
    for (Eigen::Index i = 0; i < B; ++i)
      v.middleRows(i * C, C) = (w2_ * M.row(i).asDiagonal()) * w1_;
    v.array().rowwise() *= inv_sd_.row(0).array();
    const Mat<T> dy = pool_sign_t(v);  // (B·C) × (K·HW)
    const Mat<T>& cols = conv_->columns();
    ntk_u_.resize(B, static_cast<Eigen::Index>(C) * P);
    for (Eigen::Index i = 0; i < B; ++i) {
      // Rows (c, m) of the sample's output gradient times its im2col columns, (C·M) × (Cin·k²), reduced per
      // class to the K × k² kernels (the channels' blocks summed; the identity for one channel).
      Eigen::Map<const Mat<T>> dyi(dy.row(i * C).data(), static_cast<Eigen::Index>(C) * M_, HW);
      const Mat<T> ui = dyi * cols.middleCols(i * HW, HW).transpose();
      for (int c = 0; c < C; ++c) {
        const Mat<T> uc = reduce_kernel_grad(ui.middleRows(static_cast<Eigen::Index>(c) * M_, M_));
        ntk_u_.row(i).segment(static_cast<Eigen::Index>(c) * P, P) = Eigen::Map<const RowT<T>>(uc.data(), P);
      }
    }
    RowT<T> d = RowT<T>::Ones(static_cast<Eigen::Index>(C) * P);
    if (!kernel_space) {
      const Mat<T> dk = kernel_deriv_sq();
      for (int c = 0; c < C; ++c) d.segment(c * P, P) = Eigen::Map<const RowT<T>>(dk.data(), P);
    }
    theta.noalias() += ntk_u_ * d.asDiagonal() * ntk_u_.transpose();
  }
  return theta.template cast<double>();
}

template <typename T>
Mat<T> BasicOpticalStudent<T>::backend_ntk_term() const {
  const Mat<T> M = (z_.array() > T(0)).template cast<T>().matrix();
  const Mat<T> sk = w2_.colwise().squaredNorm();  // 1 × hidden
  const Mat<T> msm = M * sk.asDiagonal() * M.transpose();
  return (static_cast<T>(classes_) * ((h_ * h_.transpose()).array() + T(1)) + msm.array() * ((a_ * a_.transpose()).array() + T(1)))
      .matrix();
}

template <typename T>
MatD BasicOpticalStudent<T>::ntk_at_features(const Mat<T>& a) {
  ntk_set_ = ParamSet::backend;
  ntk_kernel_space_ = false;
  ntk_measured_ = true;
  backend_forward(a);
  return backend_ntk_term().template cast<double>();
}

template <typename T>
void BasicOpticalStudent<T>::ntk_backward(const MatD& Gin) {
  const Mat<T> G = (0.5 * (Gin + Gin.transpose())).template cast<T>();
  const Eigen::Index B = a_.rows();
  const int C = classes_, P = o_.kernels * o_.kernel_size * o_.kernel_size, HW = in_.h * in_.w, k2 = o_.kernel_size * o_.kernel_size;
  const Mat<T> M = (z_.array() > T(0)).template cast<T>().matrix();
  Mat<T> dH = Mat<T>::Zero(B, o_.hidden), dA = Mat<T>::Zero(B, D_);
  if (ntk_set_ != ParamSet::optical) {
    // C·(HHᵀ + 1): ∂/∂H = 2C·G·H.
    dH += static_cast<T>(2.0 * C) * G * h_;
    // (M S Mᵀ) ⊙ (AAᵀ + 1), S = diag(‖W2[:,k]‖²).
    const Mat<T> sk = w2_.colwise().squaredNorm();
    const Mat<T> aa1 = ((a_ * a_.transpose()).array() + T(1)).matrix();
    const Mat<T> ga = G.cwiseProduct(aa1);
    const RowT<T> ds = (M.transpose() * ga * M).diagonal().transpose();  // ∂/∂s_k
    gw2_ += T(2) * w2_ * ds.asDiagonal();
    const Mat<T> msm = M * sk.asDiagonal() * M.transpose();
    dA += T(2) * G.cwiseProduct(msm) * a_;
  }
  if (ntk_set_ != ParamSet::backend) {
    RowT<T> d = RowT<T>::Ones(static_cast<Eigen::Index>(C) * P);
    const bool raw = !ntk_kernel_space_;
    if (raw) {
      const Mat<T> dk = kernel_deriv_sq();
      for (int c = 0; c < C; ++c) d.segment(c * P, P) = Eigen::Map<const RowT<T>>(dk.data(), P);
      // ∂/∂d_p = Σ_c diag(Uᵀ G U)_(c,p); then chain through d(ρ).
      const Mat<T> gu = G * ntk_u_;
      const RowT<T> diag = (ntk_u_.array() * gu.array()).colwise().sum();
      Mat<T> dd = Mat<T>::Zero(o_.kernels, k2);
      for (int c = 0; c < C; ++c) dd += Eigen::Map<const Mat<T>>(diag.data() + c * P, o_.kernels, k2);
      grho_ += dd.cwiseProduct(kernel_deriv_sq_grad());
    }
    // ū = 2 G U diag(d): B × (C·P); then ∂L/∂v_ic = G_i ū_ic (the front-end applied with kernel ū_ic).
    const Mat<T> ubar = T(2) * (G * ntk_u_) * d.asDiagonal();
    const Mat<T>& cols = conv_->columns();
    Mat<T> ybar(B * C, static_cast<Eigen::Index>(M_) * HW);
    for (Eigen::Index i = 0; i < B; ++i) {
      Eigen::Map<const Mat<T>> ui(ubar.row(i).data(), static_cast<Eigen::Index>(C) * o_.kernels, k2);
      for (int c = 0; c < C; ++c) {
        const Mat<T> yc = expand_kernels(ui.middleRows(static_cast<Eigen::Index>(c) * o_.kernels, o_.kernels)) *
                        cols.middleCols(i * HW, HW);  // M × HW
        ybar.row(i * C + c) = Eigen::Map<const RowT<T>>(yc.data(), yc.size());
      }
    }
    Mat<T> dv = pool_sign(ybar);  // (B·C) × D: ∂/∂(σ⁻¹ ⊙ v), so ∂/∂v = dv ⊙ σ⁻¹
    dv.array().rowwise() *= inv_sd_.row(0).array();
    for (Eigen::Index i = 0; i < B; ++i) {
      const Mat<T> dvi = dv.middleRows(i * C, C);  // C × D
      // v_ic = W1ᵀ diag(m_i) W2[c,:]ᵀ
      gw1_.noalias() += M.row(i).asDiagonal() * (w2_.transpose() * dvi);
      gw2_.noalias() += (dvi * w1_.transpose()) * M.row(i).asDiagonal();
    }
  }
  // First-order path of the activations H and A back to the parameters.
  const Mat<T> dz = dH.cwiseProduct(M);
  gw1_.noalias() += dz.transpose() * a_;
  gb1_ += dz.colwise().sum();
  if (ntk_measured_) return;  // measured features: nothing upstream of A to differentiate
  dA += dz * w1_;
  // A depends on the kernels, so ∂Θ_backend/∂A reaches the optical parameters whatever the set.
  dA.array().rowwise() *= inv_sd_.row(0).array();
  conv_backward(pool_sign_t(dA));
  grho_ += kernel_grad_to_raw(reduce_kernel_grad(conv_->grad_weight()));
}

#define HILO_INST(T)                                                                 \
  template MatD BasicOpticalStudent<T>::ntk(const Mat<T>&, ParamSet, bool);          \
  template Mat<T> BasicOpticalStudent<T>::backend_ntk_term() const;                  \
  template MatD BasicOpticalStudent<T>::ntk_at_features(const Mat<T>&);              \
  template void BasicOpticalStudent<T>::ntk_backward(const MatD&);
HILO_INST(double)
HILO_INST(float)
#undef HILO_INST

}  // namespace hilo::distill
