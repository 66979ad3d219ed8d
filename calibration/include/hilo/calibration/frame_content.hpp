#pragma once
// Frame integrity by content: does a frame show the input it is filed under, or still the previous one
// (a slow SLM, a frame exposed before the pattern settled that the timestamp could not prove early)?
//
// The design model predicts the frame of each input (DesignModel::predict: counts above dark, ideal
// bench). Between consecutive inputs x_prev → x the frame must change as predicted:
//     d_meas = F − F_prev,  d_pred = P(x) − P(x_prev)      (the dark offset cancels in both)
// and the check is the normalised correlation ρ = <B d_meas, B d_pred> / (|B d_meas| |B d_pred|), where
// B is a Gaussian blur of blur_px (σ) that makes ρ tolerant of an uncalibrated bench: misalignment of
// a pixel or two, defocus, a brightness error (ρ is scale-free). A frame that still shows x_prev has
// d_meas = noise only, so ρ ≈ 0; a fresh frame has ρ near 1 on a calibrated bench and well above
// min_correlation on an uncalibrated one with the stated blur. Measured on the simulated moderate
// bench without calibration (calibration_test_frame_content, 20 input pairs each): fresh frames
// ρ ≥ 0.81, stale frames ρ ≤ 0.43 with a flat element (slow drift between the two frames of one input
// correlates with the predicted change) and ≤ 0.05 through a random phase element.
// When the predicted change is too small to tell from noise — its matched-filter SNR |d_pred| / (√2 σ)
// is below min_snr, σ = noise_rms_counts being the per-pixel rms noise of one frame — the verdict is
// undecidable: the inputs look alike through the optics, so the frame cannot be proven
// either way (a capture accepts it and counts it).
// On a calibrated bench pass frames resampled to the design grid (warp_back, gain-corrected) and a
// smaller blur; the contract is the same.
// Inputs: all four arrays the same shape (camera rows × cols), counts; failure: invalid_argument naming
// the shapes.
#include <string>

#include "hilo/calibration/registration.hpp"

namespace hilo::calibration {

struct ContentCheckOptions {
  double blur_px = 2.0;           // σ of B, camera pixels, >= 0
  double min_correlation = 0.6;   // ρ below this → stale, in (0, 1)
  double min_snr = 5.0;           // predicted change below this many noise σ → undecidable, > 0

  // Empty when valid, else the violated rule, e.g. "content_check.min_correlation must be in (0, 1), got 2".
  [[nodiscard]] std::string validate() const;
};

enum class ContentVerdict { matches, stale, undecidable };
std::string_view to_string(ContentVerdict v);

struct ContentCheck {
  ContentVerdict verdict = ContentVerdict::matches;
  double correlation = 0.0;  // ρ
  double snr = 0.0;          // |d_pred| / (√2 σ)
  std::string reason;        // empty when it matches
};

ContentCheck check_frame_content(const RArray& frame, const RArray& previous_frame, const RArray& predicted,
                                 const RArray& predicted_previous, double noise_rms_counts,
                                 const ContentCheckOptions& options = {});

}  // namespace hilo::calibration
