#include "hilo/io/figures.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "hilo/io/file_io.hpp"

namespace hilo::io {
namespace {

const cv::Scalar kWhite(255, 255, 255);
const cv::Scalar kBlack(0, 0, 0);
const cv::Scalar kGrid(225, 225, 225);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

// Tableau-10 palette, BGR.
const cv::Scalar kPalette[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44},  {40, 39, 214},
                               {189, 103, 148}, {75, 86, 140}, {194, 119, 227}, {127, 127, 127},
                               {34, 189, 188}, {207, 190, 23}};

int cv_colormap(Colormap c) {
  switch (c) {
    case Colormap::viridis: return cv::COLORMAP_VIRIDIS;
    case Colormap::inferno: return cv::COLORMAP_INFERNO;
    case Colormap::gray: return -1;
  }
  return -1;
}

// 8-bit single channel → BGR through the colormap.
cv::Mat apply_cmap(const cv::Mat& u8, Colormap c) {
  cv::Mat out;
  if (c == Colormap::gray) {
    cv::cvtColor(u8, out, cv::COLOR_GRAY2BGR);
  } else {
    cv::applyColorMap(u8, out, cv_colormap(c));
  }
  return out;
}

void put_text(cv::Mat& img, const std::string& s, cv::Point org, double scale, const cv::Scalar& color,
              int thickness = 1) {
  cv::putText(img, s, org, kFont, scale, color, thickness, cv::LINE_AA);
}

cv::Size text_size(const std::string& s, double scale, int thickness = 1) {
  int base = 0;
  return cv::getTextSize(s, kFont, scale, thickness, &base);
}

// Centre of text at (cx, baseline y).
void put_centered(cv::Mat& img, const std::string& s, int cx, int y, double scale, const cv::Scalar& c,
                  int thickness = 1) {
  put_text(img, s, {cx - text_size(s, scale, thickness).width / 2, y}, scale, c, thickness);
}

// Ticks at 1, 2, 5 × 10^k covering [lo, hi] with about `target` intervals.
std::vector<double> nice_ticks(double lo, double hi, int target) {
  const double span = hi - lo;
  const double raw = span / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

std::string fmt(double v) {
  char buf[32];
  const double a = std::abs(v);
  if (a != 0.0 && (a >= 1e5 || a < 1e-3)) {
    std::snprintf(buf, sizeof buf, "%.1e", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.4g", v);
  }
  return buf;
}

std::string check_range(const char* what, int v, int lo, int hi) {
  if (v < lo || v > hi) {
    return std::string(what) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
           "], got " + std::to_string(v);
  }
  return {};
}

cv::Mat to_double(const cv::Mat& a) {
  if (a.channels() != 1) throw FigureError("figure: image must have one channel, got " + std::to_string(a.channels()));
  switch (a.depth()) {
    case CV_8U: case CV_16U: case CV_32S: case CV_32F: case CV_64F: break;
    default: throw FigureError("figure: unsupported image depth " + std::to_string(a.depth()));
  }
  if (a.empty()) throw FigureError("figure: image is empty");
  cv::Mat d;
  a.convertTo(d, CV_64F);
  return d;
}

// Finite min/max of a CV_64F array; (0, 0) if nothing is finite.
std::pair<double, double> finite_range(const cv::Mat& d) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (int r = 0; r < d.rows; ++r) {
    const double* p = d.ptr<double>(r);
    for (int c = 0; c < d.cols; ++c) {
      if (std::isfinite(p[c])) {
        lo = std::min(lo, p[c]);
        hi = std::max(hi, p[c]);
      }
    }
  }
  if (!std::isfinite(lo)) return {0.0, 0.0};
  return {lo, hi};
}

// CV_64F → 8-bit levels in [0, 255] for [vmin, vmax]; constant range → 128; NaN → 0.
cv::Mat to_levels(const cv::Mat& d, double vmin, double vmax) {
  cv::Mat u8(d.size(), CV_8UC1);
  const double span = vmax - vmin;
  for (int r = 0; r < d.rows; ++r) {
    const double* p = d.ptr<double>(r);
    auto* q = u8.ptr<std::uint8_t>(r);
    for (int c = 0; c < d.cols; ++c) {
      double t = span > 0 ? (p[c] - vmin) / span : 0.5;
      if (!std::isfinite(t)) t = std::isnan(t) ? 0.0 : (t > 0 ? 1.0 : 0.0);
      q[c] = static_cast<std::uint8_t>(std::lround(std::clamp(t, 0.0, 1.0) * 255.0));
    }
  }
  return u8;
}

}  // namespace

cv::Vec3b colormap_bgr(Colormap cmap, double t) {
  if (!std::isfinite(t)) t = 0.0;
  cv::Mat u8(1, 1, CV_8UC1, cv::Scalar(std::lround(std::clamp(t, 0.0, 1.0) * 255.0)));
  return apply_cmap(u8, cmap).at<cv::Vec3b>(0, 0);
}

std::string LinePlotOptions::validate() const {
  if (auto e = check_range("figure.width_px", width_px, 200, 8000); !e.empty()) return e;
  return check_range("figure.height_px", height_px, 150, 8000);
}

std::string ImageOptions::validate() const {
  if (auto e = check_range("figure.scale", scale, 1, 64); !e.empty()) return e;
  if (!auto_range && !(std::isfinite(vmin) && std::isfinite(vmax) && vmax > vmin)) {
    return "figure.vmin/vmax must be finite with vmax > vmin, got [" + fmt(vmin) + ", " + fmt(vmax) + "]";
  }
  return {};
}

cv::Mat render_line_plot(const std::vector<Series>& series, const LinePlotOptions& opt) {
  if (auto e = opt.validate(); !e.empty()) throw FigureError(e);
  if (series.empty()) throw FigureError("figure: a line plot needs at least one series");
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  auto ty = [&](double y) { return opt.log_y ? std::log10(y) : y; };
  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!opt.log_y || y > 0); };
  for (const auto& s : series) {
    if (s.x.size() != s.y.size()) {
      throw FigureError("figure: series '" + s.label + "' has " + std::to_string(s.x.size()) + " x values but " +
                        std::to_string(s.y.size()) + " y values");
    }
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) continue;
      x0 = std::min(x0, s.x[i]); x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, ty(s.y[i])); y1 = std::max(y1, ty(s.y[i]));
    }
  }
  if (!std::isfinite(x0)) throw FigureError("figure: no finite points to plot");
  if (x1 == x0) { x0 -= 0.5; x1 += 0.5; }
  if (y1 == y0) { y0 -= 0.5; y1 += 0.5; }
  const double ypad = 0.05 * (y1 - y0);
  y0 -= ypad; y1 += ypad;

  cv::Mat img(opt.height_px, opt.width_px, CV_8UC3, kWhite);
  const int left = 80, right = 20, top = opt.title.empty() ? 20 : 45, bottom = 60;
  const cv::Rect plot(left, top, opt.width_px - left - right, opt.height_px - top - bottom);
  auto px = [&](double x) { return plot.x + static_cast<int>(std::lround((x - x0) / (x1 - x0) * plot.width)); };
  auto py = [&](double y) { return plot.y + plot.height - static_cast<int>(std::lround((y - y0) / (y1 - y0) * plot.height)); };

  for (double t : nice_ticks(x0, x1, 8)) {
    const int x = px(t);
    cv::line(img, {x, plot.y}, {x, plot.y + plot.height}, kGrid, 1);
    cv::line(img, {x, plot.y + plot.height}, {x, plot.y + plot.height + 5}, kBlack, 1);
    put_centered(img, fmt(t), x, plot.y + plot.height + 20, 0.4, kBlack);
  }
  if (opt.log_y) {
    for (double k = std::ceil(y0); k <= y1; k += 1.0) {
      const int y = py(k);
      cv::line(img, {plot.x, y}, {plot.x + plot.width, y}, kGrid, 1);
      cv::line(img, {plot.x - 5, y}, {plot.x, y}, kBlack, 1);
      const std::string s = fmt(std::pow(10.0, k));
      put_text(img, s, {plot.x - 8 - text_size(s, 0.4).width, y + 4}, 0.4, kBlack);
    }
  } else {
    for (double t : nice_ticks(y0, y1, 8)) {
      const int y = py(t);
      cv::line(img, {plot.x, y}, {plot.x + plot.width, y}, kGrid, 1);
      cv::line(img, {plot.x - 5, y}, {plot.x, y}, kBlack, 1);
      const std::string s = fmt(t);
      put_text(img, s, {plot.x - 8 - text_size(s, 0.4).width, y + 4}, 0.4, kBlack);
    }
  }
  cv::rectangle(img, plot, kBlack, 1);

  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const cv::Scalar colour = kPalette[k % std::size(kPalette)];
    std::vector<cv::Point> run;
    auto flush = [&] {
      if (run.size() == 1) cv::circle(img, run[0], 2, colour, cv::FILLED, cv::LINE_AA);
      if (run.size() > 1) cv::polylines(img, run, false, colour, 2, cv::LINE_AA);
      run.clear();
    };
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) { flush(); continue; }
      run.emplace_back(px(s.x[i]), py(ty(s.y[i])));
    }
    flush();
  }

  // Legend, top right inside the plot.
  int lw = 0, n = 0;
  for (const auto& s : series) {
    if (!s.label.empty()) { lw = std::max(lw, text_size(s.label, 0.45).width); ++n; }
  }
  if (n > 0) {
    const cv::Rect box(plot.x + plot.width - lw - 50, plot.y + 8, lw + 42, 20 * n + 8);
    cv::rectangle(img, box, kWhite, cv::FILLED);
    cv::rectangle(img, box, kBlack, 1);
    int row = 0;
    for (std::size_t k = 0; k < series.size(); ++k) {
      if (series[k].label.empty()) continue;
      const int y = box.y + 16 + 20 * row++;
      cv::line(img, {box.x + 6, y - 4}, {box.x + 28, y - 4}, kPalette[k % std::size(kPalette)], 2, cv::LINE_AA);
      put_text(img, series[k].label, {box.x + 34, y}, 0.45, kBlack);
    }
  }
  if (!opt.title.empty()) put_centered(img, opt.title, opt.width_px / 2, 28, 0.6, kBlack, 1);
  if (!opt.x_label.empty()) put_centered(img, opt.x_label, plot.x + plot.width / 2, opt.height_px - 15, 0.5, kBlack);
  if (!opt.y_label.empty()) {
    // Rotated label: draw horizontally on a strip, rotate 90° counter-clockwise, paste.
    const cv::Size ts = text_size(opt.y_label, 0.5);
    cv::Mat strip(ts.height + 8, ts.width + 4, CV_8UC3, kWhite);
    put_text(strip, opt.y_label, {2, ts.height + 2}, 0.5, kBlack);
    cv::Mat rot;
    cv::rotate(strip, rot, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int y = std::max(0, plot.y + plot.height / 2 - rot.rows / 2);
    const int h = std::min(rot.rows, img.rows - y);
    rot(cv::Rect(0, 0, rot.cols, h)).copyTo(img(cv::Rect(4, y, rot.cols, h)));
  }
  return img;
}

