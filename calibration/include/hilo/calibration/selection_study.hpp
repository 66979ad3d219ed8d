#pragma once
// Which training images to measure: the subset strategies (subset.hpp) compared by the compensation
// they give, on a finished profile stage's stored measurements (the files the sweep reads: result.json,
// test_features.npy, val_features.npy, subset_features.npy). No device is touched and no bench frame
// is spent: every strategy draws its f-subset inside the measured set the stage stored (nested, as the
// pipeline draws its smaller fractions: fraction f / fmax of it; coverage and uncertainty see the
// teacher's outputs on those images), so all strategies choose from the same measured images.
//
// For every fraction f < fmax, strategy and seed s: the subset is drawn with generator seed s, the
// re-fit (compensate(), each grid entry) runs with generator seed s as well — so the strategies are
// paired by seed: the same re-fit randomness, another subset — and the pipeline's held-out guard
// (guard_against_none on the measured validation split) decides between the re-fit and "none".
// Rows: {"strategy", "name", "fraction", "seed", "measured", "val_accuracy", "refit_accuracy",
// "accuracy" (after the guard), "kept_none"}. Summary per (strategy, name, fraction): mean and sample
// standard deviation over seeds of refit_accuracy and accuracy, and the mean paired difference of
// refit_accuracy to the first strategy given (its reference) with its standard error.
// Throws std::runtime_error for missing or inconsistent files, std::invalid_argument for a fraction not
// in (0, fmax) or an empty strategy or seed list.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/calibration/experiment.hpp"

namespace hilo::calibration {

nlohmann::json compare_selection(const std::filesystem::path& profile_dir, const std::string& profile, const SweepInputs& in,
                                 const std::vector<SweepEntry>& grid, const std::vector<SubsetStrategy>& strategies,
                                 const std::vector<double>& fractions, const std::vector<std::uint64_t>& seeds,
                                 const std::function<void(const std::string&)>& log = {});

}  // namespace hilo::calibration
