// The job family of the protocol: pipeline, train-teacher, distill, and the pipeline's stages deploy,
// calibrate and evaluate as jobs of their own (docs/protocol.md). Each stage job runs the stage function
// the pipeline runs (PipelineStages) in the job's run directory.
#include <algorithm>
#include <set>
#include <variant>

#include "handler_detail.hpp"
#include "hilo/controller/dataset.hpp"
#include "hilo/controller/pipeline_stages.hpp"
#include "hilo/controller/run_documents.hpp"
#include "hilo/distill/jobs.hpp"
#include "hilo/distill/student_jobs.hpp"
#include "hilo/distill/threads.hpp"

namespace hilo::controller {

using nlohmann::json;
using namespace handler_detail;
namespace fs = std::filesystem;

// Progress (stats.stage, stats.last), stop and drift events of a job that runs pipeline stages.
PipelineControl handler_detail::stage_control(JobControl& ctl, std::string& current) {
  PipelineControl pc;
  pc.work = ctl.work();
  pc.work.progress = [&ctl, &current](std::int64_t done, std::int64_t total, std::string_view stage) {
    if (stage != current) {
      current = stage;
      ctl.set_stats({{"stage", stage}});
    }
    ctl.progress(done, total);
  };
  pc.on_drift = [&ctl](const json& d) { ctl.event("bench.drift", d); };
  pc.log = [&ctl, &current](const std::string& line) {
    json st = ctl.record().stats.is_object() ? ctl.record().stats : json::object();
    st["stage"] = current;
    st["last"] = line;
    ctl.set_stats(st);
  };
  return pc;
}

std::optional<Reply> handler_detail::refuse_new_job(const Request& req, Context& ctx) {
  if (ctx.shutting_down || !ctx.jobs.accepting())
    return error_reply(req.id, ErrorCode::shutting_down, "the daemon is shutting down and accepts no new jobs");
  if (!ctx.pipeline)
    return error_reply(req.id, ErrorCode::not_supported,
                       "this daemon's bench config has no design section (nor a simulator section) describing the "
                       "designed optics, which the pipeline and its stages need as their design model");
  return check_job_limit(req, ctx);
}

// pipeline {"config": {...}} (optional; PipelineConfig::from_json): queues the whole HIL pipeline.
Reply handler_detail::cmd_pipeline(const Request& req, Context& ctx) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {"config"})) return error_reply(*e);
  if (ctx.shutting_down || !ctx.jobs.accepting()) {
    return error_reply(req.id, ErrorCode::shutting_down, "the daemon is shutting down and accepts no new jobs");
  }
  if (!ctx.pipeline) {
    return error_reply(req.id, ErrorCode::not_supported,
                       "this daemon's bench config has no design section (nor a simulator section) describing the "
                       "designed optics, which the pipeline needs as its design model");
  }
  if (auto r = check_job_limit(req, ctx)) return *r;
  PipelineConfig cfg;
  try {
    cfg = req.args.contains("config") ? PipelineConfig::from_json(req.args["config"]) : PipelineConfig::defaults();
  } catch (const std::exception& e) {
    return error_reply(req.id, ErrorCode::bad_argument, std::string("config: ") + e.what());
  }
  if (auto e = cfg.validate(); !e.empty()) return error_reply(req.id, ErrorCode::bad_argument, "config: " + e);
  if (auto r = confine_dataset_paths(cfg.data, ctx.data_dir, "config.data")) return error_reply(req.id, r->code, r->message);
  if (!cfg.profiles.empty() && !ctx.pipeline->reset_simulator) {
    return error_reply(req.id, ErrorCode::bad_argument,
                       "config: bench.profiles needs simulated devices; on hardware leave it empty");
  }
  for (const auto& name : cfg.profiles) {
    try {
      (void)ctx.pipeline->load_profile(name);
    } catch (const std::exception& e) {
      return error_reply(req.id, ErrorCode::bad_argument, "config: bench.profiles: " + std::string(e.what()));
    }
  }
  json params = {{"config", cfg.to_json()}};
  auto* bench = ctx.pipeline;
  const auto data_dir = ctx.data_dir;
  auto rec = ctx.jobs.submit("pipeline", params, 1, [&](const JobRecord& r) { return pipeline_work(cfg, *bench, data_dir / r.run_id); });
  if (!rec) return error_reply(req.id, ErrorCode::shutting_down, "the daemon is shutting down and accepts no new jobs");
  return ok_reply(req.id, {{"job_id", rec->id}, {"run_id", rec->run_id}, {"state", std::string(to_string(rec->state))}});
}

