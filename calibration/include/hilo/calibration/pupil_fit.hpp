#pragma once
// Pupil aberration fit: what the bench's optics add to the deployed element, from the PSF the tile
// calibration measured (docs/calibration.md, "Pupil aberration fit").
//
// Model. The tile calibration shows a small probe spot o (input, placed on the camera design grid) with
// the deployed element and records M, the dark-corrected frame resampled onto the design grid through
// the registration pose (TileLocations::registered, counts). The design model predicts
//     I(c, h) = o ⊛ PSF((1 + h) · φ + a(c)),     a(c) = 2π Σ_j c_j Z_j     (rad on the pupil)
// with φ the phase the element shows as the design sees it (an SLM: the LUT phase of its levels), Z_j
// the Noll-normalised Zernike maps on the design pupil (sim::zernike_map, radius = pupil diameter / 2;
// the convention of sim::AsBuilt::pupil_phase, so c is in waves RMS and compares with the profile's
// coefficients), h a phase-scale error (etch depth or LUT range; fitted only on request).
// Objective (dimensionless: the share of the measurement's energy the model does not explain):
//     L(c, h) = min_s ‖M − s·I‖² / ‖M‖² = 1 − ⟨M, I⟩² / (‖M‖² ‖I‖²)
// so the brightness (gain, efficiency) never enters. Gradient through the simulator's adjoints:
//     ∂L/∂I = −2 s (M − s I) / ‖M‖²  (s at its optimum, envelope theorem)
//     → sim::incoherent_image_psf_vjp → sim::PupilPsf::vjp = ∂L/∂φ_total
//     ∂L/∂c_j = 2π Σ ∂L/∂φ_total · Z_j,    ∂L/∂h = Σ ∂L/∂φ_total · φ.
// Minimised by Adam from c = 0, h = 0 with a step decaying to a tenth; the best iterate is returned.
// Tilts (Noll 2, 3) move the whole PSF, which the registration already measured as a camera shift:
// they may be fitted to absorb a residual shift but are not part of `aberration()` (pre-compensating
// them would move the tiles away from where the calibration found them).
// Identifiability: a single in-focus PSF leaves the sign of even aberrations ambiguous; the deployed
// phase is not symmetric, so it acts as a known diversity phase and breaks the ambiguity.
// The registration's fitted Gaussian blur is NOT applied: it stood in for these aberrations when the
// pose was fitted, and applying it here would count them twice.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/calibration/tiles.hpp"
#include "hilo/sim/bench_model.hpp"

namespace hilo::calibration {

struct PupilFitOptions {
  std::vector<int> noll{4, 5, 6, 7, 8, 9, 10, 11};  // fitted Zernike terms, Noll indices in [2, 37], no repeats
  bool fit_phase_scale = false;  // also fit h (a fixed mask's height error; an SLM's LUT range)
  int iterations = 300;          // Adam steps, [1, 100000]
  double learning_rate = 0.004;  // waves (and h units) per step at the start, > 0

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PupilFitOptions, noll, fit_phase_scale, iterations, learning_rate)

// What the fit needs: all arrays on the grids named; `object` and `measured` have one shape (the camera
// design grid), `element_phase` and `pupil_amplitude` the element's.
struct PupilFitProblem {
  RArray element_phase;    // φ, rad
  RArray pupil_amplitude;  // A ≥ 0
  int pad = 2;             // PSF grid = pad × element grid (one PSF sample = one camera pixel)
  double pupil_radius_px = 0;  // Zernike radius, element samples, > 0
  RArray object;           // the probe on the camera design grid (any scale)
  RArray measured;         // M, counts on the design grid
};

struct PupilFit {
  std::map<int, double> zernike_waves;  // Noll j → c_j, waves RMS (every fitted term, tilts included)
  double phase_scale = 1.0;             // 1 + h
  double loss_start = 0.0;              // L at c = 0, h = 0
  double loss = 0.0;                    // L at the result
  double scale = 0.0;                   // s at the result: counts per model unit
  int iterations = 0;
  std::string report;

  // a(c) without tilts (rad) on an element grid of rows × cols, pupil radius in element samples.
  RArray aberration(Eigen::Index rows, Eigen::Index cols, double pupil_radius_px) const;
  nlohmann::json to_json() const;  // {"zernike_waves": {"4": …}, "phase_scale", "loss_start", "loss", …}
};

// 2π Σ_j waves_j Z_j (rad), 0 outside the pupil: the same map sim::AsBuilt::pupil_phase makes of a
// profile's coefficients.
RArray zernike_phase(const std::map<int, double>& waves, Eigen::Index rows, Eigen::Index cols, double pupil_radius_px);

// L and, when `gradient` is given, (∂L/∂c_j in the order of `noll`, then ∂L/∂h when fit_phase_scale).
// params = (c_j in that order[, h]). Throws std::invalid_argument for shapes that do not match, a dark
// pupil, a dark measurement or invalid options.
double pupil_fit_objective(const PupilFitProblem& problem, const PupilFitOptions& options, const Eigen::VectorXd& params,
                           Eigen::VectorXd* gradient = nullptr);

PupilFit fit_pupil_aberration(const PupilFitProblem& problem, const PupilFitOptions& options);

// The tile probe (tiles.spot) on the camera design grid of tiles.registered's size, placed where the
// design model places the input (layout.object_row/col). Throws std::invalid_argument when it leaves it.
RArray probe_object(const TileLocations& tiles, const TileLayout& layout);

// The problem of a bench's tile calibration: φ as `design` shows `phase` (SLM: the LUT phase of the
// quantised levels; fixed mask: `phase`), the design pupil, the probe spot placed as the design model
// places the input, and tiles.registered.
PupilFitProblem pupil_fit_problem(const sim::BenchOptions& design, const RArray& phase, const TileLocations& tiles,
                                  const TileLayout& layout);

}  // namespace hilo::calibration
