// FrameGate: frame counter and device timestamp against the time the pattern settled.
#include "hilo/drivers/frame_gate.hpp"

#include <deque>
#include <random>
#include <variant>

#include "hilo/drivers/gated_grab.hpp"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

namespace hilo::drivers {
namespace {

// A camera whose clock runs `offset_s` ahead of the host's; a frame that begins exposing at host time
// start_s is received `latency_ms` after its exposure of exposure_ms ends.
struct Cam {
  double offset_s = 12345.678;
  double exposure_ms = 10.0;
  std::uint64_t seq = 100;
  Frame frame(double start_s) {
    Frame f;
    f.sequence = seq++;
    f.timestamp_s = start_s + offset_s;
    f.exposure_timestamp = true;
    return f;
  }
  double received(double start_s, double latency_ms) const { return start_s + (exposure_ms + latency_ms) * 1e-3; }
};

TEST(FrameGate, AcceptsFramesExposedAfterTheSettle) {
  Cam cam;
  FrameGate g;
  for (int k = 0; k < 10; ++k) {
    const double settled = 1.0 + 0.1 * k;
    g.pattern_settled(settled);
    const double start = settled + 0.002;
    const auto c = g.check(cam.frame(start), cam.received(start, 0.3), cam.exposure_ms);
    EXPECT_EQ(c.verdict, FrameVerdict::accepted) << c.reason;
    EXPECT_TRUE(c.reason.empty());
  }
  // The offset bound is the true offset less the least latency seen (0.3 ms).
  EXPECT_NEAR(g.offset_s(), cam.offset_s - 0.3e-3, 1e-9);
}

TEST(FrameGate, RejectsAFrameThatBeganBeforeTheSettleAndSaysByHowMuch) {
  Cam cam;
  FrameGate g;
  g.pattern_settled(1.0);
  const double s0 = 1.01;
  ASSERT_EQ(g.check(cam.frame(s0), cam.received(s0, 0.2), cam.exposure_ms).verdict, FrameVerdict::accepted);
  g.pattern_settled(2.0);
  const double early = 2.0 - 0.005;  // a free-running frame already exposing 5 ms before the settle
  const auto c = g.check(cam.frame(early), cam.received(early, 0.2), cam.exposure_ms);
  EXPECT_EQ(c.verdict, FrameVerdict::early);
  EXPECT_NEAR(c.exposure_lead_ms, 5.0 - 0.2, 1e-6);  // understated by the least delivery latency seen
  EXPECT_NE(c.reason.find("before the pattern settled"), std::string::npos) << c.reason;
}

TEST(FrameGate, FirstFrameIsJudgedByItsOwnDelivery) {
  Cam cam;
  FrameGate g;
  g.pattern_settled(5.0);
  // Received 4 ms after the settle with a 10 ms exposure: it certainly began 6 ms or more before.
  const double start = 5.0 - 0.0065;
  const auto c = g.check(cam.frame(start), cam.received(start, 0.5), cam.exposure_ms);
  EXPECT_EQ(c.verdict, FrameVerdict::early);
  EXPECT_NEAR(c.exposure_lead_ms, 6.0, 1e-6);
}

TEST(FrameGate, CountsLostFramesAndFollowsARestartedCounter) {
  Cam cam;
  FrameGate g;
  g.pattern_settled(0.0);
  double t = 1.0;
  auto next = [&](std::uint64_t seq) {
    cam.seq = seq;
    t += 0.05;
    return g.check(cam.frame(t), cam.received(t, 0.3), cam.exposure_ms);
  };
  EXPECT_EQ(next(7).verdict, FrameVerdict::accepted);
  const auto gap = next(10);
  EXPECT_EQ(gap.verdict, FrameVerdict::gap);
  EXPECT_EQ(gap.lost, 2u);
  EXPECT_EQ(gap.reason, "frames 8..9 were lost");
  EXPECT_EQ(next(11).verdict, FrameVerdict::accepted);
  EXPECT_EQ(next(11).verdict, FrameVerdict::stale);
  EXPECT_EQ(next(0).verdict, FrameVerdict::stale);  // the camera restarted its numbering
  EXPECT_EQ(next(1).verdict, FrameVerdict::accepted);
}

// Over random latencies (0.1–3 ms) and leads: a frame begun after the settle is never rejected, and one
// begun more than the least latency in the window (+ tolerance) before it is always rejected.
TEST(FrameGate, NeverRejectsALateFrameAndAlwaysCatchesAClearlyEarlyOne) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> lat(0.1, 3.0), lead(-20.0, 20.0);
  Cam cam;
  FrameGateOptions o;
  o.offset_window = 16;
  FrameGate g(o);
  double t = 0.0;
  int early = 0, late = 0;
  for (int k = 0; k < 2000; ++k) {
    t += 0.05;
    g.pattern_settled(t);
    const double lead_ms = lead(rng);
    const double start = t - lead_ms * 1e-3;
    const auto c = g.check(cam.frame(start), cam.received(start, lat(rng)), cam.exposure_ms);
    if (lead_ms <= 0.0) {
      ++late;
      EXPECT_EQ(c.verdict, FrameVerdict::accepted) << k << ": " << c.reason;
    } else if (lead_ms > 3.0 + o.tolerance_ms) {
      ++early;
      EXPECT_EQ(c.verdict, FrameVerdict::early) << k << " lead " << lead_ms;
      EXPECT_LE(c.exposure_lead_ms, lead_ms + 1e-9);  // never overstated
    }
  }
  EXPECT_GT(early, 500);
  EXPECT_GT(late, 500);
}

TEST(FrameGate, FollowsADriftingCameraClockThroughItsWindow) {
  Cam cam;
  FrameGateOptions o;
  o.offset_window = 8;
  FrameGate g(o);
  double t = 0.0;
  for (int k = 0; k < 500; ++k) {
    t += 0.05;
    cam.offset_s -= 50e-6;  // the camera clock runs 1 ms/s slow: 50 µs per frame
    g.pattern_settled(t);
    const double start = t + 0.0005;
    const auto c = g.check(cam.frame(start), cam.received(start, 0.3), cam.exposure_ms);
    EXPECT_EQ(c.verdict, FrameVerdict::accepted) << k << ": " << c.reason;
  }
}

TEST(FrameGate, JudgesOnlyTheCounterOfFramesWithoutAnExposureTimestamp) {
  Cam cam;
  FrameGate g;
  g.pattern_settled(5.0);
  Frame f = cam.frame(4.0);  // a video file's position, say: not a device clock
  f.exposure_timestamp = false;
  EXPECT_EQ(g.check(f, 5.1, cam.exposure_ms).verdict, FrameVerdict::accepted);
  EXPECT_FALSE(g.has_offset());
  Frame late = cam.frame(1.0);
  late.exposure_timestamp = false;
  EXPECT_EQ(g.check(late, 5.2, cam.exposure_ms).verdict, FrameVerdict::accepted);
}

TEST(FrameGate, OptionsNameTheViolatedRule) {
  FrameGateOptions o;
  EXPECT_EQ(o.validate(), "");
  o.offset_window = 0;
  EXPECT_EQ(o.validate(), "frame_gate.offset_window must be >= 1, got 0");
  o = {};
  o.tolerance_ms = -1;
  EXPECT_EQ(o.validate().rfind("frame_gate.tolerance_ms must be >= 0", 0), 0u);
}

// GatedGrabber: show, settle, grab a frame the gate accepts; re-show and re-grab what it rejects.
// A host clock the test advances: the SLM's show() takes its settle, a grab its exposure and delivery.
struct HostClock {
  double t = 100.0;
};

class TestSlm final : public Slm {
 public:
  explicit TestSlm(HostClock& c) : clock_(c) {}
  double settle_ms = 5.0;
  int shows = 0;
  cv::Mat last;
  std::deque<DeviceError> fail_next;  // returned by the next show() calls, one each

