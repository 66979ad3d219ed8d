#pragma once
// What the command families of handle() share (handler.cpp: devices, capture, daemon, dispatch;
// handler_runs.cpp: jobs and runs in the catalog; handler_jobs.cpp: the pipeline and its stages as jobs). Internal to the controller library.
#include <optional>
#include <variant>

#include "hilo/controller/handler.hpp"
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

}  // namespace hilo::controller::handler_detail
