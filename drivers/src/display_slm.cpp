#include "hilo/drivers/display_slm.hpp"
#include "x11_monitors.hpp"

#include <bit>
#include <cstring>
#include <mutex>
#include <sstream>
#include <vector>

#include <X11/Xlib.h>
#include <X11/Xatom.h>
#include <X11/Xresource.h>
#include <X11/Xutil.h>
#ifdef HILO_HAVE_XRANDR
#include <X11/extensions/Xrandr.h>
#endif

namespace hilo::drivers {

std::vector<MonitorGeometry> x11_monitors(Display* dpy, int screen) {
  std::vector<MonitorGeometry> monitors;
#ifdef HILO_HAVE_XRANDR
  int ev = 0, er = 0, major = 0, minor = 0;
  if (XRRQueryExtension(dpy, &ev, &er) && XRRQueryVersion(dpy, &major, &minor) &&
      (major > 1 || (major == 1 && minor >= 5))) {
    int n = 0;
    XRRMonitorInfo* info = XRRGetMonitors(dpy, RootWindow(dpy, screen), True, &n);
    for (int i = 0; i < n; ++i) monitors.push_back({info[i].x, info[i].y, info[i].width, info[i].height});
    if (info) XRRFreeMonitors(info);
  }
#endif
  if (monitors.empty()) monitors.push_back({0, 0, DisplayWidth(dpy, screen), DisplayHeight(dpy, screen)});
  return monitors;
}

namespace {

// Per-display record of what Xlib reported asynchronously. Found from the Display* through Xlib's own
// per-display context table, so the process-wide handlers below carry no state of their own.
struct XReport {
  bool io_error = false;     // the connection is dead
  int last_error_code = 0;   // last protocol error (BadWindow, BadMatch, ...), 0 when none
};

XContext report_context() {
  static const XContext ctx = XUniqueContext();  // an id, allocated once; not mutable state
  return ctx;
}

XReport* report_of(Display* dpy) {
  XPointer p = nullptr;
  if (XFindContext(dpy, 0, report_context(), &p) != 0) return nullptr;
  return reinterpret_cast<XReport*>(p);
}

// Xlib's default I/O error handler prints and calls exit(); this one only returns, leaving the
// decision to the per-display exit handler.
int returning_io_error_handler(Display*) { return 0; }

// Per-display exit handler (libX11 >= 1.8): called after the I/O error handler instead of exit().
void mark_display_dead(Display*, void* user_data) { static_cast<XReport*>(user_data)->io_error = true; }

// Xlib's default protocol-error handler calls exit(); this one records the error on its display.
int recording_error_handler(Display* dpy, XErrorEvent* e) {
  if (XReport* r = report_of(dpy)) r->last_error_code = e->error_code;
  return 0;
}

void install_process_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    // libX11 >= 1.8 initialises its thread support by itself; no XInitThreads() needed.
    XSetIOErrorHandler(returning_io_error_handler);
    XSetErrorHandler(recording_error_handler);
  });
}

int shift_of(unsigned long mask) { return mask == 0 ? 0 : std::countr_zero(mask); }

}  // namespace

struct DisplaySlm::X {
  Display* dpy = nullptr;
  Window win = 0;
  GC gc = nullptr;
  Visual* visual = nullptr;
  Cursor blank_cursor = 0;
  int rshift = 16, gshift = 8, bshift = 0;
  std::vector<std::uint32_t> pixels;  // the XImage buffer, owned here (XImage's data pointer borrows it)
  XReport report;
};

std::string DisplaySlmOptions::validate() const {
  std::ostringstream m;
  if (name.empty()) return "display.name must not be empty";
  if (screen < -1) m << "display.screen must be >= -1, got " << screen;
  else if (monitor < 0) m << "display.monitor must be >= 0, got " << monitor;
  else if (width_px < 0 || height_px < 0)
    m << "display.width_px and display.height_px must be >= 0 (0 = the monitor's), got " << width_px << "x"
      << height_px;
  else if (!(pixel_pitch_um > 0.0)) m << "display.pixel_pitch_um must be > 0, got " << pixel_pitch_um;
  else if (!(settle_time_ms >= 0.0)) m << "display.settle_time_ms must be >= 0, got " << settle_time_ms;
  return m.str();
}

DisplaySlm::DisplaySlm(DisplaySlmOptions options, Clock& clock) : options_(std::move(options)), clock_(&clock) {
  geometry_.width = options_.width_px;
  geometry_.height = options_.height_px;
}

DisplaySlm::~DisplaySlm() { close(); }

DeviceError DisplaySlm::error(DeviceErrc code, const std::string& what) const {
  return {code, "slm '" + options_.name + "': " + what};
}

