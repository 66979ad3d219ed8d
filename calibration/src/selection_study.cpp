#include "hilo/calibration/selection_study.hpp"

#include <cmath>
#include <map>
#include <stdexcept>
#include <tuple>

#include "hilo/distill/train.hpp"

namespace hilo::calibration {

namespace fs = std::filesystem;
using nlohmann::json;
using distill::MatD;

namespace {

struct Stats {
  double mean = 0, sd = 0;
};
Stats stats(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  if (v.size() > 1) {
    for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(s.sd / double(v.size() - 1));
  }
  return s;
}

}  // namespace

json compare_selection(const fs::path& profile_dir, const std::string& profile, const SweepInputs& in,
                       const std::vector<SweepEntry>& grid, const std::vector<SubsetStrategy>& strategies,
                       const std::vector<double>& fractions, const std::vector<std::uint64_t>& seeds,
                       const std::function<void(const std::string&)>& log) {
  if (strategies.empty() || seeds.empty() || grid.empty())
    throw std::invalid_argument("compare_selection: needs at least one strategy, one seed and one grid entry");
  const StoredMeasurements st = read_stored_measurements(profile_dir, in.data);
  for (double f : fractions)
    if (!(f > 0.0 && f < st.fmax))
      throw std::invalid_argument("compare_selection: fraction " + std::to_string(f) + " must be in (0, " +
                                  std::to_string(st.fmax) + "), inside the measured subset");
  const MatD teacher_space = distill::predict(in.teacher, st.subset_samples.x).cast<double>();
  distill::OpticalStudent none = distill::OpticalStudent::from_model(in.deployed.to_model({}));  // "none": as deployed
  const MatD none_test = none.backend_forward(st.test);
  const double none_val = distill::accuracy(none.backend_forward(st.val), in.data.val.y);

  json rows = json::array();
  // (strategy, name, fraction) → per-seed refit and guarded accuracies, in seed order.
  std::map<std::tuple<std::string, std::string, double>, std::pair<std::vector<double>, std::vector<double>>> cells;
  for (double f : fractions)
    for (auto strategy : strategies)
      for (auto seed : seeds) {
        std::mt19937_64 draw(seed);
        const auto pick = nested_subset(strategy, f, st.fmax, st.subset_samples.y, teacher_space, draw);
        const MeasuredSubset part = take_rows(st.subset, st.subset_samples, pick);
        for (const auto& g : grid) {
          std::mt19937_64 r(seed);
          auto t = compensate(in.deployed, part, in.teacher, g.options, r, st.test, st.test_samples.y, &st.val, &in.data.val.y);
          guard_against_none(t, none_val, none_test, st.test_samples.y);
          json row = {{"strategy", to_string(strategy)}, {"name", g.name}, {"fraction", f}, {"seed", seed},
                      {"measured", pick.size()}, {"val_accuracy", t.val_accuracy},
                      {"refit_accuracy", t.refit_test_accuracy}, {"accuracy", t.test_accuracy},
                      {"kept_none", t.kept_uncompensated}};
          if (log) log(row.dump());
          auto& c = cells[{to_string(strategy), g.name, f}];
          c.first.push_back(t.refit_test_accuracy);
          c.second.push_back(t.test_accuracy);
          rows.push_back(std::move(row));
        }
      }
  json summary = json::array();
  const std::string reference = to_string(strategies.front());
  for (const auto& [key, v] : cells) {
    const auto& [strategy, name, f] = key;
    const Stats refit = stats(v.first), guarded = stats(v.second);
    std::vector<double> diff;
    const auto& ref = cells.at({reference, name, f}).first;
    for (std::size_t i = 0; i < v.first.size(); ++i) diff.push_back(v.first[i] - ref[i]);
    const Stats d = stats(diff);
    summary.push_back({{"strategy", strategy}, {"name", name}, {"fraction", f}, {"seeds", v.first.size()},
                       {"refit_mean", refit.mean}, {"refit_sd", refit.sd}, {"accuracy_mean", guarded.mean},
                       {"accuracy_sd", guarded.sd}, {"reference", reference}, {"paired_diff_mean", d.mean},
                       {"paired_diff_se", diff.size() > 1 ? d.sd / std::sqrt(double(diff.size())) : 0.0}});
  }
  return {{"profile", profile}, {"none", distill::accuracy(none_test, st.test_samples.y)}, {"none_val", none_val},
          {"fmax", st.fmax}, {"measured_pool", st.subset_samples.size()}, {"rows", rows}, {"summary", summary}};
}

}  // namespace hilo::calibration
