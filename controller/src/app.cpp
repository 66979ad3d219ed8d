#include "hilo/controller/app.hpp"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>

namespace hilo::controller {

using nlohmann::json;

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
  add_daemon_options(app, o.daemon);
  add_live_view_options(app, o.live);
}

int run_hilod(HilodOptions o, drivers::Slm& slm, drivers::Camera& camera, PipelineBench* pipeline) {
  try {
    if (!o.curve_secret_key_file.empty()) {
      std::ifstream in(o.curve_secret_key_file);
      if (!(std::getline(in, o.daemon.curve_public_key) && std::getline(in, o.daemon.curve_secret_key))) {
        std::cerr << "hilod: " << o.curve_secret_key_file << ": expected two lines (public key, secret key)\n";
        return 2;
      }
    }
    if (auto e = o.validate(); !e.empty()) {
      std::cerr << "hilod: " << e << "\n";
      return 2;
    }
    std::filesystem::create_directories(o.data_dir);
    Catalog catalog(o.data_dir / "catalog.sqlite");
    const auto unix_now = [] {
      return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
    if (int n = catalog.mark_unfinished_interrupted(unix_now()); n > 0) {
      std::cerr << "hilod: marked " << n << " job(s) left unfinished by a previous run as interrupted\n";
    }
    if (auto e = slm.open()) {
      std::cerr << "hilod: cannot open SLM: " << e->message << "\n";
      return 3;
    }
    if (auto e = camera.open()) {
      std::cerr << "hilod: cannot open camera: " << e->message << "\n";
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
      preview_camera.emplace(camera, *tap);
      if (pipeline) {
        if (pipeline->element) preview_element.emplace(*pipeline->element, *tap, PreviewSource::element_slm);
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
    JobManager jobs(catalog, events.sink(), unix_now);
    DatasetLibrary datasets;
    datasets.add("fashion-mnist", o.fashion_mnist_dir);
    Devices devices{dev_slm, dev_camera, {}};
#ifdef HILO_HAVE_DRIVERS
    if (auto* r = dynamic_cast<drivers::RetryingSlm*>(&slm)) devices.slm_retries = &r->counters();
    if (auto* r = dynamic_cast<drivers::RetryingCamera*>(&camera)) devices.camera_retries = &r->counters();
#endif
    CaptureOptions cap;
    cap.chunk_records = o.chunk_records;
    const auto monotonic_s = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    };
    if (o.resume) {
      if (int n = resume_interrupted_captures(jobs, catalog, datasets, devices, o.data_dir, cap, monotonic_s); n > 0) {
        std::cerr << "hilod: continuing " << n << " interrupted capture job(s)\n";
      }
    }
    if (pipeline) pipeline->mutex = &devices.mutex;
    if (o.resume && pipeline) {
      if (int n = resume_interrupted_pipelines(jobs, catalog, *pipeline, o.data_dir); n > 0) {
        std::cerr << "hilod: continuing " << n << " interrupted pipeline job(s)\n";
      }
    }
    Context ctx{devices, jobs, catalog, datasets, o.data_dir, o.daemon.limits, cap, [] {
                  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
                }};
    ctx.pipeline = pipeline;
    std::optional<LiveView> live;
    if (o.live.enabled()) {
      drivers::Slm* element = pipeline ? pipeline->element : nullptr;
      live.emplace(o.live, LiveView::Sources{*tap, o.data_dir, [&devices, &jobs, element] {
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
      std::cerr << "hilod: live view on " << live->url() << "\n";
    }
    Daemon daemon(io, zctx, o.daemon, ctx, events);
    daemon.start();
    std::cerr << "hilod: commands on " << daemon.command_endpoint() << ", events on " << daemon.event_endpoint()
              << ", data in " << o.data_dir.string() << "\n";
    if (!o.ready_file.empty()) {
      nlohmann::json ready = {{"command_endpoint", daemon.command_endpoint()},
                              {"event_endpoint", daemon.event_endpoint()},
                              {"pid", ::getpid()}};
      if (live) ready["http_url"] = live->url();
      write_json_atomic(o.ready_file, ready);
    }
    io.run();
    if (live) live->stop();
    jobs.shutdown();
    camera.close();
    slm.close();
    std::cerr << "hilod: stopped\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "hilod: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace hilo::controller
