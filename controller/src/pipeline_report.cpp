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

std::vector<std::vector<std::string>> report_accuracy_rows(const json& report) {
  const double sim_acc = report.at("deploy").at("simulated_acc").get<double>();
  // Every mode's column (the twin modes with bench.kernels on, the re-optimised element's with
  // bench.reoptimise_element.compensate), the guarded choice among them on the measured validation
  // split, the share of the hardware loss it recovered and the bench frames it used; "-" where the
  // stage did not run a mode.
  auto cell = [](const json& r, const std::string& key) { return r.contains(key) ? pct(r.at(key).get<double>()) : std::string("-"); };
  const std::vector<std::pair<std::string, std::string>> modes = {
      {"task", "task %"}, {"ntkd", "NTKD %"}, {"twin_task", "twin task %"}, {"twin_ntkd", "twin NTKD %"},
      {"element", "element %"}, {"element_task", "element task %"}, {"element_ntkd", "element NTKD %"},
      {"element_twin_task", "element twin task %"}, {"element_twin_ntkd", "element twin NTKD %"},
      {"physics_aware", "physics-aware %"}, {"twin_trained", "element twin-trained %"}};
  std::vector<std::string> head{"profile", "f %", "measured", "simulated %", "bench: none %"};
  for (const auto& m : modes) head.push_back(m.second);
  head.insert(head.end(), {"guarded %", "chosen", "recovered (guarded)", "frames (chosen)"});
  std::vector<std::vector<std::string>> rows{head};
  for (const auto& p : report.at("profiles")) {
    const double none = p.at("accuracy").at("none").get<double>();
    for (const auto& r : p.at("accuracy").at("fractions")) {
      const double g = r.contains("guarded") ? r.at("guarded").get<double>() : r.at("ntkd").get<double>();
      const double rec = sim_acc - none > 1e-9 ? (g - none) / (sim_acc - none) : 0.0;
      std::vector<std::string> row{p.at("profile").get<std::string>(), pct(r.at("fraction").get<double>()),
                                   std::to_string(r.at("measured").get<int>()), pct(sim_acc), pct(none)};
      for (const auto& m : modes) row.push_back(cell(r, m.first));
      const std::string chosen = r.value("guarded_mode", std::string("-"));
      const json* fr = r.contains("frames") ? &r.at("frames") : nullptr;
      row.insert(row.end(), {cell(r, "guarded"), chosen, pct(rec) + " %",
                             fr && fr->contains(chosen) ? std::to_string(fr->at(chosen).get<std::int64_t>()) : std::string("-")});
      rows.push_back(std::move(row));
    }
  }
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
