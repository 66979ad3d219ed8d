// The one training loop (loop.hpp) and the loss objects (losses.hpp).
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <stop_token>

#include "gradcheck.hpp"
#include "hilo/distill/loop.hpp"
#include "hilo/distill/losses.hpp"

using namespace hilo::distill;
using hilo::distill::testing::numeric_grad;
using hilo::distill::testing::rel_err;

using hilo::distill::testing::randn;

namespace {
Losses<double> task_only() {
  Losses<double> l;
  l.push_back(std::make_unique<TaskLoss<double>>());
  return l;
}

// Value and ∂/∂logits of one loss on a batch.
double output_terms(Loss<double>& l, const MatD& logits, std::span<const int> rows, const std::vector<int>& y,
                    std::mt19937_64& rng, MatD* dlogits = nullptr) {
  const Batch<double> b{rows, y, logits, 0, rng};
  StepTerms<double> t;
  l.add_output_terms(b, t);
  if (dlogits) *dlogits = t.dlogits;
  return t.loss;
}

// logits = X W + b on rows of a fixed design matrix; counts forwards and remembers batch sizes.
class LinearModel final : public TrainModel<double> {
 public:
  LinearModel(MatD x, int classes) : x_(std::move(x)), w_(MatD::Zero(x_.cols(), classes)), b_(MatD::Zero(1, classes)) {
    gw_ = w_;
    gb_ = b_;
  }
  std::vector<Param<double>> params() override { return {{"w", &w_, &gw_}, {"b", &b_, &gb_}}; }
  MatD forward(std::span<const int> rows, std::mt19937_64&) override {
    xb_ = take_rows(x_, rows);
    sizes.push_back(rows.size());
    seen.insert(seen.end(), rows.begin(), rows.end());
    MatD z = xb_ * w_;
    z.rowwise() += b_.row(0);
    return z;
  }
  void backward(const StepTerms<double>& t) override {
    gw_.noalias() += xb_.transpose() * t.dlogits;
    gb_ += t.dlogits.colwise().sum();
  }
  MatD x_, w_, b_, gw_, gb_, xb_;
  std::vector<std::size_t> sizes;
  std::vector<int> seen;
};

// Two Gaussian blobs, labels 0/1.
std::pair<MatD, std::vector<int>> blobs(int n, std::mt19937_64& rng) {
  MatD x = randn(n, 3, rng, 0.5);
  std::vector<int> y(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    y[static_cast<std::size_t>(i)] = i % 2;
    x(i, 0) += i % 2 ? 1.5 : -1.5;
  }
  return {x, y};
}

// Counts its steps and reports them per epoch.
class CountingLoss final : public Loss<double> {
 public:
  std::string name() const override { return "count"; }
  double weight() const override { return 0; }
  void add_parameter_terms(const Batch<double>&, StepTerms<double>&) override { ++n_; }
  void close_epoch(nlohmann::json& extra) override {
    extra["steps_seen"] = n_;
    n_ = 0;
  }

 private:
  int n_ = 0;
};
}  // namespace

TEST(Loss, TaskKdAndGdGradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(11);
  const MatD teacher_logits = randn(8, 4, rng, 2.0);
  MatD logits = randn(5, 4, rng, 1.5);
  const std::vector<int> rows{3, 0, 7, 5, 1}, y{2, 0, 3, 1, 1};
  TaskLoss<double> task(0.7);
  KdLoss kd(teacher_logits, 3.0, 0.3, 0.6);
  GdLoss gd(teacher_logits, 2.0, 0.4, 0.9);
  for (Loss<double>* l : std::initializer_list<Loss<double>*>{&task, &kd, &gd}) {
    MatD analytic;
    (void)output_terms(*l, logits, rows, y, rng, &analytic);
    const MatD numeric = numeric_grad(logits, [&] { return output_terms(*l, logits, rows, y, rng); });
    EXPECT_LT(rel_err(analytic, numeric), 1e-6) << l->name();
  }
  // The weight scales value and gradient: KD at weight 0.6 is 0.6 × KD at weight 1.
  KdLoss kd1(teacher_logits, 3.0, 0.3, 1.0);
  EXPECT_NEAR(output_terms(kd, logits, rows, y, rng), 0.6 * output_terms(kd1, logits, rows, y, rng), 1e-12);
  // KD with α = 0 is the task loss.
  KdLoss kd0(teacher_logits, 3.0, 0.0, 0.7);
  EXPECT_NEAR(output_terms(kd0, logits, rows, y, rng), output_terms(task, logits, rows, y, rng), 1e-12);
}

