#pragma once
// GenICam camera (GigE Vision, USB3 Vision) through Aravis 0.8.
//
// open(): either finds the device by its Aravis id through discovery ("<vendor>-<model>-<serial>" or
// "<vendor>-<serial>", e.g. "Aravis-Fake-GV01"; Aravis broadcasts the discovery on every network
// interface), or, when `address` is set, connects to that GigE Vision device directly from the local
// `interface_address` without any broadcast (the stream is then sent to interface_address); then applies pixel format,
// exposure, gain, frame rate and trigger mode from the options, creates a stream with a pool of
// buffer_count payload-sized buffers and starts continuous acquisition.
//
// Units: exposure_ms ↔ the GenICam ExposureTime feature in µs (×1000); gain_db ↔ Gain (the SFNC
// unit is dB; a camera that exposes a raw gain reports raw counts here). Both are range-checked
// against the device's bounds (invalid_argument naming them).
// Pixel formats: Mono8 → CV_8UC1; Mono12 (unpacked, 16-bit words) and Mono16 → CV_16UC1; a format
// the device does not list → invalid_argument. Changing the format restarts the stream.
//
// grab(timeout): frames queued before the call are recycled first, so the frame returned was
// delivered after the call (in free run it may have started exposing before; in software-trigger
// mode grab() fires TriggerSoftware and waits for that exposure). sequence = the GigE Vision block id
// (frame_id), timestamp_s = the device timestamp. Errors: no frame within timeout → timeout if the
// device still answers a register read, else disconnected (also when Aravis reports control-lost);
// a buffer with a status other than success (missing packets, ...) → corrupt_frame. Detecting a dead
// device costs Aravis' GVCP retries (about 2.5 s: 5 × 500 ms). close() of a dead device hands the
// Aravis objects to a short-lived background thread, because their finaliser retries too (~10 s).
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "hilo/drivers/camera.hpp"

namespace hilo::drivers {

struct GenicamCameraOptions {
  std::string name = "genicam";
  std::string device_id;                        // Aravis device id (discovery) ...
  std::string address;                          // ... or the device's IPv4 address (direct GigE Vision)
  std::string interface_address = "127.0.0.1";  // local IPv4 address used with `address`
  PixelFormat pixel_format = PixelFormat::mono8;
  double exposure_ms = 10.0;
  double gain_db = 0.0;
  double frame_rate_hz = 0.0;  // 0 → leave the device's setting
  TriggerMode trigger = TriggerMode::free_run;
  int buffer_count = 8;

  // Empty when valid, else the violated rule, e.g. "genicam.buffer_count must be in [2, 256], got 1".
  [[nodiscard]] std::string validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(GenicamCameraOptions, name, device_id, address, interface_address,
                                                pixel_format, exposure_ms, gain_db, frame_rate_hz, trigger, buffer_count)

class GenicamCamera final : public Camera {
 public:
  explicit GenicamCamera(GenicamCameraOptions options);  // options must validate()
  ~GenicamCamera() override;
  GenicamCamera(const GenicamCamera&) = delete;
  GenicamCamera& operator=(const GenicamCamera&) = delete;

  std::string name() const override { return options_.name; }
  int width_px() const override { return width_; }   // 0 until opened
  int height_px() const override { return height_; }
  DeviceState state() const override;
  DeviceStatus open() override;
  void close() override;

  PixelFormat pixel_format() const override { return options_.pixel_format; }
  DeviceStatus set_pixel_format(PixelFormat f) override;
  double exposure_ms() const override { return options_.exposure_ms; }
  DeviceStatus set_exposure_ms(double ms) override;
  double gain_db() const override { return options_.gain_db; }
  DeviceStatus set_gain_db(double db) override;
  TriggerMode trigger_mode() const override { return options_.trigger; }
  DeviceStatus set_trigger_mode(TriggerMode m) override;
  DeviceResult<Frame> grab(std::chrono::milliseconds timeout) override;

  // Buffers recycled unseen by grab(): frames queued before the call, and buffers Aravis returned
  // "cleared" (never filled) while grab() waited (diagnostic).
  std::uint64_t frames_skipped() const { return skipped_; }

 private:
  struct Arv;
  DeviceError error(DeviceErrc code, const std::string& what) const;
  DeviceStatus apply_pixel_format(PixelFormat f);
  DeviceStatus apply_exposure(double ms);
  DeviceStatus apply_gain(double db);
  DeviceStatus apply_trigger(TriggerMode m);
  DeviceStatus start_stream();
  void stop_stream();
  bool device_answers();

  GenicamCameraOptions options_;
  std::unique_ptr<Arv> arv_;
  std::atomic<bool> control_lost_{false};
  DeviceState state_ = DeviceState::disconnected;
  int width_ = 0;
  int height_ = 0;
  std::uint64_t skipped_ = 0;
};

}  // namespace hilo::drivers
