// The experiment on a deployed bench (calibration/experiment.hpp): it measures exactly what the
// calibration functions it is made of measure, checks drift on its schedule and applies or only reports
// it, stops early, returns device errors as values; nested subsets; the sweep re-fits on the subsets the
// run stored.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <stop_token>

#include "hilo/calibration/experiment.hpp"
#include "hilo/distill/train.hpp"
#include "hilo/sim/npy.hpp"
#include "../drivers/slow_slm.hpp"
#include "sim_rig.hpp"

using namespace hilo;
using namespace hilo::calibration;
using hilo::calibration::testing::bench_options;
using hilo::calibration::testing::SimRig;
using hilo::calibration::testing::trained_like_student;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

distill::Mat<float> random_images(int n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  distill::Mat<float> x(n, 784);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = u(rng) < 0.3f ? u(rng) : 0.0f;
  return x;
}

// A deployed student on the moderate profile, the design model and the retrieval kept small.
struct Deployed {
  std::mt19937_64 rng{11};
  sim::BenchOptions opts = bench_options("moderate");
  DesignModel design{opts};
  distill::OpticalStudent student = trained_like_student(rng);
  Deployment deployment;
  Deployed() {
    PhaseRetrievalOptions po;
    po.gs_iterations = 10;
    po.adam_iterations = 20;
    deployment = design_deployment(student, design, po, rng);
    student.set_kernels(deployment.kernels);
  }
};

ExperimentBench bench_of(SimRig& rig) {
  ExperimentBench b{rig.input, rig.element.get(), rig.camera};
  b.now_s = [&rig] { return rig.t_s(); };
  return b;
}

BenchCalibrationOptions quick_calibration() {
  BenchCalibrationOptions co;
  co.registration.frames = 1;
  co.tiles.frames = 2;
  return co;
}

}  // namespace

// The experiment's first chunk is bit-identical to calling the calibration functions it is documented
// to call, in the documented order, on an identical bench; with a threshold any drift exceeds, "update"
// changes the second chunk and "report" does not.
TEST(Experiment, MeasuresWhatTheCalibrationFunctionsMeasureAndAppliesDrift) {
  Deployed dep;
  std::mt19937_64 xr(3);
  const distill::Mat<float> x = random_images(20, xr);
  MeasureOptions mo;
  mo.drift_every = 10;
  mo.drift.shift_threshold_px = 1e-6;
  mo.drift.frames = 2;

  // By hand: calibrate, drift reference, then two chunks with the calibration unchanged.
  distill::MatD by_hand;
  {
    SimRig rig(dep.opts);
    std::mt19937_64 rng(5);
    ProbeRig probe(rig.input, rig.camera);
    const sim::SlmModel slm(dep.opts.element.slm);
    ShowElementFn show = [&](const sim::RArray& p) { return deploy_phase(*rig.element, p, slm); };
    auto cal = calibrate_bench(probe, dep.design, dep.deployment, show, quick_calibration(), rng);
    ASSERT_TRUE(cal) << cal.error().message;
    const auto& bc = cal.value().calibration;
    auto ref = capture_drift_reference(probe, bc.dark, bc.pose, rig.t_s(), mo.drift, rng);
    ASSERT_TRUE(ref);
    by_hand.resize(20, dep.student.feature_dim());
    for (int c = 0; c < 2; ++c) {
      auto m = measure_features(probe, bc, ExtractOptions{}, dep.deployment, dep.student, x.middleRows(10 * c, 10), 1);
      ASSERT_TRUE(m);
      by_hand.middleRows(10 * c, 10) = m.value();
      ASSERT_TRUE(check_drift(probe, ref.value(), bc.dark, rig.t_s(), mo.drift));
    }
  }
  for (const std::string action : {"report", "update"}) {
    SCOPED_TRACE(action);
    SimRig rig(dep.opts);
    ExperimentBench b = bench_of(rig);
    std::mutex mutex;
    b.mutex = &mutex;
    mo.drift_action = action;
    std::vector<json> events;
    std::vector<std::int64_t> progress, totals;
    ExperimentControl ctl;
    ctl.on_drift = [&](const json& j) { events.push_back(j); };
    ctl.work.progress = [&](std::int64_t n, std::int64_t t, std::string_view stage) {
      progress.push_back(n);
      totals.push_back(t);
      EXPECT_EQ(stage, "measure");
    };
    Experiment ex(b, dep.design, dep.deployment, dep.student, mo, ctl, "moderate");
    std::mt19937_64 rng(5);
    auto cal = ex.calibrate(quick_calibration(), rng);
    ASSERT_TRUE(cal) << cal.error().message;
    EXPECT_GT(ex.calibrated_at_s(), 0.0);
    auto m = ex.measure(x);
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_EQ(m.value().rows(), 20);
    EXPECT_EQ(ex.measured(), 20);
    EXPECT_EQ(progress.back(), 20);
    EXPECT_EQ(totals.front(), 20) << "the total is the set's images, counted from the first";
    EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end())) << "progress counts across chunks";
    EXPECT_EQ(m.value().topRows(10), by_hand.topRows(10)) << "the first chunk is measured differently from by hand";
    ASSERT_EQ(ex.drift_checks().size(), 2u);
    EXPECT_EQ(ex.drift_checks()[1]["measured_images"], 20);
    ASSERT_EQ(events.size(), 2u) << "a threshold of 1e-6 px is exceeded by any drift";
    EXPECT_EQ(events[0]["profile"], "moderate");
    EXPECT_EQ(events[0]["action"], action);
    const double diff = (m.value().bottomRows(10) - by_hand.bottomRows(10)).cwiseAbs().maxCoeff();
    if (action == "report") EXPECT_EQ(diff, 0.0);
    else EXPECT_GT(diff, 0.0) << "the updated pose and gain were not applied";
  }
}

