#pragma once
// What hilod does once its devices exist: open the catalog (marking jobs a previous process left
// unfinished as interrupted), queue the interrupted captures to continue (unless --no-resume), bind
// the sockets, serve until a signal or the shutdown command, then flush and close. Shared by the hilod executable (devices from the bench config) and test daemons
// (devices are test doubles), so every daemon process runs the same code.
#include <filesystem>
#include <string>

#include "hilo/controller/daemon.hpp"
#include "hilo/controller/live_view.hpp"
#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/slm.hpp"

namespace CLI {
class App;
}

namespace hilo::controller {

struct HilodOptions {
  std::filesystem::path config;      // bench config YAML (read by the caller)
  DaemonOptions daemon;
  std::filesystem::path data_dir = "hilo-data";
  std::filesystem::path ready_file;  // when set: {"command_endpoint", "event_endpoint", "pid"[, "http_url"]} written atomically once bound
  std::filesystem::path fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
  std::filesystem::path curve_secret_key_file;  // two lines: public key, secret key (Z85)
  std::size_t chunk_records = 100;
  bool resume = true;  // continue captures a previous process left interrupted (docs/storage.md)
  // The read-only live view (off unless live.endpoint is set). With it, the devices run_hilod drives
  // are wrapped in PreviewSlm/PreviewCamera (preview.hpp), so every frame and pattern reaches the page.
  LiveViewOptions live;

  std::string validate() const;
};

// Registers hilod's command-line options on `app`.
void add_hilod_options(CLI::App& app, HilodOptions& o);

// Runs the daemon to completion. Returns the process exit code; errors go to stderr.
// `pipeline` (optional) is the bench as the pipeline command drives it (pipeline_bench()); its mutex is
// set to the daemon's device mutex here.
int run_hilod(HilodOptions o, drivers::Slm& slm, drivers::Camera& camera, struct PipelineBench* pipeline = nullptr);

}  // namespace hilo::controller
