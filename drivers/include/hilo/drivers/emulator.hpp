#pragma once
// hilo-emulator: an optical bench behind the real protocols, for rehearsing a lab's wiring and timing
// and for running the pipeline through the real drivers in CI (docs/devices.md, "Rehearsing with the
// emulator").
//
// What it is: a GigE Vision camera (Aravis' fake-camera API, reached like any GigE camera at the
// bench's roles.camera.address) whose frames hilo::sim computes from what the two display SLMs of the
// same bench file show on the X display:
//   input monitor pixels (8-bit, R of each pixel; the display SLM writes R = G = B)
//     → input levels (rows × cols of the design): the inverse of drivers::place_pattern — the largest
//       integer scale s with rows·s ≤ height and cols·s ≤ width, the pattern centred; each input pixel
//       is the rounded mean of its s × s block
//     → intensity = level / 255 → SimulatedBench::set_input
//   element monitor pixels (must be design.element.slm rows × cols) → SimulatedBench::set_element_levels,
//       only when they changed (the PSF is formed again only then)
//   → SimulatedBench::capture: incoherent imaging through the as-built PSF, warp, gain, camera model,
//     with the as-built profile given to the emulator (ideal when none).
// The camera's exposure feature (µs) sets the model's exposure; its gain feature (the fake camera's
// GainRaw, 0–10, read as dB) divides the conversion gain by 10^(gain/20). Pixel formats: Mono16 carries
// the ADC counts unscaled; Mono8 carries counts >> (bit_depth − 8).
//
// Acquisition: free-running at frame_rate_hz, or one frame per software trigger (TriggerMode On,
// TriggerSource Software; a pending trigger is served within 1 ms). A frame is sent when its exposure
// ends (exposure_us after the screen was read; rendering, about 3 ms for 144 × 144, runs during it), so
// the rate a capture reaches is the rate a real camera of that exposure would allow. Frame ids count
// the frames taken, delivered or dropped: 1, 2, … (wrapping after 65535 as GVSP 1.x ids do).
// Timestamps are CLOCK_MONOTONIC (= std::chrono::steady_clock on Linux) in ns at the moment the screen
// was read, i.e. the start of the exposure.
//
// Faults (seeded): a slow SLM (the frame images the input pattern shown before the current one), a
// dropped frame (rendered, its id consumed, never delivered: the receiver sees a gap), a timeout (no
// frame for a trigger or a frame period; no id consumed), and a camera that disappears after N
// delivered frames (GVCP and GVSP stop answering; the process keeps running until signalled).
//
// Frame log (JSON lines, flushed per line): first {"event": "options", "options": EmulatorOptions as
// JSON}, then one object per due frame:
//   {"frame_id", "timestamp_ns", "delivered", "fault", "input_crc32", "screen_crc32", "frame_crc32",
//    "render_us", "exposure_us", "gain", "pixel_format"}
// input_crc32 is the CRC-32 (zlib's) of the rows × cols input levels the frame imaged, row-major;
// screen_crc32 that of the levels on the input monitor at read time (differs on a slow-SLM frame);
// frame_crc32 that of the payload bytes as sent (Mono16 little-endian), so a stored frame is found in
// the log by its own bytes.
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "hilo/sim/bench_model.hpp"

namespace hilo::drivers {

struct EmulatorFaults {
  double slow_slm_fraction = 0.0;       // fraction of due frames that image the previous input, [0, 1]
  double dropped_frame_fraction = 0.0;  // fraction of due frames lost after their id was taken, [0, 1]
  double timeout_fraction = 0.0;        // fraction of due frames never sent, [0, 1]
  std::int64_t disappear_after_frames = 0;  // camera vanishes after this many delivered frames; 0 = never
  std::uint64_t seed = 1;                   // fault draws

  // Empty when valid, else the violated rule, e.g. "faults.slow_slm_fraction must be in [0, 1], got 2".
  [[nodiscard]] std::string validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EmulatorFaults, slow_slm_fraction, dropped_frame_fraction,
                                                timeout_fraction, disappear_after_frames, seed)

struct EmulatorOptions {
  std::string bench;    // bench file: roles.input/element (display), roles.camera (genicam address), design
  std::string profile;  // as-built profile YAML (configs/profiles/*.yaml); empty = ideal
  std::string log;      // frame log path (JSON lines); empty = no log
  std::string serial = "HILOEMU1";  // GenICam serial number (DeviceID)
  double frame_rate_hz = 50.0;      // free-running rate, (0, 1000]
  std::uint64_t noise_seed = 1;     // sensor-noise generator
  EmulatorFaults faults;

  [[nodiscard]] std::string validate() const;  // empty when valid
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EmulatorOptions, bench, profile, log, serial, frame_rate_hz,
                                                noise_seed, faults)

// CRC-32 (zlib) of a CV_8UC1 or CV_16UC1 matrix's bytes, row-major, rows concatenated.
std::uint32_t pattern_crc32(const cv::Mat& m);

// The input levels (rows × cols, CV_8UC1) a monitor showing `monitor` (CV_8UC1) carries, inverting the
// capture's centred integer placement (above). Throws std::invalid_argument when rows × cols does not
// fit the monitor.
cv::Mat input_from_monitor(const cv::Mat& monitor, int rows, int cols);

// The emulator's optics: screen contents → camera counts. Not thread-safe.
class EmulatedOptics {
 public:
  // `bench`: the design optics with the as-built profile to emulate (bench.profile). Element kind must be
  // slm. Throws sim::ConfigError / std::invalid_argument on a bad bench.
  EmulatedOptics(sim::BenchOptions bench, std::uint64_t noise_seed);
  ~EmulatedOptics();

  int input_rows() const;
  int input_cols() const;
  int element_rows() const;
  int element_cols() const;
  int frame_rows() const;  // after binning
  int frame_cols() const;
  int bit_depth() const;

  // One frame, counts as CV_16UC1 (frame_rows × frame_cols). `input` CV_8UC1 input_rows × input_cols,
  // `element` CV_8UC1 element_rows × element_cols; exposure_ms > 0; gain_db ≥ 0; t_s drives the
  // profile's drift. Throws std::invalid_argument on wrong shapes.
  cv::Mat render(const cv::Mat& input, const cv::Mat& element, double exposure_ms, double gain_db, double t_s);
  // How many times the element changed (each costs a new PSF): a cache check for tests.
  int element_changes() const { return element_changes_; }

 private:
  std::unique_ptr<sim::SimulatedBench> bench_;
  cv::Mat element_;
  cv::Mat input_;
  double base_gain_e_per_count_;
  std::mt19937_64 rng_;
  int element_changes_ = 0;
};

// Counts (CV_16UC1) → the payload of a GenICam pixel format: Mono16 counts as they are, Mono8
// counts >> (bit_depth − 8). `mono8` selects the format.
cv::Mat counts_to_pixels(const cv::Mat& counts, int bit_depth, bool mono8);

// The whole emulator: the X screen reader, the optics and the GigE Vision camera. start() throws
// std::runtime_error naming what failed (X display, monitor sizes, the GVCP port taken by another
// camera, …). run() serves until `stop` becomes true; returns 0.
class Emulator {
 public:
  explicit Emulator(EmulatorOptions options);
  ~Emulator();
  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  void start();
  int run(const std::atomic<bool>& stop);
  // Called on the camera's thread for each due frame (internal; public for the C callback).
  void fill(void* buffer, std::uint32_t exposure_us, std::uint32_t gain, std::uint32_t pixel_format);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hilo::drivers
