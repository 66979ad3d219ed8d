// The pipeline's report: report.json, the accuracy table (rows and image) and the learning curves.
#include <cmath>
#include <fstream>
#include <numeric>

#include <opencv2/imgproc.hpp>

#include "hilo/controller/pipeline_stages.hpp"
#include "hilo/io/figures.hpp"
#include "hilo/io/file_io.hpp"

namespace hilo::controller {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A table rendered as an image (header row, then rows), black on white.
cv::Mat render_table(const std::string& title, const std::vector<std::vector<std::string>>& rows) {
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  const double scale = 0.5;
  const int pad = 10, row_h = 26;
  std::vector<int> widths;
  for (const auto& r : rows)
    for (std::size_t k = 0; k < r.size(); ++k) {
      int base = 0;
      const int w = cv::getTextSize(r[k], font, scale, 1, &base).width + 2 * pad;
      if (widths.size() <= k) widths.push_back(w);
      widths[k] = std::max(widths[k], w);
    }
  const int W = std::max(400, std::accumulate(widths.begin(), widths.end(), 0) + 2 * pad);
  const int H = int(rows.size() + 1) * row_h + 2 * pad + 10;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::putText(img, title, {pad, pad + 16}, font, 0.6, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const int y = pad + 10 + int(i + 1) * row_h;
    int x = pad;
    for (std::size_t k = 0; k < rows[i].size(); ++k) {
      cv::putText(img, rows[i][k], {x + pad / 2, y}, font, scale, cv::Scalar(0, 0, 0), i == 0 ? 2 : 1, cv::LINE_AA);
      x += widths[k];
    }
    if (i == 0) cv::line(img, {pad, y + 8}, {W - pad, y + 8}, cv::Scalar(0, 0, 0), 1);
  }
  return img;
}

}  // namespace

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", 100.0 * v);
  return b;
}

namespace {
// The element re-optimised columns (pipeline_reopt.cpp): its uncompensated bench accuracy, its NTKD
// re-fit at this fraction and the bench frames it took; "—" where the stage did not run it. A null
// profile appends the header cells.
void append_reoptimised_cells(std::vector<std::string>& row, const json& profile, double fraction) {
  if (profile.is_null()) {
    row.insert(row.end(), {"re-opt. none %", "re-opt. NTKD %", "re-opt. frames"});
    return;
  }
  const json* e = profile.contains("element_reoptimised") ? &profile["element_reoptimised"] : nullptr;
  if (!e || !e->contains("accuracy")) {
    row.insert(row.end(), {"—", "—", "—"});
    return;
  }
  std::string ntkd = "—";
  for (const auto& f : e->at("accuracy").at("fractions"))
    if (std::abs(f.at("fraction").get<double>() - fraction) < 1e-12) ntkd = pct(f.at("ntkd").get<double>());
  row.insert(row.end(), {pct(e->at("accuracy").at("none").get<double>()), ntkd,
                         std::to_string(e->at("bench_frames").at("total").get<std::size_t>())});
}
}  // namespace

std::vector<std::vector<std::string>> report_accuracy_rows(const json& report) {
  const double sim_acc = report.at("deploy").at("simulated_acc").get<double>();
  // Twin columns and the guarded choice appear for reports that have them (runs with bench.kernels on).
  auto cell = [](const json& r, const char* key) { return r.contains(key) ? pct(r.at(key).get<double>()) : std::string("-"); };
  std::vector<std::vector<std::string>> rows{{"profile", "f %", "measured", "simulated %", "bench: none %", "task %", "NTKD %",
                                              "twin task %", "twin NTKD %", "guarded %", "chosen", "recovered (guarded)"}};
  for (const auto& p : report.at("profiles")) {
    const double none = p.at("accuracy").at("none").get<double>();
    for (const auto& r : p.at("accuracy").at("fractions")) {
      const double g = r.contains("guarded") ? r.at("guarded").get<double>() : r.at("ntkd").get<double>();
      const double rec = sim_acc - none > 1e-9 ? (g - none) / (sim_acc - none) : 0.0;
      rows.push_back({p.at("profile").get<std::string>(), pct(r.at("fraction").get<double>()), std::to_string(r.at("measured").get<int>()),
                      pct(sim_acc), pct(none), pct(r.at("task").get<double>()), pct(r.at("ntkd").get<double>()), cell(r, "twin_task"),
                      cell(r, "twin_ntkd"), cell(r, "guarded"), r.value("guarded_mode", std::string("-")), pct(rec) + " %"});
      append_reoptimised_cells(rows.back(), p, r.at("fraction").get<double>());
    }
  }
  append_reoptimised_cells(rows.front(), nullptr, 0.0);
  return rows;
}

json PipelineStages::report(const json& profiles) {
  const auto rows = report_accuracy_rows({{"deploy", deploy_info_}, {"profiles", profiles}});
  io::write_png(dir_ / "accuracy_table.png", render_table("hilo pipeline: test accuracy (" + c_.data.name + ")", rows));
  // Learning curves of the trained networks.
  std::vector<io::Series> series;
  for (const auto& [who, file] : {std::pair<std::string, fs::path>{"teacher", dir_ / "teacher" / "history.json"},
                                  {"student", dir_ / "student" / "history.json"}}) {
    const json h = read_json_file(file);
    io::Series s;
    s.label = who + " val";
    for (const auto& e : h["epochs"]) {
      s.x.push_back(e["epoch"].get<double>());
      s.y.push_back(e["val_acc"].get<double>());
    }
    series.push_back(s);
  }
  io::LinePlotOptions lo;
  lo.title = "validation accuracy";
  lo.x_label = "epoch";
  lo.y_label = "accuracy";
  io::write_png(dir_ / "learning_curves.png", io::render_line_plot(series, lo));
  json rep = {{"config", c_.to_json()},
              {"dataset", {{"name", c_.data.name}, {"train", data_.train.size()}, {"val", data_.val.size()}, {"test", test_y_.size()}}},
              {"teacher", teacher_info_},
              {"student", student_info_},
              {"deploy", deploy_info_},
              {"profiles", profiles},
              {"timings", timings_},
              {"seeds", seeds_},
              {"figures", {"accuracy_table.png", "learning_curves.png", "deploy/kernels.png", "deploy/design_psf.png"}}};
  io::write_json_atomic(dir_ / "report.json", rep);
  return rep;
}

}  // namespace hilo::controller
