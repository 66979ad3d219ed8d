// The pipeline on a lab's own RGB data: a generated dataset in the CIFAR-10 binary format (32×32 RGB
// records), read through data.name "cifar10-bin", converted to luminance at the input, run through every
// stage on the simulated 32×32 bench of configs/sim-32.yaml with small settings.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "hilo/controller/pipeline.hpp"

using namespace hilo;
using namespace hilo::controller;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kSource = HILO_TEST_SOURCE_DIR;

// n records of 10 classes: class k is a grating of orientation (k mod 5)·36° and 2 or 4 cycles across the
// image (k < 5 or not), random phase, in a random colour, plus noise. The classes differ in luminance
// structure, so the single-channel optics can tell them apart; the colour carries no label.
void write_batch(const fs::path& p, int n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, 0.04);
  std::string b;
  for (int i = 0; i < n; ++i) {
    const int k = static_cast<int>(rng() % 10);
    const double th = (k % 5) * M_PI / 5, f = k < 5 ? 2.0 : 4.0, ph = 2 * M_PI * u(rng);
    const double col[3] = {0.4 + 0.6 * u(rng), 0.4 + 0.6 * u(rng), 0.4 + 0.6 * u(rng)};
    b.push_back(static_cast<char>(k));
    for (int ch = 0; ch < 3; ++ch)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) {
          const double g = 0.5 + 0.4 * std::sin(2 * M_PI * f * (x * std::cos(th) + y * std::sin(th)) / 32 + ph);
          const double v = std::clamp(col[ch] * g + noise(rng), 0.0, 1.0);
          b.push_back(static_cast<char>(static_cast<int>(std::lround(v * 255))));
        }
  }
  std::ofstream(p, std::ios::binary) << b;
}

}  // namespace

TEST(PipelineRgb, RunsEveryStageOnAGeneratedCifar10BinaryDataset) {
  const fs::path d = fs::temp_directory_path() / ("hilo_test_pipeline_rgb_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d / "cifar");
  std::mt19937_64 rng(7);
  write_batch(d / "cifar" / "data_batch_1.bin", 500, rng);
  write_batch(d / "cifar" / "data_batch_2.bin", 300, rng);
  write_batch(d / "cifar" / "test_batch.bin", 150, rng);
  const auto cfg = PipelineConfig::from_json(json::parse(R"({
    "data": {"name": "cifar10-bin", "dir": ")" + (d / "cifar").string() + R"(", "val_size": 100},
    "teacher": {"arch": {"channels": [8], "hidden": 32},
                "train": {"epochs": 3, "batch_size": 32, "optimizer": {"kind": "adam", "lr": 0.003}}},
    "student": {"options": {"kernels": 8, "hidden": 64},
                "train": {"epochs": 4, "batch_size": 32, "optimizer": {"kind": "adam", "lr": 0.003}},
                "distill": {"method": "kd"}},
    "deploy": {"gs_iterations": 20, "adam_iterations": 40, "design_refit_epochs": 2},
    "bench": {"profiles": ["moderate"], "drift_every": 1000},
    "measure": {"fractions": [0.25]},
    "compensation": {"task": {"epochs": 4}, "ntkd": {"epochs": 4, "ntk_subbatch": 8}}
  })"));
  const fs::path bench_file = kSource / "configs/sim-32.yaml";
  const auto config = drivers::load_bench_config(bench_file);
  auto bench = drivers::open_bench(config, {.virtual_time = true});
  auto pb = pipeline_bench(*bench, config, bench_file);
  const auto r = run_pipeline(cfg, pb, d / "run", {});
  ASSERT_TRUE(r.completed);
  const auto& rep = r.report;
  for (const char* f : {"report.json", "accuracy_table.png", "deploy/kernels.png", "bench/moderate/frames.png",
                        "bench/moderate/confusion_none.png", "bench/moderate/result.json"})
    EXPECT_TRUE(fs::exists(d / "run" / f)) << f;
  // The whole test batch (150 records) is measured through the bench; 10 classes, chance 0.1.
  const double sim_acc = rep["deploy"]["simulated_acc"].get<double>();
  const auto& p = rep["profiles"][0];
  const double none = p["accuracy"]["none"].get<double>();
  std::cout << "teacher " << rep["teacher"].dump() << "\nsimulated " << sim_acc << "  bench none " << none << "  "
            << p["accuracy"]["fractions"].dump() << "\n";
  EXPECT_GT(sim_acc, 0.3) << "the deployed design learned little from the luminance gratings";
  EXPECT_GT(none, 0.2);
  fs::remove_all(d);
}
