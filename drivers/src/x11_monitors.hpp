#pragma once
// The monitors of an X screen, shared by the display SLM (which window to cover) and the emulator (which
// region to read back). Internal to hilo::drivers.
#include <vector>

#include <X11/Xlib.h>

#include "hilo/drivers/display_slm.hpp"

namespace hilo::drivers {

// XRandR ≥ 1.5 monitors of `screen` in the server's order (root-window coordinates); without XRandR,
// or when the server lists none, one monitor covering the whole screen.
std::vector<MonitorGeometry> x11_monitors(Display* dpy, int screen);

}  // namespace hilo::drivers
