// The catalog family of the protocol: jobs.list, jobs.status, jobs.cancel, runs.list, runs.get,
// runs.export (docs/protocol.md).
#include <filesystem>

#include "handler_detail.hpp"
#include "hilo/controller/hdf5_run.hpp"
#include "hilo/sim/npy.hpp"

namespace hilo::controller {

using nlohmann::json;
using namespace handler_detail;

namespace {

// The arguments of the list commands: no parts, an optional `limit` in [1, 100000] (default 100).
// Returns the limit, or the error reply.
std::variant<int, Reply> list_limit(const Request& req) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {"limit"})) return error_reply(*e);
  auto lim = get_int(req, "limit", 100);
  if (auto* e = err_of(lim)) return error_reply(*e);
  const std::int64_t v = std::get<std::int64_t>(lim);
  if (v < 1 || v > 100000) return error_reply(req.id, ErrorCode::bad_argument, "limit must be in [1, 100000]");
  return static_cast<int>(v);
}

}  // namespace

Reply handler_detail::cmd_jobs_list(const Request& req, Context& ctx) {
  const auto lim = list_limit(req);
  if (const auto* r = std::get_if<Reply>(&lim)) return *r;
  json out = json::array();
  for (const auto& j : ctx.jobs.list(std::get<int>(lim))) out.push_back(j.to_json());
  return ok_reply(req.id, {{"jobs", out}});
}

namespace {

Reply job_by_id(const Request& req, Context& ctx, bool cancel) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {"job_id"})) return error_reply(*e);
  auto id = get_int(req, "job_id");
  if (auto* e = err_of(id)) return error_reply(*e);
  const auto jid = std::get<std::int64_t>(id);
  auto rec = cancel ? ctx.jobs.cancel(jid) : ctx.jobs.get(jid);
  if (!rec) return error_reply(req.id, ErrorCode::not_found, "no job with id " + std::to_string(jid));
  json body = rec->to_json();
  if (cancel) body["stop_requested"] = rec->state == JobState::running;
  return ok_reply(req.id, {{"job", body}});
}

}  // namespace

Reply handler_detail::cmd_jobs_status(const Request& req, Context& ctx) { return job_by_id(req, ctx, false); }
Reply handler_detail::cmd_jobs_cancel(const Request& req, Context& ctx) { return job_by_id(req, ctx, true); }

Reply handler_detail::cmd_runs_list(const Request& req, Context& ctx) {
  const auto lim = list_limit(req);
  if (const auto* r = std::get_if<Reply>(&lim)) return *r;
  json out = json::array();
  for (const auto& r : ctx.catalog.runs(std::get<int>(lim))) out.push_back(r.to_json());
  return ok_reply(req.id, {{"runs", out}});
}

namespace {

// A run of the catalog with its directory (confined to data_dir) and manifest, or the error reply.
struct FoundRun {
  RunRecord run;
  std::filesystem::path dir;
  json manifest;
};

}  // namespace
namespace {

std::variant<FoundRun, Reply> find_run(const Request& req, Context& ctx, const std::string& id) {
  auto run = ctx.catalog.run(id);
  if (!run) return error_reply(req.id, ErrorCode::not_found, "no run with id '" + id + "'");
  auto confined = confine_path(ctx.data_dir, run->dir);
  if (auto* e = std::get_if<std::string>(&confined)) {
    return error_reply(req.id, ErrorCode::forbidden_path, "run '" + run->id + "': " + *e);
  }
  FoundRun f{*run, std::get<std::filesystem::path>(confined), {}};
  try {
    f.manifest = read_manifest(f.dir);
  } catch (const StorageError& e) {
    return error_reply(req.id, ErrorCode::not_found, std::string("run has no readable manifest yet: ") + e.what());
  }
  return f;
}

}  // namespace

namespace {

// forbidden_path when a file the manifest names for array `n` leaves the run directory (a manifest
// can be edited).
std::optional<Reply> check_array_files(const Request& req, const std::string& run_id, const std::filesystem::path& dir,
                                       const json& manifest, const std::string& n) {
  std::vector<std::string> files;
  if (manifest.contains("arrays") && manifest["arrays"].is_object() && manifest["arrays"].contains(n) &&
      manifest["arrays"][n].is_object() && manifest["arrays"][n].contains("file") && manifest["arrays"][n]["file"].is_string()) {
    files.push_back(manifest["arrays"][n]["file"].get<std::string>());
  }
  if (manifest.contains("chunks") && manifest["chunks"].is_array()) {
    for (const auto& c : manifest["chunks"]) {
      if (c.is_object() && c.contains("files") && c["files"].is_object() && c["files"].contains(n) && c["files"][n].is_string()) {
        files.push_back(c["files"][n].get<std::string>());
      }
    }
  }
  for (const auto& f : files) {
    auto fc = confine_path(dir, f);
    if (auto* e = std::get_if<std::string>(&fc)) {
      return error_reply(req.id, ErrorCode::forbidden_path, "run '" + run_id + "', array '" + n + "': " + *e);
    }
  }
  return std::nullopt;
}

}  // namespace

