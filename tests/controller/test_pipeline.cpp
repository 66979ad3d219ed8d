// The hardware-in-the-loop pipeline in process, on the simulated bench of configs/sim.yaml with a
// virtual clock: a small run completes with a full report, an interrupted run resumed completes with
// exactly the same result, and bad configs are refused with the violated rule.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "hilo/calibration/experiment.hpp"
#include "hilo/controller/pipeline.hpp"
#include "hilo/controller/pipeline_stages.hpp"
#include "hilo/distill/jobs.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/distill/threads.hpp"
#include "hilo/io/file_io.hpp"

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
    "bench": {"profiles": ["moderate"], "test_images": 300, "drift_every": 200,
              "reoptimise_element": {"compensate": false}},
    "measure": {"fractions": [0.2, 0.1]},
    "compensation": {"task": {"epochs": 4}, "ntkd": {"epochs": 4, "ntk_subbatch": 8}, "twin_task": {"epochs": 1},
                     "twin_ntkd": {"epochs": 1, "ntk_subbatch": 8}}
  })");
}

struct SimBench {
  drivers::BenchConfig config;
  std::unique_ptr<drivers::OpenBench> bench;
  PipelineBench pb;
  explicit SimBench(const fs::path& file = kSource / "configs/sim.yaml")
      : config(drivers::load_bench_config(file)),
        bench(drivers::open_bench(config, {.virtual_time = true})),
        pb(pipeline_bench(*bench, config, file)) {}
};

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("hilo_test_pipeline_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

// The guard of a bench stage's rows (pipeline_twin.hpp guard_row) and the models it saved: with
// `element` (bench.reoptimise_element.compensate), every row also holds the re-optimised element's cells
// (alone and re-fitted, with the twin on its own measured kernels) with their validation accuracies and
// bench frames. The guard took the best validation accuracy of all the modes, never below none; the
// saved model is the chosen one: on the measured test features of the element it was chosen on it
// scores the guarded accuracy to the bit, and its meta names that element's phase. Returns the modes
// the guard chose.
std::set<std::string> expect_guarded_models(const json& p, const fs::path& bd, const distill::Splits& data, bool element,
                                            double margin) {
  std::set<std::string> chosen;
  const auto& er = p["element_reoptimised"];
  if (element) EXPECT_TRUE(er["accuracy"].contains("none_val")) << er.dump();
  std::vector<std::string> modes = {"task", "ntkd", "twin_task", "twin_ntkd"};
  if (element) modes.insert(modes.end(), {"element", "element_task", "element_ntkd", "element_twin_task", "element_twin_ntkd"});
  for (const auto& row : p["accuracy"]["fractions"]) {
    const double none_val = p["accuracy"]["none_val"].get<double>();
    double best = -1;
    for (const std::string& m : modes) {
      if (!row.contains(m + "_val") || !row.contains(m)) {
        ADD_FAILURE() << m << " missing: " << row.dump();
        return chosen;
      }
      best = std::max(best, row[m + "_val"].get<double>());
    }
    const bool tuned = row.contains("physics_aware_val");  // bench.reoptimise_element.physics_aware, this fraction
    if (tuned) best = std::max(best, row["physics_aware_val"].get<double>());
    const bool twin_trained = row.contains("twin_trained_val");  // bench.reoptimise_element.twin_train, every fraction
    if (twin_trained) best = std::max(best, row["twin_trained_val"].get<double>());
    // A mode only past none's margin (compensation.guard_margin).
    EXPECT_EQ(row["guarded_val"].get<double>(), best > none_val + margin ? best : none_val) << row.dump();
    EXPECT_EQ(row["guarded_mode"] == "none", best <= none_val + margin) << row.dump();
    const auto& fr = row["frames"];
    const int n = row["measured"].get<int>();
    EXPECT_EQ(fr["task"], n);
    EXPECT_EQ(fr["twin_task"].get<int>(), n + p["twin"]["kernels"]["frames"].get<int>());
    if (element) {
      const int cal = er["bench_frames"]["calibration"].get<int>();
      EXPECT_GT(cal, 0);
      EXPECT_EQ(fr["element"], cal);
      EXPECT_EQ(fr["element_task"], cal + n);
      EXPECT_EQ(fr["element_twin_ntkd"], cal + n + er["twin"]["kernels"]["frames"].get<int>());
    }
    EXPECT_EQ(fr["guard"], (element ? 2 : 1) * int(data.val.size()) + (tuned ? int(data.val.size()) : 0) +
                               (twin_trained ? int(data.val.size()) : 0))
        << "the validation splits the guard used";
    if (tuned) {
      EXPECT_EQ(fr["physics_aware"], er["bench_frames"]["calibration"].get<int>() +
                                         er["physics_aware"]["bench_frames"]["training"].get<int>());
      EXPECT_GE(row["guarded_val"].get<double>(), row["physics_aware_val"].get<double>());
    }
    if (twin_trained) {
      EXPECT_EQ(fr["twin_trained"], er["bench_frames"]["calibration"]) << "trained with no bench frame";
      EXPECT_EQ(er["twin_trained"]["bench_frames"]["training"], 0);
    }
    const std::string mode = row["guarded_mode"];
    chosen.insert(mode);
    const bool pat = mode == "physics_aware" || mode == "twin_trained";  // its own phase and folder
    const bool on_element = mode.rfind("element", 0) == 0 || pat;
    const distill::MatD test = calibration::read_features(
        bd / (pat ? "element_reoptimised/" + mode + "/test_features.npy"
                  : on_element ? "element_reoptimised/test_features.npy" : "test_features.npy"));
    const std::vector<int> y(data.test.y.begin(), data.test.y.begin() + test.rows());
    const fs::path file = bd / row["guarded_model"].get<std::string>();
    if (!fs::exists(file)) {
      ADD_FAILURE() << file;
      continue;
    }
    const distill::ModelFile m = distill::read_model(file);
    EXPECT_EQ(m.meta["compensated"]["mode"], mode);
    EXPECT_EQ(m.meta["compensated"]["fraction"].get<double>(), row["fraction"].get<double>());
    const std::string element_dir = "bench/" + p["profile"].get<std::string>() + "/element_reoptimised/";
    EXPECT_EQ(m.meta["compensated"]["element_phase"],
              pat ? element_dir + mode + "/phase.npy" : on_element ? element_dir + "phase.npy" : "deploy/phase.npy");
    EXPECT_EQ(distill::accuracy(distill::OpticalStudent::from_model(m).backend_forward(test), y), row["guarded"].get<double>())
        << row.dump();
    // Its bench calibration (what the daemon's defer turns raw frames with): the one of its element.
    const fs::path cal = file.parent_path() / m.meta["bench"]["calibration"].get<std::string>();
    EXPECT_TRUE(fs::exists(cal / "calibration.json")) << cal;
    EXPECT_EQ(fs::weakly_canonical(cal), fs::weakly_canonical(bd / (on_element ? "element_reoptimised/calibration" : "calibration")));
    EXPECT_GT(m.meta["bench"]["counts_per_unit"].get<double>(), 0.0);
  }
  if (element) EXPECT_TRUE(fs::exists(bd / "element_reoptimised/kernels_designed_vs_measured.png"));
  return chosen;
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
  // The content check's keys, validated with the rule and the full key.
  j = small_config();
  j["bench"]["content_check"] = {{"min_correlation", 2.0}};
  EXPECT_EQ(PipelineConfig::from_json(j).validate(), "bench.content_check.min_correlation must be in (0, 1), got 2.000000");
  j["bench"]["content_check"] = {{"max_regrabs", -1}};
  EXPECT_EQ(PipelineConfig::from_json(j).validate(), "bench.content_check.max_regrabs must be in [0, 100], got -1");
  j["bench"]["content_check"] = {{"max_unproven_fraction", 1.5}};
  EXPECT_EQ(PipelineConfig::from_json(j).validate(),
            "bench.content_check.max_unproven_fraction must be in [0, 1], got 1.500000");
  j["bench"]["content_check"] = {{"max_unproven", 0.2}};
  EXPECT_THROW((void)PipelineConfig::from_json(j), std::invalid_argument) << "unknown content_check key accepted";
  j["bench"]["content_check"] = {{"enabled", false}, {"max_unproven_fraction", 0.25}};
  const auto cc = PipelineConfig::from_json(j);
  EXPECT_EQ(cc.validate(), "");
  EXPECT_FALSE(cc.measure_options().content.enabled);
  EXPECT_TRUE(cc.measure_options().content.accept_unproven) << "the pipeline's default kept for the keys left out";
  EXPECT_EQ(cc.measure_options().max_unproven_fraction, 0.25);
  // The element re-optimisation's keys.
  j = small_config();
  j["bench"]["reoptimise_element"] = {{"fit", {{"noll", {4, 1}}}}};
  EXPECT_EQ(PipelineConfig::from_json(j).validate(),
            "bench.reoptimise_element.pupil_fit.noll entries must be in [2, 37], got 1");
  j["bench"]["reoptimise_element"] = {{"fit", {{"iterations", 0}}}};
  EXPECT_EQ(PipelineConfig::from_json(j).validate(),
            "bench.reoptimise_element.pupil_fit.iterations must be in [1, 100000], got 0");
  {
    json g = small_config();
    g["compensation"]["guard_margin"] = 0.2;
    EXPECT_EQ(PipelineConfig::from_json(g).validate(), "compensation.guard_margin must be in [0, 0.1], got 0.200000");
  }
  j["bench"]["reoptimise_element"] = {{"twin_train", {{"enabled", true}, {"phase_lr", 0}}}};
  EXPECT_EQ(PipelineConfig::from_json(j).validate(), "bench.reoptimise_element.twin_train.phase_lr must be > 0, got 0.000000");
  j["bench"]["reoptimise_element"] = {{"enable", false}};
  EXPECT_THROW((void)PipelineConfig::from_json(j), std::invalid_argument) << "unknown reoptimise_element key accepted";
  j["bench"]["reoptimise_element"] = {{"enabled", false}};
  EXPECT_FALSE(PipelineConfig::from_json(j).reoptimise_element.enabled);
  j = small_config();
  j["bench"]["profiles"] = {"../etc"};
  EXPECT_NE(PipelineConfig::from_json(j).validate().find("bench.profiles"), std::string::npos);
  j = small_config();
  // Regression: a stage's own thread count or seed was silently replaced by the pipeline's (thread
  // count) or by the one derived from the pipeline's seed; then an explicit value equal to the default
  // could not be told from an unset one. The stages' train sections have no seed or threads key at all.
  auto error = [](const json& c) {
    try {
      (void)PipelineConfig::from_json(c);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  j["threads"] = 2;
  j["student"]["train"]["threads"] = 8;
  EXPECT_EQ(error(j), "pipeline.student.train.threads is not used in a pipeline, got 8: set the pipeline's threads (2), "
                      "which every stage trains with");
  j["student"]["train"]["threads"] = 1;
  EXPECT_EQ(error(j).rfind("pipeline.student.train.threads is not used in a pipeline, got 1", 0), 0u) << "the default, explicit";
  j["student"]["train"].erase("threads");
  j["teacher"]["train"]["threads"] = 4;
  EXPECT_EQ(error(j).rfind("pipeline.teacher.train.threads is not used in a pipeline", 0), 0u);
  j["teacher"]["train"].erase("threads");
  EXPECT_EQ(PipelineConfig::from_json(j).validate(), "");
  j["seed"] = 3;
  for (const std::uint64_t given : {std::uint64_t{7}, std::uint64_t{1}, hilo::controller::stage_seed(3, 1)}) {
    j["teacher"]["train"]["seed"] = given;
    EXPECT_EQ(error(j), "pipeline.teacher.train.seed is not used in a pipeline, got " + std::to_string(given) +
                            ": every stage's seed derives from the pipeline's seed (3); the teacher trains with seed " +
                            std::to_string(hilo::controller::stage_seed(3, 1)) + ", so set the pipeline's seed instead");
  }
  j["teacher"]["train"].erase("seed");
  j["student"]["train"]["seed"] = 1;
  EXPECT_EQ(error(j).rfind("pipeline.student.train.seed is not used in a pipeline, got 1", 0), 0u);
  j["student"]["train"].erase("seed");
  EXPECT_EQ(PipelineConfig::from_json(j).validate(), "");
  const json stored = PipelineConfig::from_json(j).to_json();
  for (const char* k : {"/teacher/train/seed", "/teacher/train/threads", "/student/train/seed", "/student/train/threads"})
    EXPECT_FALSE(stored.contains(json::json_pointer(k))) << k << " stored";
  // validate() still guards a config built in code.
  auto coded = PipelineConfig::defaults();
  coded.student_train.threads = 8;
  EXPECT_EQ(coded.validate().rfind("student.train.threads is not used in a pipeline", 0), 0u);
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

namespace {
// Every leaf of `j` changed to another value of its type (strings from a table of valid alternatives),
// so a field that to_json() or from_json() drops shows up as a difference. The compensation modes are
// fixed by their section and stay.
json perturbed(const json& j, const std::string& path = "") {
  static const std::map<std::string, json> strings = {
      {"/data/name", "fashion-mnist"}, {"/data/fashion_dir", "fmnist"}, {"/data/mnist_dir", "digits"},
      {"/data/images", "x.npy"}, {"/data/labels", "y.npy"}, {"/data/test_images", "xt.npy"},
      {"/data/test_labels", "yt.npy"}, {"/data/dir", "own"}, {"/data/color", "rgb"},
      {"/teacher/train/schedule", "constant"}, {"/teacher/train/optimizer/kind", "sgd"},
      {"/student/train/schedule", "constant"}, {"/student/train/optimizer/kind", "sgd"},
      {"/student/options/parameterization", "phase"}, {"/student/options/nonneg", "square"},
      {"/student/options/signing", "bias"}, {"/student/options/feature_norm", "map"},
      {"/student/options/pupil", "circle"}, {"/student/options/phase_init", "random"},
      {"/student/distill/method", "ntkd"},
      {"/student/distill/ntk_distance", "trace_mse"}, {"/student/distill/ntk_param_set", "backend"},
      {"/student/distill/ntk_teacher", "probe"}, {"/bench/drift_action", "report"},
      {"/student/distill/precision", "float32"},
      // shared_test_head "shared" and shared_adapt.enabled need method shared (perturbed to ntkd here):
      // they keep their defaults in this table and are checked on their own below.
      {"/student/distill/shared_test_head", "own"},
      {"/measure/strategy", "coverage"}, {"/compensation/task/distance", "trace_mse"},
      {"/compensation/ntkd/distance", "trace_mse"}, {"/compensation/task/mode", "task"},
      {"/compensation/ntkd/mode", "ntkd"}, {"/compensation/task/refit_norm", "map"},
      {"/compensation/ntkd/refit_norm", "map"}, {"/compensation/twin_task/distance", "trace_mse"},
      {"/compensation/twin_ntkd/distance", "trace_mse"}, {"/compensation/twin_task/refit_norm", "map"},
      {"/compensation/twin_task/mode", "task"}, {"/compensation/twin_ntkd/mode", "ntkd"},
      {"/compensation/twin_ntkd/refit_norm", "map"}, {"/bench/drift_recompensate/refit", "twin_ntkd"},
      {"/bench/drift_recompensate/measured_rows", "exclude"}};
  if (j.is_object()) {
    json out = json::object();
    for (const auto& [k, v] : j.items()) out[k] = perturbed(v, path + "/" + k);
    return out;
  }
  if (path == "/student/distill/shared_adapt/enabled") return j;
  if (j.is_boolean()) return !j.get<bool>();
  if (j.is_number_unsigned()) return j.get<std::uint64_t>() + 7;
  if (j.is_number_integer()) return j.get<std::int64_t>() + 3;
  if (j.is_number_float()) return j.get<double>() * 1.5 + 0.125;
  if (j.is_string()) {
    const auto it = strings.find(path);
    if (it == strings.end()) ADD_FAILURE() << "no non-default value for " << path << " in the test's table";
    return it == strings.end() ? j : it->second;
  }
  if (path == "/bench/profiles") return json{"severe", "mild"};
  if (path == "/measure/fractions") return json{0.3, 0.15};
  if (path == "/teacher/arch/channels") return json{8, 24, 48};
  if (path == "/bench/reoptimise_element/fit/noll") return json{5, 6, 7};
  ADD_FAILURE() << "no non-default value for the list " << path;
  return j;
}
}  // namespace

// A job submitted with every field set to a non-default value is stored (catalog, config.json), resumed
// and swept with exactly those values: the store is to_json(from_json(submitted)), the resume and the
// sweep read it back with from_json.
TEST(PipelineConfig, EveryFieldSurvivesStoreResumeAndSweep) {
  const json defaults = PipelineConfig::defaults().to_json();
  const json submitted = perturbed(defaults);
  const json flat_defaults = defaults.flatten(), flat_submitted = submitted.flatten();
  for (const auto& [key, value] : flat_defaults.items()) {
    if (key.size() >= 5 && key.compare(key.size() - 5, 5, "/mode") == 0) continue;
    if (key == "/student/distill/shared_test_head" || key == "/student/distill/shared_adapt/enabled")
      continue;
    EXPECT_TRUE(!flat_submitted.contains(key) || flat_submitted[key] != value) << key << " kept its default";
  }
  EXPECT_GE(flat_defaults.size(), 60u) << "fewer fields than the config has";
  for (const char* k : {"enabled", "min_correlation", "blur_px", "min_snr", "max_regrabs", "accept_unproven",
                        "max_unproven_fraction"})
    EXPECT_TRUE(flat_defaults.contains(std::string("/bench/content_check/") + k)) << k << " is not a job key";
  const json stored = PipelineConfig::from_json(submitted).to_json();
  EXPECT_EQ(stored, submitted) << "fields lost or changed on the way to the catalog: "
                               << json::diff(submitted, stored).dump();
  const json resumed = PipelineConfig::from_json(stored).to_json();
  EXPECT_EQ(resumed, submitted) << json::diff(submitted, resumed).dump();
  const fs::path f = fs::temp_directory_path() / ("hilo_test_config_" + std::to_string(::getpid()) + ".json");
  io::write_json_atomic(f, stored);
  std::ifstream in(f);
  const json swept = PipelineConfig::from_json(json::parse(in)).to_json();
  EXPECT_EQ(swept, submitted) << json::diff(submitted, swept).dump();
  fs::remove(f);
  json f32 = defaults;
  f32["student"]["distill"]["precision"] = "float32";
  EXPECT_EQ(PipelineConfig::from_json(PipelineConfig::from_json(f32).to_json()).to_json(), f32);
  json adapt = defaults;
  adapt["student"]["distill"].update({{"method", "shared"}, {"shared_test_head", "shared"}});
  adapt["student"]["distill"]["shared_adapt"]["enabled"] = true;
  EXPECT_EQ(PipelineConfig::from_json(PipelineConfig::from_json(adapt).to_json()).to_json(), adapt);
  // Partial sections keep the pipeline's defaults for the keys they leave out.
  const auto partial = PipelineConfig::from_json({{"student", {{"distill", {{"ntk_beta", 3.0}}}}}});
  EXPECT_EQ(partial.distill.ntk_beta, 3.0);
  EXPECT_EQ(partial.distill.method, PipelineConfig::defaults().distill.method);
  EXPECT_EQ(partial.data.name, "mnist");
}

// Strict reading: unknown keys with a suggestion, wrong types with the full key path.
// The job files the README and docs name are read as hilo-pipeline reads them, validate, and the 4f
// ones describe the student their bench needs (a job file is otherwise checked only when a lab runs it).
TEST(PipelineConfig, ShippedJobFilesAreValid) {
  for (const char* f : {"configs/main-job.yaml", "configs/pipeline-quick.yaml", "configs/fourier-job.yaml",
                        "configs/fourier-quick.yaml"}) {
    const PipelineConfig c = PipelineConfig::from_json(distill::load_config_file((kSource / f).string()));
    EXPECT_EQ(c.validate(), "") << f;
    if (std::string(f).find("fourier") != std::string::npos) {
      EXPECT_EQ(c.student.parameterization, "fourier") << f;
      EXPECT_EQ(c.student.phase_rows, 64) << f;
      EXPECT_EQ(c.student.pupil, "circle") << f;
    }
  }
}

TEST(PipelineConfig, ReadingNamesTheKeyAndTheRule) {
  auto error = [](const json& j) {
    try {
      (void)PipelineConfig::from_json(j);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(error({{"student", {{"distill", {{"ntk_beat", 3.0}}}}}}),
            "pipeline.student.distill: unknown key 'ntk_beat'; did you mean 'ntk_beta'?");
  EXPECT_EQ(error({{"seed", "one"}}), "pipeline.seed must be a non-negative integer, got a string (\"one\")");
  EXPECT_EQ(error({{"teacher", {{"train", {{"epochs", 1.5}}}}}}),
            "pipeline.teacher.train.epochs must be an integer, got a number (1.5)");
  EXPECT_EQ(error({{"seed", -1}}), "pipeline.seed must be a non-negative integer, got an integer (-1)");
  EXPECT_EQ(error({{"measure", {{"strategy", "best"}}}}).rfind("pipeline.measure.strategy: ", 0), 0u)
      << error({{"measure", {{"strategy", "best"}}}});
  EXPECT_EQ(error({{"compensation", {{"task", {{"mode", "ntkd"}}}}}}),
            "pipeline.compensation.task.mode must be \"task\"");
  EXPECT_EQ(error({{"bench", 3}}), "pipeline.bench must be a mapping, got an integer (3)");
}

TEST(Pipeline, RunsEveryStageAndResumesToTheSameResult) {
  auto j = small_config();
  j["bench"]["reoptimise_element"]["compensate"] = true;  // the default: the guard over both elements
  j["bench"]["reoptimise_element"]["physics_aware"] = {{"enabled", true}, {"epochs", 1}, {"batch", 50}};
  j["bench"]["reoptimise_element"]["twin_train"] = {{"enabled", true}, {"epochs", 1}};
  const auto cfg = PipelineConfig::from_json(j);
  // Uninterrupted.
  const fs::path a = fresh_dir("a");
  json report_a;
  {
    SimBench sb;
    std::vector<std::string> stages;
    PipelineControl ctl;
    ctl.work.progress = [&](std::int64_t, std::int64_t, std::string_view s) {
      if (stages.empty() || stages.back() != s) stages.emplace_back(s);
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
                        "bench/moderate/test_features.npy", "bench/moderate/kernels_designed_vs_measured.png"})
    EXPECT_TRUE(fs::exists(a / f)) << f;
  const auto& p = report_a["profiles"][0];
  EXPECT_EQ(p["profile"], "moderate");
  const double sim_acc = report_a["deploy"]["simulated_acc"].get<double>();
  EXPECT_GT(sim_acc, 0.5) << "the deployed design learned little";
  const double none = p["accuracy"]["none"].get<double>();
  ASSERT_EQ(p["accuracy"]["fractions"].size(), 2u);
  for (const auto& row : p["accuracy"]["fractions"]) {
    for (const char* m : {"task", "ntkd", "twin_task", "twin_ntkd", "guarded"}) {
      const double v = row[m].get<double>();
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, 1.0);
    }
  }
  // The guard over both elements and the model it saved per fraction.
  const std::set<std::string> chosen = expect_guarded_models(p, a / "bench/moderate", distill::load_splits(cfg.data), true, cfg.guard_margin);
  std::cout << "guard over both elements chose:";
  for (const auto& c : chosen) std::cout << " " << c;
  std::cout << "\n";
  // The twin predicts the measured validation split better than the design model.
  EXPECT_LT(p["twin"]["residual"]["twin"].get<double>(), p["twin"]["residual"]["design"].get<double>());
  EXPECT_LT(none, sim_acc) << "the moderate profile's hardware errors cost nothing?";
  // Deferral to the teacher: "none" and the best re-fit at fmax, rates 0–30 % with thresholds from the
  // measured validation split; at rate 0 the curve is the model alone, and handing the least confident
  // third to the teacher does not make "none" worse.
  EXPECT_TRUE(fs::exists(a / "bench/moderate/deferral.png"));
  const auto& def = p["deferral"];
  ASSERT_EQ(def["models"].size(), 2u) << def.dump();
  const auto& none_curve = def["models"][0];
  EXPECT_EQ(none_curve["name"], "none");
  EXPECT_EQ(none_curve["threshold_source"], "measured validation split");
  EXPECT_EQ(none_curve["points"][0]["accuracy"].get<double>(), none);
  EXPECT_EQ(none_curve["points"][0]["rate"].get<double>(), 0.0);
  EXPECT_GE(none_curve["points"].back()["accuracy"].get<double>(), none);
  EXPECT_GT(none_curve["points"].back()["rate"].get<double>(), 0.2);
  // Drift checked on its schedule: after every 200 measured images and at the end of each set.
  EXPECT_GE(p["drift"]["checks"].size(), 4u);
  // Calibration against the simulator's ground truth.
  const auto& reg = p["calibration"]["registration"];
  const auto& truth = p["ground_truth"];
  EXPECT_NEAR(reg["shift_x_px"].get<double>(), truth["shift_x_px"].get<double>(), 0.2);
  EXPECT_NEAR(reg["shift_y_px"].get<double>(), truth["shift_y_px"].get<double>(), 0.2);
  // The element re-optimised (on by default for an SLM element): the fitted defocus near the profile's,
  // the measured kernels closer to the trained ones, its accuracy and the frames it took reported.
  const auto& re = p["element_reoptimised"];
  ASSERT_TRUE(re.contains("accuracy")) << re.dump();
  EXPECT_NEAR(re["pupil_fit"]["zernike_waves"]["4"].get<double>(), re["ground_truth"]["zernike_waves"]["4"].get<double>(), 0.01);
  EXPECT_GT(re["kernel_correlation"]["measured_after"]["mean"].get<double>(),
            re["kernel_correlation"]["measured_before"]["mean"].get<double>());
  EXPECT_EQ(re["accuracy"]["fractions"].size(), 2u) << "one row of re-fits on the new element per fraction";
  // Physics-aware fine-tuning on the smallest fraction (150 images, batches of 50, one epoch: 3 steps, each
  // through the bench with its own phase), its evaluation through the tuned phase, all frames counted.
  const auto& pa = re["physics_aware"];
  ASSERT_TRUE(pa.is_object()) << re.dump();
  EXPECT_EQ(pa["fraction"], 0.1);
  EXPECT_EQ(pa["history"].size(), 3u);
  EXPECT_EQ(pa["images_measured"], 150);
  EXPECT_GT(pa["bench_frames"]["training"].get<int>(), 150);
  EXPECT_GE(pa["bench_frames"]["evaluation"].get<int>(), 300 + int(distill::load_splits(cfg.data).val.size()));
  EXPECT_EQ(pa["frame_integrity"]["content_rejects"], 0);
  EXPECT_GT(pa["phase_change_rms_rad"].get<double>(), 0.0);
  EXPECT_TRUE(re["accuracy"]["fractions"][1].contains("physics_aware_val"));
  EXPECT_FALSE(re["accuracy"]["fractions"][0].contains("physics_aware_val")) << "only the smallest fraction";
  EXPECT_TRUE(fs::exists(a / "bench/moderate/element_reoptimised/physics_aware/phase.npy"));
  // Trained through the model with the fitted aberration on the whole training split (one epoch of
  // batches of 64), with no bench frame; then measured through its own phase like the fine-tuned one.
  const auto& tt = re["twin_trained"];
  ASSERT_TRUE(tt.is_object()) << re.dump();
  const int n_train = int(distill::load_splits(cfg.data).train.size());
  EXPECT_EQ(tt["trained_on"], n_train);
  EXPECT_EQ(tt["history"].size(), std::size_t((n_train + 63) / 64));
  EXPECT_EQ(tt["images_measured"], 0);
  EXPECT_EQ(tt["bench_frames"]["training"], 0);
  EXPECT_GE(tt["bench_frames"]["evaluation"].get<int>(), 300 + int(distill::load_splits(cfg.data).val.size()));
  EXPECT_EQ(tt["frame_integrity"]["content_rejects"], 0);
  EXPECT_GT(tt["phase_change_rms_rad"].get<double>(), 0.0);
  EXPECT_GT(tt["model_test_acc"].get<double>(), 0.5);
  for (const auto& row : re["accuracy"]["fractions"]) EXPECT_TRUE(row.contains("twin_trained_val")) << "every fraction";
  EXPECT_TRUE(fs::exists(a / "bench/moderate/element_reoptimised/twin_trained/phase.npy"));
  EXPECT_GT(re["accuracy"]["none"].get<double>(), none) << "the re-optimised element should beat the deployed one";
  EXPECT_GE(re["bench_frames"]["total"].get<int>(), re["bench_frames"]["calibration"].get<int>() + 300)
      << "the new element's calibration and at least its 300 test images";
  EXPECT_TRUE(fs::exists(a / "bench/moderate/element_reoptimised/psf_designed_before_after.png"));
  EXPECT_TRUE(fs::exists(a / "bench/moderate/element_reoptimised/phase.npy"));
  // Where the time went: every stage, and the bench stage's parts (also in its timings.json), each with
  // wall and CPU seconds; a part timed once per fraction counts each.
  const auto& tm = report_a["timings"];
  for (const char* st : {"teacher", "student", "deploy", "bench moderate"})
    EXPECT_TRUE(tm["stages"].contains(st)) << st << " not timed: " << tm.dump();
  const auto& parts = tm["bench"]["moderate"];
  for (const char* part : {"calibrate", "measure test", "twin: teacher NTK groups", "twin_ntkd", "reopt: design features"}) {
    ASSERT_TRUE(parts.contains(part)) << part << " not timed: " << parts.dump();
    EXPECT_GE(parts[part]["wall_s"].get<double>(), 0.0);
    EXPECT_GE(parts[part]["cpu_s"].get<double>(), 0.0);
  }
  EXPECT_EQ(parts["twin_ntkd"]["count"], 2) << "one twin NTKD re-fit per fraction";
  EXPECT_EQ(parts["reopt: twin_ntkd"]["count"], 2) << "and one per fraction on the re-optimised element";
  EXPECT_GT(parts["measure test"]["cpu_s"].get<double>(), 0.0) << "300 frames took no CPU time?";
  EXPECT_EQ(read_json_file(a / "bench/moderate/timings.json"), parts);

  // Interrupted in the middle of the bench stage, then resumed in a new process-like setting (fresh
  // devices, the same run directory).
  const fs::path b = fresh_dir("b");
  {
    SimBench sb;
    std::stop_source stop;
    PipelineControl ctl;
    ctl.work.progress = [&](std::int64_t d, std::int64_t, std::string_view s) {
      if (s == "bench moderate" && d >= 150) stop.request_stop();
    };
    ctl.work.stop = stop.get_token();
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

// A crash after any write of the deploy stage leaves a run that resumes, and the resumed stage gives
// the deployment an uninterrupted stage gives. The crash is an exception thrown from the after-write
// hook: every file before it is fsynced and nothing is written while it unwinds, so the directory is
// what a SIGKILL at that instant leaves.
// The 4f front-end student (parameterization fourier) through every stage on the coherent bench
// (configs/sim-4f.yaml): trained on the bench's element grid and pupil, deployed by its own phase (the SLM
// shows what it trained: realised kernels correlate ≈ 1 with the trained ones), calibrated against the
// simulator's ground truth, measured and compensated under the guard. What rests on intensity kernels
// (the kernel probes and twin, the element re-optimisation) is refused with the rule while on.
TEST(Pipeline, FourierStudentTrainsDeploysAndIsCompensatedOnTheCoherentBench) {
  auto j = small_config();
  j["student"]["options"] = {{"parameterization", "fourier"}, {"phase_rows", 64}, {"phase_cols", 64}, {"pupil", "circle"}};
  EXPECT_EQ(PipelineConfig::from_json(j).validate(),
            "bench.kernels.enabled must be false for a fourier student: the kernel probes and the twin fit intensity kernels "
            "of an intensity-parameterised student");
  j["bench"]["kernels"] = {{"enabled", false}};
  EXPECT_EQ(PipelineConfig::from_json(j).validate().rfind("bench.reoptimise_element.enabled must be false for a fourier student", 0), 0u);
  j["bench"]["reoptimise_element"] = {{"enabled", false}};
  EXPECT_EQ(PipelineConfig::from_json(j).validate(),
            "student.distill.ntk_param_set must be \"backend\" for a fourier student (its front-end has no optical NTK), got \"all\"");
  j["student"]["distill"]["ntk_param_set"] = "backend";
  const auto cfg = PipelineConfig::from_json(j);
  ASSERT_EQ(cfg.validate(), "");
  const fs::path d = fresh_dir("fourier");
  SimBench sb(kSource / "configs/sim-4f.yaml");
  const auto r = run_pipeline(cfg, sb.pb, d, {});
  ASSERT_TRUE(r.completed);
  const json& rep = r.report;
  EXPECT_GT(rep["deploy"]["kernel_correlation_mean"].get<double>(), 0.99) << "the SLM does not show the trained phase";
  EXPECT_GT(rep["deploy"]["simulated_acc"].get<double>(), 0.5);
  const auto deployed = distill::OpticalStudent::from_model(distill::read_model(d / "deploy/student.hilo"));
  EXPECT_EQ(deployed.options().parameterization, "fourier");
  const auto& p = rep["profiles"][0];
  const auto& reg = p["calibration"]["registration"];
  const auto& truth = p["ground_truth"];
  EXPECT_NEAR(reg["shift_x_px"].get<double>(), truth["shift_x_px"].get<double>(), 0.2);
  EXPECT_NEAR(reg["shift_y_px"].get<double>(), truth["shift_y_px"].get<double>(), 0.2);
  EXPECT_NEAR(reg["rotation_deg"].get<double>(), truth["rotation_deg"].get<double>(), 0.5);
  EXPECT_NEAR(p["calibration"]["gain"].get<double>(), truth["gain"].get<double>(), 0.03 * truth["gain"].get<double>());
  EXPECT_EQ(p["frame_integrity"]["content_rejects"].get<int>(), 0) << "frames of the coherent bench not recognised";
  // The guard chooses among none, task and NTKD (no twin modes without the twin) on the measured
  // validation split, and saves the chosen model.
  const double none_val = p["accuracy"]["none_val"].get<double>();
  for (const auto& row : p["accuracy"]["fractions"]) {
    EXPECT_FALSE(row.contains("twin_task")) << row.dump();
    const double best = std::max(row["task_val"].get<double>(), row["ntkd_val"].get<double>());
    EXPECT_EQ(row["guarded_val"].get<double>(), best > none_val + cfg.guard_margin ? best : none_val) << row.dump();
    EXPECT_TRUE(fs::exists(d / "bench/moderate" / row["guarded_model"].get<std::string>())) << row.dump();
  }
  fs::remove_all(d);
}

TEST(Pipeline, CrashAtAnyWriteOfTheDeployStageResumes) {
  auto j = small_config();
  j["data"]["train_limit"] = 600;
  j["teacher"]["train"]["epochs"] = 1;
  j["student"]["train"]["epochs"] = 1;
  j["bench"]["test_images"] = 100;
  const auto cfg = PipelineConfig::from_json(j);
  struct Crash {};
  // Runs until the deploy stage is complete (or the crash), then stops before the bench.
  auto run_to_deploy = [&](const fs::path& dir, const std::string& crash_at) {
    SimBench sb;
    std::stop_source deployed;
    PipelineControl ctl;
    ctl.work.progress = [&](std::int64_t d, std::int64_t t, std::string_view s) {
      if (s == "deploy" && d == t) deployed.request_stop();
    };
    ctl.work.stop = deployed.get_token();
    std::vector<std::string> points;
    ctl.after_write = [&](std::string_view where) {
      points.emplace_back(where);
      if (where == crash_at) throw Crash{};
    };
    bool crashed = false;
    try {
      (void)run_pipeline(cfg, sb.pb, dir, ctl);
    } catch (const Crash&) {
      crashed = true;
    }
    EXPECT_EQ(crashed, !crash_at.empty()) << crash_at;
    return points;
  };
  auto bytes = [](const fs::path& f) {
    std::ifstream in(f, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const fs::path ref = fresh_dir("deploy_ref");
  const auto points = run_to_deploy(ref, "");
  ASSERT_EQ(points, (std::vector<std::string>{"deploy.phase.npy", "deploy.kernels.png", "deploy.design_psf.png",
                                              "deploy.deployment.json", "deploy.student.hilo"}));
  for (const auto& at : points) {
    SCOPED_TRACE(at);
    const fs::path d = fresh_dir("deploy_crash");
    fs::create_directories(d);
    for (const char* stage : {"teacher", "student"}) fs::copy(ref / stage, d / stage, fs::copy_options::recursive);
    run_to_deploy(d, at);
    run_to_deploy(d, "");  // the resume
    for (const char* f : {"deploy/student.hilo", "deploy/deployment.json", "deploy/phase.npy"})
      EXPECT_EQ(bytes(d / f), bytes(ref / f)) << f << " differs from the uninterrupted stage's";
    fs::remove_all(d);
  }
  fs::remove_all(ref);
}

// A drift threshold below what the bench drifts raises the drift callback and updates the calibration.
TEST(Pipeline, DriftPastTheThresholdIsReportedAndApplied) {
  auto j = small_config();
  j["bench"]["drift_shift_px"] = 1e-4;  // any measurable drift exceeds it
  j["bench"]["drift_every"] = 100;
  j["measure"]["fractions"] = {0.05};
  j["bench"]["reoptimise_element"]["enabled"] = false;  // not what this test is about
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
  EXPECT_EQ(r.report["profiles"][0]["element_reoptimised"]["skipped"], "bench.reoptimise_element.enabled is false");
  fs::remove_all(d);
}

TEST(Pipeline, ProfilesNeedTheSimulator) {
  SimBench sb;
  sb.pb.reset_simulator = nullptr;  // as on hardware
  auto cfg = PipelineConfig::from_json(small_config());
  // Regression: hilod's pipeline job ran with OpenMP's default thread count, ignoring `threads`;
  // run_pipeline now sets it for every front end, before anything can fail.
  cfg.threads = 3;
  distill::set_compute_threads(1);
  EXPECT_THROW(run_pipeline(cfg, sb.pb, fresh_dir("c"), {}), std::invalid_argument);
  EXPECT_EQ(distill::compute_threads(), 3);
  distill::set_compute_threads(1);
}

// The seed streams (pipeline_seeds.hpp): every stage number of every stream, for every profile and step
// a valid config allows, is distinct from every other stream's, and so is every generator seed
// (stage_seed and the twin NTKD's seed + 1) for one pipeline seed. Regression: the element
// re-optimisation's re-fits drew from the twin re-fits' block (500 + 10p + s).
TEST(PipelineSeeds, StreamsOfOneRunNeverShareASeed) {
  std::map<std::uint64_t, std::string> stage_owner;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::string> seed_owner;  // (pipeline seed, generator seed)
  for (const auto& info : kSeedStreams) {
    const int profiles = info.per_profile == 0 ? 1 : kMaxProfiles;
    for (int p = 0; p < profiles; ++p)
      for (int s = 0; s < int(info.steps); ++s) {
        const std::string who = std::string(info.name) + "[" + std::to_string(p) + "," + std::to_string(s) + "]";
        const std::uint64_t stage = stream_stage(info.stream, p, s);
        EXPECT_TRUE(stage_owner.emplace(stage, who).second) << who << " shares stage " << stage << " with " << stage_owner[stage];
        for (std::uint64_t seed : {1ull, 12345ull})
          for (std::uint64_t off = 0;
               off <= (info.stream == SeedStream::twin_refit || info.stream == SeedStream::reopt_twin_refit ? 1u : 0u); ++off) {
            const std::uint64_t v = stage_seed(seed, stage) + off;
            EXPECT_TRUE(seed_owner.emplace(std::pair{seed, v}, who).second) << who << " shares generator seed " << v;
          }
      }
  }
  EXPECT_THROW(stream_stage(SeedStream::refit, 0, 2 * kMaxFractions), std::out_of_range);
  EXPECT_THROW(stream_stage(SeedStream::bench, kMaxProfiles), std::out_of_range);
  EXPECT_THROW(stream_stage(SeedStream::ntk_groups, 1), std::out_of_range);
  // The numbers of the streams that existed before the table are unchanged (earlier reports reproduce).
  EXPECT_EQ(stream_stage(SeedStream::refit, 2, 3), 323u);
  EXPECT_EQ(stream_stage(SeedStream::twin_refit, 1, 4), 514u);
  EXPECT_EQ(stream_stage(SeedStream::ntk_groups), 600u);
  // A config whose profiles or fractions would run past a block is refused naming the key.
  auto j = small_config();
  j["measure"]["fractions"] = {0.5, 0.4, 0.3, 0.2, 0.1};
  EXPECT_NE(PipelineConfig::from_json(j).validate().find("measure.fractions holds at most 4"), std::string::npos);
  j = small_config();
  j["bench"]["profiles"] = json::array();
  for (int i = 0; i <= kMaxProfiles; ++i) j["bench"]["profiles"].push_back("p" + std::to_string(i));
  EXPECT_NE(PipelineConfig::from_json(j).validate().find("bench.profiles holds at most 10"), std::string::npos);
}

// Drift re-compensation from the twin, end to end in process (bench.drift_recompensate): the moderate
// profile with its slow shift drift made fast enough (kDriftPxPerS, the as-built drift model) that the
// image has moved by pixels when the stage ends, with drift_action "report" so the calibration in use
// stays the one made before the drift. The stage's closing drift check must pass the 0.5 px threshold,
// and the event must re-calibrate, rebuild the twin and re-fit without measuring the training subset
// again. The deployed backend through the stale calibration (before) and the re-fit through the new
// calibration (after) are scored on the same holdout of n = 300 test images: each accuracy's standard
// error is at most sqrt(0.25 / n) = 0.029, so a difference of two independent ones at most
// sqrt(2 · 0.25 / n) = 0.041; the test asks for 3 of those, 0.12, which chance alone does not give.
// The seeds every generator of this run drew are distinct (pipeline_seeds.hpp): this run includes the
// re-optimised element's re-fits, whose seeds once equalled the twin re-fits'.
TEST(Pipeline, DriftRecompensationFromTheTwinBeatsTheStaleCalibration) {
  constexpr double kDriftPxPerS = 0.1;
  auto j = small_config();
  j["bench"]["drift_action"] = "report";
  j["bench"]["drift_recompensate"] = {{"enabled", true}, {"holdout_images", 300}};
  j["bench"]["reoptimise_element"] = {{"enabled", true}, {"compensate", true}};
  j["measure"]["fractions"] = {0.2, 0.1};
  const auto cfg = PipelineConfig::from_json(j);
  ASSERT_EQ(cfg.validate(), "");
  const fs::path d = fresh_dir("recompensate");
  SimBench sb;
  auto load = sb.pb.load_profile;
  sb.pb.load_profile = [load](const std::string& name) {
    auto p = load(name);
    p.drift.shift_x_px_per_s = kDriftPxPerS;
    p.drift.shift_y_px_per_s = -0.5 * kDriftPxPerS;
    return p;
  };
  std::vector<std::string> stages;
  PipelineControl ctl;
  ctl.work.progress = [&](std::int64_t, std::int64_t, std::string_view s) {
    if (stages.empty() || stages.back() != s) stages.emplace_back(s);
  };
  const auto r = run_pipeline(cfg, sb.pb, d, ctl);
  ASSERT_TRUE(r.completed);
  const auto& p = r.report["profiles"][0];
  const auto& ev = p["recompensation"];
  ASSERT_TRUE(ev["triggered"].get<bool>()) << ev.dump();
  EXPECT_NE(std::find(stages.begin(), stages.end(), "bench moderate: recompensate"), stages.end());
  EXPECT_TRUE(ev["trigger"]["exceeded"].get<bool>());
  EXPECT_GT(ev["drift"]["displacement_px"].get<double>(), cfg.drift.shift_threshold_px);
  EXPECT_EQ(ev["holdout_images"], 300);
  // measured_rows "auto" under drift_action "report": the subset was measured through the stale
  // calibration, so its rows are left out (docs/pipeline.md, "Keep or exclude the measured rows").
  EXPECT_EQ(ev["measured_rows"], "exclude");
  EXPECT_EQ(ev["measured_images"], 0);
  // Frames: a calibration, the kernel probes and the holdout twice; never the training subset again.
  const auto& fr = ev["frames"];
  EXPECT_GE(fr["holdout_stale"].get<int>(), 300);
  EXPECT_GT(fr["calibration"].get<int>(), 0);
  EXPECT_EQ(fr["kernel_probes"], p["twin"]["kernels"]["frames"]);
  EXPECT_LT(fr["total"].get<int>(), 300 * 2 + fr["calibration"].get<int>() + fr["kernel_probes"].get<int>() + 200)
      << "more frames than a calibration, the probes, the holdout twice and the drift checks";
  const double before = ev["accuracy"]["before"].get<double>(), after = ev["accuracy"]["after"].get<double>();
  const double recal = ev["accuracy"]["recalibrated"].get<double>();
  std::cout << "recompensation: drift " << ev["drift"]["displacement_px"] << " px, accuracy " << ev["accuracy"].dump()
            << ", frames " << fr.dump() << ", twin residual on the holdout " << ev["twin"]["residual_holdout"] << "\n";
  EXPECT_GT(after, before + 0.12) << ev["accuracy"].dump();
  EXPECT_GT(recal, before) << "the new calibration alone should undo part of the drift";
  for (const char* f : {"event.json", "student.hilo", "calibration/calibration.json", "frame_log.npy", "kernels_designed_vs_measured.png"})
    EXPECT_TRUE(fs::exists(d / "bench/moderate/recompensation" / f)) << f;
  // The seed streams of one run are distinct.
  std::map<std::uint64_t, std::string> seen;
  std::set<std::string> streams;
  for (const auto& s : r.report["seeds"]) {
    const auto who = s["stream"].get<std::string>() + "[" + s["profile"].dump() + "," + s["step"].dump() + "+" + s["offset"].dump() + "]";
    streams.insert(s["stream"].get<std::string>());
    EXPECT_TRUE(seen.emplace(s["seed"].get<std::uint64_t>(), who).second) << who << " draws the seed of " << seen[s["seed"].get<std::uint64_t>()];
  }
  for (const char* want : {"teacher", "student", "deploy", "simulator", "bench", "refit", "twin", "twin_refit", "reopt_refit",
                           "recompensation", "reopt_twin", "reopt_twin_refit"})
    EXPECT_TRUE(streams.count(want)) << "no seed drawn from stream " << want;
  const std::set<std::string> chosen = expect_guarded_models(p, d / "bench/moderate", distill::load_splits(cfg.data), true, cfg.guard_margin);
  std::cout << "guard over both elements chose:";
  for (const auto& c : chosen) std::cout << " " << c;
  std::cout << "\n";
  fs::remove_all(d);
}
