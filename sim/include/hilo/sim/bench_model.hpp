#pragma once
// SimulatedBench: the whole simulated optical path of a PSF-engineered incoherent imager, with an as-built
// error profile standing in for real hardware. The simulated SLM and camera backends and the calibration
// and hardware-in-the-loop code drive it.
//
//   input intensity (rows × cols, ≥ 0, 1 = full brightness) on the input device
//     → object on the camera grid: each input pixel covers m × m physical camera pixels
//       (m = input.camera_px_per_input_px), centred on the sensor; a unit input pixel sends
//       input.photons_per_ms photons per ms in total, spread evenly over its m² camera pixels
//     → incoherent imaging: image = object ⊛ PSF (IncoherentImager, "same" size, PSF centre = origin)
//     → misalignment warp (shift/rotation/scale about the frame centre, bilinear; as_built.hpp)
//     → brightness gain(t)
//     → camera model (camera_model.hpp) → counts, (rows/binning) × (cols/binning)
//
// PSF sampling: one PSF sample is one physical camera pixel; the relay is assumed to be designed so that
// λ f / (psf_pad · N · Δx_element) equals the camera pixel pitch. The element grid has N = slm rows·s
// samples (s = SLM oversample). The pupil is a circle of pupil_diameter_px element samples (0 = the
// largest circle that fits). The profile's misalignment shift is in physical camera pixels (the warp runs
// before binning).
//
// Elements:
//   slm         the phase is quantised to SLM levels (slm_model.hpp); as built, the realised modulation
//               (fringing, fill factor) times the profile's aberration phase; design PSF = PSF of the LUT
//               phase of the levels, unaberrated, on the ideal pupil.
//   fabricated  a fixed mask; as built, AsBuilt::fabricate (height error, quantisation, random phase
//               error) plus aberrations; design PSF = PSF of the design phase.
//   psf         set_psf() gives the PSF directly (tests, measured PSFs); the profile's aberrations and
//               fabrication errors do not apply (no pupil), warp, gain and sensor noise still do.
//
// Imaging:
//   incoherent  (default) the above: image = object intensity ⊛ PSF.
//   coherent    a 4f correlator: a laser lights the input device, which modulates amplitude; the element
//               is the SLM in the common Fourier plane. An input value v is the field amplitude
//               v·√(photons_per_ms/m²) of its camera pixels (object() then holds that amplitude), and the
//               camera records |U ⊛ h|², h the amplitude spread function (PupilPsf::asf: |h|² = PSF,
//               Σ|h|² = 1) of the Fourier-plane pupil and phase (as built: LUT, fringing, fill factor,
//               aberrations as above). An isolated input pixel of value v so still sends v²·photons_per_ms
//               per ms; neighbouring pixels interfere. Element kind psf is refused (a PSF has no phase).
//
// Caching: the PSF and its transform are recomputed only when the element or profile changes; the ideal
// image only when the input or element changes. A capture of a 28 × 28 input costs 1–2 ms (hilo-bench-sim).
// Not thread-safe: one bench per thread (captures mutate caches).
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "hilo/sim/as_built.hpp"
#include "hilo/sim/camera_model.hpp"
#include "hilo/sim/field.hpp"
#include "hilo/sim/slm_model.hpp"

namespace hilo::sim {

class IncoherentImager;

struct InputOptions {
  int rows = 28;
  int cols = 28;
  int camera_px_per_input_px = 1;   // integer magnification m, [1, 64]
  double photons_per_ms = 1000.0;   // photons per ms from one input pixel at intensity 1

  [[nodiscard]] std::string validate(const std::string& path = "input") const;  // "" when valid, else the broken rule
};

enum class ElementKind { slm, fabricated, psf };
enum class Imaging { incoherent, coherent };

struct ElementOptions {
  ElementKind kind = ElementKind::slm;
  SlmOptions slm;                  // the phase SLM; for kind fabricated only rows/cols/oversample matter
  double pupil_diameter_px = 0.0;  // element samples; 0 = min(rows, cols)·oversample
  int psf_pad = 2;                 // PSF grid = psf_pad × element grid, [1, 8]

