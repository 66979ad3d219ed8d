#pragma once
// What the command families of handle() share (handler.cpp: devices, capture, daemon, dispatch;
// handler_runs.cpp: jobs and runs in the catalog; handler_jobs.cpp: the pipeline and its stages as jobs). Internal to the controller library.
#include <optional>
#include <variant>

#include "hilo/controller/handler.hpp"
#include "hilo/controller/jobs.hpp"
#include "hilo/controller/pipeline.hpp"
#include "hilo/distill/data.hpp"

namespace hilo::controller::handler_detail {

// A device error as a reply: invalid_argument → bad_argument (the caller's mistake), else device_error.
Reply device_error(const Request& req, const drivers::DeviceError& e);
Reply busy(const Request& req);
// bad_parts unless the request carries exactly n binary parts.
std::optional<Reply> expect_parts(const Request& req, std::size_t n);

template <typename T>
const ProtocolError* err_of(const std::variant<T, ProtocolError>& v) {
  return std::get_if<ProtocolError>(&v);
}

// Why a job's arguments are refused: the protocol's code and the message (a command answers it; a
// resume at start fails the job with "cannot resume: " + message).
struct Refusal {
  ErrorCode code;
  std::string message;
};

// Where a path comes from: a client's request (relative to the data directory only) or the daemon's
// own stored parameters (resolved paths, absolute under the data directory; security.hpp
// confine_stored_path).
enum class PathOrigin { request, stored };

// A dataset in a job (handler_datasets.cpp): every file path of its options (images, labels,
// test_images, test_labels, dir, fashion_dir, mnist_dir; for any source) confined to the data directory
// (relative, no '..', no symbolic link out) and replaced by the resolved path, each present. `where`
// names the options in the messages ("args.dataset", "config.data"): forbidden_path or not_found. An
// empty fashion_dir / mnist_dir keeps the daemon's own default (its --fashion-mnist-dir, environment).
std::optional<Refusal> confine_dataset_paths(distill::DataOptions& o, const std::filesystem::path& data_dir,
                                             const std::string& where, PathOrigin origin = PathOrigin::request);
// A capture's object-form `dataset` argument: read strictly, a file source, valid, luminance, paths
// confined. bad_argument / forbidden_path / not_found.
std::variant<distill::DataOptions, Refusal> capture_dataset_options(const nlohmann::json& spec,
                                                                    const std::filesystem::path& data_dir);

// The catalog family (handler_runs.cpp).
Reply cmd_jobs_list(const Request& req, Context& ctx);
Reply cmd_jobs_status(const Request& req, Context& ctx);
Reply cmd_jobs_cancel(const Request& req, Context& ctx);
Reply cmd_runs_list(const Request& req, Context& ctx);
Reply cmd_runs_get(const Request& req, Context& ctx);
Reply cmd_runs_export(const Request& req, Context& ctx);

// Inference with deferral to the teacher (handler_defer.cpp).
Reply cmd_defer(const Request& req, Context& ctx);

// The job family (handler_jobs.cpp).
Reply cmd_pipeline(const Request& req, Context& ctx);
Reply cmd_train_teacher(const Request& req, Context& ctx);
Reply cmd_distill(const Request& req, Context& ctx);
Reply cmd_deploy(const Request& req, Context& ctx);
Reply cmd_calibrate(const Request& req, Context& ctx);
Reply cmd_evaluate(const Request& req, Context& ctx);

// What the job family's commands share (handler_jobs.cpp).
// Progress (stats.stage, stats.last), stop and drift events (bench.drift) of a job running pipeline stages.
PipelineControl stage_control(JobControl& ctl, std::string& current);
// shutting_down, not_supported (no design model) or the job limit; nullopt when a job may be queued.
std::optional<Reply> refuse_new_job(const Request& req, Context& ctx);
// Run documents (run.start, run.stop) around a job's work.
JobManager::Work with_run_documents(JobManager::Work work, nlohmann::json bench, nlohmann::json config,
                                    std::filesystem::path run_dir);
nlohmann::json pipeline_bench_json(const PipelineBench& bench);
// A data-directory path argument (args[key]) naming an existing file or directory: missing_field,
// forbidden_path, not_found.
std::variant<std::filesystem::path, Refusal> input_path(const nlohmann::json& args, const std::filesystem::path& data_dir,
                                                        const std::string& key, const std::string& what);

// The profile argument of a job on a bench stage: required on a simulated bench (missing_field, naming
// `what`), refused on hardware (bad_argument), where the stage is "bench".
std::variant<std::string, Refusal> profile_argument(const nlohmann::json& args, bool simulated, const std::string& what);
// A run's config.json with the job's `config` sections merged in (merge_patch); a key outside
// `changeable` is bad_argument ("config.<key> is the <owner>'s …"), an unreadable file bad_argument.
std::variant<nlohmann::json, Refusal> merged_run_config(const std::filesystem::path& run, const nlohmann::json& given,
                                                        const std::vector<std::string>& changeable, const std::string& owner);
// A run's deploy/ copied whole into run_dir (through deploy.partial, so a half-copied directory is never
// named deploy/); nothing when run_dir already holds a deployment.
void copy_deployment(const std::filesystem::path& from_run, const std::filesystem::path& run_dir);

// A stage job's outcome: done when `body` returns, cancelled when it throws StageStopped, failed with the
// message of any other exception.
JobOutcome stage_outcome(const std::function<void()>& body);
// The stage's index in config.profiles (it seeds the stage), 0 when not listed (hardware: "bench").
int profile_index(const PipelineConfig& config, const std::string& profile);

// The drift re-compensation job (handler_recomp.cpp).
Reply cmd_recompensate(const Request& req, Context& ctx);
// Its work (also rebuilt by resume_interrupted_jobs): params as cmd_recompensate stores them.
JobManager::Work recompensate_work(const PipelineConfig& config, PipelineBench& bench, const std::filesystem::path& run_dir,
                                   const std::filesystem::path& source_run, const std::string& profile, const nlohmann::json& params);

}  // namespace hilo::controller::handler_detail