TEST(Experiment, StopEndsTheSetAfterAChunkAndDeviceErrorsAreValues) {
  Deployed dep;
  std::mt19937_64 xr(4);
  const distill::Mat<float> x = random_images(30, xr);
  MeasureOptions mo;
  mo.drift_every = 10;
  {
    SimRig rig(dep.opts);
    ExperimentBench b = bench_of(rig);
    std::mt19937_64 rng(1);
    Experiment uncalibrated(b, dep.design, dep.deployment, dep.student, mo, {}, "p");
    EXPECT_THROW((void)uncalibrated.measure(x), std::logic_error) << "measure before calibrate";
    ExperimentControl c3;
    std::stop_source stop;
    c3.work = {[&](std::int64_t n, std::int64_t, std::string_view) {
                 if (n >= 10) stop.request_stop();
               },
               stop.get_token()};
    Experiment ex3(b, dep.design, dep.deployment, dep.student, mo, c3, "p");
    ASSERT_TRUE(ex3.calibrate(quick_calibration(), rng));
    auto m = ex3.measure(x);
    ASSERT_TRUE(m);
    EXPECT_LT(m.value().rows(), 30) << "stop did not end the set early";
  }
  {
    drivers::FaultOptions faults;
    faults.camera_timeout_rate = 1.0;
    SimRig rig(dep.opts, 7, faults);
    ExperimentBench b = bench_of(rig);
    Experiment ex(b, dep.design, dep.deployment, dep.student, mo, {}, "p");
    std::mt19937_64 rng(1);
    auto cal = ex.calibrate(quick_calibration(), rng);
    ASSERT_FALSE(cal);
    EXPECT_EQ(cal.error().code, drivers::DeviceErrc::timeout);
    EXPECT_NE(cal.error().message.find("camera"), std::string::npos) << cal.error().message;
  }
  MeasureOptions bad;
  bad.drift_action = "ignore";
  EXPECT_EQ(bad.validate(), "drift_action must be \"update\" or \"report\", got \"ignore\"");
  bad = {};
  bad.frames = 0;
  EXPECT_EQ(bad.validate(), "frames must be in [1, 64], got 0");
}

