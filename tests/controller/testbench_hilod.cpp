// A hilod process whose devices are the test doubles of fakes.hpp (tests of the daemon as a process:
// signals, crash safety, the Python client). Extra option: --grab-delay-ms N slows each grab so that a
// test can signal the process mid-capture; --fail-after-grabs N makes every grab after the first N fail
// with a non-transient io error, so that a capture fails mid-run.
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
  std::uint64_t fail_after = 0;
  app.add_option("--grab-delay-ms", delay_ms);
  app.add_option("--fail-after-grabs", fail_after);
  app.add_option("--slm-rows", rows);
  app.add_option("--slm-cols", cols);
  CLI11_PARSE(app, argc, argv);
  hilo::controller::testing::FakeSlm slm;
  slm.rows = rows;
  slm.cols = cols;
  hilo::controller::testing::FakeCamera cam(slm);
  cam.on_grab = [delay_ms, fail_after, &cam](std::uint64_t seq) {
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    if (fail_after > 0 && seq >= fail_after) {
      cam.fail = hilo::drivers::DeviceError{hilo::drivers::DeviceErrc::io, "camera 'fake-camera': injected io error"};
    }
  };
  return hilo::controller::run_hilod(o, slm, cam);
}
