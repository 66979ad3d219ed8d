// hiloctl: command-line client of hilod (docs/protocol.md).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "hilo/controller/hdf5_run.hpp"
#include "hilo/controller/protocol.hpp"
#include "hilo/controller/storage.hpp"
#include "hilo/distill/jobs.hpp"
#include "hilo/sim/npy.hpp"

using nlohmann::json;

namespace {

struct Client {
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::dealer};
  int timeout_ms;
  int next_id = 1;

  Client(const std::string& ep, int timeout) : timeout_ms(timeout) {
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::rcvtimeo, timeout);
    sock.connect(ep);
  }

  // Returns the reply frames (JSON first); throws on timeout.
  std::vector<zmq::message_t> call(const std::string& cmd, const json& args) {
    const json req = {{"id", next_id++}, {"cmd", cmd}, {"args", args}, {"v", hilo::controller::kProtocolVersion}};
    std::vector<zmq::message_t> out;
    out.emplace_back();
    out.emplace_back(req.dump());
    zmq::send_multipart(sock, out);
    std::vector<zmq::message_t> in;
    if (!zmq::recv_multipart(sock, std::back_inserter(in))) {
      throw std::runtime_error("no reply within " + std::to_string(timeout_ms) + " ms (is hilod running?)");
    }
    if (in.size() < 2) throw std::runtime_error("malformed reply");
    in.erase(in.begin());  // delimiter
    return in;
  }
};

// Prints the result (or the error, exit code 1) as JSON.
int show(const std::vector<zmq::message_t>& r) {
  const json j = json::parse(r[0].to_string());
  if (j["ok"] != true) {
    std::cerr << "error " << j["error"]["code"].get<std::string>() << ": " << j["error"]["message"].get<std::string>() << "\n";
    return 1;
  }
  std::cout << j["result"].dump(2) << "\n";
  return 0;
}

void progress_bar(std::int64_t done, std::int64_t total) {
  const int width = 40;
  const double f = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const int fill = static_cast<int>(f * width);
  std::fprintf(stderr, "\r[%s%s] %lld/%lld (%3.0f%%)", std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(),
               static_cast<long long>(done), static_cast<long long>(total), 100.0 * f);
  std::fflush(stderr);
}

// Shows a job's progress (events, or jobs.status when no event comes for a second) until it ends; then
// prints its final status. Exit 0 when it ended done, 1 otherwise.
int follow_job(Client& c, zmq::socket_t& sub_sock, std::int64_t id) {
  sub_sock.set(zmq::sockopt::rcvtimeo, 1000);
  std::string stage;
  auto stage_of = [&](const json& stats) {
    if (!stats.is_object() || !stats.contains("stage")) return;
    const auto s = stats["stage"].get<std::string>();
    if (s != stage) {
      if (!stage.empty()) std::cerr << "\n";
      stage = s;
      std::cerr << s << "\n";
    }
  };
  auto finish = [&](const std::vector<zmq::message_t>& s) {
    std::cerr << "\n";
    const json sj = json::parse(s[0].to_string());
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
        progress_bar(b["done"], b["total"]);
      }
      if (ev[0].to_string() == "job.state" && (b["state"] != "queued" && b["state"] != "running")) {
        return finish(c.call("jobs.status", {{"job_id", id}}));
      }
    } else {
      // No event for a second (events are best-effort): ask directly.
      auto s = c.call("jobs.status", {{"job_id", id}});
      const json sj = json::parse(s[0].to_string());
      if (sj["ok"] != true) return show(s);
      const auto& job = sj["result"]["job"];
      if (job.contains("stats")) stage_of(job["stats"]);
      progress_bar(job["done"], job["total"]);
      if (job["state"] != "queued" && job["state"] != "running") return finish(s);
    }
  }
}

