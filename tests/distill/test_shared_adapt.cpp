// Adaptive teaching in the shared-classifier mode (distill.shared_adapt, distill.shared_test_head):
// the head's gradients, the fold of the shared path into the student's last layer, that the options
// change nothing they should not, their rules, and the model file of an adapted student.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <stdexcept>
#include <unistd.h>

#include "student_fixture.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/distill/student_jobs.hpp"

using namespace hilo::distill;
using hilo::distill::testing::randn;
using hilo::distill::testing::rel_err;
namespace fs = std::filesystem;

namespace {
StudentOptions small_student() {
  StudentOptions so;
  so.kernels = 2;
  so.kernel_size = 3;
  so.pool = 4;
  so.hidden = 6;
  return so;
}

// Value of the shared term's output terms on a batch (its parameter gradients accumulate).
double shared_value(SharedClassifierLoss& l, const MatD& logits, std::span<const int> rows, const std::vector<int>& y,
                    std::mt19937_64& rng, StepTerms<double>* out = nullptr) {
  StepTerms<double> t;
  l.add_output_terms({rows, y, logits, 0, rng}, t);
  if (out) *out = t;
  return t.loss;
}

struct ToyRun {
  OpticalStudent student;
  History history;
};

// A short shared-classifier distillation on the toy blobs, with inputs shifted by up to 1 px (the
// teacher's features recomputed per step).
ToyRun distill_toy(const DistillOptions& d) {
  std::mt19937_64 rng(21);
  const Splits s = hilo::distill::testing::toy_splits(128, rng);
  Sequential<float> teacher = hilo::distill::testing::toy_teacher(s, rng);
  TrainOptions o;
  o.epochs = 2;
  o.batch_size = 32;
  o.optimizer.kind = "adam";
  o.optimizer.lr = 1e-2;
  o.augment.shift_px = 1;
  o.log_test_acc = true;
  ToyRun r{OpticalStudent(StudentOptions{}, s.train.shape, 2), {}};
  r.history = train_student(r.student, teacher, s, d, o, {});
  return r;
}

DistillOptions shared(const std::string& test_head, bool adapt, double lr_scale = 1.0, double keep = 1.0) {
  DistillOptions d;
  d.method = "shared";
  d.shared_test_head = test_head;
  d.shared_adapt.enabled = adapt;
  d.shared_adapt.lr_scale = lr_scale;
  d.shared_adapt.keep_weight = keep;
  return d;
}

std::vector<double> losses(const History& h) {
  std::vector<double> v;
  for (const auto& e : h.epochs) v.push_back(e.loss);
  return v;
}
}  // namespace

// With adaptive teaching the loss owns the teacher's head too; every parameter's gradient (projector and
// head, from the student's term through the head and from the keep term κ·CE(head(φ_T), y)) against
// central differences, and ∂/∂h unchanged by the adaptation.
TEST(SharedAdapt, HeadAndProjectorGradientsMatchFiniteDifferences) {
  OpticalStudent s(small_student(), Shape{1, 8, 8}, 3);
  std::mt19937_64 rng(5);
  s.init(rng);
  const MatD x = randn(4, 64, rng).cwiseAbs();
  const MatD logits = s.forward(x, false);
  const MatD tf = randn(6, 5, rng), hw = randn(3, 5, rng), hb = randn(1, 3, rng);
  std::mt19937_64 r1(9), r2(9);
  SharedClassifierLoss frozen(s, tf, hw, hb, 0.8, 0.3, r1);
  SharedClassifierLoss adapted(s, tf, hw, hb, 0.8, 0.3, r2, true, 0.7);
  const std::vector<int> rows{5, 1, 0, 3}, y{2, 0, 1, 1};
  auto p = adapted.params();
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[2].name, "shared_head.w");
  EXPECT_EQ(p[3].name, "shared_head.b");
  auto value = [&] { return shared_value(adapted, logits, rows, y, rng); };
  for (auto& q : p) {
    for (auto& r : p) r.grad->setZero();
    (void)value();
    const MatD analytic = *q.grad;
    const MatD numeric = hilo::distill::testing::numeric_grad(*q.value, value);
    EXPECT_LT(rel_err(analytic, numeric), 1e-6) << q.name;
  }
  // The keep term is the only difference in value; ∂/∂h is the same formula through the same head.
  StepTerms<double> tf_terms, ta_terms;
  const double vf = shared_value(frozen, logits, rows, y, rng, &tf_terms);
  const double va = shared_value(adapted, logits, rows, y, rng, &ta_terms);
  MatD tl = take_rows(tf, rows) * hw.transpose();
  tl.rowwise() += hb.row(0);
  EXPECT_NEAR(va - vf, 0.7 * softmax_cross_entropy<double>(tl, y, nullptr), 1e-12);
  EXPECT_EQ(tf_terms.dhidden, ta_terms.dhidden);
}

// The shared path is linear in h, so folding it into one layer reproduces its logits.
TEST(SharedAdapt, FoldedHeadGivesTheSharedPathsLogits) {
  OpticalStudent s(small_student(), Shape{1, 8, 8}, 3);
  std::mt19937_64 rng(6);
  s.init(rng);
  const MatD tf = randn(6, 5, rng);
  SharedClassifierLoss l(s, tf, randn(3, 5, rng), randn(1, 3, rng), 1.0, 0.1, rng, true, 1.0);
  auto p = l.params();
  *p[1].value = randn(1, 5, rng);  // a non-zero projector bias
  const MatD h = randn(7, 6, rng);
  auto [w, b] = l.folded();
  MatD z = h * w.transpose();
  z.rowwise() += b.row(0);
  EXPECT_LT(rel_err(z, l.student_logits(h)), 1e-13);
}

