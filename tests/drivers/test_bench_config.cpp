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
            "t.yaml: roles.camera: unknown key 'exposure' (line 4)");
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

// The backends' options are read through io::read_options: a misspelt key gets a suggestion and its
// line, a wrong type names the key and its line, and every field survives a round trip.
TEST(BenchConfig, BackendOptionsReadStrictlyWithLines) {
  const std::string ok_roles = "  input: {backend: display, width_px: 800}\n  element: {backend: fixed}\n";
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera:\n    backend: genicam\n    address: 127.0.0.1\n    buffer_cont: 4\n"),
            "t.yaml: roles.camera: unknown key 'buffer_cont'; did you mean 'buffer_count'? (line 7)");
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera: {backend: genicam, address: 127.0.0.1, buffer_count: many}\n"),
            "t.yaml: roles.camera.buffer_count must be an integer, got a string (\"many\") (line 4)");
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera: {backend: opencv, source: x.avi, pixel_format: mono10}\n"),
            "t.yaml: roles.camera.pixel_format must be mono8, mono12 or mono16, got 'mono10' (line 4)");
  EXPECT_EQ(error_of("roles:\n" + ok_roles + "  camera: {backend: opencv, source: x.avi, retry: {max_attemps: 2}}\n"),
            "t.yaml: roles.camera.retry: unknown key 'max_attemps'; did you mean 'max_attempts'? (line 4)");
  EXPECT_EQ(error_of("roles:\n  input: {backend: display, monitor: one}\n  element: {backend: fixed}\n"
                     "  camera: {backend: opencv, source: x.avi}\n"),
            "t.yaml: roles.input.monitor must be an integer, got a string (\"one\") (line 2)");

  GenicamCameraOptions g;
  g.name = "cam0";
  g.address = "10.0.0.7";
  g.interface_address = "10.0.0.1";
  g.pixel_format = PixelFormat::mono12;
  g.exposure_ms = 2.5;
  g.gain_db = 3.25;
  g.frame_rate_hz = 30;
  g.trigger = TriggerMode::software;
  g.buffer_count = 16;
  nlohmann::json role = g;
  role["backend"] = "genicam";
  role["retry"] = RetryPolicy{7, 1.5, 3.0, 250.0};
  DisplaySlmOptions d;
  d.name = "phase";
  d.display = ":1";
  d.screen = 1;
  d.monitor = 2;
  d.width_px = 1920;
  d.height_px = 1152;
  d.pixel_pitch_um = 9.2;
  d.settle_time_ms = 33;
  nlohmann::json element = d;
  element["backend"] = "display";
  // JSON is YAML: the file is written from the structs' own JSON form.
  const BenchConfig c = parse_bench_config("roles:\n  input: {backend: display}\n  element: " + element.dump() +
                                               "\n  camera: " + role.dump() + "\n",
                                           "t.yaml", ".");
  EXPECT_EQ(nlohmann::json(c.camera.genicam), nlohmann::json(g));
  EXPECT_EQ(nlohmann::json(c.camera.retry), role["retry"]);
  EXPECT_EQ(nlohmann::json(c.element.display), nlohmann::json(d));
}

// Regression: seeds were read as doubles, so a 64-bit seed came back rounded; a serial number
// written without quotes is still a device id.
TEST(BenchConfig, SeedsAreExactAndNumericIdsAreText) {
  const BenchConfig c = parse_bench_config(
      "simulator: {}\nroles:\n  input: {backend: sim}\n  element: {backend: sim}\n"
      "  camera: {backend: sim, noise_seed: 18446744073709551557, faults: {seed: 9007199254740993}}\n",
      "t.yaml", ".");
  EXPECT_EQ(c.camera.noise_seed, 18446744073709551557ull);
  EXPECT_EQ(c.camera.faults.seed, 9007199254740993ull);
  const BenchConfig h = parse_bench_config(
      "roles:\n  input: {backend: display}\n  element: {backend: fixed}\n  camera: {backend: genicam, device_id: 40012345}\n",
      "t.yaml", ".");
  EXPECT_EQ(h.camera.genicam.device_id, "40012345");
}


// Regression: the sim backend's keys were read one by one: an unknown key came without a suggestion
// or a line, wait_exposure was a string compared by hand, and the seed had its own reader.
TEST(BenchConfig, SimRolesAreReadAsStrictlyAsDeviceRoles) {
  const std::string head = "simulator: {}\nroles:\n  input: {backend: sim}\n  element: {backend: sim}\n";
  EXPECT_EQ(error_of(head + "  camera:\n    backend: sim\n    frame_rat_hz: 30\n"),
            "t.yaml: roles.camera: unknown key 'frame_rat_hz'; did you mean 'frame_rate_hz'? (line 7)");
  EXPECT_EQ(error_of("simulator: {}\nroles:\n  input: {backend: sim, setle_time_ms: 3}\n  element: {backend: sim}\n"
                     "  camera: {backend: sim}\n"),
            "t.yaml: roles.input: unknown key 'setle_time_ms'; did you mean 'settle_time_ms'? (line 3)");
  EXPECT_EQ(error_of(head + "  camera: {backend: sim, wait_exposure: maybe}\n"),
            "t.yaml: roles.camera.wait_exposure must be true or false, got a string (\"maybe\") (line 5)");
  EXPECT_EQ(error_of(head + "  camera: {backend: sim, noise_seed: -3}\n"),
            "t.yaml: roles.camera.noise_seed must be a non-negative integer, got an integer (-3) (line 5)");
  EXPECT_EQ(error_of(head + "  camera: {backend: sim, frame_rate_hz: -1}\n"),
            "t.yaml: roles.camera.frame_rate_hz must be >= 0, got -1");
  EXPECT_EQ(error_of(head + "  camera: {backend: sim, faults: {camera_timeout_rat: 0.5}}\n"),
            "t.yaml: roles.camera.faults: unknown key 'camera_timeout_rat'; did you mean 'camera_timeout_rate'? (line 5)");
  EXPECT_EQ(error_of("roles:\n  input: {backend: display}\n  element: {backend: fixed, phase: 1}\n"
                     "  camera: {backend: opencv, source: x.avi}\n"),
            "t.yaml: roles.element: unknown key 'phase' (line 3)");
  const BenchConfig c = parse_bench_config(
      head + "  camera: {backend: sim, frame_rate_hz: 25, readout_ms: 2, wait_exposure: false, retry: {max_attempts: 5}}\n",
      "t.yaml", ".");
  EXPECT_EQ(c.camera.timing.frame_rate_hz, 25.0);
  EXPECT_EQ(c.camera.timing.readout_ms, 2.0);
  EXPECT_FALSE(c.camera.timing.apply_exposure);
  EXPECT_EQ(c.camera.retry.max_attempts, 5);
  EXPECT_EQ(c.input.timing.settle_time_ms, SimTiming{}.settle_time_ms);
}

}  // namespace
}  // namespace hilo::drivers
