#pragma once
// Measured-feature extraction: a captured frame → the K feature maps in the student's feature
// coordinates, ready for the backend re-fit.
//
//   corrected = apply_dark_flat(frame, dark, flat) / gain          (predictor units: ideal-bench counts)
//   design    = warp_back(corrected, pose)                         (registration undone, bilinear)
//   map_j     = design[origin_j + shift_j : + map size]            (layout windows; shift_j optional)
// With correct_tile_shifts, each window is read at its tile's measured sub-pixel shift (bilinear), so
// the kernel displacements that fabrication and aberrations cause are removed as well; without it the
// maps keep them, as the physical kernels do (the default: the re-fitted backend learns the as-built
// kernels, displacement included).
// Accuracy (simulator, docs/calibration.md "Features"): ideal profile — equal to the ideal model's
// maps within ADC rounding; moderate — registration brings the maps several times closer to the
// ideal (and to the as-built truth) than raw crops.
#include <string>
#include <vector>

#include "hilo/calibration/dark_flat.hpp"
#include "hilo/calibration/tiles.hpp"
#include "hilo/sim/pose.hpp"

namespace hilo::calibration {

struct BenchCalibration {
  DarkFrame dark;
  FlatField flat;                          // empty: no flat correction
  sim::Pose pose;                          // registration (gain ignored; see `gain`)
  double gain = 1.0;                       // brightness, from measure_linearity (or registration)
  TileLayout layout;
  std::vector<TileLocation> tiles;         // optional per-tile shifts (locate_tiles)

  [[nodiscard]] std::string validate(Eigen::Index camera_rows, Eigen::Index camera_cols) const;
};

struct ExtractOptions {
  bool correct_registration = true;
  bool correct_gain = true;
  bool correct_tile_shifts = false;  // needs calibration.tiles
};

// Throws std::invalid_argument if the frame size or the calibration does not fit.
std::vector<RArray> extract_features(const RArray& frame, const BenchCalibration& calibration,
                                     const ExtractOptions& options = {});

}  // namespace hilo::calibration
