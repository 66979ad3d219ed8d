// Bench files: the shipped configs parse, roles map onto backends, and mistakes name the field.
#include <gtest/gtest.h>

#include "hilo/drivers/bench_config.hpp"
#include "hilo/sim/config_error.hpp"

namespace hilo::drivers {
namespace {

// Tests run from the source root (hilo_add_test's WORKING_DIRECTORY).
TEST(BenchConfig, ShippedSimConfigBuildsAWorkingSimulatedBench) {
  const BenchConfig c = load_bench_config("configs/sim.yaml");
  EXPECT_EQ(c.input.backend, SlmBackend::sim);
  EXPECT_EQ(c.element.backend, SlmBackend::sim);
  EXPECT_EQ(c.camera.backend, CameraBackend::sim);
  ASSERT_TRUE(c.simulator.has_value());
  ManualClock clock;
  Bench b = make_bench(c, clock);
  ASSERT_TRUE(b.simulator && b.input && b.element && b.camera);
  ASSERT_FALSE(b.input->open());
  ASSERT_FALSE(b.element->open());
  ASSERT_FALSE(b.camera->open());
  ASSERT_FALSE(b.element->show(cv::Mat(b.element->height_px(), b.element->width_px(), CV_8UC1, cv::Scalar(0))));
  ASSERT_FALSE(b.input->show(cv::Mat(b.input->height_px(), b.input->width_px(), CV_8UC1, cv::Scalar(200))));
  auto f = b.camera->grab(std::chrono::milliseconds(100));
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f.value().image.cols, b.camera->width_px());
  EXPECT_EQ(b.camera->counters().attempts, 2u);  // open + grab
}

TEST(BenchConfig, LabExampleWiresDisplayAndGenicam) {
  const BenchConfig c = load_bench_config("configs/lab-example.yaml");
  EXPECT_EQ(c.element.backend, SlmBackend::display);
  EXPECT_EQ(c.element.display.monitor, 1);
  EXPECT_EQ(c.element.display.width_px, 1920);
  EXPECT_EQ(c.camera.backend, CameraBackend::genicam);
  EXPECT_EQ(c.camera.genicam.pixel_format, PixelFormat::mono12);
  EXPECT_EQ(c.camera.retry.max_attempts, 3);
  ManualClock clock;
  Bench b = make_bench(c, clock);  // builds without touching hardware
  EXPECT_FALSE(b.simulator);
  ASSERT_TRUE(b.element);
  EXPECT_EQ(b.element->state(), DeviceState::disconnected);
}

std::string error_of(const std::string& yaml) {
  try {
    parse_bench_config(yaml, "t.yaml", ".");
  } catch (const sim::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(BenchConfig, MistakesNameTheField) {
  const std::string ok_roles = "  input: {backend: display, width_px: 800}\n  element: {backend: fixed}\n";
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera: {backend: genicam, address: 127.0.0.1, exposure_ms: -1}\n"),
            "t.yaml: roles.camera.exposure_ms must be > 0, got -1");
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera: {backend: genicam, address: 127.0.0.1, exposure: 3}\n"),
            "t.yaml: unknown key 'roles.camera.exposure' for backend genicam");
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera: {backend: webcam}\n"),
            "t.yaml: roles.camera.backend must be sim, opencv or genicam, got 'webcam'");
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera: {backend: opencv, source: x.avi, retry: {max_attempts: 0}}\n"),
            "t.yaml: roles.camera.retry.max_attempts must be >= 1, got 0");
  EXPECT_EQ(error_of("roles:\n  input: {backend: display, monitor: -1}\n  element: {backend: fixed}\n"
                     "  camera: {backend: opencv, source: x.avi}\n"),
            "t.yaml: roles.input.monitor must be >= 0, got -1");
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera: {backend: sim}\n"),
            "t.yaml: a role uses backend sim, so the file needs a 'simulator' section");
  EXPECT_EQ(error_of("roles:\n" + ok_roles), "t.yaml: roles.camera is missing");
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera: {backend: opencv, source: x.avi}\n  laser: {}\n"),
            "t.yaml: unknown key 'roles.laser' (roles are input, element, camera)");
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera: {backend: sim, faults: {corrupt_frame_rate: 1.5}}\n"),
            "t.yaml: roles.camera.faults.corrupt_frame_rate must be in [0, 1], got 1.5");
}

}  // namespace
}  // namespace hilo::drivers
