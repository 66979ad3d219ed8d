#include "hilo/calibration/content_gate.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace hilo::calibration {

std::string ContentGateOptions::validate() const {
  if (auto e = check_options().validate(); !e.empty()) return e;
  if (max_regrabs < 0 || max_regrabs > 100)
    return "content_check.max_regrabs must be in [0, 100], got " + std::to_string(max_regrabs);
  return {};
}

namespace {
sim::Levels to_levels(const cv::Mat& m) {
  if (m.type() != CV_8UC1 && m.type() != CV_16UC1)
    throw std::invalid_argument("content gate: element levels must be 8- or 16-bit single-channel");
  sim::Levels l(m.rows, m.cols);
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c)
      l(r, c) = m.type() == CV_8UC1 ? m.at<std::uint8_t>(r, c) : m.at<std::uint16_t>(r, c);
  return l;
}
std::string shape(int rows, int cols) { return std::to_string(rows) + "x" + std::to_string(cols); }
}  // namespace

ContentGate::ContentGate(const sim::BenchOptions& design, const cv::Mat& element_levels, ContentGateOptions options)
    : design_(design), options_(options) {
  if (auto e = options_.validate(); !e.empty()) throw std::invalid_argument(e);
  if (design.element.kind != sim::ElementKind::slm)
    throw std::invalid_argument("content gate: the design element is not an SLM, so what it shows is not known");
  design_.set_element_levels(to_levels(element_levels));
  const auto& cam = design_.options().camera;
  frame_rows_ = cam.rows / cam.binning;
  frame_cols_ = cam.cols / cam.binning;
}

std::string ContentGate::unfit_input(int rows, int cols) const {
  const auto& in = design_.options().input;
  if (rows == in.rows && cols == in.cols) return {};
  return "the inputs are " + shape(rows, cols) + ", the design input " + shape(in.rows, in.cols);
}

void ContentGate::set_camera(double exposure_ms, double gain_db) {
  gain_factor_ = std::pow(10.0, gain_db / 20.0);
  scale_ = exposure_ms / design_.options().camera.exposure_ms * gain_factor_;
}

RArray ContentGate::counts(const cv::Mat& frame) const {
  if ((frame.type() != CV_8UC1 && frame.type() != CV_16UC1) || frame.rows != frame_rows_ || frame.cols != frame_cols_)
    throw std::invalid_argument("content gate: a frame is " + shape(frame.rows, frame.cols) + " of type " +
                                std::to_string(frame.type()) + ", the design camera gives " +
                                shape(frame_rows_, frame_cols_) + " 8- or 16-bit frames");
  const int bits = design_.options().camera.bit_depth;
  const double k = frame.type() == CV_8UC1 && bits > 8 ? std::ldexp(1.0, bits - 8) : 1.0;
  RArray a(frame.rows, frame.cols);
  for (int r = 0; r < frame.rows; ++r)
    for (int c = 0; c < frame.cols; ++c)
      a(r, c) = k * (frame.type() == CV_8UC1 ? frame.at<std::uint8_t>(r, c) : frame.at<std::uint16_t>(r, c));
  return a;
}

const RArray& ContentGate::prediction(const cv::Mat& input) {
  if (input.type() != CV_8UC1 || !unfit_input(input.rows, input.cols).empty())
    throw std::invalid_argument("content gate: " + unfit_input(input.rows, input.cols) + " (8-bit levels expected)");
  if (!cached_input_.empty() && cv::norm(input, cached_input_, cv::NORM_INF) == 0.0) return cached_prediction_;
  RArray x(input.rows, input.cols);
  for (int r = 0; r < input.rows; ++r)
    for (int c = 0; c < input.cols; ++c) x(r, c) = input.at<std::uint8_t>(r, c) / 255.0;
  cached_prediction_ = design_.predict(x);
  cached_input_ = input.clone();
  return cached_prediction_;
}

std::string ContentGate::set_reference(const std::vector<cv::Mat>& dark_frames) {
  if (dark_frames.size() < 3) return "the reference needs 3 dark frames, got " + std::to_string(dark_frames.size());
  std::vector<RArray> f;
  for (const auto& m : dark_frames) f.push_back(counts(m));
  RArray median(frame_rows_, frame_cols_);
  for (Eigen::Index i = 0; i < median.size(); ++i) {
    double v[3] = {f[0](i), f[1](i), f[2](i)};
    std::sort(v, v + 3);
    median(i) = v[1];
  }
  double best = INFINITY;
  for (std::size_t a = 0; a < f.size(); ++a)
    for (std::size_t b = a + 1; b < f.size(); ++b) best = std::min(best, std::sqrt((f[a] - f[b]).square().mean() / 2.0));
  dark_sigma_ = best;
  previous_ = median;
  predicted_previous_ = RArray::Zero(frame_rows_, frame_cols_);
  have_previous_ = true;
  return {};
}

ContentCheck ContentGate::check(const cv::Mat& frame, const cv::Mat& input) {
  if (!have_previous_) throw std::logic_error("content gate: check() before set_reference()");
  const RArray f = counts(frame);
  const RArray p = prediction(input) * scale_;
  const double shot = std::max(0.0, p.mean()) * gain_factor_ / design_.options().camera.gain_e_per_count;
  const double noise = std::sqrt(dark_sigma_ * dark_sigma_ + shot);
  ContentCheck c = check_frame_content(f, previous_, p, predicted_previous_, noise, options_.check_options());
  if (c.verdict != ContentVerdict::stale) {
    previous_ = f;
    predicted_previous_ = p;
  }
  return c;
}

}  // namespace hilo::calibration