TEST(Loss, AnchorGradientMatchesFiniteDifferencesAndVanishesAtTheStart) {
  std::mt19937_64 rng(3);
  MatD w = randn(3, 2, rng), g = MatD::Zero(3, 2);
  AnchorLoss anchor({{"w", &w, &g}}, 0.5);
  const MatD logits = MatD::Zero(1, 2);
  const std::vector<int> rows{0}, y{0};
  const Batch<double> b{rows, y, logits, 0, rng};
  auto value = [&] {
    StepTerms<double> t;
    anchor.add_parameter_terms(b, t);
    return t.loss;
  };
  EXPECT_EQ(value(), 0.0);
  w += randn(3, 2, rng);
  g.setZero();
  (void)value();
  const MatD analytic = g;
  const MatD numeric = numeric_grad(w, value);
  EXPECT_LT(rel_err(analytic, numeric), 1e-7);
}

TEST(Loss, SharedClassifierProjectorGradientMatchesFiniteDifferences) {
  StudentOptions so;
  so.kernels = 2;
  so.kernel_size = 3;
  so.pool = 4;
  so.hidden = 6;
  OpticalStudent s(so, Shape{1, 8, 8}, 3);
  std::mt19937_64 rng(5);
  s.init(rng);
  const MatD x = randn(4, 64, rng).cwiseAbs();
  const MatD logits = s.forward(x, false);
  const MatD tf = randn(6, 5, rng);
  SharedClassifierLoss shared(s, tf, randn(3, 5, rng), randn(1, 3, rng), 0.8, 0.3, rng);
  const std::vector<int> rows{5, 1, 0, 3}, y{2, 0, 1, 1};
  auto p = shared.params();
  ASSERT_EQ(p.size(), 2u);
  auto value = [&] { return output_terms(shared, logits, rows, y, rng); };
  for (auto& q : p) {
    for (auto& r : p) r.grad->setZero();
    (void)value();
    const MatD analytic = *q.grad;
    const MatD numeric = numeric_grad(*q.value, value);
    EXPECT_LT(rel_err(analytic, numeric), 1e-6) << q.name;
  }
  StepTerms<double> t;
  shared.add_output_terms({rows, y, logits, 0, rng}, t);
  EXPECT_EQ(t.dhidden.rows(), 4);
  EXPECT_EQ(t.dhidden.cols(), 6);
  EXPECT_EQ(t.dlogits.size(), 0) << "the shared term acts on the hidden features only";
}

TEST(TrainLoop, BatchesCoverTheRowsOncePerEpochAndThePartialBatchIsOptional) {
  std::mt19937_64 rng(1);
  auto [x, y] = blobs(10, rng);
  const Losses<double> losses = task_only();
  LoopOptions o;
  o.epochs = 2;
  o.batch_size = 4;
  LinearModel dropped(x, 2);
  const History h = train_loop<double>(dropped, losses, y, o, rng, {}, {});
  EXPECT_EQ(dropped.sizes, (std::vector<std::size_t>{4, 4, 4, 4}));
  ASSERT_EQ(h.epochs.size(), 2u);
  o.partial_batch = true;
  LinearModel all(x, 2);
  (void)train_loop<double>(all, losses, y, o, rng, {}, {});
  EXPECT_EQ(all.sizes, (std::vector<std::size_t>{4, 4, 2, 4, 4, 2}));
  for (int ep = 0; ep < 2; ++ep) {
    const std::set<int> rows(all.seen.begin() + ep * 10, all.seen.begin() + ep * 10 + 10);
    EXPECT_EQ(rows.size(), 10u) << "epoch " << ep + 1 << " visits every row once";
  }
  EXPECT_NE(std::vector<int>(all.seen.begin(), all.seen.begin() + 10), std::vector<int>(all.seen.begin() + 10, all.seen.end()))
      << "each epoch reshuffles";
}

