// The recompensate command (docs/protocol.md): a finished pipeline run's profile stage re-compensated
// from the twin on the bench as it is now (PipelineStages::recompensate_run, docs/pipeline.md "Drift
// re-compensation"), as a job: progress events, cancellable, resumed from its start after a restart.
#include "handler_detail.hpp"
#include "hilo/controller/pipeline_stages.hpp"
#include "hilo/distill/threads.hpp"

namespace hilo::controller {

using nlohmann::json;
using namespace handler_detail;
namespace fs = std::filesystem;

namespace {

// The run's files the job reads, each present, and the stage's twin: a refusal naming what is missing.
std::optional<Refusal> check_source_run(const fs::path& run, const std::string& profile) {
  for (const char* f : {"config.json", "teacher/teacher.hilo", "student/student.hilo", "deploy/student.hilo"})
    if (!fs::exists(run / f))
      return Refusal{ErrorCode::not_found, "run: " + run.string() + " is not a pipeline run past its deploy stage (no " + f + ")"};
  const fs::path pd = run / "bench" / profile;
  for (const char* f : {"result.json", "subset_features.npy", "calibration/calibration.json"})
    if (!fs::exists(pd / f))
      return Refusal{ErrorCode::not_found, "run: " + run.string() + " has no finished bench stage '" + profile + "' with measured subset and saved calibration (no bench/" +
                                               profile + "/" + f + ")"};
  json result;
  try {
    result = read_json_file(pd / "result.json");
  } catch (const std::exception& e) {
    return Refusal{ErrorCode::bad_argument, "run: " + std::string(e.what())};
  }
  if (result.value("twin", json(nullptr)).is_null())
    return Refusal{ErrorCode::bad_argument, "run: bench stage '" + profile + "' of " + run.string() +
                                                " has no twin (it ran with bench.kernels.enabled false): a re-compensation rebuilds the twin and re-fits on it"};
  return std::nullopt;
}

}  // namespace

JobManager::Work handler_detail::recompensate_work(const PipelineConfig& config, PipelineBench& bench, const fs::path& run_dir,
                                                   const fs::path& source_run, const std::string& profile, const json& params) {
  return with_run_documents([config, &bench, run_dir, source_run, profile](JobControl& ctl) {
    std::string current;
    const PipelineControl pc = stage_control(ctl, current);
    return stage_outcome([&] {
      distill::set_compute_threads(config.threads);  // on the daemon's worker thread, for this job only
      PipelineStages st(config, bench, run_dir, pc);
      st.load_data();
      copy_deployment(source_run, run_dir);
      st.use_student(source_run / "student" / "student.hilo");
      st.use_teacher(source_run / "teacher" / "teacher.hilo");
      st.deploy();
      const json ev = st.recompensate_run(source_run, profile, profile_index(config, profile));
      ctl.set_stats({{"stage", "done"}, {"event", (run_dir / "recompensation" / profile / "event.json").string()},
                     {"accuracy", ev.at("accuracy")}, {"drift", ev.at("drift")}, {"frames", ev.at("frames")}});
      ctl.checkpoint(1);
    });
  }, pipeline_bench_json(bench), params, run_dir);
}

// recompensate {"run": "<run id>", "profile": "moderate", "config": {"bench": {...}}}: the run's
// config.json, of which `config` may change only bench (its drift keys and drift_recompensate).
Reply handler_detail::cmd_recompensate(const Request& req, Context& ctx) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {"run", "profile", "config"})) return error_reply(*e);
  if (auto r = refuse_new_job(req, ctx)) return *r;
  if (req.args.contains("config") && !req.args["config"].is_object())
    return error_reply(req.id, ErrorCode::bad_argument, "config must be a mapping (pipeline settings, docs/pipeline.md)");
  auto p = input_path(req.args, ctx.data_dir, "run", "pipeline run directory");
  if (auto* r = std::get_if<Refusal>(&p)) return error_reply(req.id, r->code, r->message);
  const fs::path run = std::get<fs::path>(p);
  auto prof = profile_argument(req.args, bool(ctx.pipeline->reset_simulator), "the run's bench stage to re-compensate");
  if (auto* r = std::get_if<Refusal>(&prof)) return error_reply(req.id, r->code, r->message);
  const std::string profile = std::get<std::string>(prof);
  if (profile.empty() || profile.find('/') != std::string::npos || profile.find("..") != std::string::npos)
    return error_reply(req.id, ErrorCode::bad_argument, "profile: '" + profile + "' is not a profile name");
  if (auto r = check_source_run(run, profile)) return error_reply(req.id, r->code, r->message);
  auto merged = merged_run_config(run, req.args.value("config", json::object()), {"bench"}, "run");
  if (auto* r = std::get_if<Refusal>(&merged)) return error_reply(req.id, r->code, r->message);
  PipelineConfig cfg;
  try {
    cfg = PipelineConfig::from_json(std::get<json>(merged));
  } catch (const std::exception& e) {
    return error_reply(req.id, ErrorCode::bad_argument, std::string("config: ") + e.what());
  }
  if (!cfg.kernels.enabled)
    return error_reply(req.id, ErrorCode::bad_argument, "config: bench.kernels.enabled is false: a re-compensation rebuilds the twin from the kernel probes");
  if (auto e = cfg.validate(); !e.empty()) return error_reply(req.id, ErrorCode::bad_argument, "config: " + e);
  json params = {{"config", cfg.to_json()}, {"run", req.args["run"]}, {"profile", profile}};
  auto* bench = ctx.pipeline;
  const auto data_dir = ctx.data_dir;
  auto rec = ctx.jobs.submit("recompensate", params, 1, [&](const JobRecord& r) {
    return recompensate_work(cfg, *bench, data_dir / r.run_id, run, profile, params);
  });
  if (!rec) return error_reply(req.id, ErrorCode::shutting_down, "the daemon is shutting down and accepts no new jobs");
  return ok_reply(req.id, {{"job_id", rec->id}, {"run_id", rec->run_id}, {"state", std::string(to_string(rec->state))}});
}

}  // namespace hilo::controller
