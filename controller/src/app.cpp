#include "hilo/controller/app.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cassert>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>

namespace hilo::controller {

using nlohmann::json;

namespace {
// Logs each job's start and end (failed: error, with the job's error text), then passes the event on.
EventSink logged_job_events(EventSink next, Log log) {
  return [next = std::move(next), log = std::move(log)](const std::string& topic, const json& body) {
    if (topic == "job.state" && body.is_object()) {
      const std::string state = body.value("state", "");
      json f = {{"job_id", body.value("job_id", json())}, {"kind", body.value("kind", "")},
                {"run_id", body.value("run_id", "")}, {"state", state}};
      if (state == "failed") {
        f["error"] = body.value("error", "");
        log.error("job failed", f);
      } else if (state == "running" || state == "done" || state == "cancelled" || state == "interrupted") {
        f["done"] = body.value("done", json());
        f["total"] = body.value("total", json());
        log.info("job " + state, f);
      }
    }
    next(topic, body);
  };
}
}  // namespace

std::string HilodOptions::validate() const {
  if (data_dir.empty()) return "hilod.data_dir must not be empty";
  if (chunk_records < 1 || chunk_records > 100000) return "hilod.chunk_records must be in [1, 100000], got " + std::to_string(chunk_records);
  if (auto e = live.validate(); !e.empty()) return e;
  return daemon.validate();
}

void add_hilod_options(CLI::App& app, HilodOptions& o) {
  app.add_option("--config", o.config, "bench config YAML (configs/sim.yaml for simulator mode)")->required();
  app.add_option("--command-endpoint", o.daemon.command_endpoint, "ZeroMQ ROUTER endpoint for commands")
      ->capture_default_str();
  app.add_option("--event-endpoint", o.daemon.event_endpoint, "ZeroMQ PUB endpoint for events")->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "directory of runs and the catalog")->capture_default_str();
  app.add_option("--ready-file", o.ready_file, "write the bound endpoints here (JSON) once serving");
  app.add_option("--heartbeat-s", o.daemon.heartbeat_s, "seconds between heartbeat events")->capture_default_str();
  app.add_option("--fashion-mnist-dir", o.fashion_mnist_dir, "directory of the gzipped Fashion-MNIST IDX files")
      ->capture_default_str();
  app.add_option("--curve-key-file", o.curve_secret_key_file,
                 "CurveZMQ server keys (line 1 public, line 2 secret, Z85); required for a non-loopback bind");
  app.add_option("--chunk-records", o.chunk_records, "frames per stored chunk")->capture_default_str();
  app.add_flag("!--no-resume", o.resume,
               "leave interrupted captures interrupted (default: continue them from their last stored chunk)");
  app.add_flag("--hdf5", o.hdf5,
               "captures also write their run as HDF5 (run.h5, SWMR) unless a request says \"hdf5\": false");
  add_daemon_options(app, o.daemon);
  add_live_view_options(app, o.live);
  add_log_options(app, o.log);
  app.set_config("--options-file", "", "read options from this file first (\"name = value\" lines; configs/hilod.conf)");
  app.allow_config_extras(CLI::config_extras_mode::error);
}

bool notify_systemd(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return true;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t n = std::strlen(path);
  if (n >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@')) return false;
  std::memcpy(addr.sun_path, path, n);
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  const bool sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len) ==
                    static_cast<ssize_t>(state.size());
  ::close(fd);
  return sent;
}

int run_hilod(HilodOptions o, drivers::Slm& slm, drivers::Camera& camera) {
  std::optional<Log> log;
  try {
    log.emplace(o.log);
  } catch (const std::exception& e) {
    std::cerr << "hilod: " << e.what() << "\n";
    return 2;
  }
  std::mutex mutex;
  return run_hilod(std::move(o), *log, HilodDevices{slm, camera, mutex});
}

