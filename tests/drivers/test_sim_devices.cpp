// Simulated SLMs and camera over one SimulatedBench, on a ManualClock: timing, sequence numbers,
// the optics reaching the camera, and injected faults.
#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include "hilo/drivers/retry.hpp"
#include "hilo/drivers/sim_devices.hpp"

namespace hilo::drivers {
namespace {

sim::BenchOptions small_bench() {
  sim::BenchOptions o;
  o.input.rows = 8;
  o.input.cols = 8;
  o.input.photons_per_ms = 2000;
  o.element.slm.rows = 16;
  o.element.slm.cols = 16;
  o.camera.rows = 32;
  o.camera.cols = 32;
  o.camera.exposure_ms = 10.0;
  return o;
}

TEST(SimDevices, ShowAndGrabFollowTheTimingModelOnTheClock) {
  sim::SimulatedBench bench(small_bench());
  ManualClock clock;
  SimTiming t;
  t.settle_time_ms = 5.0;
  t.frame_rate_hz = 50.0;  // 20 ms period
  t.readout_ms = 1.0;
  SimSlm input(SimSlmRole::input, bench, clock, t);
  SimSlm element(SimSlmRole::element, bench, clock, t);
  SimCamera cam(bench, clock, 3, t);
  ASSERT_FALSE(input.open());
  ASSERT_FALSE(element.open());
  ASSERT_FALSE(cam.open());
  EXPECT_EQ(input.width_px(), 8);
  EXPECT_EQ(element.width_px(), 16);
  EXPECT_EQ(cam.width_px(), 32);
  EXPECT_EQ(cam.pixel_format(), PixelFormat::mono12);

  ASSERT_FALSE(element.show(cv::Mat(16, 16, CV_8UC1, cv::Scalar(0))));
  ASSERT_FALSE(input.show(cv::Mat(8, 8, CV_8UC1, cv::Scalar(255))));
  EXPECT_NEAR(clock.now_s(), 0.010, 1e-9);  // two settles of 5 ms
  auto f0 = cam.grab(std::chrono::milliseconds(100));
  ASSERT_TRUE(f0.ok()) << f0.error().message;
  EXPECT_NEAR(f0.value().timestamp_s, 0.010 + 0.011, 1e-9);  // exposure 10 + readout 1
  auto f1 = cam.grab(std::chrono::milliseconds(100));
  ASSERT_TRUE(f1.ok());
  EXPECT_NEAR(f1.value().timestamp_s, 0.010 + 0.020 + 0.011, 1e-9);  // next start one period later
  EXPECT_EQ(f0.value().sequence, 0u);
  EXPECT_EQ(f1.value().sequence, 1u);
  EXPECT_EQ(f0.value().image.type(), CV_16UC1);

  // Light reaches the camera: a bright input gives far more counts than a dark one.
  const double bright = cv::sum(f1.value().image)[0];
  ASSERT_FALSE(input.show(cv::Mat(8, 8, CV_8UC1, cv::Scalar(0))));
  auto dark = cam.grab(std::chrono::milliseconds(100));
  ASSERT_TRUE(dark.ok());
  EXPECT_GT(bright, 10.0 * (cv::sum(dark.value().image)[0] + 1.0));
}

TEST(SimDevices, FastModeTakesNoTime) {
  sim::SimulatedBench bench(small_bench());
  ManualClock clock;
  SimSlm input(SimSlmRole::input, bench, clock, SimTiming::fast());
  SimSlm element(SimSlmRole::element, bench, clock, SimTiming::fast());
  SimCamera cam(bench, clock, 3, SimTiming::fast());
  ASSERT_FALSE(input.open());
  ASSERT_FALSE(element.open());
  ASSERT_FALSE(cam.open());
  ASSERT_FALSE(element.show(cv::Mat(16, 16, CV_8UC1, cv::Scalar(3))));
  for (int i = 0; i < 5; ++i) {
    ASSERT_FALSE(input.show(cv::Mat(8, 8, CV_8UC1, cv::Scalar(100))));
    ASSERT_TRUE(cam.grab(std::chrono::milliseconds(10)).ok());
  }
  EXPECT_EQ(clock.slept_s(), 0.0);
}

TEST(SimDevices, RefusesWrongPatternsAndFixedSettings) {
  sim::SimulatedBench bench(small_bench());
  ManualClock clock;
  SimSlm element(SimSlmRole::element, bench, clock);
  SimCamera cam(bench, clock, 3);
  ASSERT_FALSE(element.open());
  EXPECT_EQ(element.show(cv::Mat(15, 16, CV_8UC1))->code, DeviceErrc::invalid_argument);
  EXPECT_EQ(element.show(cv::Mat(16, 16, CV_16UC1, cv::Scalar(256)))->message,
            "slm 'sim-element': level 256 exceeds the bit depth 8");
  EXPECT_EQ(cam.set_exposure_ms(20.0)->code, DeviceErrc::invalid_argument);
  EXPECT_FALSE(cam.set_exposure_ms(10.0));
  ASSERT_FALSE(cam.open());
  auto g = cam.grab(std::chrono::milliseconds(10));  // nothing shown yet
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code, DeviceErrc::invalid_argument);
}

TEST(SimDevices, InjectedFaultsHitAtTheirRatesAndAreRetried) {
  sim::SimulatedBench bench(small_bench());
  ManualClock clock;
  FaultOptions faults;
  faults.seed = 99;
  faults.camera_timeout_rate = 0.1;
  faults.corrupt_frame_rate = 0.1;
  faults.dropped_frame_rate = 0.1;
  faults.slm_write_failure_rate = 0.2;
  ASSERT_EQ(faults.validate(), "");
  SimSlm input(SimSlmRole::input, bench, clock, SimTiming::fast(), faults);
  SimSlm element(SimSlmRole::element, bench, clock, SimTiming::fast());
  SimCamera cam(bench, clock, 3, SimTiming::fast(), faults);
  ASSERT_FALSE(element.open());
  ASSERT_FALSE(element.show(cv::Mat(16, 16, CV_8UC1, cv::Scalar(0))));
  ASSERT_FALSE(input.open());
  ASSERT_FALSE(cam.open());
  int write_failures = 0, timeouts = 0, corrupt = 0, skips = 0, ok = 0;
  std::uint64_t last = 0;
  bool first = true;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    if (auto e = input.show(cv::Mat(8, 8, CV_8UC1, cv::Scalar(50)))) {
      EXPECT_EQ(e->code, DeviceErrc::write_failed);
      ++write_failures;
    }
    auto f = cam.grab(std::chrono::milliseconds(20));
    if (f.ok()) {
      if (!first && f.value().sequence > last + 1) ++skips;
      last = f.value().sequence;
      first = false;
      ++ok;
    } else if (f.error().code == DeviceErrc::timeout) {
      ++timeouts;
    } else {
      EXPECT_EQ(f.error().code, DeviceErrc::corrupt_frame);
      ++corrupt;
    }
  }
  // Binomial(2000, p): the counts lie within ±5 standard deviations of n·p.
  auto near = [&](int count, double p) { return std::abs(count - n * p) < 5.0 * std::sqrt(n * p * (1 - p)); };
  EXPECT_TRUE(near(write_failures, 0.2)) << write_failures;
  EXPECT_TRUE(near(timeouts, 0.1)) << timeouts;
  EXPECT_TRUE(near(corrupt, 0.09)) << corrupt;  // drawn only when no timeout
  EXPECT_GT(skips, 50);
  EXPECT_NEAR(clock.slept_s(), timeouts * 0.020, 1e-6);  // a timeout waits its timeout

