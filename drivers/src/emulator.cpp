#include "hilo/drivers/emulator.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <arv.h>
#include <zlib.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>

#include "hilo/drivers/bench_config.hpp"
#include "hilo/drivers/placed_slm.hpp"
#include "hilo/sim/config.hpp"
#include "x11_monitors.hpp"

namespace hilo::drivers {

namespace {

std::string in_unit(const std::string& name, double v) {
  if (!(v >= 0.0 && v <= 1.0)) {
    std::ostringstream s;
    s << "faults." << name << " must be in [0, 1], got " << v;
    return s.str();
  }
  return {};
}

std::uint64_t monotonic_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(t.tv_nsec);
}

}  // namespace

std::string EmulatorFaults::validate() const {
  for (const auto& [n, v] : {std::pair<const char*, double>{"slow_slm_fraction", slow_slm_fraction},
                             {"dropped_frame_fraction", dropped_frame_fraction},
                             {"timeout_fraction", timeout_fraction}})
    if (auto e = in_unit(n, v); !e.empty()) return e;
  if (dropped_frame_fraction + timeout_fraction > 1.0) return "faults: dropped_frame_fraction + timeout_fraction must be <= 1";
  if (disappear_after_frames < 0)
    return "faults.disappear_after_frames must be >= 0, got " + std::to_string(disappear_after_frames);
  return {};
}

std::string EmulatorOptions::validate() const {
  if (bench.empty()) return "emulator.bench: a bench file is required";
  if (!(frame_rate_hz > 0.0 && frame_rate_hz <= 1000.0))
    return "emulator.frame_rate_hz must be in (0, 1000], got " + std::to_string(frame_rate_hz);
  return faults.validate();
}

std::uint32_t pattern_crc32(const cv::Mat& m) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const std::size_t row_bytes = static_cast<std::size_t>(m.cols) * m.elemSize();
  for (int r = 0; r < m.rows; ++r) crc = crc32(crc, m.ptr<Bytef>(r), static_cast<uInt>(row_bytes));
  return static_cast<std::uint32_t>(crc);
}

cv::Mat input_from_monitor(const cv::Mat& monitor, int rows, int cols) {
  CV_Assert(monitor.type() == CV_8UC1);
  const int s = fitting_scale(rows, cols, monitor.rows, monitor.cols);
  if (s < 1)
    throw std::invalid_argument("input " + std::to_string(rows) + "x" + std::to_string(cols) + " does not fit the " +
                                std::to_string(monitor.rows) + "x" + std::to_string(monitor.cols) + " input monitor");
  const int r0 = (monitor.rows - rows * s) / 2, c0 = (monitor.cols - cols * s) / 2;
  cv::Mat out(rows, cols, CV_8UC1);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      int sum = 0;
      for (int i = 0; i < s; ++i) {
        const std::uint8_t* p = monitor.ptr<std::uint8_t>(r0 + r * s + i) + c0 + c * s;
        for (int j = 0; j < s; ++j) sum += p[j];
      }
      out.at<std::uint8_t>(r, c) = static_cast<std::uint8_t>((sum + s * s / 2) / (s * s));
    }
  return out;
}

cv::Mat counts_to_pixels(const cv::Mat& counts, int bit_depth, bool mono8) {
  CV_Assert(counts.type() == CV_16UC1);
  if (!mono8) return counts;
  cv::Mat out(counts.rows, counts.cols, CV_8UC1);
  const int shift = bit_depth - 8;
  for (int r = 0; r < counts.rows; ++r) {
    const auto* s = counts.ptr<std::uint16_t>(r);
    auto* d = out.ptr<std::uint8_t>(r);
    for (int c = 0; c < counts.cols; ++c) d[c] = static_cast<std::uint8_t>(std::min(255, s[c] >> shift));
  }
  return out;
}

// ------------------------------------------------------------------------------------------ optics

