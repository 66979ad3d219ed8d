#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include <opencv2/imgcodecs.hpp>

#include "hilo/io/figures.hpp"

namespace fs = std::filesystem;
using namespace hilo::io;

namespace {

double luminance(cv::Vec3b c) { return 0.0722 * c[0] + 0.7152 * c[1] + 0.2126 * c[2]; }

fs::path temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("hilo_figures_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(Figures, ColormapsAreMonotoneInLuminance) {
  for (Colormap c : {Colormap::viridis, Colormap::gray, Colormap::inferno}) {
    double prev = -1.0;
    for (int i = 0; i <= 255; ++i) {
      const double l = luminance(colormap_bgr(c, i / 255.0));
      EXPECT_GE(l, prev - 1.0) << "colormap " << static_cast<int>(c) << " at " << i;  // 1 level of rounding
      prev = l;
    }
    EXPECT_GT(luminance(colormap_bgr(c, 1.0)), luminance(colormap_bgr(c, 0.0)) + 100.0);
  }
  EXPECT_EQ(colormap_bgr(Colormap::viridis, -3.0), colormap_bgr(Colormap::viridis, 0.0));
  EXPECT_EQ(colormap_bgr(Colormap::viridis, 7.0), colormap_bgr(Colormap::viridis, 1.0));
  EXPECT_EQ(colormap_bgr(Colormap::viridis, NAN), colormap_bgr(Colormap::viridis, 0.0));
}

TEST(Figures, ImagePixelsEncodeValuesThroughTheColormap) {
  // A horizontal ramp 0..99: rendered pixel luminance must increase along each row, and the extreme
  // columns must be exactly the colormap's end colours.
  cv::Mat ramp(10, 100, CV_32F);
  for (int r = 0; r < ramp.rows; ++r)
    for (int c = 0; c < ramp.cols; ++c) ramp.at<float>(r, c) = static_cast<float>(c);
  ImageOptions opt;
  opt.colorbar = false;
  const cv::Mat img = render_image(ramp, opt);
  ASSERT_EQ(img.size(), ramp.size());
  ASSERT_EQ(img.type(), CV_8UC3);
  for (int c = 1; c < img.cols; ++c) {
    EXPECT_GE(luminance(img.at<cv::Vec3b>(5, c)), luminance(img.at<cv::Vec3b>(5, c - 1)) - 1.0) << c;
  }
  EXPECT_EQ(img.at<cv::Vec3b>(0, 0), colormap_bgr(Colormap::viridis, 0.0));
  EXPECT_EQ(img.at<cv::Vec3b>(0, 99), colormap_bgr(Colormap::viridis, 1.0));

  // Fixed range: values beyond it clamp; scale magnifies by nearest neighbour.
  opt.auto_range = false;
  opt.vmin = 0;
  opt.vmax = 49;
  opt.scale = 3;
  const cv::Mat big = render_image(ramp, opt);
  ASSERT_EQ(big.size(), cv::Size(300, 30));
  EXPECT_EQ(big.at<cv::Vec3b>(0, 3 * 60), colormap_bgr(Colormap::viridis, 1.0));
  EXPECT_EQ(big.at<cv::Vec3b>(29, 2), big.at<cv::Vec3b>(0, 0));
}

TEST(Figures, ColorbarRunsFromMaxAtTopToMinAtBottom) {
  cv::Mat a(100, 100, CV_16U, cv::Scalar(7));
  a.at<std::uint16_t>(0, 0) = 1000;
  const cv::Mat img = render_image(a, ImageOptions{});
  ASSERT_GT(img.cols, 100);
  // The bar's column (10..25 px right of the image): top is vmax's colour, bottom vmin's.
  const int x = 100 + 18;
  EXPECT_EQ(img.at<cv::Vec3b>(8 + 1, x), colormap_bgr(Colormap::viridis, 1.0 - 1.0 / 103.0));
  EXPECT_GT(luminance(img.at<cv::Vec3b>(9, x)), luminance(img.at<cv::Vec3b>(img.rows - 10, x)) + 100.0);
}

TEST(Figures, FilesAppearWithTheExpectedSizes) {
  const auto dir = temp_dir("files");
  LinePlotOptions lp;
  lp.title = "learning curve";
  lp.x_label = "epoch";
  lp.y_label = "loss";
  lp.width_px = 640;
  lp.height_px = 400;
  std::vector<Series> s = {{"train", {0, 1, 2, 3}, {1.0, 0.5, 0.3, 0.2}}, {"test", {0, 1, 2, 3}, {1.1, 0.7, 0.5, NAN}}};
  write_png(dir / "curve.png", render_line_plot(s, lp));
  lp.log_y = true;
  write_png(dir / "curve_log.png", render_line_plot(s, lp));

  cv::Mat cm = (cv::Mat_<int>(3, 3) << 50, 2, 0, 3, 40, 7, 0, 1, 60);
  write_png(dir / "cm.png", render_confusion_matrix(cm, {"shirt", "bag", "boot"}, "confusion", 40));

  std::vector<cv::Mat> frames;
  for (int i = 0; i < 5; ++i) frames.emplace_back(28, 28, CV_8U, cv::Scalar(i * 40));
  ImageOptions go;
  go.scale = 2;
  write_png(dir / "grid.png", render_grid(frames, 3, {"0", "1", "2", "3", "4"}, go));

  const cv::Mat curve = cv::imread((dir / "curve.png").string(), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(curve.size(), cv::Size(640, 400));
  EXPECT_EQ(cv::imread((dir / "curve_log.png").string()).size(), cv::Size(640, 400));
  const cv::Mat cmi = cv::imread((dir / "cm.png").string());
  EXPECT_EQ(cmi.cols, 90 + 3 * 40 + 20);
  EXPECT_EQ(cmi.rows, 50 + 3 * 40 + 80);
  // The largest count's cell is viridis(1); an empty cell is viridis(0) (sampled off the label text).
  EXPECT_EQ(cmi.at<cv::Vec3b>(50 + 2 * 40 + 3, 90 + 2 * 40 + 3), colormap_bgr(Colormap::viridis, 1.0));
  EXPECT_EQ(cmi.at<cv::Vec3b>(50 + 0 * 40 + 3, 90 + 2 * 40 + 3), colormap_bgr(Colormap::viridis, 0.0));
  const cv::Mat grid = cv::imread((dir / "grid.png").string());
  EXPECT_EQ(grid.cols, 3 * (56 + 6) + 6);
  EXPECT_EQ(grid.rows, 2 * (56 + 18 + 6) + 6);
  EXPECT_FALSE(fs::exists(dir / "grid.png.tmp"));
  fs::remove_all(dir);
}

TEST(Figures, InvalidInputsThrowWithTheRule) {
  LinePlotOptions lp;
  EXPECT_THROW(render_line_plot({}, lp), FigureError);
  EXPECT_THROW(render_line_plot({{"a", {1, 2}, {1}}}, lp), FigureError);
  EXPECT_THROW(render_line_plot({{"a", {NAN}, {1}}}, lp), FigureError);
  lp.width_px = 10;
  EXPECT_EQ(lp.validate(), "figure.width_px must be in [200, 8000], got 10");
  EXPECT_THROW(render_confusion_matrix(cv::Mat::zeros(2, 3, CV_32S), {}, ""), FigureError);
  EXPECT_THROW(render_confusion_matrix(cv::Mat::zeros(2, 2, CV_32S), {"one"}, ""), FigureError);
  EXPECT_THROW(render_image(cv::Mat(4, 4, CV_8UC3), ImageOptions{}), FigureError);
  ImageOptions bad;
  bad.auto_range = false;
  bad.vmin = 1;
  bad.vmax = 1;
  EXPECT_THROW(render_image(cv::Mat::zeros(4, 4, CV_32F), bad), FigureError);
  EXPECT_THROW(render_grid({}, 2, {}, ImageOptions{}), FigureError);
  EXPECT_THROW(write_png("/nonexistent-dir/x.png", cv::Mat::zeros(4, 4, CV_8U)), FigureError);
}
