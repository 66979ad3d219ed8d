#pragma once
// Measured kernels (DESIGN §6): the K kernels the deployed element really realises, as the camera sees
// them after the bench calibration (dark, flat, registration, gain, tile windows), in the student's
// feature units — the units of Deployment::kernels (map counts / counts_per_unit).
//
// Model of window j (measured map m_j, student units, input x in [0, 1], H = margin + k/2):
//     m_j(r, c) = Σ_{|u|,|v| ≤ H} w_j(u, v) · x(r + u, c + v)  +  b_j · Σx  +  a_j
// w_j: the kernel on a support of side s = k + 2·margin (cross-correlation orientation, as the
// student's kernels: its central k × k part is what Deployment::kernels holds for the design), x = 0
// outside the input. b_j: stray light — what window j receives per unit of total input intensity from
// outside the support (the light a phase-only element puts between the tiles, spread wide and faint:
// about 83 % of it on the configs/sim.yaml bench), modelled as spatially constant over the window.
// a_j: a constant offset (the dark level's residual). Light beyond the support with structure is
// not modelled; fit_residual says how much of the probes that leaves unexplained.
//
// The same least squares on the design model's maps of the same probes (noise-free) gives design_fit,
// design_stray, design_offset: the design described by the same model, so that measured − design_fit is
// what the bench changed (the twin adds it to the design model, twin.hpp).
//
// Noise (photon transfer): the first two random probes are grabbed twice more as single frames; over the
// pixels that are not hot, half the squared difference of the two frames is regressed on their mean
// signal above dark S: var = read_var + shot_slope · S (counts², both clamped at >= 0).
//
// Probes (shown on the input, with the deployed element): `points` patterns of single lit pixels on a
// grid spaced s apart, each pattern shifted by one more pixel (so each is K kernel copies side by side),
// and `random_patterns` random binary patterns (fill `fill`), each averaged over `frames` frames.
// Estimate: one least squares over all probes and map pixels per window, with a ridge of
// ridge · mean(diag(normal matrix)); the normal matrix is the same for every window (it depends only
// on the probes), so it is factorised once.
// Failure modes: device errors come back as values; invalid options or a calibration that does not fit
// the layout throw std::invalid_argument.
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/calibration/features.hpp"
#include "hilo/calibration/hil.hpp"
#include "hilo/distill/layers.hpp"

namespace hilo::calibration {

struct KernelProbeOptions {
  bool enabled = true;       // the pipeline measures kernels and builds the twin (bench.kernels.enabled)
  int margin_px = 2;         // support side s = k + 2·margin, [0, 10]
  int points = 4;            // single-point grid patterns, [0, 64]
  int random_patterns = 12;  // random binary patterns, [0, 256]; points + random_patterns >= 2
  double fill = 0.2;         // on-probability of a random pattern's pixels, (0, 1]
  int frames = 4;            // frames averaged per probe, [1, 64]
  double ridge = 1e-4;       // relative Tikhonov weight, >= 0

  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule (bench.kernels.<key>)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KernelProbeOptions, enabled, margin_px, points, random_patterns, fill,
                                                frames, ridge)

struct MeasuredKernels {
  int kernel_size = 7, support = 7;  // k and s
  distill::MatD kernels;             // K × s², row-major (u, v), student units
  std::vector<double> stray;         // b_j, student units per unit Σx
  std::vector<double> offset;        // a_j, student units
  distill::MatD design;              // K × s²: the design model's PSF cut the same way (kernel_scale · rot180)
  distill::MatD design_fit;          // K × s²: the least squares on the design model's maps of the probes
  std::vector<double> design_stray, design_offset;
  double read_var = 0, shot_slope = 0;  // photon transfer (counts², counts per count); 0 without noise pairs
  int noise_frames = 0;              // single frames grabbed for it
  std::vector<double> correlation;   // Pearson(measured w_j, design w_j) over the support
  double mean_correlation = 0;
  std::vector<double> fit_residual;  // per window: rms(model − measured) / rms(measured) over the probes
  int probes = 0, frames = 0;        // probe patterns shown and bench frames grabbed for them (noise pairs included)

  nlohmann::json summary() const;  // correlations, stray, residuals, probe and frame counts
};

// The probe patterns of `options` (rows × cols input intensities), drawn from rng in a fixed order.
std::vector<RArray> kernel_probes(int rows, int cols, int support, const KernelProbeOptions& options, std::mt19937_64& rng);

// A PSF (unit sum, centre at (rows/2, cols/2)) cut at the layout's tile offsets on a support of side s,
// rotated into the student's cross-correlation orientation and scaled: K × s² (what Deployment::kernels
// holds for s = k).
distill::MatD psf_kernels(const RArray& psf, const TileLayout& layout, int support, double scale);

// Pure core: the least-squares fit above from probe inputs and their maps (maps[i][j]: probe i,
// window j, input rows × cols, student units). Throws std::invalid_argument for mismatched sizes.
MeasuredKernels fit_kernels(const std::vector<RArray>& inputs, const std::vector<std::vector<RArray>>& maps,
                            int kernel_size, int margin_px, double ridge);

// Shows the probes through `capture` (input intensity, frames → mean frame in counts, e.g.
// Experiment::capture), cuts each frame into maps with `calibration` (extract_features), divides by
// deployment.counts_per_unit, fits, and fills `design` and the correlations from the design model's PSF
// (design.psf() with the deployed element), design_fit from the design model's images of the probes,
// and the photon transfer.
using CaptureFn = std::function<drivers::DeviceResult<RArray>(const RArray& input, int frames)>;
drivers::DeviceResult<MeasuredKernels> measure_kernels(const CaptureFn& capture, const BenchCalibration& calibration,
                                                       DesignModel& design, const Deployment& deployment,
                                                       const KernelProbeOptions& options, std::mt19937_64& rng);

// The model's maps of one input (K maps, input rows × cols, student units): the formula above, with
// the measured kernels, or (bench_change) with measured − design_fit (kernels, stray and offset): what
// the bench adds to the design model's maps.
std::vector<RArray> kernel_maps(const MeasuredKernels& mk, const RArray& input, bool bench_change = false);

}  // namespace hilo::calibration
