#pragma once
// Dark frames, hot pixels and flat fields.
//
// Dark: the input shows all zeros and `frames` frames are averaged. dark(x) is the per-pixel mean in
// counts (ADC pedestal + dark current); level is its median over the frame. Hot pixels are the robust
// outliers of the mean dark: dark(x) − level > max(hot_sigma · σ, hot_min_counts), σ = 1.4826 · MAD of
// the mean dark over all pixels. Accuracy (simulator): level within 0.05 counts of
// SimulatedBench::dark_level_counts(), hot-pixel map equal to the camera model's (numbers in
// docs/calibration.md). A hot pixel whose excess is below the threshold is missed; that is the point of
// the threshold, and with 16 frames every hot pixel of the shipped profiles clears it.
//
// Flat: relative per-pixel gain (PRNU, vignetting of the relay). This bench never lights the whole
// sensor, so the flat is measured where a uniform input lights it, against the predictor:
//   flat(x) = (measured(x) − dark(x)) / (g · model(x)),   model = registered_model(predict(uniform), fit),
// on pixels where model(x) ≥ min_model_fraction · max(model) and not hot; g = the median ratio there, so
// flat has median 1; flat = 1 elsewhere (not measured: `measured` is 0 there). Residual misregistration
// at the edges of the lit area biases the ratio, which is why only the bright plateau is used.
//
// Correction: corrected = (frame − dark) / flat, hot pixels replaced by the mean of their non-hot
// 8-neighbours (0 if none).
#include <string>

#include "hilo/calibration/probe.hpp"
#include "hilo/sim/pose.hpp"

namespace hilo::calibration {
struct PoseFit;
}

namespace hilo::calibration {

struct DarkOptions {
  int frames = 16;              // ≥ 1
  double hot_sigma = 8.0;       // > 0
  double hot_min_counts = 1.0;  // ≥ 0: smallest excess called hot (guards a noiseless sensor, σ = 0)

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};

struct DarkFrame {
  RArray dark;             // counts, camera rows × cols
  RArray hot;              // 1 where hot, else 0
  double level = 0.0;      // median of dark, counts
  double sigma = 0.0;      // robust spread of the mean dark over pixels, counts
  double temporal_noise = 0.0;  // median over pixels of the per-frame standard deviation, counts
  int hot_count = 0;
};

drivers::DeviceResult<DarkFrame> measure_dark(ProbeRig& rig, const DarkOptions& options = {});
// Pure core of measure_dark over already grabbed frames (≥ 1, equal sizes).
DarkFrame dark_from_frames(const std::vector<RArray>& frames, const DarkOptions& options = {});

struct FlatOptions {
  int frames = 16;                  // ≥ 1
  double level = 0.8;               // uniform input intensity, (0, 1]
  double min_model_fraction = 0.9;  // (0, 1]

  [[nodiscard]] std::string validate() const;
};

struct FlatField {
  RArray flat;              // relative gain, median 1 over `measured`
  RArray measured;          // 1 where flat was measured
  double brightness = 0.0;  // g: median measured / model ratio at `level`
  int pixels = 0;           // measured pixels
};

drivers::DeviceResult<FlatField> measure_flat(ProbeRig& rig, const Predictor& predict, const DarkFrame& dark,
                                              const PoseFit& registration, const FlatOptions& options = {});
// Pure core: flat from a dark-subtracted mean frame and the registered model image.
FlatField flat_from_frame(const RArray& signal, const RArray& model, const RArray& hot,
                          const FlatOptions& options = {});

// (frame − dark) / flat with hot pixels filled in. A default (empty) flat means no flat correction.
RArray apply_dark_flat(const RArray& frame, const DarkFrame& dark, const FlatField& flat = {});

}  // namespace hilo::calibration