EmulatedOptics::EmulatedOptics(sim::BenchOptions bench, std::uint64_t noise_seed) : rng_(noise_seed) {
  if (bench.element.kind != sim::ElementKind::slm)
    throw std::invalid_argument("the emulator needs an SLM element (design.element.kind slm)");
  bench_ = std::make_unique<sim::SimulatedBench>(std::move(bench));
  base_gain_e_per_count_ = bench_->options().camera.gain_e_per_count;
}

EmulatedOptics::~EmulatedOptics() = default;

int EmulatedOptics::input_rows() const { return bench_->options().input.rows; }
int EmulatedOptics::input_cols() const { return bench_->options().input.cols; }
int EmulatedOptics::element_rows() const { return bench_->options().element.slm.rows; }
int EmulatedOptics::element_cols() const { return bench_->options().element.slm.cols; }
int EmulatedOptics::frame_rows() const { return bench_->camera().out_rows(); }
int EmulatedOptics::frame_cols() const { return bench_->camera().out_cols(); }
int EmulatedOptics::bit_depth() const { return bench_->options().camera.bit_depth; }

cv::Mat EmulatedOptics::render(const cv::Mat& input, const cv::Mat& element, double exposure_ms, double gain_db,
                               double t_s) {
  if (input.type() != CV_8UC1 || input.rows != input_rows() || input.cols != input_cols())
    throw std::invalid_argument("emulator: input must be 8-bit " + std::to_string(input_rows()) + "x" +
                                std::to_string(input_cols()));
  if (element.type() != CV_8UC1 || element.rows != element_rows() || element.cols != element_cols())
    throw std::invalid_argument("emulator: element must be 8-bit " + std::to_string(element_rows()) + "x" +
                                std::to_string(element_cols()));
  if (element_.empty() || cv::norm(element, element_, cv::NORM_INF) != 0.0) {
    sim::Levels levels(element.rows, element.cols);
    for (int r = 0; r < element.rows; ++r)
      for (int c = 0; c < element.cols; ++c) levels(r, c) = element.at<std::uint8_t>(r, c);
    bench_->set_element_levels(levels);
    element_ = element.clone();
    ++element_changes_;
  }
  if (input_.empty() || cv::norm(input, input_, cv::NORM_INF) != 0.0) {
    sim::RArray intensity(input.rows, input.cols);
    for (int r = 0; r < input.rows; ++r)
      for (int c = 0; c < input.cols; ++c) intensity(r, c) = input.at<std::uint8_t>(r, c) / 255.0;
    bench_->set_input(intensity);
    input_ = input.clone();
  }
  bench_->set_camera_settings(exposure_ms, base_gain_e_per_count_ / std::pow(10.0, gain_db / 20.0));
  const sim::RArray counts = bench_->capture(t_s, rng_);
  cv::Mat out(static_cast<int>(counts.rows()), static_cast<int>(counts.cols()), CV_16UC1);
  for (int r = 0; r < out.rows; ++r)
    for (int c = 0; c < out.cols; ++c) out.at<std::uint16_t>(r, c) = static_cast<std::uint16_t>(counts(r, c));
  return out;
}

// ---------------------------------------------------------------------------------------- emulator

struct Emulator::Impl {
  EmulatorOptions opt;
  BenchConfig bench;
  std::unique_ptr<EmulatedOptics> optics;

  Display* dpy = nullptr;
  int screen = 0;
  MonitorGeometry input_geom, element_geom;
  unsigned long red_mask = 0;
  int red_shift = 0;

  ArvGvFakeCamera* gv = nullptr;
  ArvFakeCamera* fake = nullptr;

  std::FILE* log = nullptr;
  std::mt19937_64 fault_rng;
  std::uint64_t t0_ns = 0;
  std::uint32_t next_id = 0;       // last id taken
  std::int64_t delivered = 0;
  std::atomic<bool> gone{false};
  bool suppressed = false;
  cv::Mat current_input, previous_input;