cv::Mat render_confusion_matrix(const cv::Mat& counts, const std::vector<std::string>& class_names,
                                const std::string& title, int cell_px) {
  if (counts.empty() || counts.rows != counts.cols) {
    throw FigureError("figure: a confusion matrix must be square and non-empty, got " + std::to_string(counts.rows) +
                      "x" + std::to_string(counts.cols));
  }
  if (counts.type() != CV_32S && counts.type() != CV_64F) throw FigureError("figure: confusion counts must be CV_32S or CV_64F");
  if (!class_names.empty() && static_cast<int>(class_names.size()) != counts.rows) {
    throw FigureError("figure: " + std::to_string(class_names.size()) + " class names for " +
                      std::to_string(counts.rows) + " classes");
  }
  if (auto e = check_range("figure.cell_px", cell_px, 16, 256); !e.empty()) throw FigureError(e);
  cv::Mat d;
  counts.convertTo(d, CV_64F);
  double mn = 0, mx = 0;
  cv::minMaxLoc(d, &mn, &mx);
  if (mn < 0 || !std::isfinite(mx)) throw FigureError("figure: confusion counts must be finite and non-negative");
  const int n = counts.rows;
  const int left = 90, top = title.empty() ? 20 : 50, bottom = 80, right = 20;
  cv::Mat img(top + n * cell_px + bottom, left + n * cell_px + right, CV_8UC3, kWhite);
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < n; ++c) {
      const double v = d.at<double>(r, c);
      const double t = mx > 0 ? v / mx : 0.0;
      const cv::Vec3b col = colormap_bgr(Colormap::viridis, t);
      const cv::Rect cell(left + c * cell_px, top + r * cell_px, cell_px, cell_px);
      cv::rectangle(img, cell, cv::Scalar(col[0], col[1], col[2]), cv::FILLED);
      const std::string s = counts.type() == CV_32S ? std::to_string(counts.at<int>(r, c)) : fmt(v);
      const cv::Scalar tc = t > 0.6 ? kBlack : kWhite;
      const double fs = std::min(0.5, cell_px / 100.0);
      put_centered(img, s, cell.x + cell_px / 2, cell.y + cell_px / 2 + 5, fs, tc);
    }
  }
  for (int i = 0; i < n; ++i) {
    const std::string name = class_names.empty() ? std::to_string(i) : class_names[i];
    put_text(img, name, {left - 8 - text_size(name, 0.4).width, top + i * cell_px + cell_px / 2 + 4}, 0.4, kBlack);
    put_centered(img, name.substr(0, 8), left + i * cell_px + cell_px / 2, top + n * cell_px + 18, 0.35, kBlack);
  }
  put_centered(img, "predicted", left + n * cell_px / 2, top + n * cell_px + 45, 0.5, kBlack);
  put_text(img, "true", {10, top - 6 > 12 ? top - 6 : 14}, 0.5, kBlack);
  if (!title.empty()) put_centered(img, title, img.cols / 2, 30, 0.6, kBlack);
  return img;
}

