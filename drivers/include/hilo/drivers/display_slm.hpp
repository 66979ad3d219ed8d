#pragma once
// An SLM driven as a display, the way HDMI/DVI SLMs are: a borderless window covering exactly one
// monitor of an X screen, showing each pattern pixel for pixel.
//
// Window: override-redirect (no window manager, so no decorations, no placement or resizing by it),
// placed at the monitor's origin with the monitor's size, raised, no cursor, a blank background, and
// _NET_WM_BYPASS_COMPOSITOR set. Pixels go to the server with XPutImage into a 24-bit TrueColor visual
// as R = G = B = level: no scaling, no smoothing, no colour management (X core protocol has none; a
// compositor could add some, hence the bypass hint). Monitor geometry comes from XRandR 1.5
// (XRRGetMonitors) when the server offers it; without XRandR only monitor 0 = the whole screen exists.
//
// Levels: 8-bit only (CV_8UC1), bit_depth() = 8. 16-bit patterns are refused with invalid_argument:
// HDMI carries 8 bits per channel, and SLMs that accept more (10–12 bit) pack the extra bits into
// other colour channels in vendor-specific ways; guessing a packing would show a wrong phase without
// any error, so such SLMs need their own backend.
//
// Timing: show() returns after the X server has processed the image (XSync) and then
// settle_time_ms has elapsed on the injected Clock. Set settle_time_ms to the SLM's liquid-crystal
// response plus one display frame period (the image reaches the panel at the next refresh).
//
// Errors and states: open() fails with disconnected when the display cannot be opened, with
// invalid_argument when the screen or monitor does not exist, the visual is not 24-bit TrueColor, or
// the monitor size differs from the configured width/height. When the X server goes away, Xlib's fatal
// I/O error path is intercepted (a process-wide XSetIOErrorHandler that returns instead of exiting,
// installed once, plus a per-display XSetIOErrorExitHandler from libX11 ≥ 1.8): the device becomes
// disconnected and every later call reports disconnected; close() then open() reconnects. Xlib's
// default protocol-error handler also exits, so a process-wide XSetErrorHandler is installed once too;
// it records the error code on its display (through Xlib's per-display context table) and show()
// reports it as write_failed. Both handlers replace whatever the process had installed before. The
// process must not die of SIGPIPE for this to work: libxcb sends with MSG_NOSIGNAL, so no handler is
// needed.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "hilo/drivers/clock.hpp"
#include "hilo/drivers/slm.hpp"

namespace hilo::drivers {

struct DisplaySlmOptions {
  std::string name = "display";
  std::string display;  // X display name, e.g. ":0"; empty → $DISPLAY
  int screen = -1;      // X screen number; -1 → the display's default screen
  int monitor = 0;      // XRandR monitor index on that screen (0-based, in the server's order)
  int width_px = 0;     // expected monitor width; 0 → accept the monitor's
  int height_px = 0;    // expected monitor height; 0 → accept the monitor's
  double pixel_pitch_um = 8.0;
  double settle_time_ms = 0.0;

  // Empty when valid, else the violated rule, e.g. "display.monitor must be >= 0, got -2".
  [[nodiscard]] std::string validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DisplaySlmOptions, name, display, screen, monitor, width_px, height_px,
                                                pixel_pitch_um, settle_time_ms)

struct MonitorGeometry {
  int x = 0, y = 0, width = 0, height = 0;
};

class DisplaySlm final : public Slm {
 public:
  DisplaySlm(DisplaySlmOptions options, Clock& clock);  // options must validate()
  ~DisplaySlm() override;
  DisplaySlm(const DisplaySlm&) = delete;
  DisplaySlm& operator=(const DisplaySlm&) = delete;

  std::string name() const override { return options_.name; }
  int width_px() const override { return geometry_.width; }    // monitor size once open, else options
  int height_px() const override { return geometry_.height; }
  double pixel_pitch_um() const override { return options_.pixel_pitch_um; }
  int bit_depth() const override { return 8; }
  double settle_time_ms() const override { return options_.settle_time_ms; }

  DeviceState state() const override;
  DeviceStatus open() override;
  void close() override;
  DeviceStatus show(const cv::Mat& levels) override;

  // The monitor the window covers, in root-window coordinates (valid once open).
  MonitorGeometry geometry() const { return geometry_; }
  // The X window id of the SLM window (0 when closed), for tests and diagnostics.
  unsigned long window_id() const;

 private:
  struct X;
  DeviceError error(DeviceErrc code, const std::string& what) const;
  void release(bool server_alive);

  DisplaySlmOptions options_;
  Clock* clock_;
  MonitorGeometry geometry_;
  std::unique_ptr<X> x_;
  DeviceState state_ = DeviceState::disconnected;
};

}  // namespace hilo::drivers
