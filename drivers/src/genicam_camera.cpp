#include "hilo/drivers/genicam_camera.hpp"

#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>

#include <arv.h>

namespace hilo::drivers {

namespace {

// Takes a GError's message and frees it.
std::string take_message(GError* e) {
  if (e == nullptr) return {};
  std::string m = e->message ? e->message : "unknown Aravis error";
  g_error_free(e);
  return m;
}

ArvPixelFormat to_arv(PixelFormat f) {
  switch (f) {
    case PixelFormat::mono8: return ARV_PIXEL_FORMAT_MONO_8;
    case PixelFormat::mono12: return ARV_PIXEL_FORMAT_MONO_12;
    case PixelFormat::mono16: return ARV_PIXEL_FORMAT_MONO_16;
  }
  return ARV_PIXEL_FORMAT_MONO_8;
}

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void on_control_lost(ArvDevice*, gpointer flag) { static_cast<std::atomic<bool>*>(flag)->store(true); }

}  // namespace

struct GenicamCamera::Arv {
  ArvCamera* camera = nullptr;
  ArvStream* stream = nullptr;
  gulong control_lost_handler = 0;
};

std::string GenicamCameraOptions::validate() const {
  std::ostringstream m;
  if (name.empty()) return "genicam.name must not be empty";
  if (device_id.empty() == address.empty())
    return "genicam: set exactly one of genicam.device_id (discovery) and genicam.address (direct)";
  if (!address.empty() && !g_hostname_is_ip_address(address.c_str()))
    return "genicam.address must be an IPv4 address, got '" + address + "'";
  if (!address.empty() && !g_hostname_is_ip_address(interface_address.c_str()))
    return "genicam.interface_address must be an IPv4 address, got '" + interface_address + "'";
  if (!(exposure_ms > 0.0)) m << "genicam.exposure_ms must be > 0, got " << exposure_ms;
  else if (!std::isfinite(gain_db)) m << "genicam.gain_db must be finite, got " << gain_db;
  else if (!(frame_rate_hz >= 0.0)) m << "genicam.frame_rate_hz must be >= 0 (0 = device setting), got " << frame_rate_hz;
  else if (buffer_count < 2 || buffer_count > 256) m << "genicam.buffer_count must be in [2, 256], got " << buffer_count;
  return m.str();
}

GenicamCamera::GenicamCamera(GenicamCameraOptions options) : options_(std::move(options)) {}

GenicamCamera::~GenicamCamera() { close(); }

DeviceError GenicamCamera::error(DeviceErrc code, const std::string& what) const {
  return {code, "camera '" + options_.name + "': " + what};
}

DeviceState GenicamCamera::state() const {
  if (arv_ && control_lost_) return DeviceState::disconnected;
  return state_;
}

DeviceStatus GenicamCamera::open() {
  if (arv_ && !control_lost_) return std::nullopt;
  if (arv_) close();
  GError* err = nullptr;
  ArvCamera* cam = nullptr;
  if (options_.address.empty()) {
    cam = arv_camera_new(options_.device_id.c_str(), &err);
    if (cam == nullptr)
      return error(DeviceErrc::disconnected,
                   "no GenICam device '" + options_.device_id + "' (" + take_message(err) + ")");
  } else {
    GInetAddress* local = g_inet_address_new_from_string(options_.interface_address.c_str());
    GInetAddress* remote = g_inet_address_new_from_string(options_.address.c_str());
    ArvDevice* dev = arv_gv_device_new(local, remote, &err);
    g_object_unref(local);
    g_object_unref(remote);
    if (dev == nullptr)
      return error(DeviceErrc::disconnected, "no GigE Vision device answers at " + options_.address + " (" +
                                                 take_message(err) + ")");
    cam = arv_camera_new_with_device(dev, &err);
    g_object_unref(dev);  // the camera holds its own reference
    if (cam == nullptr)
      return error(DeviceErrc::io, "device at " + options_.address + " is not a usable camera (" + take_message(err) + ")");
  }
  arv_ = std::make_unique<Arv>();
  arv_->camera = cam;
  control_lost_ = false;
  arv_->control_lost_handler = g_signal_connect(arv_camera_get_device(cam), "control-lost",
                                                G_CALLBACK(on_control_lost), &control_lost_);
  DeviceStatus s = apply_pixel_format(options_.pixel_format);
  if (!s) s = apply_exposure(options_.exposure_ms);
  if (!s) s = apply_gain(options_.gain_db);
  if (!s && options_.frame_rate_hz > 0.0) {
    arv_camera_set_frame_rate(cam, options_.frame_rate_hz, &err);
    if (err) s = error(DeviceErrc::invalid_argument, "frame rate " + fmt(options_.frame_rate_hz) + " Hz refused: " + take_message(err));
  }
  if (!s) s = apply_trigger(options_.trigger);
  if (!s) s = start_stream();
  if (s) {
    close();
    return s;
  }
  state_ = DeviceState::ready;
  return std::nullopt;
}

void GenicamCamera::close() {
  if (!arv_) return;
  if (arv_->control_lost_handler != 0)
    g_signal_handler_disconnect(arv_camera_get_device(arv_->camera), arv_->control_lost_handler);
  if (control_lost_) {
    // Finalising the stream and device of a dead camera sends GVCP commands (stream channel reset,
    // leave control) that Aravis retries for seconds each; release them off the caller's thread so
    // close() and a reopen attempt stay prompt.
    std::thread([stream = arv_->stream, cam = arv_->camera] {
      if (stream) g_object_unref(stream);
      g_object_unref(cam);
    }).detach();
  } else {
    stop_stream();
    g_object_unref(arv_->camera);
  }
  arv_.reset();
  state_ = DeviceState::disconnected;
}

DeviceStatus GenicamCamera::start_stream() {
  GError* err = nullptr;
  gint x = 0, y = 0, w = 0, h = 0;
  arv_camera_get_region(arv_->camera, &x, &y, &w, &h, &err);
  if (err) return error(DeviceErrc::io, "reading the region failed: " + take_message(err));
  const guint payload = arv_camera_get_payload(arv_->camera, &err);
  if (err) return error(DeviceErrc::io, "reading the payload size failed: " + take_message(err));
  arv_camera_set_acquisition_mode(arv_->camera, ARV_ACQUISITION_MODE_CONTINUOUS, &err);
  if (err) return error(DeviceErrc::io, "continuous acquisition refused: " + take_message(err));
  arv_->stream = arv_camera_create_stream(arv_->camera, nullptr, nullptr, &err);
  if (arv_->stream == nullptr) return error(DeviceErrc::io, "cannot create the stream: " + take_message(err));
  for (int i = 0; i < options_.buffer_count; ++i) arv_stream_push_buffer(arv_->stream, arv_buffer_new(payload, nullptr));
  arv_camera_start_acquisition(arv_->camera, &err);
  if (err) return error(DeviceErrc::io, "cannot start acquisition: " + take_message(err));
  width_ = w;
  height_ = h;
  return std::nullopt;
}

void GenicamCamera::stop_stream() {
  if (!arv_ || arv_->stream == nullptr) return;
  GError* err = nullptr;
  arv_camera_stop_acquisition(arv_->camera, &err);
  take_message(err);  // a device that cannot stop is dropped with its stream either way
  g_object_unref(arv_->stream);
  arv_->stream = nullptr;
}

DeviceStatus GenicamCamera::apply_pixel_format(PixelFormat f) {
  GError* err = nullptr;
  guint n = 0;
  gint64* formats = arv_camera_dup_available_pixel_formats(arv_->camera, &n, &err);
  if (err) return error(DeviceErrc::io, "listing pixel formats failed: " + take_message(err));
  bool offered = false;
  for (guint i = 0; i < n; ++i) offered = offered || formats[i] == static_cast<gint64>(to_arv(f));
  g_free(formats);
  if (!offered)
    return error(DeviceErrc::invalid_argument, "pixel format " + std::string(to_string(f)) + " is not offered by the device");
  arv_camera_set_pixel_format(arv_->camera, to_arv(f), &err);
  if (err) return error(DeviceErrc::io, "setting pixel format failed: " + take_message(err));
  return std::nullopt;
}

DeviceStatus GenicamCamera::apply_exposure(double ms) {
  GError* err = nullptr;
  double lo = 0.0, hi = 0.0;
  arv_camera_get_exposure_time_bounds(arv_->camera, &lo, &hi, &err);
  if (err) return error(DeviceErrc::io, "reading exposure bounds failed: " + take_message(err));
  const double us = ms * 1000.0;
  if (us < lo || us > hi)
    return error(DeviceErrc::invalid_argument,
                 "exposure " + fmt(ms) + " ms outside the device range [" + fmt(lo / 1000.0) + ", " + fmt(hi / 1000.0) + "] ms");
  arv_camera_set_exposure_time(arv_->camera, us, &err);
  if (err) return error(DeviceErrc::io, "setting exposure failed: " + take_message(err));
  return std::nullopt;
}

DeviceStatus GenicamCamera::apply_gain(double db) {
  GError* err = nullptr;
  double lo = 0.0, hi = 0.0;
  arv_camera_get_gain_bounds(arv_->camera, &lo, &hi, &err);
  if (err) return error(DeviceErrc::io, "reading gain bounds failed: " + take_message(err));
  if (db < lo || db > hi)
    return error(DeviceErrc::invalid_argument, "gain " + fmt(db) + " dB outside the device range [" + fmt(lo) + ", " + fmt(hi) + "] dB");
  arv_camera_set_gain(arv_->camera, db, &err);
  if (err) return error(DeviceErrc::io, "setting gain failed: " + take_message(err));
  return std::nullopt;
}

DeviceStatus GenicamCamera::apply_trigger(TriggerMode m) {
  GError* err = nullptr;
  if (m == TriggerMode::software) {
    if (!arv_camera_is_software_trigger_supported(arv_->camera, &err))
      return error(DeviceErrc::invalid_argument, "the device has no software trigger" +
                                                     (err ? " (" + take_message(err) + ")" : std::string()));
    arv_camera_set_trigger(arv_->camera, "Software", &err);
  } else {
    arv_camera_clear_triggers(arv_->camera, &err);
  }
  if (err) return error(DeviceErrc::io, "setting the trigger mode failed: " + take_message(err));
  return std::nullopt;
}

DeviceStatus GenicamCamera::set_pixel_format(PixelFormat f) {
  if (!arv_) {
    options_.pixel_format = f;  // applied by open()
    return std::nullopt;
  }
  if (control_lost_) return error(DeviceErrc::disconnected, "control of the device was lost");
  stop_stream();
  DeviceStatus s = apply_pixel_format(f);
  DeviceStatus restart = start_stream();
  if (s) return s;
  if (restart) return restart;
  options_.pixel_format = f;
  return std::nullopt;
}

DeviceStatus GenicamCamera::set_exposure_ms(double ms) {
  if (!(ms > 0.0)) return error(DeviceErrc::invalid_argument, "exposure must be > 0 ms, got " + fmt(ms));
  if (arv_) {
    if (control_lost_) return error(DeviceErrc::disconnected, "control of the device was lost");
    if (auto s = apply_exposure(ms)) return s;
  }
  options_.exposure_ms = ms;
  return std::nullopt;
}

DeviceStatus GenicamCamera::set_gain_db(double db) {
  if (arv_) {
    if (control_lost_) return error(DeviceErrc::disconnected, "control of the device was lost");
    if (auto s = apply_gain(db)) return s;
  }
  options_.gain_db = db;
  return std::nullopt;
}

DeviceStatus GenicamCamera::set_trigger_mode(TriggerMode m) {
  if (arv_) {
    if (control_lost_) return error(DeviceErrc::disconnected, "control of the device was lost");
    if (auto s = apply_trigger(m)) return s;
  }
  options_.trigger = m;
  return std::nullopt;
}

bool GenicamCamera::device_answers() {
  GError* err = nullptr;
  arv_camera_get_exposure_time(arv_->camera, &err);
  if (err == nullptr) return true;
  take_message(err);
  return false;
}

DeviceResult<Frame> GenicamCamera::grab(std::chrono::milliseconds timeout) {
  if (!arv_ || arv_->stream == nullptr) return error(DeviceErrc::disconnected, "grab on a closed device");
  if (control_lost_) {
    state_ = DeviceState::disconnected;
    return error(DeviceErrc::disconnected, "control of the device was lost");
  }
  // Recycle what was queued before this call, so the frame returned is a fresh one.
  while (ArvBuffer* old = arv_stream_try_pop_buffer(arv_->stream)) {
    arv_stream_push_buffer(arv_->stream, old);
    ++skipped_;
  }
  state_ = DeviceState::busy;
  if (options_.trigger == TriggerMode::software) {
    GError* err = nullptr;
    arv_camera_software_trigger(arv_->camera, &err);
    if (err) {
      const std::string m = take_message(err);
      state_ = device_answers() ? DeviceState::ready : DeviceState::disconnected;
      return error(state_ == DeviceState::disconnected ? DeviceErrc::disconnected : DeviceErrc::io,
                   "software trigger failed: " + m);
    }
  }
  // A buffer with status "cleared" was never filled (Aravis hands such buffers out around a stream start;
  // seen as "frame 0 ... status 1" right after a pixel-format change on a loaded machine): it holds no
  // frame, so it goes back to the pool and the wait goes on until the timeout — it is neither a frame nor
  // a torn one.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ArvBuffer* buf = nullptr;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now());
    buf = arv_stream_timeout_pop_buffer(arv_->stream, static_cast<guint64>(std::max<std::int64_t>(left.count(), 0)));
    if (buf == nullptr || arv_buffer_get_status(buf) != ARV_BUFFER_STATUS_CLEARED) break;
    arv_stream_push_buffer(arv_->stream, buf);
    buf = nullptr;
    ++skipped_;
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  if (buf == nullptr) {
    if (control_lost_ || !device_answers()) {
      control_lost_ = true;  // spares close() the commands a dead device cannot answer
      state_ = DeviceState::disconnected;
      return error(DeviceErrc::disconnected, "no frame within " + std::to_string(timeout.count()) +
                                                 " ms and the device no longer answers");
    }
    state_ = DeviceState::ready;
    return error(DeviceErrc::timeout, "grab timed out after " + std::to_string(timeout.count()) + " ms");
  }
  struct Requeue {  // hands the buffer back to the pool on every path
    ArvStream* s;
    ArvBuffer* b;
    ~Requeue() { arv_stream_push_buffer(s, b); }
  } requeue{arv_->stream, buf};

  state_ = DeviceState::ready;
  const ArvBufferStatus status = arv_buffer_get_status(buf);
  if (status != ARV_BUFFER_STATUS_SUCCESS)
    return error(DeviceErrc::corrupt_frame, "frame " + std::to_string(arv_buffer_get_frame_id(buf)) +
                                                " arrived with Aravis buffer status " + std::to_string(static_cast<int>(status)));
  const int w = arv_buffer_get_image_width(buf);
  const int h = arv_buffer_get_image_height(buf);
  const ArvPixelFormat pf = arv_buffer_get_image_pixel_format(buf);
  int type = -1;
  if (pf == ARV_PIXEL_FORMAT_MONO_8) type = CV_8UC1;
  else if (pf == ARV_PIXEL_FORMAT_MONO_12 || pf == ARV_PIXEL_FORMAT_MONO_16) type = CV_16UC1;
  if (type < 0)
    return error(DeviceErrc::corrupt_frame, "frame has pixel format 0x" + [&] {
      std::ostringstream s;
      s << std::hex << pf;
      return s.str();
    }() + ", expected Mono8/12/16");
  size_t size = 0;
  const void* data = arv_buffer_get_image_data(buf, &size);
  const size_t need = static_cast<size_t>(w) * static_cast<size_t>(h) * (type == CV_8UC1 ? 1u : 2u);
  if (data == nullptr || size < need)
    return error(DeviceErrc::corrupt_frame, "frame payload is " + std::to_string(size) + " bytes, expected " +
                                                std::to_string(need));
  Frame f;
  f.image = cv::Mat(h, w, type, const_cast<void*>(data)).clone();
  f.sequence = arv_buffer_get_frame_id(buf);
  f.timestamp_s = static_cast<double>(arv_buffer_get_timestamp(buf)) * 1e-9;
  f.exposure_timestamp = true;
  width_ = w;
  height_ = h;
  return f;
}

}  // namespace hilo::drivers
