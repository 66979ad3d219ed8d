#include "hilo/calibration/compensation.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>
#include <memory>
#include <stdexcept>

#include "hilo/distill/loop.hpp"
#include "hilo/distill/losses.hpp"

namespace hilo::calibration {

using distill::MatD;

std::string to_string(CompensationMode m) {
  switch (m) {
    case CompensationMode::none: return "none";
    case CompensationMode::task: return "task";
    case CompensationMode::ntkd: return "ntkd";
  }
  return "?";
}

CompensationMode parse_compensation_mode(const std::string& name) {
  if (name == "none") return CompensationMode::none;
  if (name == "task") return CompensationMode::task;
  if (name == "ntkd") return CompensationMode::ntkd;
  throw std::invalid_argument("compensation.mode must be \"none\", \"task\" or \"ntkd\", got \"" + name + "\"");
}

std::string CompensationOptions::validate() const {
  if (epochs < 0) return "compensation.epochs must be >= 0, got " + std::to_string(epochs);
  if (!(lr > 0) || !std::isfinite(lr)) return "compensation.lr must be finite and > 0, got " + std::to_string(lr);
  if (batch < 1) return "compensation.batch must be >= 1, got " + std::to_string(batch);
  if (refit_norm != "feature" && refit_norm != "map")
    return "compensation.refit_norm must be \"feature\" or \"map\", got \"" + refit_norm + "\"";
  if (!(refit_norm_prior >= 0) || !std::isfinite(refit_norm_prior))
    return "compensation.refit_norm_prior must be finite and >= 0, got " + std::to_string(refit_norm_prior);
  if (!(anchor >= 0) || !std::isfinite(anchor))
    return "compensation.anchor must be finite and >= 0, got " + std::to_string(anchor);
  if (!(w1_lr_scale >= 0 && w1_lr_scale <= 1))
    return "compensation.w1_lr_scale must be in [0, 1], got " + std::to_string(w1_lr_scale);
  if (mode == CompensationMode::ntkd) {
    if (ntk_subbatch < 2 || ntk_subbatch > 1024)
      return "compensation.ntk_subbatch must be in [2, 1024], got " + std::to_string(ntk_subbatch);
    if (!(alpha >= 0) || !std::isfinite(alpha)) return "compensation.alpha must be finite and >= 0";
    if (!(beta >= 0) || !std::isfinite(beta)) return "compensation.beta must be finite and >= 0";
    if (distance.kind != "alignment" && distance.kind != "trace_mse" && distance.kind != "cka")
      return "compensation.distance must be \"alignment\", \"cka\" or \"trace_mse\" (plain \"mse\" diverges), got \"" +
             distance.kind + "\"";
  }
  return {};
}

namespace {

// The student's backend as a loop's model: rows of the measured features through the backend.
class BackendModel final : public distill::TrainModel<double> {
 public:
  BackendModel(distill::OpticalStudent& s, const MatD& a) : s_(s), a_(a) {}
  std::vector<distill::Param<double>> params() override { return s_.params(distill::ParamSet::backend); }
  MatD forward(std::span<const int> rows, std::mt19937_64&) override {
    return s_.backend_forward(distill::take_rows(a_, rows));
  }
  void backward(const distill::StepTerms<double>& t) override { s_.backend_backward(t.dlogits); }

