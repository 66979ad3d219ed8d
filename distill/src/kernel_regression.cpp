#include "hilo/distill/kernel_regression.hpp"
#include "hilo/io/options_json.hpp"

#include <Eigen/Eigenvalues>
#include <cmath>
#include <stdexcept>

namespace hilo::distill {

MatD relu_ntk(const MatD& A, const MatD& B) {
  if (A.cols() != B.cols()) throw std::invalid_argument("relu_ntk: feature dimensions differ");
  const double D = static_cast<double>(A.cols());
  const MatD s0 = ((A * B.transpose()) / D).array() + 1.0;
  const Eigen::VectorXd na = (A.rowwise().squaredNorm() / D).array() + 1.0;
  const Eigen::VectorXd nb = (B.rowwise().squaredNorm() / D).array() + 1.0;
  MatD K(A.rows(), B.rows());
  for (Eigen::Index i = 0; i < A.rows(); ++i)
    for (Eigen::Index j = 0; j < B.rows(); ++j) {
      const double nn = std::sqrt(na(i) * nb(j));
      const double c = std::clamp(s0(i, j) / nn, -1.0, 1.0);
      const double th = std::acos(c);
      const double s1 = nn * (std::sin(th) + (M_PI - th) * c) / M_PI;
      K(i, j) = s1 + s0(i, j) * (M_PI - th) / M_PI;
    }
  return K;
}

std::string KernelRegressionOptions::validate() const {
  if (ratios.empty()) return "kernel_regression.ratios must not be empty";
  for (double r : ratios)
    if (!(r > 0)) return "kernel_regression.ratios must all be > 0";
  return {};
}

namespace {
double acc_of(const MatD& pred, const std::vector<int>& y) {
  int ok = 0;
  for (Eigen::Index i = 0; i < pred.rows(); ++i) {
    Eigen::Index j;
    pred.row(i).maxCoeff(&j);
    ok += static_cast<int>(j) == y[static_cast<std::size_t>(i)];
  }
  return pred.rows() ? static_cast<double>(ok) / static_cast<double>(pred.rows()) : 0.0;
}
}  // namespace

KernelRegressionResult ntk_regression(const MatD& tra, const std::vector<int>& try_, const MatD& va,
                                      const std::vector<int>& vy, const MatD& tea, const std::vector<int>& tey,
                                      int classes, const KernelRegressionOptions& o) {
  io::require_valid(o.validate());
  const MatD K = relu_ntk(tra, tra);
  MatD Y = MatD::Constant(tra.rows(), classes, -1.0 / classes);
  for (Eigen::Index i = 0; i < tra.rows(); ++i) Y(i, try_[static_cast<std::size_t>(i)]) += 1.0;
  Eigen::SelfAdjointEigenSolver<MatD> es(K);
  const MatD& Q = es.eigenvectors();
  const MatD QtY = Q.transpose() * Y;
  const double scale = K.diagonal().mean();
  const MatD Kv = relu_ntk(va, tra), Kt = relu_ntk(tea, tra);
  KernelRegressionResult r;
  double best = -1;
  MatD best_alpha;
  for (double ratio : o.ratios) {
    const Eigen::VectorXd inv = (es.eigenvalues().array().max(0.0) + ratio * scale).inverse();
    const MatD alpha = Q * inv.asDiagonal() * QtY;
    const double a = acc_of(Kv * alpha, vy);
    r.val_acc_per_ratio.push_back(a);
    if (a > best) {
      best = a;
      r.ratio = ratio;
      best_alpha = alpha;
    }
  }
  r.val_acc = best;
  r.test_acc = acc_of(Kt * best_alpha, tey);
  return r;
}

KernelRegressionResult estimate_front_end(OpticalStudent& s, const Splits& d, int n_train,
                                          const KernelRegressionOptions& o) {
  const Dataset tr = head(d.train, static_cast<std::size_t>(n_train));
  auto feats = [&](const Dataset& ds) {
    MatD a(static_cast<Eigen::Index>(ds.size()), s.feature_dim());
    for (Eigen::Index i = 0; i < a.rows(); i += 500) {
      const Eigen::Index n = std::min<Eigen::Index>(500, a.rows() - i);
      a.middleRows(i, n) = s.features(ds.x.middleRows(i, n).cast<double>());
    }
    return a;
  };
  return ntk_regression(feats(tr), tr.y, feats(d.val), d.val.y, feats(d.test), d.test.y, d.train.num_classes, o);
}

}  // namespace hilo::distill
