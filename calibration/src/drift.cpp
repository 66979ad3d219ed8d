#include "hilo/calibration/drift.hpp"

#include <cmath>
#include <numbers>
#include <cstdio>
#include <stdexcept>

namespace hilo::calibration {

Pose compose_poses(const Pose& outer, const Pose& inner) {
  const double th = outer.rotation_deg * std::numbers::pi / 180.0;
  const double c = std::cos(th), s = std::sin(th);
  Pose p;
  p.scale = outer.scale * inner.scale;
  p.rotation_deg = outer.rotation_deg + inner.rotation_deg;
  p.shift_x_px = outer.scale * (c * inner.shift_x_px - s * inner.shift_y_px) + outer.shift_x_px;
  p.shift_y_px = outer.scale * (s * inner.shift_x_px + c * inner.shift_y_px) + outer.shift_y_px;
  p.gain = outer.gain * inner.gain;
  return p;
}

std::string DriftOptions::validate() const {
  if (probes < 1) return "drift.probes must be >= 1, got " + std::to_string(probes);
  if (frames < 1) return "drift.frames must be >= 1, got " + std::to_string(frames);
  if (!(fill > 0 && fill < 1)) return "drift.fill must be in (0, 1), got " + std::to_string(fill);
  if (!(level > 0 && level <= 1)) return "drift.level must be in (0, 1], got " + std::to_string(level);
  if (!(shift_threshold_px > 0))
    return "drift.shift_threshold_px must be > 0, got " + std::to_string(shift_threshold_px);
  if (!(gain_threshold > 0)) return "drift.gain_threshold must be > 0, got " + std::to_string(gain_threshold);
  if (!(smoothing_px >= 0)) return "drift.smoothing_px must be >= 0, got " + std::to_string(smoothing_px);
  if (field.w < 0 || field.h < 0) return "drift.field must have w, h >= 0";
  return fit.validate();
}

namespace {
void check(const std::string& e) {
  if (!e.empty()) throw std::invalid_argument(e);
}

drivers::DeviceResult<std::vector<RArray>> measure(ProbeRig& rig, const std::vector<RArray>& probes,
                                                   const DarkFrame& dark, int frames) {
  std::vector<RArray> out;
  for (const RArray& p : probes) {
    auto f = rig.capture(p, frames);
    if (!f) return f.error();
    out.push_back(apply_dark_flat(f.value(), dark));
  }
  return out;
}
}  // namespace

drivers::DeviceResult<DriftReference> capture_drift_reference(ProbeRig& rig, const DarkFrame& dark, const Pose& pose,
                                                              double t_s, const DriftOptions& options,
                                                              std::mt19937_64& rng) {
  check(options.validate());
  DriftReference ref;
  ref.pose = pose;
  ref.t0_s = t_s;
  for (int i = 0; i < options.probes; ++i)
    ref.probes.push_back(random_binary_pattern(rig.input_rows(), rig.input_cols(), options.fill, options.level, rng));
  auto frames = measure(rig, ref.probes, dark, options.frames);
  if (!frames) return frames.error();
  ref.frames = std::move(frames.value());
  return ref;
}

DriftReport compare_drift(const std::vector<RArray>& frames, const DriftReference& reference, double t_s,
                          const DriftOptions& options) {
  check(options.validate());
  if (frames.size() != reference.frames.size() || frames.empty())
    throw std::invalid_argument("drift: " + std::to_string(frames.size()) + " frames for a reference of " +
                                std::to_string(reference.frames.size()));
  DriftReport r;
  r.t_s = t_s;
  r.elapsed_s = t_s - reference.t0_s;
  std::vector<RArray> now, ref;
  for (std::size_t k = 0; k < frames.size(); ++k) {
    now.push_back(gaussian_blur(frames[k], options.smoothing_px));
    ref.push_back(gaussian_blur(reference.frames[k], options.smoothing_px));
  }
  r.fit = fit_pose(now, ref, options.fit);
  Pose geometric = r.fit.pose;
  geometric.gain = 1.0;
  // Gain from whole-frame light sums (the reference moved by D, so light leaving the frame counts on
  // both sides): bilinear resampling conserves the sum but not the contrast the fit's gain sees.
  double now_sum = 0.0, ref_sum = 0.0;
  for (std::size_t k = 0; k < frames.size(); ++k) {
    now_sum += frames[k].sum();
    ref_sum += warp_forward(reference.frames[k], geometric).sum();
  }
  if (!(ref_sum > 0)) throw std::invalid_argument("drift: the reference frames hold no light");
  r.change = geometric;
  r.change.gain = now_sum / ref_sum;
  r.updated_pose = compose_poses(r.change, reference.pose);
  const Eigen::Index R = frames[0].rows(), C = frames[0].cols();
  const Rect field = (options.field.w > 0 || options.field.h > 0) ? options.field
                                                                   : Rect{0, 0, double(C - 1), double(R - 1)};
  r.displacement_px = max_displacement_px(compose_poses(geometric, reference.pose), reference.pose, field, R, C);
  r.gain_change = r.change.gain - 1.0;
  const bool shift = r.displacement_px > options.shift_threshold_px;
  const bool gain = std::abs(r.gain_change) > options.gain_threshold;
  r.exceeded = shift || gain;
  char buf[256];
  if (r.exceeded) {
    std::string what;
    if (shift) {
      std::snprintf(buf, sizeof buf, "shift %.2f px > %.2f px", r.displacement_px, options.shift_threshold_px);
      what = buf;
    }
    if (gain) {
      std::snprintf(buf, sizeof buf, "gain change %+.2f %% beyond ±%.2f %%", 100 * r.gain_change,
                    100 * options.gain_threshold);
      what += (what.empty() ? "" : ", ") + std::string(buf);
    }
    r.message = "drift exceeded: " + what;
  } else {
    std::snprintf(buf, sizeof buf, "drift within limits: shift %.2f px <= %.2f px, gain change %+.2f %%",
                  r.displacement_px, options.shift_threshold_px, 100 * r.gain_change);
    r.message = buf;
  }
  std::snprintf(buf, sizeof buf, " after %.1f s (shift %+.3f, %+.3f px, rotation %+.4f deg, scale %+.5f)", r.elapsed_s,
                r.change.shift_x_px, r.change.shift_y_px, r.change.rotation_deg, r.change.scale - 1.0);
  r.message += buf;
  return r;
}

drivers::DeviceResult<DriftReport> check_drift(ProbeRig& rig, const DriftReference& reference, const DarkFrame& dark,
                                               double t_s, const DriftOptions& options) {
  check(options.validate());
  auto frames = measure(rig, reference.probes, dark, options.frames);
  if (!frames) return frames.error();
  return compare_drift(frames.value(), reference, t_s, options);
}

}  // namespace hilo::calibration