struct SlowRun {
  distill::MatD features;
  json integrity;
  std::optional<drivers::DeviceError> error;  // of the measurement
};

// Calibrates the moderate bench, then measures x with the shows in `swallow` (numbered from the first
// measured image's) swallowed by a slow input SLM (tests/drivers/slow_slm.hpp).
SlowRun measure_with_slow_input(const Deployed& dep, const distill::Mat<float>& x, MeasureOptions mo,
                                std::set<int> swallow) {
  SimRig rig(dep.opts);
  drivers::testing::SlowSlm slow(rig.input);
  ExperimentBench b{slow, rig.element.get(), rig.camera};
  b.now_s = [&rig] { return rig.t_s(); };
  DesignModel design(dep.opts);  // calibrate() sets its element; each run starts from the same design
  Experiment ex(b, design, dep.deployment, dep.student, mo, {}, "moderate");
  std::mt19937_64 rng(5);
  auto cal = ex.calibrate(quick_calibration(), rng);
  EXPECT_TRUE(cal) << cal.error().message;
  slow.arm(std::move(swallow));
  auto m = ex.measure(x);
  if (!m) return {distill::MatD(), ex.frame_integrity(), m.error()};
  return {m.value(), ex.frame_integrity(), std::nullopt};
}

SlowRun measure_with_slow_input(const Deployed& dep, const distill::Mat<float>& x, bool content_check,
                                std::set<int> swallow) {
  MeasureOptions mo;
  mo.content.enabled = content_check;
  SlowRun r = measure_with_slow_input(dep, x, mo, std::move(swallow));
  EXPECT_FALSE(r.error) << r.error->message;
  return r;
}

// The pipeline's measurement through a slow input SLM on the simulated moderate bench: the calibrated
// content check rejects exactly the frames of the swallowed shows, re-grabs them, and every measured
// row belongs to its own input; without the check the same slow SLM files frames under the wrong input
// (the control that shows the check is what catches them), and on a bench without faults the check
// rejects nothing.
TEST(ExperimentContent, RejectsExactlyTheSlowFramesAndFilesNoneUnderTheWrongInput) {
  Deployed dep;
  std::mt19937_64 xr(6);
  const distill::Mat<float> x = random_images(16, xr);
  // Show 3 is image 2's first (it stays on image 1); 7 and 8 image 5's first two (both stale); 14 image
  // 10's first. Without the check, show k is image k − 1's only one.
  const std::set<int> swallow{3, 7, 8, 14};
  const SlowRun clean = measure_with_slow_input(dep, x, true, {});
  const SlowRun checked = measure_with_slow_input(dep, x, true, swallow);
  const SlowRun control = measure_with_slow_input(dep, x, false, swallow);
  ASSERT_EQ(clean.features.rows(), 16);
  ASSERT_EQ(checked.features.rows(), 16);
  ASSERT_EQ(control.features.rows(), 16);

  EXPECT_EQ(clean.integrity["content_check"]["active"], true) << clean.integrity.dump();
  EXPECT_EQ(clean.integrity["content_check"]["model"], "design (calibrated: pose, blur, gain)");
  EXPECT_EQ(clean.integrity["content_check"]["options"]["max_unproven_fraction"], 0.1) << clean.integrity.dump();
  EXPECT_EQ(clean.integrity["content_rejects"], 0) << clean.integrity.dump();
  EXPECT_EQ(clean.integrity["regrabs"], 0) << clean.integrity.dump();
  EXPECT_EQ(checked.integrity["content_rejects"], 4) << checked.integrity.dump();
  EXPECT_EQ(checked.integrity["regrabs"], 4) << checked.integrity.dump();
  for (const json* j : {&clean.integrity, &checked.integrity}) EXPECT_EQ((*j)["content_undecidable"], 0) << j->dump();
  EXPECT_EQ(control.integrity["content_check"]["active"], false);
  EXPECT_EQ(control.integrity["content_rejects"], 0);

  // Which clean row a measured row is nearest to, among its own input's and its neighbours'.
  auto nearest = [&](const distill::MatD& m, Eigen::Index i) {
    Eigen::Index best = i;
    for (Eigen::Index j = std::max<Eigen::Index>(0, i - 2); j <= std::min<Eigen::Index>(15, i + 1); ++j)
      if ((m.row(i) - clean.features.row(j)).squaredNorm() < (m.row(i) - clean.features.row(best)).squaredNorm()) best = j;
    return best;
  };
  for (Eigen::Index i = 0; i < 16; ++i) EXPECT_EQ(nearest(checked.features, i), i) << "image " << i;
  // The control: images 2, 6 and 13 show their predecessors, image 7 still image 5 (two shows lost).
  EXPECT_EQ(nearest(control.features, 2), 1);
  EXPECT_EQ(nearest(control.features, 6), 5);
  EXPECT_EQ(nearest(control.features, 7), 5);
  EXPECT_EQ(nearest(control.features, 13), 12);
}

