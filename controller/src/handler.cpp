#include "hilo/controller/handler.hpp"

#include "handler_detail.hpp"

#include <cstring>
#include <map>

#include "hilo/controller/hdf5_run.hpp"
#include "hilo/drivers/placed_slm.hpp"
#include "hilo/io/options_json.hpp"
#include "hilo/sim/npy.hpp"

namespace hilo::controller {

using nlohmann::json;

using namespace handler_detail;

Reply handler_detail::device_error(const Request& req, const drivers::DeviceError& e) {
  // invalid_argument from a device is the caller's mistake, everything else the device's.
  const ErrorCode c = e.code == drivers::DeviceErrc::invalid_argument ? ErrorCode::bad_argument : ErrorCode::device_error;
  return error_reply(req.id, c, e.message + " [" + std::string(drivers::to_string(e.code)) + "]");
}

Reply handler_detail::busy(const Request& req) {
  return error_reply(req.id, ErrorCode::busy, "the devices are in use by a running job; cancel it or wait");
}

std::optional<Reply> handler_detail::expect_parts(const Request& req, std::size_t n) {
  if (req.parts.size() != n) {
    return error_reply(req.id, ErrorCode::bad_parts,
                       req.cmd + " takes " + std::to_string(n) + " binary part(s), got " + std::to_string(req.parts.size()));
  }
  return std::nullopt;
}

json slm_json(drivers::Slm& s) {
  return {{"role", "input_slm"},         {"kind", "slm"},          {"name", s.name()},
          {"width_px", s.width_px()},    {"height_px", s.height_px()}, {"pixel_pitch_um", s.pixel_pitch_um()},
          {"bit_depth", s.bit_depth()},  {"settle_time_ms", s.settle_time_ms()},
          {"state", std::string(drivers::to_string(s.state()))}};
}

json camera_json(drivers::Camera& c) {
  return {{"role", "camera"},
          {"kind", "camera"},
          {"name", c.name()},
          {"width_px", c.width_px()},
          {"height_px", c.height_px()},
          {"pixel_format", std::string(drivers::to_string(c.pixel_format()))},
          {"exposure_ms", c.exposure_ms()},
          {"gain_db", c.gain_db()},
          {"trigger_mode", c.trigger_mode() == drivers::TriggerMode::software ? "software" : "free_run"},
          {"state", std::string(drivers::to_string(c.state()))}};
}

namespace {

Reply cmd_ping(const Request& req, Context&) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {})) return error_reply(*e);
  return ok_reply(req.id, {{"pong", true}});
}

Reply cmd_version(const Request& req, Context& ctx) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {})) return error_reply(*e);
  json cmds = json::array();
  for (auto c : command_names()) cmds.push_back(std::string(c));
  return ok_reply(req.id, {{"protocol_version", kProtocolVersion}, {"daemon", "hilod " + ctx.daemon_version}, {"commands", cmds}});
}

Reply cmd_devices_list(const Request& req, Context& ctx) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {})) return error_reply(*e);
  return ok_reply(req.id, {{"devices", {slm_json(ctx.devices.slm), camera_json(ctx.devices.camera)}}});
}

Reply cmd_devices_status(const Request& req, Context& ctx) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {})) return error_reply(*e);
  std::unique_lock lk(ctx.devices.mutex, std::try_to_lock);
  return ok_reply(req.id, {{"slm", slm_json(ctx.devices.slm)},
                           {"camera", camera_json(ctx.devices.camera)},
                           {"in_use", !lk.owns_lock()},
                           {"jobs_active", ctx.jobs.busy()},
                           {"counters", ctx.devices.counters_json()}});
}

