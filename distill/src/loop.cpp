#include "hilo/distill/loop.hpp"

#include <chrono>
#include <numeric>
#include <stdexcept>

namespace hilo::distill {

template <typename T>
void TaskLoss<T>::add_output_terms(const Batch<T>& b, StepTerms<T>& t) {
  Mat<T> dl;
  const double ce = softmax_cross_entropy(b.logits, b.labels, &dl);
  dl *= static_cast<T>(w_);
  t.add_dlogits(dl);
  t.loss += w_ * ce;
}

LoopOptions loop_options(const TrainOptions& o, std::string job) {
  LoopOptions l;
  l.job = std::move(job);
  l.epochs = o.epochs;
  l.batch_size = o.batch_size;
  l.optimizer = o.optimizer;
  l.schedule = o.schedule;
  return l;
}

template <typename T>
History train_loop(TrainModel<T>& model, const Losses<T>& losses, const std::vector<int>& labels, const LoopOptions& o,
                   std::mt19937_64& rng, const std::function<double()>& validate, const JobControl& ctl) {
  if (o.epochs < 0) throw std::invalid_argument(o.job + ": epochs must be >= 0, got " + std::to_string(o.epochs));
  if (o.batch_size < 1) throw std::invalid_argument(o.job + ": batch size must be >= 1, got " + std::to_string(o.batch_size));
  if (losses.empty()) throw std::invalid_argument(o.job + ": the objective has no loss");
  std::vector<Param<T>> params = model.params();
  for (const auto& l : losses)
    for (auto& p : l->params()) params.push_back(p);
  Optimizer<T> opt(params, o.optimizer, o.lr_scale);
  const std::size_t N = labels.size(), B = static_cast<std::size_t>(o.batch_size);
  const std::size_t steps = o.partial_batch ? (N + B - 1) / B : N / B;
  std::vector<int> order(N);
  std::iota(order.begin(), order.end(), 0);
  History h;
  std::size_t t = 0;
  for (int ep = 1; ep <= o.epochs; ++ep) {
    const auto t0 = std::chrono::steady_clock::now();
    std::shuffle(order.begin(), order.end(), rng);
    double loss_sum = 0, acc_sum = 0;
    for (std::size_t s = 0; s < steps; ++s, ++t) {
      if (ctl.cancelled()) {
        h.cancelled = true;
        return h;
      }
      const auto rows = std::span<const int>(order).subspan(s * B, std::min(B, N - s * B));
      std::vector<int> y(rows.size());
      for (std::size_t i = 0; i < rows.size(); ++i) y[i] = labels[static_cast<std::size_t>(rows[i])];
      opt.set_lr(scheduled_lr(o.schedule, o.optimizer.lr, t, steps * static_cast<std::size_t>(o.epochs)));
      opt.zero_grad();
      const Mat<T> logits = model.forward(rows, rng);
      const Batch<T> b{rows, y, logits, t, rng};
      StepTerms<T> terms;
      for (const auto& l : losses) l->add_output_terms(b, terms);
      model.backward(terms);
      for (const auto& l : losses) l->add_parameter_terms(b, terms);
      opt.step();
      loss_sum += terms.loss;
      acc_sum += accuracy(logits, y);
      if (s % static_cast<std::size_t>(ctl.progress_every) == 0 || s + 1 == steps)
        ctl.step({o.job, ep, o.epochs, s + 1, steps, loss_sum / static_cast<double>(s + 1)});
    }
    nlohmann::json extra = nlohmann::json::object();
    for (const auto& l : losses) l->close_epoch(extra);
    close_epoch(h, ctl, ep, loss_sum, acc_sum, steps, t0, validate ? validate() : 0.0, opt.lr(), std::move(extra));
  }
  return h;
}

template class TaskLoss<float>;
template class TaskLoss<double>;
template History train_loop<float>(TrainModel<float>&, const Losses<float>&, const std::vector<int>&, const LoopOptions&,
                                   std::mt19937_64&, const std::function<double()>&, const JobControl&);
template History train_loop<double>(TrainModel<double>&, const Losses<double>&, const std::vector<int>&,
                                    const LoopOptions&, std::mt19937_64&, const std::function<double()>&,
                                    const JobControl&);

}  // namespace hilo::distill
