#pragma once
// Deploy: turn the student's optical element (K non-negative k × k kernels) into what the bench holds.
//
// (a) Phase retrieval. The target PSF T places the kernels at the layout's offsets on the element's PSF
//     grid (pad·rows × pad·cols, sim::PupilPsf conventions). The phase φ on the pupil minimises
//         L(φ) = ‖P(φ)‖² − ⟨P(φ), T⟩² / ‖T‖²,     P(φ) = psf_from_phase(φ, A, pad)   (unit sum),
//     the energy of P orthogonal to T: it is 0 exactly when P ∝ T, so it rewards putting light into
//     the tiles in the right proportions and penalises light elsewhere. Start: Gerchberg–Saxton
//     iterations (pupil amplitude A, focal amplitude √T, phases kept); then Adam on ∂L/∂φ through
//     sim::psf_from_phase_vjp. A phase-only pupil cannot put all its light into the tiles, so the design
//     reports its efficiency (PSF energy inside the kernel windows) next to the fidelity (correlation
//     of each achieved kernel with its target).
//     A known pupil aberration a (rad, pupil grid; e.g. fitted on the bench, pupil_fit.hpp) makes the
//     retrieval pre-compensate it: P(φ) = psf_from_phase(φ + a, A, pad), Gerchberg–Saxton keeps
//     arg(E) − a, and PhaseDesign::psf is the PSF the aberrated bench forms of φ.
// (b) Phase → element. An SLM gets levels through its LUT (sim::SlmModel::quantize: the nearest level
//     on the circle), shown through drivers::Slm. A fixed mask is fabricated from the phase (in
//     simulator mode SimulatedBench kind fabricated applies the profile's fabrication error).
// compare_psfs() states how far a realised PSF is from the design, tile by tile.
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core/mat.hpp>

#include "hilo/calibration/tiles.hpp"
#include "hilo/drivers/slm.hpp"
#include "hilo/sim/slm_model.hpp"

namespace hilo::calibration {

struct PhaseRetrievalOptions {
  int gs_iterations = 60;       // ≥ 0
  int adam_iterations = 400;    // ≥ 0
  double learning_rate = 0.05;  // rad per step, > 0

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PhaseRetrievalOptions, gs_iterations, adam_iterations, learning_rate)

struct PsfComparison {
  std::vector<double> correlation;  // per kernel: Pearson correlation of the k × k tiles
  double mean_correlation = 0.0;
  double min_correlation = 0.0;
  double efficiency = 0.0;            // Σ of `other` inside the kernel windows / Σ other
  double reference_efficiency = 0.0;  // the same for `reference`
};

// Compares `other` with `reference` (same shape) on the layout's kernel windows about the PSF centre.
PsfComparison compare_psfs(const RArray& reference, const RArray& other, const TileLayout& layout);

struct PhaseDesign {
  RArray phase;          // rad, pupil rows × cols, wrapped to [0, 2π)
  RArray psf;            // its PSF, unit sum
  RArray target;         // the target PSF, unit sum
  PsfComparison fidelity;  // psf vs target
  double loss = 0.0;
  std::string report;
};

// A phase (rad) wrapped to [0, 2π), as PhaseDesign::phase holds it.
RArray wrapped_phase(const RArray& phase);

// Throws std::invalid_argument for kernels that do not fit the layout or the PSF grid, a dark pupil, or
// an aberration (empty = none) of another shape than the pupil.
PhaseDesign retrieve_phase(const std::vector<RArray>& kernels, const TileLayout& layout, const RArray& pupil_amplitude,
                           int pad, const PhaseRetrievalOptions& options, std::mt19937_64& rng,
                           const RArray& aberration = {});

// Levels for an SLM of the given model (rows × cols, LUT), as a CV_8UC1 (bit depth ≤ 8) or CV_16UC1 image.
cv::Mat phase_to_levels(const RArray& phase, const sim::SlmModel& slm);
// phase_to_levels then show; the device must match the model's size.
drivers::DeviceStatus deploy_phase(drivers::Slm& element, const RArray& phase, const sim::SlmModel& slm);

}  // namespace hilo::calibration
