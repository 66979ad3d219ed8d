#include "hilo/drivers/opencv_camera.hpp"

#include <cctype>
#include <chrono>
#include <filesystem>

#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

namespace hilo::drivers {

namespace {

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

double seconds_since_start() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

struct OpenCvCamera::ReadResult {
  bool ok = false;
  cv::Mat image;
  double pos_ms = 0.0;
  double host_time_s = 0.0;
};

std::string OpenCvCameraOptions::validate() const {
  if (name.empty()) return "opencv.name must not be empty";
  if (source.empty()) return "opencv.source must not be empty";
  if (pixel_format == PixelFormat::mono12)
    return "opencv.pixel_format must be mono8 or mono16, got mono12";
  if (classify_source(source) == OpenCvSourceKind::gstreamer &&
      source.find("appsink") == std::string::npos)
    return "opencv.source: a GStreamer pipeline must end in appsink, got '" + source + "'";
  return {};
}

OpenCvSourceKind classify_source(const std::string& source) {
  if (all_digits(source) || source.rfind("/dev/video", 0) == 0) return OpenCvSourceKind::v4l2;
  if (source.find('!') != std::string::npos) return OpenCvSourceKind::gstreamer;
  if (source.find('%') != std::string::npos) return OpenCvSourceKind::image_sequence;
  return OpenCvSourceKind::video_file;
}

OpenCvCamera::OpenCvCamera(OpenCvCameraOptions options)
    : options_(std::move(options)), kind_(classify_source(options_.source)) {}

OpenCvCamera::~OpenCvCamera() { close(); }

DeviceError OpenCvCamera::error(DeviceErrc code, const std::string& what) const {
  return {code, "camera '" + options_.name + "': " + what};
}

DeviceStatus OpenCvCamera::open() {
  if (cap_) return std::nullopt;
  auto cap = std::make_unique<cv::VideoCapture>();
  bool opened = false;
  switch (kind_) {
    case OpenCvSourceKind::v4l2:
      opened = all_digits(options_.source) ? cap->open(std::stoi(options_.source), cv::CAP_V4L2)
                                           : cap->open(options_.source, cv::CAP_V4L2);
      if (!opened) return error(DeviceErrc::disconnected, "cannot open V4L2 device '" + options_.source + "'");
      break;
    case OpenCvSourceKind::gstreamer:
      opened = cap->open(options_.source, cv::CAP_GSTREAMER);
      if (!opened) return error(DeviceErrc::io, "cannot start GStreamer pipeline '" + options_.source + "'");
      break;
    case OpenCvSourceKind::image_sequence:
      opened = cap->open(options_.source, cv::CAP_IMAGES);
      if (!opened)
        return error(DeviceErrc::io, "no image of the sequence '" + options_.source + "' exists");
      break;
    case OpenCvSourceKind::video_file:
      if (!std::filesystem::exists(options_.source))
        return error(DeviceErrc::io, "video file '" + options_.source + "' does not exist");
      opened = cap->open(options_.source, cv::CAP_ANY);
      if (!opened) return error(DeviceErrc::io, "cannot decode video file '" + options_.source + "'");
      break;
  }
  width_ = static_cast<int>(cap->get(cv::CAP_PROP_FRAME_WIDTH));
  height_ = static_cast<int>(cap->get(cv::CAP_PROP_FRAME_HEIGHT));
  cap_ = std::move(cap);
  frames_read_ = 0;
  state_ = DeviceState::ready;
  return std::nullopt;
}

void OpenCvCamera::close() {
  if (pending_.valid()) pending_.wait();
  pending_ = {};
  if (cap_) cap_->release();
  cap_.reset();
  state_ = DeviceState::disconnected;
}

DeviceStatus OpenCvCamera::set_pixel_format(PixelFormat f) {
  if (f == PixelFormat::mono12)
    return error(DeviceErrc::invalid_argument, "mono12 is not offered; choose mono8 or mono16");
  options_.pixel_format = f;
  return std::nullopt;
}

DeviceStatus OpenCvCamera::set_exposure_ms(double ms) {
  if (!(ms > 0.0)) return error(DeviceErrc::invalid_argument, "exposure must be > 0 ms, got " + std::to_string(ms));
  if (kind_ != OpenCvSourceKind::v4l2)
    return error(DeviceErrc::invalid_argument, "exposure is not controllable on a file or pipeline source");
  if (!cap_) return error(DeviceErrc::disconnected, "set exposure on a closed device");
  if (!cap_->set(cv::CAP_PROP_EXPOSURE, ms * 10.0))
    return error(DeviceErrc::io, "the V4L2 driver refused exposure " + std::to_string(ms) + " ms");
  exposure_ms_ = ms;
  return std::nullopt;
}

DeviceStatus OpenCvCamera::set_gain_db(double db) {
  if (kind_ != OpenCvSourceKind::v4l2)
    return error(DeviceErrc::invalid_argument, "gain is not controllable on a file or pipeline source");
  if (!cap_) return error(DeviceErrc::disconnected, "set gain on a closed device");
  if (!cap_->set(cv::CAP_PROP_GAIN, db))
    return error(DeviceErrc::io, "the V4L2 driver refused gain " + std::to_string(db));
  gain_db_ = db;
  return std::nullopt;
}

DeviceStatus OpenCvCamera::set_trigger_mode(TriggerMode m) {
  if (m == TriggerMode::software && live())
    return error(DeviceErrc::invalid_argument, "a live VideoCapture source has no software trigger");
  trigger_ = m;
  return std::nullopt;
}

DeviceResult<Frame> OpenCvCamera::grab(std::chrono::milliseconds timeout) {
  if (!cap_) return error(DeviceErrc::disconnected, "grab on a closed device");
  if (state_ == DeviceState::fault)
    return error(DeviceErrc::io, "end of stream after " + std::to_string(frames_read_) +
                                     " frames (close and open to rewind)");
  if (!pending_.valid()) {
    cv::VideoCapture* cap = cap_.get();
    pending_ = std::async(std::launch::async, [cap] {
      auto r = std::make_shared<ReadResult>();
      r->ok = cap->read(r->image);
      r->pos_ms = cap->get(cv::CAP_PROP_POS_MSEC);
      r->host_time_s = seconds_since_start();
      return r;
    });
  }
  state_ = DeviceState::busy;
  if (pending_.wait_for(timeout) != std::future_status::ready) {
    state_ = DeviceState::ready;
    return error(DeviceErrc::timeout, "grab timed out after " + std::to_string(timeout.count()) + " ms");
  }
  std::shared_ptr<ReadResult> r = pending_.get();
  if (!r->ok || r->image.empty()) {
    if (live()) {
      state_ = DeviceState::disconnected;
      return error(DeviceErrc::disconnected,
                   "source '" + options_.source + "' stopped after " + std::to_string(frames_read_) + " frames");
    }
    state_ = DeviceState::fault;
    return error(DeviceErrc::io, "end of stream after " + std::to_string(frames_read_) +
                                     " frames (close and open to rewind)");
  }
  cv::Mat grey;
  switch (r->image.channels()) {
    case 1: grey = r->image; break;
    case 3: cv::cvtColor(r->image, grey, cv::COLOR_BGR2GRAY); break;
    case 4: cv::cvtColor(r->image, grey, cv::COLOR_BGRA2GRAY); break;
    default:
      state_ = DeviceState::ready;
      return error(DeviceErrc::corrupt_frame,
                   "frame has " + std::to_string(r->image.channels()) + " channels, expected 1, 3 or 4");
  }
  cv::Mat out;
  const int depth = grey.depth();
  if (depth != CV_8U && depth != CV_16U) {
    state_ = DeviceState::ready;
    return error(DeviceErrc::corrupt_frame, "frame depth is neither 8 nor 16 bit");
  }
  if (options_.pixel_format == PixelFormat::mono8) {
    if (depth == CV_8U) {
      out = grey.clone();
    } else {  // v >> 8 exactly (convertTo would round)
      out.create(grey.size(), CV_8UC1);
      for (int y = 0; y < grey.rows; ++y) {
        const auto* src = grey.ptr<std::uint16_t>(y);
        auto* dst = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < grey.cols; ++x) dst[x] = static_cast<std::uint8_t>(src[x] >> 8);
      }
    }
  } else {
    if (depth == CV_16U) out = grey.clone();
    else grey.convertTo(out, CV_16U, 257.0);
  }
  width_ = out.cols;
  height_ = out.rows;
  Frame f;
  f.image = out;
  f.sequence = frames_read_++;
  f.timestamp_s = r->pos_ms > 0.0 ? r->pos_ms * 1e-3 : r->host_time_s;
  state_ = DeviceState::ready;
  return f;
}

}  // namespace hilo::drivers
