#include "hilo/drivers/placed_slm.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace hilo::drivers {

PlacedSlm::PlacedSlm(Slm& device, int rows, int cols)
    : device_(device),
      rows_(rows),
      cols_(cols),
      scale_(rows > 0 && cols > 0 ? std::min(device.height_px() / rows, device.width_px() / cols) : 0) {
  if (scale_ < 1)
    throw std::invalid_argument("input " + std::to_string(rows) + "x" + std::to_string(cols) + " does not fit the " +
                                std::to_string(device.height_px()) + "x" + std::to_string(device.width_px()) +
                                " input device '" + device.name() + "'");
}

DeviceStatus PlacedSlm::show(const cv::Mat& levels) {
  if (levels.rows != rows_ || levels.cols != cols_)
    return DeviceError{DeviceErrc::invalid_argument, "input '" + name() + "': pattern is " + std::to_string(levels.rows) +
                                                         "x" + std::to_string(levels.cols) + ", the placed input is " +
                                                         std::to_string(rows_) + "x" + std::to_string(cols_)};
  if (scale_ == 1 && rows_ == device_.height_px() && cols_ == device_.width_px()) return device_.show(levels);
  cv::Mat full = cv::Mat::zeros(device_.height_px(), device_.width_px(), levels.type());
  const int r0 = (full.rows - rows_ * scale_) / 2, c0 = (full.cols - cols_ * scale_) / 2;
  const std::size_t px = levels.elemSize();
  for (int r = 0; r < rows_ * scale_; ++r) {
    const std::uint8_t* src = levels.ptr(r / scale_);
    std::uint8_t* dst = full.ptr(r0 + r) + static_cast<std::size_t>(c0) * px;
    for (int c = 0; c < cols_ * scale_; ++c) std::memcpy(dst + c * px, src + (c / scale_) * px, px);
  }
  return device_.show(full);
}

}  // namespace hilo::drivers
