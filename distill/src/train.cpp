#include "hilo/distill/train.hpp"
#include "hilo/distill/loop.hpp"
#include "hilo/io/options_json.hpp"

#include <Eigen/Core>
#include <cassert>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

namespace hilo::distill {

std::string TeacherArch::validate() const {
  if (channels.empty()) return "teacher.channels must name at least one conv block";
  for (int c : channels)
    if (c < 1) return "teacher.channels entries must be >= 1";
  if (hidden < 1) return "teacher.hidden must be >= 1";
  return {};
}

Sequential<float> make_teacher(const TeacherArch& a, Shape in, int classes) {
  io::require_valid(a.validate());
  if (in.h % (1 << a.channels.size()) != 0 || in.w % (1 << a.channels.size()) != 0)
    throw std::invalid_argument("teacher.channels: each block halves the image; " + std::to_string(a.channels.size()) +
                                " blocks do not divide " + std::to_string(in.h) + "x" + std::to_string(in.w));
  Sequential<float> net(in);
  for (int c : a.channels) net.conv(c, 3, 1).batchnorm().relu().maxpool(2);
  net.linear(a.hidden).batchnorm().relu().linear(classes);
  return net;
}

std::string EarlyStop::validate() const {
  if (patience < 0) return "train.early_stop.patience must be >= 0 (0: off), got " + std::to_string(patience);
  if (!(min_delta >= 0 && min_delta < 1))
    return "train.early_stop.min_delta must be in [0, 1) (an accuracy fraction), got " + std::to_string(min_delta);
  if (drops < 0 || drops > 10) return "train.early_stop.drops must be in [0, 10], got " + std::to_string(drops);
  if (!(factor > 0 && factor < 1)) return "train.early_stop.factor must be in (0, 1), got " + std::to_string(factor);
  return {};
}

std::string TrainOptions::validate() const {
  if (epochs < 1) return "train.epochs must be >= 1, got " + std::to_string(epochs);
  if (batch_size < 2) return "train.batch_size must be >= 2 (batch norm), got " + std::to_string(batch_size);
  if (schedule != "cosine" && schedule != "constant" && schedule != "plateau")
    return "train.schedule must be \"cosine\", \"constant\" or \"plateau\", got \"" + schedule + "\"";
  if (schedule == "plateau" && !early_stop.enabled())
    return "train.schedule \"plateau\" drops the rate when validation stops improving, so it needs "
           "train.early_stop.patience > 0";
  if (threads < 1) return "train.threads must be >= 1";
  if (auto e = optimizer.validate(); !e.empty()) return e;
  if (auto e = early_stop.validate(); !e.empty()) return e;
  if (auto e = augment.validate(); !e.empty()) return e;
  return {};
}

std::string InputAugment::validate() const {
  if (shift_px < 0 || shift_px > 8) return "train.augment.shift_px must be in [0, 8], got " + std::to_string(shift_px);
  return {};
}

template <typename T>
void augment_inputs(Mat<T>& x, Shape shape, const InputAugment& a, std::mt19937_64& rng) {
  assert(x.cols() == shape.size() && "rows must be images of the given shape");
  if (!a.enabled()) return;
  std::uniform_int_distribution<int> shift(-a.shift_px, a.shift_px);
  std::bernoulli_distribution flip(0.5);
  std::vector<T> img(static_cast<std::size_t>(shape.size()));
  const int H = shape.h, W = shape.w;
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const int dx = a.shift_px ? shift(rng) : 0, dy = a.shift_px ? shift(rng) : 0;
    const bool mirror = a.hflip && flip(rng);
    for (int i = 0; i < shape.size(); ++i) img[static_cast<std::size_t>(i)] = x(r, i);
    for (int c = 0; c < shape.c; ++c)
      for (int y = 0; y < H; ++y)
        for (int u = 0; u < W; ++u) {
          const int sy = y - dy, su0 = u - dx, su = mirror ? W - 1 - su0 : su0;
          const bool in = sy >= 0 && sy < H && su0 >= 0 && su0 < W;
          x(r, (c * H + y) * W + u) = in ? img[static_cast<std::size_t>((c * H + sy) * W + su)] : T(0);
        }
  }
}
template void augment_inputs<float>(Mat<float>&, Shape, const InputAugment&, std::mt19937_64&);
template void augment_inputs<double>(Mat<double>&, Shape, const InputAugment&, std::mt19937_64&);

