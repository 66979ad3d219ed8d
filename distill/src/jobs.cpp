#include "hilo/distill/jobs.hpp"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>

#include "hilo/distill/model_io.hpp"
#include "hilo/io/file_io.hpp"
#include "hilo/io/options_json.hpp"
#include "hilo/io/yaml_options.hpp"

namespace hilo::distill {
namespace fs = std::filesystem;

nlohmann::json load_config_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("config file not found: " + path.string());
  const auto ext = path.extension().string();
  try {
    if (ext == ".yaml" || ext == ".yml") return io::yaml_to_json(YAML::LoadFile(path.string()));
    nlohmann::json j;
    in >> j;
    return j;
  } catch (const std::exception& e) {
    throw std::runtime_error(path.string() + ": cannot parse config: " + e.what());
  }
}

DataOptions data_options_from_json(const nlohmann::json& j) {
  DataOptions o = io::read_valid_options<DataOptions>(j, "data");
  return o;
}

TrainOptions train_options_from_json(const nlohmann::json& j) {
  TrainOptions o = io::read_valid_options<TrainOptions>(j, "train");
  return o;
}

TeacherArch teacher_arch_from_json(const nlohmann::json& j) {
  TeacherArch a = io::read_valid_options<TeacherArch>(j, "arch");
  return a;
}

nlohmann::json job_fields(const nlohmann::json& j, const std::string& command, const std::string& section) {
  if (!j.is_object()) throw std::invalid_argument(section + " must be a mapping");
  nlohmann::json f = j;
  if (f.contains("command")) {
    if (f["command"] != command)
      throw std::invalid_argument(section + ".command must be \"" + command + "\", got " + f["command"].dump());
    f.erase("command");
  }
  return f;
}

TeacherJob TeacherJob::from_json(const nlohmann::json& j) {
  const std::string section = "train-teacher job";
  TeacherJob t = io::read_valid_options<TeacherJob>(job_fields(j, "train-teacher", section), section);
  return t;
}

std::string TeacherJob::validate() const {
  if (auto e = data.validate(); !e.empty()) return e;
  if (auto e = arch.validate(); !e.empty()) return e;
  if (auto e = train.validate(); !e.empty()) return e;
  if (out_dir.empty()) return "out_dir must not be empty";
  return {};
}

JobResult run_train_teacher(const TeacherJob& job, const JobControl& ctl, const ImageDecoder& decode) {
  io::require_valid(job.validate());
  const Splits s = load_splits(job.data, decode);
  Sequential<float> net = make_teacher(job.arch, s.train.shape, s.train.num_classes);
  JobResult r;
  r.history = train_classifier(net, s, job.train, ctl);
  fs::create_directories(job.out_dir);
  r.model_path = fs::path(job.out_dir) / "teacher.hilo";
  r.history_path = fs::path(job.out_dir) / "history.json";
  nlohmann::json meta = {{"data", job.data.name}, {"split_seed", job.data.split_seed},
                         {"test_acc", r.history.test_acc}, {"train_seed", job.train.seed}};
  if (!r.history.cancelled) write_model(r.model_path, sequential_to_model(net, "teacher", meta));
  nlohmann::json hj = r.history.to_json();
  hj["command"] = "train-teacher";
  hj["data"] = job.data.name;
  hj["num_params"] = net.num_params();
  io::write_json_atomic(r.history_path, hj);
  return r;
}

}  // namespace hilo::distill