  cv::Mat read_region(const MonitorGeometry& g) {
    XImage* img = XGetImage(dpy, RootWindow(dpy, screen), g.x, g.y, static_cast<unsigned>(g.width),
                            static_cast<unsigned>(g.height), AllPlanes, ZPixmap);
    if (img == nullptr) throw std::runtime_error("XGetImage failed");
    cv::Mat out(g.height, g.width, CV_8UC1);
    for (int y = 0; y < g.height; ++y)
      for (int x = 0; x < g.width; ++x)
        out.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>((XGetPixel(img, x, y) & red_mask) >> red_shift);
    XDestroyImage(img);
    return out;
  }

  std::uint32_t take_id() {
    next_id = next_id % 65535u + 1u;  // GVSP 1.x ids: 1 … 65535, 0 is invalid
    return next_id;
  }

  void suppress(bool on) {
    if (on == suppressed) return;
    g_object_set(gv, "gvsp-lost-ratio", on ? 1.0 : 0.0, nullptr);
    suppressed = on;
  }

  void write_log(const nlohmann::json& j) {
    if (log == nullptr) return;
    const std::string line = j.dump() + "\n";
    std::fwrite(line.data(), 1, line.size(), log);
    std::fflush(log);
  }
};

Emulator::Emulator(EmulatorOptions options) : impl_(std::make_unique<Impl>()) {
  if (auto e = options.validate(); !e.empty()) throw std::invalid_argument(e);
  impl_->opt = std::move(options);
}

Emulator::~Emulator() {
  if (impl_->gv) g_object_unref(impl_->gv);
  if (impl_->dpy) XCloseDisplay(impl_->dpy);
  if (impl_->log) std::fclose(impl_->log);
}

namespace {
// Runs on Aravis' camera thread: nothing may escape into C. A frame that cannot be rendered (X error,
// a region the emulator cannot read) is reported and sent as it is (zeros), like a camera glitch.
void fill_trampoline(ArvBuffer* buffer, void* self, guint32 exposure_us, guint32 gain, ArvPixelFormat pf) {
  try {
    static_cast<Emulator*>(self)->fill(buffer, exposure_us, gain, pf);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hilo-emulator: frame not rendered: %s\n", e.what());
  }
}
}  // namespace

