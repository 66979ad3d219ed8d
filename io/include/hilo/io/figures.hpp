#pragma once
// PNG figures for reports and run previews: line plots (learning curves), confusion-matrix heatmaps,
// arrays rendered through a colormap with a colourbar, and grids of sample images.
//
// Every render_* function is pure: it returns an 8-bit BGR cv::Mat (CV_8UC3) and touches no file.
// write_png() stores any such image atomically ("<path>.tmp", fsync, rename), so a crash leaves either
// no file or the complete PNG. Invalid input (empty series, x/y of different lengths, non-finite
// ranges, a matrix that is not square, images of unsupported type) throws FigureError naming the rule.
// Only dependency: OpenCV (core, imgproc, imgcodecs).
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "hilo/io/image8.hpp"

namespace hilo::io {

class FigureError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Colormap { viridis, gray, inferno };

// Maps t ∈ [0, 1] (clamped; NaN → 0) to a BGR colour. viridis, gray and inferno have luminance that
// increases monotonically with t.
cv::Vec3b colormap_bgr(Colormap cmap, double t);

struct Series {
  std::string label;      // shown in the legend; empty = not listed
  std::vector<double> x;  // same length as y; non-finite points are skipped
  std::vector<double> y;
};

struct LinePlotOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  int width_px = 800;
  int height_px = 500;
  bool log_y = false;  // logarithmic y axis; points with y <= 0 are skipped

  // Empty when valid, else the violated rule ("figure.width_px must be in [200, 8000], got 10").
  [[nodiscard]] std::string validate() const;
};

// Several series on shared axes, with ticks at "nice" values (1, 2, 5 × 10^k), axis labels, a legend
// (top right) and a title. Colours follow a fixed qualitative palette in series order.
cv::Mat render_line_plot(const std::vector<Series>& series, const LinePlotOptions& opt);

// counts: rows = true class, columns = predicted class, square, CV_32S or CV_64F, non-negative.
// Each cell is coloured by its count relative to the largest (viridis) and labelled with the count.
// class_names: empty, or one per class (axis tick labels).
cv::Mat render_confusion_matrix(const cv::Mat& counts, const std::vector<std::string>& class_names,
                                const std::string& title, int cell_px = 48);

struct ImageOptions {
  Colormap cmap = Colormap::viridis;
  bool colorbar = true;   // a vertical bar to the right with the value range labelled
  bool auto_range = true; // vmin/vmax from the data's finite min/max; else the fields below
  double vmin = 0.0;
  double vmax = 1.0;
  int scale = 1;          // integer nearest-neighbour magnification, in [1, 64]
  std::string title;

  [[nodiscard]] std::string validate() const;
};

// A single-channel array (CV_8U, CV_16U, CV_32S, CV_32F, CV_64F) through a colormap: pixel value v
// becomes colormap((v − vmin)/(vmax − vmin)); a constant image maps to the colormap's midpoint.
cv::Mat render_image(const cv::Mat& array, const ImageOptions& opt);

// Images (each as render_image would show it, each scaled to its own range) tiled in rows of `cols`,
// with an optional caption under each (labels empty or one per image).
cv::Mat render_grid(const std::vector<cv::Mat>& images, int cols, const std::vector<std::string>& labels,
                    const ImageOptions& opt);

// Writes a CV_8UC1/CV_8UC3 image as PNG atomically. Throws FigureError if encoding or writing fails.
void write_png(const std::filesystem::path& path, const cv::Mat& image);

// Reads an image file (PNG, or any format OpenCV decodes) as 8-bit levels: CV_8UC1 for a grey file
// (grey + alpha too), CV_8UC3 in R, G, B channel order for a colour one (alpha dropped); 16-bit files
// are scaled by 1/257 and rounded. For datasets of a lab's own images. Throws FigureError naming the
// file when it is missing or cannot be decoded.
cv::Mat read_image8(const std::filesystem::path& path);
// read_image8 as plain data (image8.hpp): the decoder a dataset of image files is read with.
Image8 read_image8_pixels(const std::filesystem::path& path);

}  // namespace hilo::io
