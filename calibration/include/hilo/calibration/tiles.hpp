#pragma once
// Where the K kernel tiles of the element land on the camera, and the crop windows of the K feature
// maps.
//
// Layout (design): the PSF holds kernel j (k × k) with its centre displaced by offset_j = (row, col)
// camera pixels from the PSF centre, so feature map j (the object ⊛ kernel j) is the object moved by
// offset_j: on the camera's design grid its top-left corner is object_origin + offset_j and its size is
// the object's. tile_layout() derives this from the student's sim::KernelTiling (unit magnification:
// one input pixel per camera pixel, the relay sim::SimulatedBench assumes for its PSF sampling).
//
// Location (measured): a point-like probe (a small square spot at the input centre) is shown with the
// deployed element; the frame is dark-corrected and resampled onto the design grid through the
// registration pose; around each tile the measured window is fitted to the predicted one by a
// translation (and gain), the same least-squares fit as registration (fit_pose with rotation and scale
// fixed). shift_j is the residual displacement of tile j beyond the global pose — the kernel's own
// displacement, from fabrication and aberrations — and correlation_j the normalised correlation of the
// measured and predicted tile after the shift (kernel fidelity). Accuracy against the as-built PSF
// (simulator): docs/calibration.md, "Kernel tiles".
#include <string>
#include <vector>

#include <Eigen/Core>

#include "hilo/calibration/dark_flat.hpp"
#include "hilo/calibration/probe.hpp"
#include "hilo/sim/pose.hpp"
#include "hilo/sim/imaging.hpp"

namespace hilo::calibration {

struct TileLayout {
  int kernel_size = 7;
  Eigen::Index map_rows = 28, map_cols = 28;        // feature-map (object) size, camera px
  Eigen::Index object_row = 0, object_col = 0;      // top-left of the object on the camera design grid
  std::vector<Eigen::Vector2i> offset;              // (row, col) of kernel j's centre from the PSF centre

  int count() const { return int(offset.size()); }
  Eigen::Vector2i map_origin(int j) const { return {int(object_row) + offset[j].x(), int(object_col) + offset[j].y()}; }
  // Empty when every feature map lies inside a camera of rows × cols, else the violated rule.
  [[nodiscard]] std::string validate(Eigen::Index camera_rows, Eigen::Index camera_cols) const;
};

// The layout of a KernelTiling on a camera whose object (tiling.object_rows × object_cols) sits at
// (object_row, object_col).
TileLayout tile_layout(const sim::KernelTiling& tiling, Eigen::Index object_row, Eigen::Index object_col);

// K kernels placed into a psf_rows × psf_cols PSF (centre (rows/2, cols/2)); and the inverse cut.
RArray compose_psf(const std::vector<RArray>& kernels, const TileLayout& layout, Eigen::Index psf_rows,
                   Eigen::Index psf_cols);
std::vector<RArray> cut_kernels(const RArray& psf, const TileLayout& layout);

struct TileLocateOptions {
  int spot_px = 3;       // side of the square probe spot, input px, odd ≥ 1
  double level = 1.0;    // (0, 1]
  int frames = 32;       // ≥ 1
  int margin_px = 4;     // window half-size beyond the kernel and spot, ≥ 1

  [[nodiscard]] std::string validate() const;
};

struct TileLocation {
  Eigen::Vector2d shift{0, 0};  // (x, y) camera px on the design grid, measured − designed
  double correlation = 0.0;     // measured vs predicted tile after the shift
  double energy = 0.0;          // measured tile energy / predicted tile energy (brightness × efficiency)
};

// Pure core: compare the tiles of a registered (design-grid) image with the predicted image of the
// same probe whose centre lies at spot_centre (row, col) on the design grid.
std::vector<TileLocation> compare_tiles(const RArray& registered, const RArray& predicted, const TileLayout& layout,
                                        const Eigen::Vector2i& spot_centre, int spot_px, int margin_px);

struct TileLocations {
  std::vector<TileLocation> tiles;
  RArray spot;        // the input probe
  RArray registered;  // dark-corrected frame on the design grid
  RArray predicted;
};

drivers::DeviceResult<TileLocations> locate_tiles(ProbeRig& rig, const Predictor& predict, const DarkFrame& dark,
                                                  const sim::Pose& pose, const TileLayout& layout,
                                                  const TileLocateOptions& options = {});

}  // namespace hilo::calibration