void Emulator::start() {
  Impl& m = *impl_;
  m.bench = load_bench_config(m.opt.bench);
  if (!m.bench.design) throw std::runtime_error(m.opt.bench + ": the emulator needs a `design:` section");
  if (m.bench.input.backend != SlmBackend::display || m.bench.element.backend != SlmBackend::display)
    throw std::runtime_error(m.opt.bench + ": the emulator needs roles.input and roles.element on backend display");
  if (m.bench.camera.backend != CameraBackend::genicam || m.bench.camera.genicam.address.empty())
    throw std::runtime_error(m.opt.bench + ": the emulator needs roles.camera on backend genicam with an address");
  sim::BenchOptions optics = *m.bench.design;
  if (!m.opt.profile.empty()) optics.profile = sim::load_profile(m.opt.profile);
  m.optics = std::make_unique<EmulatedOptics>(optics, m.opt.noise_seed);
  m.fault_rng.seed(m.opt.faults.seed);

  const DisplaySlmOptions& in = m.bench.input.display;
  const DisplaySlmOptions& el = m.bench.element.display;
  if (in.display != el.display || in.screen != el.screen)
    throw std::runtime_error("the emulator reads one X screen: input and element must share display and screen");
  XInitThreads();
  m.dpy = XOpenDisplay(in.display.empty() ? nullptr : in.display.c_str());
  if (m.dpy == nullptr) {
    const char* env = std::getenv("DISPLAY");
    throw std::runtime_error("cannot open X display " + (in.display.empty() ? "$DISPLAY='" + std::string(env ? env : "") + "'"
                                                                            : "'" + in.display + "'"));
  }
  m.screen = in.screen < 0 ? DefaultScreen(m.dpy) : in.screen;
  if (m.screen >= ScreenCount(m.dpy)) throw std::runtime_error("X display has no screen " + std::to_string(m.screen));
  const auto monitors = x11_monitors(m.dpy, m.screen);
  auto monitor = [&](const DisplaySlmOptions& o, const char* role) {
    if (o.monitor >= static_cast<int>(monitors.size()))
      throw std::runtime_error(std::string(role) + ": screen has " + std::to_string(monitors.size()) +
                               " monitor(s), no monitor " + std::to_string(o.monitor));
    return monitors[static_cast<std::size_t>(o.monitor)];
  };
  m.input_geom = monitor(in, "input");
  m.element_geom = monitor(el, "element");
  if (m.element_geom.height != m.optics->element_rows() || m.element_geom.width != m.optics->element_cols())
    throw std::runtime_error("element monitor is " + std::to_string(m.element_geom.width) + "x" +
                             std::to_string(m.element_geom.height) + ", the design SLM " +
                             std::to_string(m.optics->element_cols()) + "x" + std::to_string(m.optics->element_rows()));
  (void)input_from_monitor(cv::Mat(m.input_geom.height, m.input_geom.width, CV_8UC1, cv::Scalar(0)),
                           m.optics->input_rows(), m.optics->input_cols());  // throws when it does not fit
  Visual* v = DefaultVisual(m.dpy, m.screen);
  m.red_mask = v->red_mask;
  while (m.red_mask != 0 && ((m.red_mask >> m.red_shift) & 1u) == 0) ++m.red_shift;

  if (!m.opt.log.empty()) {
    m.log = std::fopen(m.opt.log.c_str(), "w");
    if (m.log == nullptr) throw std::runtime_error("cannot write the frame log " + m.opt.log);
    m.write_log({{"event", "options"}, {"options", m.opt}});
  }

  const std::string& address = m.bench.camera.genicam.address;
  m.gv = arv_gv_fake_camera_new_full(address.c_str(), m.opt.serial.c_str(), nullptr);
  if (m.gv == nullptr || !arv_gv_fake_camera_is_running(m.gv))
    throw std::runtime_error("cannot serve a GigE Vision camera on " + address +
                             " (is the address local, or is another camera using GVCP port 3956?)");
  m.fake = arv_gv_fake_camera_get_fake_camera(m.gv);
  arv_fake_camera_write_register(m.fake, ARV_FAKE_CAMERA_REGISTER_WIDTH, static_cast<guint32>(m.optics->frame_cols()));
  arv_fake_camera_write_register(m.fake, ARV_FAKE_CAMERA_REGISTER_HEIGHT, static_cast<guint32>(m.optics->frame_rows()));
  arv_fake_camera_write_register(m.fake, ARV_FAKE_CAMERA_REGISTER_ACQUISITION_FRAME_PERIOD_US,
                                 static_cast<guint32>(std::lround(1e6 / m.opt.frame_rate_hz)));
  arv_fake_camera_set_trigger_frequency(m.fake, 1000.0);  // a pending software trigger is served within 1 ms
  m.t0_ns = monotonic_ns();
  arv_fake_camera_set_fill_pattern(m.fake, fill_trampoline, this);
}