double scheduled_lr(const std::string& schedule, double lr, std::size_t t, std::size_t total) {
  if (schedule == "constant" || schedule == "plateau" || total == 0) return lr;
  return lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(t) / static_cast<double>(total)));
}

void close_epoch(History& h, const JobControl& ctl, int epoch, double loss_sum, double acc_sum, std::size_t steps,
                 std::chrono::steady_clock::time_point start, double val_acc, double lr, nlohmann::json extra) {
  EpochRecord r;
  r.epoch = epoch;
  r.loss = loss_sum / static_cast<double>(steps);
  r.train_acc = acc_sum / static_cast<double>(steps);
  r.val_acc = val_acc;
  r.lr = lr;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.extra = std::move(extra);
  h.best_val_acc = std::max(h.best_val_acc, r.val_acc);
  h.epochs.push_back(r);
  if (ctl.on_epoch) ctl.on_epoch(h.epochs.back());
}

nlohmann::json History::to_json() const {
  nlohmann::json e = nlohmann::json::array();
  for (const auto& r : epochs)
    e.push_back({{"epoch", r.epoch}, {"loss", r.loss}, {"train_acc", r.train_acc}, {"val_acc", r.val_acc},
                 {"lr", r.lr}, {"seconds", r.seconds}, {"extra", r.extra}});
  nlohmann::json j = {{"epochs", e}, {"best_val_acc", best_val_acc}, {"cancelled", cancelled}};
  j["test_acc"] = std::isnan(test_acc) ? nlohmann::json(nullptr) : nlohmann::json(test_acc);
  if (!stop_reason.empty())
    j["stop"] = {{"reason", stop_reason}, {"stopped_epoch", stopped_epoch}, {"best_epoch", best_epoch}};
  if (!summary.empty()) j["summary"] = summary;
  return j;
}

template <typename T>
Mat<T> predict(Sequential<T>& net, const Mat<T>& x, int batch) {
  Mat<T> out(x.rows(), net.out_shape().size());
  for (Eigen::Index i = 0; i < x.rows(); i += batch) {
    const Eigen::Index n = std::min<Eigen::Index>(batch, x.rows() - i);
    out.middleRows(i, n) = net.forward(x.middleRows(i, n), false);
  }
  return out;
}
template Mat<float> predict<float>(Sequential<float>&, const Mat<float>&, int);
template Mat<double> predict<double>(Sequential<double>&, const Mat<double>&, int);

namespace {
// The teacher as a loop's model: rows of the training split through the network in training mode.
class ClassifierModel final : public TrainModel<float> {
 public:
  ClassifierModel(Sequential<float>& net, const Dataset& train, const InputAugment& augment)
      : net_(net), train_(train), augment_(augment) {}
  std::vector<Param<float>> params() override { return net_.params(); }
  Mat<float> forward(std::span<const int> rows, std::mt19937_64& rng) override {
    Mat<float> x = take(train_, rows).x;
    augment_inputs(x, train_.shape, augment_, rng);
    return net_.forward(x, true);
  }
  void backward(const StepTerms<float>& t) override { net_.backward(t.dlogits); }
  std::vector<Mat<float>*> state() override { return net_.state(); }

 private:
  Sequential<float>& net_;
  const Dataset& train_;
  InputAugment augment_;
};
}  // namespace

History train_classifier(Sequential<float>& net, const Splits& data, const TrainOptions& o, const JobControl& ctl) {
  io::require_valid(o.validate());
  std::mt19937_64 rng(o.seed);
  init_he(net, rng);
  ClassifierModel model(net, data.train, o.augment);
  Losses<float> losses;
  losses.push_back(std::make_unique<TaskLoss<float>>());
  LoopOptions lo = loop_options(o, "train-teacher");
  if (o.log_test_acc && data.test.size())
    lo.epoch_extra = [&](nlohmann::json& extra) { extra["test_acc"] = accuracy(predict(net, data.test.x), data.test.y); };
  std::function<double()> validate;
  if (data.val.size()) validate = [&] { return accuracy(predict(net, data.val.x), data.val.y); };
  History h = train_loop<float>(model, losses, data.train.y, lo, rng, validate, ctl);
  if (!h.cancelled && data.test.size()) h.test_acc = accuracy(predict(net, data.test.x), data.test.y);
  return h;
}

}  // namespace hilo::distill