// train-teacher {"config": {...}} and distill {"config": {..., "teacher": "<run id>/teacher.hilo"}}: the
// hilo-train jobs (distill/jobs.hpp, student_jobs.hpp) as daemon jobs. The model and history go to the
// job's run directory (a config's out_dir is refused); distill's teacher path is confined to data_dir.
namespace {

// The hilo-train job config of a train-teacher / distill job from its `config` argument: out_dir refused
// (the daemon sets it), distill's teacher confined to the data directory and resolved, then the whole
// job read as hilo-train reads it (out_dir a placeholder until the run directory exists).
std::variant<json, Refusal> train_job_config(const std::string& kind, const json& given, const fs::path& data_dir) {
  if (!given.is_object())
    return Refusal{ErrorCode::missing_field, "config (a mapping: the " + kind + " job of hilo-train) is required"};
  json cfg = given;
  if (cfg.contains("out_dir")) return Refusal{ErrorCode::bad_argument, "config.out_dir is set by the daemon (the job's run directory)"};
  if (kind == "distill") {
    if (!cfg.contains("teacher") || !cfg["teacher"].is_string())
      return Refusal{ErrorCode::missing_field, "config.teacher (a teacher model file inside the data directory) is required"};
    auto p = confine_path(data_dir, cfg["teacher"].get<std::string>());
    if (auto* why = std::get_if<std::string>(&p)) return Refusal{ErrorCode::forbidden_path, "config.teacher: " + *why};
    const auto& tp = std::get<fs::path>(p);
    if (!fs::exists(tp)) return Refusal{ErrorCode::not_found, "config.teacher: no file " + tp.string()};
    cfg["teacher"] = tp.string();
  }
  if (cfg.contains("data")) {
    distill::DataOptions data;
    try {
      data = distill::data_options_from_json(cfg["data"]);
    } catch (const std::exception& e) {
      return Refusal{ErrorCode::bad_argument, std::string("config: ") + e.what()};
    }
    if (auto r = confine_dataset_paths(data, data_dir, "config.data")) return *r;
    cfg["data"] = data;
  }
  cfg["out_dir"] = "-";
  try {
    if (kind == "train-teacher") (void)distill::TeacherJob::from_json(cfg);
    else (void)distill::DistillJob::from_json(cfg);
  } catch (const std::exception& e) {
    return Refusal{ErrorCode::bad_argument, std::string("config: ") + e.what()};
  }
  return cfg;
}

}  // namespace

// Run documents around a job's work (docs/protocol.md "Run documents"): run.start with the bench and the
// job's config (resumed when the run directory already exists), run.stop with the job's outcome. The
// products of these jobs are files, not records: no descriptor or events, records 0.
JobManager::Work handler_detail::with_run_documents(JobManager::Work work, json bench, json config, fs::path run_dir) {
  return [work = std::move(work), bench = std::move(bench), config = std::move(config), run_dir](JobControl& ctl) {
    RunDocuments docs(ctl);
    std::error_code ec;
    docs.start(bench, config, fs::exists(run_dir, ec), 0);
    JobOutcome out = work(ctl);
    docs.stop(exit_status_of(out.state), out.error, 0);
    return out;
  };
}

json handler_detail::pipeline_bench_json(const PipelineBench& bench) {
  return {{"devices", {{"input_slm", bench.input.name()},
                       {"element_slm", bench.element ? json(bench.element->name()) : json(nullptr)},
                       {"camera", bench.camera.name()}}},
          {"simulator", bench.simulator != nullptr}};
}