Reply cmd_devices_configure(const Request& req, Context& ctx) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {"exposure_ms", "gain_db", "pixel_format", "trigger_mode"})) return error_reply(*e);
  if (req.args.empty()) {
    return error_reply(req.id, ErrorCode::missing_field,
                       "devices.configure needs at least one of exposure_ms, gain_db, pixel_format, trigger_mode");
  }
  // Validate every argument before touching a device.
  std::optional<double> exposure, gain;
  std::optional<drivers::PixelFormat> fmt;
  std::optional<drivers::TriggerMode> trig;
  if (req.args.contains("exposure_ms")) {
    auto v = get_number(req, "exposure_ms");
    if (auto* e = err_of(v)) return error_reply(*e);
    const double x = std::get<double>(v);
    if (!(x > 0 && x <= 60000)) return error_reply(req.id, ErrorCode::bad_argument, "exposure_ms must be in (0, 60000]");
    exposure = x;
  }
  if (req.args.contains("gain_db")) {
    auto v = get_number(req, "gain_db");
    if (auto* e = err_of(v)) return error_reply(*e);
    const double x = std::get<double>(v);
    if (!(x >= -100 && x <= 100)) return error_reply(req.id, ErrorCode::bad_argument, "gain_db must be in [-100, 100]");
    gain = x;
  }
  if (req.args.contains("pixel_format")) {
    auto v = get_string(req, "pixel_format");
    if (auto* e = err_of(v)) return error_reply(*e);
    const auto& s = std::get<std::string>(v);
    if (s == "mono8") fmt = drivers::PixelFormat::mono8;
    else if (s == "mono12") fmt = drivers::PixelFormat::mono12;
    else if (s == "mono16") fmt = drivers::PixelFormat::mono16;
    else return error_reply(req.id, ErrorCode::bad_argument, "pixel_format must be mono8, mono12 or mono16, got '" + s + "'");
  }
  if (req.args.contains("trigger_mode")) {
    auto v = get_string(req, "trigger_mode");
    if (auto* e = err_of(v)) return error_reply(*e);
    const auto& s = std::get<std::string>(v);
    if (s == "free_run") trig = drivers::TriggerMode::free_run;
    else if (s == "software") trig = drivers::TriggerMode::software;
    else return error_reply(req.id, ErrorCode::bad_argument, "trigger_mode must be free_run or software, got '" + s + "'");
  }
  std::unique_lock lk(ctx.devices.mutex, std::try_to_lock);
  if (!lk.owns_lock()) return busy(req);
  auto& cam = ctx.devices.camera;
  if (exposure) if (auto e = cam.set_exposure_ms(*exposure)) return device_error(req, *e);
  if (gain) if (auto e = cam.set_gain_db(*gain)) return device_error(req, *e);
  if (fmt) if (auto e = cam.set_pixel_format(*fmt)) return device_error(req, *e);
  if (trig) if (auto e = cam.set_trigger_mode(*trig)) return device_error(req, *e);
  Reply r = ok_reply(req.id, {{"camera", camera_json(cam)}});
  r.events.emplace_back("device.state", json{{"device", "camera"}, {"status", camera_json(cam)}});
  return r;
}

Reply cmd_slm_show(const Request& req, Context& ctx) {
  if (auto e = check_known_args(req, {"pattern"})) return error_reply(*e);
  static constexpr std::string_view kTypes[] = {"|u1", "<u1", "<u2"};
  auto a = get_array(req, "pattern", kTypes, 2, 2);
  if (auto* e = err_of(a)) return error_reply(*e);
  if (auto r = expect_parts(req, 1)) return *r;
  const auto& v = std::get<ArrayView>(a);
  auto& slm = ctx.devices.slm;
  if (v.shape[0] != static_cast<std::size_t>(slm.height_px()) || v.shape[1] != static_cast<std::size_t>(slm.width_px())) {
    return error_reply(req.id, ErrorCode::bad_argument,
                       "pattern is " + std::to_string(v.shape[0]) + "x" + std::to_string(v.shape[1]) + ", the SLM is " +
                           std::to_string(slm.height_px()) + "x" + std::to_string(slm.width_px()) + " (rows x cols)");
  }
  const bool wide = v.dtype == "<u2";
  cv::Mat m(static_cast<int>(v.shape[0]), static_cast<int>(v.shape[1]), wide ? CV_16UC1 : CV_8UC1);
  std::memcpy(m.data, v.bytes.data(), v.bytes.size());
  std::unique_lock lk(ctx.devices.mutex, std::try_to_lock);
  if (!lk.owns_lock()) return busy(req);
  if (auto e = slm.show(m)) return device_error(req, *e);
  return ok_reply(req.id, {{"shown", true}});
}

