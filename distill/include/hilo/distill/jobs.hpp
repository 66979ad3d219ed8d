#pragma once
// Jobs: what `hilo-train` and the daemon run. A job is a plain config struct (parsed from JSON or
// YAML), run synchronously on the caller's thread with a JobControl for progress and cancellation.
// Outputs go to job.out_dir: the model file(s) and history.json (per-epoch loss/accuracy).
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "hilo/distill/data.hpp"
#include "hilo/distill/train.hpp"

namespace hilo::distill {

// A config file as JSON: .json files are parsed as JSON, .yaml/.yml as YAML (scalars that parse as
// numbers or booleans become numbers/booleans). Throws std::runtime_error naming the file.
nlohmann::json load_config_file(const std::filesystem::path& path);

// Parsers for the option structs; absent keys keep their defaults, unknown keys are an error
// ("<section>: unknown key 'x'"), so that typos do not silently train the wrong thing.
DataOptions data_options_from_json(const nlohmann::json& j);
TrainOptions train_options_from_json(const nlohmann::json& j);
TeacherArch teacher_arch_from_json(const nlohmann::json& j);

// {"command": "train-teacher", "data": {...}, "arch": {...}, "train": {...}, "out_dir": "..."}
// from_json reads through io::read_options (unknown keys refused with a suggestion, wrong types naming
// the key path "train-teacher job.train.epochs"); "command", the file's own tag, is accepted and ignored.
struct TeacherJob {
  DataOptions data;
  TeacherArch arch;
  TrainOptions train;
  std::string out_dir = "runs/teacher";
  static TeacherJob from_json(const nlohmann::json& j);
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TeacherJob, data, arch, train, out_dir)

// A job file's JSON without its "command" tag, for read_options. Throws std::invalid_argument naming
// `section` when j is not a mapping or its "command" is not `command`.
nlohmann::json job_fields(const nlohmann::json& j, const std::string& command, const std::string& section);

struct JobResult {
  History history;
  std::filesystem::path model_path, history_path;
};

// Trains the teacher; writes <out_dir>/teacher.hilo and <out_dir>/history.json. `decode` reads a
// png-folder dataset (load_splits); without one such a dataset is an error naming the rule.
JobResult run_train_teacher(const TeacherJob& job, const JobControl& ctl, const ImageDecoder& decode = {});

}  // namespace hilo::distill
