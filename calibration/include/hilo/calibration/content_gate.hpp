#pragma once
// The frame-content gate: check_frame_content (frame_content.hpp) applied to a stream of frames, each
// filed under the input shown before it was grabbed. Two users, two models:
//
// - The capture (hilod, controller/capture.hpp): the bench's design optics (the config's `design:`
//   section) with the element showing the levels the element SLM holds, uncalibrated: no registration,
//   gain or tile calibration is applied. hilod holds no bench calibration between jobs (a calibration
//   lives in its pipeline run), so the capture's gate always uses the design model as designed, with the
//   blur of ContentGateOptions absorbing a pixel or two of misalignment and defocus (the figures in
//   frame_content.hpp were measured that way). Frames and inputs come as cv::Mat.
// - The pipeline's measurement (Experiment, experiment.hpp): a caller's Predictor, there the calibrated
//   design model (registration pose and blur, gain) of the bench after calibrate_bench. Frames and
//   inputs come as arrays (ProbeRig's counts and intensities).
//
// Units: frames in ADC counts. Design model: a CV_8UC1 frame of a camera whose design ADC has b > 8 bits
// carries counts >> (b − 8) (Mono8) and is scaled back by 2^(b − 8); predictions are the design counts
// above dark scaled by the camera's exposure over the design exposure and by its gain, 10^(gain_db / 20)
// (set_camera). Predictor: its counts are taken as they come, in the frames' units.
//
// The chain: the first frame needs a predecessor whose input is known. The capture shows the input dark
// and grabs three reference frames; their pixelwise median is the predecessor (prediction 0: a dark
// input images nothing above dark), so one reference frame that still shows an earlier pattern does not
// spoil it. The smallest rms difference of two reference frames, / √2, is the dark noise σ_d. The
// pipeline starts the chain from the calibration's mean dark frame and its temporal noise instead, and
// continues it from the calibration's last probe frame (continue_from). A
// frame's noise is σ² = σ_d² + mean(prediction)·counts_per_electron (shot noise of the predicted signal;
// counts_per_electron = 10^(gain_db/20) / gain_e_per_count). Then each frame F of input x is checked
// against the last accepted frame F_prev of the last input x_prev ≠ x; a frame that matches or is
// undecidable becomes the predecessor, a stale one does not (the caller re-grabs it after a longer
// settle). A further frame of the input last accepted (frames averaged per input) is judged against
// the same F_prev, so the predicted change is never zero merely because the input was grabbed twice.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "hilo/calibration/frame_content.hpp"
#include "hilo/calibration/hil.hpp"
#include "hilo/drivers/gated_grab.hpp"

namespace hilo::calibration {

struct ContentGateOptions {
  bool enabled = true;           // off: frames are filed on counter and timestamp alone
  double min_correlation = 0.6;  // ContentCheckOptions::min_correlation, (0, 1)
  double blur_px = 2.0;          // ContentCheckOptions::blur_px, camera pixels, >= 0
  double min_snr = 5.0;          // ContentCheckOptions::min_snr, > 0
  int max_regrabs = 5;           // content rejections of one input before the frame fails, [0, 100]
  // After max_regrabs stale verdicts of one input: false → the frame fails; true → the last frame is
  // stored unproven, counted in content_undecidable (the pipeline's choice: after that many longer
  // settles a slow SLM has settled, and a bench its model predicts poorly must not stop the job; a stuck
  // SLM then shows as content_undecidable ≈ frames, each with max_regrabs re-grabs).
  bool accept_unproven = false;

  // Empty when valid, else the violated rule, e.g. "content_check.max_regrabs must be in [0, 100], got -1".
  [[nodiscard]] std::string validate() const;
  ContentCheckOptions check_options() const { return {blur_px, min_correlation, min_snr}; }
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ContentGateOptions, enabled, min_correlation, blur_px, min_snr,
                                                max_regrabs, accept_unproven)

// What the content check did to a stream of frames (the capture's stats.capture, the pipeline's
// profiles[].frame_integrity).
struct ContentCounters {
  std::uint64_t content_rejects = 0;      // frames re-grabbed (or failed) because they show another input
  std::uint64_t content_undecidable = 0;  // frames accepted although the check could not decide

  void add(const ContentCounters& o);
  void add_to(nlohmann::json& j) const;  // sets the two keys, named as the fields
};

class ContentGate {
 public:
  // Design model (the capture). `design`: the bench's design optics (element kind slm, oversample 1);
  // `element_levels`: what the element SLM shows (CV_8UC1 or CV_16UC1, design element rows × cols);
  // options must validate(). Throws std::invalid_argument / sim::ConfigError naming what does not fit.
  ContentGate(const sim::BenchOptions& design, const cv::Mat& element_levels, ContentGateOptions options);
  // Any model (the pipeline): `predict` maps an input intensity (input_rows × input_cols, [0, 1]) to the
  // frame it gives (counts above dark, frame_rows × frame_cols, the frames' units); counts_per_electron
  // (> 0) sets the shot noise. Throws std::invalid_argument for invalid options or sizes.
  ContentGate(Predictor predict, int input_rows, int input_cols, int frame_rows, int frame_cols,
              double counts_per_electron, ContentGateOptions options);