Reply handler_detail::cmd_runs_get(const Request& req, Context& ctx) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {"run_id", "arrays"})) return error_reply(*e);
  auto id = get_string(req, "run_id");
  if (auto* e = err_of(id)) return error_reply(*e);
  std::vector<std::string> names;
  if (req.args.contains("arrays")) {
    const auto& a = req.args["arrays"];
    if (!a.is_array()) return error_reply(req.id, ErrorCode::wrong_type, "args.arrays must be an array of names");
    for (const auto& n : a) {
      if (!n.is_string()) return error_reply(req.id, ErrorCode::wrong_type, "args.arrays must be an array of names");
      names.push_back(n.get<std::string>());
    }
  }
  auto found = find_run(req, ctx, std::get<std::string>(id));
  if (auto* r = std::get_if<Reply>(&found)) return *r;
  const auto& [run, dir, manifest] = std::get<FoundRun>(found);
  Reply r = ok_reply(req.id, nullptr);
  json arrays = json::object();
  std::size_t bytes = 0;
  for (const auto& n : names) {
    if (auto e = check_array_files(req, run.id, dir, manifest, n)) return *e;
    std::optional<LoadedArray> a;
    try {
      a = load_run_array(dir, manifest, n);
    } catch (const StorageError& e) {
      return error_reply(req.id, ErrorCode::internal, e.what());
    }
    if (!a) return error_reply(req.id, ErrorCode::not_found, "run '" + run.id + "' has no array '" + n + "'");
    bytes += a->bytes.size();
    if (bytes > ctx.limits.max_reply_bytes) {
      return error_reply(req.id, ErrorCode::too_large, "requested arrays exceed the reply limit of " +
                                                           std::to_string(ctx.limits.max_reply_bytes) + " bytes");
    }
    arrays[n] = attach_array(r, a->dtype, a->shape, std::move(a->bytes));
  }
  r.body["result"] = {{"run", run.to_json()}, {"path", dir.string()}, {"manifest", manifest}, {"arrays", arrays}};
  return r;
}

// runs.export {"run_id", "format": "hdf5"}: writes <run dir>/run.h5 from the run's .npy arrays before
// replying (synchronous; about as long as reading the arrays), lists it in the manifest under "hdf5".
Reply handler_detail::cmd_runs_export(const Request& req, Context& ctx) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {"run_id", "format"})) return error_reply(*e);
  auto id = get_string(req, "run_id");
  if (auto* e = err_of(id)) return error_reply(*e);
  auto format = get_string(req, "format", std::string("hdf5"));
  if (auto* e = err_of(format)) return error_reply(*e);
  if (std::get<std::string>(format) != "hdf5") {
    return error_reply(req.id, ErrorCode::bad_argument,
                       "format must be 'hdf5' (runs are stored as .npy already), got '" + std::get<std::string>(format) + "'");
  }
  auto found = find_run(req, ctx, std::get<std::string>(id));
  if (auto* r = std::get_if<Reply>(&found)) return *r;
  auto& [run, dir, manifest] = std::get<FoundRun>(found);
  if (run.state == "queued" || run.state == "running") {
    return error_reply(req.id, ErrorCode::busy, "run '" + run.id + "' is " + run.state +
                                                    "; export it after its job ends (or capture with hdf5: true)");
  }
  std::vector<std::string> names;
  if (manifest.contains("arrays") && manifest["arrays"].is_object()) {
    for (const auto& [k, _] : manifest["arrays"].items()) names.push_back(k);
  }
  if (manifest.contains("chunks") && manifest["chunks"].is_array() && !manifest["chunks"].empty() &&
      manifest["chunks"][0].contains("files") && manifest["chunks"][0]["files"].is_object()) {
    for (const auto& [k, _] : manifest["chunks"][0]["files"].items()) names.push_back(k);
  }
  if (names.empty()) return error_reply(req.id, ErrorCode::not_found, "run '" + run.id + "' holds no arrays to export");
  for (const auto& n : names) {
    if (auto e = check_array_files(req, run.id, dir, manifest, n)) return *e;
  }
  const auto tmp = dir / "run.h5.tmp", out = dir / "run.h5";
  try {
    auto w = hdf5_from_run(tmp, dir, manifest);
    manifest["hdf5"] = {{"file", "run.h5"}, {"complete", true}, {"records", w.records()}, {"error", ""}, {"source", "runs.export"}};
    w.finish(manifest);
    std::filesystem::rename(tmp, out);
    fsync_dir(dir);
    write_json_atomic(dir / "manifest.json", manifest);
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return error_reply(req.id, ErrorCode::internal, "runs.export of '" + run.id + "': " + e.what());
  }
  std::error_code ec;
  const auto size = std::filesystem::file_size(out, ec);
  return ok_reply(req.id, {{"run_id", run.id}, {"format", "hdf5"}, {"file", out.string()},
                           {"records", manifest["hdf5"]["records"]}, {"bytes", ec ? 0 : size}});
}

}  // namespace hilo::controller
