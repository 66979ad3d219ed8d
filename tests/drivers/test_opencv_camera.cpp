// OpenCvCamera against real VideoCapture sources: a GStreamer pipeline and an image sequence written
// by the test.
#include <filesystem>
#include <random>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <unistd.h>

#include "hilo/drivers/opencv_camera.hpp"

namespace fs = std::filesystem;

namespace hilo::drivers {
namespace {

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("hilo_opencv_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

constexpr auto kTimeout = std::chrono::milliseconds(5000);

TEST(OpenCvCamera, ClassifiesSources) {
  EXPECT_EQ(classify_source("0"), OpenCvSourceKind::v4l2);
  EXPECT_EQ(classify_source("/dev/video2"), OpenCvSourceKind::v4l2);
  EXPECT_EQ(classify_source("videotestsrc ! appsink"), OpenCvSourceKind::gstreamer);
  EXPECT_EQ(classify_source("x/frame_%04d.png"), OpenCvSourceKind::image_sequence);
  EXPECT_EQ(classify_source("run.avi"), OpenCvSourceKind::video_file);
}

TEST(OpenCvCamera, ValidateNamesTheField) {
  OpenCvCameraOptions o;
  EXPECT_EQ(o.validate(), "opencv.source must not be empty");
  o.source = "videotestsrc ! fakesink";
  EXPECT_NE(o.validate().find("must end in appsink"), std::string::npos);
  o.source = "a.avi";
  o.pixel_format = PixelFormat::mono12;
  EXPECT_EQ(o.validate(), "opencv.pixel_format must be mono8 or mono16, got mono12");
}

TEST(OpenCvCamera, GrabsEveryBufferOfAGStreamerPipelineThenReportsEndOfStream) {
  OpenCvCameraOptions o;
  o.name = "gst";
  // videotestsrc paints in video range: pattern=white in GRAY8 is 235 on every pixel.
  o.source = "videotestsrc num-buffers=5 pattern=white ! video/x-raw,format=GRAY8,width=64,height=48 "
             "! videoconvert ! appsink";
  OpenCvCamera cam(o);
  ASSERT_FALSE(cam.open());
  EXPECT_EQ(cam.state(), DeviceState::ready);
  EXPECT_EQ(cam.width_px(), 64);
  EXPECT_EQ(cam.height_px(), 48);
  for (std::uint64_t i = 0; i < 5; ++i) {
    auto f = cam.grab(kTimeout);
    ASSERT_TRUE(f.ok()) << f.error().message;
    EXPECT_EQ(f.value().sequence, i);
    ASSERT_EQ(f.value().image.type(), CV_8UC1);
    ASSERT_EQ(f.value().image.size(), cv::Size(64, 48));
    EXPECT_EQ(cv::countNonZero(f.value().image != 235), 0);
  }
  auto end = cam.grab(kTimeout);
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.error().code, DeviceErrc::disconnected);
  EXPECT_EQ(end.error().message, "camera 'gst': source '" + o.source + "' stopped after 5 frames");
  EXPECT_TRUE(cam.set_trigger_mode(TriggerMode::software).has_value());
  EXPECT_EQ(cam.set_exposure_ms(5.0)->code, DeviceErrc::invalid_argument);
}

TEST(OpenCvCamera, ReadsAnImageSequenceBackExactly) {
  TempDir dir;
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> level(0, 255);
  std::vector<cv::Mat> written;
  for (int i = 0; i < 4; ++i) {
    cv::Mat img(30, 40, CV_8UC1);
    for (int y = 0; y < img.rows; ++y)
      for (int x = 0; x < img.cols; ++x) img.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(level(rng));
    char name[32];
    std::snprintf(name, sizeof name, "frame_%04d.png", i);
    ASSERT_TRUE(cv::imwrite((dir.path() / name).string(), img));
    written.push_back(img);
  }
  OpenCvCameraOptions o;
  o.name = "seq";
  o.source = (dir.path() / "frame_%04d.png").string();
  OpenCvCamera cam(o);
  ASSERT_FALSE(cam.open());
  ASSERT_FALSE(cam.set_trigger_mode(TriggerMode::software));
  for (int i = 0; i < 4; ++i) {
    auto f = cam.grab(kTimeout);
    ASSERT_TRUE(f.ok()) << f.error().message;
    ASSERT_EQ(f.value().image.type(), CV_8UC1);
    EXPECT_EQ(cv::countNonZero(f.value().image != written[i]), 0) << "frame " << i;
    EXPECT_EQ(f.value().sequence, static_cast<std::uint64_t>(i));
  }
  auto end = cam.grab(kTimeout);
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.error().code, DeviceErrc::io);
  EXPECT_EQ(end.error().message, "camera 'seq': end of stream after 4 frames (close and open to rewind)");
  EXPECT_EQ(cam.state(), DeviceState::fault);

