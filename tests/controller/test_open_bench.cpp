// The one bench opener (drivers::open_bench): on a hardware config the devices wait on the steady
// clock for their configured settle times; virtual time exists only for a fully simulated bench; the
// design section is what the pipeline gets, with or without a simulator.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "fakes.hpp"
#include "hilo/controller/pipeline.hpp"
#include "hilo/drivers/open_bench.hpp"
#include "hilo/sim/config_error.hpp"

namespace hilo::controller {
namespace {

const std::filesystem::path kSource = HILO_TEST_SOURCE_DIR;

struct SettleWait {
  std::string role;
  const drivers::Clock* clock;
  double settle_ms;   // what the device asked its clock for
  double elapsed_ms;  // wall time that passed meanwhile
};

// A display SLM without a display: show() waits its configured settle time on the clock it was given,
// as DisplaySlm does, and records the wait.
class StubDisplaySlm : public testing::FakeSlm {
 public:
  StubDisplaySlm(std::string role, const drivers::DisplaySlmOptions& o, drivers::Clock& clock, std::vector<SettleWait>& log)
      : role_(std::move(role)), settle_ms_(o.settle_time_ms), clock_(&clock), log_(&log) {
    rows = o.height_px;
    cols = o.width_px;
  }
  drivers::DeviceStatus show(const cv::Mat& levels) override {
    if (auto e = FakeSlm::show(levels)) return e;
    const auto t0 = std::chrono::steady_clock::now();
    clock_->sleep_for(std::chrono::microseconds(static_cast<long long>(settle_ms_ * 1000.0)));
    log_->push_back({role_, clock_, settle_ms_,
                     std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()});
    return std::nullopt;
  }

 private:
  std::string role_;
  double settle_ms_;
  drivers::Clock* clock_;
  std::vector<SettleWait>* log_;
};

drivers::DeviceFactory stubs(std::vector<SettleWait>& log, testing::FakeSlm& camera_source) {
  drivers::DeviceFactory f;
  f.slm = [&log](const drivers::SlmRoleConfig& r, const std::string& role, drivers::Clock& clock,
                 sim::SimulatedBench*) -> std::unique_ptr<drivers::Slm> {
    EXPECT_EQ(r.backend, drivers::SlmBackend::display) << role;
    return std::make_unique<StubDisplaySlm>(role, r.display, clock, log);
  };
  f.camera = [&camera_source](const drivers::CameraRoleConfig& c, drivers::Clock&, sim::SimulatedBench*) {
    EXPECT_EQ(c.backend, drivers::CameraBackend::genicam);
    return std::unique_ptr<drivers::Camera>(std::make_unique<testing::FakeCamera>(camera_source));
  };
  return f;
}

TEST(OpenBench, HardwareConfigWaitsTheConfiguredSettleTimesOnTheSteadyClock) {
  const auto config = drivers::load_bench_config(kSource / "configs/lab-example.yaml");
  ASSERT_TRUE(config.has_hardware());
  std::vector<SettleWait> waits;
  testing::FakeSlm camera_source;
  const auto bench = drivers::open_bench(config, {}, stubs(waits, camera_source));
  ASSERT_NE(dynamic_cast<drivers::SteadyClock*>(bench->clock.get()), nullptr);
  EXPECT_EQ(bench->virtual_clock, nullptr);
  ASSERT_TRUE(bench->element);
  // Opening shows the element's start pattern, then the dark input.
  ASSERT_EQ(waits.size(), 2u);
  EXPECT_EQ(waits[0].role, "element");
  EXPECT_EQ(waits[0].settle_ms, 40.0);
  EXPECT_EQ(waits[1].role, "input");
  EXPECT_EQ(waits[1].settle_ms, 33.0);
  ASSERT_FALSE(bench->input->show(cv::Mat::zeros(1024, 1280, CV_8UC1)));
  ASSERT_EQ(waits.size(), 3u);
  for (const auto& w : waits) {
    EXPECT_EQ(w.clock, bench->clock.get()) << w.role;
    EXPECT_GE(w.elapsed_ms, w.settle_ms) << w.role << ": the settle time passed in virtual time";
  }
  EXPECT_EQ(bench->input_retries, &bench->input->counters());
  EXPECT_EQ(bench->element_retries, &bench->element->counters());
  EXPECT_EQ(bench->camera_retries, &bench->camera->counters());
  EXPECT_EQ(bench->input_retries->attempts, 3u);  // open, the dark pattern, the show above
}

TEST(OpenBench, VirtualTimeOnHardwareIsRefused) {
  const auto config = drivers::load_bench_config(kSource / "configs/lab-example.yaml");
  std::vector<SettleWait> waits;
  testing::FakeSlm camera_source;
  try {
    drivers::open_bench(config, {.virtual_time = true}, stubs(waits, camera_source));
    FAIL() << "virtual time on a hardware bench was accepted";
  } catch (const sim::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("steady clock"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(waits.empty());
}

TEST(OpenBench, SimulatedBenchRunsOnTheVirtualClockWhenAsked) {
  const auto config = drivers::load_bench_config(kSource / "configs/sim.yaml");
  EXPECT_FALSE(config.has_hardware());
  const auto virt = drivers::open_bench(config, {.virtual_time = true});
  ASSERT_NE(virt->virtual_clock, nullptr);
  EXPECT_EQ(virt->virtual_clock, virt->clock.get());
  EXPECT_GT(virt->virtual_clock->slept_s(), 0.0);  // the start patterns' settle times, not waited for
  ASSERT_TRUE(virt->simulator && virt->element && virt->sim_camera);
  const auto steady = drivers::open_bench(config);
  EXPECT_NE(dynamic_cast<drivers::SteadyClock*>(steady->clock.get()), nullptr);
}

TEST(OpenBench, MissingDeviceIsNamed) {
  auto config = drivers::load_bench_config(kSource / "configs/lab-example.yaml");
  config.element.display.display = ":97";  // no X server there
  try {
    drivers::open_bench(config);
    FAIL() << "opened a display that is not there";
  } catch (const drivers::BenchOpenError& e) {
    EXPECT_EQ(e.role(), "element");
    EXPECT_NE(std::string(e.what()).find("cannot open the element SLM"), std::string::npos) << e.what();
  }
}

TEST(DesignSection, PipelineTakesTheDesignNotTheSimulator) {
  const auto lab = drivers::load_bench_config(kSource / "configs/lab-example.yaml");
  EXPECT_FALSE(lab.simulator);
  ASSERT_TRUE(lab.design);
  EXPECT_EQ(lab.design->camera.pixel_pitch_um, 5.86);
  // Without a design section the simulator's optics are the design, its as-built profile dropped.
  const auto simc = drivers::load_bench_config(kSource / "configs/sim.yaml");
  ASSERT_TRUE(simc.design && simc.simulator);
  EXPECT_EQ(simc.design->element.slm.rows, simc.simulator->element.slm.rows);
  EXPECT_EQ(simc.design->profile.misalignment.shift_x_px, 0.0);
  EXPECT_NE(simc.simulator->profile.misalignment.shift_x_px, 0.0);
}

TEST(DesignSection, UnknownKeyIsNamedWithItsLine) {
  std::ifstream in(kSource / "configs/lab-example.yaml");
  std::stringstream text;
  text << in.rdbuf();
  const std::string bad = text.str() + "  pupil: 3\n";  // appended under design:
  try {
    drivers::parse_bench_config(bad, "lab.yaml", kSource / "configs");
    FAIL() << "unknown design key accepted";
  } catch (const sim::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("design.pupil"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hilo::controller
