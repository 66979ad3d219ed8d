// Retry policy, retry helper and the retrying decorators, driven by scripted plain test doubles.
#include <deque>

#include <gtest/gtest.h>

#include "hilo/drivers/retry.hpp"

namespace hilo::drivers {
namespace {

TEST(RetryPolicy, DefaultIsValid) { EXPECT_EQ(RetryPolicy{}.validate(), ""); }

TEST(RetryPolicy, ValidateNamesTheViolatedRule) {
  RetryPolicy p;
  p.max_attempts = 0;
  EXPECT_EQ(p.validate(), "retry.max_attempts must be >= 1, got 0");
  p = {};
  p.backoff_factor = 0.5;
  EXPECT_NE(p.validate().find("retry.backoff_factor must be finite and >= 1"), std::string::npos);
  p = {};
  p.initial_backoff_ms = -1;
  EXPECT_NE(p.validate().find("retry.initial_backoff_ms"), std::string::npos);
  p = {};
  p.max_backoff_ms = 1.0;
  EXPECT_NE(p.validate().find("retry.max_backoff_ms"), std::string::npos);
}

TEST(RetryPolicy, BackoffGrowsGeometricallyAndIsCapped) {
  RetryPolicy p;  // 5 ms, ×2, cap 500 ms
  EXPECT_EQ(p.backoff_before_attempt(1).count(), 0);
  EXPECT_EQ(p.backoff_before_attempt(2).count(), 5000);
  EXPECT_EQ(p.backoff_before_attempt(3).count(), 10000);
  EXPECT_EQ(p.backoff_before_attempt(4).count(), 20000);
  EXPECT_EQ(p.backoff_before_attempt(9).count(), 500000);  // 5·2^7 = 640 → capped
}

TEST(RetryPolicy, OnlyTransientErrorsAreRetried) {
  EXPECT_TRUE(is_transient(DeviceErrc::timeout));
  EXPECT_TRUE(is_transient(DeviceErrc::corrupt_frame));
  EXPECT_TRUE(is_transient(DeviceErrc::write_failed));
  EXPECT_TRUE(is_transient(DeviceErrc::disconnected));
  EXPECT_FALSE(is_transient(DeviceErrc::invalid_argument));
  EXPECT_FALSE(is_transient(DeviceErrc::io));
}

TEST(DeviceStrings, NameEveryValue) {
  EXPECT_EQ(to_string(DeviceState::ready), "ready");
  EXPECT_EQ(to_string(DeviceState::busy), "busy");
  EXPECT_EQ(to_string(DeviceState::fault), "fault");
  EXPECT_EQ(to_string(DeviceState::disconnected), "disconnected");
  EXPECT_EQ(to_string(DeviceErrc::corrupt_frame), "corrupt_frame");
  EXPECT_EQ(to_string(DeviceErrc::write_failed), "write_failed");
  EXPECT_EQ(to_string(PixelFormat::mono12), "mono12");
  EXPECT_EQ(bit_depth(PixelFormat::mono12), 12);
  EXPECT_EQ(bit_depth(PixelFormat::mono16), 16);
}

// Scripted SLM: show() pops the next scripted outcome (success when the script is empty).
class ScriptedSlm final : public Slm {
 public:
  std::deque<DeviceStatus> script;
  int shows = 0, opens = 0, closes = 0;
  bool reopen_fails = false;
  std::string name() const override { return "scripted"; }
  int width_px() const override { return 4; }
  int height_px() const override { return 2; }
  double pixel_pitch_um() const override { return 8.0; }
  int bit_depth() const override { return 8; }
  double settle_time_ms() const override { return 0.0; }
  DeviceState state() const override { return DeviceState::ready; }
  DeviceStatus open() override {
    ++opens;
    if (reopen_fails && opens > 1) return DeviceError{DeviceErrc::disconnected, "still gone"};
    return std::nullopt;
  }
  void close() override { ++closes; }
  DeviceStatus show(const cv::Mat&) override {
    ++shows;
    if (script.empty()) return std::nullopt;
    DeviceStatus s = script.front();
    script.pop_front();
    return s;
  }
};

DeviceError err(DeviceErrc c) { return {c, "slm 'scripted': " + std::string(to_string(c))}; }

TEST(RetryingSlm, RetriesTransientFailuresWithBackoffAndCounts) {
  auto inner = std::make_unique<ScriptedSlm>();
  ScriptedSlm& slm = *inner;
  slm.script = {err(DeviceErrc::write_failed), err(DeviceErrc::write_failed)};
  ManualClock clock;
  RetryingSlm r(std::move(inner), RetryPolicy{}, clock);
  EXPECT_FALSE(r.show(cv::Mat::zeros(2, 4, CV_8UC1)));
  EXPECT_EQ(slm.shows, 3);
  EXPECT_EQ(r.counters().attempts, 3u);
  EXPECT_EQ(r.counters().retries, 2u);
  EXPECT_EQ(r.counters().failures, 0u);
  EXPECT_NEAR(clock.slept_s(), 0.005 + 0.010, 1e-12);
}

TEST(RetryingSlm, ReportsTheLastErrorAfterMaxAttempts) {
  auto inner = std::make_unique<ScriptedSlm>();
  inner->script = {err(DeviceErrc::write_failed), err(DeviceErrc::write_failed), err(DeviceErrc::write_failed),
                   std::nullopt};
  ManualClock clock;
  RetryingSlm r(std::move(inner), RetryPolicy{}, clock);
  DeviceStatus s = r.show(cv::Mat::zeros(2, 4, CV_8UC1));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->code, DeviceErrc::write_failed);
  EXPECT_EQ(s->message, "after 3 attempts: slm 'scripted': write_failed");
  EXPECT_EQ(r.counters().failures, 1u);
}

TEST(RetryingSlm, NeverRetriesInvalidArgument) {
  auto inner = std::make_unique<ScriptedSlm>();
  ScriptedSlm& slm = *inner;
  slm.script = {err(DeviceErrc::invalid_argument)};
  ManualClock clock;
  RetryingSlm r(std::move(inner), RetryPolicy{}, clock);
  DeviceStatus s = r.show(cv::Mat::zeros(2, 4, CV_8UC1));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->code, DeviceErrc::invalid_argument);
  EXPECT_EQ(slm.shows, 1);
  EXPECT_EQ(clock.sleeps(), 0);
}