  std::string name() const override { return "test-slm"; }
  int width_px() const override { return 4; }
  int height_px() const override { return 3; }
  double pixel_pitch_um() const override { return 8.0; }
  int bit_depth() const override { return 8; }
  double settle_time_ms() const override { return settle_ms; }
  DeviceState state() const override { return DeviceState::ready; }
  DeviceStatus open() override { return std::nullopt; }
  void close() override {}
  DeviceStatus show(const cv::Mat& levels) override {
    if (!fail_next.empty()) {
      auto e = fail_next.front();
      fail_next.pop_front();
      return e;
    }
    last = levels.clone();
    ++shows;
    clock_.t += settle_ms * 1e-3;
    return std::nullopt;
  }

 private:
  HostClock& clock_;
};

// Frames show the SLM's last pattern, carry a device clock 50 s ahead of the host's and a counter.
// `script` says what the next grabs do; an empty script gives good frames.
struct GrabStep {
  std::uint64_t skip = 0;         // frame numbers lost before this frame
  bool repeat = false;            // the previous frame's number again
  double start_ms = 0.5;          // exposure start after the grab began (negative: before it)
  std::optional<DeviceError> error;
};

class TestCamera final : public Camera {
 public:
  TestCamera(HostClock& c, TestSlm& s) : clock_(c), slm_(s) {}
  std::deque<GrabStep> script;
  int grabs = 0;

