#include "hilo/distill/loop.hpp"

#include <chrono>
#include <numeric>
#include <stdexcept>

#include "hilo/io/options_json.hpp"

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
  l.early_stop = o.early_stop;
  return l;
}

template <typename T>
History train_loop(TrainModel<T>& model, const Losses<T>& losses, const std::vector<int>& labels, const LoopOptions& o,
                   std::mt19937_64& rng, const std::function<double()>& validate, const JobControl& ctl) {
  if (o.epochs < 0) throw std::invalid_argument(o.job + ": epochs must be >= 0, got " + std::to_string(o.epochs));
  if (o.batch_size < 1) throw std::invalid_argument(o.job + ": batch size must be >= 1, got " + std::to_string(o.batch_size));
  if (losses.empty()) throw std::invalid_argument(o.job + ": the objective has no loss");
  io::require_valid(o.early_stop.validate());
  const bool stop_rule = o.early_stop.enabled();
  if (stop_rule && !validate)
    throw std::invalid_argument(o.job + ": train.early_stop.patience > 0 needs a validation split (it stops on "
                                "validation accuracy), and there is none");
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
  // The convergence rule's bookkeeping: the best validation accuracy, its epoch and a copy of the state.
  double best = 0, rate = o.optimizer.lr;  // rate: the base rate, dropped by the plateau schedule
  int since_best = 0, drops_left = o.schedule == "plateau" ? o.early_stop.drops : 0;
  std::vector<Mat<T>> best_state;
  const std::vector<Mat<T>*> state = stop_rule ? model.state() : std::vector<Mat<T>*>{};
  for (int ep = 1; ep <= o.epochs; ++ep) {
    auto t0 = std::chrono::steady_clock::now();
    std::shuffle(order.begin(), order.end(), rng);
    double loss_sum = 0, acc_sum = 0;
    for (std::size_t s = 0; s < steps; ++s, ++t) {
      if (ctl.cancelled()) {
        h.cancelled = true;
        if (stop_rule) {
          h.stop_reason = "cancelled";
          h.stopped_epoch = ep - 1;
        }
        return h;
      }
      const auto rows = std::span<const int>(order).subspan(s * B, std::min(B, N - s * B));
      std::vector<int> y(rows.size());
      for (std::size_t i = 0; i < rows.size(); ++i) y[i] = labels[static_cast<std::size_t>(rows[i])];
      opt.set_lr(scheduled_lr(o.schedule, rate, t, steps * static_cast<std::size_t>(o.epochs)));
      opt.zero_grad();
      const Mat<T> logits = model.forward(rows, rng);
      const Batch<T> b{rows, y, logits, t, rng};
      StepTerms<T> terms;
      for (const auto& l : losses) l->add_output_terms(b, terms);
      model.backward(terms);
      for (const auto& l : losses) l->add_parameter_terms(b, terms);
      opt.step();
      loss_sum += terms.loss;
      acc_sum += model.batch_accuracy(logits, b);
      if (s % static_cast<std::size_t>(ctl.progress_every) == 0 || s + 1 == steps)
        ctl.step({o.job, ep, o.epochs, s + 1, steps, loss_sum / static_cast<double>(s + 1)});
    }
    nlohmann::json extra = nlohmann::json::object();
    for (const auto& l : losses) l->close_epoch(extra);
    const double val = validate ? validate() : 0.0;
    if (o.epoch_extra) {  // report-only work, left out of the epoch's seconds
      const auto e0 = std::chrono::steady_clock::now();
      o.epoch_extra(extra);
      t0 += std::chrono::steady_clock::now() - e0;
    }
    close_epoch(h, ctl, ep, loss_sum, acc_sum, steps, t0, val, opt.lr(), std::move(extra));
    if (!stop_rule) continue;
    if (h.best_epoch == 0 || val > best + o.early_stop.min_delta) {
      best = val;
      h.best_epoch = ep;
      since_best = 0;
      best_state.clear();
      for (const Mat<T>* m : state) best_state.push_back(*m);
    } else if (++since_best >= o.early_stop.patience) {
      if (drops_left == 0) {
        h.stop_reason = "patience";
        break;
      }
      --drops_left;
      rate *= o.early_stop.factor;
      since_best = 0;
    }
  }
  if (stop_rule) {
    if (h.stop_reason.empty()) h.stop_reason = "cap";
    h.stopped_epoch = static_cast<int>(h.epochs.size());
    for (std::size_t i = 0; i < state.size() && !best_state.empty(); ++i) *state[i] = best_state[i];
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
