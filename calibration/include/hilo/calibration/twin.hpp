#pragma once
// The digital twin of the deployed bench (DESIGN §6): what the calibrated bench would measure for any
// input image, without showing it.
//
//   maps_j(x)  = design_j(x) + Δ_j(x)
//   design_j   = the design model's image of x (DesignModel::predict, the deployed element) cut at window
//                j, / counts_per_unit: the design, with the structured light between the tiles that a
//                phase-only element spreads over every window;
//   Δ_j        = what the bench changed, measured: kernel_maps(measured kernels, x, bench_change) — the
//                measured support kernel, stray light per unit Σx and offset minus the same least squares
//                on the design model's maps (measured_kernels.hpp). The registration, flat, dark and gain
//                the kernels were measured through are part of it;
//   features   = OpticalStudent::features_from_maps(maps) (signing, pooling): the layout of
//                measure_features' rows.
// Light the bench moves beyond the kernel support with structure (other than a constant per window) is
// not in the twin; its residual on measured images says how much that is.
// Noise (sample_features): per map pixel, Gaussian with the camera's variance in counts found by the
// photon transfer of the kernel probes (MeasuredKernels::read_var, shot_slope):
//   σ² = max(read_var, 1/12) + shot_slope · S,  S = gain · c · max(map, 0)
// (1/12: the ADC's rounding, which a noiseless camera's frame pairs do not show), divided by the frames
// averaged per image and by (gain · c)² to return to student units; gain = the calibrated brightness,
// c = Deployment::counts_per_unit.
//
// Twin-calibrated compensation: the backend re-fit (compensation.hpp) on twin features of the WHOLE
// training split together with the measured fraction (twin_training_set): the measured samples keep
// their measured rows, repeated measured_weight times; every other sample gets its twin row, plus (with
// residual_correction) the mean over the measured samples of (measured − twin) per feature, which moves
// the twin's features by what it misses on average.
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/calibration/experiment.hpp"
#include "hilo/calibration/measured_kernels.hpp"

namespace hilo::calibration {

struct TwinNoise {
  double read_var = 1.0 / 12;  // counts² per frame
  double shot_slope = 0;       // counts² per count of signal
  double gain = 1;             // calibrated brightness
  int frames = 1;              // frames averaged per measured image
};
// The noise model from the kernels' photon transfer, the calibrated gain and `frames`.
TwinNoise twin_noise(const MeasuredKernels& kernels, const BenchCalibration& calibration, int frames);

class Twin {
 public:
  // `design` (holding the deployed element), `deployment` and `student` (the deployed one: its signing
  // and pooling) must outlive the twin. Throws std::invalid_argument when the kernels have no design fit
  // or do not match the student's kernel count.
  Twin(MeasuredKernels kernels, DesignModel& design, const Deployment& deployment, TwinNoise noise,
       const distill::OpticalStudent& student);
  const MeasuredKernels& kernels() const { return kernels_; }
  const TwinNoise& noise() const { return noise_; }

  std::vector<RArray> maps(const RArray& input) const;          // expected maps, student units
  distill::MatD features(const distill::Mat<float>& x) const;  // N × feature_dim, noise-free
  distill::MatD sample_features(const distill::Mat<float>& x, std::mt19937_64& rng) const;  // with the noise model
  // features(x) from the design model's features of the same rows (design_features), which it would
  // otherwise compute again: signing and pooling are linear, so the twin adds the measured change's.
  distill::MatD features(const distill::Mat<float>& x, const distill::MatD& design_rows) const;
  // sample_features(x, *rng), or features(x) when rng is null, from the design model's maps of the same
  // rows (design_maps(x) for the element the twin's design model holds), which it would otherwise predict
  // again: the same numbers bit for bit and the same draws from rng. Throws std::invalid_argument when
  // design_maps is not N × K·H·W.
  distill::MatD features_from_design_maps(const distill::Mat<float>& x, const distill::MatD& design_maps,
                                          std::mt19937_64* rng) const;

 private:
  MeasuredKernels kernels_;
  DesignModel& design_;
  const Deployment& deployment_;
  TwinNoise noise_;
  const distill::OpticalStudent& student_;
  distill::MatD row_features(const distill::Mat<float>& x, std::mt19937_64* rng, const distill::MatD* design_maps) const;
};

// ‖model − measured‖_F / ‖measured‖_F (relative RMS over all rows and features). Throws
// std::invalid_argument for different shapes or an all-zero `measured`.
double relative_rms(const distill::MatD& model, const distill::MatD& measured);

struct TwinMix {
  int measured_weight = 10;         // [1, 1000]
  bool residual_correction = true;
  bool noise = true;                // twin rows drawn with the noise model (else expected features)
  // twin NTKD: the NTK groups are groups of training images, drawn once per job with the teacher's Θ_T
  // of each, and every twin NTKD re-fit (each fraction, each profile) uses them at its rows of those
  // images (a measured image: its first measured row). false: each re-fit draws groups over its own
  // rows (the measured ones repeated) and computes Θ_T for them again (NtkGroups, compensation.hpp).
  bool shared_ntk_groups = true;

  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule (compensation.twin.<key>)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TwinMix, measured_weight, residual_correction, noise, shared_ntk_groups)

// The twin modes' training set (see above). twin_train: twin features of every row of `train`;
// measured: rows measured for train samples `measured_rows` (same order). Throws std::invalid_argument for
// mismatched sizes or an index outside `train`. sample_rows (optional): for each sample of `train`, its
// row in the set (a measured sample: its first copy).
MeasuredSubset twin_training_set(const distill::MatD& twin_train, const distill::Dataset& train,
                                 const distill::MatD& measured, const std::vector<std::size_t>& measured_rows,
                                 const TwinMix& mix, std::vector<int>* sample_rows = nullptr);

// groups (over the rows of `train`, e.g. teacher_ntk_groups of its images) mapped to the rows of a set
// by sample_rows (twin_training_set); Θ_T is kept, since each row holds the same clean image.
NtkGroups map_ntk_groups(const NtkGroups& groups, const std::vector<int>& sample_rows);

}  // namespace hilo::calibration