TEST(TrainLoop, LearnsReportsEachEpochAndRepeatsBitForBitFromTheSameSeed) {
  std::mt19937_64 data_rng(2);
  auto [x, y] = blobs(64, data_rng);
  auto run = [&](std::uint64_t seed, LinearModel& m, int* validations) {
    Losses<double> losses;
    losses.push_back(std::make_unique<TaskLoss<double>>());
    losses.push_back(std::make_unique<CountingLoss>());
    LoopOptions o;
    o.epochs = 5;
    o.batch_size = 16;
    o.optimizer.lr = 0.05;
    std::mt19937_64 rng(seed);
    return train_loop<double>(m, losses, y, o, rng, [&] {
      ++*validations;
      return accuracy(m.forward(std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}, rng), std::vector<int>(y.begin(), y.begin() + 8));
    }, {});
  };
  LinearModel a(x, 2), b(x, 2), c(x, 2);
  int va = 0, vb = 0, vc = 0;
  const History ha = run(7, a, &va), hb = run(7, b, &vb), hc = run(8, c, &vc);
  ASSERT_EQ(ha.epochs.size(), 5u);
  EXPECT_EQ(va, 5);
  EXPECT_LT(ha.epochs.back().loss, 0.5 * ha.epochs.front().loss);
  EXPECT_GT(ha.epochs.back().train_acc, 0.9);
  EXPECT_EQ(ha.best_val_acc, std::max_element(ha.epochs.begin(), ha.epochs.end(), [](auto& p, auto& q) {
                               return p.val_acc < q.val_acc;
                             })->val_acc);
  for (const auto& r : ha.epochs) EXPECT_EQ(r.extra.value("steps_seen", -1), 4) << "the loss's per-epoch statistic";
  for (std::size_t i = 0; i < ha.epochs.size(); ++i) EXPECT_EQ(ha.epochs[i].loss, hb.epochs[i].loss);
  EXPECT_TRUE(a.w_ == b.w_) << "same seed, same weights";
  EXPECT_FALSE(a.w_ == c.w_) << "another seed, another batch order";
}

TEST(TrainLoop, FrozenParameterStaysAndAStopEndsBeforeTheNextStep) {
  std::mt19937_64 rng(4);
  auto [x, y] = blobs(32, rng);
  const Losses<double> losses = task_only();
  LoopOptions o;
  o.epochs = 3;
  o.batch_size = 8;
  o.lr_scale = {0.0, 1.0};
  LinearModel m(x, 2);
  m.w_ = randn(3, 2, rng);
  const MatD w0 = m.w_, b0 = m.b_;
  std::stop_source stop;
  JobControl ctl;
  ctl.work.stop = stop.get_token();
  ctl.progress_every = 1;
  ctl.on_step = [&](const Progress& p) {
    if (p.epoch == 2 && p.step == 3) stop.request_stop();
  };
  const History h = train_loop<double>(m, losses, y, o, rng, {}, ctl);
  EXPECT_TRUE(h.cancelled);
  EXPECT_EQ(h.epochs.size(), 1u);
  EXPECT_EQ(m.sizes.size(), 7u) << "4 steps of epoch 1, 3 of epoch 2, none after the stop";
  EXPECT_TRUE(m.w_ == w0) << "lr_scale 0 freezes w";
  EXPECT_FALSE(m.b_ == b0);
}

