// Physics-aware fine-tuning: bench forward, model backward (physics_aware.hpp).
#include "hilo/calibration/physics_aware.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "hilo/calibration/hil.hpp"
#include "hilo/distill/optim.hpp"
#include "hilo/sim/imaging.hpp"

namespace hilo::calibration {

using distill::MatD;

namespace {
// The rules both step options follow, named under `key` (physics_aware, twin_train).
std::string step_rule(const std::string& key, int epochs, int batch, double phase_lr, double backend_lr) {
  if (epochs < 1 || epochs > 100) return key + ".epochs must be in [1, 100], got " + std::to_string(epochs);
  if (batch < 1 || batch > 4096) return key + ".batch must be in [1, 4096], got " + std::to_string(batch);
  if (!(phase_lr > 0)) return key + ".phase_lr must be > 0, got " + std::to_string(phase_lr);
  if (!(backend_lr >= 0)) return key + ".backend_lr must be >= 0, got " + std::to_string(backend_lr);
  return {};
}
}  // namespace

std::string PhysicsAwareOptions::validate() const { return step_rule("physics_aware", epochs, batch, phase_lr, backend_lr); }

std::string TwinTrainOptions::validate() const { return step_rule("twin_train", epochs, batch, phase_lr, backend_lr); }

namespace {
void check_phase(const ElementModel& m, const RArray& phase) {
  if (phase.rows() != m.pupil_amplitude.rows() || phase.cols() != m.pupil_amplitude.cols())
    throw std::invalid_argument("physics_aware: the phase is " + std::to_string(phase.rows()) + " x " +
                                std::to_string(phase.cols()) + ", the pupil " + std::to_string(m.pupil_amplitude.rows()) +
                                " x " + std::to_string(m.pupil_amplitude.cols()));
  if (m.aberration.size() != 0 && (m.aberration.rows() != phase.rows() || m.aberration.cols() != phase.cols()))
    throw std::invalid_argument("physics_aware: the aberration's shape differs from the pupil's");
}
RArray aberrated(const ElementModel& m, const RArray& phase) {
  return m.aberration.size() == 0 ? phase : RArray(phase + m.aberration);
}
// (row, col) of the top-left corner of kernel j's window on a PSF of rows × cols (cut_kernels' rule).
std::pair<Eigen::Index, Eigen::Index> window(const TileLayout& l, int j, Eigen::Index rows, Eigen::Index cols) {
  const int k = l.kernel_size;
  return {rows / 2 + l.offset[j].x() - k / 2, cols / 2 + l.offset[j].y() - k / 2};
}
}  // namespace

MatD ElementModel::kernels(const RArray& phase) const {
  check_phase(*this, phase);
  return kernels_from_tiles(cut_kernels(sim::psf_from_phase(aberrated(*this, phase), pupil_amplitude, pad), layout), kernel_scale);
}

RArray ElementModel::phase_grad(const RArray& phase, const MatD& dk) const {
  check_phase(*this, phase);
  const int K = layout.count(), k = layout.kernel_size;
  if (dk.rows() != K || dk.cols() != k * k)
    throw std::invalid_argument("physics_aware: dL/dkernels must be " + std::to_string(K) + " x " + std::to_string(k * k));
  const Eigen::Index R = pad * phase.rows(), C = pad * phase.cols();
  // The adjoint of kernels(): each dκ_j as a tile (rot180), scaled, into its window (cut_kernels' rule;
  // compose_psf would place it too but refuses the negative values a gradient has).
  const std::vector<RArray> dtiles = tiles_from_kernels(dk, k);
  RArray dpsf = RArray::Zero(R, C);
  for (int j = 0; j < K; ++j) {
    const auto [r0, c0] = window(layout, j, R, C);
    dpsf.block(r0, c0, k, k) += kernel_scale * dtiles[std::size_t(j)];
  }
  return sim::psf_from_phase_vjp(aberrated(*this, phase), pupil_amplitude, dpsf, pad);
}

PhysicsAwareResult physics_aware(const distill::OpticalStudent& start, const RArray& phase0, const ElementModel& model,
                                 const distill::Mat<float>& x, const std::vector<int>& y, const PhysicsAwareOptions& o,
                                 const BenchForward& bench, std::mt19937_64& rng, const io::WorkControl& work) {
  if (auto e = o.validate(); !e.empty()) throw std::invalid_argument(e);
  if (x.rows() == 0 || std::size_t(x.rows()) != y.size())
    throw std::invalid_argument("physics_aware: " + std::to_string(x.rows()) + " images and " + std::to_string(y.size()) +
                                " labels (at least one of each, as many labels as images)");
  if (model.layout.count() != start.options().kernels || model.layout.kernel_size != start.options().kernel_size)
    throw std::invalid_argument("physics_aware: the element model's layout does not hold the student's kernels");
  check_phase(model, phase0);
  PhysicsAwareResult r{phase0, distill::OpticalStudent::from_model(start.to_model({}))};
  distill::OpticalStudent& s = r.student;
  MatD phase = phase0.matrix(), gphase = MatD::Zero(phase.rows(), phase.cols());
  distill::OptimizerOptions po;
  po.lr = o.phase_lr;
  distill::Optimizer<double> opt_phase({{"element.phase", &phase, &gphase}}, po);
  std::optional<distill::Optimizer<double>> opt_backend;
  if (o.backend_lr > 0) {
    distill::OptimizerOptions bo;
    bo.lr = o.backend_lr;
    opt_backend.emplace(s.params(distill::ParamSet::backend), bo);
  }
  const Eigen::Index n = x.rows();
  std::vector<Eigen::Index> order(std::size_t(n), 0);
  int step = 0;
  const std::int64_t total = std::int64_t(o.epochs) * n;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    std::iota(order.begin(), order.end(), Eigen::Index(0));
    std::shuffle(order.begin(), order.end(), rng);
    for (Eigen::Index b0 = 0; b0 < n; b0 += o.batch) {
      if (work.stop_requested()) {
        r.stopped = true;
        break;
      }
      const Eigen::Index nb = std::min<Eigen::Index>(o.batch, n - b0);
      distill::Mat<float> xb(nb, x.cols());
      std::vector<int> yb(std::size_t(nb), 0);
      for (Eigen::Index i = 0; i < nb; ++i) {
        xb.row(i) = x.row(order[std::size_t(b0 + i)]);
        yb[std::size_t(i)] = y[std::size_t(order[std::size_t(b0 + i)])];
      }
      // Forward on the bench.
      const RArray phi = phase.array();
      auto measured = bench(phi, xb);
      if (!measured) throw std::runtime_error("physics-aware step " + std::to_string(step) + ": " + measured.error().message);
      r.images_measured += nb;
      if (measured.value().rows() != nb || measured.value().cols() != s.feature_dim())
        throw std::runtime_error("physics-aware step " + std::to_string(step) + ": the bench returned " +
                                 std::to_string(measured.value().rows()) + " x " + std::to_string(measured.value().cols()) +
                                 " features for " + std::to_string(nb) + " images of " + std::to_string(s.feature_dim()));
      // Backward through the model.
      s.set_kernels(model.kernels(phi));
      s.zero_grad();
      const MatD logits = s.backend_forward(measured.value());
      MatD dl;
      const double loss = distill::softmax_cross_entropy(logits, yb, &dl);
      s.backend_backward(dl);
      const MatD da = s.feature_grad(dl);
      gphase = model.phase_grad(phi, s.kernel_grad_at(xb.cast<double>(), da)).matrix();
      opt_phase.step();
      if (opt_backend) opt_backend->step();
      r.history.push_back({{"step", step}, {"epoch", epoch}, {"loss", loss}, {"accuracy", distill::accuracy(logits, yb)}});
      ++step;
      work.report(std::int64_t(epoch) * n + b0 + nb, total, "physics-aware");
    }
    if (r.stopped) break;
  }
  r.phase = phase.array();
  s.set_kernels(model.kernels(r.phase));
  return r;
}

PhysicsAwareResult twin_train(const distill::OpticalStudent& start, const RArray& phase0, const ElementModel& model,
                              const distill::Mat<float>& x, const std::vector<int>& y, const TwinTrainOptions& o,
                              std::mt19937_64& rng, const io::WorkControl& work) {
  if (auto e = o.validate(); !e.empty()) throw std::invalid_argument(e);
  distill::OpticalStudent m = distill::OpticalStudent::from_model(start.to_model({}));
  const BenchForward through_model = [&](const RArray& phase, const distill::Mat<float>& xb) {
    m.set_kernels(model.kernels(phase));
    return drivers::DeviceResult<MatD>(m.features(xb.cast<double>()));
  };
  auto r = physics_aware(start, phase0, model, x, y, {true, o.epochs, o.batch, o.phase_lr, o.backend_lr}, through_model,
                         rng, work);
  r.images_measured = 0;
  return r;
}

}  // namespace hilo::calibration
