// The pipeline job (run_pipeline over PipelineStages), the bench it drives (pipeline_bench) and the
// compensation sweep over a finished run.
#include "hilo/controller/pipeline.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <stdexcept>

#include "hilo/calibration/selection_study.hpp"
#include "hilo/controller/dataset.hpp"
#include "hilo/io/figures.hpp"
#include "hilo/controller/pipeline_stages.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/distill/threads.hpp"
#include "hilo/sim/config.hpp"
#include "pipeline_timing.hpp"

namespace hilo::controller {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// What a finished run's re-fits need: its dataset, teacher and deployed student.
struct FinishedRun {
  distill::Splits data;
  distill::Sequential<float> teacher;
  distill::OpticalStudent deployed;
  explicit FinishedRun(const fs::path& run_dir)
      : data(distill::load_splits(PipelineConfig::from_json(read_json_file(run_dir / "config.json")).data, image_decoder())),
        teacher(distill::sequential_from_model<float>(distill::read_model(run_dir / "teacher" / "teacher.hilo"))),
        deployed(distill::OpticalStudent::from_model(distill::read_model(run_dir / "deploy" / "student.hilo"))) {}
  calibration::SweepInputs inputs() { return {data, teacher, deployed}; }
};

}  // namespace

json sweep_compensation(const fs::path& run_dir, const std::string& profile, const std::vector<SweepEntry>& grid,
                        const std::vector<std::uint64_t>& seeds, const std::vector<double>& fractions,
                        const std::function<void(const std::string&)>& log) {
  FinishedRun run(run_dir);
  return calibration::sweep_compensation(run_dir / "bench" / profile, profile, run.inputs(), grid, seeds, fractions, log);
}

json compare_selection(const fs::path& run_dir, const std::string& profile, const std::vector<SweepEntry>& grid,
                       const std::vector<calibration::SubsetStrategy>& strategies, const std::vector<double>& fractions,
                       const std::vector<std::uint64_t>& seeds, const std::function<void(const std::string&)>& log) {
  FinishedRun run(run_dir);
  return calibration::compare_selection(run_dir / "bench" / profile, profile, run.inputs(), grid, strategies, fractions,
                                        seeds, log);
}

void write_selection_figure(const json& study, const fs::path& png) {
  std::map<std::string, std::map<std::string, io::Series>> by_entry;  // name → strategy → series
  std::vector<double> fractions;
  for (const auto& c : study.at("summary")) {
    auto& s = by_entry[c.at("name").get<std::string>()][c.at("strategy").get<std::string>()];
    s.label = c.at("strategy").get<std::string>();
    const double f = 100.0 * c.at("fraction").get<double>();
    s.x.push_back(f);
    s.y.push_back(100.0 * c.at("refit_mean").get<double>());
    fractions.push_back(f);
  }
  if (by_entry.empty()) throw std::invalid_argument("write_selection_figure: the study has no rows");
  const auto [lo, hi] = std::minmax_element(fractions.begin(), fractions.end());
  std::vector<cv::Mat> panels;
  for (auto& [name, series] : by_entry) {
    std::vector<io::Series> all;
    for (auto& [strategy, s] : series) all.push_back(std::move(s));
    const double none = 100.0 * study.at("none").get<double>();
    all.push_back({"none", {*lo, *hi}, {none, none}});
    io::LinePlotOptions o;
    o.title = study.at("profile").get<std::string>() + ", " + name + ": re-fit by measured subset, mean of " +
              std::to_string(study.at("summary")[0].at("seeds").get<int>()) + " seeds";
    o.x_label = "measured share of the training set (%)";
    o.y_label = "test accuracy (%)";
    panels.push_back(io::render_line_plot(all, o));
  }
  cv::Mat out;
  cv::vconcat(panels, out);
  io::write_png(png, out);
}

PipelineBench pipeline_bench(drivers::OpenBench& bench, const drivers::BenchConfig& config, const fs::path& config_path) {
  if (!config.design)
    throw std::invalid_argument(config_path.string() + ": the pipeline needs a `design:` section (the optics as designed)");
  PipelineBench b{*bench.input, bench.element.get(), *bench.camera, *config.design};
  b.mutex = &bench.mutex;
  b.now_s = [clock = bench.clock.get()] { return clock->now_s(); };
  if (bench.simulator) {
    b.simulator = bench.simulator.get();
    const fs::path dir = config_path.parent_path();
    b.load_profile = [dir](const std::string& name) { return sim::load_profile(dir / "profiles" / (name + ".yaml")); };
    b.reset_simulator = [sim = bench.simulator.get(), sim_cam = bench.sim_camera,
                         virtual_clock = bench.virtual_clock](const sim::AsBuiltProfile& p, std::uint64_t seed) {
      sim->set_profile(p);
      if (sim_cam) sim_cam->reseed(seed);
      if (virtual_clock) virtual_clock->rewind_to(0.0);
    };
  }
  return b;
}

PipelineResult run_pipeline(const PipelineConfig& config, PipelineBench& bench, const fs::path& run_dir,
                            const PipelineControl& control) {
  // Every front end gets config.threads here: hilod's pipeline job once ran its stages with OpenMP's
  // default (every core) because each caller was left to set it and that one did not.
  distill::set_compute_threads(config.threads);
  PipelineStages st(config, bench, run_dir, control);
  if (!config.profiles.empty() && !bench.reset_simulator)
    throw std::invalid_argument("pipeline: bench.profiles needs the simulator (this bench is hardware; leave profiles empty)");
  PipelineResult out;
  try {
    json& stages = st.timings()["stages"];
    std::optional<PartTimer> lap(std::in_place, stages, "data");
    st.load_data();
    lap.emplace(stages, "teacher");
    st.teacher();
    if (st.stop()) throw StageStopped{};
    lap.emplace(stages, "student");
    st.student();
    if (st.stop()) throw StageStopped{};
    lap.emplace(stages, "deploy");
    st.deploy();
    json profiles = json::array();
    const std::vector<std::string> names = config.profiles.empty() ? std::vector<std::string>{"bench"} : config.profiles;
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (st.stop()) throw StageStopped{};
      lap.emplace(stages, "bench " + names[i]);
      profiles.push_back(st.bench(names[i], int(i)));
    }
    lap.reset();
    out.report = st.report(profiles);
    out.completed = true;
  } catch (const StageStopped&) {
    st.log("pipeline: stopped; completed stages are kept in " + run_dir.string());
    out.completed = false;
  }
  return out;
}

}  // namespace hilo::controller