TEST(TrainLoop, RefusesOptionsItCannotRun) {
  std::mt19937_64 rng(1);
  auto [x, y] = blobs(8, rng);
  LinearModel m(x, 2);
  const Losses<double> none, task = task_only();
  LoopOptions o;
  EXPECT_THROW((void)train_loop<double>(m, none, y, o, rng, {}, {}), std::invalid_argument);
  o.batch_size = 0;
  EXPECT_THROW((void)train_loop<double>(m, task, y, o, rng, {}, {}), std::invalid_argument);
  o.batch_size = 4;
  o.epochs = -1;
  EXPECT_THROW((void)train_loop<double>(m, task, y, o, rng, {}, {}), std::invalid_argument);
  o.epochs = 1;
  o.lr_scale = {1.0};
  EXPECT_THROW((void)train_loop<double>(m, task, y, o, rng, {}, {}), std::invalid_argument);
  o.lr_scale = {1.0, 1.5};
  EXPECT_THROW((void)train_loop<double>(m, task, y, o, rng, {}, {}), std::invalid_argument);
}

namespace {
// Trains a LinearModel on blobs for `epochs` with a scripted validation sequence; `after` holds w after
// every epoch (from on_epoch), so the kept weights can be compared with those of any epoch.
struct ScriptedRun {
  History h;
  MatD w;
  std::vector<MatD> after;
  std::vector<double> losses, lrs;
};
ScriptedRun scripted_run(const std::vector<double>& val, EarlyStop rule, const std::string& schedule = "cosine") {
  std::mt19937_64 data_rng(11);
  auto [x, y] = blobs(48, data_rng);
  LinearModel m(x, 2);
  const Losses<double> losses = task_only();
  LoopOptions o;
  o.epochs = static_cast<int>(val.size());
  o.batch_size = 8;
  o.optimizer.lr = 0.05;
  o.early_stop = rule;
  o.schedule = schedule;
  std::mt19937_64 rng(3);
  ScriptedRun r;
  std::size_t e = 0;
  JobControl ctl;
  ctl.on_epoch = [&](const EpochRecord& rec) {
    r.after.push_back(m.w_);
    r.losses.push_back(rec.loss);
    r.lrs.push_back(rec.lr);
  };
  r.h = train_loop<double>(m, losses, y, o, rng, [&] { return val[e++]; }, ctl);
  r.w = m.w_;
  return r;
}
}  // namespace

// The convergence rule on a scripted validation sequence: improvement means v > best + min_delta, the
// stop comes after `patience` epochs in a row without one, and the weights kept are the best epoch's.
TEST(TrainLoop, ConvergenceRuleStopsAfterPatienceEpochsWithoutImprovementAndKeepsTheBest) {
  const std::vector<double> val{0.50, 0.60, 0.60, 0.65, 0.64, 0.655, 0.90, 0.95};
  // min_delta 0.01: epochs 1, 2, 4 improve; 3 does not (equal), 5 and 6 do not (0.655 < 0.65 + 0.01).
  const ScriptedRun a = scripted_run(val, {.patience = 2, .min_delta = 0.01});
  EXPECT_EQ(a.h.epochs.size(), 6u) << "stopped after epoch 6, never ran 7 and 8";
  EXPECT_EQ(a.h.stop_reason, "patience");
  EXPECT_EQ(a.h.stopped_epoch, 6);
  EXPECT_EQ(a.h.best_epoch, 4);
  ASSERT_EQ(a.after.size(), 6u);
  EXPECT_TRUE(a.w == a.after[3]) << "the weights of epoch 4 are kept";
  EXPECT_FALSE(a.w == a.after[5]) << "not those of the last epoch";
  const nlohmann::json j = a.h.to_json();
  EXPECT_EQ(j.at("stop"), (nlohmann::json{{"reason", "patience"}, {"stopped_epoch", 6}, {"best_epoch", 4}}));
  // min_delta 0: 0.655 > 0.65 improves at epoch 6, then 7 and 8 improve: the cap ends it, last = best.
  const ScriptedRun b = scripted_run(val, {.patience = 2, .min_delta = 0.0});
  EXPECT_EQ(b.h.stop_reason, "cap");
  EXPECT_EQ(b.h.stopped_epoch, 8);
  EXPECT_EQ(b.h.best_epoch, 8);
  EXPECT_TRUE(b.w == b.after.back());
  // patience 1 stops at the first epoch without improvement (epoch 3, equal to epoch 2).
  const ScriptedRun c = scripted_run(val, {.patience = 1, .min_delta = 0.0});
  EXPECT_EQ(c.h.stopped_epoch, 3);
  EXPECT_EQ(c.h.best_epoch, 2);
  EXPECT_TRUE(c.w == c.after[1]);
}

