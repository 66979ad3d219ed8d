#include "hilo/distill/kernel_regression.hpp"
#include "hilo/distill/student_jobs.hpp"
#include "hilo/io/options_json.hpp"

#include <Eigen/Eigenvalues>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace hilo::distill {

MatD relu_ntk(const MatD& A, const MatD& B, int depth) {
  if (A.cols() != B.cols()) throw std::invalid_argument("relu_ntk: feature dimensions differ");
  if (depth < 1) throw std::invalid_argument("relu_ntk: depth must be >= 1, got " + std::to_string(depth));
  const double D = static_cast<double>(A.cols());
  const MatD s1 = ((A * B.transpose()) / D).array() + 1.0;
  const Eigen::VectorXd na = (A.rowwise().squaredNorm() / D).array() + 1.0;
  const Eigen::VectorXd nb = (B.rowwise().squaredNorm() / D).array() + 1.0;
  MatD K(A.rows(), B.rows());
  for (Eigen::Index j = 0; j < B.rows(); ++j)
    for (Eigen::Index i = 0; i < A.rows(); ++i) {
      double sigma = s1(i, j), theta = sigma;
      for (int h = 1; h <= depth; ++h) {
        const double nn = std::sqrt((na(i) + (h - 1)) * (nb(j) + (h - 1)));
        const double c = std::clamp(sigma / nn, -1.0, 1.0);
        const double th = std::acos(c);
        const double e = nn * (std::sin(th) + (M_PI - th) * c) / M_PI;
        const double edot = (M_PI - th) / M_PI;
        if (h < depth) {
          sigma = e + 1.0;
          theta = sigma + theta * edot;
        } else {
          theta = e + theta * edot;
        }
      }
      K(i, j) = theta;
    }
  return K;
}

std::string KernelRegressionOptions::validate() const {
  if (ratios.empty()) return "kernel_regression.ratios must not be empty";
  for (double r : ratios)
    if (!(r > 0) || !std::isfinite(r)) return "kernel_regression.ratios must all be > 0";
  for (std::size_t i = 1; i < ratios.size(); ++i)
    if (!(ratios[i] > ratios[i - 1])) return "kernel_regression.ratios must be strictly increasing";
  if (depth < 1 || depth > 10) return "kernel_regression.depth must be in [1, 10], got " + std::to_string(depth);
  return {};
}

nlohmann::json KernelRegressionResult::to_json() const {
  return {{"ratio", ratio},
          {"lambda", lambda},
          {"trace_per_sample", trace_per_sample},
          {"val_acc", val_acc},
          {"test_acc", test_acc},
          {"val_acc_per_ratio", val_acc_per_ratio},
          {"val_mse_per_ratio", val_mse_per_ratio},
          {"warning", warning}};
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

MatD targets(const std::vector<int>& y, int classes) {
  MatD Y = MatD::Constant(static_cast<Eigen::Index>(y.size()), classes, -1.0 / classes);
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (y[i] < 0 || y[i] >= classes)
      throw std::invalid_argument("ntk_regression: label " + std::to_string(y[i]) + " outside [0, " +
                                  std::to_string(classes) + ")");
    Y(static_cast<Eigen::Index>(i), y[i]) += 1.0;
  }
  return Y;
}

// At the largest ratio, or at the smallest when its neighbour is strictly worse (the largest of tied
// ratios is chosen, so a chosen smallest ratio means the accuracy still rose toward the edge).
std::string edge_warning(const std::vector<double>& ratios, std::size_t chosen) {
  if (ratios.size() < 2 || (chosen != 0 && chosen + 1 != ratios.size())) return {};
  char buf[160];
  std::snprintf(buf, sizeof buf, "chosen ratio %g is the %s of the grid; the optimum may lie beyond it", ratios[chosen],
                chosen == 0 ? "smallest" : "largest");
  return buf;
}

// (a − μ) ⊙ σ⁻¹ with the student's fixed standardisation.
MatD standardised(const OpticalStudent& s, const MatD& a) {
  return ((a.rowwise() - s.feature_offset().row(0)).array().rowwise() * s.feature_scale().row(0).array()).matrix();
}
}  // namespace