  // Why frames of an input of rows × cols cannot be judged (another size than the model's input); ""
  // if they can.
  std::string unfit_input(int rows, int cols) const;

  // Design model: the camera's current exposure (ms) and gain (dB), applied to every later prediction.
  void set_camera(double exposure_ms, double gain_db);
  // The model behind `predict` changed (e.g. a drift update of the pose): forget cached predictions.
  void model_changed();

  // Starts the chain from frames of the dark input (>= 3, one size and type, the design camera's rows ×
  // cols after binning). Returns "" or why they cannot serve (count, shape).
  std::string set_reference(const std::vector<cv::Mat>& dark_frames);
  // Starts the chain from a dark frame known without grabbing (counts, the frames' shape, e.g. the
  // calibration's mean dark) and the noise σ_d (counts, >= 0) of one frame. Throws std::invalid_argument
  // for another shape.
  void set_reference(const RArray& dark_counts, double dark_noise_counts);
  bool has_reference() const { return have_previous_; }
  // After set_reference: makes `frame_counts` (the frames' shape), a frame the device is known to have
  // shown last for `input_intensity` (input rows × cols, [0, 1]), the chain's last link, with the dark
  // reference before it. For a stream that does not start from the dark input: the pipeline's checked
  // frames follow the calibration's last probe, which a slow first frame still shows. Throws
  // std::logic_error without a reference, std::invalid_argument on shapes.
  void continue_from(const RArray& frame_counts, const RArray& input_intensity);

  // Judges `frame` (CV_8UC1/CV_16UC1) as the image of `input` (CV_8UC1 levels, design input size)
  // against the chain (see the file comment). matches/undecidable: the frame joins the chain. Throws
  // std::logic_error without a reference, std::invalid_argument on shapes.
  ContentCheck check(const cv::Mat& frame, const cv::Mat& input);
  // The same for frame counts and an input intensity in [0, 1].
  ContentCheck check(const RArray& frame_counts, const RArray& input_intensity);

  // check() as a GatedGrabber judge (drivers/gated_grab.hpp), counting into `counters`: matches →
  // accept; undecidable → accept, counted; stale → counted in content_rejects and re-grab, until more
  // than options.max_regrabs frames of one input were stale in a row → fail ("the frame content did
  // not match the input after N re-grabs (content_check.max_regrabs): <reason>"), or with
  // options.accept_unproven accept, counted in content_undecidable; a frame or input of the wrong
  // shape → fail naming it.
  // A re-grab that shows what the rejected frame showed is accepted as undecidable, not judged again:
  // rms(F_regrab − F_rejected) ≤ 3·√2·σ (σ the frame noise of the file comment) means the picture did
  // not change across a longer settle, so the SLM had settled and the model, not the frame, disagrees
  // (a bench the calibrated model predicts poorly, e.g. strong defocus) — provided the picture differs
  // from the predecessor's (rms(F_regrab − F_prev) > 3·√2·σ): a re-grab that still shows the previous
  // input (an SLM slow twice in a row) is judged as usual and re-grabbed again. A stale frame's re-grab
  // that shows the new pattern differs from the rejected one and is judged as usual too.
  drivers::Judgement judge(const cv::Mat& frame, const cv::Mat& input, ContentCounters& counters);
  drivers::Judgement judge(const RArray& frame_counts, const RArray& input_intensity, ContentCounters& counters);

  double dark_noise_counts() const { return dark_sigma_; }
  const ContentGateOptions& options() const { return options_; }

 private:
  struct Link {
    RArray frame, predicted, input;  // an accepted frame, its prediction, its input intensity
  };
  RArray counts(const cv::Mat& frame) const;
  RArray intensity(const cv::Mat& input) const;
  double frame_noise(const RArray& predicted) const;  // σ of one frame (file comment), counts
  // An accepted frame becomes the chain's last link, unless its input is the last link's already.
  void join_chain(const RArray& frame, const RArray& predicted, const RArray& input);
  // Accepts a frame the check could not prove (counted in content_undecidable) and joins it to the chain.
  drivers::Judgement store_unproven(const RArray& frame, const RArray& input, ContentCounters& counters);
  const RArray& prediction(const RArray& input);

  std::unique_ptr<DesignModel> design_;  // the design-model gate's model; null for a Predictor
  Predictor predict_;
  ContentGateOptions options_;
  int input_rows_, input_cols_, frame_rows_, frame_cols_;
  int bit_depth_ = 16;          // of the design ADC (Mono8 frames are scaled back to it)
  double gain_e_per_count_ = 0;  // design model: e⁻ per count at 0 dB
  double scale_ = 1.0, counts_per_electron_ = 1.0;
  Link current_, before_;  // the last accepted frame; the last accepted one of another input
  bool have_previous_ = false;
  double dark_sigma_ = 0.0;
  RArray cached_input_, cached_prediction_;
  RArray rejected_input_;  // the input of the stale frames counted in stale_in_a_row_
  RArray rejected_frame_;  // the last frame judged stale (counts), for the settled-picture rule of judge()
  int stale_in_a_row_ = 0;
};

}  // namespace hilo::calibration
