// hilo-train: run a training job from a JSON or YAML config.
//   hilo-train train-teacher <config>      train the digital teacher
//   hilo-train distill <config>            train the hybrid optical student (see docs/distill.md)
//   hilo-train estimate <config>           NTK kernel-regression estimate for a front-end design
//   hilo-train segment <config>            segmentation on composed digit scenes: teacher and students
//                                          (report.json, segment.png, learning_curves.png)
// Progress goes to stderr; the job's outputs go to the config's out_dir (model file, history.json and
// learning_curves.png). Exit code 0 on success, 1 on a bad command
// or config, 2 on a failure while running.
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "hilo/distill/jobs.hpp"
#include "hilo/distill/segmentation.hpp"
#include "hilo/distill/student_jobs.hpp"  // DistillJob
#include "hilo/distill/threads.hpp"

#include "hilo/io/figures.hpp"

namespace {
void write_curves(const hilo::distill::History& h, const std::filesystem::path& dir) {
  using namespace hilo::io;
  if (h.epochs.empty()) return;
  Series loss{"train loss", {}, {}}, tr{"train accuracy", {}, {}}, va{"validation accuracy", {}, {}};
  for (const auto& r : h.epochs) {
    loss.x.push_back(r.epoch);
    loss.y.push_back(r.loss);
    tr.x.push_back(r.epoch);
    tr.y.push_back(r.train_acc);
    va.x.push_back(r.epoch);
    va.y.push_back(r.val_acc);
  }
  LinePlotOptions o;
  o.title = "learning curves";
  o.x_label = "epoch";
  o.y_label = "loss / accuracy";
  write_png(dir / "learning_curves.png", render_line_plot({loss, tr, va}, o));
}

// segment.png: per example scene a row of input, truth and every model's prediction (background shown as
// 0, digit class l as l + 3 on a 0–12 scale, so that background is the darkest colour and digit 0 stands
// apart from it); learning_curves.png: validation mIoU per
// epoch of the teacher and the first seed of every method.
void write_segment_figures(const hilo::distill::SegmentResult& r, const std::filesystem::path& dir) {
  using namespace hilo::io;
  const auto& ex = r.examples;
  const int S = ex.shape.h, n = static_cast<int>(ex.size()), cols = 2 + static_cast<int>(r.predictions.size());
  auto label_image = [&](const hilo::distill::LabelMap& m, int i) {
    cv::Mat a(S, S, CV_64F);
    for (int q = 0; q < S * S; ++q) a.at<double>(q / S, q % S) = m(i, q) == hilo::distill::kSegBackground ? 0.0 : m(i, q) + 3.0;
    return a;
  };
  std::vector<cv::Mat> images;
  std::vector<std::string> labels;
  for (int i = 0; i < n; ++i) {
    cv::Mat in(S, S, CV_64F);
    for (int q = 0; q < S * S; ++q) in.at<double>(q / S, q % S) = 12.0 * ex.x(i, q);
    images.push_back(in);
    labels.push_back("input");
    images.push_back(label_image(ex.labels, i));
    labels.push_back("truth");
    for (const auto& [name, m] : r.predictions) {
      images.push_back(label_image(m, i));
      labels.push_back(name);
    }
  }
  ImageOptions o;
  o.auto_range = false;
  o.vmin = 0;
  o.vmax = 12;
  o.colorbar = false;
  o.scale = 4;
  write_png(dir / "segment.png", render_grid(images, cols, labels, o));
  std::vector<Series> curves;
  auto add = [&](const std::string& name, const nlohmann::json& run) {
    Series s{name, {}, {}};
    for (std::size_t e = 0; e < run["val_miou_per_epoch"].size(); ++e) {
      s.x.push_back(static_cast<double>(e + 1));
      s.y.push_back(run["val_miou_per_epoch"][e]);
    }
    curves.push_back(s);
  };
  add("teacher", r.report["teacher"]);
  if (r.report.contains("runs"))
    for (const auto& [method, seeds] : r.report["runs"].items())
      if (!seeds.empty()) add(method + " (seed " + seeds.begin().key() + ")", seeds.begin().value());
  LinePlotOptions lo;
  lo.title = "segmentation: validation mean IoU";
  lo.x_label = "epoch";
  lo.y_label = "mean IoU";
  write_png(dir / "learning_curves.png", render_line_plot(curves, lo));
}

// A job's config read with its own rules; a violated rule is reported here and gives nullopt (exit 1),
// apart from failures of the run itself (exit 2).
template <typename Job>
std::optional<Job> parse_job(const nlohmann::json& cfg) {
  try {
    return Job::from_json(cfg);
  } catch (const std::exception& e) {
    std::cerr << "hilo-train: bad config: " << e.what() << "\n";
    return std::nullopt;
  }
}

int usage() {
  std::cerr << "usage: hilo-train {train-teacher|distill|estimate|segment} <config.json|config.yaml> [--out DIR]\n";
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace hilo::distill;
  if (argc < 3) return usage();
  const std::string cmd = argv[1];
  nlohmann::json cfg;
  try {
    cfg = load_config_file(argv[2]);
    for (int i = 3; i + 1 < argc; i += 2)
      if (std::string(argv[i]) == "--out") cfg["out_dir"] = argv[i + 1];
  } catch (const std::exception& e) {
    std::cerr << "hilo-train: " << e.what() << "\n";
    return 1;
  }
  JobControl ctl;
  ctl.on_step = [](const Progress& p) {
    std::fprintf(stderr, "\r[%s] epoch %d/%d step %zu/%zu loss %.4f", p.job.c_str(), p.epoch, p.epochs, p.step,
                 p.steps, p.loss);
  };
  ctl.on_epoch = [](const EpochRecord& r) {
    std::fprintf(stderr, "\nepoch %d: loss %.4f train %.4f val %.4f lr %.2e (%.1f s) %s\n", r.epoch, r.loss,
                 r.train_acc, r.val_acc, r.lr, r.seconds, r.extra.dump().c_str());
  };
  try {
    JobResult r;
    if (cmd == "train-teacher") {
      const auto job = parse_job<TeacherJob>(cfg);
      if (!job) return 1;
      set_compute_threads(job->train.threads);
      r = run_train_teacher(*job, ctl, hilo::io::read_image8_pixels);
    } else if (cmd == "distill") {
      const auto job = parse_job<DistillJob>(cfg);
      if (!job) return 1;
      set_compute_threads(job->train.threads);
      r = run_distill(*job, ctl, hilo::io::read_image8_pixels);
    } else if (cmd == "segment") {
      const auto job = parse_job<SegmentJob>(cfg);
      if (!job) return 1;
      set_compute_threads(job->student_train.threads);
      const SegmentResult res = run_segment(*job, ctl, hilo::io::read_image8_pixels);
      if (!res.report.value("cancelled", false)) write_segment_figures(res, job->out_dir);
      std::printf("%s\n", nlohmann::json({{"summary", res.report.value("summary", nlohmann::json::object())},
                                          {"teacher_miou", res.report["teacher"]["mean_iou"]},
                                          {"report", (std::filesystem::path(job->out_dir) / "report.json").string()}})
                              .dump()
                              .c_str());
      return 0;
    } else if (cmd == "estimate") {
      std::printf("%s\n", run_estimate(EstimateJob::from_json(cfg), hilo::io::read_image8_pixels).dump().c_str());
      return 0;
    } else {
      std::cerr << "hilo-train: unknown command '" << cmd << "'\n";
      return usage();
    }
    write_curves(r.history, r.history_path.parent_path());
    std::printf("%s\n", nlohmann::json({{"test_acc", r.history.test_acc}, {"best_val_acc", r.history.best_val_acc},
                                        {"model", r.model_path.string()}, {"history", r.history_path.string()}})
                            .dump()
                            .c_str());
  } catch (const std::exception& e) {
    std::cerr << "\nhilo-train: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