// Off by default: every epoch runs, the last weights stay, the history has no "stop" entry, and the
// rule itself never perturbs training (an on-rule that never fires gives bit-identical losses and weights).
// The plateau schedule: the rate stays at lr until the rule would stop, then drops by `factor` and
// training goes on; the stop comes when patience runs out with no drop left, and the best epoch is kept.
TEST(TrainLoop, PlateauScheduleDropsTheRateWhereTheRuleWouldStopThenStops) {
  // patience 2, min_delta 0: epochs 1, 2 improve; 3, 4 do not → drop 1 (epoch 5 at lr·0.1); 5 improves;
  // 6, 7 do not → drop 2 (lr·0.01 from epoch 8); 8, 9 do not → no drop left: stop after epoch 9.
  const std::vector<double> val{0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.69, 0.7, 0.6, 0.99, 0.99};
  const ScriptedRun p = scripted_run(val, {.patience = 2, .min_delta = 0.0, .drops = 2, .factor = 0.1}, "plateau");
  ASSERT_EQ(p.lrs.size(), 9u);
  EXPECT_EQ(p.h.stop_reason, "patience");
  EXPECT_EQ(p.h.best_epoch, 5);
  EXPECT_TRUE(p.w == p.after[4]);
  for (int e = 0; e < 9; ++e) {
    const double want = e < 4 ? 0.05 : e < 7 ? 0.005 : 0.0005;
    EXPECT_NEAR(p.lrs[static_cast<std::size_t>(e)], want, 1e-15) << "epoch " << e + 1;
  }
  // drops 0: the rule as without the schedule, at a constant rate.
  const ScriptedRun q = scripted_run(val, {.patience = 2, .min_delta = 0.0, .drops = 0}, "plateau");
  EXPECT_EQ(q.h.stopped_epoch, 4);
  EXPECT_DOUBLE_EQ(q.lrs.back(), 0.05);
  TrainOptions t;
  t.schedule = "plateau";
  EXPECT_EQ(t.validate(), "train.schedule \"plateau\" drops the rate when validation stops improving, so it needs "
                          "train.early_stop.patience > 0");
  t.early_stop.patience = 3;
  EXPECT_EQ(t.validate(), "");
  t.early_stop.factor = 1.0;
  EXPECT_EQ(t.validate(), "train.early_stop.factor must be in (0, 1), got 1.000000");
  t.early_stop.factor = 0.1;
  t.early_stop.drops = 11;
  EXPECT_EQ(t.validate(), "train.early_stop.drops must be in [0, 10], got 11");
}

TEST(TrainLoop, ConvergenceRuleIsOffByDefaultAndDoesNotPerturbTraining) {
  EXPECT_FALSE(EarlyStop{}.enabled());
  EXPECT_FALSE(LoopOptions{}.early_stop.enabled());
  EXPECT_FALSE(TrainOptions{}.early_stop.enabled());
  const std::vector<double> falling{0.9, 0.8, 0.7, 0.6, 0.5};
  const ScriptedRun off = scripted_run(falling, {});
  EXPECT_EQ(off.h.epochs.size(), 5u);
  EXPECT_TRUE(off.h.stop_reason.empty());
  EXPECT_FALSE(off.h.to_json().contains("stop"));
  EXPECT_TRUE(off.w == off.after.back()) << "off: the last epoch's weights, not the best";
  const ScriptedRun on = scripted_run(falling, {.patience = 10, .min_delta = 0.0});
  EXPECT_EQ(on.h.stop_reason, "cap");
  EXPECT_EQ(on.losses, off.losses);
  EXPECT_TRUE(on.after.back() == off.after.back());
  EXPECT_TRUE(on.w == on.after.front()) << "on: the best (first) epoch's weights";
}

