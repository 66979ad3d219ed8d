#include "hilo/calibration/features.hpp"

#include <cmath>
#include <stdexcept>

#include "hilo/calibration/registration.hpp"

namespace hilo::calibration {

std::string BenchCalibration::validate(Eigen::Index rows, Eigen::Index cols) const {
  if (dark.dark.rows() != rows || dark.dark.cols() != cols)
    return "calibration.dark must match the " + std::to_string(rows) + " x " + std::to_string(cols) + " frame";
  if (!(gain > 0)) return "calibration.gain must be > 0, got " + std::to_string(gain);
  if (!tiles.empty() && int(tiles.size()) != layout.count())
    return "calibration.tiles must hold one location per kernel (" + std::to_string(layout.count()) + "), got " +
           std::to_string(tiles.size());
  return layout.validate(rows, cols);
}

std::vector<RArray> extract_features(const RArray& frame, const BenchCalibration& cal, const ExtractOptions& o) {
  if (const auto e = cal.validate(frame.rows(), frame.cols()); !e.empty()) throw std::invalid_argument(e);
  if (o.correct_tile_shifts && cal.tiles.empty())
    throw std::invalid_argument("extract_features: correct_tile_shifts needs calibration.tiles");
  RArray img = apply_dark_flat(frame, cal.dark, cal.flat);
  if (o.correct_gain) img /= cal.gain;
  if (o.correct_registration) img = warp_back(img, cal.pose);
  std::vector<RArray> maps;
  const auto& l = cal.layout;
  for (int j = 0; j < l.count(); ++j) {
    const auto org = l.map_origin(j);
    if (!o.correct_tile_shifts) {
      maps.emplace_back(img.block(org.x(), org.y(), l.map_rows, l.map_cols));
      continue;
    }
    const double dx = cal.tiles[j].shift.x(), dy = cal.tiles[j].shift.y();
    RArray m(l.map_rows, l.map_cols);
    for (Eigen::Index r = 0; r < l.map_rows; ++r)
      for (Eigen::Index c = 0; c < l.map_cols; ++c) {
        const double y = double(org.x() + r) + dy, x = double(org.y() + c) + dx;
        const double fx = std::floor(x), fy = std::floor(y);
        const auto c0 = Eigen::Index(fx), r0 = Eigen::Index(fy);
        auto at = [&](Eigen::Index rr, Eigen::Index cc) {
          return (rr >= 0 && rr < img.rows() && cc >= 0 && cc < img.cols()) ? img(rr, cc) : 0.0;
        };
        const double ax = x - fx, ay = y - fy;
        m(r, c) = (1 - ay) * ((1 - ax) * at(r0, c0) + ax * at(r0, c0 + 1)) + ay * ((1 - ax) * at(r0 + 1, c0) + ax * at(r0 + 1, c0 + 1));
      }
    maps.push_back(std::move(m));
  }
  return maps;
}

}  // namespace hilo::calibration