  // mono16 keeps full scale: v → v·257; reopening rewinds.
  cam.close();
  ASSERT_FALSE(cam.set_pixel_format(PixelFormat::mono16));
  ASSERT_FALSE(cam.open());
  auto f = cam.grab(kTimeout);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f.value().image.type(), CV_16UC1);
  cv::Mat expected;
  written[0].convertTo(expected, CV_16U, 257.0);
  EXPECT_EQ(cv::countNonZero(f.value().image != expected), 0);
}

TEST(OpenCvCamera, ConvertsColourAndSixteenBitImages) {
  TempDir dir;
  cv::Mat grey16(8, 8, CV_16UC1);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) grey16.at<std::uint16_t>(y, x) = static_cast<std::uint16_t>(1000 * (y * 8 + x) + 7);
  ASSERT_TRUE(cv::imwrite((dir.path() / "g_0000.png").string(), grey16));
  OpenCvCameraOptions o;
  o.source = (dir.path() / "g_%04d.png").string();
  o.pixel_format = PixelFormat::mono16;
  OpenCvCamera cam(o);
  ASSERT_FALSE(cam.open());
  auto f = cam.grab(kTimeout);
  ASSERT_TRUE(f.ok()) << f.error().message;
  // The image-sequence reader keeps 16-bit PNGs 16-bit: every level comes back exactly.
  ASSERT_EQ(f.value().image.type(), CV_16UC1);
  EXPECT_EQ(cv::countNonZero(f.value().image != grey16), 0);

  // As mono8 the same file reads as v >> 8.
  cam.close();
  ASSERT_FALSE(cam.set_pixel_format(PixelFormat::mono8));
  ASSERT_FALSE(cam.open());
  f = cam.grab(kTimeout);
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ(f.value().image.type(), CV_8UC1);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x)
      ASSERT_EQ(f.value().image.at<std::uint8_t>(y, x), grey16.at<std::uint16_t>(y, x) >> 8);

  // A colour image with R = G = B = v converts to exactly v.
  cv::Mat colour(6, 6, CV_8UC3);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x) {
      const auto v = static_cast<std::uint8_t>(7 * (y * 6 + x));
      colour.at<cv::Vec3b>(y, x) = cv::Vec3b(v, v, v);
    }
  ASSERT_TRUE(cv::imwrite((dir.path() / "c_0000.png").string(), colour));
  o.source = (dir.path() / "c_%04d.png").string();
  o.pixel_format = PixelFormat::mono8;
  OpenCvCamera colour_cam(o);
  ASSERT_FALSE(colour_cam.open());
  f = colour_cam.grab(kTimeout);
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ(f.value().image.type(), CV_8UC1);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x) ASSERT_EQ(f.value().image.at<std::uint8_t>(y, x), 7 * (y * 6 + x));
}

TEST(OpenCvCamera, MissingSourcesFailClearly) {
  OpenCvCameraOptions o;
  o.name = "missing";
  o.source = "does/not/exist/frame_%04d.png";
  OpenCvCamera seq(o);
  auto e = seq.open();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, DeviceErrc::io);
  EXPECT_EQ(e->message, "camera 'missing': no image of the sequence 'does/not/exist/frame_%04d.png' exists");
  EXPECT_EQ(seq.state(), DeviceState::disconnected);
  auto g = seq.grab(kTimeout);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code, DeviceErrc::disconnected);

  o.source = "does/not/exist.avi";
  OpenCvCamera video(o);
  e = video.open();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message, "camera 'missing': video file 'does/not/exist.avi' does not exist");
}

TEST(OpenCvCamera, ALiveSourceThatStallsTimesOut) {
  OpenCvCameraOptions o;
  o.name = "slow";
  // One buffer every 400 ms: the grab after the first, with a 50 ms timeout, cannot be served.
  o.source = "videotestsrc is-live=true num-buffers=2 ! video/x-raw,format=GRAY8,width=16,height=16,"
             "framerate=5/2 ! appsink";
  OpenCvCamera cam(o);
  ASSERT_FALSE(cam.open());
  auto f0 = cam.grab(kTimeout);  // the first buffer comes at once
  ASSERT_TRUE(f0.ok()) << f0.error().message;
  auto late = cam.grab(std::chrono::milliseconds(50));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, DeviceErrc::timeout);
  EXPECT_EQ(late.error().message, "camera 'slow': grab timed out after 50 ms");
  auto f1 = cam.grab(kTimeout);  // the frame the timed-out grab waited for is not lost
  ASSERT_TRUE(f1.ok()) << f1.error().message;
  EXPECT_EQ(f1.value().sequence, 1u);
}

}  // namespace
}  // namespace hilo::drivers
