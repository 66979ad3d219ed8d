// Frame integrity by content: on the simulated bench with the moderate as-built profile (misaligned,
// defocused, brightness off, sensor noise) and no calibration, a frame that shows the previous input is
// told from one that shows the current input by the design model's predicted change alone.
#include "hilo/calibration/frame_content.hpp"
#include "hilo/calibration/content_gate.hpp"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "sim_rig.hpp"

namespace hilo::calibration {
namespace {

using testing::SimRig;
using testing::bench_options;

// A sparse 28 × 28 input of a few bright strokes, like a handwritten digit or a garment's outline.
RArray random_strokes(int rows, int cols, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> pos(3, rows - 4), len(4, 14), orient(0, 1);
  RArray x = RArray::Zero(rows, cols);
  for (int s = 0; s < 3; ++s) {
    const int r0 = pos(rng), c0 = pos(rng), n = len(rng);
    for (int i = 0; i < n; ++i) {
      const int r = orient(rng) ? r0 : std::min(rows - 1, r0 + i), c = orient(rng) ? std::min(cols - 1, c0 + i) : c0;
      x(r, c) = 1.0;
      if (c + 1 < cols) x(r, c + 1) = 1.0;
    }
  }
  return x;
}

RArray capture(SimRig& rig, const RArray& x) {
  ProbeRig probe(rig.input, rig.camera);
  return probe.capture(x, 1).value();
}

void run_pairs(SimRig& rig, int pairs, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int rows = rig.input.height_px(), cols = rig.input.width_px();
  const Predictor predict = rig.predictor();
  RArray x_prev = random_strokes(rows, cols, rng);
  auto f_prev = capture(rig, x_prev);
  // The noise of one frame, as a capture would estimate it from two frames of one input.
  const double noise_rms = std::sqrt((f_prev - capture(rig, x_prev)).square().mean() / 2.0);
  ASSERT_GT(noise_rms, 0.1);
  int decided_fresh = 0, decided_stale = 0;
  double min_fresh = 1.0, max_stale = -1.0;
  for (int k = 0; k < pairs; ++k) {
    const RArray x = random_strokes(rows, cols, rng);
    const RArray p = predict(x), p_prev = predict(x_prev);
    const RArray fresh = capture(rig, x);
    const RArray stale = capture(rig, x_prev);  // what a slow SLM shows: still the previous input
    const auto cf = check_frame_content(fresh, f_prev, p, p_prev, noise_rms);
    const auto cs = check_frame_content(stale, f_prev, p, p_prev, noise_rms);
    EXPECT_NE(cf.verdict, ContentVerdict::stale) << k << ": " << cf.reason;
    EXPECT_NE(cs.verdict, ContentVerdict::matches) << k << ": correlation " << cs.correlation;
    if (cf.verdict == ContentVerdict::matches) ++decided_fresh, min_fresh = std::min(min_fresh, cf.correlation);
    if (cs.verdict == ContentVerdict::stale) ++decided_stale, max_stale = std::max(max_stale, cs.correlation);
    x_prev = x;
    f_prev = fresh;
  }
  // Distinct stroke inputs differ by far more than the noise: every frame is decided.
  EXPECT_EQ(decided_fresh, pairs);
  EXPECT_EQ(decided_stale, pairs);
  std::printf("fresh: min correlation %.3f; stale: max correlation %.3f; noise %.2f counts rms\n", min_fresh,
              max_stale, noise_rms);
}

TEST(FrameContent, TellsAStaleFrameOnAnUncalibratedBenchWithAFlatElement) {
  SimRig rig(bench_options("moderate"));
  rig.set_flat_element();
  run_pairs(rig, 20, 5);
}

TEST(FrameContent, TellsAStaleFrameThroughARandomPhaseElement) {
  SimRig rig(bench_options("moderate"));
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(0.0, 2 * M_PI);
  sim::RArray phase(64, 64);
  for (Eigen::Index i = 0; i < phase.size(); ++i) phase(i) = u(rng);
  rig.set_element_phase(phase);
  run_pairs(rig, 20, 6);
}

TEST(FrameContent, IdenticalInputsAreUndecidableNotStale) {
  SimRig rig(bench_options("moderate"));
  rig.set_flat_element();
  std::mt19937_64 rng(1);
  const RArray x = random_strokes(rig.input.height_px(), rig.input.width_px(), rng);
  const RArray p = rig.predictor()(x);
  const RArray a = capture(rig, x), b = capture(rig, x);
  const auto c = check_frame_content(b, a, p, p, 2.0);
  EXPECT_EQ(c.verdict, ContentVerdict::undecidable);
  EXPECT_EQ(c.snr, 0.0);
  EXPECT_NE(c.reason.find("cannot be told"), std::string::npos) << c.reason;
}

TEST(FrameContent, RefusesMismatchedShapesAndInvalidOptions) {
  const RArray a = RArray::Zero(8, 8), b = RArray::Zero(8, 9);
  EXPECT_THROW(check_frame_content(a, a, b, a, 1.0), std::invalid_argument);
  ContentCheckOptions o;
  EXPECT_EQ(o.validate(), "");
  o.min_correlation = 2;
  EXPECT_EQ(o.validate().rfind("content_check.min_correlation must be in (0, 1), got 2", 0), 0u) << o.validate();
}

// The optics of a toy bench: each input pixel lights a 2 × 2 block of camera pixels with 200 counts.
RArray toy_optics(const RArray& x) {
  RArray f(2 * x.rows(), 2 * x.cols());
  for (Eigen::Index r = 0; r < f.rows(); ++r)
    for (Eigen::Index c = 0; c < f.cols(); ++c) f(r, c) = 200.0 * x(r / 2, c / 2);
  return f;
}

RArray noisy(const RArray& f, std::mt19937_64& rng) {
  std::normal_distribution<double> n(0.0, 1.0);
  return f.unaryExpr([&](double v) { return v + n(rng); });
}

// A model that predicts this bench poorly (here: the input upside down, as a strongly aberrated bench
// the calibrated model does not capture) calls every fresh frame stale. A re-grab that shows the same
// picture proves the SLM had settled: the frame is accepted as undecidable after one re-grab instead
// of failing after max_regrabs. A truly stale frame's re-grab shows another picture and is judged.
TEST(ContentGate, AReGrabShowingTheSamePictureIsTheModelsFaultNotAStaleFrame) {
  std::mt19937_64 rng(5);
  std::bernoulli_distribution on(0.3);
  auto input = [&] { return RArray::NullaryExpr(16, 16, [&] { return on(rng) ? 1.0 : 0.0; }); };
  ContentGateOptions o;
  o.blur_px = 1.0;
  const Predictor wrong = [](const RArray& x) { return toy_optics(x.colwise().reverse().eval()); };
  ContentGate gate(wrong, 16, 16, 32, 32, 1e-6, o);
  gate.set_reference(RArray::Zero(32, 32), 1.0);
  ContentCounters n;
  // The first change, from dark, is all positive: the mean alone correlates. Later changes do not.
  const RArray x0 = input();
  (void)gate.judge(noisy(toy_optics(x0), rng), x0, n);
  n = {};
  for (int k = 0; k < 3; ++k) {
    const RArray x = input();
    const auto first = gate.judge(noisy(toy_optics(x), rng), x, n);
    EXPECT_EQ(first.action, drivers::Judged::regrab) << k << ": the wrong model should call the fresh frame stale";
    const auto again = gate.judge(noisy(toy_optics(x), rng), x, n);
    EXPECT_EQ(again.action, drivers::Judged::accept) << k << ": " << again.cause;
  }
  EXPECT_EQ(n.content_rejects, 3u);
  EXPECT_EQ(n.content_undecidable, 3u);

  // The control, with the right model: a stale frame (the previous input's picture) is rejected, and
  // its re-grab, the new picture, is judged a match (not waved through as undecidable).
  ContentGate right([](const RArray& x) { return toy_optics(x); }, 16, 16, 32, 32, 1e-6, o);
  right.set_reference(RArray::Zero(32, 32), 1.0);
  ContentCounters m;
  RArray prev = input();
  ASSERT_EQ(right.judge(noisy(toy_optics(prev), rng), prev, m).action, drivers::Judged::accept);
  for (int k = 0; k < 3; ++k) {
    const RArray x = input();
    EXPECT_EQ(right.judge(noisy(toy_optics(prev), rng), x, m).action, drivers::Judged::regrab) << k;
    EXPECT_EQ(right.judge(noisy(toy_optics(x), rng), x, m).action, drivers::Judged::accept) << k;
    prev = x;
  }
  EXPECT_EQ(m.content_rejects, 3u);
  EXPECT_EQ(m.content_undecidable, 0u);
  // An SLM slow twice in a row: the re-grab shows the same picture as the rejected frame, but it is the
  // previous input's picture, so it is rejected again (not accepted as the model's fault).
  const RArray x = input();
  EXPECT_EQ(right.judge(noisy(toy_optics(prev), rng), x, m).action, drivers::Judged::regrab);
  EXPECT_EQ(right.judge(noisy(toy_optics(prev), rng), x, m).action, drivers::Judged::regrab);
  EXPECT_EQ(right.judge(noisy(toy_optics(x), rng), x, m).action, drivers::Judged::accept);
  EXPECT_EQ(m.content_rejects, 5u);
  EXPECT_EQ(m.content_undecidable, 0u);
}

// After max_regrabs stale verdicts of one input the frame fails, or with accept_unproven (the
// pipeline's setting) is stored unproven and counted.
TEST(ContentGate, AfterMaxRegrabsTheFrameFailsOrIsStoredUnproven) {
  for (const bool unproven : {false, true}) {
    std::mt19937_64 rng(9);
    std::bernoulli_distribution on(0.3);
    auto input = [&] { return RArray::NullaryExpr(16, 16, [&] { return on(rng) ? 1.0 : 0.0; }); };
    ContentGateOptions o;
    o.blur_px = 1.0;
    o.max_regrabs = 2;
    o.accept_unproven = unproven;
    ContentGate gate([](const RArray& x) { return toy_optics(x); }, 16, 16, 32, 32, 1e-6, o);
    gate.set_reference(RArray::Zero(32, 32), 1.0);
    ContentCounters n;
    const RArray prev = input(), x = input();
    ASSERT_EQ(gate.judge(noisy(toy_optics(prev), rng), prev, n).action, drivers::Judged::accept);
    EXPECT_EQ(gate.judge(noisy(toy_optics(prev), rng), x, n).action, drivers::Judged::regrab);
    EXPECT_EQ(gate.judge(noisy(toy_optics(prev), rng), x, n).action, drivers::Judged::regrab);
    const auto last = gate.judge(noisy(toy_optics(prev), rng), x, n);
    EXPECT_EQ(last.action, unproven ? drivers::Judged::accept : drivers::Judged::fail);
    if (!unproven) EXPECT_NE(last.cause.find("after 2 re-grabs (content_check.max_regrabs)"), std::string::npos) << last.cause;
    EXPECT_EQ(n.content_rejects, 3u);
    EXPECT_EQ(n.content_undecidable, unproven ? 1u : 0u);
  }
}

// A stream whose device showed another pattern before its first checked frame (the pipeline's, after the
// calibration's last probe): judged against the dark reference, a slow first frame that still shows that
// pattern passes for the new input (the change from dark is all positive, so the mean alone correlates);
// continued from the last pattern's frame, the same frame is rejected and the fresh one accepted.
TEST(ContentGate, AStreamContinuedFromTheLastPatternRejectsASlowFirstFrame) {
  std::mt19937_64 rng(12);
  std::bernoulli_distribution on(0.9);  // mostly lit, like a blurred probe: the change from dark is the mean
  auto input = [&] { return RArray::NullaryExpr(16, 16, [&] { return on(rng) ? 1.0 : 0.0; }); };
  ContentGateOptions o;
  o.blur_px = 1.0;
  const Predictor optics = [](const RArray& x) { return toy_optics(x); };
  const RArray last = input(), x = input();
  ContentGate from_dark(optics, 16, 16, 32, 32, 1e-6, o);
  from_dark.set_reference(RArray::Zero(32, 32), 1.0);
  ContentCounters n;
  EXPECT_EQ(from_dark.judge(noisy(toy_optics(last), rng), x, n).action, drivers::Judged::accept)
      << "the control: against dark the stale frame passes";

  ContentGate continued(optics, 16, 16, 32, 32, 1e-6, o);
  EXPECT_THROW(continued.continue_from(toy_optics(last), last), std::logic_error);
  continued.set_reference(RArray::Zero(32, 32), 1.0);
  EXPECT_THROW(continued.continue_from(RArray::Zero(30, 32), last), std::invalid_argument);
  EXPECT_THROW(continued.continue_from(toy_optics(last), RArray::Zero(8, 8)), std::invalid_argument);
  continued.continue_from(noisy(toy_optics(last), rng), last);
  ContentCounters m;
  EXPECT_EQ(continued.judge(noisy(toy_optics(last), rng), x, m).action, drivers::Judged::regrab);
  EXPECT_EQ(continued.judge(noisy(toy_optics(x), rng), x, m).action, drivers::Judged::accept);
  EXPECT_EQ(m.content_rejects, 1u);
  EXPECT_EQ(m.content_undecidable, 0u);
}

}  // namespace
}  // namespace hilo::calibration