unsigned long DisplaySlm::window_id() const { return x_ ? x_->win : 0; }

DeviceState DisplaySlm::state() const {
  if (x_ && x_->report.io_error) return DeviceState::disconnected;
  return state_;
}

DeviceStatus DisplaySlm::open() {
  if (x_ && !x_->report.io_error) return std::nullopt;
  if (x_) release(false);
  install_process_handlers();

  const std::string shown = options_.display.empty() ? "$DISPLAY" : "'" + options_.display + "'";
  Display* dpy = XOpenDisplay(options_.display.empty() ? nullptr : options_.display.c_str());
  if (dpy == nullptr) return error(DeviceErrc::disconnected, "cannot open X display " + shown);
  auto x = std::make_unique<X>();
  x->dpy = dpy;
  XSaveContext(dpy, 0, report_context(), reinterpret_cast<XPointer>(&x->report));
  XSetIOErrorExitHandler(dpy, mark_display_dead, &x->report);
  x_ = std::move(x);  // from here on release() cleans up

  const int screen = options_.screen < 0 ? DefaultScreen(dpy) : options_.screen;
  if (screen >= ScreenCount(dpy)) {
    release(true);
    return error(DeviceErrc::invalid_argument, "X display " + shown + " has no screen " + std::to_string(screen));
  }
  const Window root = RootWindow(dpy, screen);

  const std::vector<MonitorGeometry> monitors = x11_monitors(dpy, screen);
  if (options_.monitor >= static_cast<int>(monitors.size())) {
    release(true);
    return error(DeviceErrc::invalid_argument, "screen " + std::to_string(screen) + " of " + shown + " has " +
                                                   std::to_string(monitors.size()) + " monitor(s), no monitor " +
                                                   std::to_string(options_.monitor));
  }
  const MonitorGeometry g = monitors[options_.monitor];
  if ((options_.width_px != 0 && options_.width_px != g.width) ||
      (options_.height_px != 0 && options_.height_px != g.height)) {
    release(true);
    return error(DeviceErrc::invalid_argument,
                 "monitor " + std::to_string(options_.monitor) + " is " + std::to_string(g.width) + "x" +
                     std::to_string(g.height) + ", configured " + std::to_string(options_.width_px) + "x" +
                     std::to_string(options_.height_px));
  }

  XVisualInfo want{};
  want.screen = screen;
  want.depth = 24;
  want.c_class = TrueColor;
  int nvis = 0;
  XVisualInfo* vis = XGetVisualInfo(dpy, VisualScreenMask | VisualDepthMask | VisualClassMask, &want, &nvis);
  if (vis == nullptr || nvis == 0 || std::popcount(vis[0].red_mask) != 8 || std::popcount(vis[0].green_mask) != 8 ||
      std::popcount(vis[0].blue_mask) != 8) {
    if (vis) XFree(vis);
    release(true);
    return error(DeviceErrc::invalid_argument, "screen " + std::to_string(screen) +
                                                   " offers no 24-bit TrueColor visual with 8 bits per channel");
  }
  x_->visual = vis[0].visual;
  x_->rshift = shift_of(vis[0].red_mask);
  x_->gshift = shift_of(vis[0].green_mask);
  x_->bshift = shift_of(vis[0].blue_mask);
  XFree(vis);

  XSetWindowAttributes attrs{};
  attrs.override_redirect = True;
  attrs.background_pixel = 0;
  attrs.border_pixel = 0;
  attrs.backing_store = Always;
  attrs.colormap = XCreateColormap(dpy, root, x_->visual, AllocNone);
  attrs.event_mask = ExposureMask | StructureNotifyMask;
  x_->win = XCreateWindow(dpy, root, g.x, g.y, static_cast<unsigned>(g.width), static_cast<unsigned>(g.height), 0,
                          24, InputOutput, x_->visual,
                          CWOverrideRedirect | CWBackPixel | CWBorderPixel | CWBackingStore | CWColormap |
                              CWEventMask,
                          &attrs);
  XStoreName(dpy, x_->win, options_.name.c_str());
  const Atom bypass = XInternAtom(dpy, "_NET_WM_BYPASS_COMPOSITOR", False);
  const long one = 1;
  XChangeProperty(dpy, x_->win, bypass, XA_CARDINAL, 32, PropModeReplace,
                  reinterpret_cast<const unsigned char*>(&one), 1);
  // An invisible cursor: a 1x1 pixmap cursor with an all-zero mask.
  Pixmap empty = XCreatePixmap(dpy, x_->win, 1, 1, 1);
  XColor black{};
  x_->blank_cursor = XCreatePixmapCursor(dpy, empty, empty, &black, &black, 0, 0);
  XFreePixmap(dpy, empty);
  XDefineCursor(dpy, x_->win, x_->blank_cursor);
  x_->gc = XCreateGC(dpy, x_->win, 0, nullptr);
  XMapRaised(dpy, x_->win);
  XSync(dpy, False);
  if (x_->report.io_error || x_->report.last_error_code != 0) {
    const bool dead = x_->report.io_error;
    const int code = x_->report.last_error_code;
    release(!dead);
    return dead ? error(DeviceErrc::disconnected, "X display " + shown + " went away while opening")
                : error(DeviceErrc::io, "X protocol error " + std::to_string(code) + " while creating the window");
  }
  geometry_ = g;
  state_ = DeviceState::ready;
  return std::nullopt;
}

