// A hilod process whose devices are the test doubles of fakes.hpp (tests of the daemon as a process:
// signals, crash safety, the Python client). Extra option: --grab-delay-ms N slows each grab so that a
// test can signal the process mid-capture.
#include <chrono>
#include <thread>

#include <CLI/CLI.hpp>

#include "fakes.hpp"
#include "hilo/controller/app.hpp"

int main(int argc, char** argv) {
  CLI::App app{"hilod over test-double devices"};
  hilo::controller::HilodOptions o;
  hilo::controller::add_hilod_options(app, o);
  int delay_ms = 0, rows = 32, cols = 32;
  app.add_option("--grab-delay-ms", delay_ms);
  app.add_option("--slm-rows", rows);
  app.add_option("--slm-cols", cols);
  CLI11_PARSE(app, argc, argv);
  hilo::controller::testing::FakeSlm slm;
  slm.rows = rows;
  slm.cols = cols;
  hilo::controller::testing::FakeCamera cam(slm);
  if (delay_ms > 0) cam.on_grab = [delay_ms](std::uint64_t) { std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms)); };
  return hilo::controller::run_hilod(o, slm, cam);
}