KernelRegressionResult ntk_regression(const MatD& tra, const std::vector<int>& try_, const MatD& va,
                                      const std::vector<int>& vy, const MatD& tea, const std::vector<int>& tey,
                                      int classes, const KernelRegressionOptions& o) {
  io::require_valid(o.validate());
  if (static_cast<std::size_t>(tra.rows()) != try_.size() || static_cast<std::size_t>(va.rows()) != vy.size() ||
      static_cast<std::size_t>(tea.rows()) != tey.size())
    throw std::invalid_argument("ntk_regression: each feature matrix needs one label per row");
  if (tra.rows() < 1 || va.rows() < 1) throw std::invalid_argument("ntk_regression: empty training or validation set");
  if (!tra.allFinite() || !va.allFinite() || !tea.allFinite())
    throw std::invalid_argument("ntk_regression: features must be finite");
  const MatD K = relu_ntk(tra, tra, o.depth);
  const MatD Y = targets(try_, classes), Yv = targets(vy, classes);
  Eigen::SelfAdjointEigenSolver<MatD> es(K);
  const MatD& Q = es.eigenvectors();
  const MatD QtY = Q.transpose() * Y;
  KernelRegressionResult r;
  r.trace_per_sample = K.diagonal().mean();
  const MatD Kv = relu_ntk(va, tra, o.depth);
  const double nv = static_cast<double>(va.rows());
  std::size_t best = 0;
  MatD best_alpha;
  for (std::size_t k = 0; k < o.ratios.size(); ++k) {
    const Eigen::VectorXd inv = (es.eigenvalues().array().max(0.0) + o.ratios[k] * r.trace_per_sample).inverse();
    const MatD alpha = Q * inv.asDiagonal() * QtY;
    const MatD pred = Kv * alpha;
    r.val_acc_per_ratio.push_back(acc_of(pred, vy));
    r.val_mse_per_ratio.push_back((pred - Yv).squaredNorm() / nv);
    if (k == 0 || r.val_acc_per_ratio[k] >= r.val_acc_per_ratio[best]) {
      best = k;
      best_alpha = alpha;
    }
  }
  r.ratio = o.ratios[best];
  r.lambda = r.ratio * r.trace_per_sample;
  r.val_acc = r.val_acc_per_ratio[best];
  r.warning = edge_warning(o.ratios, best);
  r.test_acc = tea.rows() ? acc_of(relu_ntk(tea, tra, o.depth) * best_alpha, tey) : 0.0;
  return r;
}

KernelRegressionResult estimate_front_end(OpticalStudent& s, const Splits& d, int n_train,
                                          const KernelRegressionOptions& o) {
  const Dataset tr = head(d.train, static_cast<std::size_t>(n_train));
  auto feats = [&](const Dataset& ds) { return standardised(s, student_features(s, ds.x)); };
  return ntk_regression(feats(tr), tr.y, feats(d.val), d.val.y, feats(d.test), d.test.y, d.train.num_classes, o);
}

KernelRegressionResult estimate_reference(const Splits& d, int n_train, const KernelRegressionOptions& o) {
  const Dataset tr = head(d.train, static_cast<std::size_t>(n_train));
  if (tr.size() < 2) throw std::invalid_argument("estimate_reference: needs at least 2 training images");
  const MatD x = tr.x.cast<double>();
  const MatD mu = x.colwise().mean();
  const double rms = std::sqrt((x.rowwise() - mu.row(0)).squaredNorm() / static_cast<double>(x.size()));
  const double inv = rms > 0 ? 1.0 / rms : 1.0;
  auto pix = [&](const Dataset& ds) { return ((ds.x.cast<double>().rowwise() - mu.row(0)) * inv).eval(); };
  return ntk_regression(pix(tr), tr.y, pix(d.val), d.val.y, pix(d.test), d.test.y, d.train.num_classes, o);
}

}  // namespace hilo::distill
