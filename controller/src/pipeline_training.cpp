// The pipeline's data and training stages (pipeline_stages.hpp): the dataset splits and config.json,
// the teacher and the student (trained here or taken from model files), and the training control that
// turns their epochs into the job's progress and log. Moved out of pipeline_stages.cpp unchanged.
#include <stdexcept>

#include "hilo/controller/dataset.hpp"
#include "hilo/controller/pipeline_stages.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/io/file_io.hpp"

namespace hilo::controller {

namespace fs = std::filesystem;
using nlohmann::json;

distill::JobControl PipelineStages::train_control(const std::string& stage) {
  distill::JobControl jc;
  jc.work.progress = [this, stage](std::int64_t d, std::int64_t t, std::string_view) { progress(stage, d, t); };
  jc.work.stop = ctl_.work.stop;
  jc.on_epoch = [this, stage](const distill::EpochRecord& e) {
    log(stage + ": epoch " + std::to_string(e.epoch) + " val " + pct(e.val_acc) + " %");
  };
  return jc;
}

void PipelineStages::load_data() {
  fs::create_directories(dir_);
  progress("data", 0, 1);
  data_ = distill::load_splits(c_.data, image_decoder());
  const auto& in = b_.design.input;
  if (data_.train.shape.h != in.rows || data_.train.shape.w != in.cols)
    throw distill::DatasetError("data: the images are " + std::to_string(data_.train.shape.h) + "x" + std::to_string(data_.train.shape.w) +
                                ", the bench's design input is " + std::to_string(in.rows) + "x" + std::to_string(in.cols) +
                                " (design.input rows/cols of the bench config must match the dataset)");
  const auto nt = c_.test_images > 0 ? std::min<std::size_t>(std::size_t(c_.test_images), data_.test.size()) : data_.test.size();
  const auto th = distill::head(data_.test, nt);
  test_x_ = th.x;
  test_y_ = th.y;
  io::write_json_atomic(dir_ / "config.json", c_.to_json());
}

void PipelineStages::use_teacher(const fs::path& model) {
  teacher_ = distill::sequential_from_model<float>(distill::read_model(model));
  teacher_info_ = {{"model", model.string()}};
}

void PipelineStages::use_student(const fs::path& model) {
  const fs::path d = dir_ / "student", copy = d / "student.hilo";
  auto s = distill::OpticalStudent::from_model(distill::read_model(model));
  if (!fs::exists(copy)) {
    fs::create_directories(d);
    distill::write_model(copy, s.to_model({{"source", model.string()}}));
  }
  student_ = std::move(s);
  student_info_ = {{"model", fs::relative(copy, dir_).string()}, {"source", model.string()}};
}

void PipelineStages::teacher() {
  const fs::path d = dir_ / "teacher", model = d / "teacher.hilo";
  if (!fs::exists(model)) {
    log("teacher: training on " + std::to_string(data_.train.size()) + " images");
    distill::TrainOptions t = c_.teacher_train;
    t.seed = seed_of(SeedStream::teacher);
    t.threads = c_.threads;
    auto net = distill::make_teacher(c_.teacher_arch, data_.train.shape, data_.train.num_classes);
    const auto h = distill::train_classifier(net, data_, t, train_control("teacher"));
    if (h.cancelled) throw StageStopped{};
    fs::create_directories(d);
    io::write_json_atomic(d / "history.json", h.to_json());
    distill::write_model(model, distill::sequential_to_model(net, "teacher", {{"test_acc", h.test_acc}}));
  }
  teacher_ = distill::sequential_from_model<float>(distill::read_model(model));
  const json h = read_json_file(d / "history.json");
  teacher_info_ = {{"test_acc", h.at("test_acc")}, {"model", fs::relative(model, dir_).string()}};
  log("teacher: test accuracy " + pct(h.at("test_acc").get<double>()) + " %");
}

void PipelineStages::student() {
  const fs::path d = dir_ / "student", model = d / "student.hilo";
  if (!fs::exists(model)) {
    log("student: " + c_.distill.method + " on " + std::to_string(data_.train.size()) + " images");
    distill::TrainOptions t = c_.student_train;
    t.seed = seed_of(SeedStream::student);
    t.threads = c_.threads;
    distill::OpticalStudent s(c_.student, data_.train.shape, data_.train.num_classes);
    const auto h = distill::train_student(s, *teacher_, data_, c_.distill, t, train_control("student"));
    if (h.cancelled) throw StageStopped{};
    fs::create_directories(d);
    io::write_json_atomic(d / "history.json", h.to_json());
    distill::write_model(model, s.to_model({{"test_acc", h.test_acc}, {"method", c_.distill.method}}));
  }
  student_ = distill::OpticalStudent::from_model(distill::read_model(model));
  const json h = read_json_file(d / "history.json");
  student_info_ = {{"test_acc", h.at("test_acc")}, {"method", c_.distill.method}, {"model", fs::relative(model, dir_).string()}};
  log("student: test accuracy (its own optical model) " + pct(h.at("test_acc").get<double>()) + " %");
}

}  // namespace hilo::controller