Reply cmd_camera_grab(const Request& req, Context& ctx) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {"timeout_ms"})) return error_reply(*e);
  auto t = get_int(req, "timeout_ms", 1000);
  if (auto* e = err_of(t)) return error_reply(*e);
  const auto ms = std::get<std::int64_t>(t);
  if (ms < 1 || ms > 600000) return error_reply(req.id, ErrorCode::bad_argument, "timeout_ms must be in [1, 600000]");
  std::unique_lock lk(ctx.devices.mutex, std::try_to_lock);
  if (!lk.owns_lock()) return busy(req);
  auto fr = ctx.devices.camera.grab(std::chrono::milliseconds(ms));
  if (!fr) return device_error(req, fr.error());
  const cv::Mat& img = fr.value().image;
  if (img.type() != CV_8UC1 && img.type() != CV_16UC1) {
    return error_reply(req.id, ErrorCode::device_error, "camera returned an unsupported frame type");
  }
  const cv::Mat c = img.isContinuous() ? img : img.clone();
  const std::size_t n = c.total() * c.elemSize();
  if (n > ctx.limits.max_reply_bytes) return error_reply(req.id, ErrorCode::too_large, "frame exceeds the reply size limit");
  Reply r = ok_reply(req.id, nullptr);
  json desc = attach_array(r, img.type() == CV_8UC1 ? "|u1" : "<u2", {std::size_t(c.rows), std::size_t(c.cols)},
                           std::string(reinterpret_cast<const char*>(c.data), n));
  r.body["result"] = {{"frame", desc}, {"sequence", fr.value().sequence}, {"timestamp_s", fr.value().timestamp_s}};
  return r;
}

// "" when `in` (its set loaded) is a valid range of its set that fits the SLM at opt.scale, else why not.
std::string capture_inputs_error(const CaptureInputs& in, const CaptureOptions& opt, const drivers::Slm& slm) {
  const auto& set = *in.set;
  if (in.start >= set.count || in.count > set.count - in.start) {
    return "[start, start+count) = [" + std::to_string(in.start) + ", " + std::to_string(in.start + in.count) +
           ") must be a non-empty range within [0, " + std::to_string(set.count) + ")";
  }
  const int fit = drivers::fitting_scale(int(set.rows), int(set.cols), slm.height_px(), slm.width_px());
  if (fit < 1 || opt.scale > fit) {
    return "inputs of " + std::to_string(set.rows) + "x" + std::to_string(set.cols) +
           (opt.scale > 0 ? " at scale " + std::to_string(opt.scale) : std::string()) + " do not fit the " +
           std::to_string(slm.height_px()) + "x" + std::to_string(slm.width_px()) + " SLM";
  }
  return {};
}

