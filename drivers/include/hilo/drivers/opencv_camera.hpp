#pragma once
// Camera over any cv::VideoCapture source: a V4L2 device, a GStreamer pipeline, a video file or an
// image sequence.
//
// Source kinds (OpenCvCameraOptions::source):
//   "0", "1", ...        V4L2 device index (cv::CAP_V4L2)
//   "/dev/videoN"        V4L2 device node (cv::CAP_V4L2)
//   "... ! ... appsink"  GStreamer pipeline (contains '!'; cv::CAP_GSTREAMER), must end in appsink
//   "dir/frame_%04d.png" image sequence (contains a printf '%'; cv::CAP_IMAGES), numbered from the
//                        first file that exists (OpenCV searches 0..) and read in order
//   anything else        a video file (cv::CAP_ANY, FFmpeg or GStreamer)
//
// Frame conversion to the selected pixel format (frames are always single-channel):
//   3-channel BGR / 4-channel BGRA → grey with cv::COLOR_BGR(A)2GRAY (BT.601 weights, exact for R=G=B)
//   8-bit → mono8 as is; 8-bit → mono16 as v·257 (0 → 0, 255 → 65535, full scale kept)
//   16-bit → mono16 as is; 16-bit → mono8 as v >> 8; mono12 is refused (no 12-bit VideoCapture source)
//
// Live sources (V4L2, GStreamer) run free; grab() returns the next frame the source delivers and
// software trigger is refused. File sources (video, image sequence) deliver one frame per grab(), so
// both trigger modes read the next frame on demand. Exposure and gain are controllable only on V4L2
// (CAP_PROP_EXPOSURE in 100 µs units, CAP_PROP_GAIN as the driver's raw value taken as dB); other
// sources refuse them with invalid_argument.
//
// Errors: a source that cannot be opened → io (file, pipeline) or disconnected (V4L2). The end of a
// file source → io "end of stream after N frames" and state fault (close()+open() rewinds). A live
// source that stops → disconnected. grab(timeout) reads on a worker thread: when the read outlasts
// the timeout, timeout is returned and the frame, when it arrives, is handed to the next grab().
// close() waits for a read in flight to end.
#include <atomic>
#include <future>
#include <memory>
#include <string>

#include "hilo/drivers/camera.hpp"

namespace cv {
class VideoCapture;
}

namespace hilo::drivers {

struct OpenCvCameraOptions {
  std::string name = "opencv";
  std::string source;  // see the header comment
  PixelFormat pixel_format = PixelFormat::mono8;

  // Empty when valid, else the violated rule, e.g. "opencv.source must not be empty".
  [[nodiscard]] std::string validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(OpenCvCameraOptions, name, source, pixel_format)

enum class OpenCvSourceKind { v4l2, gstreamer, image_sequence, video_file };
OpenCvSourceKind classify_source(const std::string& source);

class OpenCvCamera final : public Camera {
 public:
  explicit OpenCvCamera(OpenCvCameraOptions options);  // options must validate()
  ~OpenCvCamera() override;
  OpenCvCamera(const OpenCvCamera&) = delete;
  OpenCvCamera& operator=(const OpenCvCamera&) = delete;

  std::string name() const override { return options_.name; }
  int width_px() const override { return width_; }   // 0 until opened
  int height_px() const override { return height_; }  // 0 until opened
  DeviceState state() const override { return state_.load(); }
  DeviceStatus open() override;
  void close() override;

  PixelFormat pixel_format() const override { return options_.pixel_format; }
  DeviceStatus set_pixel_format(PixelFormat f) override;
  double exposure_ms() const override { return exposure_ms_; }
  DeviceStatus set_exposure_ms(double ms) override;
  double gain_db() const override { return gain_db_; }
  DeviceStatus set_gain_db(double db) override;
  TriggerMode trigger_mode() const override { return trigger_; }
  DeviceStatus set_trigger_mode(TriggerMode m) override;
  DeviceResult<Frame> grab(std::chrono::milliseconds timeout) override;

  OpenCvSourceKind source_kind() const { return kind_; }

 private:
  struct ReadResult;
  DeviceError error(DeviceErrc code, const std::string& what) const;
  bool live() const { return kind_ == OpenCvSourceKind::v4l2 || kind_ == OpenCvSourceKind::gstreamer; }

  OpenCvCameraOptions options_;
  OpenCvSourceKind kind_;
  std::unique_ptr<cv::VideoCapture> cap_;
  std::future<std::shared_ptr<ReadResult>> pending_;
  std::atomic<DeviceState> state_{DeviceState::disconnected};
  int width_ = 0;
  int height_ = 0;
  double exposure_ms_ = 0.0;
  double gain_db_ = 0.0;
  TriggerMode trigger_ = TriggerMode::free_run;
  std::uint64_t frames_read_ = 0;
};

}  // namespace hilo::drivers
