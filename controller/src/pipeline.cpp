// The pipeline job (run_pipeline over PipelineStages), the bench it drives (pipeline_bench) and the
// compensation sweep over a finished run.
#include "hilo/controller/pipeline.hpp"
#include "hilo/controller/dataset.hpp"

#include <fstream>
#include <stdexcept>

#include "hilo/controller/pipeline_stages.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/sim/config.hpp"

namespace hilo::controller {

namespace fs = std::filesystem;
using nlohmann::json;

json sweep_compensation(const fs::path& run_dir, const std::string& profile, const std::vector<SweepEntry>& grid,
                        const std::vector<std::uint64_t>& seeds, const std::vector<double>& fractions,
                        const std::function<void(const std::string&)>& log) {
  const PipelineConfig c = PipelineConfig::from_json(read_json_file(run_dir / "config.json"));
  const distill::Splits data = distill::load_splits(c.data, image_decoder());
  auto teacher = distill::sequential_from_model<float>(distill::read_model(run_dir / "teacher" / "teacher.hilo"));
  const auto deployed = distill::OpticalStudent::from_model(distill::read_model(run_dir / "deploy" / "student.hilo"));
  return calibration::sweep_compensation(run_dir / "bench" / profile, profile, {data, teacher, deployed}, grid, seeds,
                                         fractions, log);
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
  PipelineStages st(config, bench, run_dir, control);
  if (!config.profiles.empty() && !bench.reset_simulator)
    throw std::invalid_argument("pipeline: bench.profiles needs the simulator (this bench is hardware; leave profiles empty)");
  PipelineResult out;
  try {
    st.load_data();
    st.teacher();
    if (st.stop()) throw StageStopped{};
    st.student();
    if (st.stop()) throw StageStopped{};
    st.deploy();
    json profiles = json::array();
    const std::vector<std::string> names = config.profiles.empty() ? std::vector<std::string>{"bench"} : config.profiles;
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (st.stop()) throw StageStopped{};
      profiles.push_back(st.bench(names[i], int(i)));
    }
    out.report = st.report(profiles);
    out.completed = true;
  } catch (const StageStopped&) {
    st.log("pipeline: stopped; completed stages are kept in " + run_dir.string());
    out.completed = false;
  }
  return out;
}

}  // namespace hilo::controller