namespace {

// A training job (no device): from its first epoch again when resumed (training keeps no checkpoint).
JobManager::Work train_work(const std::string& kind, json cfg, const fs::path& run_dir) {
  cfg["out_dir"] = run_dir.string();
  return with_run_documents([cfg, kind](JobControl& ctl) {
      distill::JobControl jc;
      jc.work = ctl.work();
      jc.on_epoch = [&](const distill::EpochRecord& e) {
        ctl.set_stats({{"epoch", e.epoch}, {"val_acc", e.val_acc}, {"loss", e.loss}});
      };
      try {
        // The worker thread is the daemon's: the job's thread count is set on it, for this job only.
        distill::JobResult r;
        if (kind == "train-teacher") {
          const auto job = distill::TeacherJob::from_json(cfg);
          distill::set_compute_threads(job.train.threads);
          r = distill::run_train_teacher(job, jc, image_decoder());
        } else {
          const auto job = distill::DistillJob::from_json(cfg);
          distill::set_compute_threads(job.train.threads);
          r = distill::run_distill(job, jc, image_decoder());
        }
        if (r.history.cancelled) return JobOutcome{JobState::cancelled, "stopped"};
        ctl.set_stats({{"test_acc", r.history.test_acc}, {"model", r.model_path.string()}});
        return JobOutcome{JobState::done, {}};
      } catch (const std::exception& e) {
        return JobOutcome{JobState::failed, e.what()};
      }
    }, json{{"devices", nullptr}}, cfg, run_dir);
}

Reply cmd_train(const Request& req, Context& ctx, const std::string& kind) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {"config"})) return error_reply(*e);
  if (ctx.shutting_down || !ctx.jobs.accepting()) {
    return error_reply(req.id, ErrorCode::shutting_down, "the daemon is shutting down and accepts no new jobs");
  }
  auto prepared = train_job_config(kind, req.args.value("config", json()), ctx.data_dir);
  if (auto* r = std::get_if<Refusal>(&prepared)) return error_reply(req.id, r->code, r->message);
  if (auto r = check_job_limit(req, ctx)) return *r;
  const json cfg = std::get<json>(prepared);
  const auto data_dir = ctx.data_dir;
  auto rec = ctx.jobs.submit(kind, {{"config", req.args["config"]}}, 1,
                             [&](const JobRecord& r) { return train_work(kind, cfg, data_dir / r.run_id); });
  if (!rec) return error_reply(req.id, ErrorCode::shutting_down, "the daemon is shutting down and accepts no new jobs");
  return ok_reply(req.id, {{"job_id", rec->id}, {"run_id", rec->run_id}, {"state", std::string(to_string(rec->state))}});
}
}  // namespace

Reply handler_detail::cmd_train_teacher(const Request& req, Context& ctx) { return cmd_train(req, ctx, "train-teacher"); }
Reply handler_detail::cmd_distill(const Request& req, Context& ctx) { return cmd_train(req, ctx, "distill"); }

namespace {

// What a stage job reads: files inside the data directory, checked when the command arrives.
struct StageInputs {
  fs::path student;     // deploy: a trained student model
  fs::path deployment;  // calibrate, evaluate: the run directory of a deploy job (or of a pipeline)
  fs::path teacher;     // calibrate: the teacher model (NTKD compensation, subset choice)
  std::string profile;  // calibrate, evaluate: the as-built profile (simulator), else "bench"
  fs::path calibration; // evaluate, optional: a saved calibration directory to adopt instead of calibrating
};

}  // namespace

std::variant<std::string, Refusal> handler_detail::profile_argument(const json& args, bool simulated, const std::string& what) {
  if (args.contains("profile") != simulated)
    return Refusal{simulated ? ErrorCode::missing_field : ErrorCode::bad_argument,
                   simulated ? "profile (" + what + ") is required"
                             : std::string("profile needs simulated devices; on hardware the bench is measured as it is")};
  if (!simulated) return std::string("bench");
  if (!args["profile"].is_string()) return Refusal{ErrorCode::bad_argument, "profile must be a profile name"};
  return args["profile"].get<std::string>();
}

std::variant<json, Refusal> handler_detail::merged_run_config(const fs::path& run, const json& given,
                                                              const std::vector<std::string>& changeable, const std::string& owner) {
  json stored;
  try {
    stored = read_json_file(run / "config.json");
  } catch (const std::exception& e) {
    return Refusal{ErrorCode::bad_argument, owner + ": " + e.what()};
  }
  std::string allowed;
  for (std::size_t i = 0; i < changeable.size(); ++i)
    allowed += (i == 0 ? "" : i + 1 == changeable.size() ? " and " : ", ") + changeable[i];
  for (const auto& [k, v] : given.items()) {
    if (std::find(changeable.begin(), changeable.end(), k) == changeable.end())
      return Refusal{ErrorCode::bad_argument, "config." + k + " is the " + owner + "'s (its run's config.json); only " + allowed + " may change"};
    stored[k].merge_patch(v);
  }
  return stored;
}

JobOutcome handler_detail::stage_outcome(const std::function<void()>& body) {
  try {
    body();
    return JobOutcome{JobState::done, {}};
  } catch (const StageStopped&) {
    return JobOutcome{JobState::cancelled, "stopped"};
  } catch (const std::exception& e) {
    return JobOutcome{JobState::failed, e.what()};
  }
}