int Emulator::run(const std::atomic<bool>& stop) {
  Impl& m = *impl_;
  bool stopped_camera = false;
  while (!stop.load()) {
    if (m.gone.load() && !stopped_camera) {
      // Logged first: the unref joins the camera thread, which under load can take seconds after the
      // sockets are closed and a client has already seen the camera go.
      m.write_log({{"event", "disappeared"}, {"after_frames", m.delivered}});
      g_object_unref(m.gv);  // joins the camera thread and closes its sockets: the camera is gone
      m.gv = nullptr;
      stopped_camera = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

void Emulator::fill(void* buffer_ptr, std::uint32_t exposure_us, std::uint32_t gain, std::uint32_t pixel_format) {
  Impl& m = *impl_;
  auto* buffer = static_cast<ArvBuffer*>(buffer_ptr);
  if (m.gone.load()) {
    m.suppress(true);
    return;
  }
  const std::uint64_t t_ns = monotonic_ns();
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const EmulatorFaults& f = m.opt.faults;
  const double draw = u(m.fault_rng);
  const bool slow = u(m.fault_rng) < f.slow_slm_fraction;
  if (draw < f.timeout_fraction) {
    m.suppress(true);
    m.write_log({{"timestamp_ns", t_ns}, {"delivered", false}, {"fault", "timeout"}});
    return;
  }
  const bool dropped = draw < f.timeout_fraction + f.dropped_frame_fraction;

  const cv::Mat screen = input_from_monitor(m.read_region(m.input_geom), m.optics->input_rows(), m.optics->input_cols());
  if (m.current_input.empty() || cv::norm(screen, m.current_input, cv::NORM_INF) != 0.0) {
    m.previous_input = m.current_input;
    m.current_input = screen;
  }
  const bool use_previous = slow && !m.previous_input.empty();
  const cv::Mat& imaged = use_previous ? m.previous_input : m.current_input;
  const cv::Mat element = m.read_region(m.element_geom);
  const bool mono8 = pixel_format == ARV_PIXEL_FORMAT_MONO_8;
  const double t_s = static_cast<double>(t_ns - m.t0_ns) * 1e-9;
  const cv::Mat counts = m.optics->render(imaged, element, exposure_us * 1e-3, static_cast<double>(gain), t_s);
  const cv::Mat pixels = counts_to_pixels(counts, m.optics->bit_depth(), mono8);

  // The camera thread allocated the buffer for the payload of the current region and pixel format
  // (width · height · bytes per pixel), the size it sends; a region other than the full sensor is
  // filled from the top-left of the rendered frame, a format other than Mono8/Mono16 stays zero.
  const int w = arv_buffer_get_image_width(buffer), h = arv_buffer_get_image_height(buffer);
  const std::size_t bpp = static_cast<std::size_t>(ARV_PIXEL_FORMAT_BIT_PER_PIXEL(pixel_format)) / 8;
  const std::size_t size = static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * bpp;
  auto* data = static_cast<std::uint8_t*>(const_cast<void*>(arv_buffer_get_data(buffer, nullptr)));
  std::fill(data, data + size, std::uint8_t{0});
  if (pixel_format == ARV_PIXEL_FORMAT_MONO_8 || pixel_format == ARV_PIXEL_FORMAT_MONO_16) {
    const int rows = std::min(h, pixels.rows), cols = std::min(w, pixels.cols);
    for (int r = 0; r < rows; ++r)
      std::memcpy(data + static_cast<std::size_t>(r) * w * bpp, pixels.ptr(r), static_cast<std::size_t>(cols) * bpp);
  }
  const std::uint64_t rendered_ns = monotonic_ns();
  // The frame leaves the camera when its exposure ends; rendering counts as part of it.
  const std::uint64_t exposure_end_ns = t_ns + static_cast<std::uint64_t>(exposure_us) * 1000u;
  if (rendered_ns < exposure_end_ns) std::this_thread::sleep_for(std::chrono::nanoseconds(exposure_end_ns - rendered_ns));
  const std::uint32_t id = m.take_id();
  arv_buffer_set_frame_id(buffer, id);
  arv_buffer_set_timestamp(buffer, t_ns);
  const std::uint32_t frame_crc = static_cast<std::uint32_t>(crc32(crc32(0L, Z_NULL, 0), data, static_cast<uInt>(size)));
  std::string fault = dropped ? "dropped" : use_previous ? "slow_slm" : "";
  m.suppress(dropped);
  m.write_log({{"frame_id", id},
               {"timestamp_ns", t_ns},
               {"delivered", !dropped},
               {"fault", fault},
               {"input_crc32", pattern_crc32(imaged)},
               {"screen_crc32", pattern_crc32(m.current_input)},
               {"frame_crc32", frame_crc},
               {"render_us", (rendered_ns - t_ns) / 1000},
               {"exposure_us", exposure_us},
               {"gain", gain},
               {"pixel_format", mono8 ? "Mono8" : pixel_format == ARV_PIXEL_FORMAT_MONO_16 ? "Mono16" : "other"}});
  if (!dropped) ++m.delivered;
  if (f.disappear_after_frames > 0 && m.delivered >= f.disappear_after_frames) m.gone.store(true);
}

}  // namespace hilo::drivers