  std::string name() const override { return "test-camera"; }
  int width_px() const override { return 4; }
  int height_px() const override { return 3; }
  DeviceState state() const override { return DeviceState::ready; }
  DeviceStatus open() override { return std::nullopt; }
  void close() override {}
  PixelFormat pixel_format() const override { return PixelFormat::mono8; }
  DeviceStatus set_pixel_format(PixelFormat) override { return std::nullopt; }
  double exposure_ms() const override { return 2.0; }
  DeviceStatus set_exposure_ms(double) override { return std::nullopt; }
  double gain_db() const override { return 0.0; }
  DeviceStatus set_gain_db(double) override { return std::nullopt; }
  TriggerMode trigger_mode() const override { return TriggerMode::software; }
  DeviceStatus set_trigger_mode(TriggerMode) override { return std::nullopt; }
  DeviceResult<Frame> grab(std::chrono::milliseconds) override {
    ++grabs;
    GrabStep st;
    if (!script.empty()) {
      st = script.front();
      script.pop_front();
    }
    if (st.error) return *st.error;
    Frame f;
    f.image = slm_.last.clone();
    seq_ = st.repeat ? seq_ : seq_ + 1 + st.skip;
    f.sequence = seq_;
    const double start = clock_.t + st.start_ms * 1e-3;
    f.timestamp_s = start + 50.0;
    f.exposure_timestamp = true;
    clock_.t = std::max(clock_.t, start + (exposure_ms() + 0.3) * 1e-3);
    return f;
  }

