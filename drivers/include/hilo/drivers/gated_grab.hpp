#pragma once
// Show a pattern, let it settle, grab a frame proven to belong to it: the one way a frame that will be
// stored or measured is taken from an input SLM and a camera (the capture's records, the calibration
// probes, the pipeline's measured sets and its evaluation).
//
// show() hands the pattern to the SLM, whose driver returns once the pattern has settled, and marks
// that instant (host steady clock) in a FrameGate (frame_gate.hpp). grab() takes one frame and lets the
// gate judge it by its frame counter and exposure timestamp; a frame the gate accepts is then judged by
// the caller's judge (GrabControl::judge, e.g. the content check of calibration/content_gate.hpp), if
// any. A rejected frame (gap, stale, early, or re-grab by the judge) or a transient device error
// (drivers::is_transient) costs one more cycle: the same pattern is shown again, which waits a full
// settle more, and grabbed again. Every cycle after the first is a re-grab. A non-transient error, or a
// judge that answers fail, ends the frame at once; so does a true GrabControl::stop before a cycle, the
// first included (so a stopped caller touches no device).
//
// Counters accumulate over the grabber's life (all frames it took); GrabCounters::to_json names them as
// the capture's manifest does (docs/devices.md, "Frame integrity counters"). A judge's re-grabs are
// counted in `regrabs` like any other; why the judge rejected a frame is the judge's to count.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>
#include <opencv2/core/mat.hpp>

#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/frame_gate.hpp"
#include "hilo/drivers/slm.hpp"

namespace hilo::drivers {

struct GrabCounters {
  std::uint64_t show_errors = 0;  // show() errors that reached the grabber (after the driver's retries)
  std::uint64_t grab_errors = 0;  // grab() errors that reached the grabber (after the driver's retries)
  std::uint64_t timeouts = 0, corrupt_frames = 0, disconnects = 0, write_failures = 0;  // those errors by code
  std::uint64_t frames_dropped = 0;  // frame numbers the camera skipped between consecutive frames received
  std::uint64_t gap_frames = 0;      // frames rejected because numbers before them were skipped
  std::uint64_t out_of_order = 0;    // frames rejected because their number was not above the last one
  std::uint64_t early_frames = 0;    // frames rejected because their exposure began before the settle
  std::uint64_t regrabs = 0;         // show + grab cycles beyond the first of a frame

  void add(const GrabCounters& o);
  nlohmann::json to_json() const;  // {"show_errors": .., ..., "regrabs": ..}, the field names
};

struct GatedGrabOptions {
  int max_attempts = 5;                           // show + grab cycles per frame, >= 1
  std::chrono::milliseconds grab_timeout{2000};  // per grab(), > 0
  FrameGateOptions gate;

  // Empty when valid, else the violated rule, e.g. "grab.max_attempts must be >= 1, got 0".
  [[nodiscard]] std::string validate() const;
};

// What a caller's judge makes of a frame the gate accepted.
enum class Judged {
  accept,  // the frame is the pattern's: grab() returns it
  regrab,  // not this frame: show the pattern again and grab again (one more cycle, counted in regrabs)
  fail,    // give up at once: GrabFailure with code corrupt_frame and `cause` as its message
};
struct Judgement {
  Judged action = Judged::accept;
  std::string cause;  // regrab: the cycle's cause (named if the cycles run out); fail: the message
};
using FrameJudge = std::function<Judgement(const Frame&)>;

// A caller's hold on one frame: both optional.
struct GrabControl {
  std::function<bool()> stop;  // asked before every cycle, the first included; true ends the frame
  FrameJudge judge;            // run on every frame the gate accepts; empty: every such frame is accepted
};

struct GatedFrame {
  Frame frame;
  double grab_ms = 0.0;  // host time the accepted grab() took: trigger, exposure, readout, transfer
  int attempts = 1;      // show + grab cycles it took
};

// Why a frame could not be had: the device error that ended it (non-transient: its message followed by
// " [code]"; or the last of max_attempts cycles: "no valid frame after N show+grab cycles; last cause:
// ..."; a gate or judge rejection reads as DeviceErrc::corrupt_frame), the judge's fail (its cause as
// the message), or a stop request.
struct GrabFailure {
  DeviceError error;
  bool stopped = false;  // true: stop returned true before a cycle; `error` then holds the last cause
                         // ("stopped before the first cycle" when no cycle ran)
  bool judged = false;   // true: the judge answered fail
};

class GatedGrabber {
 public:
  // The devices are borrowed and must outlive the grabber. now_s: the host's steady clock, seconds
  // (empty: std::chrono::steady_clock); the camera's exposure timestamps are judged against it.
  // Throws std::invalid_argument naming the rule when options do not validate().
  GatedGrabber(Slm& slm, Camera& camera, GatedGrabOptions options = {}, std::function<double()> now_s = {});

  // Shows `levels` (the SLM's size and bit depth; the driver waits its settle) and marks the settle.
  // The pattern is kept for re-shows. An error is counted and returned; no frame is taken.
  DeviceStatus show(const cv::Mat& levels);

  // A frame of the pattern last shown, accepted by the gate and the judge (see the file comment).
  // show() first.
  std::variant<GatedFrame, GrabFailure> grab(const GrabControl& control = {});

  // show() then grab(); a show error that is transient is retried as a cycle like any other. A true
  // stop before the first cycle returns before anything is shown.
  std::variant<GatedFrame, GrabFailure> show_and_grab(const cv::Mat& levels, const GrabControl& control = {});

  const GrabCounters& counters() const { return counters_; }
  Slm& slm() { return slm_; }
  Camera& camera() { return camera_; }

 private:
  void count_error(const DeviceError& e);
  std::variant<GatedFrame, GrabFailure> cycles(bool shown, std::optional<DeviceError> first_error,
                                               const GrabControl& control);

  Slm& slm_;
  Camera& camera_;
  GatedGrabOptions opt_;
  std::function<double()> now_s_;
  FrameGate gate_;
  cv::Mat pattern_;
  GrabCounters counters_;
};

}  // namespace hilo::drivers
