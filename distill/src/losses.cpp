#include "hilo/distill/losses.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace hilo::distill {

namespace {
// α·T²·KL(p_t^T‖p_s^T) (mean over the batch); adds its gradient α·T·(p_s − p_t)/B to ds.
double kd_term(const MatD& s, const MatD& t, double T, double alpha, MatD& ds) {
  const MatD ps = softmax(s, T), pt = softmax(t, T);
  const double B = static_cast<double>(s.rows());
  double kl = 0;
  for (Eigen::Index i = 0; i < s.size(); ++i) {
    const double p = pt.data()[i];
    if (p > 0) kl += p * (std::log(p) - std::log(std::max(ps.data()[i], 1e-300)));
  }
  ds += alpha * T * (ps - pt) / B;  // ∂(T²·KL)/∂s = T·(p_s − p_t)
  return alpha * T * T * kl / B;
}
}  // namespace

template <typename T>
void BasicKdLoss<T>::add_output_terms(const Batch<T>& b, StepTerms<T>& t) {
  const MatD tl = take_rows(t_, b.rows);
  MatD s, dl;
  if constexpr (std::is_same_v<T, double>) s = b.logits;
  else s = b.logits.template cast<double>();
  double loss = softmax_cross_entropy(s, b.labels, &dl);
  dl *= (1.0 - alpha_);
  loss = (1.0 - alpha_) * loss + kd_term(s, tl, T_, alpha_, dl);
  dl *= w_;
  if constexpr (std::is_same_v<T, double>) t.add_dlogits(dl);
  else t.add_dlogits(dl.cast<T>());
  t.loss += w_ * loss;
}

void GdLoss::add_output_terms(const Batch<double>& b, StepTerms<double>& t) {
  const MatD tl = take_rows(t_, b.rows);
  MatD dl;
  double loss = softmax_cross_entropy(b.logits, b.labels, &dl);
  const MatD pt = softmax(tl, T_), ps = softmax(b.logits);
  double soft = 0;
  for (Eigen::Index i = 0; i < ps.size(); ++i) soft -= pt.data()[i] * std::log(std::max(ps.data()[i], 1e-300));
  const double B = static_cast<double>(b.rows.size());
  dl = (1.0 - lambda_) * dl + lambda_ * (ps - pt) / B;
  loss = (1.0 - lambda_) * loss + lambda_ * soft / B;
  dl *= w_;
  t.add_dlogits(dl);
  t.loss += w_ * loss;
}

SharedClassifierLoss::SharedClassifierLoss(const OpticalStudent& student, const MatD& teacher_features, MatD head_w,
                                           MatD head_b, double w, double mu, std::mt19937_64& rng, bool adapt_head,
                                           double keep_weight)
    : s_(student),
      tf_(teacher_features),
      head_w_(std::move(head_w)),
      head_b_(std::move(head_b)),
      w_(w),
      mu_(mu),
      adapt_(adapt_head),
      keep_(keep_weight) {
  const Eigen::Index F = head_w_.cols();
  std::normal_distribution<double> n(0.0, std::sqrt(1.0 / student.options().hidden));
  pw_ = MatD::NullaryExpr(F, student.options().hidden, [&] { return n(rng); });
  pb_ = MatD::Zero(1, F);
  gpw_ = MatD::Zero(pw_.rows(), pw_.cols());
  gpb_ = MatD::Zero(1, F);
  ghw_ = MatD::Zero(head_w_.rows(), head_w_.cols());
  ghb_ = MatD::Zero(1, head_b_.cols());
}

std::vector<Param<double>> SharedClassifierLoss::params() {
  std::vector<Param<double>> p{{"projector.w", &pw_, &gpw_}, {"projector.b", &pb_, &gpb_}};
  if (adapt_) {
    p.push_back({"shared_head.w", &head_w_, &ghw_});
    p.push_back({"shared_head.b", &head_b_, &ghb_});
  }
  return p;
}

