#pragma once
// Hardware in the loop: the trained student meets the bench.
//
// The design model is the bench as designed: the simulator description of the optics (bench config
// `simulator:` section) with the ideal profile, showing the element phase the bench holds. It is the
// predictor of every calibration and the simulation of the deployed system.
//
// Units. The student's optical layer produces maps Y_j = x ⋆ κ_j (x in [0, 1]); the camera records
// counts. After deploy, the design model's map j of an input x (counts above dark, ideal bench) is
//     map_j(x) = c · Y_j(x),      c = counts_per_unit (Deployment)
// up to the light the element puts outside the kernel windows (a phase-only pupil cannot put all of it
// into the tiles: PhaseDesign::fidelity.efficiency), which reaches the windows as a wide, faint
// background. The design model includes that light, the student's 7 × 7 kernels do not; so the deployed
// student's backend is re-fitted on design-model features before anything is measured
// (simulated_refit), and "simulated accuracy" is the accuracy of that deployed design.
// Measured features: extract_features (dark, flat, registration, gain, tile windows) / c → signing and
// pooling (OpticalStudent::features_from_maps).
#include <functional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "hilo/calibration/deploy.hpp"
#include "hilo/calibration/features.hpp"
#include "hilo/calibration/linearity.hpp"
#include "hilo/calibration/probe.hpp"
#include "hilo/calibration/registration.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/io/progress.hpp"
#include "hilo/sim/bench_model.hpp"

namespace hilo::calibration {

class DesignModel {
 public:
  // `bench` describes the optics; its profile is replaced by the ideal one. Throws sim::ConfigError.
  explicit DesignModel(sim::BenchOptions bench);
  const sim::BenchOptions& options() const { return twin_.options(); }

  // The element the bench holds: a phase (rad, element rows × cols); for an SLM element it is quantised
  // through the LUT exactly as the SLM will show it.
  void set_element_phase(const RArray& phase_rad);
  void set_flat_element();
  // SLM element only: the levels the element SLM shows (element rows × cols), through the LUT as the SLM
  // shows them. Throws std::invalid_argument for another element kind or a wrong shape.
  void set_element_levels(const sim::Levels& levels);
  const RArray& psf() { return twin_.design_psf(); }  // unit sum

  // A known pupil aberration (rad, element rows × cols; empty = none), e.g. fitted on the bench
  // (pupil_fit.hpp): from now on the model forms every element phase φ as φ + aberration (an SLM: the
  // sum quantised through the LUT, within half a level of LUT(φ) + aberration), the flat element
  // included, and deploy pre-compensates it. Set it before the element. set_element_levels then throws
  // std::logic_error (levels carry no room for it). Throws std::invalid_argument for a wrong shape.
  void set_pupil_aberration(const RArray& phase_rad);
  const RArray& pupil_aberration() const { return aberration_; }

  // A second model of the same optics, aberration and element, with buffers and FFT plans of its own, so
  // that two threads can predict at once (design_maps' workers). Its predictions equal this model's.
  DesignModel clone() const;

  // Camera counts above dark of the designed bench (brightness 1, no misalignment, no noise).
  RArray predict(const RArray& input_intensity);
  Predictor predictor();
  // Counts per (input intensity 1 × PSF weight 1): photons per ms × exposure × QE × binning² / e⁻ per count.
  double counts_per_psf_unit() const;

  // Pupil amplitude of the element (what phase retrieval designs on) and the PSF grid padding.
  RArray pupil_amplitude() const;
  int psf_pad() const { return options().element.psf_pad; }
  // Tile layout of the student's K kernels on this camera (sim::KernelTiling of the student options).
  TileLayout layout(const distill::StudentOptions& student) const;

