// The emulator's pure parts, without X or sockets: reading the input back from the monitor inverts the
// capture's placement; the optics cache the PSF while the element is unchanged and follow exposure and
// gain as the camera model says; pixel formats; option validation.
#include <gtest/gtest.h>

#include <random>

#include "hilo/drivers/placed_slm.hpp"
#include "hilo/drivers/emulator.hpp"
#include "hilo/sim/config.hpp"

namespace hilo::drivers {
namespace {

cv::Mat random_image(int rows, int cols, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  cv::Mat m(rows, cols, CV_8UC1);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) m.at<std::uint8_t>(r, c) = static_cast<std::uint8_t>(rng() & 0xff);
  return m;
}

sim::BenchOptions small_bench() {
  sim::BenchOptions o;
  o.input.rows = o.input.cols = 8;
  o.element.slm.rows = o.element.slm.cols = 16;
  o.element.slm.bit_depth = 8;
  o.camera.rows = o.camera.cols = 32;
  o.camera.bit_depth = 12;
  o.camera.gain_e_per_count = 4.0;
  o.profile.sensor = sim::SensorNoise::none();
  return o;
}

TEST(EmulatorInput, InvertsTheCapturePlacementForEveryMonitorShape) {
  for (auto [rows, cols, mh, mw] : {std::tuple{28, 28, 112, 112}, {28, 28, 113, 130}, {5, 7, 40, 29}, {3, 3, 3, 3}}) {
    const cv::Mat img = random_image(rows, cols, static_cast<std::uint64_t>(mh * mw));
    const cv::Mat shown = place_pattern(img, mh, mw, 8);
    const cv::Mat back = input_from_monitor(shown, rows, cols);
    EXPECT_EQ(cv::norm(back, img, cv::NORM_INF), 0.0) << rows << "x" << cols << " on " << mh << "x" << mw;
  }
  EXPECT_THROW(input_from_monitor(cv::Mat(20, 20, CV_8UC1), 28, 28), std::invalid_argument);
}

TEST(EmulatedOptics, FormsThePsfAgainOnlyWhenTheElementChanges) {
  EmulatedOptics optics(small_bench(), 1);
  const cv::Mat input = random_image(8, 8, 1);
  cv::Mat element(16, 16, CV_8UC1, cv::Scalar(0));
  const cv::Mat a = optics.render(input, element, 10.0, 0.0, 0.0);
  const cv::Mat b = optics.render(random_image(8, 8, 2), element.clone(), 10.0, 0.0, 0.0);
  EXPECT_EQ(optics.element_changes(), 1);
  EXPECT_GT(cv::norm(a, b, cv::NORM_INF), 0.0) << "another input must give another frame";
  element.at<std::uint8_t>(3, 4) = 200;
  const cv::Mat c = optics.render(input, element, 10.0, 0.0, 0.0);
  EXPECT_EQ(optics.element_changes(), 2);
  EXPECT_GT(cv::norm(a, c, cv::NORM_INF), 0.0) << "another element must give another PSF";
  EXPECT_THROW(optics.render(input, cv::Mat(15, 16, CV_8UC1), 10.0, 0.0, 0.0), std::invalid_argument);
}

TEST(EmulatedOptics, CountsFollowExposureAndGainLikeTheCameraModel) {
  EmulatedOptics optics(small_bench(), 1);  // noiseless sensor, no offset: counts = round(electrons / gain)
  const cv::Mat input(8, 8, CV_8UC1, cv::Scalar(150));
  const cv::Mat element(16, 16, CV_8UC1, cv::Scalar(0));
  double max_count = 0.0;
  auto total = [&](double ms, double db) {
    const cv::Mat f = optics.render(input, element, ms, db, 0.0);
    double mx = 0.0;
    cv::minMaxLoc(f, nullptr, &mx);
    max_count = std::max(max_count, mx);
    return cv::sum(f)[0];
  };
  const double base = total(5.0, 0.0), longer = total(10.0, 0.0), gained = total(5.0, 10.0);
  ASSERT_LT(max_count, 4095.0) << "saturated: the ratios would not hold";
  ASSERT_GT(base, 10000.0);
  // Each of the 32 x 32 pixels is rounded to whole counts: a total is exact to ±512 counts.
  const double tol = 2.0 * 512.0 / base;
  EXPECT_NEAR(longer / base, 2.0, tol);
  EXPECT_NEAR(gained / base, std::pow(10.0, 0.5), tol);  // 10 dB divides the e-/count by 10^(10/20)
}

TEST(EmulatorPixels, Mono16CarriesCountsAndMono8TheTopBits) {
  cv::Mat counts(1, 3, CV_16UC1);
  counts.at<std::uint16_t>(0, 0) = 4095;
  counts.at<std::uint16_t>(0, 1) = 16;
  counts.at<std::uint16_t>(0, 2) = 15;
  const cv::Mat m16 = counts_to_pixels(counts, 12, false);
  EXPECT_EQ(cv::norm(m16, counts, cv::NORM_INF), 0.0);
  const cv::Mat m8 = counts_to_pixels(counts, 12, true);
  EXPECT_EQ(m8.at<std::uint8_t>(0, 0), 255);
  EXPECT_EQ(m8.at<std::uint8_t>(0, 1), 1);
  EXPECT_EQ(m8.at<std::uint8_t>(0, 2), 0);
}

TEST(EmulatorOptions, ValidationNamesTheRule) {
  EmulatorOptions o;
  EXPECT_EQ(o.validate(), "emulator.bench: a bench file is required");
  o.bench = "configs/emulated-lab.yaml";
  EXPECT_EQ(o.validate(), "");
  o.faults.slow_slm_fraction = 2.0;
  EXPECT_EQ(o.validate(), "faults.slow_slm_fraction must be in [0, 1], got 2");
  o.faults.slow_slm_fraction = 0.05;
  o.faults.disappear_after_frames = -1;
  EXPECT_EQ(o.validate(), "faults.disappear_after_frames must be >= 0, got -1");
  // the JSON form is written once, next to the struct: a round trip keeps every field
  o.faults.disappear_after_frames = 7;
  const EmulatorOptions back = nlohmann::json(o).get<EmulatorOptions>();
  EXPECT_EQ(nlohmann::json(back), nlohmann::json(o));
}

TEST(EmulatorPatternCrc, IsZlibCrc32OfTheRowMajorBytes) {
  cv::Mat m(1, 9, CV_8UC1);
  for (int i = 0; i < 9; ++i) m.at<std::uint8_t>(0, i) = static_cast<std::uint8_t>('1' + i);
  EXPECT_EQ(pattern_crc32(m), 0xCBF43926u);  // the CRC-32 check value of "123456789"
  const cv::Mat big = random_image(10, 10, 3);
  EXPECT_EQ(pattern_crc32(big(cv::Rect(0, 0, 9, 1))), pattern_crc32(big(cv::Rect(0, 0, 9, 1)).clone()));
}

}  // namespace
}  // namespace hilo::drivers