cv::Mat render_image(const cv::Mat& array, const ImageOptions& opt) {
  if (auto e = opt.validate(); !e.empty()) throw FigureError(e);
  const cv::Mat d = to_double(array);
  auto [vmin, vmax] = opt.auto_range ? finite_range(d) : std::pair{opt.vmin, opt.vmax};
  cv::Mat body = apply_cmap(to_levels(d, vmin, vmax), opt.cmap);
  if (opt.scale > 1) cv::resize(body, body, {}, opt.scale, opt.scale, cv::INTER_NEAREST);
  const int top = opt.title.empty() ? 0 : 30;
  const int bar_w = opt.colorbar ? 90 : 0;
  const int h = std::max(body.rows, opt.colorbar ? 120 : 0);
  cv::Mat img(h + top, body.cols + bar_w, CV_8UC3, kWhite);
  body.copyTo(img(cv::Rect(0, top, body.cols, body.rows)));
  if (opt.colorbar) {
    const int bx = body.cols + 10, bw = 16, by = top + 8, bh = h - 16;
    for (int y = 0; y < bh; ++y) {
      const cv::Vec3b c = colormap_bgr(opt.cmap, 1.0 - static_cast<double>(y) / std::max(1, bh - 1));
      cv::line(img, {bx, by + y}, {bx + bw - 1, by + y}, cv::Scalar(c[0], c[1], c[2]));
    }
    cv::rectangle(img, cv::Rect(bx, by, bw, bh), kBlack, 1);
    put_text(img, fmt(vmax), {bx + bw + 4, by + 10}, 0.35, kBlack);
    put_text(img, fmt(vmin), {bx + bw + 4, by + bh}, 0.35, kBlack);
  }
  if (!opt.title.empty()) put_centered(img, opt.title, img.cols / 2, 20, 0.5, kBlack);
  return img;
}

