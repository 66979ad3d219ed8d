#pragma once
// The probe rig every calibration runs through: an input device (amplitude SLM or display) that shows
// intensity patterns and a camera that records them, both behind the driver interfaces, so the same
// procedures run on a real bench and on the simulator's backends.
//
// Conventions shared by all of hilo::calibration:
//   input intensity  input height × width array (rows = y, cols = x), values in [0, 1]; shown as levels
//                    round(I · (2^b − 1)) of the input device's bit depth b. A display's own gamma is
//                    what gain/linearity calibration measures; nothing here corrects for it.
//   frames           camera counts as doubles, camera height × width (row-major sim::RArray).
//   predictor        the model of the bench as designed: the camera image (counts above the dark level,
//                    full camera frame, brightness 1, no misalignment, no noise) that an input intensity
//                    would give with the element in its current state. In the pipeline it is the
//                    student's optical model; in simulator tests, a twin bench with the ideal profile.
//                    Calibrations fit the as-built bench against it.
// Device failures come back as drivers::DeviceError values, never as exceptions; a malformed argument
// (wrong shape, values outside [0, 1]) throws std::invalid_argument.
#include <chrono>
#include <functional>
#include <variant>
#include <random>
#include <string>

#include <opencv2/core/mat.hpp>

#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/gated_grab.hpp"
#include "hilo/drivers/slm.hpp"
#include "hilo/sim/field.hpp"

namespace hilo::calibration {

using sim::RArray;

using Predictor = std::function<RArray(const RArray& input_intensity)>;

struct ProbeOptions {
  drivers::GatedGrabOptions grab;  // per frame: grab timeout, show + grab cycles, frame gate

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};

class ProbeRig {
 public:
  // The devices are borrowed: they must outlive the rig and be open. Throws std::invalid_argument if
  // options are invalid.
  ProbeRig(drivers::Slm& input, drivers::Camera& camera, ProbeOptions options = {});
  const ProbeOptions& options() const { return opt_; }

  int input_rows() const { return input_.height_px(); }
  int input_cols() const { return input_.width_px(); }
  int camera_rows() const { return camera_.height_px(); }
  int camera_cols() const { return camera_.width_px(); }
  drivers::Camera& camera() { return camera_; }

  // Every frame passes the frame gate (drivers/gated_grab.hpp): its counter and exposure timestamp are
  // judged against the instant the pattern settled, then by the judge when one is set; a rejected
  // frame, or a transient device error, is re-grabbed after showing the pattern again (a full settle
  // more), up to options.grab.max_attempts cycles per frame, and counted in counters().

  // A judge of every later frame the gate accepts: judge(frame counts, the intensity shown) → accept,
  // re-grab or fail (drivers::Judgement; the judge counts its own reasons). Empty: none. The pipeline
  // sets the calibrated content check here once the bench is calibrated (Experiment::calibrate).
  using Judge = std::function<drivers::Judgement(const RArray& frame_counts, const RArray& input_intensity)>;
  void set_judge(Judge judge) { judge_ = std::move(judge); }
  // Called with every frame the rig keeps (accepted by the gate and the judge), the intensity it is
  // filed under and that intensity's levels (the input device's rows × cols, CV_8UC1 or CV_16UC1): which
  // frame was taken for which pattern. Empty: none.
  using FrameLog = std::function<void(const drivers::Frame& frame, const RArray& intensity, const cv::Mat& levels)>;
  void set_frame_log(FrameLog log) { frame_log_ = std::move(log); }

  // Shows `intensity` and waits for the device to settle (the driver's show() does).
  drivers::DeviceStatus show(const RArray& intensity);
  // Mean of `frames` ≥ 1 gated frames of the pattern shown last, counts. show() first. A frame that
  // cannot be had ends the measurement with its error.
  drivers::DeviceResult<RArray> grab_mean(int frames);
  // show() then grab_mean(); a transient show error is retried like a rejected frame.
  drivers::DeviceResult<RArray> capture(const RArray& intensity, int frames);

  // Show, grab and gate counts over the rig's life.
  const drivers::GrabCounters& counters() const { return grabber_.counters(); }

 private:
  drivers::Slm& input_;
  drivers::Camera& camera_;
  ProbeOptions opt_;
  drivers::GatedGrabber grabber_;
  Judge judge_;
  FrameLog frame_log_;
  RArray shown_;          // the intensity shown last (what the judge judges frames against)
  cv::Mat shown_levels_;  // its levels

  drivers::DeviceResult<RArray> kept(std::variant<drivers::GatedFrame, drivers::GrabFailure> r);

  drivers::GrabControl control();
  cv::Mat levels_of(const RArray& intensity) const;  // throws std::invalid_argument for another shape
  drivers::DeviceResult<RArray> mean_of(drivers::DeviceResult<RArray> first, int frames);
};

// Conversions between driver images and arrays. to_array accepts CV_8UC1, CV_16UC1, CV_32FC1 and
// CV_64FC1; anything else throws std::invalid_argument.
RArray to_array(const cv::Mat& image);
// Intensity in [0, 1] → levels of bit depth b (CV_8UC1 for b ≤ 8, else CV_16UC1).
cv::Mat intensity_to_levels(const RArray& intensity, int bit_depth);

// Random binary probe: each input pixel is on (intensity `level`) with probability `fill`. A pattern
// rich in spatial frequencies that pins registration down everywhere in the field.
RArray random_binary_pattern(int rows, int cols, double fill, double level, std::mt19937_64& rng);

}  // namespace hilo::calibration