int handler_detail::profile_index(const PipelineConfig& config, const std::string& profile) {
  const auto it = std::find(config.profiles.begin(), config.profiles.end(), profile);
  return it == config.profiles.end() ? 0 : int(it - config.profiles.begin());
}

void handler_detail::copy_deployment(const fs::path& from_run, const fs::path& run_dir) {
  if (fs::exists(run_dir / "deploy" / "student.hilo")) return;
  const fs::path tmp = run_dir / "deploy.partial";
  fs::remove_all(tmp);
  fs::copy(from_run / "deploy", tmp, fs::copy_options::recursive);
  fs::remove_all(run_dir / "deploy");
  fs::rename(tmp, run_dir / "deploy");
}

// A data-directory path argument (args[key]) that must name an existing file or directory.
std::variant<fs::path, Refusal> handler_detail::input_path(const json& args, const fs::path& data_dir, const std::string& key,
                                           const std::string& what) {
  if (!args.contains(key) || !args[key].is_string())
    return Refusal{ErrorCode::missing_field, key + " (" + what + ", inside the data directory) is required"};
  auto p = confine_path(data_dir, args[key].get<std::string>());
  if (auto* why = std::get_if<std::string>(&p)) return Refusal{ErrorCode::forbidden_path, key + ": " + *why};
  const auto& path = std::get<fs::path>(p);
  if (!fs::exists(path)) return Refusal{ErrorCode::not_found, key + ": no " + what + " at " + path.string()};
  return path;
}