// Adaptation off is today's shared mode bit for bit: the adaptation's other keys change nothing, and
// judging by the shared head (shared_test_head "shared") changes only what is evaluated, not what trains.
// With the head at rate 0 and no keep term, adaptation on trains exactly as off. With a rate it
// trains differently (so the checks above can fail).
TEST(SharedAdapt, OffIsTodaysModeBitForBit) {
  ToyRun today = distill_toy(shared("own", false));
  ToyRun off = distill_toy(shared("own", false, 0.3, 5.0));
  EXPECT_EQ(losses(today.history), losses(off.history));
  EXPECT_EQ(today.student.w2(), off.student.w2());
  EXPECT_EQ(today.history.test_acc, off.history.test_acc);
  EXPECT_TRUE(today.history.summary.empty()) << "today's history gained keys";

  ToyRun judged = distill_toy(shared("shared", false));
  EXPECT_EQ(losses(today.history), losses(judged.history)) << "the test head changed the training";
  EXPECT_EQ(today.student.w1(), judged.student.w1());
  EXPECT_EQ(today.student.raw_optical(), judged.student.raw_optical());
  EXPECT_TRUE(judged.history.summary.contains("own_head_test_acc"));
  EXPECT_EQ(judged.history.summary["teacher_test_acc_before"], judged.history.summary["teacher_test_acc_after"]);

  ToyRun zero = distill_toy(shared("shared", true, 0.0, 0.0));
  EXPECT_EQ(losses(judged.history), losses(zero.history));
  EXPECT_EQ(judged.student.w2(), zero.student.w2());
  EXPECT_EQ(judged.history.test_acc, zero.history.test_acc);

  ToyRun adapted = distill_toy(shared("shared", true, 1.0, 1.0));
  EXPECT_NE(losses(judged.history), losses(adapted.history));
  EXPECT_NE(judged.student.w2(), adapted.student.w2());
  EXPECT_TRUE(adapted.history.epochs.back().extra.contains("teacher_keep_ce"));
  EXPECT_TRUE(adapted.history.epochs.back().extra.contains("teacher_test_acc"));
}

TEST(SharedAdapt, OptionsNameTheBrokenRule) {
  EXPECT_EQ(shared("shared", true).validate(), "");
  DistillOptions d = shared("shared", true, 1.5);
  EXPECT_EQ(d.validate(), "distill.shared_adapt.lr_scale must be in [0, 1], got 1.500000");
  d = shared("shared", true, 0.5, -1);
  EXPECT_EQ(d.validate(), "distill.shared_adapt.keep_weight must be >= 0, got -1.000000");
  d = shared("own", true);
  EXPECT_EQ(d.validate(),
            "distill.shared_adapt.enabled requires distill.shared_test_head \"shared\" (the adapted head is the one "
            "the student predicts with), got \"own\"");
  d = shared("shared", false);
  d.shared_test_head = "teacher";
  EXPECT_EQ(d.validate(), "distill.shared_test_head must be \"own\" or \"shared\", got \"teacher\"");
  d = shared("shared", false);
  d.method = "kd";
  EXPECT_EQ(d.validate(), "distill.shared_test_head \"shared\" requires distill.method \"shared\", got \"kd\"");
  d = shared("own", true);
  d.method = "kd";
  d.shared_test_head = "own";
  EXPECT_EQ(d.validate(), "distill.shared_adapt.enabled requires distill.method \"shared\", got \"kd\"");
  // Read from a job's JSON: the nested keys by their path, unknown ones refused with a suggestion.
  const DistillOptions r = distill_options_from_json(
      {{"method", "shared"}, {"shared_test_head", "shared"},
       {"shared_adapt", {{"enabled", true}, {"lr_scale", 0.1}}}});
  EXPECT_TRUE(r.shared_adapt.enabled);
  EXPECT_EQ(r.shared_adapt.lr_scale, 0.1);
  EXPECT_EQ(r.shared_adapt.keep_weight, 1.0);
  try {
    (void)distill_options_from_json({{"shared_adapt", {{"keep_wieght", 1}}}});
    ADD_FAILURE() << "an unknown key was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("distill.shared_adapt: unknown key 'keep_wieght'; did you mean 'keep_weight'?"),
              std::string::npos)
        << e.what();
  }
}

// The adapted head is what the student predicts with, stored as the backend's last layer of the
// documented format: the file reads back to the same predictions, and the history's test accuracy is
// the shared head's.
TEST(SharedAdapt, ModelFileRoundTripKeepsTheAdaptedHead) {
  ToyRun r = distill_toy(shared("shared", true, 1.0, 1.0));
  EXPECT_EQ(r.history.test_acc, r.history.summary["shared_head_test_acc"].get<double>());
  const fs::path p = fs::temp_directory_path() / ("hilo_shared_adapt_" + std::to_string(::getpid()) + ".hilo");
  write_model(p, r.student.to_model({{"shared_test_head", "shared"}}));
  OpticalStudent back = OpticalStudent::from_model(read_model(p));
  fs::remove(p);
  std::mt19937_64 rng(4);
  const Splits s = hilo::distill::testing::toy_splits(64, rng);
  const MatD x = s.test.x.cast<double>();
  const MatD z0 = r.student.forward(x, false), z1 = back.forward(x, false);
  EXPECT_LT(rel_err(z1, z0), 1e-5) << "arrays are stored as float32";
  EXPECT_EQ(accuracy(z0, s.test.y), accuracy(z1, s.test.y));
}