// runs get: fetches every array of a run (one request per array, so each stays under the reply limit)
// and saves them into `out_dir`: <name>.npy + manifest.json, or one run.h5 (docs/storage.md).
int save_run(Client& c, const std::string& run_id, const std::filesystem::path& out_dir, const std::string& format) {
  auto r = c.call("runs.get", {{"run_id", run_id}});
  json j = json::parse(r[0].to_string());
  if (j["ok"] != true) return show(r);
  const json manifest = j["result"]["manifest"];
  std::vector<std::string> names;
  for (const auto& [k, _] : manifest.value("arrays", json::object()).items()) names.push_back(k);
  const json chunks = manifest.value("chunks", json::array());
  if (names.empty() && !chunks.empty()) {
    for (const auto& [k, _] : chunks[0].value("files", json::object()).items()) names.push_back(k);
  }
  if (names.empty()) {
    std::cerr << "error: run '" << run_id << "' holds no arrays\n";
    return 1;
  }
  std::vector<hilo::controller::RunWriter::Array> arrays;
  for (const auto& n : names) {
    auto a = c.call("runs.get", {{"run_id", run_id}, {"arrays", {n}}});
    const json aj = json::parse(a[0].to_string());
    if (aj["ok"] != true) return show(a);
    const auto& d = aj["result"]["arrays"][n];
    const auto& part = a.at(d["part"].get<std::size_t>());
    arrays.push_back({n, d["dtype"].get<std::string>(), d["shape"].get<std::vector<std::size_t>>(),
                      std::string(static_cast<const char*>(part.data()), part.size())});
  }
  std::filesystem::create_directories(out_dir);
  if (format == "hdf5") {
    const auto path = out_dir / "run.h5";
    auto w = hilo::controller::Hdf5RunWriter::create(path, manifest);
    w.append(arrays, arrays[0].shape.empty() ? 0 : arrays[0].shape[0]);
    w.finish(manifest);
    std::cout << "wrote " << path.string() << " (" << w.records() << " records, " << arrays.size() << " arrays)\n";
    return 0;
  }
  for (const auto& a : arrays) hilo::controller::write_array(out_dir / (a.name + ".npy"), a);
  hilo::controller::write_json_atomic(out_dir / "manifest.json", manifest);
  std::cout << "wrote " << arrays.size() << " arrays and manifest.json to " << out_dir.string() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hiloctl — talk to hilod"};
  std::string endpoint = "tcp://127.0.0.1:5555", events = "tcp://127.0.0.1:5556";
  int timeout_ms = 30000;
  app.add_option("--endpoint", endpoint, "hilod command endpoint")->capture_default_str();
  app.add_option("--events", events, "hilod event endpoint (capture progress)")->capture_default_str();
  app.add_option("--timeout-ms", timeout_ms, "reply timeout")->capture_default_str();
  app.require_subcommand(1);
  app.add_subcommand("ping", "check that hilod answers");
  app.add_subcommand("version", "protocol and daemon version");
  app.add_subcommand("devices", "list devices and their state");
  auto* grab = app.add_subcommand("grab", "grab one camera frame into a .npy file");
  std::string out;
  grab->add_option("--out", out, "output .npy file")->required();
  auto* cap = app.add_subcommand("capture", "capture a Fashion-MNIST slice through the bench");
  std::int64_t start = 0, count = 0;
  std::string split = "train";
  bool no_wait = false;
  cap->add_option("--start", start, "first index")->required();
  cap->add_option("--count", count, "number of inputs")->required();
  cap->add_option("--split", split, "train or test")->capture_default_str();
  cap->add_flag("--no-wait", no_wait, "return after the job is queued");
  auto* pipe = app.add_subcommand("pipeline", "run the hardware-in-the-loop pipeline (teacher → student → deploy → "
                                               "calibrate → measure → compensate → evaluate) and follow it");
  std::string job_file;
  pipe->add_option("--job", job_file, "pipeline settings (YAML or JSON, docs/pipeline.md); default: the built-in defaults");
  pipe->add_flag("--no-wait", no_wait, "return after the job is queued");
  auto* jobs = app.add_subcommand("jobs", "list jobs");
  auto* runs = app.add_subcommand("runs", "list runs (or: runs get, runs export)");
  runs->require_subcommand(0, 1);
  std::string run_id, run_out = ".", run_format = "npy";
  auto* runs_get = runs->add_subcommand("get", "save a run's arrays here: <name>.npy files + manifest.json, or run.h5");
  runs_get->add_option("run_id", run_id)->required();
  runs_get->add_option("--out", run_out, "directory to write into (created if needed)")->capture_default_str();
  runs_get->add_option("--format", run_format, "npy or hdf5")->check(CLI::IsMember({"npy", "hdf5"}))->capture_default_str();
  auto* runs_export = runs->add_subcommand("export", "have hilod write run.h5 into the run's directory");
  runs_export->add_option("run_id", run_id)->required();
  auto* cancel = app.add_subcommand("cancel", "cancel a job");
  std::int64_t job_id = 0;
  cancel->add_option("job_id", job_id)->required();
  app.add_subcommand("shutdown", "stop hilod (the running job ends interrupted)");
  CLI11_PARSE(app, argc, argv);

  try {
    Client c(endpoint, timeout_ms);
    const std::string sub = app.get_subcommands()[0]->get_name();
    if (sub == "ping") {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = c.call("ping", json::object());
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (json::parse(r[0].to_string())["ok"] != true) return show(r);
      std::cout << "pong from " << endpoint << " in " << ms << " ms\n";
      return 0;
    }
    if (sub == "version") return show(c.call("version", json::object()));
    if (sub == "devices") return show(c.call("devices.list", json::object()));
    if (sub == "jobs") { (void)jobs; return show(c.call("jobs.list", json::object())); }
    if (sub == "runs") {
      if (runs_get->parsed()) return save_run(c, run_id, run_out, run_format);
      if (runs_export->parsed()) return show(c.call("runs.export", {{"run_id", run_id}, {"format", "hdf5"}}));
      return show(c.call("runs.list", json::object()));
    }
    if (sub == "cancel") return show(c.call("jobs.cancel", {{"job_id", job_id}}));
    if (sub == "shutdown") return show(c.call("shutdown", json::object()));
    if (sub == "grab") {
      auto r = c.call("camera.grab", json::object());
      const json j = json::parse(r[0].to_string());
      if (j["ok"] != true) return show(r);
      const auto& d = j["result"]["frame"];
      const auto& part = r.at(d["part"].get<std::size_t>());
      hilo::sim::NpyArray a;
      a.dtype = d["dtype"] == "<u2" ? hilo::sim::Dtype::u2 : hilo::sim::Dtype::u1;
      a.shape = d["shape"].get<std::vector<std::size_t>>();
      a.bytes.resize(part.size());
      std::memcpy(a.bytes.data(), part.data(), part.size());
      hilo::sim::write_npy(out, a);
      std::cout << "wrote " << out << " (" << a.shape[0] << "x" << a.shape[1] << " " << d["dtype"].get<std::string>() << ")\n";
      return 0;
    }
    if (sub == "capture" || sub == "pipeline") {
      // Subscribe before submitting so that no progress event is missed.
      zmq::socket_t sub_sock(c.ctx, zmq::socket_type::sub);
      sub_sock.set(zmq::sockopt::linger, 0);
      sub_sock.set(zmq::sockopt::subscribe, "job.");
      sub_sock.connect(events);
      json args;
      if (sub == "capture") {
        args = {{"dataset", "fashion-mnist"}, {"split", split}, {"start", start}, {"count", count}};
      } else if (!job_file.empty()) {
        args = {{"config", hilo::distill::load_config_file(job_file)}};
      } else {
        args = json::object();
      }
      auto r = c.call(sub, args);
      const json j = json::parse(r[0].to_string());
      if (j["ok"] != true || no_wait) return show(r);
      const auto id = j["result"]["job_id"].get<std::int64_t>();
      std::cerr << "job " << id << " -> run " << j["result"]["run_id"].get<std::string>() << "\n";
      return follow_job(c, sub_sock, id);
    }
  } catch (const std::exception& e) {
    std::cerr << "hiloctl: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
