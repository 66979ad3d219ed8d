// The hardware-in-the-loop pipeline in process, on the simulated bench of configs/sim.yaml with a
// virtual clock: a small run completes with a full report, an interrupted run resumed completes with
// exactly the same result, and bad configs are refused with the violated rule.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "hilo/controller/pipeline.hpp"
#include "hilo/distill/jobs.hpp"

using namespace hilo;
using namespace hilo::controller;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kSource = HILO_TEST_SOURCE_DIR;

json small_config() {
  return json::parse(R"({
    "data": {"name": "mnist", "train_limit": 1500},
    "teacher": {"train": {"epochs": 1, "batch_size": 64, "optimizer": {"kind": "adam", "lr": 0.002}}},
    "student": {"train": {"epochs": 2, "batch_size": 64, "optimizer": {"kind": "adam", "lr": 0.003}},
                "distill": {"method": "ntkd", "ntk_distance": "alignment", "ntk_beta": 10, "ntk_subbatch": 16, "ntk_every": 4}},
    "deploy": {"gs_iterations": 20, "adam_iterations": 60, "design_refit_epochs": 2},
    "bench": {"profiles": ["moderate"], "test_images": 300, "drift_every": 200},
    "measure": {"fractions": [0.2, 0.1]},
    "compensation": {"task": {"epochs": 4}, "ntkd": {"epochs": 4, "ntk_subbatch": 8}}
  })");
}

struct SimBench {
  drivers::ManualClock clock;
  drivers::BenchConfig config;
  drivers::Bench bench;
  PipelineBench pb;
  SimBench()
      : config(drivers::load_bench_config(kSource / "configs/sim.yaml")),
        bench(drivers::make_bench(config, clock)),
        pb(open_and_wrap()) {}
  PipelineBench open_and_wrap() {
    EXPECT_FALSE(bench.input->open());
    EXPECT_FALSE(bench.element->open());
    EXPECT_FALSE(bench.camera->open());
    return pipeline_bench(bench, config, kSource / "configs/sim.yaml", clock, &clock, nullptr);
  }
};

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("hilo_test_pipeline_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

}  // namespace

TEST(PipelineConfig, DefaultsAreValidAndBadValuesNameTheRule) {
  EXPECT_EQ(PipelineConfig::defaults().validate(), "");
  auto j = small_config();
  j["bench"]["frames"] = 0;
  EXPECT_NE(PipelineConfig::from_json(j).validate().find("bench.frames"), std::string::npos);
  j = small_config();
  j["measure"]["fractions"] = {0.1, 1.5};
  EXPECT_NE(PipelineConfig::from_json(j).validate().find("measure.fractions"), std::string::npos);
  j = small_config();
  j["bench"]["profiles"] = {"../etc"};
  EXPECT_NE(PipelineConfig::from_json(j).validate().find("bench.profiles"), std::string::npos);
  j = small_config();
  j["bench"]["profile"] = "moderate";  // typo for profiles
  try {
    (void)PipelineConfig::from_json(j);
    FAIL() << "unknown key accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown key 'profile'"), std::string::npos) << e.what();
  }
  // The config survives its own JSON form.
  const auto c = PipelineConfig::from_json(small_config());
  EXPECT_EQ(PipelineConfig::from_json(c.to_json()).to_json(), c.to_json());
}

