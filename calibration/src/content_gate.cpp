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

void ContentCounters::add(const ContentCounters& o) {
  content_rejects += o.content_rejects;
  content_undecidable += o.content_undecidable;
}

void ContentCounters::add_to(nlohmann::json& j) const {
  j["content_rejects"] = content_rejects;
  j["content_undecidable"] = content_undecidable;
}

ContentGate::ContentGate(const sim::BenchOptions& design, const cv::Mat& element_levels, ContentGateOptions options)
    : design_(std::make_unique<DesignModel>(design)), options_(options) {
  if (auto e = options_.validate(); !e.empty()) throw std::invalid_argument(e);
  if (design.element.kind != sim::ElementKind::slm)
    throw std::invalid_argument("content gate: the design element is not an SLM, so what it shows is not known");
  design_->set_element_levels(to_levels(element_levels));
  predict_ = [m = design_.get()](const RArray& x) { return m->predict(x); };
  const auto& o = design_->options();
  input_rows_ = o.input.rows;
  input_cols_ = o.input.cols;
  frame_rows_ = o.camera.rows / o.camera.binning;
  frame_cols_ = o.camera.cols / o.camera.binning;
  bit_depth_ = o.camera.bit_depth;
  gain_e_per_count_ = o.camera.gain_e_per_count;
  counts_per_electron_ = 1.0 / gain_e_per_count_;
}

ContentGate::ContentGate(Predictor predict, int input_rows, int input_cols, int frame_rows, int frame_cols,
                         double counts_per_electron, ContentGateOptions options)
    : predict_(std::move(predict)),
      options_(options),
      input_rows_(input_rows),
      input_cols_(input_cols),
      frame_rows_(frame_rows),
      frame_cols_(frame_cols),
      bit_depth_(8),
      counts_per_electron_(counts_per_electron) {
  if (auto e = options_.validate(); !e.empty()) throw std::invalid_argument(e);
  if (!predict_) throw std::invalid_argument("content gate: no predictor");
  if (input_rows < 1 || input_cols < 1 || frame_rows < 1 || frame_cols < 1)
    throw std::invalid_argument("content gate: input " + shape(input_rows, input_cols) + " and frame " +
                                shape(frame_rows, frame_cols) + " must not be empty");
  if (!(counts_per_electron > 0))
    throw std::invalid_argument("content gate: counts_per_electron must be > 0, got " + std::to_string(counts_per_electron));
}

std::string ContentGate::unfit_input(int rows, int cols) const {
  if (rows == input_rows_ && cols == input_cols_) return {};
  return "the inputs are " + shape(rows, cols) + ", the design input " + shape(input_rows_, input_cols_);
}

void ContentGate::set_camera(double exposure_ms, double gain_db) {
  if (!design_) throw std::logic_error("content gate: set_camera on a gate with a caller's predictor");
  const double gain_factor = std::pow(10.0, gain_db / 20.0);
  scale_ = exposure_ms / design_->options().camera.exposure_ms * gain_factor;
  counts_per_electron_ = gain_factor / gain_e_per_count_;
  model_changed();
}

void ContentGate::model_changed() {
  cached_input_ = RArray();
  cached_prediction_ = RArray();
}

RArray ContentGate::counts(const cv::Mat& frame) const {
  if ((frame.type() != CV_8UC1 && frame.type() != CV_16UC1) || frame.rows != frame_rows_ || frame.cols != frame_cols_)
    throw std::invalid_argument("content gate: a frame is " + shape(frame.rows, frame.cols) + " of type " +
                                std::to_string(frame.type()) + ", the design camera gives " +
                                shape(frame_rows_, frame_cols_) + " 8- or 16-bit frames");
  const double k = frame.type() == CV_8UC1 && bit_depth_ > 8 ? std::ldexp(1.0, bit_depth_ - 8) : 1.0;
  RArray a(frame.rows, frame.cols);
  for (int r = 0; r < frame.rows; ++r)
    for (int c = 0; c < frame.cols; ++c)
      a(r, c) = k * (frame.type() == CV_8UC1 ? frame.at<std::uint8_t>(r, c) : frame.at<std::uint16_t>(r, c));
  return a;
}

RArray ContentGate::intensity(const cv::Mat& input) const {
  if (input.type() != CV_8UC1 || !unfit_input(input.rows, input.cols).empty())
    throw std::invalid_argument("content gate: " + unfit_input(input.rows, input.cols) + " (8-bit levels expected)");
  RArray x(input.rows, input.cols);
  for (int r = 0; r < input.rows; ++r)
    for (int c = 0; c < input.cols; ++c) x(r, c) = input.at<std::uint8_t>(r, c) / 255.0;
  return x;
}

namespace {
bool same(const RArray& a, const RArray& b) { return a.rows() == b.rows() && a.cols() == b.cols() && (a == b).all(); }
}  // namespace

const RArray& ContentGate::prediction(const RArray& input) {
  if (auto e = unfit_input(int(input.rows()), int(input.cols())); !e.empty()) throw std::invalid_argument("content gate: " + e);
  if (same(input, cached_input_)) return cached_prediction_;
  RArray p = predict_(input) * scale_;
  if (p.rows() != frame_rows_ || p.cols() != frame_cols_)
    throw std::invalid_argument("content gate: the model predicts " + shape(int(p.rows()), int(p.cols())) +
                                " frames, the camera gives " + shape(frame_rows_, frame_cols_));
  cached_prediction_ = std::move(p);
  cached_input_ = input;
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
  set_reference(median, best);
  return {};
}