cv::Mat render_grid(const std::vector<cv::Mat>& images, int cols, const std::vector<std::string>& labels,
                    const ImageOptions& opt) {
  if (images.empty()) throw FigureError("figure: a grid needs at least one image");
  if (cols < 1) throw FigureError("figure: grid cols must be >= 1, got " + std::to_string(cols));
  if (!labels.empty() && labels.size() != images.size()) {
    throw FigureError("figure: " + std::to_string(labels.size()) + " labels for " + std::to_string(images.size()) + " images");
  }
  ImageOptions tile_opt = opt;
  tile_opt.colorbar = false;
  tile_opt.title.clear();
  std::vector<cv::Mat> tiles;
  int tw = 0, th = 0;
  for (const auto& im : images) {
    tiles.push_back(render_image(im, tile_opt));
    tw = std::max(tw, tiles.back().cols);
    th = std::max(th, tiles.back().rows);
  }
  const int gap = 6, cap = labels.empty() ? 0 : 18, top = opt.title.empty() ? 0 : 30;
  cols = std::min<int>(cols, static_cast<int>(tiles.size()));
  const int rows = (static_cast<int>(tiles.size()) + cols - 1) / cols;
  cv::Mat img(top + rows * (th + cap + gap) + gap, cols * (tw + gap) + gap, CV_8UC3, kWhite);
  for (std::size_t i = 0; i < tiles.size(); ++i) {
    const int r = static_cast<int>(i) / cols, c = static_cast<int>(i) % cols;
    const int x = gap + c * (tw + gap), y = top + gap + r * (th + cap + gap);
    tiles[i].copyTo(img(cv::Rect(x, y, tiles[i].cols, tiles[i].rows)));
    if (!labels.empty()) put_centered(img, labels[i], x + tw / 2, y + th + 13, 0.4, kBlack);
  }
  if (!opt.title.empty()) put_centered(img, opt.title, img.cols / 2, 20, 0.5, kBlack);
  return img;
}

