#include "pipeline_deferral.hpp"

#include "hilo/distill/deferral.hpp"
#include "hilo/io/figures.hpp"

namespace hilo::controller {

using nlohmann::json;

json deferral_study(const std::vector<DeferralModel>& models, const distill::MatD& teacher, const std::vector<int>& labels,
                    const std::filesystem::path& png, const std::string& title) {
  const std::vector<double> rates{0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30};
  json out = {{"rule", std::string(distill::deferral_rule()) +
                           "; the threshold defers the target share of the measured validation split"},
              {"rates", rates},
              {"teacher_accuracy", distill::accuracy(teacher, labels)},
              {"models", json::array()}};
  std::vector<io::Series> series;
  for (const auto& m : models) {
    const bool heldout = m.val_logits.rows() > 0;
    const auto thresholds = distill::deferral_thresholds(heldout ? m.val_logits : m.test_logits, rates);
    const auto curve = distill::deferral_curve(m.test_logits, teacher, labels, rates, thresholds);
    json points = json::array();
    io::Series s{m.name, {}, {}};
    for (const auto& p : curve) {
      points.push_back(p.to_json());
      s.x.push_back(100.0 * p.rate);
      s.y.push_back(100.0 * p.accuracy);
    }
    series.push_back(std::move(s));
    out["models"].push_back({{"name", m.name},
                             {"threshold_source", heldout ? "measured validation split" : "test set (descriptive)"},
                             {"points", points}});
  }
  const double t = 100.0 * out["teacher_accuracy"].get<double>();
  series.push_back({"teacher alone", {0.0, 100.0 * rates.back()}, {t, t}});
  io::LinePlotOptions o;
  o.title = title;
  o.x_label = "inputs deferred to the teacher (%)";
  o.y_label = "test accuracy (%)";
  io::write_png(png, io::render_line_plot(series, o));
  return out;
}

}  // namespace hilo::controller
