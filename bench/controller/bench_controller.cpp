// hilo-bench-controller: what the daemon's capture path costs on top of the devices it drives.
//
//   hilo-bench-controller [--frames N] [--frames-60hz N] [--reps R] [--config bench.yaml] [--quick]
//
// Both parts build the simulated bench of configs/sim.yaml (make_bench: retrying SimSlm/SimCamera on a
// real SteadyClock, as hilod does) and time two things on the same devices, alternately, R times each:
//   device-only  show(pattern) + grab() per input, patterns placed beforehand, nothing stored;
//   capture      a "capture" request through handle() (the daemon's command handler), i.e. the job
//                manager, run_capture and RunWriter/Catalog storage into a temporary data directory,
//                timed from the request until the job is done (chunks fsynced, consolidated, previews).
// The best time of each is reported (other load on the machine only ever adds time).
//   (a) zero device latency (SimTiming::fast): frames/s of both and capture/device-only;
//   (b) input SLM settle = 1/60 s, camera without exposure wait: the daemon's overhead per frame as a
//       share of device time, (t_capture − t_device) / t_device, with the daemon's chunk options
//       (a durable commit every 100 frames or 1 s);
//   (b') as (b) but committing every 10 s (one repetition): the part of (b) that the commits cost.
// In (a) and (b) a third measurement, alternating with the other two, is the capture with "hdf5": true
// (run.h5 written live in SWMR mode besides the .npy run): its rate against the plain capture's.
// Every capture is checked (job done, N records consolidated) before its time counts.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "hilo/controller/app.hpp"
#include "hilo/controller/capture.hpp"
#include "hilo/controller/handler.hpp"
#include "hilo/controller/storage.hpp"
#include "hilo/drivers/open_bench.hpp"
#include "hilo/drivers/placed_slm.hpp"

namespace {

namespace fs = std::filesystem;
namespace ctl = hilo::controller;
namespace dr = hilo::drivers;
using nlohmann::json;

double steady_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double unix_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One simulated bench with every simulated role on `timing` except the input SLM's settle time.
struct Rig {
  std::unique_ptr<dr::OpenBench> bench;  // steady clock, element flat, input dark, all open

  Rig(const fs::path& config, double settle_ms) {
    auto cfg = dr::load_bench_config(config);
    cfg.input.timing = dr::SimTiming::fast();
    cfg.input.timing.settle_time_ms = settle_ms;
    cfg.element.timing = dr::SimTiming::fast();
    cfg.camera.timing = dr::SimTiming::fast();
    bench = dr::open_bench(cfg);
  }
};

// The daemon's state around the devices (as run_hilod builds it), over a fresh data directory.
struct Daemonish {
  fs::path data_dir;
  ctl::Devices devices;
  std::unique_ptr<ctl::Catalog> catalog;
  std::unique_ptr<ctl::JobManager> jobs;
  ctl::DatasetLibrary datasets;
  std::unique_ptr<ctl::Context> ctx;

