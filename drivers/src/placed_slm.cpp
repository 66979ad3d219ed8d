#include "hilo/drivers/placed_slm.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace hilo::drivers {

int fitting_scale(int rows, int cols, int device_rows, int device_cols) {
  if (rows <= 0 || cols <= 0) return 0;
  return std::max(0, std::min(device_rows / rows, device_cols / cols));
}

cv::Mat place_pattern(const cv::Mat& levels, int device_rows, int device_cols, int bit_depth, int scale) {
  const int rows = levels.rows, cols = levels.cols;
  if (levels.type() != CV_8UC1 && levels.type() != CV_16UC1)
    throw std::invalid_argument("place_pattern: levels must be 8- or 16-bit single-channel");
  if (scale == 0) scale = fitting_scale(rows, cols, device_rows, device_cols);
  if (scale < 1 || rows * scale > device_rows || cols * scale > device_cols) {
    throw std::invalid_argument("input " + std::to_string(rows) + "x" + std::to_string(cols) + " at scale " +
                                std::to_string(scale) + " does not fit the " + std::to_string(device_rows) + "x" +
                                std::to_string(device_cols) + " SLM");
  }
  cv::Mat src = levels;
  if (levels.type() == CV_8UC1 && bit_depth > 8) {
    const double gain = (std::ldexp(1.0, bit_depth) - 1.0) / 255.0;
    src = cv::Mat(rows, cols, CV_16UC1);
    for (int r = 0; r < rows; ++r) {
      const auto* s = levels.ptr<std::uint8_t>(r);
      auto* d = src.ptr<std::uint16_t>(r);
      for (int c = 0; c < cols; ++c) d[c] = static_cast<std::uint16_t>(std::lround(s[c] * gain));
    }
  }
  cv::Mat out = cv::Mat::zeros(device_rows, device_cols, src.type());
  const int r0 = (device_rows - rows * scale) / 2, c0 = (device_cols - cols * scale) / 2;
  const std::size_t px = src.elemSize();
  for (int r = 0; r < rows * scale; ++r) {
    const std::uint8_t* s = src.ptr(r / scale);
    std::uint8_t* d = out.ptr(r0 + r) + static_cast<std::size_t>(c0) * px;
    for (int c = 0; c < cols * scale; ++c) std::memcpy(d + c * px, s + (c / scale) * px, px);
  }
  return out;
}

PlacedSlm::PlacedSlm(Slm& device, int rows, int cols)
    : device_(device), rows_(rows), cols_(cols), scale_(fitting_scale(rows, cols, device.height_px(), device.width_px())) {
  if (scale_ < 1)
    throw std::invalid_argument("input " + std::to_string(rows) + "x" + std::to_string(cols) + " does not fit the " +
                                std::to_string(device.height_px()) + "x" + std::to_string(device.width_px()) +
                                " input device '" + device.name() + "'");
}

DeviceStatus PlacedSlm::show(const cv::Mat& levels) {
  if (levels.rows != rows_ || levels.cols != cols_ || (levels.type() != CV_8UC1 && levels.type() != CV_16UC1))
    return DeviceError{DeviceErrc::invalid_argument, "input '" + name() + "': pattern is " + std::to_string(levels.rows) +
                                                         "x" + std::to_string(levels.cols) + " of type " +
                                                         std::to_string(levels.type()) + ", the placed input is " +
                                                         std::to_string(rows_) + "x" + std::to_string(cols_) +
                                                         " levels of 8 or 16 bits"};
  const bool convert = levels.type() == CV_8UC1 && device_.bit_depth() > 8;
  if (scale_ == 1 && rows_ == device_.height_px() && cols_ == device_.width_px() && !convert) return device_.show(levels);
  return device_.show(place_pattern(levels, device_.height_px(), device_.width_px(), device_.bit_depth(), scale_));
}

}  // namespace hilo::drivers
