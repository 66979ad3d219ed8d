// DisplaySlm under a real X server (Xvfb started by the fixture on a free display): what the window
// shows is read back from the root window and compared pixel by pixel with the pattern.
#include <random>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/extensions/Xrandr.h>

#include "child_process.hpp"
#include "hilo/drivers/display_slm.hpp"

namespace hilo::drivers {
namespace {

class DisplaySlmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    xvfb_ = std::make_unique<testing::Xvfb>("1024x768x24");
    ASSERT_FALSE(xvfb_->display().empty()) << "Xvfb did not start";
    reader_ = XOpenDisplay(xvfb_->display().c_str());
    ASSERT_NE(reader_, nullptr);
  }
  void TearDown() override {
    if (reader_ != nullptr && !server_killed_) XCloseDisplay(reader_);
    xvfb_.reset();
  }

  DisplaySlmOptions options() const {
    DisplaySlmOptions o;
    o.name = "xvfb-slm";
    o.display = xvfb_->display();
    return o;
  }

  // The screen content in root coordinates as 8-bit levels; fails the test if any pixel is not grey.
  cv::Mat read_levels(int x, int y, int w, int h) {
    XImage* img = XGetImage(reader_, DefaultRootWindow(reader_), x, y, static_cast<unsigned>(w),
                            static_cast<unsigned>(h), AllPlanes, ZPixmap);
    EXPECT_NE(img, nullptr);
    cv::Mat out(h, w, CV_8UC1, cv::Scalar(0));
    if (img == nullptr) return out;
    int not_grey = 0;
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) {
        const unsigned long p = XGetPixel(img, c, r);
        const unsigned red = (p >> 16) & 0xff, green = (p >> 8) & 0xff, blue = p & 0xff;
        if (red != green || green != blue) ++not_grey;
        out.at<std::uint8_t>(r, c) = static_cast<std::uint8_t>(green);
      }
    XDestroyImage(img);
    EXPECT_EQ(not_grey, 0) << "pixels with R, G, B not all equal";
    return out;
  }

  static cv::Mat random_pattern(int w, int h, std::mt19937_64& rng) {
    cv::Mat m(h, w, CV_8UC1);
    std::uniform_int_distribution<int> level(0, 255);
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) m.at<std::uint8_t>(r, c) = static_cast<std::uint8_t>(level(rng));
    return m;
  }

  std::unique_ptr<testing::Xvfb> xvfb_;
  Display* reader_ = nullptr;
  bool server_killed_ = false;
  ManualClock clock_;
};

TEST_F(DisplaySlmTest, ShowsEveryPixelExactly) {
  DisplaySlm slm(options(), clock_);
  ASSERT_FALSE(slm.open());
  EXPECT_EQ(slm.state(), DeviceState::ready);
  ASSERT_EQ(slm.width_px(), 1024);
  ASSERT_EQ(slm.height_px(), 768);
  EXPECT_EQ(slm.bit_depth(), 8);
  std::mt19937_64 rng(7);
  std::vector<cv::Mat> patterns;
  for (int i = 0; i < 4; ++i) patterns.push_back(random_pattern(1024, 768, rng));
  cv::Mat ramp(768, 1024, CV_8UC1);
  for (int r = 0; r < 768; ++r)
    for (int c = 0; c < 1024; ++c) ramp.at<std::uint8_t>(r, c) = static_cast<std::uint8_t>((r + c) & 0xff);
  patterns.push_back(ramp);
  patterns.push_back(cv::Mat(768, 1024, CV_8UC1, cv::Scalar(255)));
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    ASSERT_FALSE(slm.show(patterns[i]));
    const cv::Mat shown = read_levels(0, 0, 1024, 768);
    EXPECT_EQ(cv::countNonZero(shown != patterns[i]), 0) << "pattern " << i;
  }
}

TEST_F(DisplaySlmTest, WindowIsBorderlessOverrideRedirectAtTheMonitorOrigin) {
  DisplaySlm slm(options(), clock_);
  ASSERT_FALSE(slm.open());
  XWindowAttributes a{};
  ASSERT_TRUE(XGetWindowAttributes(reader_, slm.window_id(), &a));
  EXPECT_TRUE(a.override_redirect);
  EXPECT_EQ(a.map_state, IsViewable);
  EXPECT_EQ(a.border_width, 0);
  Window child = 0;
  int rx = -1, ry = -1;
  XTranslateCoordinates(reader_, slm.window_id(), DefaultRootWindow(reader_), 0, 0, &rx, &ry, &child);
  EXPECT_EQ(rx, 0);
  EXPECT_EQ(ry, 0);
  EXPECT_EQ(a.width, 1024);
  EXPECT_EQ(a.height, 768);
}

