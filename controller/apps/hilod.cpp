// hilod: the lab daemon. Builds the bench from --config (simulator or hardware backends) and serves
// the protocol of docs/protocol.md until SIGINT/SIGTERM or the shutdown command.
#include <iostream>

#include <CLI/CLI.hpp>

#include "hilo/controller/app.hpp"
#include "hilo/controller/pipeline.hpp"
#include "hilo/drivers/open_bench.hpp"
#include "hilo/sim/npy.hpp"

int main(int argc, char** argv) {
  CLI::App app{"hilod — hardware-in-the-loop optical lab daemon"};
  hilo::controller::HilodOptions o;
  hilo::controller::add_hilod_options(app, o);
  std::string element_npy;
  app.add_option("--element-npy", element_npy,
                 "levels (uint8/uint16 .npy, the element SLM's size) to show on the element SLM at start; "
                 "default: a flat pattern (open aperture)");
  bool virtual_time = false;
  app.add_flag("--virtual-time", virtual_time,
               "simulated devices run on a virtual clock: settle and exposure times pass without waiting, and a "
               "pipeline resumed after an interruption reproduces the uninterrupted run exactly (refused on a bench "
               "with hardware roles, which run on the steady clock)");
  CLI11_PARSE(app, argc, argv);
  std::optional<hilo::controller::Log> log_holder;
  try {
    log_holder.emplace(o.log);
  } catch (const std::exception& e) {
    std::cerr << "hilod: " << e.what() << "\n";
    return 2;
  }
  const hilo::controller::Log& log = *log_holder;
  hilo::drivers::BenchConfig config;
  hilo::drivers::OpenOptions open_options;
  open_options.virtual_time = virtual_time;
  try {
    config = hilo::drivers::load_bench_config(o.config);
    if (!element_npy.empty()) {
      const auto a = hilo::sim::read_npy(element_npy);
      if (a.shape.size() != 2 || (a.dtype != hilo::sim::Dtype::u1 && a.dtype != hilo::sim::Dtype::u2)) {
        throw std::runtime_error(element_npy + ": element levels must be a 2-D uint8 or uint16 array");
      }
      open_options.element_levels =
          cv::Mat(static_cast<int>(a.shape[0]), static_cast<int>(a.shape[1]), a.dtype == hilo::sim::Dtype::u1 ? CV_8UC1 : CV_16UC1,
                  const_cast<std::byte*>(a.bytes.data()))
              .clone();
    }
  } catch (const std::exception& e) {
    log.critical(e.what());
    return 2;
  }
  std::unique_ptr<hilo::drivers::OpenBench> bench;
  try {
    bench = hilo::drivers::open_bench(config, open_options);
  } catch (const hilo::drivers::BenchOpenError& e) {
    log.critical(e.what(), {{"device", e.role()}});
    return 3;
  } catch (const std::exception& e) {
    log.critical(e.what());
    return 2;
  }
  std::optional<hilo::controller::PipelineBench> pipeline;
  if (config.design) pipeline.emplace(hilo::controller::pipeline_bench(*bench, config, o.config));
  hilo::controller::HilodDevices devices{*bench->input, *bench->camera, bench->mutex, bench->element.get(),
                                         bench->input_retries, bench->camera_retries};
  // The capture's content check models the design optics with the levels the element SLM shows now.
  if (pipeline) devices.design = &pipeline->design;
  if (auto* element = bench->element.get()) devices.element_levels = [element] { return element->last_shown(); };
  return hilo::controller::run_hilod(o, log, devices, pipeline ? &*pipeline : nullptr);
}
