#include "hilo/calibration/frame_content.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace hilo::calibration {

std::string ContentCheckOptions::validate() const {
  if (!(blur_px >= 0.0)) return "content_check.blur_px must be >= 0, got " + std::to_string(blur_px);
  if (!(min_correlation > 0.0 && min_correlation < 1.0))
    return "content_check.min_correlation must be in (0, 1), got " + std::to_string(min_correlation);
  if (!(min_snr > 0.0)) return "content_check.min_snr must be > 0, got " + std::to_string(min_snr);
  return {};
}

std::string_view to_string(ContentVerdict v) {
  switch (v) {
    case ContentVerdict::matches: return "matches";
    case ContentVerdict::stale: return "stale";
    case ContentVerdict::undecidable: return "undecidable";
  }
  return "?";
}

ContentCheck check_frame_content(const RArray& frame, const RArray& previous_frame, const RArray& predicted,
                                 const RArray& predicted_previous, double noise_rms_counts,
                                 const ContentCheckOptions& options) {
  const auto same = [&](const RArray& a) { return a.rows() == frame.rows() && a.cols() == frame.cols(); };
  if (!same(previous_frame) || !same(predicted) || !same(predicted_previous)) {
    throw std::invalid_argument("check_frame_content: frames and predictions must share one shape, got " +
                                std::to_string(frame.rows()) + "x" + std::to_string(frame.cols()) + ", " +
                                std::to_string(previous_frame.rows()) + "x" + std::to_string(previous_frame.cols()) +
                                ", " + std::to_string(predicted.rows()) + "x" + std::to_string(predicted.cols()) +
                                ", " + std::to_string(predicted_previous.rows()) + "x" +
                                std::to_string(predicted_previous.cols()));
  }
  const RArray dm = gaussian_blur(frame - previous_frame, options.blur_px);
  const RArray dp = gaussian_blur(predicted - predicted_previous, options.blur_px);
  const double np = std::sqrt(dp.square().sum()), nm = std::sqrt(dm.square().sum());
  ContentCheck c;
  // Matched-filter SNR: the difference of two frames has white noise of √2 σ per pixel, so its
  // projection onto the unit predicted change has noise √2 σ and signal |d_pred|.
  const double sigma_d = std::sqrt(2.0) * noise_rms_counts;
  const double change = std::sqrt((predicted - predicted_previous).square().sum());
  c.snr = sigma_d > 0 ? change / sigma_d : INFINITY;
  c.correlation = np > 0 && nm > 0 ? (dm * dp).sum() / (np * nm) : 0.0;
  char buf[200];
  if (c.snr < options.min_snr) {
    c.verdict = ContentVerdict::undecidable;
    std::snprintf(buf, sizeof buf, "the predicted change is %.2f noise sigma (< %.2f): the frame cannot be told from the previous input's",
                  c.snr, options.min_snr);
    c.reason = buf;
  } else if (c.correlation < options.min_correlation) {
    c.verdict = ContentVerdict::stale;
    std::snprintf(buf, sizeof buf, "the frame changed unlike the design prediction (correlation %.3f < %.3f): it shows another input",
                  c.correlation, options.min_correlation);
    c.reason = buf;
  }
  return c;
}

}  // namespace hilo::calibration
