#pragma once
// An 8-bit image as plain data: rows × cols × channels (1 grey, 3 RGB in R, G, B order), interleaved,
// row-major. What the figures library decodes from a file (read_image8_pixels) and what the learning
// core's image-folder reader takes, so neither needs the other's types (OpenCV stays out of distill/).
#include <cstdint>
#include <vector>

namespace hilo::io {

struct Image8 {
  int rows = 0, cols = 0, channels = 1;
  std::vector<std::uint8_t> pixels;
};

}  // namespace hilo::io
