// hilo-pipeline: runs the hardware-in-the-loop pipeline in this process, on the bench of --config
// (drivers::open_bench). A simulated bench runs on a virtual clock (time advances by the devices'
// timing model, nothing sleeps); a bench with any hardware role runs on the steady clock.
// Exit codes: 0 done, 1 stopped, 2 bad config or a failed stage, 3 a device that could not be opened.
// The daemon's `pipeline` command runs the same code (controller/pipeline.hpp); this entry point serves
// scripts and experiments that want no daemon.
#include <iostream>

#include <CLI/CLI.hpp>

#include "hilo/controller/pipeline.hpp"
#include "hilo/distill/jobs.hpp"
#include "hilo/distill/threads.hpp"

int main(int argc, char** argv) {
  CLI::App app{"hilo-pipeline — teacher → student → deploy → calibrate → measure → compensate → evaluate"};
  std::string config = "configs/sim.yaml", job, out = "runs/pipeline";
  app.add_option("--config", config, "bench config (YAML with a design section, or a simulator section)");
  app.add_option("--job", job, "pipeline settings (YAML or JSON); default: the built-in defaults");
  app.add_option("--out", out, "run directory (an existing one is resumed)");
  std::string sweep_profile, sweep_grid;
  std::vector<std::uint64_t> sweep_seeds{1, 2, 3};
  auto* sweep = app.add_subcommand("sweep", "compensation sweep on a finished run's stored measurements (no devices)");
  sweep->add_option("--profile", sweep_profile, "profile stage (bench/<profile>)")->required();
  sweep->add_option("--grid", sweep_grid, "YAML/JSON mapping: name -> compensation options (mode, epochs, lr, batch, "
                                          "ntk_subbatch, alpha, beta, distance)")->required();
  sweep->add_option("--seeds", sweep_seeds, "re-fit seeds");
  std::vector<double> sweep_fractions;
  sweep->add_option("--fractions", sweep_fractions, "fractions of the run to sweep (default: all)");
  std::string select_profile, select_grid, select_png;
  std::vector<std::string> select_strategies{"class_balanced", "random", "coverage", "uncertainty"};
  std::vector<double> select_fractions{0.02};
  std::vector<std::uint64_t> select_seeds{1, 2, 3, 4, 5};
  auto* select = app.add_subcommand(
      "select", "which training images to measure: subset strategies compared by the re-fit they give, inside a finished "
                "run's stored measured subset (no devices); JSON on stdout");
  select->add_option("--profile", select_profile, "profile stage (bench/<profile>)")->required();
  select->add_option("--grid", select_grid, "YAML/JSON mapping: name -> compensation options, as for sweep")->required();
  select->add_option("--strategies", select_strategies, "strategies; the first is the paired differences' reference");
  select->add_option("--fractions", select_fractions, "shares of the training set, each below the run's largest");
  select->add_option("--seeds", select_seeds, "seeds (each draws the subset and seeds the re-fit)");
  select->add_option("--png", select_png, "also write the figure (accuracy against the measured share per strategy)");
  CLI11_PARSE(app, argc, argv);
  // sweep and select re-fit with the run's own thread count, on a grid file: name -> compensation options.
  auto use_run_threads = [&] {
    hilo::distill::set_compute_threads(
        hilo::controller::PipelineConfig::from_json(hilo::distill::load_config_file(out + "/config.json")).threads);
  };
  auto read_grid = [](const std::string& file) {
    std::vector<hilo::controller::SweepEntry> grid;
    const auto grid_json = hilo::distill::load_config_file(file);
    for (const auto& [name, j] : grid_json.items()) grid.push_back(hilo::controller::sweep_entry_from_json(name, j));
    return grid;
  };
  if (*select) {
    try {
      use_run_threads();
      const auto grid = read_grid(select_grid);
      std::vector<hilo::calibration::SubsetStrategy> strategies;
      for (const auto& s : select_strategies) strategies.push_back(hilo::calibration::parse_subset_strategy(s));
      const auto r = hilo::controller::compare_selection(out, select_profile, grid, strategies, select_fractions, select_seeds,
                                                         [](const std::string& s) { std::cerr << s << "\n"; });
      if (!select_png.empty()) hilo::controller::write_selection_figure(r, select_png);
      std::cout << r.dump(2) << "\n";
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "hilo-pipeline select: " << e.what() << "\n";
      return 2;
    }
  }
  if (*sweep) {
    try {
      use_run_threads();
      const auto grid = read_grid(sweep_grid);
      const auto r = hilo::controller::sweep_compensation(out, sweep_profile, grid, sweep_seeds, sweep_fractions,
                                                          [](const std::string& s) { std::cerr << s << "\n"; });
      std::cout << r.dump(2) << "\n";
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "hilo-pipeline sweep: " << e.what() << "\n";
      return 2;
    }
  }
  try {
    const auto pc = job.empty() ? hilo::controller::PipelineConfig::defaults()
                                : hilo::controller::PipelineConfig::from_json(hilo::distill::load_config_file(job));
    const auto bc = hilo::drivers::load_bench_config(config);
    hilo::drivers::OpenOptions oo;
    oo.virtual_time = !bc.has_hardware();
    auto bench = hilo::drivers::open_bench(bc, oo);
    auto pb = hilo::controller::pipeline_bench(*bench, bc, config);
    hilo::controller::PipelineControl ctl;
    std::string last;
    ctl.work.progress = [&](std::int64_t d, std::int64_t t, std::string_view stage) {
      if (stage != last) std::cerr << "\n";
      last = stage;
      std::cerr << "\r[" << stage << "] " << d << "/" << t << std::flush;
    };
    ctl.log = [](const std::string& s) { std::cerr << "\n" << s << std::flush; };
    const auto r = hilo::controller::run_pipeline(pc, pb, out, ctl);
    std::cerr << "\n";
    std::cout << r.report.dump(2) << "\n";
    return r.completed ? 0 : 1;
  } catch (const hilo::drivers::BenchOpenError& e) {
    std::cerr << "\nhilo-pipeline: " << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "\nhilo-pipeline: " << e.what() << "\n";
    return 2;
  }
}
