#pragma once
// Drift monitoring: is the bench still where calibration left it?
//
// At calibration time, capture_drift_reference() shows a few random binary probes (the element in the
// state the bench will be used in, e.g. the deployed kernels) and keeps the dark-corrected mean frames
// with the calibrated pose. Later, check_drift() — called by the daemon on its own schedule with the
// rig and the time — shows the same probes again and fits the frame-to-frame change
//     now_k(x) ≈ a · ref_k(D⁻¹(x)) + b_k,      D = (Δt, Δθ, Δs) a similarity about the frame centre
// with fit_pose (no blur term: both frames went through the same optics; both are smoothed alike
// first, see smoothing_px). Comparing measured with
// measured makes the check independent of the design model: the as-built PSF, aberrations and kernel
// errors are in both sides and cancel; only what moved since the reference shows.
//   drift displacement  max over `field` of |D(T_ref(p)) − T_ref(p)|, pixels (T_ref = reference pose)
//   gain change         a − 1 (relative brightness change), a = Σ now / Σ warp_forward(ref, D) over
//                       all frames and pixels (dark-corrected: offsets taken as 0). The fit's own
//                       photometric gain is biased by the contrast that bilinear resampling loses at
//                       fractional shifts (+0.5 % at a 0.7 px drift, measured); light sums are not.
//   updated pose        D ∘ T_ref (compose_poses), the re-compensated registration; gain ref.gain · a
// Decision: exceeded when the displacement > shift_threshold_px or |a − 1| > gain_threshold; the report
// says which, e.g. "drift exceeded: shift 0.81 px > 0.50 px". What to do about it (event, re-calibrate,
// or apply the updated pose) is the caller's choice.
// Accuracy (simulator, docs/calibration.md "Drift monitoring"): with the probes spread over the field
// (a deployed element), the displacement matches the as-built profile's true_pose(t) − true_pose(t0)
// within 0.01 px and the gain ratio true_gain(t)/true_gain(t0) within 0.05 %. With a flat element the
// lit area is small and rotation/scale extrapolated over a wide field add up to 0.1 px. Requirements: the element in its reference state, and dark frames taken at the same
// exposure. A change of the element (a new deployment) needs a new reference.
#include <random>
#include <string>
#include <vector>

#include "hilo/calibration/dark_flat.hpp"
#include "hilo/calibration/probe.hpp"
#include "hilo/calibration/registration.hpp"

namespace hilo::calibration {

// The similarity `outer` applied after `inner` (both about the same frame centre): scale and rotation
// multiply/add, shift = s_o R(θ_o) t_i + t_o, gain multiplies.
Pose compose_poses(const Pose& outer, const Pose& inner);

struct DriftOptions {
  int probes = 2;                   // random binary patterns, ≥ 1
  int frames = 8;                   // averaged per probe and check, ≥ 1
  double fill = 0.5;                // (0, 1)
  double level = 0.8;               // (0, 1]
  double shift_threshold_px = 0.5;  // > 0
  double gain_threshold = 0.02;     // relative, > 0
  Rect field;                       // where displacement counts; w = h = 0: the whole frame
  // Both sides are smoothed by a Gaussian of this σ before the fit, ≥ 0. Resampling a sharp frame
  // bilinearly at a fractional shift lowers its contrast, which biases the gain and the scale of an
  // unsmoothed fit (measured: 0.1 px over the feature field and 0.4 % of gain at a 0.3 px drift).
  double smoothing_px = 1.5;
  PoseFitOptions fit = [] {
    PoseFitOptions f;
    f.fit_blur = false;
    return f;
  }();

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};

struct DriftReference {
  std::vector<RArray> probes;  // input patterns
  std::vector<RArray> frames;  // dark-corrected mean frames at t0_s, counts
  Pose pose;                   // the calibrated registration at t0_s
  double t0_s = 0.0;
};

// Device errors come back as values; invalid options throw std::invalid_argument.
drivers::DeviceResult<DriftReference> capture_drift_reference(ProbeRig& rig, const DarkFrame& dark, const Pose& pose,
                                                              double t_s, const DriftOptions& options,
                                                              std::mt19937_64& rng);

struct DriftReport {
  double t_s = 0.0, elapsed_s = 0.0;  // time of the check, and since the reference
  Pose change;                        // D, gain = a (light-sum ratio)
  Pose updated_pose;                  // D ∘ T_ref, gain = ref gain · a
  double displacement_px = 0.0;
  double gain_change = 0.0;           // a − 1
  bool exceeded = false;
  std::string message;                // "drift exceeded: …" or "drift within limits: …"
  PoseFit fit;                        // the frame-to-frame fit (residual, convergence)
};

// Pure core: the report for frames measured now against the reference.
DriftReport compare_drift(const std::vector<RArray>& frames, const DriftReference& reference, double t_s,
                          const DriftOptions& options);

drivers::DeviceResult<DriftReport> check_drift(ProbeRig& rig, const DriftReference& reference, const DarkFrame& dark,
                                               double t_s, const DriftOptions& options);

}  // namespace hilo::calibration
