#pragma once
// The element re-optimised on the bench (SLM elements; docs/calibration.md, "Element re-optimised").
//
// After the tile calibration of the deployed element φ, the pupil aberration a of the bench is fitted
// to the PSF the tile probe measured (pupil_fit.hpp); phase retrieval then runs again for the trained
// student's kernels through that aberration, so that PSF(φ' + a) matches the target layout
// (deploy.hpp, retrieve_phase with an aberration). φ' is what the element SLM shows from then on; the
// design model with the fitted aberration set (DesignModel::set_pupil_aberration) is the model of the
// bench holding φ': its PSF gives the new realised kernels, its features the backend re-fit, and it is
// the predictor of the new element's calibration.
//
// Why SLM elements only: a fixed mask cannot be rewritten on the bench (re-fabrication is a new element
// and a new calibration), so the pipeline skips it there and says so.
//
// measured_kernel_fidelity() states how close a measured probe PSF is to the trained kernels: the
// probe image of the target PSF (trained kernels at the layout's offsets, imaged with the same spot)
// against the registered probe frame, both cut to the PSF grid about the spot centre, compared tile by
// tile (compare_psfs: Pearson correlation per k × k tile, energy share in the windows).
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "hilo/calibration/hil.hpp"
#include "hilo/calibration/physics_aware.hpp"
#include "hilo/calibration/pupil_fit.hpp"

namespace hilo::calibration {

struct ElementReoptOptions {
  bool enabled = true;    // the pipeline runs it on SLM elements; fixed masks are skipped
  PupilFitOptions fit;
  // Also measure the validation split and the largest subset through the new element and run the
  // re-fits there (task / NTKD, and the twin modes on its own measured kernels with bench.kernels), so that
  // the pipeline's guard can choose the new element (alone or re-fitted) against the deployed element's
  // modes on measured evidence (docs/pipeline.md). Costs the validation split, the largest subset and the
  // kernel probes in bench frames through the new element.
  bool compensate = true;
  // Then, with compensate, physics-aware fine-tuning of φ' and its backend (physics_aware.hpp) on the
  // smallest fraction's measured images: bench frames epochs × images plus each step's re-adoption of
  // the calibration; off by default (docs/pipeline.md, "Physics-aware fine-tuning").
  PhysicsAwareOptions physics_aware;
  // Also, with compensate, φ' and its backend trained through the design model with the fitted
  // aberration on the whole training split (twin_train in physics_aware.hpp): no bench frames for the
  // training, then the validation split and the test set measured through the trained phase.
  TwinTrainOptions twin_train;

  [[nodiscard]] std::string validate() const;  // empty when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ElementReoptOptions, enabled, fit, compensate, physics_aware, twin_train)

struct ReoptimisedElement {
  PupilFit fit;
  Deployment deployment;  // φ' and the kernels of PSF(φ' + a) (design model with the fitted aberration)
};

// `design`: a design model of the bench without an aberration; on return it has the fitted aberration
// and holds φ'. `deployed` is the deployment the bench held when `tiles` were measured; `trained` the
// student whose kernels are the target. Throws std::invalid_argument for an element that is not an SLM
// or invalid options.
ReoptimisedElement reoptimise_element(const distill::OpticalStudent& trained, DesignModel& design,
                                      const Deployment& deployed, const TileLocations& tiles,
                                      const ElementReoptOptions& options, const PhaseRetrievalOptions& retrieval,
                                      std::mt19937_64& rng);

// The psf_rows × psf_cols window of a probe image about the spot centre of `tiles` (layout's object
// position + input centre), zero where it leaves the image: a probe image on the PSF's grid.
RArray probe_window(const RArray& image, const TileLocations& tiles, const TileLayout& layout, Eigen::Index psf_rows,
                    Eigen::Index psf_cols);

// compare_psfs(probe window of the target's probe image, probe window of tiles.registered): see above.
// `kernel_tiles` in PSF orientation (psf_tiles()).
PsfComparison measured_kernel_fidelity(const TileLocations& tiles, const std::vector<RArray>& kernel_tiles,
                                       const TileLayout& layout, Eigen::Index psf_rows, Eigen::Index psf_cols);

}  // namespace hilo::calibration