 private:
  sim::SimulatedBench twin_;
  RArray aberration_;
  std::variant<RArray, sim::Levels> element_;  // what the last set_element_* gave (phase before aberration)
};

struct Deployment {
  PhaseDesign design;         // retrieved phase, its design PSF, fidelity to the student's kernels
  distill::MatD kernels;      // K × k²: the design PSF's tiles as student kernels (rot180, scaled)
  double kernel_scale = 0;    // s: student kernels = s · tiles, Σ equal to the trained kernels' Σ
  double counts_per_unit = 0; // c (see above) = counts_per_psf_unit / s
  TileLayout layout;
};

// The student's K kernels as PSF tiles (convolution orientation: each cross-correlation kernel rot180),
// k × k each.
std::vector<RArray> psf_tiles(const distill::OpticalStudent& student);
// The one place of that convention: kernels κ (K × k², cross-correlation weights, row (ky, kx)) → PSF
// tiles (rot180 each), and tiles → scale · rot180(tile) as kernels (deploy's realised kernels).
std::vector<RArray> tiles_from_kernels(const distill::MatD& kappa, int kernel_size);
distill::MatD kernels_from_tiles(const std::vector<RArray>& tiles, double scale);

// Designs the element for the student's kernels (phase retrieval on the design model's pupil, through
// its pupil aberration when one is set), sets
// the design model's element to it, and returns what the student must use from now on. Intensity
// parameterisation only (a phase-mask student is deployed by its own phase; not supported here yet).
Deployment design_deployment(const distill::OpticalStudent& student, DesignModel& design,
                             const PhaseRetrievalOptions& options, std::mt19937_64& rng);

// Deploys a phase-parameterised student (parameterization "phase", or "fourier" for the 4f front-end)
// by its own phase: no retrieval, the element shows the phase the student trained, so the deployed
// kernels are realisable from the start. The student's phase grid, psf_pad and pupil must be the
// element's (student options phase_rows/phase_cols = element rows/cols, pupil "circle" for the bench's
// largest inscribed circle, pupil_diameter_px 0), a fourier student needs a coherent bench and a phase
// student an incoherent one, the SLM must not be oversampled, and no pupil aberration may be set; each
// is a std::invalid_argument naming what to change. Deployment: design.phase = the student's phase
// wrapped to [0, 2π); design.target = the student's own PSF (|ASF|² for fourier); design.fidelity =
// compare_psfs(target, the design model's PSF after the SLM's LUT); kernels = the realised intensity
// tiles × psf_gain (for fourier the |κ|² the design's point responses give); kernel_scale = psf_gain;
// counts_per_unit = counts_per_psf_unit / psf_gain (for both, since a fourier student's maps are
// psf_gain·|x ⋆ tile|² and the coherent design model's are counts_per_psf_unit·|x ⋆ tile|²).
Deployment deploy_own_phase(const distill::OpticalStudent& student, DesignModel& design);

// The student's features for K maps (counts, ideal-bench units, layout order), one row.
distill::MatD maps_to_features(const std::vector<RArray>& maps, const distill::OpticalStudent& student,
                               double counts_per_unit);

// The design model's K maps of each row of x (N × H·W in [0, 1]): its image cut at the layout windows,
// / counts_per_unit (student units), one row per image in OpticalStudent::features_from_maps' layout
// (N × K·H·W, map-major). design_features(x) = student.features_from_maps(design_maps(x)), bit for bit;
// the maps depend only on the element the design model holds, so a caller that needs the design model
// of the same images again for the same element (the twin of every profile) keeps them instead of
// predicting again. 8·K·H·W bytes per image (50 kB for 8 maps of 28 × 28). work.report(rows done, rows,
// "design features") every 100 rows, from the calling thread; a stop request (polled before each row)
// ends early with the first rows done so far (an unbroken prefix of x). threads > 1 predicts rows on
// that many threads, the others with design.clone(); the result is the same bit for bit. The first
// exception of any thread (a prediction, the progress callback) stops the others and is rethrown once they
// have joined. Throws std::invalid_argument when x's columns are not the student's H·W pixels.
distill::MatD design_maps(DesignModel& design, const Deployment& deployment, const distill::OpticalStudent& student,
                          const distill::Mat<float>& x, const io::WorkControl& work = {}, int threads = 1);

// Features of the deployed design in simulation: design_maps → maps_to_features (signing, pooling).
// Work and stop as design_maps.
distill::MatD design_features(DesignModel& design, const Deployment& deployment, const distill::OpticalStudent& student,
                              const distill::Mat<float>& x, const io::WorkControl& work = {}, int threads = 1);

// Features measured on the bench: show each row of x, average `frames` frames, extract_features with the
// calibration, → maps_to_features. A device error ends the measurement and is returned; work as above,
// reported every 50 rows as stage "measure".
drivers::DeviceResult<distill::MatD> measure_features(ProbeRig& rig, const BenchCalibration& calibration,
                                                      const ExtractOptions& extract, const Deployment& deployment,
                                                      const distill::OpticalStudent& student,
                                                      const distill::Mat<float>& x, int frames,
                                                      const io::WorkControl& work = {});

// The hardware calibration the pipeline runs (DESIGN §6), in order: dark (input dark), registration
// with the element flat (sharp PSF), gain from the linearity ramp, then — with the deployed element —
// the kernel tiles. `show_element(phase)` puts a phase on the bench's element (SLM: through its LUT;
// fixed mask: a no-op returning nullopt, registration then runs with the deployed mask) and is also
// applied to the design model by the caller's convention: this function calls design.set_element_phase
// itself.
struct BenchCalibrationOptions {
  DarkOptions dark;
  RegistrationOptions registration;
  LinearityOptions linearity;
  TileLocateOptions tiles;
  bool flat_element_for_registration = true;  // false for a fixed mask
  [[nodiscard]] std::string validate() const;
};

struct BenchCalibrationResult {
  BenchCalibration calibration;
  Registration registration;
  LinearityFit linearity;
  TileLocations tiles;
  nlohmann::json summary;  // numbers for the report
};

using ShowElementFn = std::function<drivers::DeviceStatus(const RArray& phase_rad)>;

drivers::DeviceResult<BenchCalibrationResult> calibrate_bench(ProbeRig& rig, DesignModel& design,
                                                              const Deployment& deployment,
                                                              const ShowElementFn& show_element,
                                                              const BenchCalibrationOptions& options,
                                                              std::mt19937_64& rng);

}  // namespace hilo::calibration
