// The capture job under device faults: the simulated devices inject camera timeouts, corrupt and
// dropped frames, disconnects and SLM write failures at seeded rates; the drivers' retry wrappers and
// the capture's own re-show/re-grab must still store every input's own frame, in order, and report
// counters that match what the devices did. A test-side decorator between each simulated device and
// its retry wrapper counts what the device really returned (errors by code, sequence gaps).
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <set>

#include "../drivers/slow_slm.hpp"
#include "harness.hpp"
#include "hilo/controller/capture.hpp"
#include "hilo/drivers/bench_config.hpp"

namespace hilo::controller::testing {
namespace {

namespace dr = hilo::drivers;
using nlohmann::json;

constexpr std::size_t kFrames = 2000;      // the all-kinds capture
constexpr std::size_t kKindFrames = 2000;  // one fault kind at a time

struct Seen {
  std::uint64_t timeouts = 0, corrupt = 0, disconnects = 0, write_failures = 0, frames = 0;
  std::uint64_t gap_sum = 0, gap_events = 0;
};

class CountingCamera final : public dr::Camera {
 public:
  CountingCamera(std::unique_ptr<dr::Camera> inner, Seen& seen) : in_(std::move(inner)), seen_(seen) {}
  std::string name() const override { return in_->name(); }
  int width_px() const override { return in_->width_px(); }
  int height_px() const override { return in_->height_px(); }
  DeviceState state() const override { return in_->state(); }
  DeviceStatus open() override { return in_->open(); }
  void close() override { in_->close(); }
  dr::PixelFormat pixel_format() const override { return in_->pixel_format(); }
  DeviceStatus set_pixel_format(dr::PixelFormat f) override { return in_->set_pixel_format(f); }
  double exposure_ms() const override { return in_->exposure_ms(); }
  DeviceStatus set_exposure_ms(double ms) override { return in_->set_exposure_ms(ms); }
  double gain_db() const override { return in_->gain_db(); }
  DeviceStatus set_gain_db(double db) override { return in_->set_gain_db(db); }
  dr::TriggerMode trigger_mode() const override { return in_->trigger_mode(); }
  DeviceStatus set_trigger_mode(dr::TriggerMode m) override { return in_->set_trigger_mode(m); }
  DeviceResult<dr::Frame> grab(std::chrono::milliseconds t) override {
    auto r = in_->grab(t);
    if (!r) {
      switch (r.error().code) {
        case DeviceErrc::timeout: ++seen_.timeouts; break;
        case DeviceErrc::corrupt_frame: ++seen_.corrupt; break;
        case DeviceErrc::disconnected: ++seen_.disconnects; break;
        default: ADD_FAILURE() << "unexpected camera error " << r.error().message;
      }
      return r;
    }
    const auto s = r.value().sequence;
    if (seen_.frames > 0 && s > last_ + 1) {
      seen_.gap_sum += s - last_ - 1;
      ++seen_.gap_events;
    }
    last_ = s;
    ++seen_.frames;
    return r;
  }

 private:
  std::unique_ptr<dr::Camera> in_;
  Seen& seen_;
  std::uint64_t last_ = 0;
};

class CountingSlm final : public dr::Slm {
 public:
  CountingSlm(std::unique_ptr<dr::Slm> inner, Seen& seen) : in_(std::move(inner)), seen_(seen) {}
  std::string name() const override { return in_->name(); }
  int width_px() const override { return in_->width_px(); }
  int height_px() const override { return in_->height_px(); }
  double pixel_pitch_um() const override { return in_->pixel_pitch_um(); }
  int bit_depth() const override { return in_->bit_depth(); }
  double settle_time_ms() const override { return in_->settle_time_ms(); }
  DeviceState state() const override { return in_->state(); }
  DeviceStatus open() override { return in_->open(); }
  void close() override { in_->close(); }
  DeviceStatus show(const cv::Mat& levels) override {
    auto e = in_->show(levels);
    if (e && e->code == DeviceErrc::write_failed) ++seen_.write_failures;
    return e;
  }

 private:
  std::unique_ptr<dr::Slm> in_;
  Seen& seen_;
};

// One simulated bench (tests/controller/sim_fast.yaml) with the given faults, on a manual clock.
struct SimRig {
  dr::ManualClock clock;
  std::unique_ptr<sim::SimulatedBench> bench;
  std::unique_ptr<dr::SimSlm> element;
  std::unique_ptr<dr::RetryingSlm> slm;
  std::unique_ptr<dr::RetryingCamera> camera;
  Seen seen;

