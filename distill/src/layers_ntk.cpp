// The layers' part of the exact NTK (ntk.hpp, ntk_exact): per-sample parameter gradients and their Gram
// products for a cotangent that stacks m copies of the forward's batch (one per output class), so that
// one pass through the network serves m classes (layers.hpp: backward_input, ntk_accumulate).
#include <string>

#include "hilo/distill/layers.hpp"

namespace hilo::distill {
namespace {
// Θ += Σ_s g_s g_sᵀ over the stacks g_s = rows [s·B, (s+1)·B) of g (R × P, R = m·B).
template <typename T>
void add_stacked_gram(const Mat<T>& g, Eigen::Index B, MatD& theta) {
  for (Eigen::Index s = 0; s < g.rows(); s += B) {
    const auto gs = g.middleRows(s, B);
    theta.noalias() += (gs * gs.transpose()).template cast<double>();
  }
}
}  // namespace

template <typename T>
Mat<T> Conv2d<T>::per_sample_grads(const Mat<T>& dy) {
  const Shape o = out_shape();
  const int R = static_cast<int>(dy.rows()), HW = o.h * o.w, P = static_cast<int>(w_.size());
  Mat<T> g(R, P + cout_);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < R; ++r) {
    Eigen::Map<const Mat<T>> db(dy.row(r).data(), cout_, HW);
    Mat<T> gw = db * cols_.middleCols(static_cast<Eigen::Index>(r % batch_) * HW, HW).transpose();
    g.row(r).head(P) = Eigen::Map<const Vec<T>>(gw.data(), P).transpose();
    g.row(r).tail(cout_) = db.rowwise().sum().transpose();
  }
  return g;
}

template <typename T>
void Conv2d<T>::ntk_accumulate(const Mat<T>& dy, MatD& theta) {
  add_stacked_gram(per_sample_grads(dy), batch_, theta);
}

template <typename T>
Mat<T> NonnegConv2d<T>::per_sample_grads(const Mat<T>& dy) {
  const Eigen::Index P = rho_.size();
  Mat<T> g = conv_.per_sample_grads(dy).leftCols(P);  // the weight part; the conv's bias is not a parameter
  const Mat<T> deriv = slope();
  g.array().rowwise() *= Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>(deriv.data(), P);
  return g;
}

template <typename T>
void NonnegConv2d<T>::ntk_accumulate(const Mat<T>& dy, MatD& theta) {
  add_stacked_gram(per_sample_grads(dy), batch_, theta);
}

template <typename T>
void Linear<T>::ntk_accumulate(const Mat<T>& dy, MatD& theta) {
  // Θ_l = Σ_s (d_s d_sᵀ) ⊙ (x xᵀ + 1): exact, without per-sample gradients.
  const Eigen::Index B = x_.rows();
  const MatD a = x_.template cast<double>();
  MatD dd = MatD::Zero(B, B);
  for (Eigen::Index s = 0; s < dy.rows(); s += B) {
    const MatD d = dy.middleRows(s, B).template cast<double>();
    dd.noalias() += d * d.transpose();
  }
  theta.array() += dd.array() * (a * a.transpose()).array() + dd.array();
}

template <typename T>
Mat<T> Linear<T>::per_sample_grads(const Mat<T>& dy) {
  const int R = static_cast<int>(dy.rows()), B = static_cast<int>(x_.rows());
  Mat<T> g(R, out_ * in_ + out_);
  for (int r = 0; r < R; ++r) {
    for (int o = 0; o < out_; ++o) g.row(r).segment(o * in_, in_) = dy(r, o) * x_.row(r % B);
    g.row(r).tail(out_) = dy.row(r);
  }
  return g;
}

template <typename T>
Mat<T> BatchNorm<T>::per_sample_grads(const Mat<T>& dy) {
  const int R = static_cast<int>(dy.rows()), B = static_cast<int>(xhat_.rows()), HW = s_.h * s_.w;
  Mat<T> g(R, 2 * s_.c);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < s_.c; ++c) {
      g(r, c) = dy.row(r).segment(c * HW, HW).dot(xhat_.row(r % B).segment(c * HW, HW));
      g(r, s_.c + c) = dy.row(r).segment(c * HW, HW).sum();
    }
  return g;
}

template <typename T>
void BatchNorm<T>::ntk_accumulate(const Mat<T>& dy, MatD& theta) {
  add_stacked_gram(per_sample_grads(dy), xhat_.rows(), theta);
}

#define HILO_INST(T)                                                     \
  template Mat<T> Conv2d<T>::per_sample_grads(const Mat<T>&);            \
  template void Conv2d<T>::ntk_accumulate(const Mat<T>&, MatD&);         \
  template void Linear<T>::ntk_accumulate(const Mat<T>&, MatD&);         \
  template Mat<T> NonnegConv2d<T>::per_sample_grads(const Mat<T>&);      \
  template void NonnegConv2d<T>::ntk_accumulate(const Mat<T>&, MatD&);   \
  template Mat<T> Linear<T>::per_sample_grads(const Mat<T>&);            \
  template Mat<T> BatchNorm<T>::per_sample_grads(const Mat<T>&);         \
  template void BatchNorm<T>::ntk_accumulate(const Mat<T>&, MatD&);
HILO_INST(float)
HILO_INST(double)
#undef HILO_INST

}  // namespace hilo::distill
