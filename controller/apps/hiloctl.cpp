// hiloctl: command-line client of hilod; one subcommand per protocol command (docs/protocol.md).
// Exit codes: 0 success; 1 hilod answered with an error (printed as "error <code>: <message>") or a
// followed job did not end done; 2 a local failure (no reply, unreadable or unwritable file); CLI11's
// own codes (> 100) for a bad command line.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "hiloctl_client.hpp"
#include "hilo/controller/hdf5_run.hpp"
#include "hilo/controller/protocol.hpp"
#include "hilo/controller/storage.hpp"
#include "hilo/distill/jobs.hpp"
#include "hilo/sim/npy.hpp"

using nlohmann::json;
namespace fs = std::filesystem;

using namespace hiloctl;

namespace {

// Shows a job's progress as a bar with rate and ETA. Rate and ETA are measured from the first update of
// the current stage (a pipeline's stages count different things), so the first update of a stage shows
// no ETA.
class ProgressBar {
 public:
  void stage(const std::string& s) {
    if (s == stage_) return;
    if (!stage_.empty() || drawn_) std::cerr << "\n";
    stage_ = s;
    t0_.reset();
    std::cerr << s << "\n";
  }
  void update(std::int64_t done, std::int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (!t0_ || done < done0_) {
      t0_ = now;
      done0_ = done;
    }
    const double elapsed = std::chrono::duration<double>(now - *t0_).count();
    const int width = 30;
    const double f = total > 0 ? std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0) : 1.0;
    const int fill = static_cast<int>(f * width);
    std::string tail;
    if (elapsed > 0.2 && done > done0_) {
      const double rate = static_cast<double>(done - done0_) / elapsed;
      char buf[64];
      std::snprintf(buf, sizeof buf, " %.1f/s ETA %s", rate, clock(static_cast<double>(total - done) / rate).c_str());
      tail = buf;
    }
    std::fprintf(stderr, "\r[%s%s] %lld/%lld (%3.0f%%) %s%s", std::string(fill, '#').c_str(),
                 std::string(width - fill, '.').c_str(), static_cast<long long>(done), static_cast<long long>(total),
                 100.0 * f, clock(elapsed).c_str(), tail.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  // "m:ss" or "h:mm:ss".
  static std::string clock(double s) {
    const long t = std::lround(std::max(0.0, s));
    char buf[32];
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
  }

 private:
  std::string stage_;
  std::optional<std::chrono::steady_clock::time_point> t0_;
  std::int64_t done0_ = 0;
  bool drawn_ = false;
};

// Shows a job's progress (events, or jobs.status when no event comes for a second) until it ends; then
// prints its final status. Exit 0 when it ended done, 1 otherwise.
int follow_job(Client& c, zmq::socket_t& sub_sock, std::int64_t id) {
  sub_sock.set(zmq::sockopt::rcvtimeo, 1000);
  ProgressBar bar;
  auto stage_of = [&](const json& stats) {
    if (stats.is_object() && stats.contains("stage") && stats["stage"].is_string()) bar.stage(stats["stage"].get<std::string>());
  };
  auto finish = [&](const std::vector<zmq::message_t>& s) {
    std::cerr << "\n";
    const json sj = body_of(s);
    const int rc = show(s);
    return rc != 0 ? rc : (sj["result"]["job"]["state"] == "done" ? 0 : 1);
  };
  for (;;) {
    std::vector<zmq::message_t> ev;
    if (zmq::recv_multipart(sub_sock, std::back_inserter(ev)) && ev.size() == 2) {
      const json b = json::parse(ev[1].to_string(), nullptr, false);
      if (b.is_discarded() || b.value("job_id", std::int64_t{-1}) != id) continue;
      if (ev[0].to_string() == "job.progress") {
        if (b.contains("stats")) stage_of(b["stats"]);
        bar.update(b["done"], b["total"]);
      }
      if (ev[0].to_string() == "job.state" && (b["state"] != "queued" && b["state"] != "running")) {
        return finish(c.call("jobs.status", {{"job_id", id}}));
      }
    } else {
      // No event for a second (events are best-effort): ask directly.
      auto s = c.call("jobs.status", {{"job_id", id}});
      const json sj = body_of(s);
      if (sj["ok"] != true) return show(s);
      const auto& job = sj["result"]["job"];
      if (job.contains("stats")) stage_of(job["stats"]);
      bar.update(job["done"], job["total"]);
      if (job["state"] != "queued" && job["state"] != "running") return finish(s);
    }
  }
}

// Submits a job command and, unless no_wait, follows it to its end.
int run_job(Client& c, const std::string& events, const std::string& cmd, const json& args,
            std::vector<std::string> parts, bool no_wait) {
  // Subscribe before submitting so that no progress event is missed.
  zmq::socket_t sub_sock(c.ctx, zmq::socket_type::sub);
  sub_sock.set(zmq::sockopt::linger, 0);
  sub_sock.set(zmq::sockopt::subscribe, "job.");
  sub_sock.connect(events);
  auto r = c.call(cmd, args, std::move(parts));
  const json j = body_of(r);
  if (j["ok"] != true || no_wait) return show(r);
  const auto id = j["result"]["job_id"].get<std::int64_t>();
  std::cerr << "job " << id << " -> run " << j["result"]["run_id"].get<std::string>() << "\n";
  return follow_job(c, sub_sock, id);
}

// camera.grab → .npy, or .png (8- or 16-bit grey, as the camera delivers).
int grab(Client& c, const fs::path& out, int grab_timeout_ms) {
  const auto ext = out.extension().string();
  if (ext != ".npy" && ext != ".png") throw std::runtime_error("--out must end in .npy or .png, got '" + out.string() + "'");
  auto r = c.call("camera.grab", {{"timeout_ms", grab_timeout_ms}});
  const json j = body_of(r);
  if (j["ok"] != true) return show(r);
  const auto a = array_of(r, j["result"]["frame"]);
  if (ext == ".npy") {
    hilo::sim::write_npy(out, a);
  } else {
    const cv::Mat m(static_cast<int>(a.shape[0]), static_cast<int>(a.shape[1]),
                    a.dtype == hilo::sim::Dtype::u2 ? CV_16UC1 : CV_8UC1, const_cast<std::byte*>(a.bytes.data()));
    if (!cv::imwrite(out.string(), m)) throw std::runtime_error("cannot write " + out.string());
  }
  std::cout << "wrote " << out.string() << " (" << a.shape[0] << "x" << a.shape[1] << " "
            << j["result"]["frame"]["dtype"].get<std::string>() << ", sequence " << j["result"]["sequence"] << ")\n";
  return 0;
}

// runs.get: without `out`, prints the run, its path and manifest. With `out`, fetches every array (or
// those named), one request per array so each reply stays small, and writes them as <out>/<name>.npy
// plus <out>/manifest.json (format "npy") or as one <out>/run.h5 (format "hdf5", docs/storage.md).
int runs_get(Client& c, const std::string& run_id, std::vector<std::string> names, const std::string& out,
             const std::string& format) {
  auto r = c.call("runs.get", {{"run_id", run_id}});
  const json j = body_of(r);
  if (j["ok"] != true || (out.empty() && names.empty())) return show(r);
  const json& manifest = j["result"]["manifest"];
  if (names.empty()) {
    std::set<std::string> found;
    if (manifest.contains("arrays") && manifest["arrays"].is_object()) {
      for (const auto& [k, _] : manifest["arrays"].items()) found.insert(k);
    }
    if (manifest.contains("chunks") && manifest["chunks"].is_array()) {
      for (const auto& ch : manifest["chunks"]) {
        if (ch.contains("files") && ch["files"].is_object()) {
          for (const auto& [k, _] : ch["files"].items()) found.insert(k);
        }
      }
    }
    names.assign(found.begin(), found.end());
  }
  if (out.empty()) return show(c.call("runs.get", {{"run_id", run_id}, {"arrays", names}}));
  fs::create_directories(out);
  std::vector<hilo::controller::RunWriter::Array> fetched;
  for (const auto& n : names) {
    auto ra = c.call("runs.get", {{"run_id", run_id}, {"arrays", {n}}});
    const json ja = body_of(ra);
    if (ja["ok"] != true) return show(ra);
    const auto a = array_of(ra, ja["result"]["arrays"][n]);
    if (format == "hdf5") {
      fetched.push_back({n, hilo::sim::dtype_descr(a.dtype), a.shape,
                         std::string(reinterpret_cast<const char*>(a.bytes.data()), a.bytes.size())});
      continue;
    }
    const fs::path p = fs::path(out) / (n + ".npy");
    hilo::sim::write_npy(p, a);
    std::string shape;
    for (auto s : a.shape) shape += (shape.empty() ? "" : "x") + std::to_string(s);
    std::cout << "wrote " << p.string() << " (" << shape << " " << hilo::sim::dtype_descr(a.dtype) << ")\n";
  }
  if (format == "hdf5") {
    const fs::path p = fs::path(out) / "run.h5";
    auto w = hilo::controller::Hdf5RunWriter::create(p, manifest);
    if (!fetched.empty()) w.append(fetched, fetched[0].shape.empty() ? 0 : fetched[0].shape[0]);
    w.finish(manifest);
    std::cout << "wrote " << p.string() << " (" << w.records() << " records, " << fetched.size() << " arrays)\n";
    return 0;
  }
  hilo::controller::write_json_atomic(fs::path(out) / "manifest.json", manifest);
  std::cout << "wrote " << (fs::path(out) / "manifest.json").string() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hiloctl — talk to hilod (one subcommand per protocol command, docs/protocol.md)"};
  std::string endpoint = "tcp://127.0.0.1:5555", events = "tcp://127.0.0.1:5556";
  int timeout_ms = 30000;
  app.add_option("--endpoint", endpoint, "hilod command endpoint")->capture_default_str();
  app.add_option("--events", events, "hilod event endpoint (job progress)")->capture_default_str();
  app.add_option("--timeout-ms", timeout_ms, "reply timeout")->capture_default_str();
  app.require_subcommand(1);
  app.add_subcommand("ping", "check that hilod answers (ping)");
  app.add_subcommand("version", "protocol and daemon version, the daemon's commands (version)");

  auto* devices = app.add_subcommand("devices", "devices: list (default), status, configure");
  devices->require_subcommand(0, 1);
  devices->add_subcommand("list", "the devices and their settings (devices.list)");
  devices->add_subcommand("status", "device states, counters, whether a job holds them (devices.status)");
  auto* configure = devices->add_subcommand("configure", "set camera exposure, gain, pixel format, trigger (devices.configure)");
  std::optional<double> exposure_ms, gain_db;
  std::optional<std::string> pixel_format, trigger_mode;
  configure->add_option("--exposure-ms", exposure_ms, "exposure in ms, (0, 60000]");
  configure->add_option("--gain-db", gain_db, "gain in dB, [-100, 100]");
  configure->add_option("--pixel-format", pixel_format, "mono8, mono12 or mono16");
  configure->add_option("--trigger-mode", trigger_mode, "free_run or software");

  auto* slm = app.add_subcommand("slm", "the input SLM");
  slm->require_subcommand(1);
  auto* slm_show = slm->add_subcommand("show", "show a pattern: a 2-D uint8/uint16 .npy of the SLM's size (slm.show)");
  std::string pattern_npy;
  slm_show->add_option("npy", pattern_npy, "pattern file")->required();

  auto* camera = app.add_subcommand("camera", "the camera");
  camera->require_subcommand(1);
  auto* camera_grab = camera->add_subcommand("grab", "grab one frame into .npy or .png (camera.grab)");
  auto* grab_legacy = app.add_subcommand("grab", "same as camera grab");
  std::string out;
  int grab_timeout_ms = 1000;
  for (auto* g : {camera_grab, grab_legacy}) {
    g->add_option("--out", out, "output file, .npy or .png (8/16-bit grey)")->required();
    g->add_option("--grab-timeout-ms", grab_timeout_ms, "camera timeout")->capture_default_str();
  }

  bool no_wait = false;
  auto* cap = app.add_subcommand("capture", "capture a dataset slice (Fashion-MNIST or a lab's own files) or a .npy of "
                                             "inputs through the bench (capture)");
  std::optional<std::int64_t> start, count, scale, chunk_records;
  std::optional<std::string> inputs_npy, dataset_file;
  std::string split = "train";
  auto* o_start = cap->add_option("--start", start, "first dataset index");
  auto* o_count = cap->add_option("--count", count, "number of dataset inputs");
  o_start->needs(o_count);
  o_count->needs(o_start);
  cap->add_option("--split", split, "train or test")->capture_default_str();
  cap->add_option("--dataset-file", dataset_file,
                  "a lab's own dataset for the slice: YAML or JSON holding the dataset object of docs/distill.md "
                  "(name npy | cifar10-bin | png-folder, its paths relative to hilod's data directory); "
                  "default Fashion-MNIST")
      ->check(CLI::ExistingFile)
      ->needs(o_start);
  cap->add_option("--inputs-npy", inputs_npy, "uint8 [n, h, w] .npy inside the data directory (path relative to it)")
      ->excludes(o_start)
      ->excludes(o_count);
  cap->add_option("--scale", scale, "integer magnification on the SLM, 0 = largest that fits");
  cap->add_option("--chunk-records", chunk_records, "frames per stored chunk");
  cap->add_flag("--no-wait", no_wait, "return after the job is queued");

  auto* pipe = app.add_subcommand("pipeline", "run the hardware-in-the-loop pipeline (teacher → student → deploy → "
                                               "calibrate → measure → compensate → evaluate) and follow it (pipeline)");
  std::string job_file;
  pipe->add_option("--job", job_file, "pipeline settings (YAML or JSON, docs/pipeline.md); default: the built-in defaults");
  pipe->add_flag("--no-wait", no_wait, "return after the job is queued");
  std::string train_config;
  auto* teacher = app.add_subcommand("train-teacher", "train the teacher CNN as a daemon job (train-teacher)");
  auto* distill = app.add_subcommand("distill", "distill a student from a teacher in the data directory (distill)");
  for (auto* t : {teacher, distill}) {
    t->add_option("--config", train_config, "the hilo-train job (YAML or JSON; out_dir is set by hilod)")->required();
    t->add_flag("--no-wait", no_wait, "return after the job is queued");
  }

  // The pipeline's stages as jobs of their own (deploy, calibrate, evaluate).
  std::string stage_student, stage_deployment, stage_teacher, stage_profile, stage_config, stage_calibration;
  auto* deploy_cmd = app.add_subcommand("deploy", "design the element for a trained student (deploy)");
  deploy_cmd->add_option("--student", stage_student, "student model file inside the data directory")->required();
  auto* calibrate_cmd = app.add_subcommand("calibrate", "calibrate the bench for a deployment and re-fit the backend (calibrate)");
  auto* evaluate_cmd = app.add_subcommand("evaluate", "the deployed student's accuracy measured through the bench (evaluate)");
  calibrate_cmd->add_option("--teacher", stage_teacher, "teacher model file inside the data directory")->required();
  for (auto* t : {calibrate_cmd, evaluate_cmd}) {
    t->add_option("--deployment", stage_deployment, "run id of a deploy job (or a pipeline)")->required();
    t->add_option("--profile", stage_profile, "as-built profile (simulated bench only)");
  }
  evaluate_cmd->add_option("--calibration", stage_calibration,
                           "a saved calibration to measure with instead of calibrating: <run id>/bench/<profile>/calibration");
  for (auto* t : {deploy_cmd, calibrate_cmd, evaluate_cmd}) {
    t->add_option("--config", stage_config, "pipeline settings (YAML or JSON, docs/pipeline.md)");
    t->add_flag("--no-wait", no_wait, "return after the job is queued");
  }

  int limit = 100;
  std::int64_t job_id = 0;
  auto* jobs = app.add_subcommand("jobs", "jobs: list (default), status, cancel");
  jobs->require_subcommand(0, 1);
  auto* jobs_list = jobs->add_subcommand("list", "newest first (jobs.list)");
  jobs_list->add_option("--limit", limit, "at most this many")->capture_default_str();
  auto* jobs_status = jobs->add_subcommand("status", "one job (jobs.status)");
  auto* jobs_cancel = jobs->add_subcommand("cancel", "cancel a job (jobs.cancel)");
  auto* cancel_legacy = app.add_subcommand("cancel", "same as jobs cancel");
  for (auto* s : {jobs_status, jobs_cancel, cancel_legacy}) s->add_option("job_id", job_id)->required();

  auto* runs = app.add_subcommand("runs", "runs: list (default), get, export");
  runs->require_subcommand(0, 1);
  auto* runs_list = runs->add_subcommand("list", "newest first (runs.list)");
  runs_list->add_option("--limit", limit, "at most this many")->capture_default_str();
  auto* runs_get_cmd = runs->add_subcommand("get", "a run's manifest, or its arrays as .npy files with --out (runs.get)");
  std::string run_id, out_dir;
  std::vector<std::string> arrays;
  runs_get_cmd->add_option("run_id", run_id)->required();
  runs_get_cmd->add_option("--arrays", arrays, "array names (default with --out: every array of the run)")->delimiter(',');
  runs_get_cmd->add_option("--out", out_dir, "write <name>.npy per array and manifest.json (or run.h5) into this directory");
  std::string run_format = "npy";
  runs_get_cmd->add_option("--format", run_format, "with --out: npy or hdf5 (one run.h5, docs/storage.md)")
      ->check(CLI::IsMember({"npy", "hdf5"}))
      ->capture_default_str();
  auto* runs_export_cmd = runs->add_subcommand("export", "have hilod write run.h5 into the run's directory (runs.export)");
  runs_export_cmd->add_option("run_id", run_id)->required();

  auto* daemon = app.add_subcommand("daemon", "the daemon itself: stats");
  daemon->require_subcommand(1);
  daemon->add_subcommand("stats", "every counter hilod keeps: requests, overloads, dropped replies, ZAP, jobs, devices (daemon.stats)");

  auto* recomp_cmd = app.add_subcommand("recompensate", "re-calibrate a finished pipeline stage and re-fit its backend from the "
                                                       "digital twin, without measuring the training fraction again (recompensate)");
  std::string recomp_run;
  recomp_cmd->add_option("--run", recomp_run, "run id of a finished pipeline (or calibrate job)")->required();
  recomp_cmd->add_option("--profile", stage_profile, "as-built profile of the stage (simulated bench only)");
  recomp_cmd->add_option("--config", stage_config, "YAML or JSON with a `bench` section replacing the run's (docs/protocol.md)");
  recomp_cmd->add_flag("--no-wait", no_wait, "return after the job is queued");

  auto* defer = app.add_subcommand("defer", "classify measured feature rows (or raw camera frames) with a deployed student, "
                                            "deferring the least confident to the teacher (defer)");
  std::string defer_student, defer_teacher, features_npy, frames_npy, clean_npy, defer_calibration;
  std::optional<double> defer_rate, defer_threshold, defer_cpu;
  defer->add_option("--student", defer_student, "student model file, relative to the data directory")->required();
  auto* o_features = defer->add_option("--features", features_npy, "[n, D] float .npy of feature rows (local file)")->check(CLI::ExistingFile);
  auto* o_frames = defer->add_option("--frames", frames_npy, "[n, rows, cols] .npy of raw camera frames (local file), turned into "
                                                             "features through the saved bench calibration the student names")
                       ->check(CLI::ExistingFile)
                       ->excludes(o_features);
  o_features->excludes(o_frames);
  defer->add_option("--calibration", defer_calibration, "with --frames: a saved calibration directory in the data directory "
                                                        "(default: the one the student's meta names)")->needs(o_frames);
  defer->add_option("--counts-per-unit", defer_cpu, "with --frames: the deployment's counts per unit (default: the student's)")->needs(o_frames);
  auto* o_teacher = defer->add_option("--teacher", defer_teacher, "teacher model file, relative to the data directory");
  defer->add_option("--inputs", clean_npy, "the clean inputs for the teacher, one per row (local .npy)")->needs(o_teacher)->check(CLI::ExistingFile);
  auto* o_rate = defer->add_option("--rate", defer_rate, "share of these rows to defer, in [0, 1]");
  defer->add_option("--threshold", defer_threshold, "defer rows whose confidence is below this")->excludes(o_rate);
  app.add_subcommand("shutdown", "stop hilod (the running job ends interrupted) (shutdown)");
  CLI11_PARSE(app, argc, argv);

  try {
    Client c(endpoint, timeout_ms);
    const auto* top = app.get_subcommands()[0];
    const std::string sub = top->get_name();
    const std::string leaf = top->get_subcommands().empty() ? "" : top->get_subcommands()[0]->get_name();
    if (sub == "ping") {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = c.call("ping", json::object());
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (body_of(r)["ok"] != true) return show(r);
      std::cout << "pong from " << endpoint << " in " << ms << " ms\n";
      return 0;
    }
    if (sub == "version") return show(c.call("version", json::object()));
    if (sub == "shutdown") return show(c.call("shutdown", json::object()));
    if (sub == "daemon") return show(c.call("daemon.stats", json::object()));
    if (sub == "devices") {
      if (leaf == "status") return show(c.call("devices.status", json::object()));
      if (leaf == "configure") {
        json args = json::object();
        if (exposure_ms) args["exposure_ms"] = *exposure_ms;
        if (gain_db) args["gain_db"] = *gain_db;
        if (pixel_format) args["pixel_format"] = *pixel_format;
        if (trigger_mode) args["trigger_mode"] = *trigger_mode;
        return show(c.call("devices.configure", args));
      }
      return show(c.call("devices.list", json::object()));
    }
    if (sub == "slm") {
      auto [desc, bytes] = npy_part(pattern_npy, 1);
      return show(c.call("slm.show", {{"pattern", desc}}, {std::move(bytes)}));
    }
    if (sub == "camera" || sub == "grab") return grab(c, out, grab_timeout_ms);
    if (sub == "defer") {
      json args = {{"student", defer_student}};
      std::vector<std::string> parts;
      if (features_npy.empty() == frames_npy.empty()) {
        std::cerr << "hiloctl defer: give --features or --frames\n";
        return 2;
      }
      for (const auto& [key, file] : {std::pair<std::string, std::string>{"features", features_npy}, {"frames", frames_npy},
                                      {"inputs", clean_npy}}) {
        if (file.empty()) continue;
        auto [desc, bytes] = npy_part(file, int(parts.size()) + 1);
        args[key] = desc;
        parts.push_back(std::move(bytes));
      }
      if (!defer_teacher.empty()) args["teacher"] = defer_teacher;
      if (!defer_calibration.empty()) args["calibration"] = defer_calibration;
      if (defer_cpu) args["counts_per_unit"] = *defer_cpu;
      if (defer_rate) args["rate"] = *defer_rate;
      if (defer_threshold) args["threshold"] = *defer_threshold;
      return show(c.call("defer", args, std::move(parts)));
    }
    if (sub == "jobs" && leaf == "status") return show(c.call("jobs.status", {{"job_id", job_id}}));
    if ((sub == "jobs" && leaf == "cancel") || sub == "cancel") return show(c.call("jobs.cancel", {{"job_id", job_id}}));
    if (sub == "jobs") return show(c.call("jobs.list", {{"limit", limit}}));
    if (sub == "runs" && leaf == "get") return runs_get(c, run_id, arrays, out_dir, run_format);
    if (sub == "runs" && leaf == "export") return show(c.call("runs.export", {{"run_id", run_id}, {"format", "hdf5"}}));
    if (sub == "runs") return show(c.call("runs.list", {{"limit", limit}}));
    if (sub == "capture") {
      json args;
      if (inputs_npy) {
        args = {{"inputs_npy", *inputs_npy}};
      } else if (start && count) {
        const json dataset = dataset_file ? hilo::distill::load_config_file(*dataset_file) : json("fashion-mnist");
        args = {{"dataset", dataset}, {"split", split}, {"start", *start}, {"count", *count}};
      } else {
        throw CLI::RequiredError("capture needs --start and --count (a dataset slice) or --inputs-npy");
      }
      if (scale) args["scale"] = *scale;
      if (chunk_records) args["chunk_records"] = *chunk_records;
      return run_job(c, events, "capture", args, {}, no_wait);
    }
    if (sub == "pipeline") {
      const json args = job_file.empty() ? json::object() : json{{"config", hilo::distill::load_config_file(job_file)}};
      return run_job(c, events, "pipeline", args, {}, no_wait);
    }
    if (sub == "deploy" || sub == "calibrate" || sub == "evaluate") {
      json args = json::object();
      if (!stage_config.empty()) args["config"] = hilo::distill::load_config_file(stage_config);
      if (sub == "deploy") args["student"] = stage_student;
      if (sub != "deploy") args["deployment"] = stage_deployment;
      if (sub == "calibrate") args["teacher"] = stage_teacher;
      if (!stage_profile.empty()) args["profile"] = stage_profile;
      if (!stage_calibration.empty()) args["calibration"] = stage_calibration;
      return run_job(c, events, sub, args, {}, no_wait);
    }
    if (sub == "recompensate") {
      json args = {{"run", recomp_run}};
      if (!stage_profile.empty()) args["profile"] = stage_profile;
      if (!stage_config.empty()) args["config"] = hilo::distill::load_config_file(stage_config);
      return run_job(c, events, sub, args, {}, no_wait);
    }
    if (sub == "train-teacher" || sub == "distill") {
      return run_job(c, events, sub, {{"config", hilo::distill::load_config_file(train_config)}}, {}, no_wait);
    }
  } catch (const CLI::Error& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "hiloctl: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