// A stuck input SLM (every show after the calibration lost): each frame is judged stale on every
// re-grab and stored unproven, so without a limit the whole set is filed under inputs it does not show
// (and the drift probes after it too); with max_unproven_fraction 0.1 the set of 12 frames fails at its
// second unproven frame (floor(1.2) = 1 allowed), naming the share.
TEST(ExperimentContent, AStuckSlmFailsTheSetOnceTooManyFramesAreUnproven) {
  Deployed dep;
  std::mt19937_64 xr(9);
  const distill::Mat<float> x = random_images(12, xr);
  std::set<int> every_show;
  for (int i = 1; i <= 200; ++i) every_show.insert(i);
  MeasureOptions unlimited;
  unlimited.max_unproven_fraction = 1.0;
  const SlowRun control = measure_with_slow_input(dep, x, unlimited, every_show);
  ASSERT_FALSE(control.error) << control.error->message;
  EXPECT_EQ(control.features.rows(), 12);
  EXPECT_GE(control.integrity["content_undecidable"].get<int>(), 12) << control.integrity.dump();

  MeasureOptions limited;
  limited.max_unproven_fraction = 0.1;
  const SlowRun stopped = measure_with_slow_input(dep, x, limited, every_show);
  ASSERT_TRUE(stopped.error) << "a stuck SLM measured a whole set: " << stopped.integrity.dump();
  EXPECT_EQ(stopped.error->code, drivers::DeviceErrc::corrupt_frame);
  EXPECT_NE(stopped.error->message.find("2 of the set's 12 frames stored unproven, more than "
                                        "content_check.max_unproven_fraction 0.1 allows (1)"),
            std::string::npos)
      << stopped.error->message;
  EXPECT_EQ(stopped.integrity["content_undecidable"], 2) << stopped.integrity.dump();

  // The first image's five shows lost, then the SLM recovers: that image is stored unproven, and the
  // next one too (its change is judged from the unproven frame, which shows the earlier pattern, and
  // its re-grab shows the same picture): 2 unproven frames of 12, a set the same limit stops and a
  // limit of 0.25 (3 allowed) lets through.
  const SlowRun once = measure_with_slow_input(dep, x, limited, {1, 2, 3, 4, 5});
  ASSERT_TRUE(once.error);
  EXPECT_NE(once.error->message.find("2 of the set's 12 frames"), std::string::npos) << once.error->message;
  MeasureOptions quarter;
  quarter.max_unproven_fraction = 0.25;
  const SlowRun passed = measure_with_slow_input(dep, x, quarter, {1, 2, 3, 4, 5});
  EXPECT_FALSE(passed.error) << passed.error->message;
  EXPECT_EQ(passed.features.rows(), 12);
  EXPECT_EQ(passed.integrity["content_undecidable"], 2) << passed.integrity.dump();
}