TEST(TrainLoop, ConvergenceRuleRefusesBadSettingsAndAMissingValidation) {
  EXPECT_EQ((EarlyStop{.patience = -1}).validate(), "train.early_stop.patience must be >= 0 (0: off), got -1");
  EXPECT_EQ((EarlyStop{.patience = 3, .min_delta = 1.5}).validate(),
            "train.early_stop.min_delta must be in [0, 1) (an accuracy fraction), got 1.500000");
  EXPECT_EQ((EarlyStop{.patience = 3, .min_delta = 0.001}).validate(), "");
  TrainOptions t;
  t.early_stop.min_delta = -0.1;
  EXPECT_NE(t.validate().find("train.early_stop.min_delta"), std::string::npos);
  std::mt19937_64 rng(1);
  auto [x, y] = blobs(8, rng);
  LinearModel m(x, 2);
  LoopOptions o;
  o.early_stop.patience = 2;
  try {
    (void)train_loop<double>(m, task_only(), y, o, rng, {}, {});
    ADD_FAILURE() << "accepted early_stop without validation";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("needs a validation split"), std::string::npos) << e.what();
  }
  o.early_stop.patience = -2;
  EXPECT_THROW((void)train_loop<double>(m, task_only(), y, o, rng, [] { return 0.5; }, {}), std::invalid_argument);
}

// Input augmentation (train.hpp, InputAugment): every output pixel is the input pixel at the drawn
// shift (mirrored when flipped) or zero where the shift uncovers the border; off draws nothing.
TEST(InputAugment, MovesEachImageByItsDrawAndDrawsNothingWhenOff) {
  const Shape s{2, 5, 6};
  std::mt19937_64 g(3);
  const MatD x0 = MatD::NullaryExpr(40, s.size(), [&] { return std::uniform_real_distribution<double>(0.1, 1.0)(g); });
  MatD x = x0;
  std::mt19937_64 rng(5), before(5);
  augment_inputs(x, s, InputAugment{}, rng);
  EXPECT_EQ(x, x0);
  EXPECT_EQ(rng(), before());  // no draw: a run without augmentation keeps its batch order
  for (const bool hflip : {false, true}) {
    const InputAugment a{2, hflip};
    x = x0;
    std::mt19937_64 r1(7), r2(7);
    augment_inputs(x, s, a, r1);
    // Replay the draws and check every pixel against the rule.
    std::uniform_int_distribution<int> shift(-2, 2);
    std::bernoulli_distribution flip(0.5);
    int moved = 0, mirrored = 0;
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const int dx = shift(r2), dy = shift(r2);
      const bool m = hflip && flip(r2);
      moved += dx != 0 || dy != 0;
      mirrored += m;
      for (int c = 0; c < s.c; ++c)
        for (int y = 0; y < s.h; ++y)
          for (int u = 0; u < s.w; ++u) {
            const int sy = y - dy, su = u - dx;
            const double want = sy >= 0 && sy < s.h && su >= 0 && su < s.w
                                    ? x0(r, (c * s.h + sy) * s.w + (m ? s.w - 1 - su : su))
                                    : 0.0;
            ASSERT_EQ(x(r, (c * s.h + y) * s.w + u), want) << "row " << r << " c " << c << " y " << y << " x " << u;
          }
    }
    EXPECT_GT(moved, 20);
    if (hflip) EXPECT_GT(mirrored, 5);
  }
  EXPECT_EQ(InputAugment({9, false}).validate(), "train.augment.shift_px must be in [0, 8], got 9");
  TrainOptions o;
  o.augment.shift_px = -1;
  EXPECT_EQ(o.validate(), "train.augment.shift_px must be in [0, 8], got -1");
}
