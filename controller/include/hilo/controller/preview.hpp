#pragma once
// The live view's preview path: the latest camera frame and the latest input / element SLM patterns,
// offered by whoever drives the devices and read by the live view (live_view.hpp).
//
// Cost on the offering side (the capture's thread): offer() compares the steady clock with the time of
// the last accepted offer (one atomic load) and returns at once when less than 1/max_per_s has passed;
// otherwise it copies the image (outside any lock) and publishes the copy with a try_lock, dropping it
// when a reader holds the lock. It never waits and never encodes. Readers encode on their own thread:
// snapshot() turns the latest image into PNG bytes (downsampled to at most max_side_px per side,
// INTER_AREA) plus statistics, cached per version so many readers cost one encoding.
//
// Frame statistics (of the full-resolution frame): a histogram of `histogram_bins` equal bins over
// [0, 2^bit_depth), the count of pixels at the full-scale value 2^bit_depth − 1 (saturated), min, max
// and mean, in counts. 16-bit images are shown scaled by 255 / (2^bit_depth − 1), so a saturated
// pixel is white. Patterns are shown the same way with the SLM's bit depth.
//
// PreviewSlm / PreviewCamera wrap a device, forward every call and offer each shown pattern / grabbed
// frame to a tap, so every path that drives the bench (capture, slm.show, camera.grab, the pipeline's
// deploy and measurement) feeds the preview without knowing about it.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/slm.hpp"

namespace hilo::controller {

enum class PreviewSource { frame, input_slm, element_slm };
inline constexpr int kPreviewSources = 3;
std::string_view to_string(PreviewSource s);  // "frame", "input_slm", "element_slm"

struct PreviewOptions {
  double max_per_s = 5.0;     // accepted offers per second and source, in (0, 100]
  int max_side_px = 512;      // larger images are downsampled for display, in [16, 4096]
  int histogram_bins = 64;    // in [2, 4096]

  [[nodiscard]] std::string validate() const;
};

struct PreviewSnapshot {
  std::uint64_t version = 0;  // 0: nothing offered yet (png empty)
  std::string png;            // the image for display
  int rows = 0, cols = 0;     // of the offered image (before downsampling)
  int bit_depth = 8;
  double time_s = 0;          // steady-clock seconds when it was offered
  // Frames only (empty / zero for patterns):
  std::vector<std::uint64_t> histogram;
  std::uint64_t saturated = 0;
  double min = 0, max = 0, mean = 0;
};

struct PreviewCounters {
  std::uint64_t offered = 0, accepted = 0, dropped_rate = 0, dropped_busy = 0, encoded = 0;
};

class PreviewTap {
 public:
  explicit PreviewTap(PreviewOptions opt = {});  // throws std::invalid_argument (opt.validate())
  PreviewTap(const PreviewTap&) = delete;
  PreviewTap& operator=(const PreviewTap&) = delete;

  // Any thread; see the header comment for its cost. `image`: CV_8UC1 or CV_16UC1 (others are ignored);
  // bit_depth: the range of its values, in [1, 16].
  // Returns whether the image was taken. `force` skips the rate limit (PreviewCamera uses it to pair the
  // input pattern with a frame it took).
  bool offer(PreviewSource s, const cv::Mat& image, int bit_depth, bool force = false);

  // Any thread. The latest accepted image of `s`, encoded; version 0 when none has been offered.
  PreviewSnapshot snapshot(PreviewSource s);
  // Cheap: the version of the latest accepted image (0: none).
  std::uint64_t version(PreviewSource s) const;
  PreviewCounters counters(PreviewSource s) const;

 private:
  struct Slot {
    std::atomic<double> last_accept_s{-1e300};
    std::atomic<std::uint64_t> version{0};
    std::atomic<std::uint64_t> offered{0}, accepted{0}, dropped_rate{0}, dropped_busy{0};
    std::mutex latest_mu;  // guards latest, latest_bits, latest_time_s
    cv::Mat latest;
    int latest_bits = 8;
    double latest_time_s = 0;
    std::mutex encoded_mu;  // guards encoded (readers only)
    PreviewSnapshot encoded;
    std::atomic<std::uint64_t> encodings{0};
  };
  PreviewOptions opt_;
  Slot slots_[kPreviewSources];
};

// Wraps an SLM: every successful show() is offered to `tap` as `source`.
class PreviewSlm : public drivers::Slm {
 public:
  PreviewSlm(drivers::Slm& inner, PreviewTap& tap, PreviewSource source) : inner_(inner), tap_(tap), source_(source) {}
  std::string name() const override { return inner_.name(); }
  int width_px() const override { return inner_.width_px(); }
  int height_px() const override { return inner_.height_px(); }
  double pixel_pitch_um() const override { return inner_.pixel_pitch_um(); }
  int bit_depth() const override { return inner_.bit_depth(); }
  double settle_time_ms() const override { return inner_.settle_time_ms(); }
  drivers::DeviceState state() const override { return inner_.state(); }
  drivers::DeviceStatus open() override { return inner_.open(); }
  void close() override { inner_.close(); }
  drivers::DeviceStatus show(const cv::Mat& levels) override;
  drivers::Slm& inner() { return inner_; }
  // The pattern of the last successful show() (a reference to the caller's image, not a copy: it is
  // what the SLM shows as long as the caller does not write into that image after showing it).
  const cv::Mat& last_shown() const { return last_; }

 private:
  drivers::Slm& inner_;
  PreviewTap& tap_;
  PreviewSource source_;
  cv::Mat last_;
};

// Wraps a camera: every frame grab() returns is offered to `tap` (bit depth from the pixel format).
class PreviewCamera : public drivers::Camera {
 public:
  // `input` (optional): the wrapped input SLM. Each frame the tap takes is then paired with the input
  // pattern shown before it (offered with it, past the rate limit), so the page shows a frame next to
  // the input it belongs to, not one sampled at another instant. Call grab() on the thread that shows.
  PreviewCamera(drivers::Camera& inner, PreviewTap& tap, const PreviewSlm* input = nullptr)
      : inner_(inner), tap_(tap), input_(input) {}
  std::string name() const override { return inner_.name(); }
  int width_px() const override { return inner_.width_px(); }
  int height_px() const override { return inner_.height_px(); }
  drivers::DeviceState state() const override { return inner_.state(); }
  drivers::DeviceStatus open() override { return inner_.open(); }
  void close() override { inner_.close(); }
  drivers::PixelFormat pixel_format() const override { return inner_.pixel_format(); }
  drivers::DeviceStatus set_pixel_format(drivers::PixelFormat f) override { return inner_.set_pixel_format(f); }
  double exposure_ms() const override { return inner_.exposure_ms(); }
  drivers::DeviceStatus set_exposure_ms(double ms) override { return inner_.set_exposure_ms(ms); }
  double gain_db() const override { return inner_.gain_db(); }
  drivers::DeviceStatus set_gain_db(double db) override { return inner_.set_gain_db(db); }
  drivers::TriggerMode trigger_mode() const override { return inner_.trigger_mode(); }
  drivers::DeviceStatus set_trigger_mode(drivers::TriggerMode m) override { return inner_.set_trigger_mode(m); }
  drivers::DeviceResult<drivers::Frame> grab(std::chrono::milliseconds timeout) override;
  drivers::Camera& inner() { return inner_; }

 private:
  drivers::Camera& inner_;
  PreviewTap& tap_;
  const PreviewSlm* input_;
};

}  // namespace hilo::controller