Reply cmd_capture(const Request& req, Context& ctx) {
  if (auto e = check_known_args(req, {"dataset", "split", "start", "count", "inputs", "inputs_npy", "timeout_ms",
                                      "scale", "chunk_records", "hdf5", "content_check"})) {
    return error_reply(*e);
  }
  if (ctx.shutting_down || !ctx.jobs.accepting()) {
    return error_reply(req.id, ErrorCode::shutting_down, "the daemon is shutting down and accepts no new jobs");
  }
  if (auto r = check_job_limit(req, ctx)) return *r;
  CaptureOptions opt = ctx.capture_defaults;
  auto t = get_int(req, "timeout_ms", opt.grab_timeout.count());
  if (auto* e = err_of(t)) return error_reply(*e);
  auto sc = get_int(req, "scale", opt.scale);
  if (auto* e = err_of(sc)) return error_reply(*e);
  auto cr = get_int(req, "chunk_records", static_cast<std::int64_t>(opt.chunk_records));
  if (auto* e = err_of(cr)) return error_reply(*e);
  if (std::get<std::int64_t>(t) < 1 || std::get<std::int64_t>(t) > 600000) {
    return error_reply(req.id, ErrorCode::bad_argument, "timeout_ms must be in [1, 600000]");
  }
  if (std::get<std::int64_t>(sc) < 0 || std::get<std::int64_t>(sc) > 256) {
    return error_reply(req.id, ErrorCode::bad_argument, "scale must be in [0, 256] (0 = largest that fits)");
  }
  if (std::get<std::int64_t>(cr) < 1 || std::get<std::int64_t>(cr) > 100000) {
    return error_reply(req.id, ErrorCode::bad_argument, "chunk_records must be in [1, 100000]");
  }
  opt.grab_timeout = std::chrono::milliseconds(std::get<std::int64_t>(t));
  opt.scale = static_cast<int>(std::get<std::int64_t>(sc));
  opt.chunk_records = static_cast<std::size_t>(std::get<std::int64_t>(cr));
  auto h5 = get_bool(req, "hdf5", opt.hdf5);
  if (auto* e = err_of(h5)) return error_reply(*e);
  opt.hdf5 = std::get<bool>(h5);
  if (req.args.contains("content_check")) {
    try {
      opt.content = io::read_options(req.args["content_check"], "args.content_check", opt.content);
    } catch (const io::OptionsError& e) {
      return error_reply(req.id, ErrorCode::bad_argument, e.what());
    }
    if (auto e = opt.content.validate(); !e.empty()) return error_reply(req.id, ErrorCode::bad_argument, "args." + e);
  }

  CaptureInputs in;
  std::pair<std::string, std::string> dataset;  // name, split: set for dataset captures
  json params = req.args;
  if (opt.hdf5) params["hdf5"] = true;  // also when it came from the daemon's default: a resume keeps it
  const bool inline_inputs = req.args.contains("inputs");
  const bool file_inputs = req.args.contains("inputs_npy");
  const int sources = int(inline_inputs) + int(file_inputs) + int(req.args.contains("dataset"));
  if (sources != 1) {
    return error_reply(req.id, sources > 1 ? ErrorCode::bad_argument : ErrorCode::missing_field,
                       "capture needs exactly one of \"dataset\" (with start, count), \"inputs\" (an array part) or "
                       "\"inputs_npy\" (a .npy file in the data directory)");
  }
  if (file_inputs) {
    for (const char* k : {"split", "start", "count"}) {
      if (req.args.contains(k)) return error_reply(req.id, ErrorCode::bad_argument, std::string(k) + " applies only to dataset captures");
    }
    if (auto r = expect_parts(req, 0)) return *r;
    auto p = get_path(req, "inputs_npy", ctx.data_dir);
    if (auto* e = err_of(p)) return error_reply(*e);
    const auto& path = std::get<std::filesystem::path>(p);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      return error_reply(req.id, ErrorCode::not_found, "args.inputs_npy: no file '" + req.args["inputs_npy"].get<std::string>() +
                                                           "' in the data directory");
    }
    sim::NpyArray a;
    try {
      a = sim::read_npy(path);
    } catch (const std::exception& e) {
      return error_reply(req.id, ErrorCode::bad_argument, std::string("args.inputs_npy: ") + e.what());
    }
    if (a.dtype != sim::Dtype::u1 || a.shape.size() != 3 || a.shape[0] == 0 || a.shape[1] == 0 || a.shape[2] == 0) {
      return error_reply(req.id, ErrorCode::bad_argument, "args.inputs_npy must hold a non-empty uint8 array of shape [n, h, w]");
    }
    auto set = std::make_shared<ImageSet>();
    set->count = a.shape[0];
    set->rows = a.shape[1];
    set->cols = a.shape[2];
    const auto* b = reinterpret_cast<const std::uint8_t*>(a.bytes.data());
    set->images.assign(b, b + a.bytes.size());
    in.set = std::move(set);
    in.start = 0;
    in.count = a.shape[0];
    params["inputs_shape"] = a.shape;
  } else if (inline_inputs) {
    for (const char* k : {"split", "start", "count"}) {
      if (req.args.contains(k)) return error_reply(req.id, ErrorCode::bad_argument, std::string(k) + " applies only to dataset captures");
    }
    static constexpr std::string_view kTypes[] = {"|u1", "<u1"};
    auto a = get_array(req, "inputs", kTypes, 3, 3);
    if (auto* e = err_of(a)) return error_reply(*e);
    if (auto r = expect_parts(req, 1)) return *r;
    const auto& v = std::get<ArrayView>(a);
    if (v.shape[0] == 0 || v.shape[1] == 0 || v.shape[2] == 0) {
      return error_reply(req.id, ErrorCode::bad_argument, "inputs must hold at least one non-empty image");
    }
    auto set = std::make_shared<ImageSet>();
    set->count = v.shape[0];
    set->rows = v.shape[1];
    set->cols = v.shape[2];
    set->images.assign(v.bytes.begin(), v.bytes.end());
    in.set = std::move(set);
    in.start = 0;
    in.count = v.shape[0];
    params.erase("inputs");
    params["inputs_shape"] = v.shape;
  } else {
    if (auto r = expect_parts(req, 0)) return *r;
    // A built-in dataset by name, or a lab's own files: {"name": "npy", "images": ..., "labels": ...}.
    std::variant<std::string, ProtocolError> ds = std::string();
    if (req.args["dataset"].is_object()) {
      auto o = capture_dataset_options(req.args["dataset"], ctx.data_dir);
      if (auto* r = std::get_if<Refusal>(&o)) return error_reply(req.id, r->code, r->message);
      params["dataset"] = std::get<distill::DataOptions>(o);  // resolved paths: a resume reads the same files
      ds = ctx.datasets.add_files(std::get<distill::DataOptions>(o));
    } else {
      ds = get_string(req, "dataset");
    }
    if (auto* e = err_of(ds)) return error_reply(*e);
    auto split = get_string(req, "split", std::string("train"));
    if (auto* e = err_of(split)) return error_reply(*e);
    auto start = get_int(req, "start");
    if (auto* e = err_of(start)) return error_reply(*e);
    auto count = get_int(req, "count");
    if (auto* e = err_of(count)) return error_reply(*e);
    const auto& name = std::get<std::string>(ds);
    const auto& sp = std::get<std::string>(split);
    if (!ctx.datasets.knows(name)) {
      std::string known;
      for (const auto& n : ctx.datasets.names()) known += (known.empty() ? "" : ", ") + n;
      return error_reply(req.id, ErrorCode::not_found, "unknown dataset '" + name + "' (known: " + known + ")");
    }
    if (sp != "train" && sp != "test") return error_reply(req.id, ErrorCode::bad_argument, "split must be 'train' or 'test'");
    const auto s = std::get<std::int64_t>(start), c = std::get<std::int64_t>(count);
    if (s < 0 || c < 1) {
      return error_reply(req.id, ErrorCode::bad_argument, "start must be >= 0 and count >= 1, got " + std::to_string(s) + ", " + std::to_string(c));
    }
    in.start = static_cast<std::size_t>(s);
    in.count = static_cast<std::size_t>(c);
    in.has_labels = true;
    // A split not loaded yet is loaded by the job, not here: a first load takes seconds and this is the
    // I/O thread. Its range and placement are then checked there (the job fails with the same message).
    dataset = {name, sp};
    in.set = ctx.datasets.cached(name, sp);
  }
  if (in.set) {
    if (auto e = capture_inputs_error(in, opt, ctx.devices.slm); !e.empty()) return error_reply(req.id, ErrorCode::bad_argument, e);
  }
  if (auto e = opt.validate(); !e.empty()) return error_reply(req.id, ErrorCode::bad_argument, e);

  const auto data_dir = ctx.data_dir;
  Devices* devices = &ctx.devices;
  DatasetLibrary* datasets = &ctx.datasets;
  auto mono = ctx.monotonic_s;
  auto rec = ctx.jobs.submit("capture", params, static_cast<std::int64_t>(in.count), [&](const JobRecord& r) {
    json base = {{"run_id", r.run_id}, {"kind", "capture"}, {"job_id", r.id}, {"created_s", r.created_s}, {"params", r.params}};
    return JobManager::Work([in, opt, devices, datasets, dataset, dir = data_dir / r.run_id, base, mono](JobControl& ctl) {
      CaptureInputs loaded = in;
      if (!loaded.set) {
        try {
          loaded.set = datasets->get(dataset.first, dataset.second);
        } catch (const DatasetError& e) {
          return JobOutcome{JobState::failed, e.what()};
        }
        if (auto e = capture_inputs_error(loaded, opt, devices->slm); !e.empty()) return JobOutcome{JobState::failed, e};
      }
      return run_capture(loaded, opt, *devices, dir, base, ctl, mono);
    });
  });
  if (!rec) return error_reply(req.id, ErrorCode::shutting_down, "the daemon is shutting down and accepts no new jobs");
  return ok_reply(req.id, {{"job_id", rec->id}, {"run_id", rec->run_id}, {"state", std::string(to_string(rec->state))},
                           {"total", rec->total}});
}

