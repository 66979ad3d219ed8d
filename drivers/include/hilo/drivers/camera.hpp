#pragma once
// Camera interface. Frames come back as single-channel cv::Mat: CV_8UC1 for mono8, CV_16UC1 for mono12
// and mono16 (12-bit data right-aligned in 16-bit words). Each frame carries the device's sequence
// number so that callers detect dropped and out-of-order frames.
#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>
#include <opencv2/core/mat.hpp>

#include "hilo/drivers/device.hpp"

namespace hilo::drivers {

enum class PixelFormat { mono8, mono12, mono16 };
std::string_view to_string(PixelFormat f);
int bit_depth(PixelFormat f);

enum class TriggerMode { free_run, software };
std::string_view to_string(TriggerMode t);

// JSON form: the name ("mono12", "software"); from_json throws std::invalid_argument
// ("pixel_format must be mono8, mono12 or mono16, got 'mono10'") for any other.
void to_json(nlohmann::json& j, PixelFormat f);
void from_json(const nlohmann::json& j, PixelFormat& f);
void to_json(nlohmann::json& j, TriggerMode t);
void from_json(const nlohmann::json& j, TriggerMode& t);

struct Frame {
  cv::Mat image;
  std::uint64_t sequence = 0;  // increments by one per frame the device produced
  double timestamp_s = 0.0;    // device clock, seconds
  // timestamp_s is a device clock read at the exposure start, at a steady offset from the host's steady
  // clock (GenICam cameras): the frame gate (frame_gate.hpp) may judge it against the show time.
  bool exposure_timestamp = false;
};

class Camera {
 public:
  virtual ~Camera() = default;

  virtual std::string name() const = 0;
  virtual int width_px() const = 0;
  virtual int height_px() const = 0;

  virtual DeviceState state() const = 0;
  virtual DeviceStatus open() = 0;  // idempotent
  virtual void close() = 0;         // idempotent

  virtual PixelFormat pixel_format() const = 0;
  virtual DeviceStatus set_pixel_format(PixelFormat f) = 0;
  virtual double exposure_ms() const = 0;
  virtual DeviceStatus set_exposure_ms(double ms) = 0;
  virtual double gain_db() const = 0;
  virtual DeviceStatus set_gain_db(double db) = 0;
  virtual TriggerMode trigger_mode() const = 0;
  virtual DeviceStatus set_trigger_mode(TriggerMode m) = 0;

  // In software-trigger mode, grab() triggers one exposure and waits for it; in free-run mode it
  // returns the next frame. timeout: DeviceErrc::timeout with no frame consumed.
  virtual DeviceResult<Frame> grab(std::chrono::milliseconds timeout) = 0;
};

}  // namespace hilo::drivers
