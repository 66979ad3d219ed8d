// The optical student's empirical NTK (student.hpp): exact Θ over a parameter set from per-layer Gram
// products, the backend-only Θ at given features (compensation's), and the gradient of a loss on Θ
// with respect to the parameters (second order, through the same products). Kept apart from the
// forward and backward passes in student.cpp, which it uses through the class's members only.
#include <cmath>

#include "hilo/distill/student.hpp"

namespace hilo::distill {
MatD OpticalStudent::ntk(const MatD& x, ParamSet s, bool kernel_space) {
  if (o_.parameterization == "phase") kernel_space = true;
  ntk_set_ = s;
  ntk_kernel_space_ = kernel_space;
  ntk_measured_ = false;
  backend_forward(features(x));
  const Eigen::Index B = x.rows();
  const int C = classes_, P = o_.kernels * o_.kernel_size * o_.kernel_size, HW = in_.h * in_.w;
  MatD theta = s != ParamSet::optical ? backend_ntk_term() : MatD::Zero(B, B);
  const MatD M = (z_.array() > 0).cast<double>().matrix();
  if (s != ParamSet::backend) {
    // v_ic = σ⁻¹ ⊙ W1ᵀ (m_i ⊙ W2[c,:]) = ∂f_c(x_i)/∂a for all (i, c): rows i·C + c.
    MatD v(B * C, D_);
    for (Eigen::Index i = 0; i < B; ++i)
      v.middleRows(i * C, C) = (w2_ * M.row(i).asDiagonal()) * w1_;
    v.array().rowwise() *= inv_sd_.row(0).array();
    const MatD dy = pool_sign_t(v);  // (B·C) × (K·HW)
    const MatD& cols = conv_->columns();
    ntk_u_.resize(B, static_cast<Eigen::Index>(C) * P);
    for (Eigen::Index i = 0; i < B; ++i) {
      // Rows (c, m) of the sample's output gradient times its im2col columns, (C·M) × (Cin·k²), reduced per
      // class to the K × k² kernels (the channels' blocks summed; the identity for one channel).
      Eigen::Map<const MatD> dyi(dy.row(i * C).data(), static_cast<Eigen::Index>(C) * M_, HW);
      const MatD ui = dyi * cols.middleCols(i * HW, HW).transpose();
      for (int c = 0; c < C; ++c) {
        const MatD uc = reduce_kernel_grad(ui.middleRows(static_cast<Eigen::Index>(c) * M_, M_));
        ntk_u_.row(i).segment(static_cast<Eigen::Index>(c) * P, P) = Eigen::Map<const Eigen::RowVectorXd>(uc.data(), P);
      }
    }
    Eigen::RowVectorXd d = Eigen::RowVectorXd::Ones(static_cast<Eigen::Index>(C) * P);
    if (!kernel_space) {
      const MatD dk = kernel_deriv_sq();
      for (int c = 0; c < C; ++c) d.segment(c * P, P) = Eigen::Map<const Eigen::RowVectorXd>(dk.data(), P);
    }
    theta.noalias() += ntk_u_ * d.asDiagonal() * ntk_u_.transpose();
  }
  return theta;
}

MatD OpticalStudent::backend_ntk_term() const {
  const MatD M = (z_.array() > 0).cast<double>().matrix();
  const MatD sk = w2_.colwise().squaredNorm();  // 1 × hidden
  const MatD msm = M * sk.asDiagonal() * M.transpose();
  return (classes_ * ((h_ * h_.transpose()).array() + 1.0) + msm.array() * ((a_ * a_.transpose()).array() + 1.0)).matrix();
}

MatD OpticalStudent::ntk_at_features(const MatD& a) {
  ntk_set_ = ParamSet::backend;
  ntk_kernel_space_ = false;
  ntk_measured_ = true;
  backend_forward(a);
  return backend_ntk_term();
}

void OpticalStudent::ntk_backward(const MatD& Gin) {
  const MatD G = 0.5 * (Gin + Gin.transpose());
  const Eigen::Index B = a_.rows();
  const int C = classes_, P = o_.kernels * o_.kernel_size * o_.kernel_size, HW = in_.h * in_.w, k2 = o_.kernel_size * o_.kernel_size;
  const MatD M = (z_.array() > 0).cast<double>().matrix();
  MatD dH = MatD::Zero(B, o_.hidden), dA = MatD::Zero(B, D_);
  if (ntk_set_ != ParamSet::optical) {
    // C·(HHᵀ + 1): ∂/∂H = 2C·G·H.
    dH += 2.0 * C * G * h_;
    // (M S Mᵀ) ⊙ (AAᵀ + 1), S = diag(‖W2[:,k]‖²).
    const MatD sk = w2_.colwise().squaredNorm();
    const MatD aa1 = ((a_ * a_.transpose()).array() + 1.0).matrix();
    const MatD ga = G.cwiseProduct(aa1);
    const Eigen::RowVectorXd ds = (M.transpose() * ga * M).diagonal().transpose();  // ∂/∂s_k
    gw2_ += 2.0 * w2_ * ds.asDiagonal();
    const MatD msm = M * sk.asDiagonal() * M.transpose();
    dA += 2.0 * G.cwiseProduct(msm) * a_;
  }
  if (ntk_set_ != ParamSet::backend) {
    Eigen::RowVectorXd d = Eigen::RowVectorXd::Ones(static_cast<Eigen::Index>(C) * P);
    const bool raw = !ntk_kernel_space_;
    if (raw) {
      const MatD dk = kernel_deriv_sq();
      for (int c = 0; c < C; ++c) d.segment(c * P, P) = Eigen::Map<const Eigen::RowVectorXd>(dk.data(), P);
      // ∂/∂d_p = Σ_c diag(Uᵀ G U)_(c,p); then chain through d(ρ).
      const MatD gu = G * ntk_u_;
      const Eigen::RowVectorXd diag = (ntk_u_.array() * gu.array()).colwise().sum();
      MatD dd = MatD::Zero(o_.kernels, k2);
      for (int c = 0; c < C; ++c) dd += Eigen::Map<const MatD>(diag.data() + c * P, o_.kernels, k2);
      grho_ += dd.cwiseProduct(kernel_deriv_sq_grad());
    }
    // ū = 2 G U diag(d): B × (C·P); then ∂L/∂v_ic = G_i ū_ic (the front-end applied with kernel ū_ic).
    const MatD ubar = 2.0 * (G * ntk_u_) * d.asDiagonal();
    const MatD& cols = conv_->columns();
    MatD ybar(B * C, static_cast<Eigen::Index>(M_) * HW);
    for (Eigen::Index i = 0; i < B; ++i) {
      Eigen::Map<const MatD> ui(ubar.row(i).data(), static_cast<Eigen::Index>(C) * o_.kernels, k2);
      for (int c = 0; c < C; ++c) {
        const MatD yc = expand_kernels(ui.middleRows(static_cast<Eigen::Index>(c) * o_.kernels, o_.kernels)) *
                        cols.middleCols(i * HW, HW);  // M × HW
        ybar.row(i * C + c) = Eigen::Map<const Eigen::RowVectorXd>(yc.data(), yc.size());
      }
    }
    MatD dv = pool_sign(ybar);  // (B·C) × D: ∂/∂(σ⁻¹ ⊙ v), so ∂/∂v = dv ⊙ σ⁻¹
    dv.array().rowwise() *= inv_sd_.row(0).array();
    for (Eigen::Index i = 0; i < B; ++i) {
      const MatD dvi = dv.middleRows(i * C, C);  // C × D
      // v_ic = W1ᵀ diag(m_i) W2[c,:]ᵀ
      gw1_.noalias() += M.row(i).asDiagonal() * (w2_.transpose() * dvi);
      gw2_.noalias() += (dvi * w1_.transpose()) * M.row(i).asDiagonal();
    }
  }
  // First-order path of the activations H and A back to the parameters.
  const MatD dz = dH.cwiseProduct(M);
  gw1_.noalias() += dz.transpose() * a_;
  gb1_ += dz.colwise().sum();
  if (ntk_measured_) return;  // measured features: nothing upstream of A to differentiate
  dA += dz * w1_;
  // A depends on the kernels, so ∂Θ_backend/∂A reaches the optical parameters whatever the set.
  dA.array().rowwise() *= inv_sd_.row(0).array();
  const MatD dy = pool_sign_t(dA);
  conv_->grad_weight().setZero();
  conv_->backward_params(dy);
  grho_ += kernel_grad_to_raw(reduce_kernel_grad(conv_->grad_weight()));
}

}  // namespace hilo::distill