 private:
  HostClock& clock_;
  TestSlm& slm_;
  std::uint64_t seq_ = 7;
};

struct Bench {
  HostClock clock;
  TestSlm slm{clock};
  TestCamera cam{clock, slm};
  GatedGrabber grabber;
  explicit Bench(GatedGrabOptions o = {}) : grabber(slm, cam, o, [this] { return clock.t; }) {}
  static cv::Mat pattern(int v) { return cv::Mat(3, 4, CV_8UC1, cv::Scalar(v)); }
};

const GatedFrame& frame_of(const std::variant<GatedFrame, GrabFailure>& r) {
  if (auto* f = std::get_if<GrabFailure>(&r)) ADD_FAILURE() << f->error.message;
  return std::get<GatedFrame>(r);
}

TEST(GatedGrabber, GoodFramesTakeOneShowAndOneGrabEach) {
  Bench b;
  for (int v = 1; v <= 5; ++v) {
    const auto r = b.grabber.show_and_grab(Bench::pattern(v));
    ASSERT_TRUE(std::holds_alternative<GatedFrame>(r));
    EXPECT_EQ(cv::countNonZero(frame_of(r).frame.image != v), 0);
    EXPECT_EQ(frame_of(r).attempts, 1);
    EXPECT_NEAR(frame_of(r).grab_ms, 2.8, 1e-9);  // start 0.5 + exposure 2 + delivery 0.3
  }
  EXPECT_EQ(b.slm.shows, 5);
  EXPECT_EQ(b.cam.grabs, 5);
  EXPECT_EQ(b.grabber.counters().to_json(), GrabCounters{}.to_json());
}

TEST(GatedGrabber, ReshowsAndRegrabsAfterAGapAStaleAndAnEarlyFrameAndCountsEach) {
  Bench b;
  ASSERT_TRUE(std::holds_alternative<GatedFrame>(b.grabber.show_and_grab(Bench::pattern(1))));
  // The next pattern: a frame after two lost ones, then the same number again, then a frame that began
  // exposing 3 ms before the grab (so before the settle), then a good one.
  b.cam.script = {GrabStep{.skip = 2}, GrabStep{.repeat = true}, GrabStep{.start_ms = -3.0}, GrabStep{}};
  const auto r = b.grabber.show_and_grab(Bench::pattern(2));
  ASSERT_TRUE(std::holds_alternative<GatedFrame>(r));
  EXPECT_EQ(frame_of(r).attempts, 4);
  EXPECT_EQ(cv::countNonZero(frame_of(r).frame.image != 2), 0);
  const GrabCounters& c = b.grabber.counters();
  EXPECT_EQ(c.gap_frames, 1u);
  EXPECT_EQ(c.frames_dropped, 2u);
  EXPECT_EQ(c.out_of_order, 1u);
  EXPECT_EQ(c.early_frames, 1u);
  EXPECT_EQ(c.regrabs, 3u);
  EXPECT_EQ(b.slm.shows, 1 + 4);  // every re-grab showed the pattern again (a full settle more)
}

TEST(GatedGrabber, RetriesTransientErrorsAndStopsAtOnceOnOthers) {
  Bench b;
  b.cam.script = {GrabStep{.error = DeviceError{DeviceErrc::timeout, "camera 'test-camera': grab timed out"}}};
  b.slm.fail_next = {DeviceError{DeviceErrc::write_failed, "slm 'test-slm': not accepted"}};
  // The first show fails (transient): the first cycle has no frame; the second grabs and times out;
  // the third gets a frame.
  const auto r = b.grabber.show_and_grab(Bench::pattern(3));
  ASSERT_TRUE(std::holds_alternative<GatedFrame>(r));
  EXPECT_EQ(frame_of(r).attempts, 3);
  const GrabCounters& c = b.grabber.counters();
  EXPECT_EQ(c.show_errors, 1u);
  EXPECT_EQ(c.write_failures, 1u);
  EXPECT_EQ(c.grab_errors, 1u);
  EXPECT_EQ(c.timeouts, 1u);
  EXPECT_EQ(c.regrabs, 2u);

  b.cam.script = {GrabStep{.error = DeviceError{DeviceErrc::invalid_argument, "camera 'test-camera': bad format"}}};
  const auto f = b.grabber.show_and_grab(Bench::pattern(4));
  ASSERT_TRUE(std::holds_alternative<GrabFailure>(f));
  EXPECT_EQ(std::get<GrabFailure>(f).error.code, DeviceErrc::invalid_argument);
  EXPECT_EQ(std::get<GrabFailure>(f).error.message, "camera 'test-camera': bad format [invalid_argument]");
  EXPECT_FALSE(std::get<GrabFailure>(f).stopped);
  EXPECT_EQ(c.regrabs, 2u);  // not retried
}

TEST(GatedGrabber, GivesUpAfterMaxAttemptsNamingTheLastCause) {
  GatedGrabOptions o;
  o.max_attempts = 3;
  Bench b(o);
  ASSERT_TRUE(std::holds_alternative<GatedFrame>(b.grabber.show_and_grab(Bench::pattern(1))));
  b.cam.script = {GrabStep{.repeat = true}, GrabStep{.repeat = true}, GrabStep{.repeat = true}};
  const auto r = b.grabber.show_and_grab(Bench::pattern(2));
  ASSERT_TRUE(std::holds_alternative<GrabFailure>(r));
  const auto& e = std::get<GrabFailure>(r).error;
  EXPECT_EQ(e.code, DeviceErrc::corrupt_frame);
  EXPECT_NE(e.message.find("no valid frame after 3 show+grab cycles"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("stale"), std::string::npos) << e.message;
  EXPECT_EQ(b.grabber.counters().out_of_order, 3u);
  EXPECT_EQ(b.grabber.counters().regrabs, 2u);
}

TEST(GatedGrabber, AStopRequestEndsTheRetriesAndSaysSo) {
  Bench b;
  ASSERT_TRUE(std::holds_alternative<GatedFrame>(b.grabber.show_and_grab(Bench::pattern(1))));
  b.cam.script = {GrabStep{.skip = 1}};
  int asked = 0;
  const auto r = b.grabber.show_and_grab(Bench::pattern(2), {.stop = [&] { return ++asked > 1; }});
  ASSERT_TRUE(std::holds_alternative<GrabFailure>(r));
  EXPECT_TRUE(std::get<GrabFailure>(r).stopped);
  EXPECT_NE(std::get<GrabFailure>(r).error.message.find("lost"), std::string::npos);
  EXPECT_EQ(b.cam.grabs, 2);
  EXPECT_EQ(asked, 2);  // before the first cycle and before the re-grab
  // A stop already requested: nothing is shown or grabbed.
  const auto s = b.grabber.show_and_grab(Bench::pattern(3), {.stop = [] { return true; }});
  ASSERT_TRUE(std::holds_alternative<GrabFailure>(s));
  EXPECT_TRUE(std::get<GrabFailure>(s).stopped);
  EXPECT_EQ(std::get<GrabFailure>(s).error.message, "stopped before the first cycle");
  EXPECT_EQ(b.slm.shows, 2);  // patterns 1 and 2, nothing more
  EXPECT_EQ(b.cam.grabs, 2);
}

TEST(GatedGrabber, TheCallersJudgeReGrabsOrFailsAFrameTheGateAccepted) {
  Bench b;
  // The judge rejects the first two frames it sees, then accepts: two re-grabs, each a re-show.
  int judged = 0;
  const auto r = b.grabber.show_and_grab(Bench::pattern(5), {.judge = [&](const Frame& f) {
                                                                EXPECT_EQ(cv::countNonZero(f.image != 5), 0);
                                                                return ++judged <= 2 ? Judgement{Judged::regrab, "looks like the last one"}
                                                                                     : Judgement{};
                                                              }});
  ASSERT_TRUE(std::holds_alternative<GatedFrame>(r));
  EXPECT_EQ(frame_of(r).attempts, 3);
  EXPECT_EQ(judged, 3);
  EXPECT_EQ(b.grabber.counters().regrabs, 2u);
  EXPECT_EQ(b.slm.shows, 3);
  // Frames the gate rejects never reach the judge.
  b.cam.script = {GrabStep{.repeat = true}, GrabStep{}};
  judged = 0;
  ASSERT_TRUE(std::holds_alternative<GatedFrame>(
      b.grabber.show_and_grab(Bench::pattern(6), {.judge = [&](const Frame&) { return ++judged, Judgement{}; }})));
  EXPECT_EQ(judged, 1);
  // Running out of cycles names the judge's cause; a fail ends at once with the judge's cause verbatim.
  GatedGrabOptions o;
  o.max_attempts = 2;
  Bench c(o);
  const auto out = c.grabber.show_and_grab(Bench::pattern(1), {.judge = [](const Frame&) {
                                                                 return Judgement{Judged::regrab, "content of input 0"};
                                                               }});
  ASSERT_TRUE(std::holds_alternative<GrabFailure>(out));
  EXPECT_EQ(std::get<GrabFailure>(out).error.message,
            "no valid frame after 2 show+grab cycles; last cause: content of input 0");
  EXPECT_FALSE(std::get<GrabFailure>(out).judged);
  const auto fail = c.grabber.show_and_grab(Bench::pattern(2), {.judge = [](const Frame&) {
                                                                  return Judgement{Judged::fail, "gave up on input 2"};
                                                                }});
  ASSERT_TRUE(std::holds_alternative<GrabFailure>(fail));
  EXPECT_TRUE(std::get<GrabFailure>(fail).judged);
  EXPECT_EQ(std::get<GrabFailure>(fail).error.message, "gave up on input 2");
  EXPECT_EQ(c.grabber.counters().regrabs, 1u);  // the fail cost no re-grab
}

TEST(GatedGrabber, GrabAfterShowTakesFurtherFramesOfTheSamePattern) {
  Bench b;
  ASSERT_FALSE(b.grabber.show(Bench::pattern(9)));
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(std::holds_alternative<GatedFrame>(b.grabber.grab()));
  EXPECT_EQ(b.slm.shows, 1);
  EXPECT_THROW(GatedGrabber(b.slm, b.cam, GatedGrabOptions{.max_attempts = 0}), std::invalid_argument);
  EXPECT_EQ(GatedGrabOptions{.max_attempts = 0}.validate(), "grab.max_attempts must be >= 1, got 0");
}

}  // namespace
}  // namespace hilo::drivers
