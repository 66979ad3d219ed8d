#pragma once
// The pipeline's seed streams: every generator a pipeline run seeds, in one table.
//
// A generator's seed is stage_seed(config.seed, stage) (pipeline.hpp), and each consumer owns a block of
// stage numbers:  stage = base + profile · per_profile + step,  profile < kMaxProfiles, step < steps.
// The blocks are disjoint for every profile and step the config allows (PipelineConfig::validate keeps
// bench.profiles at most kMaxProfiles long and measure.fractions at most kMaxFractions long), so two
// consumers never draw the same numbers; stage_seed is injective in the stage for one pipeline seed.
// The numbers of the streams that existed before the table are kept, so earlier reports reproduce;
// the element re-optimisation's re-fits drew from the twin re-fits' block before (500 + …) and moved to
// their own (700 + …).
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace hilo::controller {

inline constexpr int kMaxProfiles = 10;   // bench.profiles (each profile's stage seeds its own block)
inline constexpr int kMaxFractions = 4;   // measure.fractions (the re-fit steps of one profile)

enum class SeedStream {
  teacher,        // 1: the teacher's training
  student,        // 2: the student's distillation
  deploy,         // 3: phase retrieval and the design re-fit
  simulator,      // 100 + p: the simulated camera's noise, re-seeded per profile stage
  bench,          // 200 + p: the bench stage: calibration, drift reference, subset draws, re-opt. design
  refit,          // 300 + 10p + s: backend re-fits, s = 2k (task) and 2k + 1 (NTKD) for the k-th fraction
  twin,           // 400 + p: kernel probes, the twin's training-feature noise
  twin_refit,     // 500 + 10p + 2k + 2: the k-th fraction's twin re-fits (twin_task; twin_ntkd takes seed + 1)
  ntk_groups,     // 600: the twin NTKD's teacher NTK groups, once per job
  reopt_refit,    // 700 + 10p + s: re-fits on the re-optimised element (bench.reoptimise_element.compensate)
  recompensation,  // 800 + p: a drift re-compensation (calibration, kernel probes, twin noise, re-fit)
  reopt_twin,      // 900 + p: the re-optimised element's kernel probes and its twin's training-feature noise
  reopt_twin_refit,  // 1000 + 10p + 2k + 2: its k-th fraction's twin re-fits (twin_ntkd takes seed + 1)
  physics_aware,     // 1100 + p: the physics-aware fine-tuning's batch order
  twin_train         // 1200 + p: the twin-trained element's batch order
};

struct SeedStreamInfo {
  SeedStream stream;
  std::string_view name;
  std::uint64_t base;
  std::uint64_t per_profile;  // 0: one per job
  std::uint64_t steps;        // step < steps
};

inline constexpr std::array<SeedStreamInfo, 15> kSeedStreams{{
    {SeedStream::teacher, "teacher", 1, 0, 1},
    {SeedStream::student, "student", 2, 0, 1},
    {SeedStream::deploy, "deploy", 3, 0, 1},
    {SeedStream::simulator, "simulator", 100, 1, 1},
    {SeedStream::bench, "bench", 200, 1, 1},
    {SeedStream::refit, "refit", 300, 10, 2 * kMaxFractions},
    {SeedStream::twin, "twin", 400, 1, 1},
    {SeedStream::twin_refit, "twin_refit", 500, 10, 2 * kMaxFractions + 1},  // 2k + 2 and its seed + 1
    {SeedStream::ntk_groups, "ntk_groups", 600, 0, 1},
    {SeedStream::reopt_refit, "reopt_refit", 700, 10, 2 * kMaxFractions},
    {SeedStream::recompensation, "recompensation", 800, 1, 1},
    {SeedStream::reopt_twin, "reopt_twin", 900, 1, 1},
    {SeedStream::reopt_twin_refit, "reopt_twin_refit", 1000, 10, 2 * kMaxFractions + 1},
    {SeedStream::physics_aware, "physics_aware", 1100, 1, 1},
    {SeedStream::twin_train, "twin_train", 1200, 1, 1},
}};

constexpr const SeedStreamInfo& seed_stream_info(SeedStream s) { return kSeedStreams[std::size_t(s)]; }

// The stage number of `step` of stream s in the profile stage `profile` (0 for one-per-job streams).
// Throws std::out_of_range naming the stream for a profile or step outside its block.
inline std::uint64_t stream_stage(SeedStream s, int profile = 0, int step = 0) {
  const auto& i = seed_stream_info(s);
  if (profile < 0 || profile >= kMaxProfiles || (i.per_profile == 0 && profile != 0) || step < 0 ||
      std::uint64_t(step) >= i.steps)
    throw std::out_of_range("seed stream " + std::string(i.name) + ": profile " + std::to_string(profile) + ", step " +
                            std::to_string(step) + " is outside its block");
  return i.base + std::uint64_t(profile) * i.per_profile + std::uint64_t(step);
}

}  // namespace hilo::controller
