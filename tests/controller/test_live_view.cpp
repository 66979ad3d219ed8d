// PreviewTap (rate limit, latest only, statistics, downsampling) and the live view's answers without a
// browser: methods, token, paths. hilod with a page in Chromium: test_live_view.py.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "hilo/controller/live_view.hpp"
#include "hilo/controller/preview.hpp"

#include "fakes.hpp"

namespace {

using namespace hilo::controller;
namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("hilo_live_view_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

TEST(PreviewTap, KeepsTheLatestAndRateLimitsOffers) {
  PreviewOptions o;
  o.max_per_s = 20;  // one accepted offer per 50 ms
  PreviewTap tap(o);
  EXPECT_EQ(tap.snapshot(PreviewSource::frame).version, 0u);
  cv::Mat a(8, 8, CV_8UC1, cv::Scalar(10)), b(8, 8, CV_8UC1, cv::Scalar(20));
  tap.offer(PreviewSource::frame, a, 8);
  tap.offer(PreviewSource::frame, b, 8);  // within 50 ms: dropped
  auto s = tap.snapshot(PreviewSource::frame);
  EXPECT_EQ(s.version, 1u);
  EXPECT_EQ(s.mean, 10);
  EXPECT_EQ(tap.counters(PreviewSource::frame).dropped_rate, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  tap.offer(PreviewSource::frame, b, 8);
  s = tap.snapshot(PreviewSource::frame);
  EXPECT_EQ(s.version, 2u);
  EXPECT_EQ(s.mean, 20);
  EXPECT_EQ(tap.version(PreviewSource::input_slm), 0u);  // sources are independent
}

// Every frame the tap takes is shown next to the input pattern it was grabbed under, even when the
// input's own offers are rate-limited away (the fake camera's frame is 3 · pattern + 7).
TEST(PreviewCamera, PairsEachTakenFrameWithTheInputShownBeforeIt) {
  PreviewOptions o;
  o.max_per_s = 50;
  PreviewTap tap(o);
  hilo::controller::testing::FakeSlm slm;
  hilo::controller::testing::FakeCamera cam(slm);
  PreviewSlm pslm(slm, tap, PreviewSource::input_slm);
  PreviewCamera pcam(cam, tap, &pslm);
  std::uint64_t seen = 0, checked = 0;
  for (int k = 0; k < 60; ++k) {
    ASSERT_FALSE(pslm.show(cv::Mat(slm.rows, slm.cols, CV_8UC1, cv::Scalar(k + 1))));
    ASSERT_TRUE(pcam.grab(std::chrono::milliseconds(100)));
    if (tap.version(PreviewSource::frame) != seen) {
      seen = tap.version(PreviewSource::frame);
      const auto f = tap.snapshot(PreviewSource::frame);
      const auto in = tap.snapshot(PreviewSource::input_slm);
      const cv::Mat px = cv::imdecode(std::vector<std::uint8_t>(in.png.begin(), in.png.end()), cv::IMREAD_UNCHANGED);
      ASSERT_FALSE(px.empty());
      EXPECT_EQ(f.mean, 3.0 * px.at<std::uint8_t>(0, 0) + 7.0) << "frame " << seen << " shown beside another input";
      ++checked;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(7));
  }
  EXPECT_GE(checked, 3u);
}

TEST(PreviewTap, FrameStatisticsCountSaturationAtTheBitDepthsFullScale) {
  PreviewOptions o;
  o.histogram_bins = 16;
  PreviewTap tap(o);
  cv::Mat f(10, 10, CV_16UC1, cv::Scalar(100));
  f.at<std::uint16_t>(0, 0) = 4095;  // 12-bit full scale
  f.at<std::uint16_t>(0, 1) = 4095;
  f.at<std::uint16_t>(0, 2) = 4094;
  tap.offer(PreviewSource::frame, f, 12);
  const auto s = tap.snapshot(PreviewSource::frame);
  EXPECT_EQ(s.saturated, 2u);
  EXPECT_EQ(s.max, 4095);
  EXPECT_EQ(s.min, 100);
  ASSERT_EQ(s.histogram.size(), 16u);
  EXPECT_EQ(std::accumulate(s.histogram.begin(), s.histogram.end(), std::uint64_t{0}), 100u);
  EXPECT_EQ(s.histogram[0], 97u);   // 100 / 256 per bin
  EXPECT_EQ(s.histogram[15], 3u);
  const cv::Mat png = cv::imdecode(std::vector<std::uint8_t>(s.png.begin(), s.png.end()), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(png.type(), CV_8UC1);
  EXPECT_EQ(png.at<std::uint8_t>(0, 0), 255);  // saturated shows white
}

TEST(PreviewTap, DownsamplesLargeImagesAndEncodesEachVersionOnce) {
  PreviewTap tap;
  cv::Mat big(2000, 1000, CV_8UC1, cv::Scalar(7));
  tap.offer(PreviewSource::input_slm, big, 8);
  const auto s1 = tap.snapshot(PreviewSource::input_slm);
  const auto s2 = tap.snapshot(PreviewSource::input_slm);
  EXPECT_EQ(s1.png, s2.png);
  EXPECT_EQ(tap.counters(PreviewSource::input_slm).encoded, 1u);
  const cv::Mat png = cv::imdecode(std::vector<std::uint8_t>(s1.png.begin(), s1.png.end()), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(png.rows, 512);
  EXPECT_EQ(png.cols, 256);
  EXPECT_EQ(s1.rows, 2000);
  EXPECT_TRUE(s1.histogram.empty());  // statistics are for frames
}

TEST(PreviewTap, IgnoresUnsupportedImagesAndRejectsBadOptions) {
  PreviewTap tap;
  tap.offer(PreviewSource::frame, cv::Mat(4, 4, CV_32FC1, cv::Scalar(1)), 8);
  EXPECT_EQ(tap.version(PreviewSource::frame), 0u);
  PreviewOptions o;
  o.max_per_s = 0;
  EXPECT_EQ(o.validate(), "preview.max_per_s must be in (0, 100], got 0.000000");
  EXPECT_THROW(PreviewTap{o}, std::invalid_argument);
}

TEST(LiveViewOptions, NonLoopbackNeedsATokenFile) {
  LiveViewOptions o;
  EXPECT_EQ(o.validate(), "");  // off
  o.endpoint = "0.0.0.0:8080";
  EXPECT_EQ(o.validate(), "--http-endpoint '0.0.0.0:8080' is not loopback; a non-loopback bind requires --http-token-file");
  o.token_file = "token";
  EXPECT_EQ(o.validate(), "");
  o.endpoint = "[::1]:0";
  o.token_file.clear();
  EXPECT_EQ(o.validate(), "");
  o.endpoint = "127.0.0.1";
  EXPECT_EQ(o.validate(), "--http-endpoint: expected HOST:PORT, got '127.0.0.1'");
  o.endpoint = "127.0.0.1:70000";
  EXPECT_EQ(o.validate(), "--http-endpoint: port must be a number in [0, 65535], got '70000'");
}

TEST(LiveView, AnswersOnlyReadsAndConfinesReportPaths) {
  TempDir dir;
  fs::create_directories(dir.path / "run1");
  std::ofstream(dir.path / "run1" / "report.json") << "{}";
  std::ofstream(dir.path / "run1" / "fig.png") << "png";
  std::ofstream(dir.path / "secret.png") << "secret";
  PreviewTap tap;
  LiveViewOptions o;
  o.endpoint = "127.0.0.1:0";
  LiveView v(o, {tap, dir.path, {}});
  EXPECT_EQ(v.respond("POST", "/", "").status, 405);
  EXPECT_EQ(v.respond("DELETE", "/api/state", "").status, 405);
  EXPECT_EQ(v.respond("GET", "/", "").status, 200);
  EXPECT_EQ(v.respond("GET", "/preview/frame.png", "").status, 404);  // nothing offered yet
  EXPECT_EQ(v.respond("GET", "/preview/other.png", "").status, 404);
  EXPECT_TRUE(v.respond("GET", "/events", "").event_stream);
  const auto fig = v.respond("GET", "/report/run1/fig.png", "");
  EXPECT_EQ(fig.status, 200);
  EXPECT_EQ(fig.body, "png");
  EXPECT_EQ(v.respond("GET", "/report/run1/../secret.png", "").status, 403);
  EXPECT_EQ(v.respond("GET", "/report/run1/%2E%2E/secret.png", "").status, 403);
  EXPECT_EQ(v.respond("GET", "/report/secret.png", "").status, 404);  // not beside a report.json
  EXPECT_EQ(v.respond("GET", "/report/run1/report.json", "").status, 404);
  tap.offer(PreviewSource::frame, cv::Mat(4, 4, CV_8UC1, cv::Scalar(3)), 8);
  const auto png = v.respond("HEAD", "/preview/frame.png?v=1", "");
  EXPECT_EQ(png.status, 200);
  EXPECT_EQ(png.content_type, "image/png");
}

// A live view on 127.0.0.1:0 whose token file holds `token`.
struct TokenView {
  TempDir dir;
  PreviewTap tap;
  std::unique_ptr<LiveView> view;
  explicit TokenView(const std::string& token) {
    std::ofstream(dir.path / "token") << token << "\n";
    LiveViewOptions o;
    o.endpoint = "127.0.0.1:0";
    o.token_file = dir.path / "token";
    view = std::make_unique<LiveView>(o, LiveView::Sources{tap, dir.path, {}});
  }
};

TEST(LiveView, WithATokenEveryRequestNeedsIt) {
  TokenView t("0123456789abcdef-token");
  auto& v = *t.view;
  v.start();
  EXPECT_TRUE(v.url().starts_with("http://127.0.0.1:"));
  EXPECT_EQ(v.respond("GET", "/", "").status, 401);
  EXPECT_EQ(v.respond("GET", "/?token=0123456789abcdef-tokeX", "").status, 401);
  EXPECT_EQ(v.respond("GET", "/?token=0123456789abcdef-token", "").status, 200);
  EXPECT_EQ(v.respond("GET", "/", "Bearer 0123456789abcdef-token").status, 200);
  EXPECT_EQ(v.respond("GET", "/", "Basic 0123456789abcdef-token").status, 401);
  EXPECT_EQ(v.respond("POST", "/?token=0123456789abcdef-token", "").status, 405);
  v.stop();
}

TEST(LiveView, ShortTokenFileIsRefusedAtStart) {
  TokenView t("short");
  try {
    t.view->start();
    FAIL() << "started with a 5-character token";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("at least 16 characters"), std::string::npos) << e.what();
  }
}

}  // namespace