  explicit SimRig(const dr::FaultOptions& cam_faults, const dr::FaultOptions& slm_faults) {
    const auto cfg = dr::load_bench_config(std::filesystem::path(HILO_TEST_SOURCE_DIR) / "sim_fast.yaml");
    bench = std::make_unique<sim::SimulatedBench>(*cfg.simulator);
    element = std::make_unique<dr::SimSlm>(dr::SimSlmRole::element, *bench, clock, dr::SimTiming::fast());
    EXPECT_FALSE(element->open());
    EXPECT_FALSE(element->show(cv::Mat::zeros(element->height_px(), element->width_px(), CV_8UC1)));
    auto s = std::make_unique<dr::SimSlm>(dr::SimSlmRole::input, *bench, clock, dr::SimTiming::fast(), slm_faults, "sim-input");
    auto c = std::make_unique<dr::SimCamera>(*bench, clock, 7, dr::SimTiming::fast(), cam_faults);
    slm = std::make_unique<dr::RetryingSlm>(std::make_unique<CountingSlm>(std::move(s), seen), dr::RetryPolicy{}, clock);
    camera = std::make_unique<dr::RetryingCamera>(std::make_unique<CountingCamera>(std::move(c), seen), dr::RetryPolicy{},
                                                  clock);
    EXPECT_FALSE(slm->open());
    EXPECT_FALSE(camera->open());
  }
};

std::shared_ptr<const ImageSet> test_images() {
  static auto set = std::make_shared<const ImageSet>(read_idx_split("/usr/share/datasets/fashion-mnist", "test"));
  return set;
}

struct Result {
  JobRecord rec;
  json manifest;
  std::vector<std::uint16_t> frames;
  std::vector<std::int64_t> indices;
  json device_counters;
};

// `input` replaces the rig's input SLM (a decorator over it); `setup` adjusts devices and options.
Result capture(SimRig& rig, const std::string& name, std::size_t frames = kFrames, dr::Slm* input = nullptr,
               const std::function<void(Devices&, CaptureOptions&)>& setup = {}) {
  Harness h(name);
  std::mutex device_mu;
  Devices devices{input ? *input : *rig.slm, *rig.camera, device_mu};
  devices.slm_retries = &rig.slm->counters();
  devices.camera_retries = &rig.camera->counters();
  CaptureInputs in{test_images(), 0, frames, true};
  CaptureOptions opt;
  opt.chunk_records = 500;
  opt.grab_timeout = std::chrono::milliseconds(5);
  opt.previews = 0;
  if (setup) setup(devices, opt);
  auto rec = h.jobs->submit("capture", {{"dataset", "fashion-mnist"}}, static_cast<std::int64_t>(frames), [&](const JobRecord& r) {
    return JobManager::Work([&, r](JobControl& ctl) {
      return run_capture(in, opt, devices, h.dir / r.run_id, {{"params", r.params}}, ctl, steady_s);
    });
  });
  h.jobs->wait_idle();
  Result out;
  out.rec = *h.jobs->get(rec->id);
  out.manifest = read_manifest(h.dir / rec->run_id);
  if (auto a = load_run_array(h.dir / rec->run_id, out.manifest, "frames")) {
    out.frames.resize(a->bytes.size() / 2);
    std::memcpy(out.frames.data(), a->bytes.data(), a->bytes.size());
  }
  if (auto a = load_run_array(h.dir / rec->run_id, out.manifest, "indices")) {
    out.indices.resize(a->bytes.size() / 8);
    std::memcpy(out.indices.data(), a->bytes.data(), a->bytes.size());
  }
  out.device_counters = devices.counters_json();
  return out;
}

// Frames of a fault-free capture of the same inputs (sensor noise differs from any other run).
// ctest runs every test in its own process, so each computes only the n frames it needs.
std::vector<std::uint16_t> reference_frames(std::size_t n) {
  SimRig rig({}, {});
  auto r = capture(rig, "faults_ref", n);
  EXPECT_EQ(r.rec.state, JobState::done) << r.rec.error;
  return r.frames;
}

double dist2(const std::uint16_t* a, const std::uint16_t* b, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    s += d * d;
  }
  return s;
}

// Every stored frame is nearer to the reference frame of its own input than to those of the inputs
// before and after it and of 8 random others.
void expect_frames_of_their_inputs(const Result& r) {
  const std::size_t n = r.indices.size();
  const auto ref = reference_frames(n);
  const std::size_t px = ref.size() / n;
  ASSERT_EQ(r.frames.size(), n * px);
  std::mt19937_64 rng(3);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double own = dist2(&r.frames[i * px], &ref[i * px], px);
    std::vector<std::size_t> others;
    if (i > 0) others.push_back(i - 1);
    if (i + 1 < n) others.push_back(i + 1);
    for (int k = 0; k < 8; ++k) others.push_back(rng() % n);
    for (auto j : others) {
      if (j != i && dist2(&r.frames[i * px], &ref[j * px], px) <= own) {
        ++wrong;
        break;
      }
    }
  }
  EXPECT_EQ(wrong, 0u);
}

