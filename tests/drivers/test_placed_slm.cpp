// drivers::place_pattern / PlacedSlm: the one placement rule of captures, probes and the emulator.
#include <gtest/gtest.h>

#include <random>

#include "hilo/drivers/emulator.hpp"
#include "hilo/drivers/placed_slm.hpp"

namespace hilo::drivers {
namespace {

cv::Mat random_levels(int rows, int cols, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  cv::Mat m(rows, cols, CV_8UC1);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) m.at<std::uint8_t>(r, c) = static_cast<std::uint8_t>(rng() & 0xff);
  return m;
}

// Records the last pattern shown.
class RecordingSlm final : public Slm {
 public:
  RecordingSlm(int rows, int cols, int bits) : rows_(rows), cols_(cols), bits_(bits) {}
  std::string name() const override { return "rec"; }
  int width_px() const override { return cols_; }
  int height_px() const override { return rows_; }
  double pixel_pitch_um() const override { return 8.0; }
  int bit_depth() const override { return bits_; }
  double settle_time_ms() const override { return 0; }
  DeviceState state() const override { return DeviceState::ready; }
  DeviceStatus open() override { return std::nullopt; }
  void close() override {}
  DeviceStatus show(const cv::Mat& levels) override {
    shown = levels.clone();
    return std::nullopt;
  }
  cv::Mat shown;

 private:
  int rows_, cols_, bits_;
};

TEST(PlacePattern, MagnifiesByTheFittingScaleCentredOnDark) {
  const cv::Mat img = random_levels(5, 7, 1);
  EXPECT_EQ(fitting_scale(5, 7, 40, 29), 4);  // 5·8 ≤ 40 but 7·4 ≤ 29 < 7·5
  const cv::Mat p = place_pattern(img, 40, 29, 8);
  ASSERT_EQ(p.type(), CV_8UC1);
  const int r0 = (40 - 20) / 2, c0 = (29 - 28) / 2;
  for (int r = 0; r < 40; ++r)
    for (int c = 0; c < 29; ++c) {
      const bool inside = r >= r0 && r < r0 + 20 && c >= c0 && c < c0 + 28;
      const int want = inside ? img.at<std::uint8_t>((r - r0) / 4, (c - c0) / 4) : 0;
      ASSERT_EQ(p.at<std::uint8_t>(r, c), want) << r << "," << c;
    }
  EXPECT_THROW(place_pattern(img, 40, 29, 8, 5), std::invalid_argument);
  EXPECT_THROW(place_pattern(img, 4, 29, 8), std::invalid_argument);
}

TEST(PlacePattern, ConvertsEightBitLevelsToTheDeviceDepthAndKeepsSixteenBitOnes) {
  cv::Mat img(1, 3, CV_8UC1);
  img.at<std::uint8_t>(0, 0) = 0;
  img.at<std::uint8_t>(0, 1) = 128;
  img.at<std::uint8_t>(0, 2) = 255;
  const cv::Mat p = place_pattern(img, 1, 3, 10);
  ASSERT_EQ(p.type(), CV_16UC1);
  EXPECT_EQ(p.at<std::uint16_t>(0, 0), 0);
  EXPECT_EQ(p.at<std::uint16_t>(0, 1), 514);  // round(128 · 1023 / 255) = round(513.5)
  EXPECT_EQ(p.at<std::uint16_t>(0, 2), 1023);
  cv::Mat wide(1, 1, CV_16UC1, cv::Scalar(700));
  EXPECT_EQ(place_pattern(wide, 2, 2, 10, 2).at<std::uint16_t>(1, 1), 700);
}

TEST(PlacedSlm, ShowsWhatPlacePatternBuildsAndTheEmulatorInvertsIt) {
  for (int bits : {8, 12}) {
    RecordingSlm dev(113, 130, bits);
    PlacedSlm placed(dev, 28, 28);
    EXPECT_EQ(placed.scale(), 4);
    const cv::Mat img = random_levels(28, 28, static_cast<std::uint64_t>(bits));
    ASSERT_FALSE(placed.show(img));
    EXPECT_EQ(cv::norm(dev.shown, place_pattern(img, 113, 130, bits), cv::NORM_INF), 0.0);
    if (bits == 8) EXPECT_EQ(cv::norm(input_from_monitor(dev.shown, 28, 28), img, cv::NORM_INF), 0.0);
  }
  RecordingSlm dev(10, 10, 8);
  PlacedSlm placed(dev, 5, 5);
  const auto e = placed.show(cv::Mat(4, 5, CV_8UC1));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, DeviceErrc::invalid_argument);
  EXPECT_THROW(PlacedSlm(dev, 11, 5), std::invalid_argument);
}

}  // namespace
}  // namespace hilo::drivers
