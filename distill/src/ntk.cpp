#include "hilo/distill/ntk.hpp"
#include "hilo/io/options_json.hpp"

#include <cmath>
#include <stdexcept>

namespace hilo::distill {

template <typename T>
MatD ntk_exact(Sequential<T>& net, const Mat<T>& x) {
  const Mat<T> out = net.forward(x, false);
  const Eigen::Index B = x.rows(), C = out.cols();
  MatD theta = MatD::Zero(B, B);
  // One class at a time with the input gradient alone: stacking m classes into one pass (the layers
  // accept it, layers.hpp) measured slower, 183 against 155 ms per call for the default teacher at B = 32
  // (one warm process, the two interleaved), its larger temporaries falling out of cache.
  for (Eigen::Index c = 0; c < C; ++c) {
    Mat<T> g = Mat<T>::Zero(B, C);
    g.col(c).setOnes();
    for (std::size_t l = net.size(); l-- > 0;) {
      net.layer(l).ntk_accumulate(g, theta);
      if (l > 0) g = net.layer(l).backward_input(g);
    }
  }
  net.zero_grad();
  return theta;
}

template <typename T>
MatD ntk_naive(Sequential<T>& net, const Mat<T>& x) {
  const Eigen::Index B = x.rows(), C = net.out_shape().size();
  const Eigen::Index P = static_cast<Eigen::Index>(net.num_params());
  Mat<T> J(B * C, P);  // the full Jacobian, materialised on purpose
  for (Eigen::Index i = 0; i < B; ++i) {
    net.forward(x.row(i), false);  // evaluation mode: sample i alone gives its own outputs
    for (Eigen::Index c = 0; c < C; ++c) {
      net.zero_grad();
      Mat<T> g = Mat<T>::Zero(1, C);
      g(0, c) = T(1);
      net.backward(g);
      Eigen::Index off = 0;
      for (auto& p : net.params()) {
        J.row(i * C + c).segment(off, p.grad->size()) = Eigen::Map<const Vec<T>>(p.grad->data(), p.grad->size()).transpose();
        off += p.grad->size();
      }
    }
  }
  net.zero_grad();
  MatD theta = MatD::Zero(B, B);
  for (Eigen::Index c = 0; c < C; ++c) {
    Mat<T> Jc(B, P);
    for (Eigen::Index i = 0; i < B; ++i) Jc.row(i) = J.row(i * C + c);
    theta.noalias() += (Jc * Jc.transpose()).template cast<double>();
  }
  return theta;
}

template <typename T>
MatD ntk_probe(Sequential<T>& net, const Mat<T>& x, int probes, std::mt19937_64& rng, double eps) {
  if (probes < 1) throw std::invalid_argument("ntk_probe: probes must be >= 1");
  Sequential<double> d = sequential_from_arch<double>(net.arch());
  copy_weights(d, net);
  const MatD xd = x.template cast<double>();
  auto ps = d.params();
  std::vector<MatD> base;
  double norm2 = 0;
  std::size_t P = 0;
  for (auto& p : ps) {
    base.push_back(*p.value);
    norm2 += p.value->squaredNorm();
    P += static_cast<std::size_t>(p.value->size());
  }
  const double h = eps * std::max(1e-3, std::sqrt(norm2 / static_cast<double>(P)));
  std::normal_distribution<double> n(0.0, 1.0);
  MatD theta = MatD::Zero(x.rows(), x.rows());
  for (int r = 0; r < probes; ++r) {
    std::vector<MatD> v;
    for (auto& b : base) v.push_back(MatD::NullaryExpr(b.rows(), b.cols(), [&] { return n(rng); }));
    for (std::size_t k = 0; k < ps.size(); ++k) *ps[k].value = base[k] + h * v[k];
    const MatD fp = d.forward(xd, false);
    for (std::size_t k = 0; k < ps.size(); ++k) *ps[k].value = base[k] - h * v[k];
    const MatD fm = d.forward(xd, false);
    const MatD jv = (fp - fm) / (2 * h);
    theta.noalias() += jv * jv.transpose();
  }
  return theta / probes;
}

std::string KernelDistance::validate() const {
  if (kind != "mse" && kind != "trace_mse" && kind != "alignment" && kind != "cka")
    return "ntkd.distance must be \"mse\", \"trace_mse\", \"alignment\" or \"cka\", got \"" + kind + "\"";
  return {};
}

namespace {
// H K H with H = I − 11ᵀ/B: K minus its row means, its column means, plus its grand mean.
MatD centred(const MatD& k) {
  const Eigen::RowVectorXd col = k.colwise().mean();
  const Eigen::VectorXd row = k.rowwise().mean();
  MatD c = k;
  c.rowwise() -= col;
  c.colwise() -= row;
  c.array() += k.mean();
  return c;
}

// 1 − cos(t, s) in the Frobenius inner product, and its gradient w.r.t. s.
double alignment_value(const MatD& t, const MatD& s) { return 1.0 - t.cwiseProduct(s).sum() / (t.norm() * s.norm()); }
MatD alignment_grad(const MatD& t, const MatD& s) {
  const double nt = t.norm(), ns = s.norm(), ip = t.cwiseProduct(s).sum();
  return -t / (nt * ns) + (ip / (nt * ns * ns * ns)) * s;
}
}  // namespace

double KernelDistance::value(const MatD& t, const MatD& s) const {
  io::require_valid(validate());
  const double B = static_cast<double>(t.rows());
  if (kind == "mse") return (s - t).squaredNorm() / (B * B);
  if (kind == "trace_mse") {
    const double ts = s.trace() / B, tt = t.trace() / B;
    return (s / ts - t / tt).squaredNorm() / (B * B);
  }
  if (kind == "cka") return alignment_value(centred(t), centred(s));
  return alignment_value(t, s);
}

MatD KernelDistance::grad(const MatD& t, const MatD& s) const {
  io::require_valid(validate());
  const double B = static_cast<double>(t.rows());
  if (kind == "mse") return 2.0 * (s - t) / (B * B);
  if (kind == "trace_mse") {
    const double ts = s.trace() / B, tt = t.trace() / B;
    const MatD R = 2.0 * (s / ts - t / tt) / (B * B);  // ∂d/∂(Θ_S/τ_S)
    MatD g = R / ts;
    g.diagonal().array() -= R.cwiseProduct(s).sum() / (ts * ts * B);
    return g;
  }
  if (kind == "cka") return centred(alignment_grad(centred(t), centred(s)));
  return alignment_grad(t, s);
}

template MatD ntk_exact<float>(Sequential<float>&, const Mat<float>&);
template MatD ntk_exact<double>(Sequential<double>&, const Mat<double>&);
template MatD ntk_naive<float>(Sequential<float>&, const Mat<float>&);
template MatD ntk_naive<double>(Sequential<double>&, const Mat<double>&);
template MatD ntk_probe<float>(Sequential<float>&, const Mat<float>&, int, std::mt19937_64&, double);
template MatD ntk_probe<double>(Sequential<double>&, const Mat<double>&, int, std::mt19937_64&, double);

}  // namespace hilo::distill
