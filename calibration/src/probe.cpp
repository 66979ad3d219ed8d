#include "hilo/calibration/probe.hpp"

#include <cmath>
#include <stdexcept>
#include <variant>

namespace hilo::calibration {

std::string ProbeOptions::validate() const {
  if (auto e = grab.validate(); !e.empty()) return "probe." + e;
  return {};
}

namespace {

const ProbeOptions& validated(const ProbeOptions& o) {
  if (const auto e = o.validate(); !e.empty()) throw std::invalid_argument(e);
  return o;
}

}  // namespace

ProbeRig::ProbeRig(drivers::Slm& input, drivers::Camera& camera, ProbeOptions options)
    : input_(input), camera_(camera), opt_(validated(options)), grabber_(input, camera, opt_.grab) {}

cv::Mat ProbeRig::levels_of(const RArray& intensity) const {
  if (intensity.rows() != input_rows() || intensity.cols() != input_cols())
    throw std::invalid_argument("probe pattern is " + std::to_string(intensity.rows()) + " x " +
                                std::to_string(intensity.cols()) + ", the input device is " +
                                std::to_string(input_rows()) + " x " + std::to_string(input_cols()));
  return intensity_to_levels(intensity, input_.bit_depth());
}

drivers::DeviceStatus ProbeRig::show(const RArray& intensity) {
  shown_levels_ = levels_of(intensity);
  shown_ = intensity;
  return grabber_.show(shown_levels_);
}

drivers::DeviceResult<RArray> ProbeRig::kept(std::variant<drivers::GatedFrame, drivers::GrabFailure> r) {
  if (auto* f = std::get_if<drivers::GrabFailure>(&r)) return f->error;
  const drivers::Frame& frame = std::get<drivers::GatedFrame>(r).frame;
  if (frame_log_) frame_log_(frame, shown_, shown_levels_);
  return to_array(frame.image);
}

drivers::GrabControl ProbeRig::control() {
  if (!judge_) return {};
  return {{}, [this](const drivers::Frame& f) { return judge_(to_array(f.image), shown_); }};
}

drivers::DeviceResult<RArray> ProbeRig::mean_of(drivers::DeviceResult<RArray> first, int frames) {
  if (!first) return first;
  RArray sum = std::move(first.value());
  for (int i = 1; i < frames; ++i) {
    auto a = kept(grabber_.grab(control()));
    if (!a) return a;
    sum += a.value();
  }
  return RArray(sum / double(frames));
}

drivers::DeviceResult<RArray> ProbeRig::grab_mean(int frames) {
  if (frames < 1) throw std::invalid_argument("grab_mean: frames must be >= 1, got " + std::to_string(frames));
  return mean_of(kept(grabber_.grab(control())), frames);
}

drivers::DeviceResult<RArray> ProbeRig::capture(const RArray& intensity, int frames) {
  if (frames < 1) throw std::invalid_argument("capture: frames must be >= 1, got " + std::to_string(frames));
  shown_levels_ = levels_of(intensity);
  shown_ = intensity;
  return mean_of(kept(grabber_.show_and_grab(shown_levels_, control())), frames);
}

RArray to_array(const cv::Mat& m) {
  if (m.channels() != 1) throw std::invalid_argument("to_array: single-channel images only");
  RArray a(m.rows, m.cols);
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) {
      switch (m.depth()) {
        case CV_8U: a(r, c) = m.at<std::uint8_t>(r, c); break;
        case CV_16U: a(r, c) = m.at<std::uint16_t>(r, c); break;
        case CV_32F: a(r, c) = m.at<float>(r, c); break;
        case CV_64F: a(r, c) = m.at<double>(r, c); break;
        default: throw std::invalid_argument("to_array: unsupported image depth " + std::to_string(m.depth()));
      }
    }
  return a;
}

cv::Mat intensity_to_levels(const RArray& in, int bit_depth) {
  if (bit_depth < 1 || bit_depth > 16)
    throw std::invalid_argument("intensity_to_levels: bit depth must be in [1, 16], got " + std::to_string(bit_depth));
  if (!in.isFinite().all() || (in < 0.0).any() || (in > 1.0).any())
    throw std::invalid_argument("probe intensity must be finite and in [0, 1]");
  const double top = double((1 << bit_depth) - 1);
  cv::Mat m(int(in.rows()), int(in.cols()), bit_depth <= 8 ? CV_8UC1 : CV_16UC1);
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) {
      const double v = std::round(in(r, c) * top);
      if (bit_depth <= 8)
        m.at<std::uint8_t>(r, c) = std::uint8_t(v);
      else
        m.at<std::uint16_t>(r, c) = std::uint16_t(v);
    }
  return m;
}

RArray random_binary_pattern(int rows, int cols, double fill, double level, std::mt19937_64& rng) {
  std::bernoulli_distribution on(fill);
  RArray p(rows, cols);
  for (Eigen::Index i = 0; i < p.size(); ++i) p.data()[i] = on(rng) ? level : 0.0;
  return p;
}

}  // namespace hilo::calibration
