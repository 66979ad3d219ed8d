#pragma once
// Physics-aware fine-tuning of an SLM element and the backend (Wright et al., Nature 2022): the forward
// pass on the bench, the backward pass through the design model.
//
// Each step shows the element phase φ, measures the features a of a batch of training images x on the
// bench, and takes the loss L = CE(backend(a), y) there. Its gradient goes back through the model:
//   dL/da   the backend's (OpticalStudent::feature_grad), at the MEASURED a;
//   dL/dκ   through the student's optical layer at x (kernel_grad_at: a is linear in κ, so the model's
//           Jacobian holds whatever produced a);
//   dL/dφ   through the element model κ(φ) = s · rot180(tile_j(P(φ))), P(φ) = psf_from_phase(φ + α, A,
//           pad) (unit sum; α the fitted pupil aberration, A the pupil amplitude, s the deployment's
//           kernel scale — the phase retrieval's model, deploy.hpp; the SLM's LUT quantisation is
//           passed straight through).
// φ and the backend then take an Adam step each. The bench's errors the model does not know (the
// residual aberration, fabrication error, misalignment left after calibration) are in the forward pass,
// so the step descends the loss of the real bench, not of the model.
#include <cstdint>
#include <functional>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "hilo/calibration/tiles.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/drivers/device.hpp"
#include "hilo/io/progress.hpp"

namespace hilo::calibration {

struct PhysicsAwareOptions {
  bool enabled = false;
  int epochs = 4;             // passes over the measured images, [1, 100]; each pass shows each image once
  int batch = 35;             // images per step (the last of a pass may be smaller), [1, 4096]
  double phase_lr = 0.03;     // Adam step on φ, rad, > 0
  double backend_lr = 0.001;  // Adam step on the backend, >= 0 (0: the phase alone)

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PhysicsAwareOptions, enabled, epochs, batch, phase_lr, backend_lr)

// κ(φ) and its adjoint, as above. Throws std::invalid_argument for shapes that do not match.
struct ElementModel {
  RArray pupil_amplitude;  // element rows × cols
  RArray aberration;       // the same shape, or empty (none)
  int pad = 2;
  TileLayout layout;
  double kernel_scale = 1.0;

  distill::MatD kernels(const RArray& phase) const;                               // K × k²
  RArray phase_grad(const RArray& phase, const distill::MatD& dkernels) const;    // dL/dφ for dL/dκ
};

// The bench's forward pass: the features (one row per image of x, the student's D) measured with
// `phase` shown on the element. Device faults come back as values.
using BenchForward = std::function<drivers::DeviceResult<distill::MatD>(const RArray& phase, const distill::Mat<float>& x)>;

struct PhysicsAwareResult {
  RArray phase;                    // φ after the last step
  distill::OpticalStudent student;  // kernels κ(φ), the trained backend
  nlohmann::json history = nlohmann::json::array();  // per step: {"step", "loss", "accuracy"} on the measured batch
  std::int64_t images_measured = 0;  // bench images the steps took (epochs × images)
  bool stopped = false;              // work.stop ended it early (phase and student as far as it got)
};

// Runs options.epochs passes over (x, y) (the measured training images and their labels), batches in
// an order drawn from rng per pass. `start`: the student deployed with phase0 (its backend and
// standardisation are where the steps start). Device errors throw std::runtime_error with the device's
// message; invalid options or shapes throw std::invalid_argument.
PhysicsAwareResult physics_aware(const distill::OpticalStudent& start, const RArray& phase0, const ElementModel& model,
                                 const distill::Mat<float>& x, const std::vector<int>& y,
                                 const PhysicsAwareOptions& options, const BenchForward& bench, std::mt19937_64& rng,
                                 const io::WorkControl& work = {});

// The element trained through its model on a training split, with no bench frames: the steps of
// physics_aware() with the model's own features a = features(x; κ(φ)) in the forward pass, so φ and the
// backend descend the loss of the model that holds the fitted aberration. Phase retrieval matches the
// trained kernels only approximately through an aberration (its realised kernels are not the trained
// ones); these steps start from its φ' and train the realisable kernels end to end against the labels,
// on every training image the model can compute, where physics_aware has only the measured few.
struct TwinTrainOptions {
  bool enabled = false;
  int epochs = 4;             // passes over the training split, [1, 100]
  int batch = 64;             // images per step, [1, 4096]
  double phase_lr = 0.01;     // Adam step on φ, rad, > 0
  double backend_lr = 0.001;  // Adam step on the backend, >= 0 (0: the phase alone)

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TwinTrainOptions, enabled, epochs, batch, phase_lr, backend_lr)

// As physics_aware() (the same errors), with images_measured = 0.
PhysicsAwareResult twin_train(const distill::OpticalStudent& start, const RArray& phase0, const ElementModel& model,
                              const distill::Mat<float>& x, const std::vector<int>& y, const TwinTrainOptions& options,
                              std::mt19937_64& rng, const io::WorkControl& work = {});

}  // namespace hilo::calibration