// daemon.stats: every counter the daemon keeps (docs/protocol.md): the socket loop's (Context::
// daemon_counters), jobs by state (catalog) with those queued or running now, the devices' totals.
Reply cmd_daemon_stats(const Request& req, Context& ctx) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {})) return error_reply(*e);
  json result = ctx.daemon_counters ? ctx.daemon_counters() : json::object();
  json jobs = ctx.catalog.job_counts();
  jobs["active"] = ctx.jobs.active();
  result["jobs"] = std::move(jobs);
  result["devices"] = ctx.devices.counters_json();
  return ok_reply(req.id, result);
}

Reply cmd_shutdown(const Request& req, Context&) {
  if (auto r = expect_parts(req, 0)) return *r;
  if (auto e = check_known_args(req, {})) return error_reply(*e);
  Reply r = ok_reply(req.id, {{"shutting_down", true}});
  r.shutdown_after = true;
  return r;
}

using Handler = Reply (*)(const Request&, Context&);

const std::map<std::string_view, Handler>& table() {
  static const std::map<std::string_view, Handler> t = {
      {"ping", cmd_ping},           {"version", cmd_version},           {"devices.list", cmd_devices_list},
      {"devices.status", cmd_devices_status}, {"devices.configure", cmd_devices_configure},
      {"slm.show", cmd_slm_show},   {"camera.grab", cmd_camera_grab},   {"capture", cmd_capture},
      {"pipeline", cmd_pipeline},   {"train-teacher", cmd_train_teacher}, {"distill", cmd_distill},
      {"deploy", cmd_deploy},       {"calibrate", cmd_calibrate},       {"evaluate", cmd_evaluate},
      {"recompensate", cmd_recompensate},
      {"jobs.list", cmd_jobs_list}, {"jobs.status", cmd_jobs_status},   {"jobs.cancel", cmd_jobs_cancel},
      {"runs.list", cmd_runs_list}, {"runs.get", cmd_runs_get},
      {"runs.export", cmd_runs_export},         {"daemon.stats", cmd_daemon_stats}, {"shutdown", cmd_shutdown},
      {"defer", cmd_defer}};
  return t;
}

}  // namespace