void DisplaySlm::release(bool server_alive) {
  if (!x_) return;
  if (server_alive && !x_->report.io_error) {
    if (x_->gc) XFreeGC(x_->dpy, x_->gc);
    if (x_->blank_cursor) XFreeCursor(x_->dpy, x_->blank_cursor);
    if (x_->win) XDestroyWindow(x_->dpy, x_->win);
  }
  XDeleteContext(x_->dpy, 0, report_context());
  // XCloseDisplay skips all server traffic on a connection marked dead by the I/O error path.
  XCloseDisplay(x_->dpy);
  x_.reset();
  state_ = DeviceState::disconnected;
}

void DisplaySlm::close() { release(true); }

DeviceStatus DisplaySlm::show(const cv::Mat& levels) {
  if (levels.type() == CV_16UC1)
    return error(DeviceErrc::invalid_argument,
                 "16-bit levels are refused: an HDMI SLM shows 8-bit grey (bit depth 8); convert to CV_8UC1");
  if (levels.type() != CV_8UC1)
    return error(DeviceErrc::invalid_argument, "pattern must be CV_8UC1 (8-bit levels)");
  if (!x_ || x_->report.io_error)
    return error(DeviceErrc::disconnected, x_ ? "the X server went away" : "show on a closed device");
  if (levels.cols != geometry_.width || levels.rows != geometry_.height)
    return error(DeviceErrc::invalid_argument, "pattern is " + std::to_string(levels.cols) + "x" +
                                                   std::to_string(levels.rows) + ", the SLM is " +
                                                   std::to_string(geometry_.width) + "x" +
                                                   std::to_string(geometry_.height) + " (patterns are never resampled)");
  state_ = DeviceState::busy;
  const int w = levels.cols, h = levels.rows;
  x_->pixels.resize(static_cast<std::size_t>(w) * static_cast<std::size_t>(h));
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* src = levels.ptr<std::uint8_t>(y);
    std::uint32_t* dst = x_->pixels.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(w);
    for (int c = 0; c < w; ++c) {
      const std::uint32_t v = src[c];
      dst[c] = (v << x_->rshift) | (v << x_->gshift) | (v << x_->bshift);
    }
  }
  XImage* img = XCreateImage(x_->dpy, x_->visual, 24, ZPixmap, 0, reinterpret_cast<char*>(x_->pixels.data()),
                             static_cast<unsigned>(w), static_cast<unsigned>(h), 32, w * 4);
  if (img == nullptr) {
    state_ = DeviceState::fault;
    return error(DeviceErrc::write_failed, "XCreateImage failed");
  }
  img->byte_order = LSBFirst;  // our buffer is host (little-endian) 32-bit words; Xlib swaps if needed
  img->bitmap_bit_order = LSBFirst;
  x_->report.last_error_code = 0;
  // Drain exposure events: with backing store the server keeps the content, without it the put
  // below repaints the whole window anyway.
  while (!x_->report.io_error && XPending(x_->dpy) > 0) {
    XEvent e;
    XNextEvent(x_->dpy, &e);
  }
  if (!x_->report.io_error) {
    XPutImage(x_->dpy, x_->win, x_->gc, img, 0, 0, 0, 0, static_cast<unsigned>(w), static_cast<unsigned>(h));
    XSync(x_->dpy, False);
  }
  img->data = nullptr;  // the buffer belongs to x_->pixels
  XDestroyImage(img);
  if (x_->report.io_error) {
    state_ = DeviceState::disconnected;
    return error(DeviceErrc::disconnected, "the X server went away while showing a pattern");
  }
  if (x_->report.last_error_code != 0) {
    state_ = DeviceState::fault;
    return error(DeviceErrc::write_failed,
                 "X protocol error " + std::to_string(x_->report.last_error_code) + " while showing a pattern");
  }
  clock_->sleep_for(std::chrono::microseconds(static_cast<long long>(options_.settle_time_ms * 1000.0)));
  state_ = DeviceState::ready;
  return std::nullopt;
}

}  // namespace hilo::drivers