int run_hilod(HilodOptions o, const Log& log, const HilodDevices& opened, PipelineBench* pipeline) {
  assert((!pipeline || !pipeline->mutex || pipeline->mutex == &opened.mutex) && "the pipeline shares the device mutex");
  drivers::Slm& slm = opened.input;
  drivers::Camera& camera = opened.camera;
  try {
    if (!o.curve_secret_key_file.empty()) {
      std::ifstream in(o.curve_secret_key_file);
      if (!(std::getline(in, o.daemon.curve_public_key) && std::getline(in, o.daemon.curve_secret_key))) {
        log.critical("cannot start: " + o.curve_secret_key_file.string() + ": expected two lines (public key, secret key)");
        return 2;
      }
    }
    if (auto e = o.validate(); !e.empty()) {
      log.critical("cannot start: " + e);
      return 2;
    }
    std::filesystem::create_directories(o.data_dir);
    Catalog catalog(o.data_dir / "catalog.sqlite");
    const auto unix_now = [] {
      return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
    if (int n = catalog.mark_unfinished_interrupted(unix_now()); n > 0) {
      log.warn("marked jobs left unfinished by a previous run as interrupted", {{"jobs", n}});
    }
    if (auto e = slm.open()) {
      log.critical("cannot open the SLM: " + e->message, {{"device", "slm"}});
      return 3;
    }
    if (auto e = camera.open()) {
      log.critical("cannot open the camera: " + e->message, {{"device", "camera"}});
      return 3;
    }

    // The live view's preview path: the devices every front end drives are the wrapped ones.
    std::optional<PreviewTap> tap;
    std::optional<PreviewSlm> preview_slm, preview_element;
    std::optional<PreviewCamera> preview_camera;
    std::optional<PipelineBench> preview_pipeline;
    if (o.live.enabled()) {
      tap.emplace(o.live.preview);
      preview_slm.emplace(slm, *tap, PreviewSource::input_slm);
      preview_camera.emplace(camera, *tap, &*preview_slm);
      if (opened.element) preview_element.emplace(*opened.element, *tap, PreviewSource::element_slm);
      if (pipeline) {
        preview_pipeline.emplace(PipelineBench{*preview_slm, preview_element ? &*preview_element : nullptr, *preview_camera,
                                               pipeline->design, pipeline->simulator, pipeline->reset_simulator,
                                               pipeline->load_profile, pipeline->now_s, pipeline->mutex});
        pipeline = &*preview_pipeline;
      }
    }
    drivers::Slm& dev_slm = preview_slm ? static_cast<drivers::Slm&>(*preview_slm) : slm;
    drivers::Camera& dev_camera = preview_camera ? static_cast<drivers::Camera&>(*preview_camera) : camera;

    boost::asio::io_context io;
    zmq::context_t zctx(1);
    EventPublisher events(io, zctx);
    DatasetLibrary datasets;  // declared before the job manager: jobs load from it on the worker
    datasets.add("fashion-mnist", o.fashion_mnist_dir);
    JobManager jobs(catalog, logged_job_events(events.sink(), log), unix_now);
    Devices devices{dev_slm, dev_camera, opened.mutex};
    devices.element = preview_element ? &*preview_element : opened.element;
    devices.bench_config = o.config.string();
    devices.slm_retries = opened.input_retries;
    devices.camera_retries = opened.camera_retries;
    devices.design = opened.design;
    devices.element_levels = opened.element_levels;
    CaptureOptions cap;
    cap.chunk_records = o.chunk_records;
  cap.hdf5 = o.hdf5;
    const auto monotonic_s = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    };
    if (o.resume) {
      if (int n = resume_interrupted_captures(jobs, catalog, datasets, devices, o.data_dir, cap, monotonic_s,
                                              o.daemon.limits.max_jobs);
          n > 0) {
        log.info("continuing interrupted capture jobs", {{"jobs", n}});
      }
    }
    if (pipeline) pipeline->mutex = &devices.mutex;  // null for a caller-built PipelineBench
    if (o.resume) {
      if (int n = resume_interrupted_jobs(jobs, catalog, pipeline, o.data_dir, o.daemon.limits.max_jobs); n > 0) {
        log.info("continuing interrupted pipeline, stage and training jobs", {{"jobs", n}});
      }
    }
    Context ctx{devices, jobs, catalog, datasets, o.data_dir, o.daemon.limits, cap, [] {
                  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
                }};
    ctx.pipeline = pipeline;
    std::optional<LiveView> live;
    if (o.live.enabled()) {
      live.emplace(o.live, LiveView::Sources{*tap, o.data_dir, [&devices, &jobs, element = devices.element] {
                                               nlohmann::json d = {{"slm", slm_json(devices.slm)},
                                                                   {"camera", camera_json(devices.camera)},
                                                                   {"jobs_active", jobs.busy()},
                                                                   {"counters", devices.counters_json()}};
                                               if (element) {
                                                 d["element_slm"] = slm_json(*element);
                                                 d["element_slm"]["role"] = "element_slm";
                                               }
                                               return d;
                                             }});
      events.add_listener([&live](const std::string& t, const nlohmann::json& b) { live->on_event(t, b); });
      live->start();
      log.info("live view", {{"url", live->url()}});
    }
    Daemon daemon(io, zctx, o.daemon, ctx, events, log);
    daemon.start();
    log.info("serving", {{"command_endpoint", daemon.command_endpoint()},
                         {"event_endpoint", daemon.event_endpoint()},
                         {"data_dir", o.data_dir.string()},
                         {"pid", ::getpid()}});
    if (!o.ready_file.empty()) {
      nlohmann::json ready = {{"command_endpoint", daemon.command_endpoint()},
                              {"event_endpoint", daemon.event_endpoint()},
                              {"pid", ::getpid()}};
      if (live) ready["http_url"] = live->url();
      write_json_atomic(o.ready_file, ready);
    }
    if (!notify_systemd("READY=1")) log.warn("could not notify systemd (NOTIFY_SOCKET)", {{"state", "READY=1"}});
    io.run();
    if (live) live->stop();
    notify_systemd("STOPPING=1");
    jobs.shutdown();
    camera.close();
    slm.close();
    log.info("stopped");
    return 0;
  } catch (const std::exception& e) {
    log.critical(e.what());
    return 1;
  }
}

}  // namespace hilo::controller