void expect_consistent(const Result& r, const Seen& seen, std::size_t frames) {
  ASSERT_EQ(r.rec.state, JobState::done) << r.rec.error;
  ASSERT_EQ(r.indices.size(), frames);
  for (std::size_t i = 0; i < frames; ++i) ASSERT_EQ(r.indices[i], std::int64_t(i));
  const json c = r.rec.stats.at("capture");
  EXPECT_EQ(c["frames_stored"], frames);
  const std::uint64_t cam_errors = seen.timeouts + seen.corrupt + seen.disconnects;
  EXPECT_EQ(c["camera_driver"]["retries"].get<std::uint64_t>() + c["camera_driver"]["failures"].get<std::uint64_t>(), cam_errors);
  EXPECT_EQ(c["grab_errors"], c["camera_driver"]["failures"]);
  EXPECT_EQ(c["slm_driver"]["retries"].get<std::uint64_t>() + c["slm_driver"]["failures"].get<std::uint64_t>(),
            seen.write_failures);
  EXPECT_EQ(c["show_errors"], c["slm_driver"]["failures"]);
  EXPECT_EQ(c["frames_dropped"], seen.gap_sum);
  EXPECT_EQ(c["gap_frames"], seen.gap_events);
  EXPECT_EQ(c["out_of_order"], 0);
  EXPECT_EQ(c["regrabs"].get<std::uint64_t>(), c["grab_errors"].get<std::uint64_t>() + c["show_errors"].get<std::uint64_t>() +
                                                   c["gap_frames"].get<std::uint64_t>());
  // Every disconnect is reopened by the driver, the last attempt's too, so no grab meets a closed device
  // and reports the same disconnect again.
  EXPECT_EQ(c["camera_driver"]["reconnects"].get<std::uint64_t>(), seen.disconnects);
  EXPECT_EQ(r.manifest["stats"]["capture"], c);  // the run's manifest keeps them too
  EXPECT_EQ(r.device_counters, c);               // devices.status totals (one job)
  expect_frames_of_their_inputs(r);
}

struct Case {
  const char* name;
  dr::FaultOptions cam, slm;
  std::uint64_t Seen::*counter;
};

class CaptureFaults : public ::testing::TestWithParam<Case> {};

TEST_P(CaptureFaults, EveryInputGetsItsOwnFrameAndTheCountersMatchTheDevices) {
  const Case& k = GetParam();
  SimRig rig(k.cam, k.slm);
  const Result r = capture(rig, std::string("faults_") + k.name, kKindFrames);
  // 15 % of somewhat more operations than frames (re-grabs add some): the device really injected
  // faults of this kind, within a factor of two of the nominal 0.15 per frame.
  const double nominal = 0.15 * static_cast<double>(kKindFrames);
  EXPECT_GT(static_cast<double>(rig.seen.*k.counter), 0.5 * nominal) << k.name;
  EXPECT_LT(static_cast<double>(rig.seen.*k.counter), 2.0 * nominal) << k.name;
  expect_consistent(r, rig.seen, kKindFrames);
}

