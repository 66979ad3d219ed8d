// hilod: the lab daemon. Builds the bench from --config (simulator or hardware backends) and serves
// the protocol of docs/protocol.md until SIGINT/SIGTERM or the shutdown command.
#include <iostream>

#include <CLI/CLI.hpp>

#include "hilo/controller/app.hpp"
#include "hilo/controller/pipeline.hpp"
#include "hilo/drivers/bench_config.hpp"
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
               "pipeline resumed after an interruption reproduces the uninterrupted run exactly");
  CLI11_PARSE(app, argc, argv);
  std::optional<hilo::controller::Log> log_holder;
  try {
    log_holder.emplace(o.log);
  } catch (const std::exception& e) {
    std::cerr << "hilod: " << e.what() << "\n";
    return 2;
  }
  const hilo::controller::Log& log = *log_holder;
  hilo::drivers::SteadyClock steady;
  hilo::drivers::ManualClock manual;
  hilo::drivers::Clock& clock = virtual_time ? static_cast<hilo::drivers::Clock&>(manual) : steady;
  hilo::drivers::Bench bench;
  hilo::drivers::BenchConfig config;
  try {
    config = hilo::drivers::load_bench_config(o.config);
    bench = hilo::drivers::make_bench(config, clock);
  } catch (const std::exception& e) {
    log.critical(e.what());
    return 2;
  }
  if (!bench.input || !bench.camera) {
    log.critical(o.config.string() + ": the bench needs an input SLM and a camera");
    return 2;
  }
  // The element SLM (when the bench has one) starts with a defined pattern, so captures work before
  // any deploy job has run.
  if (bench.element) {
    cv::Mat levels;
    try {
      if (!element_npy.empty()) {
        const auto a = hilo::sim::read_npy(element_npy);
        if (a.shape.size() != 2 || (a.dtype != hilo::sim::Dtype::u1 && a.dtype != hilo::sim::Dtype::u2)) {
          throw std::runtime_error(element_npy + ": element levels must be a 2-D uint8 or uint16 array");
        }
        levels = cv::Mat(static_cast<int>(a.shape[0]), static_cast<int>(a.shape[1]),
                         a.dtype == hilo::sim::Dtype::u1 ? CV_8UC1 : CV_16UC1, const_cast<std::byte*>(a.bytes.data()))
                     .clone();
      } else {
        levels = cv::Mat::zeros(bench.element->height_px(), bench.element->width_px(),
                                bench.element->bit_depth() > 8 ? CV_16UC1 : CV_8UC1);
      }
    } catch (const std::exception& e) {
      log.critical(e.what());
      return 2;
    }
    if (auto e = bench.element->open()) {
      log.critical("cannot open the element SLM: " + e->message);
      return 3;
    }
    if (auto e = bench.element->show(levels)) {
      log.critical("cannot show the element pattern: " + e->message);
      return 3;
    }
  }
  // The input starts dark, so a grab before any capture records the dark frame instead of failing
  // for want of an input.
  if (auto e = bench.input->open()) {
    log.critical("cannot open the input SLM: " + e->message);
    return 3;
  }
  if (auto e = bench.input->show(cv::Mat::zeros(bench.input->height_px(), bench.input->width_px(),
                                                bench.input->bit_depth() > 8 ? CV_16UC1 : CV_8UC1))) {
    log.critical("cannot show the dark input pattern: " + e->message);
    return 3;
  }
  std::optional<hilo::controller::PipelineBench> pipeline;
  if (config.simulator) {
    pipeline.emplace(hilo::controller::pipeline_bench(bench, config, o.config, clock, virtual_time ? &manual : nullptr, nullptr));
  }
  return hilo::controller::run_hilod(o, log, *bench.input, *bench.camera, pipeline ? &*pipeline : nullptr);
}
