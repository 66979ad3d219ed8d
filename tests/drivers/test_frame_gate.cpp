// FrameGate: frame counter and device timestamp against the time the pattern settled.
#include "hilo/drivers/frame_gate.hpp"

#include <random>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace hilo::drivers