  [[nodiscard]] std::string validate(const std::string& path = "element") const;  // "" when valid, else the broken rule
};

struct BenchOptions {
  double wavelength_nm = 633.0;  // documentation of the modelled source; the PSF scale is fixed (above)
  Imaging imaging = Imaging::incoherent;
  InputOptions input;
  ElementOptions element;
  CameraOptions camera;          // its `noise` is replaced by profile.sensor in the bench
  AsBuiltProfile profile;

  [[nodiscard]] std::string validate(const std::string& path = "simulator") const;  // "" when valid, else the broken rule
};

class SimulatedBench {
 public:
  explicit SimulatedBench(BenchOptions options);  // validates; throws ConfigError
  ~SimulatedBench();
  SimulatedBench(SimulatedBench&&) noexcept;
  SimulatedBench& operator=(SimulatedBench&&) noexcept;

  const BenchOptions& options() const { return opt_; }

  // Input intensity, input.rows × input.cols, finite and ≥ 0 (else std::invalid_argument).
  void set_input(const RArray& intensity);
  // Element phase (rad), slm rows × cols. kind slm: quantised to levels; kind fabricated: fabricated.
  // Throws std::invalid_argument for kind psf or a wrong shape.
  void set_element_phase(const RArray& phase_rad);
  // kind slm only: show levels directly.
  void set_element_levels(const Levels& levels);
  // kind psf only: a kernel-intensity PSF (≥ 0, any size, centre sample = origin), used as given.
  void set_psf(const RArray& psf);
  // Swap the as-built profile (e.g. ideal vs moderate) keeping input and element. The camera is rebuilt
  // with the profile's sensor noise and the profile's seed as its fixed-pattern seed.
  void set_profile(const AsBuiltProfile& profile);
  // Change the camera's exposure (ms, > 0) and conversion gain (e-/count, > 0) as a camera's exposure
  // and gain features would, keeping everything else (hot pixels, caches). Throws ConfigError when the
  // resulting camera options do not validate.
  void set_camera_settings(double exposure_ms, double gain_e_per_count);

  // One camera frame at time t_s ≥ 0 (drift), noise from rng. Throws std::logic_error if no input or no
  // element has been set.
  RArray capture(double t_s, std::mt19937_64& rng);

  // ---- ideal model (what the training model assumes) ----
  const RArray& design_psf();   // unit sum
  RArray ideal_image();         // object ⊛ design PSF, photons / camera px / ms, no warp/gain/noise
  // ---- ground truth of the as-built bench, for calibration tests ----
  const RArray& as_built_psf(); // unit sum (kind psf: the given PSF as is)
  RArray as_built_image(double t_s);  // irradiance reaching the camera at t_s (warped, gain applied)
  Pose true_pose(double t_s) const { return as_built_->pose_at(t_s); }
  double true_gain(double t_s) const { return as_built_->pose_at(t_s).gain; }
  // Mean dark level in counts of a non-hot output pixel: offset + dark electrons · binning² / gain.
  double dark_level_counts() const;
  const CameraModel& camera() const { return camera_; }
  const AsBuilt& as_built() const { return *as_built_; }
  // The object on the camera grid (photons / camera px / ms) and its top-left corner on the sensor.
  const RArray& object() const { return object_; }
  std::pair<int, int> object_origin() const;

 private:
  void invalidate_psfs();
  void ensure_psfs();
  RArray pupil_amplitude() const;
  Eigen::Index element_rows() const;
  Eigen::Index element_cols() const;
  RArray pre_warp_image();

  BenchOptions opt_;
  std::unique_ptr<AsBuilt> as_built_;  // holds a mutex, so not assignable in place
  CameraModel camera_;
  SlmModel slm_;
  RArray object_;
  bool have_input_ = false, have_element_ = false;
  std::optional<Levels> levels_;
  RArray design_phase_;  // fabricated: design phase; slm: LUT phase of levels (oversampled grid)
  RArray given_psf_;
  bool psfs_valid_ = false;
  RArray design_psf_, as_built_psf_;
  std::unique_ptr<IncoherentImager> design_imager_, as_built_imager_;
  // coherent imaging: the imaginary parts' imagers (the two above convolve with the real parts)
  std::unique_ptr<IncoherentImager> design_imager_im_, as_built_imager_im_;
  RArray coherent_image(const IncoherentImager& re, const IncoherentImager& im) const;
  std::optional<RArray> ideal_cache_, as_built_cache_;  // images before warp
};

}  // namespace hilo::sim