MatD SharedClassifierLoss::student_logits(const MatD& h) const {
  MatD phi = h * pw_.transpose();
  phi.rowwise() += pb_.row(0);
  return teacher_logits(phi);
}

MatD SharedClassifierLoss::teacher_logits(const MatD& f) const {
  MatD l = f * head_w_.transpose();
  l.rowwise() += head_b_.row(0);
  return l;
}

std::pair<MatD, MatD> SharedClassifierLoss::folded() const {
  MatD b = pb_ * head_w_.transpose() + head_b_;
  return {head_w_ * pw_, std::move(b)};
}

void SharedClassifierLoss::add_output_terms(const Batch<double>& b, StepTerms<double>& t) {
  const MatD tf = take_rows(tf_, b.rows);
  const MatD& hs = s_.hidden();
  MatD phi = hs * pw_.transpose();
  phi.rowwise() += pb_.row(0);
  MatD lsc = phi * head_w_.transpose();
  lsc.rowwise() += head_b_.row(0);
  MatD dlsc;
  const double ce = softmax_cross_entropy(lsc, b.labels, &dlsc);
  const double B = static_cast<double>(b.rows.size()), F = static_cast<double>(phi.cols());
  const MatD diff = phi - tf;
  t.loss += w_ * ce + mu_ * diff.squaredNorm() / (B * F);
  const MatD dphi = w_ * dlsc * head_w_ + (2.0 * mu_ / (B * F)) * diff;
  if (adapt_) {
    // ∂/∂W and ∂/∂b of w·CE(φ Wᵀ + b) and of the keep term κ·CE(φ_T Wᵀ + b), before W moves.
    MatD dlt;
    const double keep_ce = softmax_cross_entropy(teacher_logits(tf), b.labels, &dlt);
    t.loss += keep_ * keep_ce;
    ghw_.noalias() += w_ * dlsc.transpose() * phi + keep_ * dlt.transpose() * tf;
    ghb_ += w_ * dlsc.colwise().sum() + keep_ * dlt.colwise().sum();
    keep_ce_.add(keep_ce);
  }
  gpw_.noalias() += dphi.transpose() * hs;
  gpb_ += dphi.colwise().sum();
  const MatD dh = dphi * pw_;
  if (t.dhidden.size() == 0) t.dhidden = dh;
  else t.dhidden += dh;
}

void SharedClassifierLoss::close_epoch(nlohmann::json& extra) {
  keep_ce_.close(extra, "teacher_keep_ce");
}

template <typename T>
void BasicNtkLoss<T>::add_parameter_terms(const Batch<T>& b, StepTerms<T>& t) {
  MatD theta_t, theta_s;
  if (!kernels_(b, theta_t, theta_s)) return;
  const double dist = d_.value(theta_t, theta_s);
  s_.ntk_backward(w_ * d_.grad(theta_t, theta_s));
  t.loss += w_ * dist;
  distance_.add(dist);
}

template <typename T>
void BasicNtkLoss<T>::close_epoch(nlohmann::json& extra) {
  distance_.close(extra, "ntk_distance");
}

template class BasicKdLoss<double>;
template class BasicKdLoss<float>;
template class BasicNtkLoss<double>;
template class BasicNtkLoss<float>;

AnchorLoss::AnchorLoss(std::vector<Param<double>> params, double weight) : p_(std::move(params)), w_(weight) {
  for (const auto& p : p_) theta0_.push_back(*p.value);
}

void AnchorLoss::add_parameter_terms(const Batch<double>&, StepTerms<double>& t) {
  for (std::size_t i = 0; i < p_.size(); ++i) {
    const MatD diff = *p_[i].value - theta0_[i];
    *p_[i].grad += w_ * diff;
    t.loss += 0.5 * w_ * diff.squaredNorm();
  }
}

}  // namespace hilo::distill