std::vector<std::string_view> command_names() {
  std::vector<std::string_view> out;
  for (const auto& [k, _] : table()) out.push_back(k);
  return out;
}

std::optional<Reply> check_job_limit(const Request& req, Context& ctx) {
  // Counted by the manager: jobs resumed at start keep their old ids, so the newest ids miss them.
  const std::size_t active = ctx.jobs.active();
  if (active >= ctx.limits.max_jobs) {
    return error_reply(req.id, ErrorCode::too_many_jobs,
                       std::to_string(active) + " jobs are queued or running, the limit is " + std::to_string(ctx.limits.max_jobs) +
                           "; wait for one to finish or cancel one");
  }
  return std::nullopt;
}

bool runs_off_io_thread(std::string_view cmd) { return cmd == "defer"; }

Reply handle(const Request& req, Context& ctx, Role role) {
  const auto it = table().find(req.cmd);
  if (it == table().end()) return error_reply(req.id, ErrorCode::unknown_command, "unknown command '" + req.cmd + "'");
  if (role < required_role(req.cmd)) {
    return error_reply(req.id, ErrorCode::forbidden,
                       req.cmd + " needs the " + std::string(to_string(required_role(req.cmd))) + " role; this client is " +
                           std::string(to_string(role)));
  }
  try {
    return it->second(req, ctx);
  } catch (const std::exception& e) {
    return error_reply(req.id, ErrorCode::internal, req.cmd + ": " + e.what());
  } catch (...) {
    return error_reply(req.id, ErrorCode::internal, req.cmd + ": unknown exception");
  }
}

Reply handle_frames(std::span<const std::string> frames, Context& ctx, Role role) {
  auto p = parse(frames, ctx.limits);
  if (auto* e = std::get_if<ProtocolError>(&p)) return error_reply(*e);
  return handle(std::get<Request>(p), ctx, role);
}

}  // namespace hilo::controller
