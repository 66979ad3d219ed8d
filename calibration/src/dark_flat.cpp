#include "hilo/calibration/dark_flat.hpp"

#include <cmath>
#include <stdexcept>

#include "hilo/calibration/registration.hpp"
#include "stats.hpp"

namespace hilo::calibration {

std::string DarkOptions::validate() const {
  if (frames < 1) return "dark.frames must be >= 1, got " + std::to_string(frames);
  if (!(hot_sigma > 0)) return "dark.hot_sigma must be > 0, got " + std::to_string(hot_sigma);
  if (!(hot_min_counts >= 0)) return "dark.hot_min_counts must be >= 0, got " + std::to_string(hot_min_counts);
  return {};
}

std::string FlatOptions::validate() const {
  if (frames < 1) return "flat.frames must be >= 1, got " + std::to_string(frames);
  if (!(level > 0 && level <= 1)) return "flat.level must be in (0, 1], got " + std::to_string(level);
  if (!(min_model_fraction > 0 && min_model_fraction <= 1))
    return "flat.min_model_fraction must be in (0, 1], got " + std::to_string(min_model_fraction);
  return {};
}

namespace {
void check(const std::string& rule) {
  if (!rule.empty()) throw std::invalid_argument(rule);
}
std::vector<double> values(const RArray& a) { return {a.data(), a.data() + a.size()}; }
}  // namespace

DarkFrame dark_from_frames(const std::vector<RArray>& frames, const DarkOptions& options) {
  check(options.validate());
  if (frames.empty()) throw std::invalid_argument("dark_from_frames: no frames");
  DarkFrame d;
  RArray sum = RArray::Zero(frames[0].rows(), frames[0].cols()), sum2 = sum;
  for (const auto& f : frames) {
    if (f.rows() != sum.rows() || f.cols() != sum.cols())
      throw std::invalid_argument("dark_from_frames: frames differ in size");
    sum += f;
    sum2 += f.square();
  }
  const double n = double(frames.size());
  d.dark = sum / n;
  const RArray var = (sum2 / n - d.dark.square()).max(0.0) * (n > 1 ? n / (n - 1) : 0.0);
  d.temporal_noise = detail::median(values(var.sqrt()));
  const std::vector<double> v = values(d.dark);
  d.level = detail::median(v);
  d.sigma = detail::robust_sigma(v, d.level);
  const double threshold = std::max(options.hot_sigma * d.sigma, options.hot_min_counts);
  d.hot = ((d.dark - d.level) > threshold).cast<double>();
  d.hot_count = int(d.hot.sum());
  return d;
}

drivers::DeviceResult<DarkFrame> measure_dark(ProbeRig& rig, const DarkOptions& options) {
  check(options.validate());
  if (auto e = rig.show(RArray::Zero(rig.input_rows(), rig.input_cols()))) return *e;
  std::vector<RArray> frames;
  for (int i = 0; i < options.frames; ++i) {
    auto f = rig.grab_mean(1);
    if (!f) return f.error();
    frames.push_back(std::move(f.value()));
  }
  return dark_from_frames(frames, options);
}

FlatField flat_from_frame(const RArray& signal, const RArray& model, const RArray& hot, const FlatOptions& options) {
  check(options.validate());
  if (signal.rows() != model.rows() || signal.cols() != model.cols() || hot.rows() != model.rows() ||
      hot.cols() != model.cols())
    throw std::invalid_argument("flat_from_frame: signal, model and hot map differ in size");
  FlatField f;
  f.flat = RArray::Ones(signal.rows(), signal.cols());
  f.measured = RArray::Zero(signal.rows(), signal.cols());
  const double top = model.maxCoeff();
  if (!(top > 0)) throw std::invalid_argument("flat_from_frame: the model image is dark");
  std::vector<double> ratios;
  for (Eigen::Index i = 0; i < model.size(); ++i)
    if (model.data()[i] >= options.min_model_fraction * top && hot.data()[i] == 0) {
      f.measured.data()[i] = 1;
      ratios.push_back(signal.data()[i] / model.data()[i]);
    }
  f.pixels = int(ratios.size());
  f.brightness = detail::median(ratios);
  if (!(f.brightness > 0)) throw std::invalid_argument("flat_from_frame: no light where the model is bright");
  for (Eigen::Index i = 0; i < model.size(); ++i)
    if (f.measured.data()[i] != 0) f.flat.data()[i] = signal.data()[i] / (model.data()[i] * f.brightness);
  return f;
}

drivers::DeviceResult<FlatField> measure_flat(ProbeRig& rig, const Predictor& predict, const DarkFrame& dark,
                                              const PoseFit& registration, const FlatOptions& options) {
  check(options.validate());
  const RArray uniform = RArray::Constant(rig.input_rows(), rig.input_cols(), options.level);
  auto frame = rig.capture(uniform, options.frames);
  if (!frame) return frame.error();
  const RArray model = registered_model(predict(uniform), registration);
  return flat_from_frame(frame.value() - dark.dark, model, dark.hot, options);
}

RArray apply_dark_flat(const RArray& frame, const DarkFrame& dark, const FlatField& flat) {
  if (frame.rows() != dark.dark.rows() || frame.cols() != dark.dark.cols())
    throw std::invalid_argument("apply_dark_flat: frame and dark frame differ in size");
  RArray out = frame - dark.dark;
  if (flat.flat.size() != 0) {
    if (flat.flat.rows() != frame.rows() || flat.flat.cols() != frame.cols())
      throw std::invalid_argument("apply_dark_flat: frame and flat differ in size");
    out /= flat.flat;
  }
  if (dark.hot_count == 0) return out;
  const Eigen::Index R = out.rows(), C = out.cols();
  RArray filled = out;
  for (Eigen::Index r = 0; r < R; ++r)
    for (Eigen::Index c = 0; c < C; ++c) {
      if (dark.hot(r, c) == 0) continue;
      double s = 0;
      int n = 0;
      for (Eigen::Index dr = -1; dr <= 1; ++dr)
        for (Eigen::Index dc = -1; dc <= 1; ++dc) {
          const Eigen::Index rr = r + dr, cc = c + dc;
          if ((dr || dc) && rr >= 0 && rr < R && cc >= 0 && cc < C && dark.hot(rr, cc) == 0) {
            s += out(rr, cc);
            ++n;
          }
        }
      filled(r, c) = n ? s / n : 0.0;
    }
  return filled;
}

}  // namespace hilo::calibration