TEST(NestedSubset, SmallerFractionsAreDrawnInsideTheLargest) {
  std::vector<int> labels;
  for (int i = 0; i < 200; ++i) labels.push_back(i % 10);
  std::mt19937_64 rng(2);
  const auto all = nested_subset(SubsetStrategy::class_balanced, 0.2, 0.2, labels, Eigen::MatrixXd(), rng);
  ASSERT_EQ(all.size(), 200u);
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i);
  const auto half = nested_subset(SubsetStrategy::class_balanced, 0.1, 0.2, labels, Eigen::MatrixXd(), rng);
  ASSERT_EQ(half.size(), 100u);
  std::vector<int> per_class(10, 0);
  for (auto i : half) per_class[std::size_t(labels[i])]++;
  for (int c : per_class) EXPECT_EQ(c, 10);
  EXPECT_THROW(nested_subset(SubsetStrategy::coverage, 0.1, 0.2, labels, Eigen::MatrixXd(), rng), std::invalid_argument);
}

// The sweep re-fits on the subsets the run stored (nested_subsets.json): its row for a grid entry with
// the run's options and seed equals compensate() on that subset; a stored subset for another fraction
// is an error naming the file.
TEST(Sweep, RefitsOnTheStoredNestedSubsets) {
  std::mt19937_64 rng(8);
  distill::OpticalStudent student = trained_like_student(rng);
  const int D = int(student.feature_dim());
  auto dataset = [&](int n) {
    distill::Dataset d;
    d.x = random_images(n, rng);
    for (int i = 0; i < n; ++i) d.y.push_back(i % 10);
    d.shape = distill::Shape{1, 28, 28};
    d.num_classes = 10;
    return d;
  };
  distill::Splits data;
  data.train = dataset(60);
  data.val = dataset(20);
  data.test = dataset(30);
  distill::TeacherArch arch;
  auto teacher = distill::make_teacher(arch, data.train.shape, 10);
  std::normal_distribution<double> g(0.0, 1.0);
  auto features = [&](int n) {
    distill::MatD a(n, D);
    for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = std::abs(g(rng));
    return a;
  };
  const distill::MatD A_test = features(30), A_val = features(20), A_sub = features(20);
  const fs::path d = fs::temp_directory_path() / ("hilo_sweep_" + std::to_string(::getpid()));
  fs::create_directories(d);
  auto write = [&](const char* f, const distill::MatD& m) { write_features(d / f, m); };
  write("test_features.npy", A_test);
  write("val_features.npy", A_val);
  write("subset_features.npy", A_sub);
  std::vector<int> idx;
  for (int i = 0; i < 20; ++i) idx.push_back(3 * i);
  const std::vector<std::size_t> nested_pick{1, 4, 5, 9, 12, 17};
  auto write_json = [&](const char* f, const json& j) { std::ofstream(d / f) << j.dump(); };
  write_json("result.json", {{"subset", {{"indices", idx}, {"fraction", 0.2}}},
                             {"accuracy", {{"none", 0.1}, {"fractions", {{{"fraction", 0.2}}, {{"fraction", 0.06}}}}}}});
  write_json("nested_subsets.json", {{"fractions", {{{"fraction", 0.2}, {"indices", std::vector<int>{}}},
                                                    {{"fraction", 0.06}, {"indices", nested_pick}}}}});
  const SweepEntry e = sweep_entry_from_json("t", {{"mode", "task"}, {"epochs", 2}});
  // The row for f = 0.2 names an empty stored subset: an error, not a silent re-draw.
  EXPECT_THROW(sweep_compensation(d, "p", {data, teacher, student}, {e}, {7}), std::runtime_error);
  const json r = sweep_compensation(d, "p", {data, teacher, student}, {e}, {7, 8}, {0.06});
  ASSERT_EQ(r["rows"].size(), 2u);
  const MeasuredSubset part = take_rows(A_sub, distill::take(data.train, idx), nested_pick);
  std::mt19937_64 r7(7);
  const auto t = compensate(student, part, teacher, e.options, r7, A_test, data.test.y, &A_val, &data.val.y);
  EXPECT_EQ(r["rows"][0]["accuracy"].get<double>(), t.test_accuracy);
  EXPECT_EQ(r["rows"][0]["val_accuracy"].get<double>(), t.val_accuracy);
  EXPECT_THROW(sweep_entry_from_json("x", {{"epoch", 2}}), std::invalid_argument);
  EXPECT_THROW(take_rows(A_sub, data.train, {0}), std::invalid_argument) << "20 feature rows for 60 samples";
  fs::remove_all(d);
}