TEST(RetryingSlm, RetriesDisconnectedOnlyAfterASuccessfulReopen) {
  auto inner = std::make_unique<ScriptedSlm>();
  ScriptedSlm& slm = *inner;
  slm.script = {err(DeviceErrc::disconnected)};
  ManualClock clock;
  RetryingSlm r(std::move(inner), RetryPolicy{}, clock);
  EXPECT_FALSE(r.show(cv::Mat::zeros(2, 4, CV_8UC1)));
  EXPECT_EQ(slm.closes, 1);
  EXPECT_EQ(slm.opens, 1);
  EXPECT_EQ(r.counters().reconnects, 1u);

  slm.script = {err(DeviceErrc::disconnected)};
  slm.reopen_fails = true;
  DeviceStatus s = r.show(cv::Mat::zeros(2, 4, CV_8UC1));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->code, DeviceErrc::disconnected);
  EXPECT_EQ(slm.shows, 3);  // no second try: the device did not come back
}

TEST(RetryingSlm, ReopensAfterADisconnectOnTheLastAttemptWithoutWaiting) {
  auto inner = std::make_unique<ScriptedSlm>();
  ScriptedSlm& slm = *inner;
  slm.script = {err(DeviceErrc::disconnected), err(DeviceErrc::disconnected), err(DeviceErrc::disconnected)};
  ManualClock clock;
  RetryingSlm r(std::move(inner), RetryPolicy{}, clock);  // 3 attempts
  DeviceStatus s = r.show(cv::Mat::zeros(2, 4, CV_8UC1));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->code, DeviceErrc::disconnected);
  // Every disconnect reopened, the last one too, so the next show finds the device open.
  EXPECT_EQ(slm.opens, 3);
  EXPECT_EQ(r.counters().reconnects, 3u);
  EXPECT_EQ(r.counters().failures, 1u);
  EXPECT_NEAR(clock.slept_s(), 0.005 + 0.010, 1e-12);  // no backoff after the last attempt
}

