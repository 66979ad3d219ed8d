#include "hilo/calibration/tiles.hpp"

#include <cmath>
#include <stdexcept>

#include "hilo/calibration/registration.hpp"
#include "hilo/io/options_json.hpp"

namespace hilo::calibration {

std::string TileLayout::validate(Eigen::Index rows, Eigen::Index cols) const {
  if (kernel_size < 1 || kernel_size % 2 == 0)
    return "tiles.kernel_size must be odd and >= 1, got " + std::to_string(kernel_size);
  if (offset.empty()) return "tiles.offset must hold at least one kernel";
  for (int j = 0; j < count(); ++j) {
    const auto o = map_origin(j);
    if (o.x() < 0 || o.y() < 0 || o.x() + map_rows > rows || o.y() + map_cols > cols)
      return "tiles: feature map " + std::to_string(j) + " at (" + std::to_string(o.x()) + ", " +
             std::to_string(o.y()) + ") must lie inside the " + std::to_string(rows) + " x " +
             std::to_string(cols) + " camera";
  }
  return {};
}

TileLayout tile_layout(const sim::KernelTiling& t, Eigen::Index object_row, Eigen::Index object_col) {
  io::require_valid(t.validate());
  TileLayout l;
  l.kernel_size = t.kernel_size;
  l.map_rows = t.object_rows;
  l.map_cols = t.object_cols;
  l.object_row = object_row;
  l.object_col = object_col;
  const auto [orr, oc] = t.object_origin();
  for (int j = 0; j < t.count; ++j) {
    const auto [mr, mc] = t.map_origin(j);
    l.offset.emplace_back(int(mr - orr), int(mc - oc));
  }
  return l;
}

RArray compose_psf(const std::vector<RArray>& kernels, const TileLayout& l, Eigen::Index rows, Eigen::Index cols) {
  if (int(kernels.size()) != l.count())
    throw std::invalid_argument("compose_psf: " + std::to_string(kernels.size()) + " kernels for a layout of " +
                                std::to_string(l.count()));
  RArray psf = RArray::Zero(rows, cols);
  const int k = l.kernel_size;
  for (int j = 0; j < l.count(); ++j) {
    if (kernels[j].rows() != k || kernels[j].cols() != k || (kernels[j] < 0).any())
      throw std::invalid_argument("compose_psf: kernel " + std::to_string(j) + " must be " + std::to_string(k) +
                                  " x " + std::to_string(k) + " and >= 0");
    const Eigen::Index r = rows / 2 + l.offset[j].x() - k / 2, c = cols / 2 + l.offset[j].y() - k / 2;
    if (r < 0 || c < 0 || r + k > rows || c + k > cols)
      throw std::invalid_argument("compose_psf: kernel " + std::to_string(j) + " falls outside the " +
                                  std::to_string(rows) + " x " + std::to_string(cols) + " PSF");
    psf.block(r, c, k, k) += kernels[j];
  }
  return psf;
}

std::vector<RArray> cut_kernels(const RArray& psf, const TileLayout& l) {
  std::vector<RArray> out;
  const int k = l.kernel_size;
  for (int j = 0; j < l.count(); ++j) {
    const Eigen::Index r = psf.rows() / 2 + l.offset[j].x() - k / 2, c = psf.cols() / 2 + l.offset[j].y() - k / 2;
    if (r < 0 || c < 0 || r + k > psf.rows() || c + k > psf.cols())
      throw std::invalid_argument("cut_kernels: kernel " + std::to_string(j) + " falls outside the PSF");
    out.emplace_back(psf.block(r, c, k, k));
  }
  return out;
}

std::string TileLocateOptions::validate() const {
  if (spot_px < 1 || spot_px % 2 == 0) return "tiles.spot_px must be odd and >= 1, got " + std::to_string(spot_px);
  if (!(level > 0 && level <= 1)) return "tiles.level must be in (0, 1], got " + std::to_string(level);
  if (frames < 1) return "tiles.frames must be >= 1, got " + std::to_string(frames);
  if (margin_px < 1) return "tiles.margin_px must be >= 1, got " + std::to_string(margin_px);
  return {};
}

std::vector<TileLocation> compare_tiles(const RArray& registered, const RArray& predicted, const TileLayout& l,
                                        const Eigen::Vector2i& spot_centre, int spot_px, int margin_px) {
  if (registered.rows() != predicted.rows() || registered.cols() != predicted.cols())
    throw std::invalid_argument("compare_tiles: registered and predicted images differ in size");
  const int half = l.kernel_size / 2 + spot_px / 2 + margin_px;
  const int side = 2 * half + 1;
  std::vector<TileLocation> out;
  PoseFitOptions fo;
  fo.fit_rotation = false;
  fo.fit_scale = false;
  fo.fit_blur = false;
  fo.coarse_phase_correlation = false;
  for (int j = 0; j < l.count(); ++j) {
    const Eigen::Index r0 = spot_centre.x() + l.offset[j].x() - half, c0 = spot_centre.y() + l.offset[j].y() - half;
    if (r0 < 0 || c0 < 0 || r0 + side > registered.rows() || c0 + side > registered.cols())
      throw std::invalid_argument("compare_tiles: the window of tile " + std::to_string(j) + " leaves the frame");
    // Zero-padded windows so that the fitted shift never pulls light in from a neighbouring tile.
    const Eigen::Index P = side + 2 * margin_px;
    RArray m = RArray::Zero(P, P), p = RArray::Zero(P, P);
    m.block(margin_px, margin_px, side, side) = registered.block(r0, c0, side, side);
    p.block(margin_px, margin_px, side, side) = predicted.block(r0, c0, side, side);
    TileLocation t;
    const double pe = p.sum();
    t.energy = pe > 0 ? m.sum() / pe : 0.0;
    if (p.maxCoeff() <= 0) {
      out.push_back(t);
      continue;
    }
    const PoseFit f = fit_pose({m}, {p}, fo);
    t.shift = {f.pose.shift_x_px, f.pose.shift_y_px};
    t.correlation = f.correlation;
    out.push_back(t);
  }
  return out;
}

drivers::DeviceResult<TileLocations> locate_tiles(ProbeRig& rig, const Predictor& predict, const DarkFrame& dark,
                                                  const sim::Pose& pose, const TileLayout& layout,
                                                  const TileLocateOptions& options) {
  if (const auto e = options.validate(); !e.empty()) throw std::invalid_argument(e);
  TileLocations out;
  const int R = rig.input_rows(), C = rig.input_cols(), s = options.spot_px;
  out.spot = RArray::Zero(R, C);
  out.spot.block(R / 2 - s / 2, C / 2 - s / 2, s, s).setConstant(options.level);
  auto frame = rig.capture(out.spot, options.frames);
  if (!frame) return frame.error();
  out.registered = warp_back(apply_dark_flat(frame.value(), dark), pose);
  out.predicted = predict(out.spot);
  // The spot centre on the design grid: input centre mapped through the layout's object position.
  const Eigen::Vector2i centre(int(layout.object_row) + R / 2, int(layout.object_col) + C / 2);
  out.tiles = compare_tiles(out.registered, out.predicted, layout, centre, s, options.margin_px);
  return out;
}

}  // namespace hilo::calibration
