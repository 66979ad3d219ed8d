#include "hilo/distill/jobs.hpp"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>

#include "hilo/distill/model_io.hpp"

namespace hilo::distill {
namespace fs = std::filesystem;

namespace {
nlohmann::json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& kv : n) j[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& v : n) j.push_back(yaml_to_json(v));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      if (s == "true" || s == "false") return s == "true";
      try {
        std::size_t pos;
        const long long i = std::stoll(s, &pos);
        if (pos == s.size()) return i;
      } catch (...) {
      }
      try {
        std::size_t pos;
        const double d = std::stod(s, &pos);
        if (pos == s.size()) return d;
      } catch (...) {
      }
      return s;
    }
    default:
      return nullptr;
  }
}

void check_keys(const nlohmann::json& j, const std::string& section, std::set<std::string> allowed) {
  if (!j.is_object()) throw std::invalid_argument(section + ": must be an object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key())) throw std::invalid_argument(section + ": unknown key '" + it.key() + "'");
}
}  // namespace

nlohmann::json load_config_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("config file not found: " + path.string());
  const auto ext = path.extension().string();
  try {
    if (ext == ".yaml" || ext == ".yml") return yaml_to_json(YAML::LoadFile(path.string()));
    nlohmann::json j;
    in >> j;
    return j;
  } catch (const std::exception& e) {
    throw std::runtime_error(path.string() + ": cannot parse config: " + e.what());
  }
}

DataOptions data_options_from_json(const nlohmann::json& j) {
  check_keys(j, "data", {"name", "fashion_dir", "mnist_dir", "split_seed", "val_size", "mnist_test_size", "train_limit"});
  DataOptions o;
  o.name = j.value("name", o.name);
  o.fashion_dir = j.value("fashion_dir", o.fashion_dir);
  o.mnist_dir = j.value("mnist_dir", o.mnist_dir);
  o.split_seed = j.value("split_seed", o.split_seed);
  o.val_size = j.value("val_size", o.val_size);
  o.mnist_test_size = j.value("mnist_test_size", o.mnist_test_size);
  o.train_limit = j.value("train_limit", o.train_limit);
  o.validate();
  return o;
}

TrainOptions train_options_from_json(const nlohmann::json& j) {
  check_keys(j, "train", {"epochs", "batch_size", "schedule", "seed", "threads", "optimizer"});
  TrainOptions o;
  o.epochs = j.value("epochs", o.epochs);
  o.batch_size = j.value("batch_size", o.batch_size);
  o.schedule = j.value("schedule", o.schedule);
  o.seed = j.value("seed", o.seed);
  o.threads = j.value("threads", o.threads);
  if (j.contains("optimizer")) {
    const auto& p = j["optimizer"];
    check_keys(p, "train.optimizer", {"kind", "lr", "momentum", "beta1", "beta2", "eps", "weight_decay"});
    auto& q = o.optimizer;
    q.kind = p.value("kind", q.kind);
    q.lr = p.value("lr", q.lr);
    q.momentum = p.value("momentum", q.momentum);
    q.beta1 = p.value("beta1", q.beta1);
    q.beta2 = p.value("beta2", q.beta2);
    q.eps = p.value("eps", q.eps);
    q.weight_decay = p.value("weight_decay", q.weight_decay);
  }
  o.validate();
  return o;
}

TeacherArch teacher_arch_from_json(const nlohmann::json& j) {
  check_keys(j, "arch", {"channels", "hidden"});
  TeacherArch a;
  if (j.contains("channels")) a.channels = j["channels"].get<std::vector<int>>();
  a.hidden = j.value("hidden", a.hidden);
  a.validate();
  return a;
}

TeacherJob TeacherJob::from_json(const nlohmann::json& j) {
  check_keys(j, "train-teacher job", {"command", "data", "arch", "train", "out_dir"});
  TeacherJob t;
  if (j.contains("data")) t.data = data_options_from_json(j["data"]);
  if (j.contains("arch")) t.arch = teacher_arch_from_json(j["arch"]);
  if (j.contains("train")) t.train = train_options_from_json(j["train"]);
  t.out_dir = j.value("out_dir", t.out_dir);
  t.validate();
  return t;
}

void TeacherJob::validate() const {
  data.validate();
  arch.validate();
  train.validate();
  if (out_dir.empty()) throw std::invalid_argument("out_dir must not be empty");
}

void write_json_atomic(const fs::path& path, const nlohmann::json& j) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
}

JobResult run_train_teacher(const TeacherJob& job, const JobControl& ctl) {
  job.validate();
  const Splits s = load_splits(job.data);
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
  write_json_atomic(r.history_path, hj);
  return r;
}

}  // namespace hilo::distill