void write_png(const std::filesystem::path& path, const cv::Mat& image) {
  if (image.empty() || image.depth() != CV_8U || (image.channels() != 1 && image.channels() != 3)) {
    throw FigureError(path.string() + ": write_png needs a non-empty CV_8UC1 or CV_8UC3 image");
  }
  std::vector<std::uint8_t> buf;
  if (!cv::imencode(".png", image, buf)) throw FigureError(path.string() + ": PNG encoding failed");
  try {
    write_file_atomic(path, std::as_bytes(std::span<const std::uint8_t>(buf)));
  } catch (const FileError& e) {
    throw FigureError(e.what());
  }
}

cv::Mat read_image8(const std::filesystem::path& path) {
  if (!std::filesystem::is_regular_file(path)) throw FigureError(path.string() + ": image file not found");
  cv::Mat im = cv::imread(path.string(), cv::IMREAD_UNCHANGED);
  if (im.empty()) throw FigureError(path.string() + ": cannot decode the image");
  if (im.depth() == CV_16U) im.convertTo(im, CV_8U, 1.0 / 257.0);
  if (im.depth() != CV_8U) throw FigureError(path.string() + ": images must have 8- or 16-bit samples");
  cv::Mat out;
  switch (im.channels()) {
    case 1: out = im; break;
    case 2: cv::extractChannel(im, out, 0); break;  // grey + alpha
    case 3: cv::cvtColor(im, out, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(im, out, cv::COLOR_BGRA2RGB); break;
    default: throw FigureError(path.string() + ": unsupported channel count " + std::to_string(im.channels()));
  }
  return out;
}

Image8 read_image8_pixels(const std::filesystem::path& path) {
  const cv::Mat m = read_image8(path);
  Image8 im;
  im.rows = m.rows;
  im.cols = m.cols;
  im.channels = m.channels();
  const std::size_t row_bytes = std::size_t(m.cols) * std::size_t(m.channels());
  im.pixels.resize(std::size_t(m.rows) * row_bytes);
  for (int r = 0; r < m.rows; ++r) std::copy_n(m.ptr<std::uint8_t>(r), row_bytes, im.pixels.begin() + std::ptrdiff_t(r) * std::ptrdiff_t(row_bytes));
  return im;
}

}  // namespace hilo::io
