// hilo-emulator: a GigE Vision camera whose frames hilo::sim computes from what the bench's display SLMs
// show (drivers/include/hilo/drivers/emulator.hpp). A thin main: options, signals, serve.
// Exit codes: 0 after SIGINT/SIGTERM, 1 bad options or start failure (one line on stderr), CLI11's code
// for a bad command line.
#include <atomic>
#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>

#include "hilo/drivers/emulator.hpp"

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }
}  // namespace

int main(int argc, char** argv) {
  hilo::drivers::EmulatorOptions o;
  CLI::App app{
      "hilo-emulator: an optical bench behind the real protocols. Serves a GigE Vision camera at the bench "
      "file's roles.camera.address whose frames are simulated from the input and element display SLMs of the "
      "same file (read back from the X screen), through the design optics and an as-built profile. Exposure "
      "(us) and gain (GainRaw, read as dB) change the frame; Mono8 and Mono16; free-running or software "
      "trigger. Stops on SIGINT/SIGTERM. See docs/devices.md, \"Rehearsing with the emulator\"."};
  app.add_option("--bench", o.bench, "bench file (YAML): roles.input/element on display, roles.camera on genicam "
                                     "with an address, and a design: section")->required();
  app.add_option("--profile", o.profile, "as-built profile (YAML, configs/profiles/*.yaml); default: ideal bench");
  app.add_option("--log", o.log, "per-frame log, JSON lines: frame_id, timestamp_ns (CLOCK_MONOTONIC, ns), "
                                 "delivered, fault, input_crc32, screen_crc32, frame_crc32, exposure_us, gain");
  app.add_option("--serial", o.serial, "GenICam serial number (DeviceID)")->capture_default_str();
  app.add_option("--frame-rate-hz", o.frame_rate_hz, "free-running frame rate, Hz, (0, 1000]")->capture_default_str();
  app.add_option("--noise-seed", o.noise_seed, "seed of the sensor noise (shot and read noise)")->capture_default_str();
  app.add_option("--slow-slm-fraction", o.faults.slow_slm_fraction,
                 "fraction [0, 1] of frames that image the previous input pattern (a slow SLM)")->capture_default_str();
  app.add_option("--dropped-frame-fraction", o.faults.dropped_frame_fraction,
                 "fraction [0, 1] of frames rendered and never delivered (the frame id is skipped)")->capture_default_str();
  app.add_option("--timeout-fraction", o.faults.timeout_fraction,
                 "fraction [0, 1] of triggers/frame periods that produce no frame (no id consumed)")->capture_default_str();
  app.add_option("--disappear-after-frames", o.faults.disappear_after_frames,
                 "the camera stops answering after this many delivered frames; 0 = never")->capture_default_str();
  app.add_option("--fault-seed", o.faults.seed, "seed of the fault draws")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    hilo::drivers::Emulator emu(o);
    emu.start();
    std::cerr << "hilo-emulator: serving\n";
    return emu.run(g_stop);
  } catch (const std::exception& e) {
    std::cerr << "hilo-emulator: " << e.what() << "\n";
    return 1;
  }
}