namespace {

// The input files of a stage job from its arguments (student for deploy; deployment, and the teacher for
// calibrate), each confined to the data directory and present; the deployment a finished deploy run.
// `profile` is left to the caller (it depends on the bench).
std::variant<StageInputs, Refusal> stage_inputs(const std::string& kind, const json& args, const fs::path& data_dir) {
  StageInputs in;
  if (kind == "deploy") {
    auto p = input_path(args, data_dir, "student", "student model file");
    if (auto* r = std::get_if<Refusal>(&p)) return *r;
    in.student = std::get<fs::path>(p);
    return in;
  }
  auto p = input_path(args, data_dir, "deployment", "deploy run directory");
  if (auto* r = std::get_if<Refusal>(&p)) return *r;
  in.deployment = std::get<fs::path>(p);
  for (const char* f : {"config.json", "student/student.hilo", "deploy/student.hilo"})
    if (!fs::exists(in.deployment / f))
      return Refusal{ErrorCode::not_found, "deployment: " + in.deployment.string() + " is not a finished deploy run (no " + f + ")"};
  if (kind == "calibrate") {
    auto t = input_path(args, data_dir, "teacher", "teacher model file");
    if (auto* r = std::get_if<Refusal>(&t)) return *r;
    in.teacher = std::get<fs::path>(t);
  }
  if (kind == "evaluate" && args.contains("calibration")) {
    auto c = input_path(args, data_dir, "calibration", "saved calibration directory");
    if (auto* r = std::get_if<Refusal>(&c)) return *r;
    in.calibration = std::get<fs::path>(c);
    if (!fs::exists(in.calibration / "calibration.json"))
      return Refusal{ErrorCode::not_found, "calibration: " + in.calibration.string() +
                                               " holds no saved calibration (no calibration.json; a calibrate job or pipeline saves one as <run id>/bench/<profile>/calibration)"};
  }
  return in;
}

JobManager::Work stage_work(const std::string& kind, const PipelineConfig& config, PipelineBench& bench,
                            const fs::path& run_dir, const StageInputs& in, const json& params) {
  return with_run_documents([kind, config, &bench, run_dir, in](JobControl& ctl) {
    std::string current;
    const PipelineControl pc = stage_control(ctl, current);
    return stage_outcome([&] {
      distill::set_compute_threads(config.threads);  // on the daemon's worker thread, for this job only
      PipelineStages st(config, bench, run_dir, pc);
      st.load_data();
      if (kind == "deploy") {
        st.use_student(in.student);
        st.deploy();
        ctl.set_stats({{"stage", "done"}, {"deployment", st.deploy_info()}});
        return;
      }
      copy_deployment(in.deployment, run_dir);
      st.use_student(in.deployment / "student" / "student.hilo");
      if (kind == "calibrate") st.use_teacher(in.teacher);
      st.deploy();
      const json res = st.bench(in.profile, profile_index(config, in.profile), kind == "calibrate", in.calibration);
      ctl.set_stats({{"stage", "done"}, {"result", (run_dir / "bench" / in.profile / "result.json").string()},
                     {"accuracy", res.at("accuracy")}});
      ctl.checkpoint(1);
    });
  }, pipeline_bench_json(bench), params, run_dir);
}

// deploy {"student": "<run id>/student.hilo", "config": {...}}; calibrate {"deployment": "<run id>",
// "teacher": "<run id>/teacher.hilo", "profile": "moderate", "config": {...}}; evaluate {"deployment":
// "<run id>", "profile": "moderate", "calibration": "<run id>/bench/<profile>/calibration" (optional: a
// saved calibration to adopt), "config": {...}}. deploy's config is a pipeline config (absent keys
// default); calibrate and evaluate take the deployment run's config.json and let `config` change only
// bench, measure and compensation (the rest made the deployment).
Reply cmd_stage(const Request& req, Context& ctx, const std::string& kind) {
  if (auto r = expect_parts(req, 0)) return *r;
  const bool deploy = kind == "deploy";
  if (auto e = deploy ? check_known_args(req, {"student", "config"})
                      : kind == "calibrate" ? check_known_args(req, {"deployment", "teacher", "profile", "config"})
                                            : check_known_args(req, {"deployment", "profile", "config", "calibration"}))
    return error_reply(*e);
  if (auto r = refuse_new_job(req, ctx)) return *r;
  if (req.args.contains("config") && !req.args["config"].is_object())
    return error_reply(req.id, ErrorCode::bad_argument, "config must be a mapping (pipeline settings, docs/pipeline.md)");
  const json given = req.args.value("config", json::object());
  auto inputs = stage_inputs(kind, req.args, ctx.data_dir);
  if (auto* r = std::get_if<Refusal>(&inputs)) return error_reply(req.id, r->code, r->message);
  StageInputs in = std::get<StageInputs>(inputs);
  json stored = given;
  if (!deploy) {
    auto merged = merged_run_config(in.deployment, given, {"bench", "measure", "compensation"}, "deployment");
    if (auto* r = std::get_if<Refusal>(&merged)) return error_reply(req.id, r->code, r->message);
    stored = std::get<json>(merged);
  }
  PipelineConfig cfg;
  try {
    cfg = PipelineConfig::from_json(stored);
  } catch (const std::exception& e) {
    return error_reply(req.id, ErrorCode::bad_argument, std::string("config: ") + e.what());
  }
  if (auto e = cfg.validate(); !e.empty()) return error_reply(req.id, ErrorCode::bad_argument, "config: " + e);
  // deploy's data come from the request; calibrate's and evaluate's from the deployment's config.json,
  // which holds the resolved paths of its deploy job, and which is confined again all the same.
  if (auto r = confine_dataset_paths(cfg.data, ctx.data_dir, "config.data", deploy ? PathOrigin::request : PathOrigin::stored))
    return error_reply(req.id, r->code, r->message);
  if (!deploy) {
    const bool simulated = bool(ctx.pipeline->reset_simulator);
    auto prof = profile_argument(req.args, simulated, "the as-built profile the simulated bench takes");
    if (auto* r = std::get_if<Refusal>(&prof)) return error_reply(req.id, r->code, r->message);
    in.profile = std::get<std::string>(prof);
    if (simulated) {
      PipelineConfig probe = cfg;
      probe.profiles = {in.profile};
      if (auto e = probe.validate(); !e.empty()) return error_reply(req.id, ErrorCode::bad_argument, e);
      try {
        (void)ctx.pipeline->load_profile(in.profile);
      } catch (const std::exception& e) {
        return error_reply(req.id, ErrorCode::bad_argument, "profile: " + std::string(e.what()));
      }
    }
  }
  json params = {{"config", cfg.to_json()}};
  for (const char* k : {"student", "deployment", "teacher", "profile", "calibration"})
    if (req.args.contains(k)) params[k] = req.args[k];
  auto* bench = ctx.pipeline;
  const auto data_dir = ctx.data_dir;
  auto rec = ctx.jobs.submit(kind, params, 1, [&](const JobRecord& r) { return stage_work(kind, cfg, *bench, data_dir / r.run_id, in, params); });
  if (!rec) return error_reply(req.id, ErrorCode::shutting_down, "the daemon is shutting down and accepts no new jobs");
  return ok_reply(req.id, {{"job_id", rec->id}, {"run_id", rec->run_id}, {"state", std::string(to_string(rec->state))}});
}

}  // namespace