void ContentGate::set_reference(const RArray& dark_counts, double dark_noise_counts) {
  if (dark_counts.rows() != frame_rows_ || dark_counts.cols() != frame_cols_)
    throw std::invalid_argument("content gate: the dark reference is " + shape(int(dark_counts.rows()), int(dark_counts.cols())) +
                                ", the camera gives " + shape(frame_rows_, frame_cols_));
  dark_sigma_ = std::max(0.0, dark_noise_counts);
  current_ = {dark_counts, RArray::Zero(frame_rows_, frame_cols_), RArray::Zero(input_rows_, input_cols_)};
  before_ = current_;
  have_previous_ = true;
  stale_in_a_row_ = 0;
}

void ContentGate::continue_from(const RArray& frame_counts, const RArray& input_intensity) {
  if (!have_previous_) throw std::logic_error("content gate: continue_from before set_reference");
  if (frame_counts.rows() != frame_rows_ || frame_counts.cols() != frame_cols_)
    throw std::invalid_argument("content gate: the frame is " + shape(int(frame_counts.rows()), int(frame_counts.cols())) +
                                ", the camera gives " + shape(frame_rows_, frame_cols_));
  if (auto e = unfit_input(int(input_intensity.rows()), int(input_intensity.cols())); !e.empty())
    throw std::invalid_argument("content gate: " + e);
  join_chain(frame_counts, prediction(input_intensity), input_intensity);
}

ContentCheck ContentGate::check(const cv::Mat& frame, const cv::Mat& input) { return check(counts(frame), intensity(input)); }

ContentCheck ContentGate::check(const RArray& f, const RArray& input) {
  if (!have_previous_) throw std::logic_error("content gate: check() before set_reference()");
  if (f.rows() != frame_rows_ || f.cols() != frame_cols_)
    throw std::invalid_argument("content gate: a frame is " + shape(int(f.rows()), int(f.cols())) + ", the camera gives " +
                                shape(frame_rows_, frame_cols_));
  const RArray& p = prediction(input);
  const Link& base = same(input, current_.input) ? before_ : current_;
  ContentCheck c = check_frame_content(f, base.frame, p, base.predicted, frame_noise(p), options_.check_options());
  if (c.verdict != ContentVerdict::stale) join_chain(f, p, input);
  return c;
}

double ContentGate::frame_noise(const RArray& p) const {
  return std::sqrt(dark_sigma_ * dark_sigma_ + std::max(0.0, p.mean()) * counts_per_electron_);
}

void ContentGate::join_chain(const RArray& frame, const RArray& p, const RArray& input) {
  if (same(input, current_.input)) return;  // a further frame of the last input: the chain keeps its link
  before_ = std::move(current_);
  current_ = {frame, p, input};
}

drivers::Judgement ContentGate::store_unproven(const RArray& frame, const RArray& input, ContentCounters& counters) {
  ++counters.content_undecidable;
  stale_in_a_row_ = 0;
  join_chain(frame, prediction(input), input);
  return {};
}

drivers::Judgement ContentGate::judge(const cv::Mat& frame, const cv::Mat& input, ContentCounters& counters) {
  RArray f, x;
  try {
    f = counts(frame);
    x = intensity(input);
  } catch (const std::invalid_argument& e) {
    return {drivers::Judged::fail, e.what()};
  }
  return judge(f, x, counters);
}

drivers::Judgement ContentGate::judge(const RArray& frame, const RArray& input, ContentCounters& counters) {
  ContentCheck c;
  try {
    if (stale_in_a_row_ > 0 && same(input, rejected_input_) && frame.rows() == rejected_frame_.rows() &&
        frame.cols() == rejected_frame_.cols()) {
      // The settled-picture rule (header): the re-grab shows what the rejected frame showed.
      const Link& base = same(input, current_.input) ? before_ : current_;
      const double settled = 3.0 * std::sqrt(2.0) * frame_noise(prediction(input));
      if (std::sqrt((frame - rejected_frame_).square().mean()) <= settled &&
          std::sqrt((frame - base.frame).square().mean()) > settled)
        return store_unproven(frame, input, counters);
    }
    c = check(frame, input);
  } catch (const std::invalid_argument& e) {
    return {drivers::Judged::fail, e.what()};
  }
  if (c.verdict == ContentVerdict::undecidable) ++counters.content_undecidable;
  if (c.verdict != ContentVerdict::stale) {
    stale_in_a_row_ = 0;
    return {};
  }
  ++counters.content_rejects;
  rejected_frame_ = frame;
  if (!same(input, rejected_input_)) {
    rejected_input_ = input;
    stale_in_a_row_ = 0;
  }
  if (++stale_in_a_row_ <= options_.max_regrabs) return {drivers::Judged::regrab, c.reason};
  if (options_.accept_unproven) return store_unproven(frame, input, counters);
  stale_in_a_row_ = 0;
  return {drivers::Judged::fail, "the frame content did not match the input after " +
                                     std::to_string(options_.max_regrabs) +
                                     " re-grabs (content_check.max_regrabs): " + c.reason};
}

}  // namespace hilo::calibration
