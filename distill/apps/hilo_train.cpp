// hilo-train: run a training job from a JSON or YAML config.
//   hilo-train train-teacher <config>      train the digital teacher
//   hilo-train distill <config>            train the hybrid optical student (see docs/distill.md)
//   hilo-train estimate <config>           NTK kernel-regression estimate for a front-end design
// Progress goes to stderr; the job's outputs go to the config's out_dir (model file, history.json and
// learning_curves.png). Exit code 0 on success, 1 on a bad command
// or config, 2 on a failure while running.
#include <cstdio>
#include <iostream>
#include <string>

#include "hilo/distill/jobs.hpp"
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

int usage() {
  std::cerr << "usage: hilo-train {train-teacher|distill|estimate} <config.json|config.yaml> [--out DIR]\n";
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
      TeacherJob job;
      try {
        job = TeacherJob::from_json(cfg);
      } catch (const std::exception& e) {
        std::cerr << "hilo-train: bad config: " << e.what() << "\n";
        return 1;
      }
      set_compute_threads(job.train.threads);
      r = run_train_teacher(job, ctl, hilo::io::read_image8_pixels);
    } else if (cmd == "distill") {
      DistillJob job;
      try {
        job = DistillJob::from_json(cfg);
      } catch (const std::exception& e) {
        std::cerr << "hilo-train: bad config: " << e.what() << "\n";
        return 1;
      }
      set_compute_threads(job.train.threads);
      r = run_distill(job, ctl, hilo::io::read_image8_pixels);
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