// Scripted camera: grab() pops scripted results; settings are plain fields.
class ScriptedCamera final : public Camera {
 public:
  std::deque<DeviceResult<Frame>> script;
  double exposure = 1.0, gain = 0.0;
  PixelFormat format = PixelFormat::mono8;
  TriggerMode trigger = TriggerMode::free_run;
  bool open_ = true;
  std::string name() const override { return "scripted"; }
  int width_px() const override { return 2; }
  int height_px() const override { return 2; }
  DeviceState state() const override { return open_ ? DeviceState::ready : DeviceState::disconnected; }
  DeviceStatus open() override {
    if (!open_) {  // a reopened device comes back with factory settings
      open_ = true;
      exposure = 1.0;
      gain = 0.0;
    }
    return std::nullopt;
  }
  void close() override { open_ = false; }
  PixelFormat pixel_format() const override { return format; }
  DeviceStatus set_pixel_format(PixelFormat f) override { format = f; return std::nullopt; }
  double exposure_ms() const override { return exposure; }
  DeviceStatus set_exposure_ms(double ms) override { exposure = ms; return std::nullopt; }
  double gain_db() const override { return gain; }
  DeviceStatus set_gain_db(double db) override { gain = db; return std::nullopt; }
  TriggerMode trigger_mode() const override { return trigger; }
  DeviceStatus set_trigger_mode(TriggerMode m) override { trigger = m; return std::nullopt; }
  DeviceResult<Frame> grab(std::chrono::milliseconds) override {
    DeviceResult<Frame> r = script.front();
    script.pop_front();
    return r;
  }
};

TEST(RetryingCamera, ReconnectRestoresTheSettings) {
  auto inner = std::make_unique<ScriptedCamera>();
  ScriptedCamera& cam = *inner;
  Frame f;
  f.sequence = 7;
  cam.script = {DeviceError{DeviceErrc::disconnected, "gone"}, f};
  ManualClock clock;
  RetryingCamera r(std::move(inner), RetryPolicy{}, clock);
  ASSERT_FALSE(r.set_exposure_ms(12.5));
  ASSERT_FALSE(r.set_gain_db(3.0));
  auto g = r.grab(std::chrono::milliseconds(10));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g.value().sequence, 7u);
  EXPECT_EQ(cam.exposure, 12.5);
  EXPECT_EQ(cam.gain, 3.0);
  EXPECT_EQ(r.counters().reconnects, 1u);
}

TEST(RetryingCamera, TimeoutsExhaustTheAttempts) {
  auto inner = std::make_unique<ScriptedCamera>();
  for (int i = 0; i < 5; ++i) inner->script.push_back(DeviceError{DeviceErrc::timeout, "late"});
  ManualClock clock;
  RetryPolicy p;
  p.max_attempts = 4;
  RetryingCamera r(std::move(inner), p, clock);
  auto g = r.grab(std::chrono::milliseconds(10));
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code, DeviceErrc::timeout);
  EXPECT_EQ(r.counters().attempts, 4u);
  EXPECT_EQ(r.counters().retries, 3u);
  EXPECT_EQ(r.counters().failures, 1u);
  EXPECT_NEAR(clock.slept_s(), 0.005 + 0.010 + 0.020, 1e-12);
}

}  // namespace
}  // namespace hilo::drivers
