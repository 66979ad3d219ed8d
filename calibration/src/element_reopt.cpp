#include "hilo/calibration/element_reopt.hpp"

#include <stdexcept>

#include "hilo/sim/imaging.hpp"

namespace hilo::calibration {

std::string ElementReoptOptions::validate() const {
  if (auto e = fit.validate(); !e.empty()) return "reoptimise_element." + e;
  if (auto e = physics_aware.validate(); !e.empty()) return "reoptimise_element." + e;
  if (auto e = twin_train.validate(); !e.empty()) return "reoptimise_element." + e;
  return {};
}

ReoptimisedElement reoptimise_element(const distill::OpticalStudent& trained, DesignModel& design,
                                      const Deployment& deployed, const TileLocations& tiles,
                                      const ElementReoptOptions& options, const PhaseRetrievalOptions& retrieval,
                                      std::mt19937_64& rng) {
  if (auto e = options.validate(); !e.empty()) throw std::invalid_argument(e);
  if (design.options().element.kind != sim::ElementKind::slm)
    throw std::invalid_argument("reoptimise_element: the element is not an SLM, so it cannot be rewritten on the bench");
  ReoptimisedElement r;
  const PupilFitProblem problem = pupil_fit_problem(design.options(), deployed.design.phase, tiles, deployed.layout);
  r.fit = fit_pupil_aberration(problem, options.fit);
  const auto& a = problem.element_phase;
  design.set_pupil_aberration(r.fit.aberration(a.rows(), a.cols(), problem.pupil_radius_px));
  r.deployment = design_deployment(trained, design, retrieval, rng);
  return r;
}

RArray probe_window(const RArray& image, const TileLocations& tiles, const TileLayout& layout, Eigen::Index psf_rows,
                    Eigen::Index psf_cols) {
  const Eigen::Index cr = layout.object_row + tiles.spot.rows() / 2, cc = layout.object_col + tiles.spot.cols() / 2;
  RArray w = RArray::Zero(psf_rows, psf_cols);
  for (Eigen::Index r = 0; r < psf_rows; ++r)
    for (Eigen::Index c = 0; c < psf_cols; ++c) {
      const Eigen::Index ir = cr - psf_rows / 2 + r, ic = cc - psf_cols / 2 + c;
      if (ir >= 0 && ic >= 0 && ir < image.rows() && ic < image.cols()) w(r, c) = image(ir, ic);
    }
  return w;
}

PsfComparison measured_kernel_fidelity(const TileLocations& tiles, const std::vector<RArray>& kernel_tiles,
                                       const TileLayout& layout, Eigen::Index psf_rows, Eigen::Index psf_cols) {
  const RArray target = compose_psf(kernel_tiles, layout, psf_rows, psf_cols);
  const RArray target_probe = sim::incoherent_image(probe_object(tiles, layout), target);
  return compare_psfs(probe_window(target_probe, tiles, layout, psf_rows, psf_cols),
                      probe_window(tiles.registered, tiles, layout, psf_rows, psf_cols), layout);
}

}  // namespace hilo::calibration