Reply handler_detail::cmd_deploy(const Request& req, Context& ctx) { return cmd_stage(req, ctx, "deploy"); }
Reply handler_detail::cmd_calibrate(const Request& req, Context& ctx) { return cmd_stage(req, ctx, "calibrate"); }
Reply handler_detail::cmd_evaluate(const Request& req, Context& ctx) { return cmd_stage(req, ctx, "evaluate"); }

JobManager::Work pipeline_work(const PipelineConfig& config, PipelineBench& bench, const std::filesystem::path& run_dir) {
  return with_run_documents([config, &bench, run_dir](JobControl& ctl) {
    std::string current;
    const PipelineControl pc = stage_control(ctl, current);
    try {
      const auto r = run_pipeline(config, bench, run_dir, pc);
      if (!r.completed) return JobOutcome{JobState::interrupted, "stopped; completed stages are kept"};
      ctl.set_stats({{"stage", "done"}, {"report", (run_dir / "report.json").string()}});
      ctl.checkpoint(1);
      return JobOutcome{JobState::done, {}};
    } catch (const std::exception& e) {
      return JobOutcome{JobState::failed, e.what()};
    }
  }, pipeline_bench_json(bench), config.to_json(), run_dir);
}

int resume_interrupted_jobs(JobManager& jobs, Catalog& catalog, PipelineBench* bench,
                            const std::filesystem::path& data_dir, std::size_t max_jobs) {
  static const std::set<std::string> kinds = {"pipeline", "deploy", "calibrate", "evaluate", "recompensate", "train-teacher", "distill"};
  int n = 0;
  for (JobRecord rec : catalog.jobs_in_state(JobState::interrupted)) {
    if (!kinds.count(rec.kind)) continue;
    if (jobs.active() >= max_jobs) {
      rec.error = resume_deferred_reason(max_jobs);
      catalog.update_job(rec);
      continue;
    }
    const fs::path run_dir = data_dir / rec.run_id;
    const json& p = rec.params;
    // The job's work rebuilt from its stored parameters as its command built it; anything that no
    // longer holds (a config this version refuses, an input file gone, no design model) fails the job
    // with "cannot resume: " and the reason, through the manager, so the catalog and run say so.
    std::string why;
    JobManager::Work work;
    try {
      if (rec.kind == "train-teacher" || rec.kind == "distill") {
        auto cfg = train_job_config(rec.kind, p.value("config", json()), data_dir);
        if (auto* r = std::get_if<Refusal>(&cfg)) why = r->message;
        else work = train_work(rec.kind, std::get<json>(cfg), run_dir);
      } else if (!bench) {
        why = "this daemon's bench config has no design section, which a " + rec.kind + " job needs";
      } else {
        PipelineConfig cfg = PipelineConfig::from_json(p.at("config"));
        if (auto e = cfg.validate(); !e.empty()) throw std::invalid_argument(e);
        if (auto r = confine_dataset_paths(cfg.data, data_dir, "config.data", PathOrigin::stored)) {
          why = r->message;
        } else if (rec.kind == "pipeline") {
          work = pipeline_work(cfg, *bench, run_dir);
        } else if (rec.kind == "recompensate") {
          auto src = input_path(p, data_dir, "run", "pipeline run directory");
          if (auto* r = std::get_if<Refusal>(&src)) why = r->message;
          else work = recompensate_work(cfg, *bench, run_dir, std::get<fs::path>(src), p.value("profile", std::string("bench")), p);
        } else {
          auto in = stage_inputs(rec.kind, p, data_dir);
          if (auto* r = std::get_if<Refusal>(&in)) {
            why = r->message;
          } else {
            StageInputs si = std::get<StageInputs>(in);
            si.profile = p.value("profile", std::string("bench"));
            work = stage_work(rec.kind, cfg, *bench, run_dir, si, p);
          }
        }
      }
    } catch (const std::exception& e) {
      why = std::string("bad job parameters: ") + e.what();
    }
    if (!why.empty()) work = [err = "cannot resume: " + why](JobControl&) { return JobOutcome{JobState::failed, err}; };
    if (jobs.resume(rec, std::move(work))) ++n;
  }
  return n;
}

}  // namespace hilo::controller