  // Through the retry decorator, almost every operation succeeds.
  RetryPolicy p;
  p.max_attempts = 5;
  RetryingCamera rcam(std::make_unique<SimCamera>(bench, clock, 3, SimTiming::fast(), faults), p, clock);
  ASSERT_FALSE(rcam.open());
  int failures = 0;
  for (int i = 0; i < 500; ++i) failures += rcam.grab(std::chrono::milliseconds(20)).ok() ? 0 : 1;
  EXPECT_LE(failures, 1);
  EXPECT_GT(rcam.counters().retries, 50u);
  EXPECT_EQ(rcam.counters().failures, static_cast<std::uint64_t>(failures));
}

TEST(SimDevices, InjectedDisconnectLastsUntilReopen) {
  sim::SimulatedBench bench(small_bench());
  ManualClock clock;
  FaultOptions faults;
  faults.camera_disconnect_rate = 1.0;
  SimCamera cam(bench, clock, 3, SimTiming::fast(), faults);
  ASSERT_FALSE(cam.open());
  auto g = cam.grab(std::chrono::milliseconds(5));
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code, DeviceErrc::disconnected);
  EXPECT_EQ(cam.state(), DeviceState::disconnected);
  EXPECT_EQ(cam.grab(std::chrono::milliseconds(5)).error().message,
            "camera 'sim-camera': grab on a closed or lost device");
  FaultOptions bad;
  bad.camera_timeout_rate = 2.0;
  EXPECT_EQ(bad.validate(), "faults.camera_timeout_rate must be in [0, 1], got 2");
}

}  // namespace
}  // namespace hilo::drivers

// Regression: SteadyClock counted from the machine's boot, so on a machine up for hours a new simulated
// bench was hours into its drift (moderate: −0.00005 gain/s) and a fresh daemon grabbed dark frames.
TEST(SteadyClock, StartsAtZeroWhenConstructed) {
  hilo::drivers::SteadyClock c;
  const double t = c.now_s();
  EXPECT_GE(t, 0.0);
  EXPECT_LT(t, 1.0);
  c.sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(c.now_s(), t + 0.019);
}