 private:
  distill::OpticalStudent& s_;
  const MatD& a_;
};

// CE and accuracy of the backend on the whole set (chunked; no gradients kept).
void evaluate(distill::OpticalStudent& s, const MatD& a, const std::vector<int>& y, double& loss, double& acc) {
  const Eigen::Index n = a.rows(), chunk = 500;
  double l = 0, c = 0;
  for (Eigen::Index r = 0; r < n; r += chunk) {
    const Eigen::Index m = std::min(chunk, n - r);
    const MatD logits = s.backend_forward(a.middleRows(r, m));
    const std::vector<int> yy(y.begin() + r, y.begin() + r + m);
    l += distill::softmax_cross_entropy(logits, yy, static_cast<MatD*>(nullptr)) * static_cast<double>(m);
    c += distill::accuracy(logits, yy) * static_cast<double>(m);
  }
  loss = l / static_cast<double>(n);
  acc = c / static_cast<double>(n);
}

}  // namespace

void estimate_feature_norm(const distill::OpticalStudent& student, const MatD& a, const CompensationOptions& o,
                           MatD& offset, MatD& scale) {
  const Eigen::Index D = student.feature_dim(), maps = student.feature_maps(), per = D / maps;
  const double n = static_cast<double>(a.rows());
  const MatD mean = a.colwise().mean();
  const MatD sd = ((a.rowwise() - mean.row(0)).colwise().squaredNorm() / n).cwiseSqrt();
  const MatD& mu0 = student.feature_offset();
  const MatD sd0 = student.feature_scale().cwiseInverse();
  MatD mu_map(1, D), sd_map(1, D);
  for (Eigen::Index j = 0; j < maps; ++j) {
    const auto m = mean.row(0).segment(j * per, per).array();
    const auto s = sd.row(0).segment(j * per, per).array();
    const auto m0 = mu0.row(0).segment(j * per, per).array();
    const auto s0 = sd0.row(0).segment(j * per, per).array();
    const double mm = m.mean(), mm0 = m0.mean();
    const double v = (s.square() + (m - mm).square()).mean(), v0 = (s0.square() + (m0 - mm0).square()).mean();
    const double g = v0 > 0 ? std::sqrt(v / v0) : 1.0;
    mu_map.row(0).segment(j * per, per) = (g * m0 + (mm - g * mm0)).matrix();
    sd_map.row(0).segment(j * per, per) = (g * s0).matrix();
  }
  MatD sigma;
  if (o.refit_norm == "map") {
    offset = mu_map;
    sigma = sd_map;
  } else {
    const double w = o.refit_norm_prior / (n + o.refit_norm_prior);
    offset = (1 - w) * mean + w * mu_map;
    sigma = (1 - w) * sd + w * sd_map;
  }
  // The student's floor (fit_feature_norm): σ >= 1e-3 × the RMS of all σ; all-constant gives σ⁻¹ = 1.
  const double rms = std::sqrt(sigma.array().square().mean());
  if (!(rms > 0)) {
    scale = MatD::Ones(1, D);
    return;
  }
  scale = sigma.unaryExpr([floor = 1e-3 * rms](double v) { return 1.0 / std::max(v, floor); });
}

NtkGroups teacher_ntk_groups(distill::Sequential<float>& teacher, const distill::Mat<float>& clean, int group_size,
                             std::mt19937_64& rng, const io::WorkControl& work, bool* stopped) {
  if (group_size < 2) throw std::invalid_argument("teacher_ntk_groups: groups of at least 2 rows, got " + std::to_string(group_size));
  if (stopped) *stopped = false;
  NtkGroups out;
  std::vector<int> g(static_cast<std::size_t>(clean.rows()));
  std::iota(g.begin(), g.end(), 0);
  std::shuffle(g.begin(), g.end(), rng);
  const std::size_t b = static_cast<std::size_t>(std::min<Eigen::Index>(group_size, clean.rows()));
  for (std::size_t s0 = 0; s0 + 2 <= g.size(); s0 += b) {
    std::vector<int> grp(g.begin() + static_cast<std::ptrdiff_t>(s0),
                         g.begin() + static_cast<std::ptrdiff_t>(std::min(g.size(), s0 + b)));
    if (grp.size() < 2) break;
    if (work.stop_requested()) {
      if (stopped) *stopped = true;
      return out;
    }
    out.teacher.push_back(distill::ntk_exact(teacher, distill::take_rows(clean, grp)));
    out.rows.push_back(std::move(grp));
  }
  return out;
}

CompensationReport refit_backend(distill::OpticalStudent& student, const MatD& a, const std::vector<int>& y,
                                 distill::Sequential<float>* teacher, const distill::Mat<float>* clean,
                                 const CompensationOptions& o, std::mt19937_64& rng, const io::WorkControl& work,
                                 const NtkGroups* given) {
  if (const std::string e = o.validate(); !e.empty()) throw std::invalid_argument(e);
  const Eigen::Index n = a.rows();
  if (n == 0) throw std::invalid_argument("compensation: the measured set is empty");
  if (a.cols() != student.feature_dim())
    throw std::invalid_argument("compensation: measured features must have " + std::to_string(student.feature_dim()) +
                                " columns, got " + std::to_string(a.cols()));
  if (static_cast<Eigen::Index>(y.size()) != n)
    throw std::invalid_argument("compensation: " + std::to_string(y.size()) + " labels for " + std::to_string(n) +
                                " measured samples");
  if (!a.allFinite()) throw std::invalid_argument("compensation: measured features must be finite");
  for (int l : y)
    if (l < 0 || l >= student.classes())
      throw std::invalid_argument("compensation: labels must be in [0, " + std::to_string(student.classes()) + ")");
  const bool ntkd = o.mode == CompensationMode::ntkd;
  if (ntkd) {
    if (!teacher || !clean) throw std::invalid_argument("compensation: ntkd needs the teacher and the clean images");
    if (clean->rows() != n)
      throw std::invalid_argument("compensation: " + std::to_string(clean->rows()) + " clean images for " +
                                  std::to_string(n) + " measured samples");
    if (given) {
      if (given->rows.size() != given->teacher.size())
        throw std::invalid_argument("compensation: " + std::to_string(given->teacher.size()) + " teacher NTKs for " +
                                    std::to_string(given->rows.size()) + " NTK groups");
      for (std::size_t k = 0; k < given->rows.size(); ++k) {
        const auto& g = given->rows[k];
        const auto m = static_cast<Eigen::Index>(g.size());
        if (m < 2) throw std::invalid_argument("compensation: NTK group " + std::to_string(k) + " has fewer than 2 rows");
        if (given->teacher[k].rows() != m || given->teacher[k].cols() != m)
          throw std::invalid_argument("compensation: the teacher NTK of group " + std::to_string(k) + " is not " +
                                      std::to_string(m) + " x " + std::to_string(m));
        for (int r : g)
          if (r < 0 || r >= n)
            throw std::invalid_argument("compensation: NTK group " + std::to_string(k) + " names row " + std::to_string(r) +
                                        " of a set of " + std::to_string(n));
      }
    }
  }

  const MatD optical_before = student.raw_optical();
  CompensationReport rep;
  rep.mode = o.mode;
  evaluate(student, a, y, rep.initial_loss, rep.initial_accuracy);
  rep.normalized_accuracy = rep.initial_accuracy;
  if (o.mode != CompensationMode::none && o.refit_feature_norm && n >= 2) {
    if (o.refit_norm == "feature" && o.refit_norm_prior == 0.0) {
      student.fit_feature_norm(a);  // the student's own rule (its options' feature_norm)
    } else {
      MatD mu, inv_sd;
      estimate_feature_norm(student, a, o, mu, inv_sd);
      student.set_feature_norm(mu, inv_sd);
    }
    double l = 0;
    evaluate(student, a, y, l, rep.normalized_accuracy);
  }

  if (o.mode != CompensationMode::none) {
    // The objective: α·CE (α = 1 for task), + β·d(Θ_T, Θ_S) on NTK groups (ntkd), + the anchor.
    distill::Losses<double> losses;
    losses.push_back(std::make_unique<distill::TaskLoss<double>>(ntkd ? o.alpha : 1.0));
    // NTK groups: the measured set split once (seeded) into groups of ntk_subbatch samples, the teacher's
    // Θ_T of each computed once (or given); step t uses group t mod G. Θ_T depends only on the clean
    // images, so this is exact, and it removes the teacher's C backward passes from every step.
    NtkGroups own;
    if (ntkd && !given) {
      own = teacher_ntk_groups(*teacher, *clean, o.ntk_subbatch, rng, work, &rep.stopped);
      if (rep.stopped) return rep;
    }
    const NtkGroups& ng = given ? *given : own;
    const auto& groups = ng.rows;
    const auto& theta_t = ng.teacher;
    if (ntkd) {
      losses.push_back(std::make_unique<distill::NtkLoss>(
          student, o.distance, o.beta, [&](const distill::Batch<double>& b, MatD& tt, MatD& ts) {
            if (groups.empty()) return false;
            const std::size_t gi = b.step % groups.size();
            ts = student.ntk_at_features(distill::take_rows(a, groups[gi]));
            tt = theta_t[gi];
            return true;
          }));
    }
    if (o.anchor > 0)
      losses.push_back(std::make_unique<distill::AnchorLoss>(student.params(distill::ParamSet::backend), o.anchor));
    // Adam at a constant rate over the backend; W1 at lr · w1_lr_scale (0: frozen).
    distill::LoopOptions lo;
    lo.job = "compensation";
    lo.epochs = o.epochs;
    lo.batch_size = o.batch;
    lo.partial_batch = true;
    lo.optimizer.kind = "adam";
    lo.optimizer.lr = o.lr;
    lo.schedule = "constant";
    BackendModel model(student, a);
    lo.lr_scale.assign(model.params().size(), 1.0);
    assert(model.params()[0].name == "backend.w1" && "the backend's parameters start with W1");
    lo.lr_scale[0] = o.w1_lr_scale;
    distill::JobControl ctl;
    ctl.work.stop = work.stop;
    const distill::History h = distill::train_loop<double>(model, losses, y, lo, rng, [&] {
      double l = 0, acc = 0;
      evaluate(student, a, y, l, acc);
      return acc;
    }, ctl);
    rep.stopped = h.cancelled;
    for (const auto& r : h.epochs)
      rep.epochs.push_back({r.epoch, r.loss, r.extra.value("ntk_distance", 0.0), r.val_acc});
    student.zero_grad();
  }
  // Only backend parameters are handed to the optimiser; confirm the element was not touched.
  const MatD& optical_after = student.raw_optical();
  rep.optical_unchanged = optical_after.rows() == optical_before.rows() && optical_after.cols() == optical_before.cols() &&
                          std::equal(optical_before.data(), optical_before.data() + optical_before.size(),
                                     optical_after.data());
  return rep;
}

}  // namespace hilo::calibration
