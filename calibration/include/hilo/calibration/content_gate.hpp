#pragma once
// The capture's frame-content gate: check_frame_content (frame_content.hpp) applied to a stream of
// frames, each filed under the input shown before it was grabbed.
//
// Model: the bench's design optics (the config's `design:` section) with the element showing the
// levels the element SLM holds, uncalibrated: no registration, gain or tile calibration is applied to
// the frames. hilod holds no bench calibration between jobs (a calibration lives in its pipeline run),
// so the gate always uses the design model as designed, with the blur of ContentGateOptions absorbing a
// pixel or two of misalignment and defocus (the figures in frame_content.hpp were measured that way).
//
// Units: frames in ADC counts. A CV_8UC1 frame of a camera whose design ADC has b > 8 bits carries
// counts >> (b − 8) (Mono8) and is scaled back by 2^(b − 8). Predictions are the design counts above
// dark scaled by the camera's exposure over the design exposure and by its gain, 10^(gain_db / 20).
//
// The chain: the first frame of a capture needs a predecessor whose input is known. The capture shows
// the input dark and grabs three reference frames; their pixelwise median is the predecessor (prediction
// 0: a dark input images nothing above dark), so one reference frame that still shows an earlier
// pattern does not spoil it. The smallest rms difference of two reference frames, / √2, is the dark
// noise σ_d; a frame's noise is σ² = σ_d² + mean(prediction)·10^(gain_db/20) / gain_e_per_count (shot
// noise of the predicted signal). Then each frame F of input x is checked against the last accepted
// frame F_prev of input x_prev; a frame that matches or is undecidable becomes the predecessor, a stale
// one does not (the capture re-grabs it after a longer settle).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "hilo/calibration/frame_content.hpp"
#include "hilo/calibration/hil.hpp"

namespace hilo::calibration {

struct ContentGateOptions {
  bool enabled = true;           // off: frames are filed on counter and timestamp alone
  double min_correlation = 0.6;  // ContentCheckOptions::min_correlation, (0, 1)
  double blur_px = 2.0;          // ContentCheckOptions::blur_px, camera pixels, >= 0
  double min_snr = 5.0;          // ContentCheckOptions::min_snr, > 0
  int max_regrabs = 5;           // content rejections of one input before the capture fails, [0, 100]

  // Empty when valid, else the violated rule, e.g. "content_check.max_regrabs must be in [0, 100], got -1".
  [[nodiscard]] std::string validate() const;
  ContentCheckOptions check_options() const { return {blur_px, min_correlation, min_snr}; }
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ContentGateOptions, enabled, min_correlation, blur_px, min_snr,
                                                max_regrabs)

class ContentGate {
 public:
  // `design`: the bench's design optics (element kind slm, oversample 1); `element_levels`: what the
  // element SLM shows (CV_8UC1 or CV_16UC1, design element rows × cols); options must validate().
  // Throws std::invalid_argument / sim::ConfigError naming what does not fit.
  ContentGate(const sim::BenchOptions& design, const cv::Mat& element_levels, ContentGateOptions options);

  // Why frames of an input of rows × cols cannot be judged (another size than the design input); "" if
  // they can.
  std::string unfit_input(int rows, int cols) const;

  // The camera's current exposure (ms) and gain (dB), applied to every later prediction.
  void set_camera(double exposure_ms, double gain_db);

  // Starts the chain from frames of the dark input (>= 3, one size and type, the design camera's rows ×
  // cols after binning). Returns "" or why they cannot serve (count, shape).
  std::string set_reference(const std::vector<cv::Mat>& dark_frames);
  bool has_reference() const { return have_previous_; }

  // Judges `frame` (CV_8UC1/CV_16UC1) as the image of `input` (CV_8UC1 levels, design input size)
  // against the last accepted frame. matches/undecidable: the frame becomes the predecessor. Throws
  // std::logic_error without a reference, std::invalid_argument on shapes.
  ContentCheck check(const cv::Mat& frame, const cv::Mat& input);

  double dark_noise_counts() const { return dark_sigma_; }

 private:
  RArray counts(const cv::Mat& frame) const;
  const RArray& prediction(const cv::Mat& input);

  DesignModel design_;
  ContentGateOptions options_;
  double scale_ = 1.0, gain_factor_ = 1.0;
  int frame_rows_, frame_cols_;
  RArray previous_, predicted_previous_;
  bool have_previous_ = false;
  double dark_sigma_ = 0.0;
  cv::Mat cached_input_;
  RArray cached_prediction_;
};

}  // namespace hilo::calibration
