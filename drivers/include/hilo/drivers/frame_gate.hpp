#pragma once
// Frame integrity by the camera's own record: whether a grabbed frame may be filed under the pattern
// shown last, judged by its frame counter and its device timestamp against the time that pattern settled.
//
// The camera's clock and the host's steady clock differ by an unknown offset o (device − host, seconds)
// and the host receives a frame some latency after its exposure ended. Every frame bounds the offset
// from below: its exposure began at host time t_dev − o ≤ received − exposure, so
// o ≥ t_dev − received + exposure. The gate keeps the largest such bound over the last `offset_window`
// frames, the one being judged included (a window, so a slowly drifting camera clock is followed), and
// maps a frame's timestamp to the host as t_dev − o_max, the latest instant its exposure can have begun
// (never later than received − exposure). A frame is accepted when that instant is no earlier than
// settled − tolerance_ms.
//
// Caveat (stated, not hidden): the mapping is exact for the frame with the least delivery latency and
// late by at most the minimal latency (the readout over the link) for the others, so a frame whose
// exposure began less than that before the settle passes this gate; the content check
// (calibration/frame_content.hpp) is the second line. The first frames are judged by the bound of
// their own delivery alone (received − exposure), which rejects only a frame certainly too early.
//
// The timestamp is judged only for frames whose Frame::exposure_timestamp is set (a device clock marking
// the exposure start, as GenICam cameras give); other frames are judged by their counter alone.
//
// Verdicts: accepted; gap (the counter skipped frames: the device lost them, and what came later may
// belong to a pattern shown since); stale (the counter did not advance: a frame seen before, or a camera
// that restarted its numbering — the gate follows the new numbering from here); early (exposure began
// before the pattern settled). Every frame tightens the offset bound and advances the counter; the
// counter is judged first (a gap or stale frame is not also reported early).
#include <cstdint>
#include <deque>
#include <string>

#include "hilo/drivers/camera.hpp"

namespace hilo::drivers {

struct FrameGateOptions {
  double tolerance_ms = 0.5;  // slack for timestamp quantisation and clock jitter, >= 0
  int offset_window = 64;     // accepted frames the offset bound is taken over, >= 1

  // Empty when valid, else the violated rule, e.g. "frame_gate.offset_window must be >= 1, got 0".
  [[nodiscard]] std::string validate() const;
};

enum class FrameVerdict { accepted, gap, stale, early };
std::string_view to_string(FrameVerdict v);

struct FrameCheck {
  FrameVerdict verdict = FrameVerdict::accepted;
  std::uint64_t lost = 0;         // gap: frames the counter skipped
  double exposure_lead_ms = 0.0;  // early: how long before the settle the exposure began (> 0)
  std::string reason;             // empty when accepted, else one line naming the frames and times
};

class FrameGate {
 public:
  explicit FrameGate(FrameGateOptions options = {});  // options must validate()

  // A pattern has settled at host steady-clock time settled_s (seconds): the frames judged from now on
  // must have begun exposing after it.
  void pattern_settled(double settled_s) { settled_s_ = settled_s; }

  // Judges a frame received at host time received_s and exposed for exposure_ms.
  FrameCheck check(const Frame& frame, double received_s, double exposure_ms);

  // The current lower bound of the device − host clock offset (seconds); has_offset() false before the
  // first frame.
  bool has_offset() const { return !bounds_.empty(); }
  double offset_s() const;

 private:
  FrameGateOptions options_;
  double settled_s_ = -1e300;
  bool have_last_ = false;
  std::uint64_t last_seq_ = 0;
  std::deque<double> bounds_;
};

}  // namespace hilo::drivers