TEST(Pipeline, RunsEveryStageAndResumesToTheSameResult) {
  const auto cfg = PipelineConfig::from_json(small_config());
  // Uninterrupted.
  const fs::path a = fresh_dir("a");
  json report_a;
  {
    SimBench sb;
    std::vector<std::string> stages;
    PipelineControl ctl;
    ctl.progress = [&](const std::string& s, std::int64_t, std::int64_t) {
      if (stages.empty() || stages.back() != s) stages.push_back(s);
    };
    const auto r = run_pipeline(cfg, sb.pb, a, ctl);
    ASSERT_TRUE(r.completed);
    report_a = r.report;
    for (const char* want : {"teacher", "student", "deploy", "bench moderate", "bench moderate: compensate"})
      EXPECT_NE(std::find(stages.begin(), stages.end(), want), stages.end()) << "no progress from stage " << want;
  }
  for (const char* f : {"report.json", "accuracy_table.png", "learning_curves.png", "deploy/kernels.png", "deploy/design_psf.png",
                        "deploy/phase.npy", "bench/moderate/result.json", "bench/moderate/frames.png",
                        "bench/moderate/psf_designed_vs_measured.png", "bench/moderate/confusion_none.png",
                        "bench/moderate/confusion_task.png", "bench/moderate/confusion_ntkd.png",
                        "bench/moderate/test_features.npy"})
    EXPECT_TRUE(fs::exists(a / f)) << f;
  const auto& p = report_a["profiles"][0];
  EXPECT_EQ(p["profile"], "moderate");
  const double sim_acc = report_a["deploy"]["simulated_acc"].get<double>();
  EXPECT_GT(sim_acc, 0.5) << "the deployed design learned little";
  const double none = p["accuracy"]["none"].get<double>();
  ASSERT_EQ(p["accuracy"]["fractions"].size(), 2u);
  for (const auto& row : p["accuracy"]["fractions"]) {
    for (const char* m : {"task", "ntkd"}) {
      const double v = row[m].get<double>();
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, 1.0);
    }
  }
  EXPECT_LT(none, sim_acc) << "the moderate profile's hardware errors cost nothing?";
  // Drift checked on its schedule: after every 200 measured images and at the end of each set.
  EXPECT_GE(p["drift"]["checks"].size(), 4u);
  // Calibration against the simulator's ground truth.
  const auto& reg = p["calibration"]["registration"];
  const auto& truth = p["ground_truth"];
  EXPECT_NEAR(reg["shift_x_px"].get<double>(), truth["shift_x_px"].get<double>(), 0.2);
  EXPECT_NEAR(reg["shift_y_px"].get<double>(), truth["shift_y_px"].get<double>(), 0.2);

  // Interrupted in the middle of the bench stage, then resumed in a new process-like setting (fresh
  // devices, the same run directory).
  const fs::path b = fresh_dir("b");
  {
    SimBench sb;
    bool stop = false;
    PipelineControl ctl;
    ctl.progress = [&](const std::string& s, std::int64_t d, std::int64_t) {
      if (s == "bench moderate" && d >= 150) stop = true;
    };
    ctl.stop_requested = [&] { return stop; };
    const auto r = run_pipeline(cfg, sb.pb, b, ctl);
    EXPECT_FALSE(r.completed);
    EXPECT_TRUE(fs::exists(b / "deploy" / "student.hilo"));
    EXPECT_FALSE(fs::exists(b / "bench" / "moderate" / "result.json"));
  }
  {
    SimBench sb;
    const auto r = run_pipeline(cfg, sb.pb, b, {});
    ASSERT_TRUE(r.completed);
    EXPECT_EQ(r.report["profiles"], report_a["profiles"]) << "a resumed run differs from the uninterrupted one";
    EXPECT_EQ(r.report["deploy"], report_a["deploy"]);
  }
  fs::remove_all(a);
  fs::remove_all(b);
}

// A drift threshold below what the bench drifts raises the drift callback and updates the calibration.
TEST(Pipeline, DriftPastTheThresholdIsReportedAndApplied) {
  auto j = small_config();
  j["bench"]["drift_shift_px"] = 1e-4;  // any measurable drift exceeds it
  j["bench"]["drift_every"] = 100;
  j["measure"]["fractions"] = {0.05};
  const auto cfg = PipelineConfig::from_json(j);
  const fs::path d = fresh_dir("drift");
  SimBench sb;
  std::vector<json> events;
  PipelineControl ctl;
  ctl.on_drift = [&](const json& e) { events.push_back(e); };
  const auto r = run_pipeline(cfg, sb.pb, d, ctl);
  ASSERT_TRUE(r.completed);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0]["profile"], "moderate");
  EXPECT_EQ(events[0]["action"], "update");
  EXPECT_GT(events[0]["displacement_px"].get<double>(), 1e-4);
  fs::remove_all(d);
}

TEST(Pipeline, ProfilesNeedTheSimulator) {
  SimBench sb;
  sb.pb.reset_simulator = nullptr;  // as on hardware
  const auto cfg = PipelineConfig::from_json(small_config());
  EXPECT_THROW(run_pipeline(cfg, sb.pb, fresh_dir("c"), {}), std::invalid_argument);
}