// The held-out guard keeps a re-fit only when it validates better than the deployed backend (a tie
// keeps the deployed one); otherwise the test figures become the deployed backend's, and the re-fit's
// own stays on record.
TEST(Guard, KeepsTheDeployedBackendUnlessTheRefitValidatesBetter) {
  const std::vector<int> y{0, 1, 1, 0};
  distill::MatD refit(4, 2), none(4, 2);
  refit << 1, 0, 0, 1, 1, 0, 1, 0;  // 2 of 4 right
  none << 1, 0, 0, 1, 0, 1, 1, 0;   // 4 of 4 right
  auto trial = [&](double val) {
    CompensationTrial t;
    t.test_logits = refit;
    t.test_accuracy = 0.5;
    t.val_accuracy = val;
    guard_against_none(t, 0.71, none, y);
    return t;
  };
  for (double val : {0.70, 0.71}) {
    const CompensationTrial t = trial(val);
    EXPECT_TRUE(t.kept_uncompensated) << val;
    EXPECT_DOUBLE_EQ(t.test_accuracy, 1.0);
    EXPECT_DOUBLE_EQ(t.refit_test_accuracy, 0.5);
    EXPECT_TRUE(t.test_logits.isApprox(none));
  }
  const CompensationTrial better = trial(0.72);
  EXPECT_FALSE(better.kept_uncompensated);
  EXPECT_DOUBLE_EQ(better.test_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(better.refit_test_accuracy, 0.5);
  EXPECT_TRUE(better.test_logits.isApprox(refit));
}

// A calibration saved as a named object (saved.hpp) reads back bit-exactly, and an Experiment that
// adopts it on a fresh bench of the same build measures what the calibrating Experiment measures
// (within the bench's noise and the drift between the two), with one drift check made at adoption.
// Broken saves and a calibration that does not fit the camera are refused with the reason.
TEST(SavedCalibration, RoundTripsExactlyAndAnAdoptedOneMeasuresLikeTheOriginal) {
  Deployed dep;
  std::mt19937_64 xr(9);
  const distill::Mat<float> x = random_images(12, xr);
  MeasureOptions mo;
  mo.drift_every = 100;
  mo.drift.frames = 2;
  const fs::path dir = fs::temp_directory_path() / ("hilo_saved_cal_" + std::to_string(::getpid()));
  fs::remove_all(dir);

  SimRig rig(dep.opts);
  ExperimentBench b = bench_of(rig);
  Experiment ex(b, dep.design, dep.deployment, dep.student, mo, {}, "moderate");
  EXPECT_THROW((void)ex.saved_calibration({}), std::logic_error);
  std::mt19937_64 rng(5);
  auto cal = ex.calibrate(quick_calibration(), rng);
  ASSERT_TRUE(cal) << cal.error().message;
  const SavedCalibration saved = ex.saved_calibration({{"note", "test"}});
  save_calibration(dir, saved);
  const SavedCalibration back = load_calibration(dir);
  const auto& c0 = saved.calibration;
  const auto& c1 = back.calibration;
  EXPECT_TRUE((c1.dark.dark == c0.dark.dark).all());
  EXPECT_TRUE((c1.dark.hot == c0.dark.hot).all());
  EXPECT_EQ(c1.dark.temporal_noise, c0.dark.temporal_noise);
  EXPECT_EQ(c1.flat.flat.size(), c0.flat.flat.size());
  EXPECT_EQ(c1.pose.shift_x_px, c0.pose.shift_x_px);
  EXPECT_EQ(c1.pose.rotation_deg, c0.pose.rotation_deg);
  EXPECT_EQ(c1.pose.scale, c0.pose.scale);
  EXPECT_EQ(c1.gain, c0.gain);
  EXPECT_EQ(c1.layout.offset, c0.layout.offset);
  EXPECT_EQ(c1.layout.object_row, c0.layout.object_row);
  ASSERT_EQ(c1.tiles.size(), c0.tiles.size());
  for (std::size_t k = 0; k < c0.tiles.size(); ++k) EXPECT_EQ(c1.tiles[k].shift, c0.tiles[k].shift);
  EXPECT_EQ(back.blur_px, saved.blur_px);
  EXPECT_EQ(back.calibrated_at_s, saved.calibrated_at_s);
  EXPECT_EQ(back.summary["note"], "test");
  ASSERT_EQ(back.drift_reference.frames.size(), saved.drift_reference.frames.size());
  for (std::size_t k = 0; k < saved.drift_reference.frames.size(); ++k) {
    EXPECT_TRUE((back.drift_reference.frames[k] == saved.drift_reference.frames[k]).all());
    EXPECT_TRUE((back.drift_reference.probes[k] == saved.drift_reference.probes[k]).all());
  }
  auto original = ex.measure(x);
  ASSERT_TRUE(original) << original.error().message;
  auto repeat = ex.measure(x);  // the same Experiment again: the bench's own noise and drift
  ASSERT_TRUE(repeat);

  SimRig rig2(dep.opts);
  ExperimentBench b2 = bench_of(rig2);
  Experiment adopted(b2, dep.design, dep.deployment, dep.student, mo, {}, "moderate");
  ASSERT_FALSE(adopted.adopt(back));
  EXPECT_EQ(adopted.drift_checks().size(), 1u) << "adoption starts with a drift check against the saved reference";
  EXPECT_EQ(adopted.frame_integrity()["content_check"]["active"], true);
  auto again = adopted.measure(x);
  ASSERT_TRUE(again) << again.error().message;
  const distill::MatD& a = original.value();
  const double noise = std::sqrt((repeat.value() - a).array().square().mean());
  const double diff = std::sqrt((again.value() - a).array().square().mean());
  std::printf("rms difference: repeated %.5f, adopted %.5f\n", noise, diff);
  EXPECT_LT(diff, 2.0 * noise) << "the adopted calibration measures differently from the original";
  // Control: the same bench measured with an identity pose (no registration) differs far more.
  SavedCalibration unregistered = back;
  unregistered.calibration.pose = sim::Pose{};
  unregistered.calibration.pose.gain = back.calibration.pose.gain;
  SimRig rig3(dep.opts);
  ExperimentBench b3 = bench_of(rig3);
  MeasureOptions report = mo;
  report.drift_action = "report";
  Experiment wrong(b3, dep.design, dep.deployment, dep.student, report, {}, "moderate");
  ASSERT_FALSE(wrong.adopt(unregistered));
  auto off = wrong.measure(x);
  ASSERT_TRUE(off);
  const double control = std::sqrt((off.value() - a).array().square().mean());
  std::printf("rms difference with an identity pose: %.5f\n", control);
  EXPECT_GT(control, 2.0 * diff) << "the control does not show the registration";

  // Refusals.
  SavedCalibration misfit = back;
  misfit.calibration.layout.object_row = 100000;
  EXPECT_THROW((void)adopted.adopt(misfit), std::invalid_argument);
  sim::write_npy(dir / "hot.npy", sim::from_rarray(sim::RArray::Zero(3, 3)));
  try {
    (void)load_calibration(dir);
    ADD_FAILURE() << "a hot-pixel map of the wrong shape was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("shapes disagree"), std::string::npos) << e.what();
  }
  fs::remove(dir / "calibration.json");
  try {
    (void)load_calibration(dir);
    ADD_FAILURE() << "a directory without calibration.json was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("calibration.json missing"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