TEST_F(DisplaySlmTest, CoversOnlyTheChosenMonitor) {
  // Split the screen into two RandR monitors, 400 px and 624 px wide, as a two-head setup would be.
  Window root = DefaultRootWindow(reader_);
  XRRMonitorInfo left{}, right{};
  left.name = XInternAtom(reader_, "LEFT", False);
  left.x = 0, left.y = 0, left.width = 400, left.height = 768, left.mwidth = 100, left.mheight = 190;
  right.name = XInternAtom(reader_, "RIGHT", False);
  right.x = 400, right.y = 0, right.width = 624, right.height = 768, right.mwidth = 150, right.mheight = 190;
  XRRSetMonitor(reader_, root, &left);
  XRRSetMonitor(reader_, root, &right);
  XSync(reader_, False);
  int n = 0;
  XRRMonitorInfo* info = XRRGetMonitors(reader_, root, True, &n);
  int right_index = -1;  // Xvfb keeps its own whole-screen monitor besides the two defined here
  for (int i = 0; i < n; ++i)
    if (info[i].x == 400 && info[i].width == 624) right_index = i;
  XRRFreeMonitors(info);
  ASSERT_GE(right_index, 0) << "Xvfb did not accept the monitor layout";

  DisplaySlmOptions o = options();
  o.monitor = right_index;
  DisplaySlm slm(o, clock_);
  ASSERT_FALSE(slm.open());
  EXPECT_EQ(slm.geometry().x, 400);
  EXPECT_EQ(slm.geometry().y, 0);
  ASSERT_EQ(slm.width_px(), 624);
  ASSERT_EQ(slm.height_px(), 768);
  std::mt19937_64 rng(11);
  const cv::Mat p = random_pattern(624, 768, rng);
  ASSERT_FALSE(slm.show(p));
  EXPECT_EQ(cv::countNonZero(read_levels(400, 0, 624, 768) != p), 0);
  EXPECT_EQ(cv::countNonZero(read_levels(0, 0, 400, 768)), 0) << "the other monitor must stay untouched (black)";

  o.monitor = n;
  DisplaySlm missing(o, clock_);
  auto e = missing.open();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, DeviceErrc::invalid_argument);
  EXPECT_NE(e->message.find("has " + std::to_string(n) + " monitor(s), no monitor " + std::to_string(n)),
            std::string::npos)
      << e->message;
}

TEST_F(DisplaySlmTest, RefusesWrongSizesAndSixteenBitLevels) {
  DisplaySlm slm(options(), clock_);
  ASSERT_FALSE(slm.open());
  auto e = slm.show(cv::Mat(768, 1023, CV_8UC1, cv::Scalar(1)));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, DeviceErrc::invalid_argument);
  EXPECT_EQ(e->message, "slm 'xvfb-slm': pattern is 1023x768, the SLM is 1024x768 (patterns are never resampled)");
  e = slm.show(cv::Mat(768, 1024, CV_16UC1, cv::Scalar(1)));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, DeviceErrc::invalid_argument);
  e = slm.show(cv::Mat(768, 1024, CV_8UC3));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, DeviceErrc::invalid_argument);

  DisplaySlmOptions o = options();
  o.width_px = 1920;
  o.height_px = 1080;
  DisplaySlm wrong(o, clock_);
  e = wrong.open();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message, "slm 'xvfb-slm': monitor 0 is 1024x768, configured 1920x1080");
}

TEST_F(DisplaySlmTest, WaitsTheSettleTimeOnTheInjectedClock) {
  DisplaySlmOptions o = options();
  o.settle_time_ms = 12.5;
  DisplaySlm slm(o, clock_);
  ASSERT_FALSE(slm.open());
  ASSERT_FALSE(slm.show(cv::Mat(768, 1024, CV_8UC1, cv::Scalar(3))));
  ASSERT_FALSE(slm.show(cv::Mat(768, 1024, CV_8UC1, cv::Scalar(4))));
  EXPECT_NEAR(clock_.slept_s(), 0.025, 1e-9);
}

TEST_F(DisplaySlmTest, KilledServerMeansDisconnectedNotExit) {
  DisplaySlm slm(options(), clock_);
  ASSERT_FALSE(slm.open());
  ASSERT_FALSE(slm.show(cv::Mat(768, 1024, CV_8UC1, cv::Scalar(9))));
  XCloseDisplay(reader_);
  reader_ = nullptr;
  xvfb_->process().kill(SIGKILL);
  server_killed_ = true;
  auto e = slm.show(cv::Mat(768, 1024, CV_8UC1, cv::Scalar(10)));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, DeviceErrc::disconnected);
  EXPECT_EQ(slm.state(), DeviceState::disconnected);
  e = slm.show(cv::Mat(768, 1024, CV_8UC1, cv::Scalar(11)));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, DeviceErrc::disconnected);
  e = slm.open();  // reconnecting to a dead display fails cleanly too
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, DeviceErrc::disconnected);
  slm.close();
  EXPECT_EQ(slm.state(), DeviceState::disconnected);
}

TEST(DisplaySlm, MissingDisplayIsDisconnected) {
  ManualClock clock;
  DisplaySlmOptions o;
  o.display = ":65000";  // no server listens there
  DisplaySlm slm(o, clock);
  auto e = slm.open();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, DeviceErrc::disconnected);
  EXPECT_EQ(e->message, "slm 'display': cannot open X display ':65000'");
}

TEST(DisplaySlm, ValidateNamesTheField) {
  DisplaySlmOptions o;
  o.monitor = -2;
  EXPECT_EQ(o.validate(), "display.monitor must be >= 0, got -2");
  o = {};
  o.pixel_pitch_um = 0;
  EXPECT_EQ(o.validate(), "display.pixel_pitch_um must be > 0, got 0");
}

}  // namespace
}  // namespace hilo::drivers
