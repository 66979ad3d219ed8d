#pragma once
// What hilod does once its devices exist: open the catalog (marking jobs a previous process left
// unfinished as interrupted), queue the interrupted captures to continue (unless --no-resume), bind
// the sockets, serve until a signal or the shutdown command, then flush and close. Shared by the hilod executable (devices from the bench config) and test daemons
// (devices are test doubles), so every daemon process runs the same code.
// Under systemd (Type=notify: $NOTIFY_SOCKET set) it sends READY=1 once serving and STOPPING=1 when the
// loop ends, over the notify socket's datagram protocol (no libsystemd needed).
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

#include "hilo/controller/daemon.hpp"
#include "hilo/controller/log.hpp"
#include "hilo/controller/live_view.hpp"
#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/slm.hpp"
#include "hilo/sim/bench_model.hpp"

namespace CLI {
class App;
}

namespace hilo::controller {

struct HilodOptions {
  std::filesystem::path config;      // bench config YAML (read by the caller)
  DaemonOptions daemon;
  LogOptions log;
  std::filesystem::path data_dir = "hilo-data";
  std::filesystem::path ready_file;  // when set: {"command_endpoint", "event_endpoint", "pid"[, "http_url"]} written atomically once bound
  std::filesystem::path fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
  std::filesystem::path curve_secret_key_file;  // two lines: public key, secret key (Z85)
  std::size_t chunk_records = 100;
  bool hdf5 = false;    // captures also write run.h5 unless a request says "hdf5": false
  bool resume = true;  // continue captures a previous process left interrupted (docs/storage.md)
  // The read-only live view (off unless live.endpoint is set). With it, the devices run_hilod drives
  // are wrapped in PreviewSlm/PreviewCamera (preview.hpp), so every frame and pattern reaches the page.
  LiveViewOptions live;

  [[nodiscard]] std::string validate() const;
};

// Registers hilod's command-line options on `app`, and --options-file: a file of "name = value" lines
// (CLI11's INI/TOML subset, names without the leading "--", configs/hilod.conf documents it) read
// before the command line, which wins. An unknown name in the file is an error.
void add_hilod_options(CLI::App& app, HilodOptions& o);

// The devices run_hilod serves, borrowed (hilod: from drivers::open_bench, so the pipeline, captures
// and status share one device mutex and the element is reported with the others). They are opened
// here again (open() is idempotent) for test daemons whose doubles start closed.
struct HilodDevices {
  drivers::Slm& input;
  drivers::Camera& camera;
  std::mutex& mutex;
  drivers::Slm* element = nullptr;  // null: a fixed mask
  const drivers::RetryCounters* input_retries = nullptr;
  const drivers::RetryCounters* camera_retries = nullptr;
  // For the capture's content check (Devices::design, Devices::element_levels); null: the check is off.
  const sim::BenchOptions* design = nullptr;
  std::function<cv::Mat()> element_levels;
};

// Runs the daemon to completion. Returns the process exit code; errors go to `log`.
// `pipeline` (optional) is the bench as the pipeline command drives it (pipeline_bench()); its mutex
// must be null or `devices.mutex`.
int run_hilod(HilodOptions o, const Log& log, const HilodDevices& devices, struct PipelineBench* pipeline = nullptr);
// Test daemons over doubles: a mutex of its own, no element, no pipeline; the log made from o.log (an
// invalid log option or an unopenable file: exit code 2).
int run_hilod(HilodOptions o, drivers::Slm& slm, drivers::Camera& camera);

// Sends `state` ("READY=1", "STOPPING=1", ...) to systemd's $NOTIFY_SOCKET; no-op when unset.
// Returns false when the variable is set but the datagram could not be sent.
bool notify_systemd(std::string_view state);

}  // namespace hilo::controller