dr::FaultOptions cam(double dr::FaultOptions::*rate, double v, std::uint64_t seed) {
  dr::FaultOptions f;
  f.seed = seed;
  f.*rate = v;
  return f;
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, CaptureFaults,
    ::testing::Values(Case{"timeout", cam(&dr::FaultOptions::camera_timeout_rate, 0.15, 11), {}, &Seen::timeouts},
                      Case{"corrupt", cam(&dr::FaultOptions::corrupt_frame_rate, 0.15, 12), {}, &Seen::corrupt},
                      Case{"drop", cam(&dr::FaultOptions::dropped_frame_rate, 0.15, 13), {}, &Seen::gap_sum},
                      Case{"disconnect", cam(&dr::FaultOptions::camera_disconnect_rate, 0.15, 14), {}, &Seen::disconnects},
                      Case{"slm_write", {}, cam(&dr::FaultOptions::slm_write_failure_rate, 0.15, 15), &Seen::write_failures}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CaptureFaults, AllKindsTogetherStillStoreEveryFrame) {
  dr::FaultOptions c;
  c.seed = 21;
  c.camera_timeout_rate = c.corrupt_frame_rate = c.dropped_frame_rate = c.camera_disconnect_rate = 0.05;
  SimRig rig(c, cam(&dr::FaultOptions::slm_write_failure_rate, 0.05, 22));
  const Result r = capture(rig, "faults_all");
  for (auto n : {rig.seen.timeouts, rig.seen.corrupt, rig.seen.disconnects, rig.seen.gap_sum, rig.seen.write_failures}) {
    EXPECT_GT(n, 50u);  // 5 % of 2000+ operations, each kind
  }
  expect_consistent(r, rig.seen, kFrames);
}

TEST(CaptureFaults, ACameraThatNeverDeliversFailsTheJobLoudlyKeepingNothingWrong) {
  SimRig rig(cam(&dr::FaultOptions::camera_timeout_rate, 1.0, 31), {});
  const Result r = capture(rig, "faults_dead", 10);
  EXPECT_EQ(r.rec.state, JobState::failed);
  EXPECT_NE(r.rec.error.find("input 0: no valid frame after 10 show+grab cycles"), std::string::npos) << r.rec.error;
  EXPECT_NE(r.rec.error.find("[timeout]"), std::string::npos) << r.rec.error;
  EXPECT_EQ(r.manifest["records"], 0);
  EXPECT_EQ(r.rec.stats["capture"]["timeouts"], 10);
}

// The content check through run_capture on the simulated moderate bench, uncalibrated design model.
// Shows 1-3 are the dark reference; show 6 is input 2's first (it stays on input 1), 10 and 11 input
// 5's first two (both stale), 17 input 10's first.
Result slow_capture(bool content_check, const sim::BenchOptions* design, std::size_t n = 16) {
  SimRig rig({}, {});
  dr::testing::SlowSlm slow(*rig.slm, {6, 10, 11, 17});
  return capture(rig, content_check ? "content_slow" : "content_off", n, &slow, [&](Devices& d, CaptureOptions& o) {
    d.design = design;
    d.element_levels = [] { return cv::Mat(cv::Mat::zeros(64, 64, CV_8UC1)); };  // SimRig's element: flat
    o.content.enabled = content_check;
  });
}

const sim::BenchOptions& sim_fast_design() {
  static const auto cfg = dr::load_bench_config(std::filesystem::path(HILO_TEST_SOURCE_DIR) / "sim_fast.yaml");
  return *cfg.simulator;
}

TEST(CaptureContent, RejectsEveryFrameThatShowsThePreviousInputAndStoresTheFreshOne) {
  const Result r = slow_capture(true, &sim_fast_design());
  ASSERT_EQ(r.rec.state, JobState::done) << r.rec.error;
  const json& cc = r.rec.stats.at("content_check");
  EXPECT_TRUE(cc.at("active").get<bool>()) << cc.dump();
  EXPECT_EQ(cc.at("reference_frames"), 3);
  const json& c = r.rec.stats.at("capture");
  EXPECT_EQ(c["content_rejects"], 4) << c.dump();
  EXPECT_EQ(c["content_undecidable"], 0) << c.dump();
  EXPECT_EQ(c["regrabs"], 4) << c.dump();
  EXPECT_EQ(r.manifest["stats"]["capture"]["content_rejects"], 4);
  EXPECT_EQ(r.device_counters["content_rejects"], 4);
  expect_frames_of_their_inputs(r);
}

// The control: without the check the same slow SLM files frames under the wrong input, so the test
// above can fail.
TEST(CaptureContent, WithoutTheCheckTheSlowFramesAreFiledUnderTheWrongInput) {
  const Result r = slow_capture(false, &sim_fast_design());
  ASSERT_EQ(r.rec.state, JobState::done) << r.rec.error;
  EXPECT_FALSE(r.rec.stats.at("content_check").at("active").get<bool>());
  EXPECT_EQ(r.rec.stats["content_check"]["reason"], "disabled by the request (content_check.enabled false)");
  const auto ref = reference_frames(r.indices.size());
  const std::size_t px = ref.size() / r.indices.size();
  // Without reference shows or re-grabs, show k is input k − 1's only one: input 5's frame images
  // input 4, input 9's input 8.
  for (std::size_t i : {5u, 9u}) {
    EXPECT_LT(dist2(&r.frames[i * px], &ref[(i - 1) * px], px), dist2(&r.frames[i * px], &ref[i * px], px)) << i;
  }
}

TEST(CaptureContent, ABenchWithoutADesignSaysTheCheckIsOff) {
  const Result r = slow_capture(true, nullptr, 4);
  ASSERT_EQ(r.rec.state, JobState::done) << r.rec.error;
  EXPECT_EQ(r.rec.stats["content_check"], json({{"active", false}, {"reason", "the bench config has no design section"}}));
  EXPECT_EQ(r.manifest["stats"]["content_check"]["active"], false);
}

}  // namespace
}  // namespace hilo::controller::testing