  Daemonish(Rig& rig, fs::path dir, double chunk_seconds) : data_dir(std::move(dir)), devices{*rig.bench->input, *rig.bench->camera, rig.bench->mutex} {
    devices.slm_retries = rig.bench->input_retries;
    devices.camera_retries = rig.bench->camera_retries;
    fs::create_directories(data_dir);
    catalog = std::make_unique<ctl::Catalog>(data_dir / "catalog.sqlite");
    catalog->mark_unfinished_interrupted(unix_s());
    jobs = std::make_unique<ctl::JobManager>(*catalog, [](const std::string&, const json&) {}, unix_s);
    datasets.add("fashion-mnist", ctl::HilodOptions{}.fashion_mnist_dir);
    ctl::CaptureOptions cap;
    cap.chunk_records = ctl::HilodOptions{}.chunk_records;
    if (chunk_seconds > 0) {
      cap.chunk_seconds = chunk_seconds;
      cap.chunk_records = 100000;
    }
    ctx = std::make_unique<ctl::Context>(ctl::Context{devices, *jobs, *catalog, datasets, data_dir, ctl::Limits{}, cap, steady_s});
  }
  ~Daemonish() {
    jobs->shutdown();
    jobs.reset();
    catalog.reset();
  }
};

const char* split_for(std::size_t frames) { return frames <= 10000 ? "test" : "train"; }

// Seconds for `frames` inputs through the capture command; throws unless the run holds them all.
double time_capture(Daemonish& d, std::size_t frames, bool hdf5 = false) {
  ctl::Request req{1, "capture", {{"dataset", "fashion-mnist"}, {"split", split_for(frames)}, {"start", 0}, {"count", frames}, {"hdf5", hdf5}}, {}};
  const auto t0 = std::chrono::steady_clock::now();
  const ctl::Reply reply = ctl::handle(req, *d.ctx);
  if (!reply.body.value("ok", false)) throw std::runtime_error("capture refused: " + reply.body.dump());
  d.jobs->wait_idle();
  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto rec = d.jobs->get(reply.body["result"]["job_id"].get<std::int64_t>());
  if (!rec || rec->state != ctl::JobState::done) throw std::runtime_error("capture did not finish: " + (rec ? rec->error : "no job"));
  const json m = ctl::read_manifest(d.data_dir / rec->run_id);
  if (m.value("records", 0u) != frames || m["arrays"]["frames"]["shape"][0] != frames) {
    throw std::runtime_error("capture stored " + m["records"].dump() + " records, expected " + std::to_string(frames));
  }
  if (hdf5 && (!m.contains("hdf5") || m["hdf5"]["complete"] != true || m["hdf5"]["records"] != frames)) {
    throw std::runtime_error("the HDF5 copy is incomplete: " + m.value("hdf5", json()).dump());
  }
  return t;
}

// Seconds for show + grab of every pattern (placed beforehand: placement is the daemon's work).
double time_devices(Rig& rig, const std::vector<cv::Mat>& patterns) {
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& p : patterns) {
    if (auto e = rig.bench->input->show(p)) throw std::runtime_error("show: " + e->message);
    auto f = rig.bench->camera->grab(std::chrono::milliseconds(1000));
    if (!f) throw std::runtime_error("grab: " + f.error().message);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Timing {
  double device_s = 1e300, capture_s = 1e300, capture_hdf5_s = 1e300;
};

// chunk_seconds > 0: commit a chunk only every chunk_seconds (else the daemon's defaults).
Timing measure(const fs::path& config, double settle_ms, std::size_t frames, int reps, const fs::path& data_dir,
               double chunk_seconds = 0, bool with_hdf5 = false) {
  Rig rig(config, settle_ms);
  Daemonish d(rig, data_dir, chunk_seconds);
  const auto set = d.datasets.get("fashion-mnist", split_for(frames));
  if (set->count < frames) throw std::runtime_error("the dataset split holds only " + std::to_string(set->count) + " images");
  auto& slm = *rig.bench->input;
  const int rows = int(set->rows), cols = int(set->cols);
  const int scale = hilo::drivers::fitting_scale(rows, cols, slm.height_px(), slm.width_px());
  std::vector<cv::Mat> patterns;
  patterns.reserve(frames);
  for (std::size_t k = 0; k < frames; ++k) {
    patterns.push_back(hilo::drivers::place_pattern(
        cv::Mat(rows, cols, CV_8UC1, const_cast<std::uint8_t*>(set->images.data()) + k * set->rows * set->cols),
        slm.height_px(), slm.width_px(), slm.bit_depth(), scale));
  }
  time_devices(rig, std::vector<cv::Mat>(patterns.begin(), patterns.begin() + std::min<std::size_t>(frames, 20)));  // warm-up
  Timing t;
  for (int r = 0; r < reps; ++r) {
    t.device_s = std::min(t.device_s, time_devices(rig, patterns));
    t.capture_s = std::min(t.capture_s, time_capture(d, frames));
    if (with_hdf5) t.capture_hdf5_s = std::min(t.capture_hdf5_s, time_capture(d, frames, true));
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hilo-bench-controller — the daemon's capture path against the bare simulated devices"};
  std::size_t frames = 1000, frames_60 = 240;
  int reps = 2;
  bool quick = false;
  fs::path config = fs::path(HILO_SOURCE_DIR) / "configs" / "sim.yaml";
  app.add_option("--frames", frames, "frames per measurement, zero-latency part (a)")->check(CLI::Range(1, 60000));
  app.add_option("--frames-60hz", frames_60, "frames per measurement, 60 Hz part (b)")->check(CLI::Range(1, 60000));
  app.add_option("--reps", reps, "alternating repetitions of each measurement; the best counts")->check(CLI::Range(1, 20));
  app.add_option("--config", config, "bench config with a simulator section");
  app.add_flag("--quick", quick, "a short run (300 and 60 frames, one repetition) to check that it works");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    frames = std::min<std::size_t>(frames, 300);
    frames_60 = std::min<std::size_t>(frames_60, 60);
    reps = 1;
  }
  const fs::path data_dir = fs::temp_directory_path() / ("hilo-bench-controller-" + std::to_string(::getpid()));
  int rc = 0;
  try {
    const double settle_60 = 1000.0 / 60.0;
    const Timing a = measure(config, 0.0, frames, reps, data_dir / "fast", 0, true);
    const Timing b = measure(config, settle_60, frames_60, reps, data_dir / "60hz", 0, true);
    // The same with a chunk committed only every 10 s (here: once, at the end): what the periodic
    // durable commits (fsync of chunk files, manifest, directory and catalog) cost at 60 Hz.
    const Timing c = measure(config, settle_60, frames_60, 1, data_dir / "60hz_rare", 10.0);
    std::printf("hilo-bench-controller: simulated bench %s, best of %d alternating runs each ((b') one run)\n", config.filename().c_str(), reps);
    std::printf("capture = \"capture\" request through handle(): job manager, run_capture, chunked .npy + manifest + SQLite,\n");
    std::printf("          consolidation and previews, into a temporary data directory; device-only = show + grab, nothing stored\n\n");
    std::printf("%-34s %8s %14s %14s %12s %12s\n", "case", "frames", "device-only", "capture", "capture/dev", "overhead");
    std::printf("%-34s %8s %14s %14s %12s %12s\n", "", "", "[frames/s]", "[frames/s]", "[rate]", "[% of dev]");
    auto row = [](const char* name, std::size_t n, const Timing& t) {
      const double fd = double(n) / t.device_s, fc = double(n) / t.capture_s;
      std::printf("%-34s %8zu %14.1f %14.1f %12.3f %11.2f%%\n", name, n, fd, fc, fc / fd,
                  100.0 * (t.capture_s - t.device_s) / t.device_s);
    };
    row("(a) zero device latency", frames, a);
    row("(b) SLM settle 1/60 s, real clock", frames_60, b);
    row("(b') as (b), one commit per 10 s", frames_60, c);
    std::printf("\n(b) per frame: device %.3f ms, capture %.3f ms, daemon overhead %.3f ms/frame = %.2f %% of device time "
                "(target < 5 %%)\n",
                1e3 * b.device_s / double(frames_60), 1e3 * b.capture_s / double(frames_60),
                1e3 * (b.capture_s - b.device_s) / double(frames_60), 100.0 * (b.capture_s - b.device_s) / b.device_s);
    std::printf("(a) per frame: device %.3f ms, capture %.3f ms, daemon work %.3f ms/frame\n", 1e3 * a.device_s / double(frames),
                1e3 * a.capture_s / double(frames), 1e3 * (a.capture_s - a.device_s) / double(frames));
    auto h5row = [](const char* name, std::size_t n, const Timing& t) {
      std::printf("%-34s %8zu capture %.1f frames/s, with hdf5 %.1f frames/s: time ratio hdf5/plain %.3f (%+.3f ms/frame)\n", name, n,
                  double(n) / t.capture_s, double(n) / t.capture_hdf5_s, t.capture_hdf5_s / t.capture_s,
                  1e3 * (t.capture_hdf5_s - t.capture_s) / double(n));
    };
    std::printf("\n\"hdf5\": true (run.h5 live, SWMR) against the plain capture, same devices, alternating:\n");
    h5row("(a) zero device latency", frames, a);
    h5row("(b) SLM settle 1/60 s, real clock", frames_60, b);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hilo-bench-controller: %s\n", e.what());
    rc = 1;
  }
  std::error_code ec;
  fs::remove_all(data_dir, ec);
  return rc;
}
